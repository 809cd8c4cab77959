// rackd — liveness per wire path (docs/architecture.md, "Liveness at scale"; Core/PathIndex.swift): one
// sentinel per path is read and probed every heartbeat interval, the other members every
// `memberCheckInterval`; the sentinel failing fails the path, and every silent member with it at once.
//
// Host A's connections to B here each have a socket of their own (`RacksPair.flowSocketsA`), so that a
// probe answered refreshes only its own connection's last ACK, as the kernel's would.

import Testing
@testable import RackEngine

@Suite struct PathLivenessTests {
    /// `count` connections from A to B's port 22 (A's ports 40,000 and up, ids 1 to `count`), on one path,
    /// each with its own socket in A; then `settle` of idle time.
    static func path(of count: Int, settle: Duration = .seconds(10)) throws -> RacksPair {
        var pair = RacksPair()
        for index in 0..<count {
            pair.clientPort = 40_000 + UInt16(index)
            try pair.connect()
            var socket = pair.socketA
            socket.lastAckAt = pair.now
            pair.flowSocketsA[pair.flowA] = socket
        }
        try pair.advance(by: settle)
        return pair
    }

    static func flow(_ id: UInt64, _ pair: RacksPair) -> FlowKey {
        FlowKey(local: TCPEndpoint(address: RacksPair.addressA, port: 40_000 + UInt16(id - 1)), remote: pair.serverEnd)
    }

    static func phase(_ id: UInt64, _ pair: RacksPair) -> ConnectionPhase? {
        pair.a.connection(id: id)?.phase
    }

    static func sentinels(_ pair: RacksPair) -> [UInt64] {
        pair.a.connections.map(\.id).filter { pair.a.pathStanding(of: $0)?.isSentinel == true }
    }

    /// The sockets A reads and the probes it sends over the next `duration`.
    static func count(_ pair: inout RacksPair, over duration: Duration) throws -> (readings: Int, probes: Int) {
        let before = (pair.readingsA, pair.probesA)
        try pair.advance(by: duration)
        return (pair.readingsA - before.0, pair.probesA - before.1)
    }

    /// Why each connection of A was suspended, by id.
    static func suspensionReasons(_ pair: RacksPair) -> [UInt64: String] {
        var reasons: [UInt64: String] = [:]
        for case .phaseChanged(let id, _, _, .suspended, let reason) in pair.eventsA { reasons[id] = reason }
        return reasons
    }

    // MARK: Cost

    @Test func aMinuteOfAHundredIdleConnectionsOnOnePathCostsTheSentinelsReadingsAndAFifthOfTheOthers() throws {
        var pair = try Self.path(of: 100)
        #expect(Self.sentinels(pair) == [1])
        let (readings, probes) = try Self.count(&pair, over: .seconds(60))
        // The sentinel: one reading and one probe per interval and an eighth (53 in a minute); each of the 99
        // others one per 5 intervals and an eighth (11 or 12). Per connection and interval alone it was 5,300.
        #expect(probes >= 53 + 99 * 11 && probes <= 56 + 99 * 12, "probes: \(probes)")
        #expect(readings >= 53 + 99 * 11 && readings <= 56 + 99 * 12, "readings: \(readings)")
        #expect(probes <= readings)
        #expect(pair.a.connections.allSatisfy { $0.phase == .healthy })
        #expect(Self.sentinels(pair) == [1])
    }

    /// A member's own readings come every 5 intervals, so what it last heard itself can be seconds old;
    /// status shows when the peer was last heard on its path (by the sentinel) instead, while the path
    /// stands, and a member's own again once the path failed.
    @Test func statusShowsAMemberHeardWhenItsPathsSentinelLastHeardThePeer() throws {
        var pair = try Self.path(of: 10)
        try pair.advance(by: .seconds(23))
        let ages = pair.a.connections.map { pair.now.duration(since: $0.lastHeard) }
        #expect(ages.count == 10)
        #expect(ages.allSatisfy { $0 <= .milliseconds(1250) }, "\(ages)")
        pair.pathUp = false
        try pair.advance(by: .seconds(4))
        #expect(pair.a.connections.allSatisfy { $0.phase == .suspended })
        #expect(pair.a.connections.allSatisfy { pair.now.duration(since: $0.lastHeard) >= .seconds(3) })
    }

    @Test func aLoneConnectionIsItsPathsSentinelAndCostsAReadingAndAProbePerInterval() throws {
        var pair = try Self.path(of: 1)
        #expect(Self.sentinels(pair) == [1])
        let (readings, probes) = try Self.count(&pair, over: .seconds(60))
        #expect((52...54).contains(probes), "probes: \(probes)")
        #expect((52...54).contains(readings), "readings: \(readings)")
    }

    // MARK: The path fails

