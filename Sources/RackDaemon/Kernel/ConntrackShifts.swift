// rackd — the conntrack entries that carry kernel shifts (Core/KernelShift.swift): one per shifted rocks
// connection, created over ctnetlink with conntrack's sequence adjustment (seqadj), deleted when the
// connection stops being shifted.
//
// The request is the "Working recipe" of docs/kernel-seqadj.md, measured there: an entry the packet path
// made can never gain seqadj (an UPDATE succeeds and does nothing), so `install` deletes whatever entry
// the tuple has and creates one (IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL, what nfct_query's
// NFCT_Q_CREATE sends). A packet of the flow between the delete and the create makes a new entry by pickup
// and the create fails with EEXIST: then both are tried again (§4, "Race when converting a live flow").
// The entry is ESTABLISHED, assured (never early-dropped under table pressure) and BE_LIBERAL in both
// directions (§3: without it conntrack marks packets out of its window INVALID and they leave unshifted),
// with the longest timeout docs/kernel-seqadj.md used (5 days; every packet refreshes it).
//
// libnetfilter_conntrack encodes the attributes (nfct_nlmsg_build); the requests and acknowledgments go
// over NetlinkSocket like every other adapter's. It decides nothing: the engine says which flows to shift.

import CConntrack
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The ctnetlink side of kernel shifts.
public final class ConntrackShifts {
    private let socket: NetlinkSocket

    /// Opens a netfilter netlink socket for ctnetlink requests. Whether the kernel answers them is
    /// `checkAvailable`'s to say.
    public init() throws(SystemError) {
        socket = try NetlinkSocket(family: .netfilter)
        // Every request is acknowledged at once; never wait long.
        try socket.setReceiveTimeout(.seconds(5))
    }

    /// Throws unless ctnetlink works here: a GET of a tuple no connection has (0.0.0.0:0 to 0.0.0.0:0)
    /// must come back ENOENT (or, should the entry exist, succeed).
    public func checkAvailable() throws(SystemError) {
        let nowhere = TCPEndpoint(address: .v4(IPv4Address(rawValue: 0)), port: 0)
        let flow = FlowKey(local: nowhere, remote: nowhere)
        do {
            try request(IPCTNL_MSG_CT_GET, flags: 0, for: flow, call: "ctnetlink get (availability check)")
        } catch where error.errno == .noSuchFileOrDirectory {
            return
        } catch {
            throw SystemError(call: error.call, errno: error.errno, hint: Self.unavailableHint(error.errno))
        }
    }

    /// Creates the entry that shifts `shift.flow`, replacing any entry of that tuple (docs/kernel-seqadj.md,
    /// "Working recipe"). Also for a flow already shifted: an entry the kernel lost was re-made by the next
    /// packet, without the shift.
    public func install(_ shift: KernelShift) throws(SystemError) {
        var attempt = 1
        while true {
            try remove(shift)
            do {
                try request(IPCTNL_MSG_CT_NEW, flags: UInt16(NLM_F_CREATE | NLM_F_EXCL),
                            for: shift.flow, shift: shift, call: "ctnetlink create \(shift)")
                return
            } catch where error.errno == .fileExists && attempt < Self.createAttempts {
                // A packet of the flow made an entry between the delete and the create.
                attempt += 1
            } catch where error.errno == .fileExists {
                throw SystemError(
                    call: error.call, errno: error.errno,
                    hint: "the flow's packets re-created its conntrack entry \(Self.createAttempts) times between delete "
                        + "and create; its inbound packets stay with rackd (chain shifted) until the engine asks again")
            } catch {
                throw SystemError(call: error.call, errno: error.errno, hint: Self.unavailableHint(error.errno))
            }
        }
    }

