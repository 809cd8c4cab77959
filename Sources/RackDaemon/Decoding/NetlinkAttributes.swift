// rackd — the attributes that follow a netlink message's fixed header (netfilter's nlattr and
// rtnetlink's rtattr share one layout). Pure: bytes in, values out.
//
// Each attribute is a 4-byte header (length including the header, type) and its payload; the next one
// starts at the length rounded up to 4 bytes. The walk checks the length before every load and stops at
// the first attribute that claims fewer bytes than its header or more than are left; `isMalformed` then
// says so, and the decoders refuse the message.

import CLinuxNetlink

/// One netlink attribute: its type, without the nested and byte-order flags, and its payload.
public struct NetlinkAttribute {
    public var type: UInt16
    public var payload: UnsafeRawBufferPointer
    /// Where `payload` starts within the bytes walked.
    public var payloadOffset: Int

    /// The payload as a native-endian integer, if it is long enough.
    func integer<T: FixedWidthInteger>(as: T.Type) -> T? {
        payload.count >= MemoryLayout<T>.size ? payload.loadUnaligned(as: T.self) : nil
    }

    /// The payload as a big-endian (network order) integer, if it is exactly that long. Netfilter's
    /// attributes are; a longer or shorter one is malformed.
    public func bigEndianInteger<T: FixedWidthInteger>(as: T.Type) -> T? {
        payload.count == MemoryLayout<T>.size ? T(bigEndian: payload.loadUnaligned(as: T.self)) : nil
    }
}

/// The attributes after a message's fixed header, in order.
public struct NetlinkAttributes: Sequence, IteratorProtocol {
    private let bytes: UnsafeRawBufferPointer
    private var offset: Int
    /// Set once the walk has stopped at bytes that do not form an attribute.
    public private(set) var isMalformed = false

    /// The attributes of `payload` that start after its `fixedHeaderSize`-byte fixed part.
    public init(_ payload: UnsafeRawBufferPointer, after fixedHeaderSize: Int) {
        self.bytes = payload
        self.offset = netlinkAligned(fixedHeaderSize)
    }

    public mutating func next() -> NetlinkAttribute? {
        guard bytes.count - offset >= 4 else {
            if offset < bytes.count { isMalformed = true }
            return nil
        }
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        let type = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
        guard length >= 4, length <= bytes.count - offset else {
            isMalformed = true
            offset = bytes.count
            return nil
        }
        let attribute = NetlinkAttribute(
            type: type & CLNL_NLA_TYPE_MASK,
            payload: UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + length)]),
            payloadOffset: offset + 4)
        offset = Swift.min(bytes.count, offset + netlinkAligned(length))
        return attribute
    }
}
