// rackd — the IPv6 byte fixture taken apart and built again, and the walk over extension headers.

import RackEngine
import Testing

private let server = IPv6Address(high: 0x2001_0DB8_0000_0000, low: 2)
private let client = IPv6Address(high: 0x2001_0DB8_0000_0000, low: 1)
private let synAckOptions: [TCPOption] = [
    .maximumSegmentSize(1440), .sackPermitted, .timestamps(value: 0x1122_3344, echo: 0x5566_7788), .noOperation,
    .windowScale(9),
]

/// The IPv6 fixture with `extensionHeader` inserted between the fixed header and TCP. The TCP checksum stays
/// valid: the IPv6 pseudo-header uses the upper-layer length, not the payload length.
private func withExtensionHeader(_ extensionHeader: [UInt8], nextHeader: IPProtocol) -> [UInt8] {
    var bytes = WireFixtures.synAckIPv6
    bytes.insert(contentsOf: extensionHeader, at: 40)
    bytes.withUnsafeMutableBytes { raw in
        let ip = MutableIPv6HeaderView(unchecked: raw)
        ip.nextHeader = nextHeader
        ip.payloadLength += UInt16(extensionHeader.count)
    }
    return bytes
}

@Suite struct SYNACKIPv6FixtureTests {
    @Test func deconstruct() throws {
        try withPacket(WireFixtures.synAckIPv6) { packet throws in
            guard case .v6(let ip) = packet.ip else {
                Issue.record("expected IPv6")
                return
            }
            #expect(ip.version == 6)
            #expect(ip.trafficClass == 0x28)
            #expect(ip.flowLabel == 0x12345)
            #expect(ip.payloadLength == 40)
            #expect(ip.nextHeader == .tcp)
            #expect(ip.hopLimit == 64)
            #expect(ip.source == server)
            #expect(ip.destination == client)
            #expect(ip.source.description == "2001:db8::2")
            #expect(ip.payload.count == 40)
            #expect(try ip.locateUpperLayer() == IPv6UpperLayer(protocol: .tcp, offset: 40))
            #expect(packet.sourceEndpoint.description == "[2001:db8::2]:443")

            let tcp = packet.tcp
            #expect(tcp.sourcePort == 443)
            #expect(tcp.destinationPort == 50000)
            #expect(tcp.sequenceNumber == TCPSequenceNumber(0xDEAD_BEEF))
            #expect(tcp.acknowledgmentNumber == TCPSequenceNumber(0x0100_0001))
            #expect(tcp.dataOffset == 10)
            #expect(tcp.flags == [.syn, .ack])
            #expect(tcp.window == 65535)
            #expect(tcp.checksum == 0x778E)
            #expect(tcp.urgentPointer == 0)
            #expect(tcp.payload.isEmpty)
            #expect(try TCPOptions.decode(tcp.options) == synAckOptions)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(packet.verifyChecksums(tcpChecksum: .complete))
        }
    }

    @Test func construct() throws {
        var buffer = [UInt8](repeating: 0xA5, count: 80)
        try buffer.withUnsafeMutableBytes { bytes throws in
            let ip = MutableIPv6HeaderView(unchecked: bytes)
            ip.version = 6
            ip.trafficClass = 0x28
            ip.flowLabel = 0x12345
            ip.payloadLength = 40
            ip.nextHeader = .tcp
            ip.hopLimit = 64
            ip.source = server
            ip.destination = client
            let tcp = MutableTCPHeaderView(unchecked: ip.payload)
            tcp.sourcePort = 443
            tcp.destinationPort = 50000
            tcp.sequenceNumber = TCPSequenceNumber(0xDEAD_BEEF)
            tcp.acknowledgmentNumber = TCPSequenceNumber(0x0100_0001)
            tcp.dataOffset = 10
            tcp.flags = [.syn, .ack]
            tcp.window = 65535
            tcp.urgentPointer = 0
            try TCPOptions.encode(synAckOptions, into: tcp.options)
            tcp.fillChecksum(
                pseudoHeaderSum: InternetChecksum.pseudoHeaderIPv6(
                    source: server, destination: client, protocol: .tcp, length: 40))
        }
        #expect(buffer == WireFixtures.synAckIPv6)
    }

    @Test func reprRoundTrip() throws {
        // The Repr keeps no traffic class or flow label, so it re-emits the fixture with both zeroed.
        let repr = try withPacket(WireFixtures.synAckIPv6) { try TCPSegmentRepr(parsing: $0) }
        #expect(
            repr
                == TCPSegmentRepr.synAck(
                    from: TCPEndpoint(address: .v6(server), port: 443),
                    to: TCPEndpoint(address: .v6(client), port: 50000),
                    sequenceNumber: TCPSequenceNumber(0xDEAD_BEEF),
                    acknowledgmentNumber: TCPSequenceNumber(0x0100_0001),
                    window: 65535, options: synAckOptions))
        var expected = WireFixtures.synAckIPv6
        expected.replaceSubrange(0..<4, with: [0x60, 0x00, 0x00, 0x00])
        #expect(try emitted(repr) == expected)
    }
}

@Suite struct IPv6ExtensionHeaderTests {
    /// Hop-by-Hop (8 bytes: next header, length 0, PadN of 4) then Destination Options (16 bytes: length 1).
    private let hopByHopThenDestinationOptions = withExtensionHeader(
        [60, 0, 1, 4, 0, 0, 0, 0] + [6, 1, 1, 12] + [UInt8](repeating: 0, count: 12), nextHeader: .hopByHopOptions)

    @Test func walksToTCP() throws {
        try withPacket(hopByHopThenDestinationOptions) { packet throws in
            guard case .v6(let ip) = packet.ip else {
                Issue.record("expected IPv6")
                return
            }
            #expect(try ip.locateUpperLayer() == IPv6UpperLayer(protocol: .tcp, offset: 64))
            #expect(packet.tcp.sourcePort == 443)
            #expect(packet.tcp.bytes.count == 40)
            #expect(packet.tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }

    @Test func routingHeaderIsWalked() throws {
        let bytes = withExtensionHeader([6, 0, 0, 0, 0, 0, 0, 0], nextHeader: .routing)
        #expect(try withPacket(bytes) { $0.tcp.destinationPort } == 50000)
    }

    @Test func fragmentHeaderIsReportedAsFragmented() {
        let bytes = withExtensionHeader([6, 0, 0, 1, 0, 0, 0, 42], nextHeader: .fragment)
        #expect(packetError(bytes)?.kind == .fragmented)
    }

    @Test func nonTCPUpperLayerIsNotTCP() {
        let bytes = withExtensionHeader([17, 0, 1, 4, 0, 0, 0, 0], nextHeader: .hopByHopOptions)
        #expect(packetError(bytes)?.kind == .notTCP)
    }

    @Test func extensionHeaderOverrunningThePayloadIsTruncated() {
        // Hdr Ext Len 200 claims 1608 bytes; the payload has 48.
        let bytes = withExtensionHeader([6, 200, 1, 4, 0, 0, 0, 0], nextHeader: .destinationOptions)
        let error = packetError(bytes)
        #expect(error?.kind == .truncated)
        #expect(error?.description.contains("1608") == true)
    }

    @Test func extensionHeaderWithoutRoomForItsLengthIsTruncated() {
        var bytes = Array(WireFixtures.synAckIPv6[0..<41])
        bytes.withUnsafeMutableBytes { raw in
            let ip = MutableIPv6HeaderView(unchecked: raw)
            ip.nextHeader = .hopByHopOptions
            ip.payloadLength = 1
        }
        #expect(packetError(bytes)?.kind == .truncated)
    }
}
