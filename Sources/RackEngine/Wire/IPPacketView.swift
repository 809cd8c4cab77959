// rackd — one entry point from the raw bytes NFQUEUE delivers to the IP and TCP views.
//
// NFQUEUE hands over the IP packet with no link-layer header, IPv4 or IPv6. The engine wants the TCP
// segment in it and the pseudo-header sum its checksum needs; anything else (another protocol, a
// fragment, a truncated copy) is an error to pass the packet through untouched.

/// A validated IPv4 or IPv6 packet carrying one whole TCP segment, read in place.
///
/// After ``init(validating:)`` every accessor of ``ip`` and ``tcp`` is in bounds. TCP options are
/// checked only when iterated.
public struct IPPacketView {
    /// The IP header of either family.
    public enum Header {
        /// An IPv4 header (the packet is not a fragment).
        case v4(IPv4HeaderView)
        /// An IPv6 header; any extension headers sit between it and the TCP header.
        case v6(IPv6HeaderView)
    }

    /// The IP header.
    public let ip: Header
    /// The TCP segment: exactly the bytes the IP header assigns to it.
    public let tcp: TCPHeaderView
    /// The pseudo-header sum for ``tcp``, for ``TCPHeaderView/verifyChecksum(pseudoHeaderSum:)``.
    public let pseudoHeaderSum: UInt32
    /// The whole packet, IP header first, up to the end of the TCP segment.
    public let bytes: UnsafeRawBufferPointer

    /// Parses `bytes` as an IP packet carrying a TCP segment.
    ///
    /// Throws ``WireError/Kind/notTCP`` for another upper-layer protocol, ``WireError/Kind/fragmented``
    /// for a fragment, ``WireError/Kind/badVersion`` for a version other than 4 or 6, and the IP and TCP
    /// views' errors for inconsistent lengths.
    public init(validating bytes: UnsafeRawBufferPointer) throws(WireError) {
        let layout = try PacketLayout(bytes)
        ip = layout.isIPv6 ? .v6(IPv6HeaderView(unchecked: bytes)) : .v4(IPv4HeaderView(unchecked: bytes))
        tcp = TCPHeaderView(unchecked: UnsafeRawBufferPointer(rebasing: bytes[layout.segment]))
        pseudoHeaderSum = layout.pseudoHeaderSum
        self.bytes = UnsafeRawBufferPointer(rebasing: bytes[..<layout.segment.upperBound])
    }

    fileprivate init(ip: Header, tcp: TCPHeaderView, pseudoHeaderSum: UInt32, bytes: UnsafeRawBufferPointer) {
        self.ip = ip
        self.tcp = tcp
        self.pseudoHeaderSum = pseudoHeaderSum
        self.bytes = bytes
    }

    /// The source address.
    public var source: IPAddress {
        switch ip {
        case .v4(let header): .v4(header.source)
        case .v6(let header): .v6(header.source)
        }
    }

    /// The destination address.
    public var destination: IPAddress {
        switch ip {
        case .v4(let header): .v4(header.destination)
        case .v6(let header): .v6(header.destination)
        }
    }

    /// The sending end: source address and TCP port.
    public var sourceEndpoint: TCPEndpoint { TCPEndpoint(address: source, port: tcp.sourcePort) }

    /// The receiving end: destination address and TCP port.
    public var destinationEndpoint: TCPEndpoint { TCPEndpoint(address: destination, port: tcp.destinationPort) }

    /// Whether the checksums are right: the IPv4 header checksum, and the TCP checksum when it is
    /// ``TCPChecksumState/complete``. A ``TCPChecksumState/partial`` TCP checksum is locally generated and
    /// not yet computed, so there is nothing to verify.
    public func verifyChecksums(tcpChecksum: TCPChecksumState) -> Bool {
        if case .v4(let header) = ip, !header.verifyHeaderChecksum() {
            return false
        }
        switch tcpChecksum {
        case .complete: return tcp.verifyChecksum(pseudoHeaderSum: pseudoHeaderSum)
        case .partial: return true
        }
    }
}

extension ChecksumPolicy {
    /// Whether a packet passes this policy: always under ``trust``, and under ``verify`` when
    /// ``IPPacketView/verifyChecksums(tcpChecksum:)`` holds.
    public func accepts(_ packet: IPPacketView, tcpChecksum: TCPChecksumState) -> Bool {
        switch self {
        case .verify: packet.verifyChecksums(tcpChecksum: tcpChecksum)
        case .trust: true
        }
    }
}

