// rackd — read-only and writable views over an IPv6 header (RFC 8200), and the walk over extension
// headers to the upper layer.
//
// As with IPv4, `init(validating:)` is the one place lengths are checked. The extension-header walk
// checks its own bounds, because each extension header carries its own length.

private enum Field {
    static let versionClassAndFlow = 0
    static let payloadLength = 4
    static let nextHeader = 6
    static let hopLimit = 7
    static let source = 8..<24
    static let destination = 24..<40
    static let headerLength = 40
}

/// Where the upper-layer header of an IPv6 packet starts, after any extension headers.
public struct IPv6UpperLayer: Hashable, Sendable {
    /// The upper-layer protocol, e.g. ``IPProtocol/tcp``.
    public var `protocol`: IPProtocol
    /// The offset of the upper-layer header from the start of the IPv6 header.
    public var offset: Int

    /// The upper layer `protocol`, starting `offset` bytes into the packet.
    public init(protocol: IPProtocol, offset: Int) {
        self.protocol = `protocol`
        self.offset = offset
    }
}

// MARK: - Read-only view

/// A read-only view of an IPv6 packet: the fixed header, and the payload it announces.
///
/// The buffer may be longer than the packet; ``payload`` ends where ``payloadLength`` says.
public struct IPv6HeaderView {
    /// The fixed header's length in bytes.
    public static let headerLength = Field.headerLength

    /// The bytes viewed: the fixed header, then the payload (extension headers included).
    public let bytes: UnsafeRawBufferPointer

    /// Wraps `bytes` without checking anything; use this only on buffers rackd filled itself.
    public init(unchecked bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after checking that the fixed header fits, the version is 6 and the payload
    /// length fits in the buffer.
    ///
    /// Jumbograms (payload length 0 with a Jumbo Payload option) are not supported: they look like a
    /// packet with an empty payload, whose upper layer then fails its own length check.
    public init(validating bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.validate(bytes)
        self.bytes = bytes
    }

    static func validate(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Field.headerLength else {
            throw .truncated("IPv6 header", needs: Field.headerLength, has: bytes.count)
        }
        let version = bytes[Field.versionClassAndFlow] >> 4
        guard version == 6 else {
            throw WireError(.badVersion, "IP version \(version) where 6 was expected")
        }
        let total = Field.headerLength + Int(bytes.loadBigEndian(fromByteOffset: Field.payloadLength, as: UInt16.self))
        guard total <= bytes.count else {
            throw .truncated(
                "IPv6 packet of payload length \(total - Field.headerLength)", needs: total, has: bytes.count)
        }
    }

    private var firstWord: UInt32 {
        bytes.loadBigEndian(fromByteOffset: Field.versionClassAndFlow, as: UInt32.self)
    }

    /// The IP version nibble; 6 for a validated view.
    public var version: UInt8 { bytes[Field.versionClassAndFlow] >> 4 }

    /// The traffic class: DSCP in the top six bits, ECN in the low two.
    public var trafficClass: UInt8 { UInt8(truncatingIfNeeded: firstWord >> 20) }

    /// The 20-bit flow label.
    public var flowLabel: UInt32 { firstWord & 0xF_FFFF }

    /// The length of everything after the fixed header, extension headers included.
    public var payloadLength: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.payloadLength, as: UInt16.self)
    }

    /// The type of the first header after the fixed header: an extension header or the upper layer.
    public var nextHeader: IPProtocol { IPProtocol(rawValue: bytes[Field.nextHeader]) }

    /// The hop limit.
    public var hopLimit: UInt8 { bytes[Field.hopLimit] }

    /// The source address.
    public var source: IPv6Address { IPv6Address(bytes, at: Field.source.lowerBound) }

    /// The destination address.
    public var destination: IPv6Address { IPv6Address(bytes, at: Field.destination.lowerBound) }

    /// The payload: extension headers and upper layer, excluding any trailing bytes.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Field.headerLength..<Field.headerLength + Int(payloadLength)])
    }

    /// Walks the Hop-by-Hop, Routing and Destination Options extension headers to the upper layer.
    ///
    /// Throws ``WireError/Kind/fragmented`` at a Fragment header (rackd does not reassemble), and
    /// ``WireError/Kind/truncated`` if an extension header runs past the payload. Any other next-header
    /// value, TCP or not, is returned as the upper layer.
    public func locateUpperLayer() throws(WireError) -> IPv6UpperLayer {
        var next = nextHeader
        var offset = Field.headerLength
        let end = Field.headerLength + Int(payloadLength)
        while true {
            switch next {
            case .hopByHopOptions, .routing, .destinationOptions:
                guard end - offset >= 2 else {
                    throw .truncated("IPv6 extension header \(next) at offset \(offset)", needs: 2, has: end - offset)
                }
                // Hdr Ext Len counts 8-byte units after the first 8 bytes.
                let length = (Int(bytes[offset + 1]) + 1) * 8
                guard length <= end - offset else {
                    throw .truncated(
                        "IPv6 extension header \(next) at offset \(offset)", needs: length, has: end - offset)
                }
                next = IPProtocol(rawValue: bytes[offset])
                offset += length
            case .fragment:
                throw WireError(.fragmented, "IPv6 fragment header at offset \(offset)")
            default:
                return IPv6UpperLayer(protocol: next, offset: offset)
            }
        }
    }
}

