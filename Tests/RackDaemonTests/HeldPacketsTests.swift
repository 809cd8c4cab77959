// rackd — the held packets' bookkeeping (Queue/HeldPackets.swift): a release gives the first packet held
// for a flow the engine's verdict and drops the retransmissions held after it; the cap; shutdown.
// (Mutating calls are made before `#expect`, which cannot take them.)

@testable import RackDaemon
import RackEngine
import Testing

@Suite struct HeldPacketsTests {
    static let flow = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40000),
                              remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
    static let other = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40001),
                               remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))

    /// Holds each (id, flow) in turn; whether each was kept.
    static func hold(_ held: inout HeldPackets, _ packets: [(UInt32, FlowKey)]) -> [Bool] {
        packets.map { held.hold($0.0, for: $0.1) }
    }

    @Test func firstPacketGetsTheVerdictAndRetransmissionsAreDropped() {
        var held = HeldPackets()
        let kept = Self.hold(&held, [(7, Self.flow), (9, Self.other), (12, Self.flow), (30, Self.flow)])
        #expect(kept == [true, true, true, true])
        #expect(held.count == 4)
        let verdicts = held.release(HeldPacketRelease(flow: Self.flow, verdict: .replace([1, 2, 3])))
        #expect(verdicts.map(\.id) == [7, 12, 30])
        #expect(verdicts.map(\.verdict) == [.replace([1, 2, 3]), .drop, .drop])
        #expect(held.count == 1)
        let again = held.release(HeldPacketRelease(flow: Self.flow, verdict: .accept))
        #expect(again.isEmpty, "released once only")
        let other = held.release(HeldPacketRelease(flow: Self.other, verdict: .drop))
        #expect(other.map(\.id) == [9])
        #expect(other.map(\.verdict) == [.drop])
        #expect(held.isEmpty)
    }

    @Test func verdictsAHeldPacketCannotCarryBecomeAccept() {
        var held = HeldPackets()
        for verdict in [PacketVerdict.acceptModified(length: 40), .hold(Self.flow), .accept] {
            let kept = Self.hold(&held, [(1, Self.flow)])
            #expect(kept == [true])
            let released = held.release(HeldPacketRelease(flow: Self.flow, verdict: verdict))
            #expect(released.map(\.verdict) == [.accept])
        }
    }

    @Test func theCapRefusesAndReleasingMakesRoom() {
        var held = HeldPackets(capacity: 2)
        let kept = Self.hold(&held, [(1, Self.flow), (2, Self.other), (3, Self.flow)])
        #expect(kept == [true, true, false])
        #expect(held.count == 2)
        let released = held.release(HeldPacketRelease(flow: Self.flow, verdict: .accept))
        #expect(released.map(\.id) == [1])
        let keptNow = Self.hold(&held, [(3, Self.flow)])
        #expect(keptNow == [true])
    }

    @Test func releaseAllReturnsEveryIdOnce() {
        var held = HeldPackets()
        _ = Self.hold(&held, [(1, Self.flow), (2, Self.other), (3, Self.flow)])
        let all = held.releaseAll()
        #expect(all.sorted() == [1, 2, 3])
        #expect(held.isEmpty)
        let none = held.releaseAll()
        #expect(none.isEmpty)
    }
}