    @Test func theSentinelFailingSuspendsTheSilentMembersWithinOneReading() throws {
        var pair = try Self.path(of: 10)
        let outage = pair.now
        pair.pathUp = false
        // Member 4 heard the peer just before: an ACK in flight when the path went.
        try pair.advance(by: .seconds(1))
        pair.flowSocketsA[Self.flow(4, pair)]?.lastAckAt = pair.now
        let heardAt = pair.now
        var sentinelFailedAt: EngineInstant?
        while sentinelFailedAt == nil && pair.now.duration(since: outage) < .seconds(5) {
            try pair.advance(by: .milliseconds(50))
            if Self.phase(1, pair) == .suspended { sentinelFailedAt = pair.now }
        }
        let failedAt = try #require(sentinelFailedAt)
        #expect(failedAt.duration(since: outage) <= .seconds(3))
        #expect(Self.suspensionReasons(pair)[1]?.hasPrefix("nothing heard for") == true)
        // One reading later (the daemon reads what is due at its next turn), every silent member is suspended
        // by the path's failure, without probes of its own; the one that heard recently is not.
        try pair.advance(by: .milliseconds(100))
        let reasons = Self.suspensionReasons(pair)
        for id: UInt64 in 2...10 where id != 4 {
            #expect(Self.phase(id, pair) == .suspended, "member \(id)")
            #expect(reasons[id]?.hasPrefix("its path failed: nothing heard for") == true, "member \(id)")
        }
        #expect(Self.phase(4, pair) != .suspended)
        #expect(Self.sentinels(pair) == [4])
        // It watches the path now, and fails when its own silence reaches the failure timeout.
        while Self.phase(4, pair) != .suspended && pair.now.duration(since: heardAt) < .seconds(5) {
            try pair.advance(by: .milliseconds(50))
        }
        #expect(Self.phase(4, pair) == .suspended)
        #expect(pair.now.duration(since: heardAt) <= .milliseconds(2600))
        #expect(Self.sentinels(pair).isEmpty)
    }

    @Test func aBusyMemberWithDataOutstandingOnAFailedPathSuspendsAtItsFailureTimeout() throws {
        var pair = try Self.path(of: 5)
        let busy = Self.flow(3, pair)
        let outage = pair.now
        pair.pathUp = false
        // It was sending until the path went: its last data is outstanding, its last ACK just now.
        pair.flowSocketsA[busy]?.unacked = 3
        pair.flowSocketsA[busy]?.lastAckAt = outage
        while Self.phase(3, pair) != .suspended && pair.now.duration(since: outage) < .seconds(10) {
            try pair.advance(by: .milliseconds(50))
        }
        #expect(Self.phase(3, pair) == .suspended)
        #expect(pair.now.duration(since: outage) <= .milliseconds(2600))
        #expect(Self.suspensionReasons(pair)[3]?.hasPrefix("its path failed: nothing heard for") == true)
        #expect(pair.a.connections.allSatisfy { $0.phase == .suspended })
    }

    @Test func aPathThatWorksAgainIsNoLongerFailed() throws {
        var pair = try Self.path(of: 3)
        pair.pathUp = false
        try pair.advance(by: .seconds(1))
        pair.flowSocketsA[Self.flow(3, pair)]?.lastAckAt = pair.now  // heard just before the path went
        while Self.phase(1, pair) != .suspended { try pair.advance(by: .milliseconds(50)) }
        try pair.advance(by: .milliseconds(100))
        #expect(Self.phase(2, pair) == .suspended)
        #expect(pair.a.pathStanding(of: 3)?.failedAt != nil)
        // The path returns before 3's silence reaches the failure timeout: 3, its sentinel now, hears the peer
        // again, and the path stands.
        pair.pathUp = true
        try pair.advance(by: .seconds(2))
        #expect(pair.a.pathStanding(of: 3)?.failedAt == nil)
        #expect(Self.phase(3, pair) == .healthy)
        #expect(Self.sentinels(pair) == [3])
    }

    // MARK: One connection lost on its own

    @Test func aMemberLostOnItsOwnIsFoundByItsSlowProbeAndTheOthersStay() throws {
        var pair = try Self.path(of: 10)
        let lost = Self.flow(5, pair)
        pair.lostFlows.insert(lost)  // a NAT forgot it
        let start = pair.now
        while Self.phase(5, pair) != .suspended && pair.now.duration(since: start) < .seconds(30) {
            try pair.advance(by: .milliseconds(50))
        }
        #expect(Self.phase(5, pair) == .suspended)
        // Its last ACK came at most a slow interval (5.125 s) before the loss; its probe then, its reading a
        // slow interval later finds it unanswered and probes again, and the next, an interval later, fails it.
        #expect(pair.now.duration(since: start) <= .seconds(12))
        #expect(Self.suspensionReasons(pair)[5]?.hasPrefix("nothing heard for") == true)
        try pair.advance(by: .seconds(10))
        #expect(pair.a.connections.filter { $0.phase != .healthy }.map(\.id) == [5])
        #expect(Self.sentinels(pair) == [1])
    }

