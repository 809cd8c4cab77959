// rackd — an IPv6 address as a value, printed the RFC 5952 way.

/// An IPv6 address: sixteen bytes, stored as two 64-bit halves in network order.
public struct IPv6Address: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The first eight bytes as a number: `2001:db8::1` has `high == 0x2001_0db8_0000_0000`.
    public var high: UInt64
    /// The last eight bytes as a number: `2001:db8::1` has `low == 1`.
    public var low: UInt64

    /// The address whose two halves spell these numbers in network order.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Reads the sixteen address bytes that start `offset` bytes into `bytes`.
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.high = bytes.loadBigEndian(fromByteOffset: offset, as: UInt64.self)
        self.low = bytes.loadBigEndian(fromByteOffset: offset + 8, as: UInt64.self)
    }

    /// Writes the sixteen address bytes `offset` bytes into `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(high, toByteOffset: offset)
        bytes.storeBigEndian(low, toByteOffset: offset + 8)
    }

    /// The eight 16-bit groups, first to last.
    public var groups: [UInt16] {
        (0..<8).map { index in
            let half = index < 4 ? high : low
            return UInt16(truncatingIfNeeded: half >> (16 * (3 - index % 4)))
        }
    }

    /// The sixteen bytes in wire order.
    public var bytes: [UInt8] {
        groups.flatMap { [UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0)] }
    }

    /// The RFC 5952 text form: lowercase hex without leading zeros, the longest run of two or more zero
    /// groups (the first, on a tie) written as "::", and IPv4-mapped addresses as "::ffff:a.b.c.d".
    public var description: String {
        let groups = self.groups
        if high == 0, low >> 32 == 0xFFFF {
            return "::ffff:" + IPv4Address(rawValue: UInt32(truncatingIfNeeded: low)).description
        }

        // Find the longest run of zero groups; RFC 5952 §4.2.2 forbids "::" for a single group.
        var best = 0..<0
        var start: Int? = nil
        for index in 0...8 {
            if index < 8, groups[index] == 0 {
                if start == nil { start = index }
            } else if let runStart = start {
                if index - runStart > best.count { best = runStart..<index }
                start = nil
            }
        }

        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard best.count >= 2 else { return hex(0..<8) }
        return hex(0..<best.lowerBound) + "::" + hex(best.upperBound..<8)
    }
}
