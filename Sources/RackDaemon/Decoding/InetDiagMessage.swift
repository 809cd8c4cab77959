// rackd — one socket of an inet_diag dump (SOCK_DIAG_BY_FAMILY reply) as an engine snapshot. Pure: bytes
// in, values out.
//
// The message is an `inet_diag_msg` followed by INET_DIAG_* attributes; rackd reads INET_DIAG_INFO, the
// kernel's `struct tcp_info`. Sockets of IPv6 listeners that carry IPv4 connections (`::ffff:a.b.c.d`) are
// reported with IPv4 endpoints, as their packets are.
//
// The counters are the kernel's, passed on unchanged (measured on Linux 6.18): `bytesAcked` counts the
// SYN for the active opener only, and both `bytesAcked` and `bytesReceived` count a FIN once it is
// acknowledged or received. A socket that has never received an ACK (SYN_SENT) reports
// `lastAckReceived` as the time since jiffies began, a meaningless large value.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

extension SocketSnapshot {
    /// Decodes one SOCK_DIAG_BY_FAMILY message. Nil for another message type, a LISTEN socket, a family
    /// other than IPv4 and IPv6, a socket whose flow `including` refuses, one without a usable `tcp_info`,
    /// and a message too short for its header or with a malformed or cut attribute.
    public init?(decoding message: NetlinkMessage, including: (FlowKey) -> Bool = { _ in true }) {
        let payload = message.payload
        let fixedSize = MemoryLayout<inet_diag_msg>.size
        guard message.type == UInt16(SOCK_DIAG_BY_FAMILY), payload.count >= fixedSize else { return nil }
        let header = payload.loadUnaligned(as: inet_diag_msg.self)
        guard let state = SocketSnapshot.State(rawValue: header.idiag_state), state != .listen,
            let localAddress = Self.address(family: header.idiag_family, header.id.idiag_src),
            let remoteAddress = Self.address(family: header.idiag_family, header.id.idiag_dst)
        else { return nil }
        let flow = FlowKey(
            local: TCPEndpoint(address: localAddress, port: UInt16(bigEndian: header.id.idiag_sport)),
            remote: TCPEndpoint(address: remoteAddress, port: UInt16(bigEndian: header.id.idiag_dport)))
        guard including(flow) else { return nil }

        var info: TCPInfoFields?
        var attributes = NetlinkAttributes(payload, after: fixedSize)
        while let attribute = attributes.next() {
            if attribute.type == UInt16(INET_DIAG_INFO) { info = TCPInfoFields(attribute.payload) }
        }
        // A socket without the counters is skipped rather than reported with zeros: the engine derives
        // sequence numbers from bytesAcked and bytesReceived, and a zero would read as "nothing sent yet".
        guard let info, !attributes.isMalformed else { return nil }
        self.init(
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
/// is skipped.
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
