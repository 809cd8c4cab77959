// rackd — the packets rackd builds: each one parses back through the views with the intended fields and
// verifies its checksums, over IPv4 and IPv6.

import RackEngine
import Testing

private let local4 = TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40000)
private let remote4 = TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 5001)
private let local6 = TCPEndpoint(address: .v6(IPv6Address(high: 0x2001_0DB8_0001_0000, low: 2)), port: 40000)
private let remote6 = TCPEndpoint(address: .v6(IPv6Address(high: 0x2001_0DB8_0002_0000, low: 2)), port: 5001)

/// The rackd detection option as a SYN would carry it: experiment kind 253 with an ExID and a short payload.
private let detection = TCPOption.experimental(exid: 0x7261, data: TCPOptionData([0x01, 0x00])!)
private let synOptions: [TCPOption] = [
    .maximumSegmentSize(1460), .sackPermitted, .timestamps(value: 100, echo: 0), .noOperation, .windowScale(7),
    detection,
]

/// Emits `repr`, parses it back, checks what every segment must satisfy, and hands the view to `body`.
private func roundTrip(_ repr: TCPSegmentRepr, _ body: (IPPacketView) throws -> Void = { _ in }) throws {
    let bytes = try emitted(repr)
    #expect(bytes.count == repr.bufferLength)
    try withPacket(bytes) { packet throws in
        #expect(packet.verifyChecksums(tcpChecksum: .complete))
        #expect(packet.sourceEndpoint == repr.source)
        #expect(packet.destinationEndpoint == repr.destination)
        #expect(packet.tcp.sequenceNumber == repr.sequenceNumber)
        #expect(packet.tcp.acknowledgmentNumber == repr.acknowledgmentNumber)
        #expect(packet.tcp.flags == repr.flags)
        #expect(packet.tcp.window == repr.window)
        #expect(packet.tcp.urgentPointer == 0)
        #expect(Array(packet.tcp.payload) == repr.payload)
        switch packet.ip {
        case .v4(let ip):
            #expect(ip.timeToLive == repr.hopLimit)
            #expect(ip.identification == repr.identification)
            #expect(ip.flags == .dontFragment)
            #expect(ip.headerLength == 20)
        case .v6(let ip):
            #expect(ip.hopLimit == repr.hopLimit)
            #expect(ip.nextHeader == .tcp)
            #expect(ip.flowLabel == 0)
        }
        #expect(try TCPSegmentRepr(parsing: packet) == repr)
        try body(packet)
    }
}

@Suite struct TCPSegmentReprTests {
    @Test(arguments: [(local4, remote4), (local6, remote6)])
    func syn(local: TCPEndpoint, remote: TCPEndpoint) throws {
        let repr = TCPSegmentRepr.syn(
            from: local, to: remote, sequenceNumber: TCPSequenceNumber(0xFFFF_FFFF), window: 64240, options: synOptions)
        try roundTrip(repr) { packet in
            #expect(packet.tcp.flags == .syn)
            #expect(packet.tcp.headerLength == 20 + 28)  // 26 bytes of options, padded
            var found: TCPOption?
            var iterator = packet.tcp.makeOptionIterator()
            while let option = try iterator.next() {
                if case .experimental(_, 0x7261, _) = option { found = option }
            }
            #expect(found == detection)
        }
    }

    @Test(arguments: [(local4, remote4), (local6, remote6)])
    func synAck(local: TCPEndpoint, remote: TCPEndpoint) throws {
        let repr = TCPSegmentRepr.synAck(
            from: remote, to: local, sequenceNumber: TCPSequenceNumber(7),
            acknowledgmentNumber: TCPSequenceNumber(0xFFFF_FFFF) + 1, window: 65160, options: synOptions)
        try roundTrip(repr) { packet in
            #expect(packet.tcp.flags == [.syn, .ack])
            #expect(packet.tcp.acknowledgmentNumber == TCPSequenceNumber(0))
        }
    }

    @Test(arguments: [(local4, remote4), (local6, remote6)])
    func pureAckAndZeroWindowAck(local: TCPEndpoint, remote: TCPEndpoint) throws {
        let ack = TCPSegmentRepr.ack(
            from: local, to: remote, sequenceNumber: TCPSequenceNumber(1000),
            acknowledgmentNumber: TCPSequenceNumber(2000),
            window: 502, options: [.noOperation, .noOperation, .timestamps(value: 5, echo: 6)])
        try roundTrip(ack) { packet in
            #expect(packet.tcp.flags == .ack)
            #expect(packet.tcp.payload.isEmpty)
        }
        let zeroWindow = TCPSegmentRepr.zeroWindowAck(
            from: local, to: remote, sequenceNumber: TCPSequenceNumber(1000),
            acknowledgmentNumber: TCPSequenceNumber(2000))
        try roundTrip(zeroWindow) { packet in
            #expect(packet.tcp.window == 0)
            #expect(packet.tcp.flags == .ack)
            #expect(packet.tcp.headerLength == 20)
        }
    }

