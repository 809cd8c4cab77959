// rackd — the packets rackd builds itself: handshake segments, ACKs, probes and resets.
//
// A `Repr` holds only what rackd chooses when it creates a packet. It is not a faithful model of an
// arbitrary packet (DSCP/ECN, URG, reserved bits and IP options are not kept), so packets that pass
// through rackd are rewritten in place through the mutable views, never parsed and re-emitted.

/// An IPv4 or IPv6 packet carrying one TCP segment, as rackd creates it.
///
/// Emitted packets have no IP options, DSCP/ECN zero, the IPv4 DF bit set, an IPv6 flow label of zero,
/// a zero urgent pointer, a correct IPv4 header checksum and a full TCP checksum.
public struct TCPSegmentRepr: Hashable, Sendable, Codable {
    /// The sending end.
    public var source: TCPEndpoint
    /// The receiving end; must be the same address family as ``source``.
    public var destination: TCPEndpoint
    /// The sequence number.
    public var sequenceNumber: TCPSequenceNumber
    /// The acknowledgment number; written as is, and meaningful when ``flags`` has ``TCPFlags/ack``.
    public var acknowledgmentNumber: TCPSequenceNumber
    /// The control bits.
    public var flags: TCPFlags
    /// The receive window, already scaled down as the peer expects.
    public var window: UInt16
    /// The options in order; padded with end-of-list bytes to a multiple of 4 on emit.
    public var options: [TCPOption]
    /// The payload bytes.
    public var payload: [UInt8]
    /// The IPv4 TTL or IPv6 hop limit.
    public var hopLimit: UInt8
    /// The IPv4 identification; unused for IPv6.
    public var identification: UInt16

    /// A segment with every field given; see the static builders for the usual kinds.
    public init(
        source: TCPEndpoint,
        destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber = TCPSequenceNumber(0),
        flags: TCPFlags,
        window: UInt16,
        options: [TCPOption] = [],
        payload: [UInt8] = [],
        hopLimit: UInt8 = 64,
        identification: UInt16 = 0
    ) {
        self.source = source
        self.destination = destination
        self.sequenceNumber = sequenceNumber
        self.acknowledgmentNumber = acknowledgmentNumber
        self.flags = flags
        self.window = window
        self.options = options
        self.payload = payload
        self.hopLimit = hopLimit
        self.identification = identification
    }

    /// The fields of a parsed packet, for tests and for building replies. Drops what a `Repr` does not
    /// hold (see the type's description) and the option padding from an end-of-list on; throws if the
    /// options are malformed.
    public init(parsing packet: IPPacketView) throws(WireError) {
        let tcp = packet.tcp
        let hopLimit: UInt8
        let identification: UInt16
        switch packet.ip {
        case .v4(let header):
            hopLimit = header.timeToLive
            identification = header.identification
        case .v6(let header):
            hopLimit = header.hopLimit
            identification = 0
        }
        var options = try TCPOptions.decode(tcp.options)
        // A final end-of-list only marks where padding starts, and `emit(into:)` pads again.
        if options.last == .endOfList {
            options.removeLast()
        }
        self.init(
            source: packet.sourceEndpoint, destination: packet.destinationEndpoint,
            sequenceNumber: tcp.sequenceNumber, acknowledgmentNumber: tcp.acknowledgmentNumber,
            flags: tcp.flags, window: tcp.window, options: options,
            payload: Array(tcp.payload), hopLimit: hopLimit, identification: identification)
    }

    // MARK: Builders

    /// A SYN opening a connection, e.g. a reconnect, with its options (MSS, SACK permitted, …).
    public static func syn(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        window: UInt16,
        options: [TCPOption]
    ) -> TCPSegmentRepr {
        TCPSegmentRepr(
            source: source, destination: destination, sequenceNumber: sequenceNumber, flags: .syn,
            window: window, options: options)
    }

    /// A SYN-ACK answering a SYN whose sequence number was `acknowledgmentNumber − 1`.
    public static func synAck(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber,
        window: UInt16,
        options: [TCPOption]
    ) -> TCPSegmentRepr {
        TCPSegmentRepr(
            source: source, destination: destination, sequenceNumber: sequenceNumber,
            acknowledgmentNumber: acknowledgmentNumber, flags: [.syn, .ack], window: window, options: options)
    }

    /// A pure ACK: no payload, optionally with options such as timestamps or SACK blocks.
    public static func ack(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber,
        window: UInt16,
        options: [TCPOption] = []
    ) -> TCPSegmentRepr {
        TCPSegmentRepr(
            source: source, destination: destination, sequenceNumber: sequenceNumber,
            acknowledgmentNumber: acknowledgmentNumber, flags: .ack, window: window, options: options)
    }

    /// A pure ACK advertising a zero window: how rackd holds a local socket while the path is down.
    public static func zeroWindowAck(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber,
        options: [TCPOption] = []
    ) -> TCPSegmentRepr {
        ack(
            from: source, to: destination, sequenceNumber: sequenceNumber,
            acknowledgmentNumber: acknowledgmentNumber, window: 0, options: options)
    }

