// rackd — when a held connection tries to resume (Core/ResumptionSchedule.swift, docs/roaming.md "Attempts
// while held"): the backoff over a long hold and what it costs, events that start it again, the bound on
// attempts a burst of events brings, and a moved host that resumes as soon as its route is added.

import Testing
@testable import RackEngine

@Suite struct ResumptionScheduleTests {
    static let start = ConnectionTransitionTests.start

    /// Runs `connection`'s timers at each attempt it schedules until `end` (or its end); returns the
    /// instants at which it sent an attempt, and the bytes of the first.
    static func attempts(of connection: inout Connection, until end: EngineInstant,
                         configuration: Configuration = Configuration()) -> (at: [EngineInstant], firstBytes: Int) {
        var sent: [EngineInstant] = []
        var firstBytes = 0
        while let next = connection.hold?.nextAttemptAt, next < end {
            var context = ConnectionTransitionTests.context(at: next, configuration: configuration)
            let actions = connection.handleTimeout(&context)
            if actions.end != nil { break }
            if let first = actions.transmits.first {
                sent.append(next)
                if firstBytes == 0 { firstBytes = first.count }
            }
            #expect(connection.hold?.nextAttemptAt ?? end > next, "every attempt schedules a later one")
        }
        return (sent, firstBytes)
    }

    // MARK: The schedule

    @Test func theIntervalIsFastForHalfAnHourThenSlowsAndIsCapped() {
        #expect(ResumptionSchedule.interval(age: .zero) == .milliseconds(500))
        #expect(ResumptionSchedule.interval(age: .seconds(1799)) == .milliseconds(500))
        #expect(ResumptionSchedule.interval(age: .seconds(1800)) == .seconds(2))
        #expect(ResumptionSchedule.interval(age: .seconds(7199)) == .seconds(2))
        #expect(ResumptionSchedule.interval(age: .seconds(7200)) == .seconds(10))
        #expect(ResumptionSchedule.interval(age: .seconds(7 * 24 * 3600)) == .seconds(10))
    }

    /// The figures of docs/roaming.md, "Attempts while held": a black hole held for the default maximum
    /// suspension (7 days), one challenge per attempt.
    @Test func aSevenDayHoldCostsThisManyChallenges() {
        var connection = ConnectionTransitionTests.suspended()
        let day = Duration.seconds(24 * 3600)
        let (sent, bytes) = Self.attempts(of: &connection, until: Self.start + day * 8)
        var perDay = [Int](repeating: 0, count: 7)
        for instant in sent { perDay[Int(instant.duration(since: Self.start) / day)] += 1 }
        // 3600 in the first 30 minutes, 2700 in the next 90, then 360 an hour.
        #expect(perDay[0] == 3600 + 2700 + 22 * 360)
        #expect(perDay[1...].allSatisfy { $0 == 24 * 360 })
        #expect(sent.count == 66_060)
        #expect(bytes == 64, "an IPv4 challenge: 20 bytes of IP, 20 of TCP, 24 of options")
        let last = sent.last.map { $0.duration(since: Self.start) } ?? .zero
        #expect(last < day * 7, "nothing after the maximum suspension: the connection ended")
    }

    @Test func anEventStartsTheScheduleAgain() {
        var connection = ConnectionTransitionTests.suspended()
        let later = Self.start + .seconds(3 * 3600)
        _ = Self.attempts(of: &connection, until: later)
        let before = connection.hold!.nextAttemptAt
        #expect(before.duration(since: connection.hold!.lastAttemptAt!) == .seconds(10), "backed off to the cap")
        let eventAt = connection.hold!.lastAttemptAt! + .seconds(1)
        _ = connection.handleLinkEvent(.routesAdded([.ipv4]), now: eventAt)
        #expect(connection.hold?.nextAttemptAt == eventAt, "the event brings the next attempt forward")
        let (sent, _) = Self.attempts(of: &connection, until: eventAt + .seconds(5))
        let gaps = zip(sent, sent.dropFirst()).map { $1.duration(since: $0) }
        #expect(sent.first == eventAt)
        #expect(gaps.first == ResumptionSchedule.followUpDelay, "a follow-up shortly after the event's attempt")
        #expect(gaps.dropFirst().allSatisfy { $0 == .milliseconds(500) }, "then fast again: \(gaps)")
        #expect(sent.count == 11)
    }

