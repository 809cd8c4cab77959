// rackd — tests for pass-through mode: which flows are managed, and when they are released.

import Testing
@testable import RackEngine

@Suite struct PassthroughTrackerTests {
    let flow = FlowKey(
        local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40000),
        remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 5001))

    @Test func synStartsManagingOnce() {
        var tracker = PassthroughTracker()
        let first = tracker.handleSegment(flow, flags: [.syn], direction: .outbound, now: .seconds(1))
        #expect(first.ruleChanges == [.manage(flow)])
        let retransmit = tracker.handleSegment(flow, flags: [.syn], direction: .outbound, now: .seconds(2))
        #expect(retransmit.ruleChanges.isEmpty)
        #expect(tracker.flowCount == 1)
    }

    @Test func strayPacketOfUnknownFlowIsIgnored() {
        var tracker = PassthroughTracker()
        #expect(tracker.handleSegment(flow, flags: [.ack], direction: .inbound, now: .seconds(1)).ruleChanges.isEmpty)
        #expect(tracker.handleSegment(flow, flags: [.syn, .rst], direction: .inbound, now: .seconds(1)).ruleChanges.isEmpty)
        #expect(tracker.flowCount == 0)
    }

    @Test func bothFinsRelease() {
        var tracker = PassthroughTracker()
        _ = tracker.handleSegment(flow, flags: [.syn], direction: .outbound, now: .seconds(1))
        #expect(tracker.handleSegment(flow, flags: [.fin, .ack], direction: .outbound, now: .seconds(2)).ruleChanges.isEmpty)
        let last = tracker.handleSegment(flow, flags: [.fin, .ack], direction: .inbound, now: .seconds(3))
        #expect(last.ruleChanges == [.release(flow)])
        #expect(last.events == [.flowReleased(flow, reason: "closed")])
        #expect(tracker.flowCount == 0)
    }

    @Test func resetReleases() {
        var tracker = PassthroughTracker()
        _ = tracker.handleSegment(flow, flags: [.syn], direction: .inbound, now: .seconds(1))
        #expect(tracker.handleSegment(flow, flags: [.rst], direction: .inbound, now: .seconds(2)).ruleChanges == [.release(flow)])
    }

    @Test func idleFlowsAreSweptAtTheDeadline() {
        var tracker = PassthroughTracker(maximumFlows: 10, idleTimeout: .seconds(60))
        _ = tracker.handleSegment(flow, flags: [.syn], direction: .outbound, now: .seconds(0))
        var now = EngineInstant.seconds(0)
        var released: [RuleChange] = []
        // Jump from deadline to deadline, as the daemon's loop does, instead of sleeping.
        for _ in 0..<10 {
            guard let deadline = tracker.nextDeadline else { break }
            now = deadline
            released += tracker.handleTimeout(now: now).ruleChanges
        }
        #expect(released == [.release(flow)])
        #expect(now >= .seconds(60) && now <= .seconds(90))
        #expect(tracker.nextDeadline == nil)
    }

    @Test func fullTableLeavesNewFlowsAlone() {
        var tracker = PassthroughTracker(maximumFlows: 1)
        _ = tracker.handleSegment(flow, flags: [.syn], direction: .outbound, now: .seconds(0))
        var other = flow
        other.local.port = 40001
        let output = tracker.handleSegment(other, flags: [.syn], direction: .outbound, now: .seconds(0))
        #expect(output.ruleChanges.isEmpty)
        #expect(output.events == [.flowTableFull(other)])
    }
}
