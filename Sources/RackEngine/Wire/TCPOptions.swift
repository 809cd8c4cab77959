// rackd — decoding and encoding the TCP option area.
//
// The decoder is an iterator over the bytes in place, so looking for one option allocates nothing and
// stops early. Any impossible length throws: a peer controls these bytes, and a wrong length must
// never make rackd read past the header.

/// Walks the option bytes of a TCP header and decodes one option per call, without allocating.
///
/// ```swift
/// var iterator = tcp.makeOptionIterator()
/// while let option = try iterator.next() { … }
/// ```
///
/// Throws ``WireError/Kind/badOption`` for a length below 2, a length that runs past the option area,
/// a wrong length for MSS (4), window scale (3), SACK permitted (2) or timestamps (10), a SACK length
/// that is not 2 + 8n with 1 ≤ n ≤ 4, or an experimental option too short for its ExID. After an
/// error, or after ``TCPOption/endOfList``, it returns nil.
public struct TCPOptionIterator {
    private let bytes: UnsafeRawBufferPointer
    private var offset = 0
    private var finished = false

    /// An iterator over `options`, the bytes between the fixed TCP header and the data offset.
    public init(_ options: UnsafeRawBufferPointer) {
        self.bytes = options
    }

    /// The next option, or nil at the end of the option area or after an end-of-list option.
    public mutating func next() throws(WireError) -> TCPOption? {
        try nextWithOffset()?.option
    }

    /// The next option and the offset of its kind byte within the option area, so a caller can find
    /// its fields again to change them in place.
    public mutating func nextWithOffset() throws(WireError) -> (option: TCPOption, offset: Int)? {
        guard !finished, offset < bytes.count else { return nil }
        let start = offset
        do {
            let option = try decodeOption(at: start)
            return (option, start)
        } catch {
            finished = true
            throw error
        }
    }

    private mutating func decodeOption(at start: Int) throws(WireError) -> TCPOption {
        let kind = TCPOptionKind(rawValue: bytes[start])
        switch kind {
        case .endOfList:
            finished = true
            return .endOfList
        case .noOperation:
            offset += 1
            return .noOperation
        default:
            break
        }

        guard bytes.count - start >= 2 else {
            throw .badOption("TCP option kind \(kind) at offset \(start) has no length byte")
        }
        let length = Int(bytes[start + 1])
        guard length >= 2 else {
            throw .badOption("TCP option kind \(kind) at offset \(start) has length \(length), below the minimum 2")
        }
        guard length <= bytes.count - start else {
            throw .badOption(
                "TCP option kind \(kind) at offset \(start) has length \(length) but only \(bytes.count - start) "
                    + "bytes of options remain")
        }
        guard length <= TCPOptions.maximumLength else {
            throw .badOption(
                "TCP option kind \(kind) at offset \(start) has length \(length), above the "
                    + "\(TCPOptions.maximumLength) bytes a TCP header can hold")
        }
        offset = start + length
        let data = UnsafeRawBufferPointer(rebasing: bytes[(start + 2)..<(start + length)])

        func expectLength(_ expected: Int, _ name: String) throws(WireError) {
            guard length == expected else {
                throw .badOption("TCP \(name) option at offset \(start) has length \(length) instead of \(expected)")
            }
        }

        switch kind {
        case .maximumSegmentSize:
            try expectLength(4, "MSS")
            return .maximumSegmentSize(data.loadBigEndian(fromByteOffset: 0, as: UInt16.self))
        case .windowScale:
            try expectLength(3, "window scale")
            return .windowScale(data[0])
        case .sackPermitted:
            try expectLength(2, "SACK-permitted")
            return .sackPermitted
        case .sack:
            // 40-byte cap above already limits a SACK to 4 blocks.
            guard length >= 10, (length - 2) % 8 == 0 else {
                throw .badOption("TCP SACK option at offset \(start) has length \(length), not 2 + 8n with n ≥ 1")
            }
            return .sack(SACKBlocks(wire: TCPOptionData(copying: data)))
        case .timestamps:
            try expectLength(10, "timestamps")
            return .timestamps(
                value: data.loadBigEndian(fromByteOffset: 0, as: UInt32.self),
                echo: data.loadBigEndian(fromByteOffset: 4, as: UInt32.self))
        case .experiment1, .experiment2:
            guard length >= 4 else {
                throw .badOption(
                    "TCP experimental option kind \(kind) at offset \(start) has length \(length), "
                        + "too short for its 16-bit ExID (minimum 4)")
            }
            return .experimental(
                kind: kind,
                exid: data.loadBigEndian(fromByteOffset: 0, as: UInt16.self),
                data: TCPOptionData(copying: UnsafeRawBufferPointer(rebasing: data[2...])))
        default:
            return .unknown(kind: kind, data: TCPOptionData(copying: data))
        }
    }
}

/// Where the SACK blocks of a segment sit within its option area.
public struct SACKBlockLocation: Hashable, Sendable {
    /// The offset of the first block's left edge from the start of the option area.
    public var offset: Int
    /// The number of blocks; each is 8 bytes (left edge, right edge).
    public var count: Int

