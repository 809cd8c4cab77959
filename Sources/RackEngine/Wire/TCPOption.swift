// rackd — decoded TCP options, and the small inline containers that let decoding skip the heap.
//
// Options are decoded for every queued SYN and many other segments, so a decoded option holds its
// bytes inline: the whole option area of a TCP header is at most 40 bytes.

/// A TCP option kind number, with Swift names for the ones rackd meets (IANA "TCP Option Kind Numbers").
public struct TCPOptionKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible, Codable {
    /// The kind byte as on the wire.
    public var rawValue: UInt8

    /// Wraps a kind byte.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    /// End of option list (0).
    public static let endOfList = TCPOptionKind(rawValue: 0)
    /// No-operation, used for alignment (1).
    public static let noOperation = TCPOptionKind(rawValue: 1)
    /// Maximum segment size (2).
    public static let maximumSegmentSize = TCPOptionKind(rawValue: 2)
    /// Window scale (3, RFC 7323).
    public static let windowScale = TCPOptionKind(rawValue: 3)
    /// SACK permitted (4, RFC 2018).
    public static let sackPermitted = TCPOptionKind(rawValue: 4)
    /// SACK blocks (5, RFC 2018).
    public static let sack = TCPOptionKind(rawValue: 5)
    /// Timestamps (8, RFC 7323).
    public static let timestamps = TCPOptionKind(rawValue: 8)
    /// TCP MD5 signature (19, RFC 2385); connections using it cannot be rewritten.
    public static let md5Signature = TCPOptionKind(rawValue: 19)
    /// TCP authentication option (29, RFC 5925); connections using it cannot be rewritten.
    public static let authentication = TCPOptionKind(rawValue: 29)
    /// RFC 3692-style experiment 1 (253), shared through a 16-bit ExID (RFC 6994).
    public static let experiment1 = TCPOptionKind(rawValue: 253)
    /// RFC 3692-style experiment 2 (254), shared through a 16-bit ExID (RFC 6994).
    public static let experiment2 = TCPOptionKind(rawValue: 254)

    /// The decimal kind number.
    public var description: String { String(rawValue) }
}

/// One decoded TCP option.
///
/// Decoding keeps every option, known or not, so the options of a segment can be re-encoded exactly.
public enum TCPOption: Hashable, Sendable, Codable {
    /// End of option list (kind 0); the bytes after it are padding.
    case endOfList
    /// No-operation (kind 1), used to align the next option.
    case noOperation
    /// The largest segment the sender will accept (kind 2, SYN only).
    case maximumSegmentSize(UInt16)
    /// The sender's window scale shift count (kind 3, SYN only).
    case windowScale(UInt8)
    /// The sender accepts SACK blocks (kind 4, SYN only).
    case sackPermitted
    /// Blocks of data received out of order (kind 5), one to four.
    case sack(SACKBlocks)
    /// Timestamp value and echo reply (kind 8).
    case timestamps(value: UInt32, echo: UInt32)
    /// An experimental option (kind 253 or 254) identified by a 16-bit ExID (RFC 6994); rackd's own
    /// option is one of these.
    case experimental(kind: TCPOptionKind = .experiment1, exid: UInt16, data: TCPOptionData)
    /// Any other option, kept as kind and data bytes (e.g. MD5, TCP-AO, Multipath TCP).
    case unknown(kind: TCPOptionKind, data: TCPOptionData)

    /// The option's kind number.
    public var kind: TCPOptionKind {
        switch self {
        case .endOfList: .endOfList
        case .noOperation: .noOperation
        case .maximumSegmentSize: .maximumSegmentSize
        case .windowScale: .windowScale
        case .sackPermitted: .sackPermitted
        case .sack: .sack
        case .timestamps: .timestamps
        case .experimental(let kind, _, _): kind
        case .unknown(let kind, _): kind
        }
    }

    /// The option's length on the wire, kind byte included.
    public var encodedLength: Int {
        switch self {
        case .endOfList, .noOperation: 1
        case .maximumSegmentSize: 4
        case .windowScale: 3
        case .sackPermitted: 2
        case .sack(let blocks): 2 + 8 * blocks.count
        case .timestamps: 10
        case .experimental(_, _, let data): 4 + data.count
        case .unknown(_, let data): 2 + data.count
        }
    }
}

/// One SACK block: the sequence numbers of the first byte received and of the byte after the last.
public struct SACKBlock: Hashable, Sendable, Codable {
    /// The first sequence number of the block.
    public var left: TCPSequenceNumber
    /// The sequence number after the last byte of the block.
    public var right: TCPSequenceNumber

    /// The block from `left` up to (not including) `right`.
    public init(left: TCPSequenceNumber, right: TCPSequenceNumber) {
        self.left = left
        self.right = right
    }
}

/// The one to four blocks of a SACK option, held inline.
public struct SACKBlocks: RandomAccessCollection, Hashable, Sendable, Codable {
    /// The most blocks one option can carry in a 40-byte option area: (40 − 2) / 8.
    public static let capacity = 4

    /// The blocks as on the wire, 8 bytes each.
    private var wire: TCPOptionData

    /// The given blocks, or nil if there are more than ``capacity``.
    public init?(_ blocks: some Sequence<SACKBlock>) {
        var wire = TCPOptionData()
        for block in blocks {
            guard wire.count + 8 <= Self.capacity * 8 else { return nil }
            wire.appendBigEndian(block.left.rawValue)
            wire.appendBigEndian(block.right.rawValue)
        }
        self.wire = wire
    }

    /// Wraps the data bytes of a SACK option; the caller has checked the count is 8n, n ≤ 4.
    init(wire: TCPOptionData) {
        self.wire = wire
    }

    /// The index of the first block.
    public var startIndex: Int { 0 }

    /// One past the index of the last block.
    public var endIndex: Int { wire.count / 8 }

    /// The block at `position`.
    public subscript(position: Int) -> SACKBlock {
        wire.withUnsafeBytes { bytes in
            SACKBlock(
                left: TCPSequenceNumber(bytes.loadBigEndian(fromByteOffset: position * 8, as: UInt32.self)),
                right: TCPSequenceNumber(bytes.loadBigEndian(fromByteOffset: position * 8 + 4, as: UInt32.self)))
        }
    }
}
