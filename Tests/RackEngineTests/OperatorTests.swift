// rackd — `rackctl suspend` and `rackctl resume` in the engine: an operator's hold survives a working
// path and the peer's attempts to resume, and lifting it resumes at once.

import Testing
@testable import RackEngine

@Suite struct OperatorTests {
    /// rackd messages A sent onto the path (challenges, responses, confirms), counted from `start`.
    static func messagesFromA(_ pair: RacksPair, since start: Int) throws -> [RacksMessage] {
        try pair.wireFromA[start...].flatMap { bytes in
            try pair.parse(bytes).options.compactMap { option in try RacksMessage(option: option) }
        }
    }

    /// A holds the connection (rackctl suspend); B loses and regains its address, so it is suspended too
    /// and challenges A over a working path.
    static func heldByAWhileBChallenges() throws -> RacksPair {
        var pair = RacksPair()
        try pair.connect()
        try pair.advance(by: .seconds(2))
        try pair.route(try pair.a.suspendByOperator(.all, now: pair.now).output, from: .a)
        try pair.route(pair.b.handleLinkEvent(.addressesLost([RacksPair.addressB]), now: pair.now), from: .b)
        try pair.route(pair.b.handleLinkEvent(.addressesAvailable([RacksPair.addressB]), now: pair.now), from: .b)
        return pair
    }

    @Test func suspendHoldsAHealthyConnectionAsAnOutageWould() throws {
        var pair = RacksPair()
        try pair.connect()
        try pair.advance(by: .seconds(2))
        let outcome = try pair.a.suspendByOperator(.all, now: pair.now)
        try pair.route(outcome.output, from: .a)
        #expect(outcome.changed == [1])
        #expect(outcome.output.ruleChanges == [.manage(pair.flowA)])
        let status = try #require(pair.a.connections.first)
        #expect(status.phase == .suspended)
        #expect(status.heldByOperator)
        #expect(pair.eventsA.contains(.phaseChanged(
            id: 1, pair.flowA, from: .healthy, to: .suspended, reason: Connection.operatorSuspendReason)))
    }

    @Test func aHeldConnectionStaysHeldWhileThePathWorks() throws {
        var pair = try Self.heldByAWhileBChallenges()
        let sentBefore = pair.wireFromA.count
        try pair.advance(by: .seconds(30))
        #expect(pair.phase(.a) == .suspended)
        #expect(pair.a.connections.first?.heldByOperator == true)
        #expect(pair.phase(.b) == .suspended)  // its challenges went unanswered
        #expect(try Self.messagesFromA(pair, since: sentBefore).isEmpty)
    }

    @Test func resumeChallengesAtOnceAndBothEndsResume() throws {
        var pair = try Self.heldByAWhileBChallenges()
        try pair.advance(by: .seconds(10))
        let sentBefore = pair.wireFromA.count
        let outcome = try pair.a.resumeByOperator(.connection(id: 1), now: pair.now)
        try pair.route(outcome.output, from: .a)
        #expect(outcome.changed == [1])
        // The challenge goes out with the request itself, not at the next timer.
        let first = try Self.messagesFromA(pair, since: sentBefore).first
        guard case .challenge = first else {
            Issue.record("expected a challenge from A at once, got \(String(describing: first))")
            return
        }
        try pair.advance(by: .milliseconds(200))
        // Resumed on both ends (suspect at once, as the simulated sockets have been quiet for 10 s).
        #expect(pair.eventsA.contains { if case .resumed = $0 { return true }; return false })
        #expect(pair.eventsB.contains { if case .resumed = $0 { return true }; return false })
        #expect([.healthy, .suspect].contains(pair.phase(.a)))
        #expect([.healthy, .suspect].contains(pair.phase(.b)))
        #expect(pair.a.connections.first?.heldByOperator == false)
        #expect(pair.a.connections.first?.resumptions == 1)
    }

    @Test func operatorHoldOfAnOutageStopsResumptionUntilResume() throws {
        var pair = try RacksSuspensionTests.suspendedPair()
        let outcome = try pair.a.suspendByOperator(.connection(id: 1), now: pair.now)
        #expect(outcome.changed == [1])
        pair.pathUp = true
        try pair.advance(by: .seconds(5))
        #expect(pair.phase(.a) == .suspended)
        try pair.route(try pair.a.resumeByOperator(.all, now: pair.now).output, from: .a)
        try pair.advance(by: .seconds(1))
        #expect(pair.phase(.a) == .healthy)
        #expect(pair.phase(.b) == .healthy)
    }

    @Test func requestsSayWhatTheyLeftAlone() throws {
        var pair = RacksPair()
        try pair.connect()
        let resumeHealthy = try pair.a.resumeByOperator(.all, now: pair.now)
        #expect(resumeHealthy.changed.isEmpty)
        #expect(resumeHealthy.unchanged.map(\.reason) == ["not suspended (healthy)"])
        _ = try pair.a.suspendByOperator(.all, now: pair.now)
        let again = try pair.a.suspendByOperator(.all, now: pair.now)
        #expect(again.changed.isEmpty)
        #expect(again.unchanged.map(\.reason) == ["already held by the operator"])
        #expect(throws: UnknownConnectionError(id: 42)) { try pair.a.suspendByOperator(.connection(id: 42), now: pair.now) }
    }

    @Test func aHeldConnectionIsStillGivenUpAfterTheMaximumSuspension() throws {
        var configuration = Configuration()
        configuration.maximumSuspension = .seconds(60)
        var pair = RacksPair(configuration: configuration)
        try pair.connect()
        _ = try pair.a.suspendByOperator(.all, now: pair.now)
        let deadline = try #require(pair.a.nextDeadline)
        #expect(deadline <= pair.now + .seconds(60))
        try pair.advance(by: .seconds(61))
        #expect(pair.a.connections.isEmpty)
    }
}