    // MARK: Handover

    @Test func theSentinelsSocketClosingHandsThePathToAnotherMember() throws {
        var pair = try Self.path(of: 4)
        pair.flowSocketsA[Self.flow(1, pair)]?.exists = false
        try pair.advance(by: .milliseconds(1500))
        #expect(pair.a.connection(id: 1) == nil)
        let sentinels = Self.sentinels(pair)
        #expect(sentinels.count == 1)
        // The new sentinel has the interval's pace: a reading and a probe per interval and an eighth.
        let sentinel = try #require(sentinels.first)
        let probes = try Self.count(&pair, over: .seconds(30)).probes
        #expect(probes >= 26 + 2 * 5 && probes <= 27 + 2 * 6, "probes: \(probes)")
        #expect(Self.sentinels(pair) == [sentinel])
        #expect(pair.a.connections.allSatisfy { $0.phase == .healthy })
    }

    @Test func anOperatorHoldOfTheSentinelHandsThePathOverWithoutFailingIt() throws {
        var pair = try Self.path(of: 4)
        let output = try pair.a.suspendByOperator(.connection(id: 1), now: pair.now)
        try pair.route(output.output, from: .a)
        try pair.advance(by: .seconds(10))
        #expect(Self.phase(1, pair) == .suspended)
        #expect(pair.a.connections.filter { $0.id != 1 }.allSatisfy { $0.phase == .healthy })
        #expect(Self.sentinels(pair).count == 1)
        #expect(pair.a.pathStanding(of: 2)?.failedAt == nil)
    }
}

/// The path index as the table keeps it, without an engine around it.
@Suite struct PathIndexTableTests {
    static let start = EngineInstant.seconds(100)
    static let peer = TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22)

    static func healthy(_ id: UInt64) -> Connection {
        var context = ConnectionTransitionTests.context(at: start)
        let flow = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40_000 + UInt16(id)),
                           remote: peer)
        let options = try! HandshakeOptions(UnsafeRawBufferPointer(start: nil, count: 0))
        var connection = Connection.rackd(
            id: id, socketFlow: flow, role: .client, localISN: TCPSequenceNumber(1000),
            peerISN: TCPSequenceNumber(5000), localOptions: options, peerOptions: options, &context).0
        connection.state = .healthy(Healthy(since: start))
        connection.socketCheckAt = start + .seconds(5)
        return connection
    }

    @Test func theSentinelMovingToAnotherPathLeavesItsOldPathToTheOldestOtherMember() {
        var table = ConnectionTable(configuration: Configuration())
        for id: UInt64 in 1...3 { table.insert(Self.healthy(id)) }
        table.electSentinels()
        #expect(table.pathCount == 1)
        #expect((1...3).map { table.pathStanding(of: $0)?.isSentinel } == [true, false, false])

        // Connection 1 moves to a new local address.
        let moved = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 9, 0, 2)), port: 41_000), remote: Self.peer)
        table.modify(1) { $0.mapping = WireMapping(wire: moved) }
        table.noteChanged(1)
        table.electSentinels()
        #expect(table.pathCount == 2)
        #expect(table.pathStanding(of: 1)?.path == WirePath(moved))
        #expect(table.pathStanding(of: 1)?.isSentinel == true)
        // Equally heard, the older connection watches the old path, and is read at once.
        #expect((2...3).map { table.pathStanding(of: $0)?.isSentinel } == [true, false])
        let due = Set(table.socketChecksDue(now: Self.start))
        #expect(due.contains(table[2]!.socketFlow))
        #expect(!due.contains(table[3]!.socketFlow))
    }

    @Test func theMemberHeardMostRecentlyIsElected() {
        var table = ConnectionTable(configuration: Configuration())
        for id: UInt64 in 1...3 {
            var connection = Self.healthy(id)
            connection.lastHeard = Self.start + .seconds(Int64(id == 3 ? 9 : id))
            table.insert(connection)
        }
        table.electSentinels()
        #expect((1...3).map { table.pathStanding(of: $0)?.isSentinel } == [false, false, true])
    }

    @Test func aFailedPathMakesEveryMemberDueAtOnceAndLeavingConnectionsTakeNoPathWithThem() {
        var table = ConnectionTable(configuration: Configuration())
        for id: UInt64 in 1...3 { table.insert(Self.healthy(id)) }
        table.electSentinels()
        let path = WirePath(table[1]!.socketFlow)
        #expect(table.socketChecksDue(now: Self.start) == [table[1]!.socketFlow], "the sentinel, just elected")
        table.pathFailed(path, now: Self.start)
        #expect(Set(table.socketChecksDue(now: Self.start)) == Set((1...3).map { table[$0]!.socketFlow }))
        #expect(table.pathStanding(of: 2)?.failedAt == Self.start)
        for id: UInt64 in 1...3 { table.remove(id) }
        #expect(table.pathCount == 0)
    }
}