    @Test(arguments: [(local4, remote4, 0), (local6, remote6, 0), (local4, remote4, 1), (local6, remote6, 1)])
    func keepaliveProbe(local: TCPEndpoint, remote: TCPEndpoint, payloadLength: Int) throws {
        // sendNext 0: the probe's sequence number wraps to 2³² − 1.
        let repr = TCPSegmentRepr.keepaliveProbe(
            from: local, to: remote, sendNext: TCPSequenceNumber(0), acknowledgmentNumber: TCPSequenceNumber(99),
            window: 1000, payloadLength: payloadLength)
        try roundTrip(repr) { packet in
            #expect(packet.tcp.sequenceNumber == TCPSequenceNumber(0xFFFF_FFFF))
            #expect(packet.tcp.flags == .ack)
            #expect(packet.tcp.payload.count == payloadLength)
        }
    }

    @Test(arguments: [(local4, remote4), (local6, remote6)])
    func resets(local: TCPEndpoint, remote: TCPEndpoint) throws {
        try roundTrip(.reset(from: local, to: remote, sequenceNumber: TCPSequenceNumber(5))) { packet in
            #expect(packet.tcp.flags == .rst)
            #expect(packet.tcp.window == 0)
            #expect(packet.tcp.acknowledgmentNumber == TCPSequenceNumber(0))
        }
        let withAck = TCPSegmentRepr.reset(
            from: local, to: remote, sequenceNumber: TCPSequenceNumber(0), acknowledgmentNumber: TCPSequenceNumber(6))
        try roundTrip(withAck) { packet in
            #expect(packet.tcp.flags == [.rst, .ack])
            #expect(packet.tcp.acknowledgmentNumber == TCPSequenceNumber(6))
        }
    }

    @Test func customHopLimitAndIdentification() throws {
        var repr = TCPSegmentRepr.ack(
            from: local4, to: remote4, sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(2),
            window: 3)
        repr.hopLimit = 1
        repr.identification = 0xBEEF
        try roundTrip(repr)
        var repr6 = TCPSegmentRepr.ack(
            from: local6, to: remote6, sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(2),
            window: 3)
        repr6.hopLimit = 255
        try roundTrip(repr6)
    }

    @Test func emitWritesOnlyItsOwnBytes() throws {
        let repr = TCPSegmentRepr.zeroWindowAck(
            from: local4, to: remote4, sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(2))
        var buffer = [UInt8](repeating: 0xA5, count: repr.bufferLength + 8)
        try buffer.withUnsafeMutableBytes { try repr.emit(into: $0) }
        #expect(buffer[repr.bufferLength...].allSatisfy { $0 == 0xA5 })
        #expect(Array(buffer[..<repr.bufferLength]) == (try emitted(repr)))
    }

    @Test func emitRefusesWhatItCannotEncode() {
        func emitError(_ repr: TCPSegmentRepr, bufferLength: Int? = nil) -> WireError? {
            var buffer = [UInt8](repeating: 0, count: bufferLength ?? repr.bufferLength)
            return buffer.withUnsafeMutableBytes { raw -> WireError? in
                do throws(WireError) {
                    try repr.emit(into: raw)
                    return nil
                } catch {
                    return error
                }
            }
        }
        let ack = TCPSegmentRepr.ack(
            from: local4, to: remote4, sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(2),
            window: 3)

        var mixedFamilies = ack
        mixedFamilies.destination = remote6
        #expect(emitError(mixedFamilies)?.kind == .addressFamilyMismatch)

        #expect(emitError(ack, bufferLength: ack.bufferLength - 1)?.kind == .bufferTooSmall)

        var tooManyOptions = ack
        tooManyOptions.options = Array(repeating: .timestamps(value: 0, echo: 0), count: 5)
        #expect(emitError(tooManyOptions)?.kind == .badOption)

        var tooLarge = ack
        tooLarge.payload = [UInt8](repeating: 0, count: 65_535 - 40 + 1)
        #expect(emitError(tooLarge)?.kind == .badTotalLength)
        tooLarge.payload.removeLast()
        #expect(emitError(tooLarge) == nil)
    }
}
