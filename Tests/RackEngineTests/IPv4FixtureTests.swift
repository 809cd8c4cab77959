// rackd — the IPv4 byte fixtures, taken apart field by field and built again from nothing.
//
// Each fixture has a "deconstruct" test (every getter, both checksums) and a "construct" test (setters on a
// buffer poisoned with 0xa5, compared byte for byte), after smoltcp's wire tests.

import RackEngine
import Testing

private let client = IPv4Address(10, 0, 0, 1)
private let server = IPv4Address(10, 0, 0, 2)

private let synOptions: [TCPOption] = [
    .maximumSegmentSize(1460), .sackPermitted, .timestamps(value: 0x0102_0304, echo: 0), .noOperation,
    .windowScale(7),
]

/// Fills `buffer` with a 20-byte IPv4 header through the setters, the way every construct test starts.
private func fillIPv4Header(
    _ ip: MutableIPv4HeaderView, totalLength: UInt16, identification: UInt16, ttl: UInt8,
    source: IPv4Address, destination: IPv4Address
) {
    ip.version = 4
    ip.internetHeaderLength = 5
    ip.dscp = 0
    ip.ecn = 0
    ip.totalLength = totalLength
    ip.identification = identification
    ip.flags = .dontFragment
    ip.fragmentOffset = 0
    ip.timeToLive = ttl
    ip.protocol = .tcp
    ip.source = source
    ip.destination = destination
    ip.fillHeaderChecksum()
}

@Suite struct SYNIPv4FixtureTests {
    @Test func deconstruct() throws {
        try withPacket(WireFixtures.synIPv4) { packet throws in
            guard case .v4(let ip) = packet.ip else {
                Issue.record("expected IPv4")
                return
            }
            #expect(ip.version == 4)
            #expect(ip.internetHeaderLength == 5)
            #expect(ip.headerLength == 20)
            #expect(ip.dscp == 0)
            #expect(ip.ecn == 0)
            #expect(ip.totalLength == 60)
            #expect(ip.identification == 0x1F2E)
            #expect(ip.flags == .dontFragment)
            #expect(ip.fragmentOffset == 0)
            #expect(!ip.isFragment)
            #expect(ip.timeToLive == 64)
            #expect(ip.protocol == .tcp)
            #expect(ip.headerChecksum == 0x078C)
            #expect(ip.source == client)
            #expect(ip.destination == server)
            #expect(ip.options.isEmpty)
            #expect(ip.payload.count == 40)
            #expect(ip.verifyHeaderChecksum())

            #expect(packet.source == .v4(client))
            #expect(packet.destinationEndpoint == TCPEndpoint(address: .v4(server), port: 80))

            let tcp = packet.tcp
            #expect(tcp.sourcePort == 49152)
            #expect(tcp.destinationPort == 80)
            #expect(tcp.sequenceNumber == TCPSequenceNumber(0x1234_5678))
            #expect(tcp.acknowledgmentNumber == TCPSequenceNumber(0))
            #expect(tcp.dataOffset == 10)
            #expect(tcp.headerLength == 40)
            #expect(tcp.flags == .syn)
            #expect(tcp.window == 64240)
            #expect(tcp.checksum == 0x0C0A)
            #expect(tcp.urgentPointer == 0)
            #expect(tcp.options.count == 20)
            #expect(tcp.payload.isEmpty)
            #expect(try TCPOptions.decode(tcp.options) == synOptions)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(!tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(packet.verifyChecksums(tcpChecksum: .complete))
        }
    }

    @Test func construct() throws {
        var buffer = [UInt8](repeating: 0xA5, count: 60)
        try buffer.withUnsafeMutableBytes { bytes throws in
            let ip = MutableIPv4HeaderView(unchecked: bytes)
            fillIPv4Header(ip, totalLength: 60, identification: 0x1F2E, ttl: 64, source: client, destination: server)
            let tcp = MutableTCPHeaderView(unchecked: ip.payload)
            tcp.sourcePort = 49152
            tcp.destinationPort = 80
            tcp.sequenceNumber = TCPSequenceNumber(0x1234_5678)
            tcp.acknowledgmentNumber = TCPSequenceNumber(0)
            tcp.dataOffset = 10
            tcp.flags = .syn
            tcp.window = 64240
            tcp.urgentPointer = 0
            #expect(try TCPOptions.encode(synOptions, into: tcp.options) == 20)
            tcp.fillChecksum(
                pseudoHeaderSum: InternetChecksum.pseudoHeaderIPv4(
                    source: client, destination: server, protocol: .tcp, length: 40))
        }
        #expect(buffer == WireFixtures.synIPv4)
    }

