// rackd — the kernel's view of local TCP sockets, read over sock_diag (inet_diag), as engine snapshots.
//
// rackd keeps healthy connections out of the queue (DESIGN §4), so it reads their progress from the
// sockets themselves: one SOCK_DIAG_BY_FAMILY dump per family with INET_DIAG_INFO (struct tcp_info).
// Each socket becomes a `SocketSnapshot`. Sockets of IPv6 listeners that carry IPv4 connections
// (`::ffff:a.b.c.d`) are reported with IPv4 endpoints, as their packets are. It decides nothing.

import CLinuxNetlink
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Dumps local TCP sockets over NETLINK_SOCK_DIAG.
///
/// The counters are the kernel's, passed on unchanged (measured on Linux 6.18): `bytesAcked` counts the
/// SYN for the active opener only, and both `bytesAcked` and `bytesReceived` count a FIN once it is
/// acknowledged or received. A socket that has never received an ACK (SYN_SENT) reports
/// `lastAckReceived` as the time since jiffies began, a meaningless large value.
final class SocketDiagnostics {
    /// The states dumped unless others are asked for: every state whose sockets carry `tcp_info`, except
    /// LISTEN. TIME_WAIT and NEW_SYN_RECV sockets are mini-sockets without `tcp_info`; asking for them costs
    /// dump time and yields nothing.
    static let defaultStates: Set<SocketSnapshot.State> = [
        .established, .synSent, .synReceived, .finWait1, .finWait2, .close, .closeWait, .lastAck, .closing,
    ]

    /// The `idiag_states` bit mask.
    private let stateMask: UInt32
    /// Opened lazily again after a failed dump, whose rest may still be queued on the old socket.
    private var socket: KernelNetlinkSocket?

    /// Opens the socket. LISTEN sockets are never reported, even when `states` names them.
    init(states: Set<SocketSnapshot.State> = SocketDiagnostics.defaultStates) throws(SystemError) {
        stateMask = states.subtracting([.listen]).reduce(0) { $0 | 1 << UInt32($1.rawValue) }
        socket = try Self.openSocket()
    }

    // MARK: Snapshots

    /// Every local TCP socket of both families in the requested states.
    func snapshot() throws(SystemError) -> [SocketSnapshot] {
        var snapshots: [SocketSnapshot] = []
        for family in [AF_INET, AF_INET6] {
            try dump(family: family, including: { _ in true }) { snapshots.append($0) }
        }
        return snapshots
    }

    /// The sockets of `flows`, keyed by flow. A flow without a socket (closed, in TIME_WAIT, or never
    /// local) has no entry.
    func snapshot(of flows: Set<FlowKey>) throws(SystemError) -> [FlowKey: SocketSnapshot] {
        var snapshots: [FlowKey: SocketSnapshot] = [:]
        guard !flows.isEmpty else { return snapshots }
        snapshots.reserveCapacity(flows.count)
        // IPv4 flows may live on IPv6 sockets (v4-mapped), so the IPv6 dump always runs; the IPv4 one only
        // when some flow is IPv4.
        let anyIPv4 = flows.contains { if case .v4 = $0.local.address { true } else { false } }
        for family in anyIPv4 ? [AF_INET, AF_INET6] : [AF_INET6] {
            try dump(family: family, including: { flows.contains($0) }) { snapshots[$0.flow] = $0 }
        }
        return snapshots
    }

    // MARK: Dumping

    private static func openSocket() throws(SystemError) -> KernelNetlinkSocket {
        let socket = try KernelNetlinkSocket(family: .socketDiagnostics)
        try socket.setReceiveTimeout(.seconds(5))
        return socket
    }

    /// Dumps the TCP sockets of one family and hands over those whose flow `including` accepts.
    private func dump(
        family: CInt, including: (FlowKey) -> Bool, _ collect: (SocketSnapshot) -> Void
    ) throws(SystemError) {
        var request = inet_diag_req_v2()
        request.sdiag_family = UInt8(family)
        request.sdiag_protocol = UInt8(CLNL_IPPROTO_TCP)
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        request.idiag_states = stateMask
        let socket: KernelNetlinkSocket
        if let open = self.socket {
            socket = open
        } else {
            socket = try Self.openSocket()
            self.socket = socket
        }
        do {
            // inet_diag never flags its dumps as interrupted; a socket that changes state mid-dump is
            // simply seen in one state or the other.
            _ = try socket.dump(
                type: UInt16(SOCK_DIAG_BY_FAMILY), body: request,
                call: family == AF_INET ? "TCP sockets, AF_INET" : "TCP sockets, AF_INET6"
            ) { message in
                guard message.type == UInt16(SOCK_DIAG_BY_FAMILY),
                    let snapshot = Self.decodeSocket(message.payload, including: including)
                else { return }
                collect(snapshot)
            }
        } catch {
            self.socket = nil
            throw error
        }
    }

    // MARK: Decoding

