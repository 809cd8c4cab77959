// rackd — an IPv4 address as a value.

/// An IPv4 address: four bytes, stored as the 32-bit number they spell in network order.
public struct IPv4Address: Hashable, Sendable, CustomStringConvertible, Codable {
    /// The address as a number: `10.0.0.1` is `0x0A00_0001`.
    public var rawValue: UInt32

    /// Wraps the number an address spells in network order.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// The address `a.b.c.d`.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        self.rawValue = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Reads the four address bytes that start `offset` bytes into `bytes`.
    init(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        self.rawValue = bytes.loadBigEndian(fromByteOffset: offset, as: UInt32.self)
    }

    /// Writes the four address bytes `offset` bytes into `bytes`.
    func store(into bytes: UnsafeMutableRawBufferPointer, at offset: Int) {
        bytes.storeBigEndian(rawValue, toByteOffset: offset)
    }

    /// The four bytes in wire order.
    public var bytes: [UInt8] {
        [
            UInt8(truncatingIfNeeded: rawValue >> 24), UInt8(truncatingIfNeeded: rawValue >> 16),
            UInt8(truncatingIfNeeded: rawValue >> 8), UInt8(truncatingIfNeeded: rawValue),
        ]
    }

    /// Dotted-quad form, e.g. "10.0.0.1".
    public var description: String {
        bytes.map(String.init).joined(separator: ".")
    }
}
