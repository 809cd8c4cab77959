// rackd — read-only and writable views over an IPv4 header (RFC 791).
//
// The views wrap the bytes NFQUEUE hands over and never copy them. `init(validating:)` is the one
// place lengths are checked; once it has passed, no accessor can read outside the buffer (until a
// length field is changed through the mutable view).

/// The three flag bits of the IPv4 flags/fragment-offset field, shifted down to the low bits.
public struct IPv4Flags: OptionSet, Hashable, Sendable {
    /// The flag bits: reserved `0b100`, DF `0b010`, MF `0b001`.
    public var rawValue: UInt8

    /// Wraps flag bits; only the low three are used.
    public init(rawValue: UInt8) {
        self.rawValue = rawValue & 0b111
    }

    /// The reserved bit, which must be zero (RFC 791).
    public static let reserved = IPv4Flags(rawValue: 0b100)
    /// DF: routers must drop rather than fragment the packet.
    public static let dontFragment = IPv4Flags(rawValue: 0b010)
    /// MF: more fragments follow this one.
    public static let moreFragments = IPv4Flags(rawValue: 0b001)
}

private enum Field {
    static let versionAndHeaderLength = 0
    static let dscpAndECN = 1
    static let totalLength = 2
    static let identification = 4
    static let flagsAndFragmentOffset = 6
    static let timeToLive = 8
    static let `protocol` = 9
    static let headerChecksum = 10
    static let source = 12..<16
    static let destination = 16..<20
    static let options = 20
    static let minimumHeaderLength = 20
}

// MARK: - Read-only view

/// A read-only view of an IPv4 packet: header fields, options and payload, read in place.
///
/// The buffer may be longer than the packet (link-layer padding); ``payload`` ends at ``totalLength``.
public struct IPv4HeaderView {
    /// The bytes viewed: the IPv4 header first, then the payload, then possibly padding.
    public let bytes: UnsafeRawBufferPointer

    /// Wraps `bytes` without checking anything. Accessors may read past the end unless the caller knows
    /// the bytes form a valid header; use this only on buffers rackd filled itself.
    public init(unchecked bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after checking that the version is 4, the header length is at least 20 bytes and
    /// fits, and the total length covers the header and fits in the buffer.
    public init(validating bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.validate(bytes)
        self.bytes = bytes
    }

    static func validate(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Field.minimumHeaderLength else {
            throw .truncated("IPv4 header", needs: Field.minimumHeaderLength, has: bytes.count)
        }
        let version = bytes[Field.versionAndHeaderLength] >> 4
        guard version == 4 else {
            throw WireError(.badVersion, "IP version \(version) where 4 was expected")
        }
        let words = Int(bytes[Field.versionAndHeaderLength] & 0x0F)
        guard words >= 5 else {
            throw WireError(.badHeaderLength, "IPv4 header length \(words) words is below the minimum 5")
        }
        guard words * 4 <= bytes.count else {
            throw .truncated("IPv4 header of \(words) words", needs: words * 4, has: bytes.count)
        }
        let total = Int(bytes.loadBigEndian(fromByteOffset: Field.totalLength, as: UInt16.self))
        guard total >= words * 4 else {
            throw WireError(
                .badTotalLength, "IPv4 total length \(total) bytes is below the header length \(words * 4)")
        }
        guard total <= bytes.count else {
            throw .truncated("IPv4 packet of total length \(total)", needs: total, has: bytes.count)
        }
    }

    /// The IP version nibble; 4 for a validated view.
    public var version: UInt8 { bytes[Field.versionAndHeaderLength] >> 4 }

    /// The header length in 32-bit words (IHL), 5 to 15.
    public var internetHeaderLength: UInt8 { bytes[Field.versionAndHeaderLength] & 0x0F }

    /// The header length in bytes, options included.
    public var headerLength: Int { Int(internetHeaderLength) * 4 }

    /// The differentiated services code point: the top six bits of the old TOS byte.
    public var dscp: UInt8 { bytes[Field.dscpAndECN] >> 2 }

    /// The ECN codepoint: the low two bits of the old TOS byte.
    public var ecn: UInt8 { bytes[Field.dscpAndECN] & 0b11 }

    /// The length of header plus payload in bytes.
    public var totalLength: UInt16 { bytes.loadBigEndian(fromByteOffset: Field.totalLength, as: UInt16.self) }

    /// The identification used to reassemble fragments.
    public var identification: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.identification, as: UInt16.self)
    }

    /// The reserved, DF and MF bits.
    public var flags: IPv4Flags { IPv4Flags(rawValue: bytes[Field.flagsAndFragmentOffset] >> 5) }

    /// Where this fragment's data starts in the original datagram, in units of 8 bytes.
    public var fragmentOffset: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.flagsAndFragmentOffset, as: UInt16.self) & 0x1FFF
    }

    /// Whether this packet is a fragment (MF set or a non-zero offset) rather than a whole datagram.
    public var isFragment: Bool { flags.contains(.moreFragments) || fragmentOffset != 0 }

    /// The time to live.
    public var timeToLive: UInt8 { bytes[Field.timeToLive] }

    /// The protocol of the payload, e.g. ``IPProtocol/tcp``.
    public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes[Field.protocol]) }

    /// The header checksum as stored.
    public var headerChecksum: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.headerChecksum, as: UInt16.self)
    }

    /// The source address.
    public var source: IPv4Address { IPv4Address(bytes, at: Field.source.lowerBound) }

    /// The destination address.
    public var destination: IPv4Address { IPv4Address(bytes, at: Field.destination.lowerBound) }

    /// The option bytes between the fixed header and ``headerLength`` (often empty).
    public var options: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Field.options..<headerLength])
    }

    /// The payload: from the end of the header to ``totalLength``, excluding any trailing padding.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[headerLength..<Int(totalLength)])
    }

    /// Whether the header checksum is correct: the sum over the whole header, checksum included, is
    /// `0xFFFF`.
    public func verifyHeaderChecksum() -> Bool {
        let header = UnsafeRawBufferPointer(rebasing: bytes[0..<headerLength])
        return InternetChecksum.fold(InternetChecksum.sum(header)) == 0xFFFF
    }
}