/// A validated IP packet carrying one TCP segment, writable in place: the view rackd rewrites through.
public struct MutableIPPacketView {
    /// The writable IP header of either family.
    public enum Header {
        /// An IPv4 header.
        case v4(MutableIPv4HeaderView)
        /// An IPv6 header.
        case v6(MutableIPv6HeaderView)
    }

    /// The IP header.
    public let ip: Header
    /// The TCP segment.
    public let tcp: MutableTCPHeaderView
    /// The whole packet, IP header first, up to the end of the TCP segment.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Parses `bytes` with the checks of ``IPPacketView/init(validating:)``.
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        let layout = try PacketLayout(UnsafeRawBufferPointer(bytes))
        self.bytes = UnsafeMutableRawBufferPointer(rebasing: bytes[..<layout.segment.upperBound])
        ip = layout.isIPv6 ? .v6(MutableIPv6HeaderView(unchecked: bytes)) : .v4(MutableIPv4HeaderView(unchecked: bytes))
        tcp = MutableTCPHeaderView(unchecked: UnsafeMutableRawBufferPointer(rebasing: bytes[layout.segment]))
    }

    /// The same packet, read-only.
    public var readOnly: IPPacketView {
        switch ip {
        case .v4(let header):
            IPPacketView(ip: .v4(header.readOnly), tcp: tcp.readOnly, pseudoHeaderSum: pseudoHeaderSum, bytes: UnsafeRawBufferPointer(bytes))
        case .v6(let header):
            IPPacketView(ip: .v6(header.readOnly), tcp: tcp.readOnly, pseudoHeaderSum: pseudoHeaderSum, bytes: UnsafeRawBufferPointer(bytes))
        }
    }

    /// The pseudo-header sum of the current addresses and segment length; recompute it after changing
    /// either.
    public var pseudoHeaderSum: UInt32 {
        switch ip {
        case .v4(let header):
            InternetChecksum.pseudoHeaderIPv4(
                source: header.source, destination: header.destination, protocol: .tcp,
                length: UInt16(truncatingIfNeeded: tcp.bytes.count))
        case .v6(let header):
            InternetChecksum.pseudoHeaderIPv6(
                source: header.source, destination: header.destination, protocol: .tcp,
                length: UInt32(tcp.bytes.count))
        }
    }

    /// Recomputes the IPv4 header checksum (if IPv4) and the full TCP checksum. Required after any
    /// change to a packet that arrived with a partial TCP checksum.
    public func fillChecksums() {
        if case .v4(let header) = ip {
            header.fillHeaderChecksum()
        }
        tcp.fillChecksum(pseudoHeaderSum: pseudoHeaderSum)
    }
}

/// Where the TCP segment sits in a validated IP packet; shared by both packet views.
private struct PacketLayout {
    var isIPv6: Bool
    var segment: Range<Int>
    var pseudoHeaderSum: UInt32

    init(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard let first = bytes.first else {
            throw .truncated("IP header", needs: 1, has: 0)
        }
        switch first >> 4 {
        case 4:
            let header = try IPv4HeaderView(validating: bytes)
            guard !header.isFragment else {
                throw WireError(
                    .fragmented,
                    "IPv4 fragment (offset \(header.fragmentOffset * 8) bytes, more fragments: "
                        + "\(header.flags.contains(.moreFragments)))")
            }
            guard header.protocol == .tcp else {
                throw WireError(.notTCP, "IPv4 protocol \(header.protocol) is not TCP (6)")
            }
            segment = header.headerLength..<Int(header.totalLength)
            pseudoHeaderSum = InternetChecksum.pseudoHeaderIPv4(
                source: header.source, destination: header.destination, protocol: .tcp,
                length: UInt16(segment.count))
            isIPv6 = false
        case 6:
            let header = try IPv6HeaderView(validating: bytes)
            let upper = try header.locateUpperLayer()
            guard upper.protocol == .tcp else {
                throw WireError(.notTCP, "IPv6 upper-layer protocol \(upper.protocol) is not TCP (6)")
            }
            segment = upper.offset..<(IPv6HeaderView.headerLength + Int(header.payloadLength))
            pseudoHeaderSum = InternetChecksum.pseudoHeaderIPv6(
                source: header.source, destination: header.destination, protocol: .tcp,
                length: UInt32(segment.count))
            isIPv6 = true
        default:
            throw WireError(.badVersion, "IP version \(first >> 4) is neither 4 nor 6")
        }
        try TCPHeaderView.validate(UnsafeRawBufferPointer(rebasing: bytes[segment]))
    }
}