    @Test func aRouteOrAnAddressOfTheOtherFamilyChangesNothing() {
        var connection = ConnectionTransitionTests.suspended()
        _ = Self.attempts(of: &connection, until: Self.start + .milliseconds(1))
        let next = connection.hold!.nextAttemptAt
        _ = connection.handleLinkEvent(.routesAdded([.ipv6]), now: Self.start + .milliseconds(100))
        #expect(connection.hold?.nextAttemptAt == next)
        let v6 = IPAddress.v6(IPv6Address(high: 0xfd00_0003_0000_0000, low: 2))
        _ = connection.handleLinkEvent(.addressesAvailable([v6]), now: Self.start + .milliseconds(100))
        #expect(connection.hold?.nextAttemptAt == next, "nor does an address of the other family")
        _ = connection.handleLinkEvent(.routesAdded([.ipv6, .ipv4]), now: Self.start + .milliseconds(100))
        #expect(connection.hold?.nextAttemptAt == Self.start + .milliseconds(100))
    }

    @Test func aConnectionTheOperatorHoldsIgnoresRoutes() {
        var connection = ConnectionTransitionTests.healthy()
        var actions = ConnectionActions()
        #expect(connection.holdForOperator(now: Self.start, into: &actions) == nil)
        _ = connection.handleLinkEvent(.routesAdded([.ipv4]), now: Self.start + .seconds(1))
        var context = ConnectionTransitionTests.context(at: Self.start + .seconds(1))
        #expect(connection.handleTimeout(&context).transmits.isEmpty, "no attempt while the operator holds it")
    }

    /// A routing daemon, or a flapping link, sends route events by the hundred: the peer sees a handful of
    /// attempts, not one per event.
    @Test func aBurstOfRouteEventsBringsAtMostFourAttemptsASecond() {
        var connection = ConnectionTransitionTests.suspended()
        var sent: [EngineInstant] = []
        var now = Self.start
        let end = Self.start + .seconds(3)
        while now < end {
            _ = connection.handleLinkEvent(.routesAdded([.ipv4]), now: now)
            if let due = connection.hold?.nextAttemptAt, due <= now {
                var context = ConnectionTransitionTests.context(at: now)
                if !connection.handleTimeout(&context).transmits.isEmpty { sent.append(now) }
            }
            now = now + .milliseconds(1)
        }
        #expect(zip(sent, sent.dropFirst()).allSatisfy { $1.duration(since: $0) >= ResumptionSchedule.eventRetrySpacing })
        for second in 0..<3 {
            let from = Self.start + .seconds(Int64(second))
            let within = sent.filter { $0 >= from && $0 < from + .seconds(1) }.count
            // Four brought forward by events, and the schedule's own two (kept at 500 ms by the events).
            #expect(within <= ResumptionSchedule.eventRetries + 2, "second \(second): \(within) attempts")
        }
        #expect(sent.count >= 3 * 2, "never fewer than the schedule's own")
    }

    // MARK: A moved host and its route