    /// Decodes one `inet_diag_msg` and its attributes. Nil for a LISTEN socket, a socket whose flow is not
    /// included, or one without a usable `tcp_info`.
    private static func decodeSocket(_ payload: UnsafeRawBufferPointer, including: (FlowKey) -> Bool)
        -> SocketSnapshot?
    {
        let fixedSize = MemoryLayout<inet_diag_msg>.size
        guard payload.count >= fixedSize else { return nil }
        let header = payload.loadUnaligned(as: inet_diag_msg.self)
        guard let state = SocketSnapshot.State(rawValue: header.idiag_state), state != .listen,
            let localAddress = address(family: header.idiag_family, header.id.idiag_src),
            let remoteAddress = address(family: header.idiag_family, header.id.idiag_dst)
        else { return nil }
        let flow = FlowKey(
            local: TCPEndpoint(address: localAddress, port: UInt16(bigEndian: header.id.idiag_sport)),
            remote: TCPEndpoint(address: remoteAddress, port: UInt16(bigEndian: header.id.idiag_dport)))
        guard including(flow) else { return nil }

        var info: TCPInfoFields?
        for attribute in KernelNetlinkAttributes(payload, after: fixedSize)
        where attribute.type == UInt16(INET_DIAG_INFO) {
            info = TCPInfoFields(attribute.payload)
            break
        }
        // A socket without the counters is skipped rather than reported with zeros: the engine derives
        // sequence numbers from bytesAcked and bytesReceived, and a zero would read as "nothing sent yet".
        guard let info else { return nil }
        return SocketSnapshot(
            flow: flow, state: state, bytesAcked: info.bytesAcked, bytesReceived: info.bytesReceived,
            unackedSegments: info.unacked, lastAckReceived: .milliseconds(Int64(info.lastAckReceived)),
            lastDataReceived: .milliseconds(Int64(info.lastDataReceived)), uid: header.idiag_uid,
            inode: UInt64(header.idiag_inode), sendQueueBytes: header.idiag_wqueue,
            receiveQueueBytes: header.idiag_rqueue)
    }

    /// An `idiag_src`/`idiag_dst` address (four big-endian words) of the given family. IPv4-mapped IPv6
    /// addresses become IPv4 addresses.
    private static func address(family: UInt8, _ words: (UInt32, UInt32, UInt32, UInt32)) -> IPAddress? {
        switch CInt(family) {
        case AF_INET:
            return .v4(IPv4Address(rawValue: UInt32(bigEndian: words.0)))
        case AF_INET6:
            let high = UInt64(UInt32(bigEndian: words.0)) << 32 | UInt64(UInt32(bigEndian: words.1))
            let low = UInt64(UInt32(bigEndian: words.2)) << 32 | UInt64(UInt32(bigEndian: words.3))
            if high == 0, low >> 32 == 0xffff {
                return .v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)))
            }
            return .v6(IPv6Address(high: high, low: low))
        default:
            return nil
        }
    }
}

// MARK: - tcp_info

/// The fields rackd reads from `struct tcp_info`, as the INET_DIAG_INFO attribute carries it.
///
/// The attribute is as long as the running kernel's `struct tcp_info`, which only ever grows at its end:
/// an older kernel sends fewer bytes than this header declares, a newer one more. Each field is read at its
/// offset in the header's layout only if it lies inside the attribute. `tcpi_bytes_acked` and
/// `tcpi_bytes_received` arrived in Linux 4.1; an attribute too short for them yields nil, and the socket
/// is skipped (see `decodeSocket`).
private struct TCPInfoFields {
    private static let unackedOffset = MemoryLayout<clnl_tcp_info>.offset(of: \.tcpi_unacked)!
    private static let lastDataReceivedOffset = MemoryLayout<clnl_tcp_info>.offset(of: \.tcpi_last_data_recv)!
    private static let lastAckReceivedOffset = MemoryLayout<clnl_tcp_info>.offset(of: \.tcpi_last_ack_recv)!
    private static let bytesAckedOffset = MemoryLayout<clnl_tcp_info>.offset(of: \.tcpi_bytes_acked)!
    private static let bytesReceivedOffset = MemoryLayout<clnl_tcp_info>.offset(of: \.tcpi_bytes_received)!

    /// tcpi_unacked: segments sent and not yet acknowledged.
    var unacked: UInt32
    /// tcpi_last_data_recv, in milliseconds.
    var lastDataReceived: UInt32
    /// tcpi_last_ack_recv, in milliseconds.
    var lastAckReceived: UInt32
    /// tcpi_bytes_acked.
    var bytesAcked: UInt64
    /// tcpi_bytes_received.
    var bytesReceived: UInt64

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let unacked = Self.field(UInt32.self, at: Self.unackedOffset, in: bytes),
            let lastDataReceived = Self.field(UInt32.self, at: Self.lastDataReceivedOffset, in: bytes),
            let lastAckReceived = Self.field(UInt32.self, at: Self.lastAckReceivedOffset, in: bytes),
            let bytesAcked = Self.field(UInt64.self, at: Self.bytesAckedOffset, in: bytes),
            let bytesReceived = Self.field(UInt64.self, at: Self.bytesReceivedOffset, in: bytes)
        else { return nil }
        self.unacked = unacked
        self.lastDataReceived = lastDataReceived
        self.lastAckReceived = lastAckReceived
        self.bytesAcked = bytesAcked
        self.bytesReceived = bytesReceived
    }

    private static func field<T: FixedWidthInteger>(_: T.Type, at offset: Int, in bytes: UnsafeRawBufferPointer)
        -> T?
    {
        offset + MemoryLayout<T>.size <= bytes.count ? bytes.loadUnaligned(fromByteOffset: offset, as: T.self) : nil
    }
}