    /// `count` blocks starting `offset` bytes into the option area.
    public init(offset: Int, count: Int) {
        self.offset = offset
        self.count = count
    }
}

/// Whole-option-area operations: decoding to an array, encoding a list, and locating fields in place.
public enum TCPOptions {
    /// The most bytes of options a TCP header can carry: a data offset of 15 words minus the fixed 20 bytes.
    public static let maximumLength = 40

    /// Decodes every option up to the end of the area or an end-of-list option. Allocates; prefer
    /// ``TCPOptionIterator`` on the packet path.
    public static func decode(_ options: UnsafeRawBufferPointer) throws(WireError) -> [TCPOption] {
        var iterator = TCPOptionIterator(options)
        var decoded: [TCPOption] = []
        while let option = try iterator.next() {
            decoded.append(option)
        }
        return decoded
    }

    /// One option's bytes, unpadded: for inserting it among options already on the wire.
    public static func bytes(of option: TCPOption) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: encodedLength(of: [option]))
        let written = buffer.withUnsafeMutableBytes { raw -> Bool in
            (try? encode([option], into: raw)) != nil
        }
        return written ? Array(buffer.prefix(option.encodedLength)) : []
    }

    /// The bytes `options` take once encoded and padded to a multiple of 4.
    public static func encodedLength(of options: [TCPOption]) -> Int {
        let unpadded = options.reduce(0) { $0 + $1.encodedLength }
        return (unpadded + 3) & ~3
    }

    /// Writes `options` in order, then zero bytes (end-of-list) up to a multiple of 4; returns the
    /// bytes written, which is ``encodedLength(of:)``.
    ///
    /// Throws ``WireError/Kind/badOption`` if the result exceeds ``maximumLength`` or a SACK option has
    /// no blocks, and ``WireError/Kind/bufferTooSmall`` if `buffer` cannot hold it. Alignment is the
    /// caller's choice: put ``TCPOption/noOperation`` where the usual layouts have it.
    @discardableResult
    public static func encode(
        _ options: [TCPOption],
        into buffer: UnsafeMutableRawBufferPointer
    ) throws(WireError) -> Int {
        let length = encodedLength(of: options)
        guard length <= maximumLength else {
            throw .badOption("TCP options need \(length) bytes, above the maximum \(maximumLength)")
        }
        guard length <= buffer.count else {
            throw WireError(.bufferTooSmall, "TCP options need \(length) bytes but the buffer holds \(buffer.count)")
        }
        var offset = 0
        for option in options {
            try encode(option, into: buffer, at: offset)
            offset += option.encodedLength
        }
        for index in offset..<length {
            buffer[index] = TCPOptionKind.endOfList.rawValue
        }
        return length
    }

    private static func encode(
        _ option: TCPOption,
        into buffer: UnsafeMutableRawBufferPointer,
        at offset: Int
    ) throws(WireError) {
        buffer[offset] = option.kind.rawValue
        switch option {
        case .endOfList, .noOperation:
            return
        default:
            buffer[offset + 1] = UInt8(option.encodedLength)
        }
        let data = UnsafeMutableRawBufferPointer(rebasing: buffer[(offset + 2)..<(offset + option.encodedLength)])
        switch option {
        case .endOfList, .noOperation, .sackPermitted:
            break
        case .maximumSegmentSize(let size):
            data.storeBigEndian(size, toByteOffset: 0)
        case .windowScale(let shift):
            data[0] = shift
        case .sack(let blocks):
            guard !blocks.isEmpty else { throw .badOption("a TCP SACK option needs at least one block") }
            for (index, block) in blocks.enumerated() {
                data.storeBigEndian(block.left.rawValue, toByteOffset: index * 8)
                data.storeBigEndian(block.right.rawValue, toByteOffset: index * 8 + 4)
            }
        case .timestamps(let value, let echo):
            data.storeBigEndian(value, toByteOffset: 0)
            data.storeBigEndian(echo, toByteOffset: 4)
        case .experimental(_, let exid, let bytes):
            data.storeBigEndian(exid, toByteOffset: 0)
            bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: data[2...]).copyMemory(from: $0) }
        case .unknown(_, let bytes):
            bytes.withUnsafeBytes { data.copyMemory(from: $0) }
        }
    }

    /// Finds the SACK blocks in an option area, checking every option on the way; nil if there is no
    /// SACK option. A rewrite uses this to shift the blocks in place through ``MutableTCPHeaderView``.
    public static func locateSACKBlocks(in options: UnsafeRawBufferPointer) throws(WireError) -> SACKBlockLocation? {
        var iterator = TCPOptionIterator(options)
        var location: SACKBlockLocation? = nil
        while let next = try iterator.nextWithOffset() {
            if case .sack(let blocks) = next.option, location == nil {
                location = SACKBlockLocation(offset: next.offset + 2, count: blocks.count)
            }
        }
        return location
    }
}
