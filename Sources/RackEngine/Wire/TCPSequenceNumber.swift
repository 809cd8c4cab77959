// rackd — TCP sequence numbers and the offsets between two sequence spaces.
//
// Sequence numbers live on a circle of 2^32 values, so ordinary integer comparison is wrong near the
// wrap. After a reconnect rackd maps one connection's sequence space onto another's with a constant
// offset; making that offset its own type keeps it from being passed where a sequence number belongs.

/// A TCP sequence or acknowledgment number: a point on the circle of 2³² values (RFC 9293 §3.4).
///
/// Arithmetic wraps. Ordering compares the signed 32-bit difference, so `0xFFFF_FFF0 < 0x10`. That
/// ordering is only meaningful between numbers less than 2³¹ apart, which TCP's window rules guarantee
/// for numbers in flight; it is not a total order over all values.
public struct TCPSequenceNumber: Hashable, Comparable, CustomStringConvertible, Sendable, Codable {
    /// The number as it appears on the wire.
    public var rawValue: UInt32

    /// Wraps a number as read from the wire.
    public init(_ rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The number `rhs` bytes after `lhs`, wrapping past 2³² − 1.
    public static func + (lhs: TCPSequenceNumber, rhs: UInt32) -> TCPSequenceNumber {
        TCPSequenceNumber(lhs.rawValue &+ rhs)
    }

    /// The number `rhs` bytes before `lhs`, wrapping below 0 (e.g. a keepalive's
    /// `sendNext - 1`).
    public static func - (lhs: TCPSequenceNumber, rhs: UInt32) -> TCPSequenceNumber {
        TCPSequenceNumber(lhs.rawValue &- rhs)
    }

    /// Advances `lhs` by `rhs` bytes, wrapping.
    public static func += (lhs: inout TCPSequenceNumber, rhs: UInt32) {
        lhs = lhs + rhs
    }

    /// The signed distance from `rhs` to `lhs`: positive when `lhs` is after `rhs`.
    public static func - (lhs: TCPSequenceNumber, rhs: TCPSequenceNumber) -> Int32 {
        Int32(bitPattern: lhs.rawValue &- rhs.rawValue)
    }

    /// Whether `lhs` comes before `rhs` on the circle (their signed difference is negative).
    public static func < (lhs: TCPSequenceNumber, rhs: TCPSequenceNumber) -> Bool {
        lhs - rhs < 0
    }

    /// This number moved into another sequence space by `offset`.
    public func shifted(by offset: TCPSequenceOffset) -> TCPSequenceNumber {
        TCPSequenceNumber(rawValue &+ offset.rawValue)
    }

    /// The decimal value, as tcpdump prints absolute sequence numbers.
    public var description: String { String(rawValue) }
}

/// The constant that maps one sequence space onto another: `a.shifted(by: offset) == b`.
///
/// A separate type from ``TCPSequenceNumber`` so the compiler rejects adding an offset where a
/// sequence number is expected, and vice versa. Offsets wrap, so every offset has an inverse.
public struct TCPSequenceOffset: Hashable, CustomStringConvertible, Sendable, Codable {
    /// The offset as an unsigned 32-bit delta, wrapping.
    public var rawValue: UInt32

    /// Wraps a raw 32-bit delta.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The offset that maps `source` onto `destination`.
    public init(from source: TCPSequenceNumber, to destination: TCPSequenceNumber) {
        self.rawValue = destination.rawValue &- source.rawValue
    }

    /// The offset that leaves every sequence number where it is.
    public static let zero = TCPSequenceOffset(rawValue: 0)

    /// The offset that undoes this one: `n.shifted(by: o).shifted(by: o.inverse) == n`.
    public var inverse: TCPSequenceOffset {
        TCPSequenceOffset(rawValue: 0 &- rawValue)
    }

    /// The delta as a signed number, e.g. "-16" or "+1000".
    public var description: String {
        let signed = Int32(bitPattern: rawValue)
        return signed < 0 ? String(signed) : "+\(signed)"
    }
}