    /// Deletes the entry of `shift.flow`, if there is one, and after a reconnection the one of the link's
    /// tuple (the packets of the link's handshake made one, which would stand in the new entry's way).
    public func remove(_ shift: KernelShift) throws(SystemError) {
        for flow in shift.isMoved ? [shift.flow, shift.wire] : [shift.flow] {
            do {
                try request(IPCTNL_MSG_CT_DELETE, flags: 0, for: flow, call: "ctnetlink delete \(flow)")
            } catch where error.errno == .noSuchFileOrDirectory {
                continue
            } catch {
                throw SystemError(call: error.call, errno: error.errno, hint: Self.unavailableHint(error.errno))
            }
        }
    }

    /// Delete and create per `install`, at most this many times.
    static let createAttempts = 3
    /// CTA_TIMEOUT, in seconds: nf_conntrack_tcp_timeout_established's default (docs/kernel-seqadj.md, §4).
    static let timeoutSeconds: UInt32 = 432_000

    // MARK: Requests

    /// Sends one ctnetlink request about `flow` (the socket's tuple as the entry's original direction; the
    /// reply direction is `shift`'s wire tuple, inverted) and waits for its acknowledgment.
    private func request(_ command: cntl_msg_types, flags: UInt16, for flow: FlowKey, shift: KernelShift? = nil,
                         call: String) throws(SystemError) {
        let body = try Self.requestBody(for: flow, shift: shift, call: call)
        try socket.requestWithAcknowledgment(type: Self.messageType(command), flags: flags, body: body, call: call)
    }

    /// NFNL_SUBSYS_CTNETLINK in the high byte, the IPCTNL_MSG_* command in the low one.
    static func messageType(_ command: cntl_msg_types) -> UInt16 {
        UInt16(NFNL_SUBSYS_CTNETLINK) << 8 | UInt16(command.rawValue)
    }

    /// A request's body, everything after the netlink header (NetlinkSocket's to write, with its sequence
    /// numbers): nfgenmsg and the attributes libnetfilter_conntrack encodes. With `shift`, the whole entry
    /// of the recipe, whose reply tuple is the inverse of the shift's wire tuple (the link's after a
    /// reconnection: the rock's packets on it find the entry, as a NAT entry's replies do); without, only
    /// the tuple.
    static func requestBody(for flow: FlowKey, shift: KernelShift?, call: String) throws(SystemError) -> [UInt8] {
        guard let entry = nfct_new() else { throw SystemError.current("nfct_new(\(call))") }
        defer { nfct_destroy(entry) }
        let family = flow.local.address.isIPv4 ? UInt8(AF_INET) : UInt8(AF_INET6)
        setTuple(of: flow, reply: shift?.wire ?? flow, family: family, on: entry)
        if let shift { setShift(shift, on: entry) }
        // One request: a create with IPv6 tuples is some 300 bytes.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let header = mnl_nlmsg_put_header(buffer.baseAddress)!
        let nfgen = mnl_nlmsg_put_extra_header(header, MemoryLayout<nfgenmsg>.size)!
        nfgen.storeBytes(of: nfgenmsg(nfgen_family: family, version: UInt8(NFNETLINK_V0), res_id: 0), as: nfgenmsg.self)
        guard nfct_nlmsg_build(header, entry) == 0 else { throw SystemError.current("nfct_nlmsg_build(\(call))") }
        let headerSize = MemoryLayout<nlmsghdr>.size
        return Array(UnsafeRawBufferPointer(rebasing: buffer[headerSize..<Int(header.pointee.nlmsg_len)]))
    }