    @Test func emitAndParseRepr() throws {
        var repr = TCPSegmentRepr.syn(
            from: TCPEndpoint(address: .v4(client), port: 49152), to: TCPEndpoint(address: .v4(server), port: 80),
            sequenceNumber: TCPSequenceNumber(0x1234_5678), window: 64240, options: synOptions)
        repr.identification = 0x1F2E
        #expect(repr.bufferLength == 60)
        #expect(try emitted(repr) == WireFixtures.synIPv4)
        #expect(try withPacket(WireFixtures.synIPv4) { try TCPSegmentRepr(parsing: $0) } == repr)
    }
}

@Suite struct ACKWithDataIPv4FixtureTests {
    private let options: [TCPOption] = [.noOperation, .noOperation, .timestamps(value: 0xA0B0_C0D0, echo: 0x0102_0304)]
    private let payload = Array("hello, rackd\n".utf8)

    @Test func deconstruct() throws {
        try withPacket(WireFixtures.ackWithDataIPv4) { packet throws in
            guard case .v4(let ip) = packet.ip else {
                Issue.record("expected IPv4")
                return
            }
            #expect(ip.totalLength == 65)
            #expect(ip.identification == 1)
            #expect(ip.timeToLive == 63)
            #expect(ip.headerChecksum == 0x27B4)
            #expect(ip.source == server)
            #expect(ip.destination == client)
            #expect(ip.verifyHeaderChecksum())

            let tcp = packet.tcp
            #expect(tcp.sourcePort == 80)
            #expect(tcp.destinationPort == 49152)
            #expect(tcp.sequenceNumber == TCPSequenceNumber(0xFFFF_FFF0))
            #expect(tcp.acknowledgmentNumber == TCPSequenceNumber(0x1234_5679))
            #expect(tcp.dataOffset == 8)
            #expect(tcp.flags == [.psh, .ack])
            #expect(tcp.window == 502)
            #expect(tcp.checksum == 0x9701)
            #expect(tcp.urgentPointer == 0)
            #expect(try TCPOptions.decode(tcp.options) == options)
            #expect(Array(tcp.payload) == payload)
            // The segment sits just below 2³²: the next 16 bytes of the stream wrap to small numbers, which
            // still order after it.
            let end = tcp.sequenceNumber + UInt32(tcp.payload.count)
            #expect(end == TCPSequenceNumber(0xFFFF_FFFD))
            #expect(end + 16 == TCPSequenceNumber(0x0000_000D))
            #expect(end + 16 > tcp.sequenceNumber)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }

    @Test func construct() throws {
        var buffer = [UInt8](repeating: 0xA5, count: 65)
        try buffer.withUnsafeMutableBytes { bytes throws in
            let ip = MutableIPv4HeaderView(unchecked: bytes)
            fillIPv4Header(ip, totalLength: 65, identification: 1, ttl: 63, source: server, destination: client)
            let tcp = MutableTCPHeaderView(unchecked: ip.payload)
            tcp.sourcePort = 80
            tcp.destinationPort = 49152
            tcp.sequenceNumber = TCPSequenceNumber(0xFFFF_FFF0)
            tcp.acknowledgmentNumber = TCPSequenceNumber(0x1234_5679)
            tcp.dataOffset = 8
            tcp.flags = [.psh, .ack]
            tcp.window = 502
            tcp.urgentPointer = 0
            try TCPOptions.encode(options, into: tcp.options)
            payload.withUnsafeBytes { tcp.payload.copyMemory(from: $0) }
            tcp.fillChecksum(
                pseudoHeaderSum: InternetChecksum.pseudoHeaderIPv4(
                    source: server, destination: client, protocol: .tcp, length: 45))
        }
        #expect(buffer == WireFixtures.ackWithDataIPv4)
    }

    @Test func emitAndParseRepr() throws {
        let repr = TCPSegmentRepr(
            source: TCPEndpoint(address: .v4(server), port: 80),
            destination: TCPEndpoint(address: .v4(client), port: 49152),
            sequenceNumber: TCPSequenceNumber(0xFFFF_FFF0), acknowledgmentNumber: TCPSequenceNumber(0x1234_5679),
            flags: [.psh, .ack], window: 502, options: options, payload: payload, hopLimit: 63, identification: 1)
        #expect(try emitted(repr) == WireFixtures.ackWithDataIPv4)
        #expect(try withPacket(WireFixtures.ackWithDataIPv4) { try TCPSegmentRepr(parsing: $0) } == repr)
    }
}

@Suite struct ACKWithSACKIPv4FixtureTests {
    private let options: [TCPOption] = [
        .noOperation, .noOperation, .timestamps(value: 0x0102_0305, echo: 0xA0B0_C0D0), .noOperation, .noOperation,
        .sack(
            SACKBlocks([
                SACKBlock(left: TCPSequenceNumber(0x100), right: TCPSequenceNumber(0x200)),
                SACKBlock(left: TCPSequenceNumber(0x300), right: TCPSequenceNumber(0x400)),
            ])!),
    ]

    @Test func deconstruct() throws {
        try withPacket(WireFixtures.ackWithSACKIPv4) { packet throws in
            guard case .v4(let ip) = packet.ip else {
                Issue.record("expected IPv4")
                return
            }
            #expect(ip.totalLength == 72)
            #expect(ip.identification == 0x1F2F)
            #expect(ip.headerChecksum == 0x077F)
            #expect(ip.verifyHeaderChecksum())

            let tcp = packet.tcp
            #expect(tcp.sourcePort == 49152)
            #expect(tcp.destinationPort == 80)
            #expect(tcp.sequenceNumber == TCPSequenceNumber(0x1234_5679))
            #expect(tcp.acknowledgmentNumber == TCPSequenceNumber(0x10))
            #expect(tcp.dataOffset == 13)
            #expect(tcp.flags == .ack)
            #expect(tcp.window == 1000)
            #expect(tcp.checksum == 0x7015)
            #expect(tcp.payload.isEmpty)
            #expect(try TCPOptions.decode(tcp.options) == options)

            var iterator = tcp.makeOptionIterator()
            var sackBlocks: [SACKBlock] = []
            while let option = try iterator.next() {
                if case .sack(let blocks) = option { sackBlocks = Array(blocks) }
            }
            #expect(sackBlocks.map(\.left.rawValue) == [0x100, 0x300])
            #expect(sackBlocks.map(\.right.rawValue) == [0x200, 0x400])
            #expect(try TCPOptions.locateSACKBlocks(in: tcp.options) == SACKBlockLocation(offset: 16, count: 2))
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }

    @Test func construct() throws {
        var buffer = [UInt8](repeating: 0xA5, count: 72)
        try buffer.withUnsafeMutableBytes { bytes throws in
            let ip = MutableIPv4HeaderView(unchecked: bytes)
            fillIPv4Header(ip, totalLength: 72, identification: 0x1F2F, ttl: 64, source: client, destination: server)
            let tcp = MutableTCPHeaderView(unchecked: ip.payload)
            tcp.sourcePort = 49152
            tcp.destinationPort = 80
            tcp.sequenceNumber = TCPSequenceNumber(0x1234_5679)
            tcp.acknowledgmentNumber = TCPSequenceNumber(0x10)
            tcp.dataOffset = 13
            tcp.flags = .ack
            tcp.window = 1000
            tcp.urgentPointer = 0
            try TCPOptions.encode(options, into: tcp.options)
            tcp.fillChecksum(
                pseudoHeaderSum: InternetChecksum.pseudoHeaderIPv4(
                    source: client, destination: server, protocol: .tcp, length: 52))
        }
        #expect(buffer == WireFixtures.ackWithSACKIPv4)
    }

    @Test func emitAndParseRepr() throws {
        var repr = TCPSegmentRepr.ack(
            from: TCPEndpoint(address: .v4(client), port: 49152), to: TCPEndpoint(address: .v4(server), port: 80),
            sequenceNumber: TCPSequenceNumber(0x1234_5679), acknowledgmentNumber: TCPSequenceNumber(0x10),
            window: 1000, options: options)
        repr.identification = 0x1F2F
        #expect(try emitted(repr) == WireFixtures.ackWithSACKIPv4)
        #expect(try withPacket(WireFixtures.ackWithSACKIPv4) { try TCPSegmentRepr(parsing: $0) } == repr)
    }
}

@Suite struct ExperimentalOptionIPv4FixtureTests {
    private let source = IPv4Address(192, 168, 1, 10)
    private let destination = IPv4Address(192, 168, 1, 20)
    private let options: [TCPOption] = [
        .experimental(kind: .experiment1, exid: 0x5241, data: TCPOptionData([1, 2, 3, 4])!),
        .unknown(kind: TCPOptionKind(rawValue: 99), data: TCPOptionData([0xAB, 0xCD])!),
    ]

    @Test func deconstruct() throws {
        try withPacket(WireFixtures.experimentalOptionIPv4) { packet throws in
            guard case .v4(let ip) = packet.ip else {
                Issue.record("expected IPv4")
                return
            }
            #expect(ip.internetHeaderLength == 6)
            #expect(ip.headerLength == 24)
            #expect(ip.dscp == 46)
            #expect(ip.ecn == 1)
            #expect(ip.totalLength == 56)
            #expect(ip.identification == 0x4242)
            #expect(ip.flags == .dontFragment)
            #expect(ip.timeToLive == 128)
            #expect(ip.headerChecksum == 0x3155)
            #expect(ip.source == source)
            #expect(ip.destination == destination)
            #expect(Array(ip.options) == [0x01, 0x01, 0x01, 0x00])
            #expect(ip.verifyHeaderChecksum())

            let tcp = packet.tcp
            #expect(tcp.sourcePort == 40000)
            #expect(tcp.destinationPort == 5001)
            #expect(tcp.sequenceNumber == TCPSequenceNumber(1000))
            #expect(tcp.acknowledgmentNumber == TCPSequenceNumber(2000))
            #expect(tcp.dataOffset == 8)
            #expect(tcp.flags == .ack)
            #expect(tcp.window == 256)
            #expect(tcp.checksum == 0xDDB5)
            #expect(try TCPOptions.decode(tcp.options) == options)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }

    @Test func construct() throws {
        var buffer = [UInt8](repeating: 0xA5, count: 56)
        try buffer.withUnsafeMutableBytes { bytes throws in
            let ip = MutableIPv4HeaderView(unchecked: bytes)
            ip.version = 4
            ip.internetHeaderLength = 6
            ip.dscp = 46
            ip.ecn = 1
            ip.totalLength = 56
            ip.identification = 0x4242
            ip.flags = .dontFragment
            ip.fragmentOffset = 0
            ip.timeToLive = 128
            ip.protocol = .tcp
            ip.source = source
            ip.destination = destination
            [UInt8]([0x01, 0x01, 0x01, 0x00]).withUnsafeBytes { ip.options.copyMemory(from: $0) }
            ip.fillHeaderChecksum()
            let tcp = MutableTCPHeaderView(unchecked: ip.payload)
            tcp.sourcePort = 40000
            tcp.destinationPort = 5001
            tcp.sequenceNumber = TCPSequenceNumber(1000)
            tcp.acknowledgmentNumber = TCPSequenceNumber(2000)
            tcp.dataOffset = 8
            tcp.flags = .ack
            tcp.window = 256
            tcp.urgentPointer = 0
            try TCPOptions.encode(options, into: tcp.options)
            tcp.fillChecksum(
                pseudoHeaderSum: InternetChecksum.pseudoHeaderIPv4(
                    source: source, destination: destination, protocol: .tcp, length: 32))
        }
        #expect(buffer == WireFixtures.experimentalOptionIPv4)
    }
}