    /// The order DHCP and `tb_move_a` produce: the new address first, its default route later. The attempts
    /// made with the address (and its follow-up) find no route (the kernel refuses to send them:
    /// ENETUNREACH); the route event tries again at once, so both hosts move the connection within one
    /// round trip of the route.
    @Test func aMovedHostResumesAsSoonAsItsRouteIsAdded() throws {
        var pair = try RoamingTests.connectedPair()
        pair.dropAToB = true  // no route to B from the new address yet
        try pair.move(.a, to: RoamingTests.newAddressA)
        try pair.advance(by: .milliseconds(100), step: .milliseconds(1))
        #expect(RoamingTests.roamedEvents(pair.eventsA).isEmpty, "the first roam found no route")
        pair.dropAToB = false
        let routeAt = pair.now
        let output = pair.a.handleLinkEvent(.routesAdded([.ipv4]), now: pair.now)
        try pair.route(output, from: .a)
        let movedAt = try Self.advanceUntilBothMoved(&pair, within: .seconds(2))
        let delay = movedAt.map { $0.duration(since: routeAt) }
        #expect(delay != nil && delay! <= ResumptionSchedule.eventRetrySpacing,
                "moved \(String(describing: delay)) after the route was added")
    }

    /// The events of `tb_move_a` in the order rackd read them (measured): the old address goes; 50 ms later
    /// the IPv4 address comes with its subnet's route, the IPv6 address 7 ms after it, the default route 5 ms
    /// after that. The IPv6 address must not spend the bound on attempts brought forward: the default route
    /// still brings one at once.
    @Test func theEventsOfAMoveLeaveRoomForTheDefaultRoute() throws {
        var pair = try RoamingTests.connectedPair()
        pair.dropAToB = true
        pair.currentAddressesA = [RoamingTests.newAddressA]
        try pair.route(pair.a.handleLinkEvent(.addressesLost([RacksPair.addressA]), now: pair.now), from: .a)
        try pair.advance(by: .milliseconds(50), step: .milliseconds(1))
        try pair.route(pair.a.handleLinkEvent(.addressesAvailable([RoamingTests.newAddressA]), now: pair.now), from: .a)
        try pair.route(pair.a.handleLinkEvent(.routesAdded([.ipv4]), now: pair.now), from: .a)
        try pair.advance(by: .milliseconds(7), step: .milliseconds(1))
        let v6 = IPAddress.v6(IPv6Address(high: 0xfd00_0003_0000_0000, low: 2))
        try pair.route(pair.a.handleLinkEvent(.addressesAvailable([v6]), now: pair.now), from: .a)
        try pair.route(pair.a.handleLinkEvent(.routesAdded([.ipv6]), now: pair.now), from: .a)
        try pair.advance(by: .milliseconds(5), step: .milliseconds(1))
        pair.dropAToB = false
        let routeAt = pair.now
        try pair.route(pair.a.handleLinkEvent(.routesAdded([.ipv4]), now: pair.now), from: .a)
        let movedAt = try Self.advanceUntilBothMoved(&pair, within: .seconds(2))
        let delay = movedAt.map { $0.duration(since: routeAt) }
        #expect(delay != nil && delay! <= ResumptionSchedule.eventRetrySpacing,
                "moved \(String(describing: delay)) after the default route")
    }

    /// Without the route event the same move waits for the schedule's next attempt.
    @Test func withoutTheRouteEventTheMoveWaitsForTheNextAttempt() throws {
        var pair = try RoamingTests.connectedPair()
        pair.dropAToB = true
        try pair.move(.a, to: RoamingTests.newAddressA)
        try pair.advance(by: .milliseconds(100), step: .milliseconds(1))
        pair.dropAToB = false
        let routeAt = pair.now
        let movedAt = try Self.advanceUntilBothMoved(&pair, within: .seconds(2))
        let delay = movedAt.map { $0.duration(since: routeAt) }
        #expect(delay != nil && delay! >= .milliseconds(400), "moved \(String(describing: delay)) after the route")
    }

    /// A path that comes without an event of its own soon after the one that announced it (a link's carrier
    /// returns: the kernel revives its routes silently, and the attempt made on the link event can still
    /// find none): the follow-up finds it.
    @Test func theFollowUpFindsAPathThatCameJustAfterItsEvent() throws {
        var pair = try RoamingTests.connectedPair()
        pair.dropAToB = true
        let movedFrom = pair.now
        try pair.move(.a, to: RoamingTests.newAddressA)
        try pair.advance(by: .milliseconds(20), step: .milliseconds(1))
        pair.dropAToB = false  // no event says so
        let movedAt = try Self.advanceUntilBothMoved(&pair, within: .seconds(2))
        let delay = movedAt.map { $0.duration(since: movedFrom) }
        #expect(delay != nil && delay! <= ResumptionSchedule.followUpDelay + .milliseconds(5),
                "moved \(String(describing: delay)) after the address")
    }

    /// Advances in 1 ms steps until both hosts report the move; the instant, or nil after `limit`.
    static func advanceUntilBothMoved(_ pair: inout RacksPair, within limit: Duration) throws -> EngineInstant? {
        let end = pair.now + limit
        while pair.now < end {
            try pair.advance(by: .milliseconds(1), step: .milliseconds(1))
            if !RoamingTests.roamedEvents(pair.eventsA).isEmpty && !RoamingTests.roamedEvents(pair.eventsB).isEmpty {
                return pair.now
            }
        }
        return nil
    }
}
