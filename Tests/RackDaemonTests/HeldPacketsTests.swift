// rackd — the held packets' bookkeeping (Queue/HeldPackets.swift): a release gives the first packet held
// for a flow the engine's verdict and drops the retransmissions held after it; the cap; shutdown.

@testable import RackDaemon
import RackEngine
import Testing

@Suite struct HeldPacketsTests {
    static let flow = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40000),
                              remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
    static let other = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40001),
                               remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))

    @Test func firstPacketGetsTheVerdictAndRetransmissionsAreDropped() {
        var held = HeldPackets()
        #expect(held.hold(7, for: Self.flow))
        #expect(held.hold(9, for: Self.other))
        #expect(held.hold(12, for: Self.flow))
        #expect(held.hold(30, for: Self.flow))
        #expect(held.count == 4)
        let verdicts = held.release(HeldPacketRelease(flow: Self.flow, verdict: .replace([1, 2, 3])))
        #expect(verdicts.map(\.id) == [7, 12, 30])
        #expect(verdicts.map(\.verdict) == [.replace([1, 2, 3]), .drop, .drop])
        #expect(held.count == 1)
        #expect(held.release(HeldPacketRelease(flow: Self.flow, verdict: .accept)).isEmpty, "released once only")
        #expect(held.release(HeldPacketRelease(flow: Self.other, verdict: .drop)).map(\.verdict) == [.drop])
        #expect(held.isEmpty)
    }

    @Test func verdictsAHeldPacketCannotCarryBecomeAccept() {
        var held = HeldPackets()
        for verdict in [PacketVerdict.acceptModified(length: 40), .hold(Self.flow), .accept] {
            #expect(held.hold(1, for: Self.flow))
            #expect(held.release(HeldPacketRelease(flow: Self.flow, verdict: verdict)).map(\.verdict) == [.accept])
        }
    }

    @Test func theCapRefusesAndReleasingMakesRoom() {
        var held = HeldPackets(capacity: 2)
        #expect(held.hold(1, for: Self.flow))
        #expect(held.hold(2, for: Self.other))
        #expect(!held.hold(3, for: Self.flow))
        #expect(held.count == 2)
        #expect(held.release(HeldPacketRelease(flow: Self.flow, verdict: .accept)).map(\.id) == [1])
        #expect(held.hold(3, for: Self.flow))
    }

    @Test func releaseAllReturnsEveryIdOnce() {
        var held = HeldPackets()
        _ = held.hold(1, for: Self.flow)
        _ = held.hold(2, for: Self.other)
        _ = held.hold(3, for: Self.flow)
        #expect(held.releaseAll().sorted() == [1, 2, 3])
        #expect(held.isEmpty)
        #expect(held.releaseAll().isEmpty)
    }
}
