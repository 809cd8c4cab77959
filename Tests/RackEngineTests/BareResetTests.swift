// rackd — a moved connection's first reset without ACK is held back (ConnectionCore.screenBareReset;
// docs/rules-restore.md): the peer's kernel sends one whenever a segment reached it unmapped, which a
// firewall reload on the peer causes for a moment.

import Testing
@testable import RackEngine

@Suite struct BareResetTests {
    static func movedPair() throws -> (RacksPair, FlowKey) {
        var pair = RacksPair()
        try pair.connect()
        try pair.move(.a, to: .v4(IPv4Address(10, 3, 0, 2)))
        try pair.advance(by: .seconds(2))
        let wire = try #require(pair.b.connections.first?.wire)
        return (pair, wire)
    }

    @Test func aLoneResetIsDroppedAndTheConnectionCarriesOn() throws {
        var (pair, wire) = try Self.movedPair()
        let reset = TCPSegmentRepr.reset(from: wire.remote, to: wire.local, sequenceNumber: TCPSequenceNumber(5001))
        #expect(try pair.run(reset, .inbound, on: .b).verdict == .drop)
        // The peer's next segment shows it still has the connection.
        let ack = TCPSegmentRepr.ack(from: wire.remote, to: wire.local, sequenceNumber: TCPSequenceNumber(1002),
                                     acknowledgmentNumber: TCPSequenceNumber(5001), window: 500)
        #expect(try pair.run(ack, .inbound, on: .b).verdict != .drop)
        try pair.advance(by: .seconds(2))
        #expect(try pair.run(reset, .inbound, on: .b).verdict == .drop, "after the peer was heard, a reset starts over")
    }

    @Test func resetsThatKeepComingForASecondReachTheSocket() throws {
        var (pair, wire) = try Self.movedPair()
        let reset = TCPSegmentRepr.reset(from: wire.remote, to: wire.local, sequenceNumber: TCPSequenceNumber(5001))
        #expect(try pair.run(reset, .inbound, on: .b).verdict == .drop)
        try pair.advance(by: .milliseconds(500))
        #expect(try pair.run(reset, .inbound, on: .b).verdict == .drop)
        try pair.advance(by: .milliseconds(600))
        #expect(try pair.run(reset, .inbound, on: .b).verdict != .drop, "the peer forgot the connection: the socket must hear it")
    }
}
