// rackd — the messages of one netlink datagram, for every family rackd reads (netfilter, sock_diag,
// rtnetlink). Pure: bytes in, values out.
//
// Each message is a 16-byte `nlmsghdr` (length, type, flags, sequence, port id) and its payload; the next
// one starts at the length rounded up to 4 bytes. The walk checks the length before every load and stops at
// the first header that claims fewer bytes than a header or more than are left, so truncated or malformed
// input ends the walk early, never in a trap; `isMalformed` then says so.

#if canImport(Glibc)
import Glibc
#endif
import CLinuxNetlink

/// One netlink message within a datagram.
public struct NetlinkMessage {
    /// The size of `nlmsghdr`.
    public static let headerSize = 16

    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    /// The sender's port id in a reply or notification (0 for the kernel), the requester's in a dump reply.
    public var portID: UInt32
    /// Everything after the 16-byte header, up to the message's length.
    public var payload: UnsafeRawBufferPointer
    /// Where `payload` starts within the bytes walked.
    public var payloadOffset: Int

    /// For an `NLMSG_ERROR` message: 0 for an acknowledgment, otherwise a negative errno. Nil for other
    /// messages, and for an error message too short to carry its code. A code no errno can be (positive,
    /// or past -4095, the kernel's MAX_ERRNO) reads as -EPROTO, so that every caller may negate it.
    public var errorCode: Int32? {
        guard type == UInt16(NLMSG_ERROR), payload.count >= 4 else { return nil }
        let code = payload.loadUnaligned(as: Int32.self)
        return code <= 0 && code >= -Self.maximumErrno ? code : -EPROTO
    }

    /// The largest errno the kernel returns (include/linux/err.h, MAX_ERRNO).
    static let maximumErrno: Int32 = 4095
}

/// The messages of one datagram (or of datagrams laid end to end), in order.
public struct NetlinkMessages: Sequence, IteratorProtocol {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    /// Set once the walk has stopped at bytes that do not form a message.
    public private(set) var isMalformed = false

    public init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    public mutating func next() -> NetlinkMessage? {
        let headerSize = NetlinkMessage.headerSize
        guard bytes.count - offset >= headerSize else {
            if offset < bytes.count { isMalformed = true }
            return nil
        }
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        guard length >= headerSize, length <= bytes.count - offset else {
            isMalformed = true
            offset = bytes.count
            return nil
        }
        let payloadStart = offset + headerSize
        let message = NetlinkMessage(
            type: bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
            flags: bytes.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self),
            sequence: bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
            portID: bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self),
            payload: UnsafeRawBufferPointer(rebasing: bytes[payloadStart..<(offset + length)]),
            payloadOffset: payloadStart)
        offset = Swift.min(bytes.count, offset + netlinkAligned(length))
        return message
    }
}

/// Rounds up to netlink's 4-byte alignment (NLMSG_ALIGN, RTA_ALIGN, NLA_ALIGN).
func netlinkAligned(_ length: Int) -> Int {
    (length + 3) & ~3
}