// MARK: - Writable view

/// A writable view of an IPv6 packet, for rewriting packets in place and for filling new ones.
///
/// Every getter of ``IPv6HeaderView`` is here too, with a setter. IPv6 has no header checksum.
public struct MutableIPv6HeaderView {
    /// The bytes viewed: the fixed header, then the payload.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Wraps `bytes` without checking anything, e.g. a buffer about to be filled with a new packet.
    public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after the checks of ``IPv6HeaderView/init(validating:)``.
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try IPv6HeaderView.validate(UnsafeRawBufferPointer(bytes))
        self.bytes = bytes
    }

    /// The same bytes, read-only.
    public var readOnly: IPv6HeaderView { IPv6HeaderView(unchecked: UnsafeRawBufferPointer(bytes)) }

    private func setFirstWord(keeping mask: UInt32, _ bits: UInt32) {
        let word = bytes.loadBigEndian(fromByteOffset: Field.versionClassAndFlow, as: UInt32.self)
        bytes.storeBigEndian((word & mask) | bits, toByteOffset: Field.versionClassAndFlow)
    }

    /// The IP version nibble.
    public var version: UInt8 {
        get { readOnly.version }
        nonmutating set { setFirstWord(keeping: 0x0FFF_FFFF, UInt32(newValue & 0x0F) << 28) }
    }

    /// The traffic class.
    public var trafficClass: UInt8 {
        get { readOnly.trafficClass }
        nonmutating set { setFirstWord(keeping: 0xF00F_FFFF, UInt32(newValue) << 20) }
    }

    /// The 20-bit flow label; higher bits of a new value are ignored.
    public var flowLabel: UInt32 {
        get { readOnly.flowLabel }
        nonmutating set { setFirstWord(keeping: 0xFFF0_0000, newValue & 0xF_FFFF) }
    }

    /// The length of everything after the fixed header.
    public var payloadLength: UInt16 {
        get { readOnly.payloadLength }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.payloadLength) }
    }

    /// The type of the first header after the fixed header.
    public var nextHeader: IPProtocol {
        get { readOnly.nextHeader }
        nonmutating set { bytes[Field.nextHeader] = newValue.rawValue }
    }

    /// The hop limit.
    public var hopLimit: UInt8 {
        get { readOnly.hopLimit }
        nonmutating set { bytes[Field.hopLimit] = newValue }
    }

    /// The source address.
    public var source: IPv6Address {
        get { readOnly.source }
        nonmutating set { newValue.store(into: bytes, at: Field.source.lowerBound) }
    }

    /// The destination address.
    public var destination: IPv6Address {
        get { readOnly.destination }
        nonmutating set { newValue.store(into: bytes, at: Field.destination.lowerBound) }
    }

    /// The payload, writable.
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[Field.headerLength..<Field.headerLength + Int(payloadLength)])
    }
}