// MARK: - Writable view

/// A writable view of an IPv4 packet, for rewriting packets in place and for filling new ones.
///
/// Every getter of ``IPv4HeaderView`` is here too, with a setter. Setters do not touch the header
/// checksum: call ``fillHeaderChecksum()`` after the last change (the header is at most 60 bytes).
public struct MutableIPv4HeaderView {
    /// The bytes viewed: the IPv4 header first, then the payload, then possibly padding.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Wraps `bytes` without checking anything, e.g. a buffer about to be filled with a new packet.
    public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after the checks of ``IPv4HeaderView/init(validating:)``.
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try IPv4HeaderView.validate(UnsafeRawBufferPointer(bytes))
        self.bytes = bytes
    }

    /// The same bytes, read-only.
    public var readOnly: IPv4HeaderView { IPv4HeaderView(unchecked: UnsafeRawBufferPointer(bytes)) }

    /// The IP version nibble.
    public var version: UInt8 {
        get { readOnly.version }
        nonmutating set { setNibble(high: true, at: Field.versionAndHeaderLength, to: newValue) }
    }

    /// The header length in 32-bit words (IHL); only the low four bits of a new value are stored.
    public var internetHeaderLength: UInt8 {
        get { readOnly.internetHeaderLength }
        nonmutating set { setNibble(high: false, at: Field.versionAndHeaderLength, to: newValue) }
    }

    /// The header length in bytes, options included.
    public var headerLength: Int { readOnly.headerLength }

    /// The differentiated services code point (six bits).
    public var dscp: UInt8 {
        get { readOnly.dscp }
        nonmutating set { bytes[Field.dscpAndECN] = newValue << 2 | bytes[Field.dscpAndECN] & 0b11 }
    }

    /// The ECN codepoint (two bits).
    public var ecn: UInt8 {
        get { readOnly.ecn }
        nonmutating set { bytes[Field.dscpAndECN] = bytes[Field.dscpAndECN] & ~0b11 | newValue & 0b11 }
    }

    /// The length of header plus payload in bytes.
    public var totalLength: UInt16 {
        get { readOnly.totalLength }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.totalLength) }
    }

    /// The identification used to reassemble fragments.
    public var identification: UInt16 {
        get { readOnly.identification }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.identification) }
    }

    /// The reserved, DF and MF bits.
    public var flags: IPv4Flags {
        get { readOnly.flags }
        nonmutating set {
            bytes[Field.flagsAndFragmentOffset] = newValue.rawValue << 5 | bytes[Field.flagsAndFragmentOffset] & 0x1F
        }
    }

    /// The fragment offset in units of 8 bytes; only the low 13 bits of a new value are stored.
    public var fragmentOffset: UInt16 {
        get { readOnly.fragmentOffset }
        nonmutating set {
            let flagBits = UInt16(bytes[Field.flagsAndFragmentOffset] & 0xE0) << 8
            bytes.storeBigEndian(flagBits | newValue & 0x1FFF, toByteOffset: Field.flagsAndFragmentOffset)
        }
    }

    /// The time to live.
    public var timeToLive: UInt8 {
        get { readOnly.timeToLive }
        nonmutating set { bytes[Field.timeToLive] = newValue }
    }

    /// The protocol of the payload.
    public var `protocol`: IPProtocol {
        get { readOnly.protocol }
        nonmutating set { bytes[Field.protocol] = newValue.rawValue }
    }

    /// The header checksum as stored.
    public var headerChecksum: UInt16 {
        get { readOnly.headerChecksum }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.headerChecksum) }
    }

    /// The source address.
    public var source: IPv4Address {
        get { readOnly.source }
        nonmutating set { newValue.store(into: bytes, at: Field.source.lowerBound) }
    }

    /// The destination address.
    public var destination: IPv4Address {
        get { readOnly.destination }
        nonmutating set { newValue.store(into: bytes, at: Field.destination.lowerBound) }
    }

    /// The option bytes between the fixed header and ``headerLength``, writable.
    public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[Field.options..<headerLength])
    }

    /// The payload, from the end of the header to ``totalLength``, writable.
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[headerLength..<Int(totalLength)])
    }

    /// Whether the header checksum is correct.
    public func verifyHeaderChecksum() -> Bool { readOnly.verifyHeaderChecksum() }

    /// Computes the header checksum over the current header and stores it.
    public func fillHeaderChecksum() {
        headerChecksum = 0
        let header = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(bytes)[0..<headerLength])
        headerChecksum = InternetChecksum.finish(InternetChecksum.sum(header))
    }

    private func setNibble(high: Bool, at offset: Int, to value: UInt8) {
        bytes[offset] = high ? (value << 4 | bytes[offset] & 0x0F) : (bytes[offset] & 0xF0 | value & 0x0F)
    }
}
