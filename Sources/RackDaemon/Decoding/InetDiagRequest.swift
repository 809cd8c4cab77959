// rackd — requests for single sockets over sock_diag (SOCK_DIAG_BY_FAMILY without NLM_F_DUMP), and the
// sorting of their answers. Pure: values in, bytes out; bytes in, values out.
//
// One request names one socket by its tuple (`inet_diag_sockid`, the cookie left as INET_DIAG_NOCOOKIE):
// the kernel looks it up in its hash tables (`inet_diag_find_one_icsk`) and answers with one message, the
// socket's `inet_diag_msg` with the extensions asked for, or an NLMSG_ERROR (ENOENT when no socket has the
// tuple). Many requests go in one datagram; each answer carries its request's sequence number. So reading
// k sockets costs k lookups, however many sockets the host has, where a dump costs every socket of the
// family (docs/architecture.md, "Liveness at scale").
//
// The lookup is the one incoming packets use, with no interface named: a socket bound to a device
// (SO_BINDTODEVICE) may be missed; and it falls back to listeners, so a tuple whose socket is gone may
// be answered with the LISTEN socket of its port (the decoder drops LISTEN sockets). The caller confirms
// what is missing with a dump before it tells the engine a socket is gone.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// The bytes of sock_diag requests for single TCP sockets.
public enum InetDiagRequest {
    /// The size of one request: `nlmsghdr` and `inet_diag_req_v2`.
    public static let size = MemoryLayout<nlmsghdr>.size + MemoryLayout<inet_diag_req_v2>.size

    /// Appends the request for the socket of `flow` (with `tcp_info`), numbered `sequence`, to `bytes`.
    /// An IPv4 flow is asked as AF_INET: the kernel's lookup finds IPv6 sockets that carry it too.
    public static func append(flow: FlowKey, sequence: UInt32, to bytes: inout [UInt8]) {
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(size)
        header.nlmsg_type = UInt16(SOCK_DIAG_BY_FAMILY)
        header.nlmsg_flags = UInt16(NLM_F_REQUEST)
        header.nlmsg_seq = sequence
        var request = inet_diag_req_v2()
        request.sdiag_protocol = UInt8(CLNL_IPPROTO_TCP)
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        // Ignored by a lookup of one socket; every state, as the caller filters.
        request.idiag_states = ~0
        let family: CInt
        switch (flow.local.address, flow.remote.address) {
        case (.v4(let local), .v4(let remote)):
            family = AF_INET
            request.id.idiag_src = (local.rawValue.bigEndian, 0, 0, 0)
            request.id.idiag_dst = (remote.rawValue.bigEndian, 0, 0, 0)
        case (.v6(let local), .v6(let remote)):
            family = AF_INET6
            request.id.idiag_src = words(local)
            request.id.idiag_dst = words(remote)
        case (.v4(let local), .v6(let remote)):
            family = AF_INET6
            request.id.idiag_src = words(mapped(local))
            request.id.idiag_dst = words(remote)
        case (.v6(let local), .v4(let remote)):
            family = AF_INET6
            request.id.idiag_src = words(local)
            request.id.idiag_dst = words(mapped(remote))
        }
        request.sdiag_family = UInt8(family)
        request.id.idiag_sport = flow.local.port.bigEndian
        request.id.idiag_dport = flow.remote.port.bigEndian
        request.id.idiag_if = 0
        request.id.idiag_cookie = (UInt32.max, UInt32.max)  // INET_DIAG_NOCOOKIE
        withUnsafeBytes(of: header) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: request) { bytes.append(contentsOf: $0) }
    }

    /// The four big-endian words of an IPv6 address, as `inet_diag_sockid` holds them.
    private static func words(_ address: IPv6Address) -> (UInt32, UInt32, UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: address.high >> 32).bigEndian, UInt32(truncatingIfNeeded: address.high).bigEndian,
         UInt32(truncatingIfNeeded: address.low >> 32).bigEndian, UInt32(truncatingIfNeeded: address.low).bigEndian)
    }

    private static func mapped(_ address: IPv4Address) -> IPv6Address {
        IPv6Address(high: 0, low: 0xffff_0000_0000 | UInt64(address.rawValue))
    }
}

/// One answer to a request of `InetDiagRequest`.
public enum InetDiagAnswer: Equatable, Sendable {
    /// The socket, as `SocketSnapshot(decoding:)` reads it (nil: a LISTEN or TIME_WAIT socket, or one
    /// without `tcp_info`).
    case socket(sequence: UInt32, SocketSnapshot?)
    /// The kernel's error for the request (ENOENT: no socket has the tuple).
    case error(sequence: UInt32, errno: Int32)

    /// Reads one message of an answer datagram; nil for a message that answers no request of ours.
    public init?(_ message: NetlinkMessage) {
        switch message.type {
        case UInt16(SOCK_DIAG_BY_FAMILY):
            self = .socket(sequence: message.sequence, SocketSnapshot(decoding: message))
        case UInt16(NLMSG_ERROR):
            guard let code = message.errorCode, code != 0 else { return nil }
            self = .error(sequence: message.sequence, errno: -code)
        default:
            return nil
        }
    }

    /// The sequence number of the request answered.
    public var sequence: UInt32 {
        switch self {
        case .socket(let sequence, _), .error(let sequence, _): sequence
        }
    }
}
