// rackd — every way a roam is refused, deterministically (docs/security.md, the tables of attempts).

import Testing
@testable import RackEngine

@Suite struct RoamingRejectionTests {
    /// A's roam SYN toward B, as the path carries it, after A moved with B's answers lost.
    static func capturedRoam() throws -> (pair: RacksPair, roamSYN: [UInt8]) {
        var pair = try RoamingTests.connectedPair()
        pair.dropBToA = true
        try pair.move(.a, to: RoamingTests.newAddressA)
        try pair.advance(by: .milliseconds(700))
        let syn = try #require(pair.wireFromA.last { (try? pair.parse($0))?.flags == .syn })
        return (pair, syn)
    }

    static func inbound(_ bytes: [UInt8], to host: RacksPair.Host, _ pair: inout RacksPair) -> EngineOutput {
        var copy = bytes
        var engine = host == .a ? pair.a : pair.b
        let output = copy.withUnsafeMutableBytes { engine.handlePacket($0, direction: .inbound, now: pair.now) }
        if host == .a { pair.a = engine } else { pair.b = engine }
        return output
    }

    static func withOption(_ segment: TCPSegmentRepr, _ message: RacksMessage) throws -> [UInt8] {
        var copy = segment
        copy.options = [message.option]
        return try emitted(copy)
    }

    @Test func unknownConnectionIDIsDroppedSilentlyAndCounted() throws {
        var (pair, syn) = try Self.capturedRoam()
        var forged = try pair.parse(syn)
        var outputs: [EngineOutput] = []
        for index in 0..<10_000 {
            forged.source = TCPEndpoint(address: .v4(IPv4Address(10, 200, UInt8(index >> 8 & 0xff), UInt8(index & 0xff))),
                                        port: UInt16(1024 + index % 60_000))
            let bytes = try Self.withOption(forged, .roam(connectionID: [UInt8](repeating: UInt8(index & 0xff), count: 8),
                                                          nonce: [UInt8](repeating: 7, count: 16), isn: TCPSequenceNumber(9)))
            outputs.append(Self.inbound(bytes, to: .b, &pair))
        }
        #expect(outputs.allSatisfy { $0.verdict == .drop && $0.transmits.isEmpty && $0.ruleChanges.isEmpty })
        // One report now; the rest are summed into the next, 10 s later.
        #expect(outputs.flatMap(\.events) == [.unknownRoamsDropped(count: 1)])
        pair.now = pair.now + .seconds(11)
        let later = pair.b.handleTimeout(now: pair.now)
        #expect(later.events.contains(.unknownRoamsDropped(count: 9_999)))
        #expect(pair.b.connections.count == 1 && pair.b.connections[0].wire == nil)
    }

    @Test func malformedRackdOptionOnASYNIsDropped() throws {
        var (pair, syn) = try Self.capturedRoam()
        var bytes = syn
        let optionStart = 20 + 20
        bytes[optionStart + 1] = 0x0a  // a roam that claims to be 10 bytes long
        let output = Self.inbound(bytes, to: .b, &pair)
        #expect(output.verdict == .drop && output.transmits.isEmpty)
    }

    @Test func forgedRoamResponseIsRejected() throws {
        var (pair, syn) = try Self.capturedRoam()
        let roam = try pair.parse(syn)
        let forged = TCPSegmentRepr.synAck(
            from: roam.destination, to: roam.source, sequenceNumber: TCPSequenceNumber(77),
            acknowledgmentNumber: roam.sequenceNumber + 1, window: 1000,
            options: [RacksMessage.roamResponse(isn: TCPSequenceNumber(77), nonce: [UInt8](repeating: 1, count: 12),
                                                mac: [UInt8](repeating: 2, count: 16)).option])
        let output = Self.inbound(try emitted(forged), to: .a, &pair)
        #expect(output.verdict == .drop && output.transmits.isEmpty)
        #expect(output.events.contains { if case .resumptionRejected = $0 { return true }; return false })
        #expect(pair.phase(.a) == .suspended && pair.a.connections[0].wire == nil)
    }

    @Test func forgedConfirmIsRejectedAndThePathIsNeverGranted() throws {
        var (pair, syn) = try Self.capturedRoam()
        _ = Self.inbound(syn, to: .b, &pair)  // B answers (its SYN-ACK is lost toward A)
        let roam = try pair.parse(syn)
        let forged = TCPSegmentRepr(source: roam.source, destination: roam.destination, sequenceNumber: roam.sequenceNumber + 1,
                                    acknowledgmentNumber: TCPSequenceNumber(1), flags: .ack, window: 1000,
                                    options: [RacksMessage.confirm(mac: [UInt8](repeating: 3, count: 16)).option])
        let output = Self.inbound(try emitted(forged), to: .b, &pair)
        #expect(output.verdict == .drop)
        #expect(output.events.contains { if case .resumptionRejected = $0 { return true }; return false })
        #expect(pair.b.connections[0].wire == nil)
        // Data B's socket sends still goes to the old tuple, never to the unvalidated new one.
        #expect(pair.b.racksManagedFlows.contains { $0.remote.address == RoamingTests.newAddressA })
    }

    @Test func redirectionToAThirdAddressIsNeverGranted() throws {
        var (pair, syn) = try Self.capturedRoam()
        var redirected = try pair.parse(syn)
        redirected.source = TCPEndpoint(address: .v4(IPv4Address(10, 77, 0, 9)), port: redirected.source.port)
        let answer = Self.inbound(try emitted(redirected), to: .b, &pair)
        // B answers toward the third address (it cannot know yet), but moves nothing there.
        #expect(answer.transmits.count == 1)
        #expect(pair.b.connections[0].wire == nil)
        // Nothing from the third address is delivered to B's socket while unconfirmed.
        let data = TCPSegmentRepr(source: redirected.source, destination: redirected.destination,
                                  sequenceNumber: redirected.sequenceNumber + 1, acknowledgmentNumber: TCPSequenceNumber(1),
                                  flags: .ack, window: 1000, payload: [1, 2, 3])
        #expect(Self.inbound(try emitted(data), to: .b, &pair).verdict == .drop)
        try pair.advance(by: .seconds(6))
        #expect(!pair.b.racksManagedFlows.contains { $0.remote.address == .v4(IPv4Address(10, 77, 0, 9)) })
    }

    @Test func replayedRoamHandshakeIsRejected() throws {
        // A genuine roam, recorded on the path.
        var pair = try RoamingTests.connectedPair()
        try pair.move(.a, to: RoamingTests.newAddressA)
        try pair.advance(by: .seconds(1))
        let recorded = pair.wireFromA.filter { (try? pair.parse($0))?.options.contains { if case .experimental = $0 { return true }; return false } ?? false }
        #expect(recorded.count >= 2)  // the roam SYN and the confirm
        let wireBefore = pair.b.connections[0].wire
        let movesBefore = RoamingTests.roamedEvents(pair.eventsB).count
        // Replayed later from the same place: B answers the SYN with a fresh nonce, so the old confirm fails.
        pair.now = pair.now + .seconds(30)
        for bytes in recorded {
            let output = Self.inbound(bytes, to: .b, &pair)
            #expect(output.verdict == .drop)
            pair.eventsB += output.events
        }
        #expect(RoamingTests.roamedEvents(pair.eventsB).count == movesBefore)
        #expect(pair.b.connections[0].wire == wireBefore)
        #expect(pair.phase(.b) == .healthy)
    }
}
