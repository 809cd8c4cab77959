// rackd — a packet the kernel holds in NFQUEUE until rackd gives its verdict.

/// A queued packet and what the kernel told us about it. `bytes` points into the reader's receive
/// buffer and is valid only while the packet is being handled.
struct QueuedPacket {
    /// What the kernel said about the packet's checksum and segmentation.
    struct SKBInfo: OptionSet {
        let rawValue: UInt32
        /// The TCP checksum field holds only the pseudo-header sum (CHECKSUM_PARTIAL on output).
        static let checksumNotReady = SKBInfo(rawValue: 1 << 0)
        /// A GSO super-packet: larger than the MTU, segmented after the verdict.
        static let gso = SKBInfo(rawValue: 1 << 1)
        /// The checksum of an incoming packet was not verified by the device.
        static let checksumNotVerified = SKBInfo(rawValue: 1 << 2)
    }

    /// The netfilter hook the packet was queued from.
    enum Hook: Equatable {
        case localIn, localOut, other(UInt8)

        init(_ number: UInt8) {
            switch number {
            case 1: self = .localIn
            case 3: self = .localOut
            default: self = .other(number)
            }
        }
    }

    var id: UInt32
    var hook: Hook
    var mark: UInt32
    var skbInfo: SKBInfo
    var inputInterface: UInt32?
    var outputInterface: UInt32?
    /// The packet's length in the kernel; larger than `bytes.count` when the copy was truncated.
    var originalLength: Int
    /// The IP packet (no link-layer header), writable so that a rewrite can edit it in place.
    var bytes: UnsafeMutableRawBufferPointer

    var isTruncated: Bool { originalLength > bytes.count }
}

/// What to do with a queued packet. Every queued packet gets exactly one.
enum QueueVerdict: Equatable {
    /// Let it continue unchanged.
    case accept
    /// Let it continue with the bytes now in `QueuedPacket.bytes`, cut to `length`.
    case acceptModified(length: Int)
    /// Let it continue as these bytes instead (a packet that grew).
    case acceptReplacement([UInt8])
    /// Discard it.
    case drop
}
