// rackd — connections written and read back across a restart of rackd (Persistence/, docs/restarts.md).
//
// The property: whatever state a connection is in, its record read back gives the same connection
// (the same record bytes, the same status), and an engine started from the records carries on: after a
// random run of black holes, moves and restarts of either host's rackd, the path's return leaves both
// ends healthy with the same connection.

import Foundation
import Testing
@testable import RackEngine

@Suite struct PersistenceTests {
    /// What a restart of rackd does to an engine: every record written, read back as JSON, and taken by a
    /// fresh engine that knows the host's addresses.
    static func restarted(_ engine: inout HostEngine, addresses: [IPAddress], now: EngineInstant, seed: UInt64)
        throws -> (engine: HostEngine, output: EngineOutput)
    {
        let records = engine.takePersistenceChanges(now: now, all: true).save
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let encoded = try records.map { try encoder.encode($0) }
        let decoded = try encoded.map { try JSONDecoder().decode(PersistedConnection.self, from: $0) }
        // Read back, each record is the same bytes again.
        #expect(try decoded.map { try encoder.encode($0) } == encoded)
        var fresh = HostEngine(configuration: engine.configuration, random: SeededRandom(seed: seed))
        _ = fresh.handleLinkEvent(.addressesAvailable(addresses), now: now)
        let output = fresh.restore(decoded, now: now)
        // The same connections, as status shows them (less the socket snapshot, which is read again).
        let before = engine.connections.map { status -> ConnectionStatus in
            var status = status
            status.bytesHeld = nil
            return status
        }
        #expect(fresh.connections == before)
        #expect(fresh.racksManagedFlows == engine.racksManagedFlows)
        return (fresh, output)
    }

    static func restart(_ pair: inout RacksPair, _ host: RacksPair.Host, seed: UInt64) throws {
        let addresses = Array(host == .a ? pair.currentAddressesA : pair.currentAddressesB)
        var engine = host == .a ? pair.a : pair.b
        let (fresh, output) = try restarted(&engine, addresses: addresses, now: pair.now, seed: seed)
        if host == .a { pair.a = fresh } else { pair.b = fresh }
        try pair.route(output, from: host)
    }

    @Test func aSuspendedConnectionRestartedOnEitherHostResumesWhenThePathReturns() throws {
        for host in [RacksPair.Host.a, .b] {
            var pair = RacksPair()
            try pair.connect()
            pair.pathUp = false
            pair.socketA.unacked = 3
            try pair.advance(by: .seconds(4))
            #expect(pair.phase(.a) == .suspended && pair.phase(.b) == .suspended)
            try Self.restart(&pair, host, seed: 99)
            #expect(pair.phase(host) == .suspended)
            try pair.advance(by: .seconds(5))
            pair.pathUp = true
            pair.socketA.unacked = 0
            try pair.advance(by: .seconds(2))
            #expect(pair.phase(.a) == .healthy && pair.phase(.b) == .healthy, "restarted \(host)")
            #expect(!pair.eventsA.contains { if case .resumptionRejected = $0 { true } else { false } })
            #expect(!pair.eventsB.contains { if case .resumptionRejected = $0 { true } else { false } })
        }
    }

    @Test func aMovedConnectionKeepsItsMappingAcrossARestart() throws {
        var pair = RacksPair()
        try pair.connect()
        try pair.move(.a, to: .v4(IPv4Address(10, 3, 0, 2)))
        try pair.advance(by: .seconds(2))
        let wire = try #require(pair.a.connections.first?.wire)
        try Self.restart(&pair, .a, seed: 7)
        try Self.restart(&pair, .b, seed: 8)
        #expect(pair.a.connections.first?.wire == wire)
        #expect(pair.b.connections.first?.wire != nil)
        // The departed address is still kept on lo for the socket.
        #expect(pair.a.heldAddresses == [RacksPair.addressA])
        pair.exchangeTraffic()
        try pair.advance(by: .seconds(3))
        #expect(pair.phase(.a) == .healthy && pair.phase(.b) == .healthy)
    }

    /// Random runs: faults at random times (black holes, the path back, moves of A) and restarts of
    /// either rackd among them. The same run with every restart left out must end the same way: a restart
    /// of rackd changes nothing about what happens to the connection. (Some runs end unhealthy either
    /// way: the harness's path model cannot deliver to every combination of moves.)
    @Test(arguments: 0..<150) func randomFaultsEndTheSameWithAndWithoutRestarts(seed: UInt64) throws {
        let with = try Self.randomRun(seed: seed, restarts: true)
        let without = try Self.randomRun(seed: seed, restarts: false)
        #expect(with.outcome == without.outcome, "seed \(seed): \(with.restarts) restarts")
        #expect(with.restarts > 0)
    }

    struct RandomRun {
        var outcome: [String]
        var restarts: Int
    }