    /// The original tuple (`flow`, local to remote, TCP) and the reply tuple (`reply`'s inverse: remote to
    /// local).
    private static func setTuple(of flow: FlowKey, reply: FlowKey, family: UInt8, on entry: OpaquePointer) {
        nfct_set_attr_u8(entry, ATTR_L3PROTO, family)
        nfct_set_attr_u8(entry, ATTR_REPL_L3PROTO, family)
        nfct_set_attr_u8(entry, ATTR_L4PROTO, IPProtocol.tcp.rawValue)
        nfct_set_attr_u8(entry, ATTR_REPL_L4PROTO, IPProtocol.tcp.rawValue)
        let ipv4 = family == UInt8(AF_INET)
        for (attribute, address) in [(ipv4 ? ATTR_IPV4_SRC : ATTR_IPV6_SRC, flow.local.address),
                                     (ipv4 ? ATTR_IPV4_DST : ATTR_IPV6_DST, flow.remote.address),
                                     (ipv4 ? ATTR_REPL_IPV4_SRC : ATTR_REPL_IPV6_SRC, reply.remote.address),
                                     (ipv4 ? ATTR_REPL_IPV4_DST : ATTR_REPL_IPV6_DST, reply.local.address)] {
            // Network order, 4 or 16 bytes: the library copies as many as the attribute holds.
            address.bytes.withUnsafeBytes { nfct_set_attr(entry, attribute, $0.baseAddress) }
        }
        nfct_set_attr_u16(entry, ATTR_PORT_SRC, flow.local.port.bigEndian)
        nfct_set_attr_u16(entry, ATTR_PORT_DST, flow.remote.port.bigEndian)
        nfct_set_attr_u16(entry, ATTR_REPL_PORT_SRC, reply.remote.port.bigEndian)
        nfct_set_attr_u16(entry, ATTR_REPL_PORT_DST, reply.local.port.bigEndian)
    }

    /// The rest of the recipe: status, timeout, TCP state and flags, and the offsets of both directions.
    private static func setShift(_ shift: KernelShift, on entry: OpaquePointer) {
        // IPS_CONFIRMED must be there: create sets it first and a change of it is refused (the library
        // adds it anyway).
        nfct_set_attr_u32(entry, ATTR_STATUS, UInt32(IPS_CONFIRMED.rawValue | IPS_ASSURED.rawValue | IPS_SEEN_REPLY.rawValue))
        nfct_set_attr_u32(entry, ATTR_TIMEOUT, timeoutSeconds)
        nfct_set_attr_u8(entry, ATTR_TCP_STATE, UInt8(TCP_CONNTRACK_ESTABLISHED.rawValue))
        let liberal = UInt8(IP_CT_TCP_FLAG_BE_LIBERAL)
        for attribute in [ATTR_TCP_FLAGS_ORIG, ATTR_TCP_MASK_ORIG, ATTR_TCP_FLAGS_REPL, ATTR_TCP_MASK_REPL] {
            nfct_set_attr_u8(entry, attribute, liberal)
        }
        // A constant offset: the same before and after the correction position, which then does not matter.
        for (position, before, after, offset) in [
            (ATTR_ORIG_NAT_SEQ_CORRECTION_POS, ATTR_ORIG_NAT_SEQ_OFFSET_BEFORE, ATTR_ORIG_NAT_SEQ_OFFSET_AFTER,
             shift.originalOffset),
            (ATTR_REPL_NAT_SEQ_CORRECTION_POS, ATTR_REPL_NAT_SEQ_OFFSET_BEFORE, ATTR_REPL_NAT_SEQ_OFFSET_AFTER,
             shift.replyOffset),
        ] {
            nfct_set_attr_u32(entry, position, 0)
            nfct_set_attr_u32(entry, before, UInt32(bitPattern: offset))
            nfct_set_attr_u32(entry, after, UInt32(bitPattern: offset))
        }
    }

    /// What to do when ctnetlink refuses rackd.
    private static func unavailableHint(_ errno: Errno) -> String? {
        switch errno {
        case .notPermitted, .permissionDenied:
            return nil  // SystemError's own hint: the capabilities
        case .invalidArgument, .notSupported, .protocolNotSupported, .noSuchFileOrDirectory:
            return "the kernel has no ctnetlink, or refused the entry: load nf_conntrack and nf_conntrack_netlink "
                + "(modprobe nf_conntrack_netlink); until then rocks connections with a sequence shift stay queued"
        default:
            return "rocks connections with a sequence shift stay queued; see docs/kernel-seqadj.md"
        }
    }
}