    /// A keepalive-style probe: an ACK at `sendNext − 1`, below the peer's `rcv_nxt`, which makes the
    /// peer's kernel answer with an ACK. `payloadLength` zero bytes may be added, as some stacks send one
    /// garbage byte.
    public static func keepaliveProbe(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sendNext: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber,
        window: UInt16,
        payloadLength: Int = 0
    ) -> TCPSegmentRepr {
        TCPSegmentRepr(
            source: source, destination: destination, sequenceNumber: sendNext - 1,
            acknowledgmentNumber: acknowledgmentNumber, flags: .ack, window: window,
            payload: [UInt8](repeating: 0, count: max(0, payloadLength)))
    }

    /// A reset; with an `acknowledgmentNumber` it carries ACK too (the reply to a segment without ACK,
    /// RFC 9293 §3.10.7.1), without one it is a bare RST with window 0.
    public static func reset(
        from source: TCPEndpoint,
        to destination: TCPEndpoint,
        sequenceNumber: TCPSequenceNumber,
        acknowledgmentNumber: TCPSequenceNumber? = nil
    ) -> TCPSegmentRepr {
        TCPSegmentRepr(
            source: source, destination: destination, sequenceNumber: sequenceNumber,
            acknowledgmentNumber: acknowledgmentNumber ?? TCPSequenceNumber(0),
            flags: acknowledgmentNumber == nil ? .rst : [.rst, .ack], window: 0)
    }

    // MARK: Emitting

    private var ipHeaderLength: Int {
        switch source.address {
        case .v4: 20
        case .v6: IPv6HeaderView.headerLength
        }
    }

    private var segmentLength: Int { 20 + TCPOptions.encodedLength(of: options) + payload.count }

    /// The bytes ``emit(into:)`` writes: IP header, TCP header with padded options, payload.
    public var bufferLength: Int { ipHeaderLength + segmentLength }

    /// Writes the packet into the first ``bufferLength`` bytes of `buffer`, checksums included.
    ///
    /// Throws ``WireError/Kind/addressFamilyMismatch`` if the endpoints' families differ,
    /// ``WireError/Kind/badOption`` if the options cannot be encoded, ``WireError/Kind/badTotalLength`` if
    /// the packet would exceed 65535 bytes, and ``WireError/Kind/bufferTooSmall`` if `buffer` is short. After
    /// an error the buffer's contents are unspecified.
    public func emit(into buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        // IPv4's total length counts its header; IPv6's payload length does not.
        let maximumSegmentLength = ipHeaderLength == 20 ? Int(UInt16.max) - 20 : Int(UInt16.max)
        guard segmentLength <= maximumSegmentLength else {
            throw WireError(
                .badTotalLength,
                "a \(segmentLength)-byte TCP segment exceeds the \(maximumSegmentLength) bytes one IP packet can carry")
        }
        let length = bufferLength
        guard length <= buffer.count else {
            throw WireError(.bufferTooSmall, "the packet needs \(length) bytes but the buffer holds \(buffer.count)")
        }
        let packet = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
        let segmentBytes = UnsafeMutableRawBufferPointer(rebasing: packet[ipHeaderLength...])
        let pseudoHeaderSum: UInt32
        switch (source.address, destination.address) {
        case (.v4(let sourceAddress), .v4(let destinationAddress)):
            let ip = MutableIPv4HeaderView(unchecked: packet)
            ip.version = 4
            ip.internetHeaderLength = 5
            ip.dscp = 0
            ip.ecn = 0
            ip.totalLength = UInt16(length)
            ip.identification = identification
            ip.flags = .dontFragment
            ip.fragmentOffset = 0
            ip.timeToLive = hopLimit
            ip.protocol = .tcp
            ip.source = sourceAddress
            ip.destination = destinationAddress
            ip.fillHeaderChecksum()
            pseudoHeaderSum = InternetChecksum.pseudoHeaderIPv4(
                source: sourceAddress, destination: destinationAddress, protocol: .tcp,
                length: UInt16(segmentBytes.count))
        case (.v6(let sourceAddress), .v6(let destinationAddress)):
            let ip = MutableIPv6HeaderView(unchecked: packet)
            ip.version = 6
            ip.trafficClass = 0
            ip.flowLabel = 0
            ip.payloadLength = UInt16(segmentBytes.count)
            ip.nextHeader = .tcp
            ip.hopLimit = hopLimit
            ip.source = sourceAddress
            ip.destination = destinationAddress
            pseudoHeaderSum = InternetChecksum.pseudoHeaderIPv6(
                source: sourceAddress, destination: destinationAddress, protocol: .tcp,
                length: UInt32(segmentBytes.count))
        default:
            throw WireError(
                .addressFamilyMismatch,
                "source \(source.address) and destination \(destination.address) differ in family")
        }

        let tcp = MutableTCPHeaderView(unchecked: segmentBytes)
        let optionsLength = try TCPOptions.encode(
            options, into: UnsafeMutableRawBufferPointer(rebasing: segmentBytes[20...]))
        tcp.sourcePort = source.port
        tcp.destinationPort = destination.port
        tcp.sequenceNumber = sequenceNumber
        tcp.acknowledgmentNumber = acknowledgmentNumber
        tcp.dataOffset = UInt8(5 + optionsLength / 4)
        tcp.flags = flags
        tcp.window = window
        tcp.urgentPointer = 0
        payload.withUnsafeBytes { tcp.payload.copyMemory(from: $0) }
        tcp.fillChecksum(pseudoHeaderSum: pseudoHeaderSum)
    }
}