    static func randomRun(seed: UInt64, restarts: Bool) throws -> RandomRun {
        var random = SplitMix64(seed: 0x5eed_0000 + seed)
        var pair = RacksPair(seedA: seed * 2 + 1, seedB: seed * 2 + 2)
        try pair.connect()
        var nextAddress: UInt8 = 3
        var count = 0
        for _ in 0..<6 {
            switch random.next() % 5 {
            case 0:
                pair.pathUp = false
                pair.socketA.unacked = 2
            case 1:
                pair.pathUp = true
                pair.socketA.unacked = 0
                pair.exchangeTraffic()
            case 2:
                try pair.move(.a, to: .v4(IPv4Address(10, nextAddress, 0, 2)))
                nextAddress += 1
            default:
                let host: RacksPair.Host = random.next() % 2 == 0 ? .a : .b
                let restartSeed = random.next()  // drawn either way: both runs see the same faults
                if restarts { try Self.restart(&pair, host, seed: restartSeed) }
                count += 1
            }
            try pair.advance(by: .milliseconds(Int64(random.next() % 6000)))
        }
        let lastSeed = random.next()
        if restarts { try Self.restart(&pair, .b, seed: lastSeed) }
        count += 1
        pair.pathUp = true
        pair.socketA.unacked = 0
        for _ in 0..<20 {
            pair.exchangeTraffic()
            try pair.advance(by: .milliseconds(500))
        }
        let outcome = [pair.a, pair.b].map { engine in
            engine.connections.map { "\($0.id) \($0.phase) \($0.wire.map(\.description) ?? "unmoved")" }.joined(separator: ",")
        }
        return RandomRun(outcome: outcome, restarts: count)
    }

    @Test func rocksConnectionsReadBackTheSameEstablishedAndSuspended() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        try world.fromApp(world.app.write(RocksReconnectionTests.pattern(3000, seed: 1)))
        try world.fromRock(world.rock.write(RocksReconnectionTests.pattern(2000, seed: 2)))
        try world.settle()
        let address = [IPAddress.v4(RocksWorld.addressA)]
        var (fresh, _) = try Self.restarted(&world.engine, addresses: address, now: world.now, seed: 3)
        #expect(fresh.kernelFlows.screened == [world.appFlow], "a screened connection is screened again")
        #expect(fresh.kernelFlows == world.engine.kernelFlows)
        world.dropToRock = true
        try world.advance(by: .seconds(16))
        #expect(world.engine.connections.first?.phase == .suspended)
        (fresh, _) = try Self.restarted(&world.engine, addresses: address, now: world.now, seed: 4)
        #expect(fresh.connections.first?.phase == .suspended)
        #expect(fresh.connections.first?.peerKind == "rocks")
    }

    @Test func aRocksConnectionIsNotTakenBackWhenRocksIsOff() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        let records = world.engine.takePersistenceChanges(now: world.now, all: true).save
        #expect(records.count == 1)
        var plain = HostEngine(configuration: Configuration(), random: SeededRandom(seed: 5))
        _ = plain.handleLinkEvent(.addressesAvailable([.v4(RocksWorld.addressA)]), now: world.now)
        let output = plain.restore(records, now: world.now)
        #expect(plain.connections.isEmpty)
        #expect(output.events.contains { if case .connectionEnded(_, _, let reason) = $0 { reason.contains("[rocks] is off") } else { false } })
    }

    @Test func recordsAreWrittenAtOnceOnlyForChangesThatMatterAndNeverForLivenessReadings() throws {
        var pair = RacksPair()
        try pair.connect()
        let first = pair.a.takePersistenceChanges(now: pair.now)
        #expect(first.save.map(\.id) == [1], "a new connection is written at once")
        pair.exchangeTraffic()
        try pair.advance(by: .seconds(1))
        #expect(!pair.a.persistenceDue(now: pair.now), "snapshots of a healthy connection are not written at once")
        try pair.advance(by: .seconds(10))
        // A rackd peer's liveness readings are read afresh from the kernel after a restart: no checkpoint
        // writes 10,000 healthy connections every 10 s for them.
        #expect(!pair.a.persistenceDue(now: pair.now), "nor at the checkpoint")
        pair.pathUp = false
        pair.socketA.unacked = 2
        try pair.advance(by: .seconds(4))
        #expect(pair.a.persistenceDue(now: pair.now), "a suspension is written at once")
        _ = pair.a.takePersistenceChanges(now: pair.now)
        pair.socketA.exists = false
        // A suspended connection whose positions are known has its socket read once a heartbeat interval.
        try pair.advance(by: .milliseconds(1500))
        let gone = pair.a.takePersistenceChanges(now: pair.now)
        #expect(gone.remove == [1], "a connection whose socket is gone loses its record")
    }
}
