// rackd — up to 38 bytes held inline, for the data of a decoded TCP option.
//
// A `[UInt8]` would cost a heap allocation for every experimental or unknown option decoded, and rackd
// decodes one (its own detection option) in every SYN it sees.

/// The data bytes of a TCP option, up to 38 (a 40-byte option area minus kind and length), held inline.
///
/// Unused storage is always zero, so equality and hashing can compare the storage directly.
public struct TCPOptionData: RandomAccessCollection, Hashable, Sendable, CustomStringConvertible {
    /// The most bytes an option's data can hold.
    public static let capacity = 38

    private var storage: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
    private var length: UInt8 = 0

    /// No bytes.
    public init() {}

    /// The given bytes, or nil if there are more than ``capacity``.
    public init?(_ bytes: some Sequence<UInt8>) {
        for byte in bytes {
            guard count < Self.capacity else { return nil }
            append(byte)
        }
    }

    /// A copy of `bytes`; the caller has checked `bytes.count <= capacity`.
    init(copying bytes: UnsafeRawBufferPointer) {
        Swift.withUnsafeMutableBytes(of: &storage) { storage in
            storage.copyMemory(from: bytes)
        }
        length = UInt8(bytes.count)
    }

    /// Appends one byte; the caller has checked there is room.
    mutating func append(_ byte: UInt8) {
        let index = Int(length)
        Swift.withUnsafeMutableBytes(of: &storage) { $0[index] = byte }
        length += 1
    }

    /// Appends a 32-bit number in network order; the caller has checked there is room.
    mutating func appendBigEndian(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) {
            append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }

    /// The index of the first byte.
    public var startIndex: Int { 0 }

    /// One past the index of the last byte.
    public var endIndex: Int { Int(length) }

    /// The byte at `position`.
    public subscript(position: Int) -> UInt8 {
        precondition(position >= 0 && position < count, "TCPOptionData index \(position) out of range 0..<\(count)")
        return Swift.withUnsafeBytes(of: storage) { $0[position] }
    }

    /// Calls `body` with the bytes, without copying them.
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try Swift.withUnsafeBytes(of: storage) { storage in
            try body(UnsafeRawBufferPointer(rebasing: storage[0..<Int(length)]))
        }
    }

    /// Whether both hold the same bytes.
    public static func == (lhs: TCPOptionData, rhs: TCPOptionData) -> Bool {
        lhs.length == rhs.length && lhs.storage.0 == rhs.storage.0 && lhs.storage.1 == rhs.storage.1
            && lhs.storage.2 == rhs.storage.2 && lhs.storage.3 == rhs.storage.3 && lhs.storage.4 == rhs.storage.4
    }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(length)
        hasher.combine(storage.0)
        hasher.combine(storage.1)
        hasher.combine(storage.2)
        hasher.combine(storage.3)
        hasher.combine(storage.4)
    }

    /// The bytes in hex, e.g. "52 41 01 02".
    public var description: String {
        map { byte in (byte < 0x10 ? "0" : "") + String(byte, radix: 16) }.joined(separator: " ")
    }
}

/// Persisted as its bytes (Persistence/): the inline storage is an implementation detail.
extension TCPOptionData: Codable {
    public init(from decoder: any Decoder) throws {
        let bytes = try [UInt8](from: decoder)
        guard let data = TCPOptionData(bytes) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "\(bytes.count) bytes of option data; at most \(Self.capacity)"))
        }
        self = data
    }

    public func encode(to encoder: any Encoder) throws {
        try Array(self).encode(to: encoder)
    }
}
