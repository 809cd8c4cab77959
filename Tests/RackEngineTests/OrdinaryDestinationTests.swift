// rackd — the engine's decision that a destination is an ordinary peer, whose handshakes the kernel then
// stops queueing (Peers/Rackd/OrdinaryDestinations.swift).

import Testing
@testable import RackEngine

@Suite struct OrdinaryDestinationTests {
    private func ordinaryAnswer(_ pair: inout RacksPair) throws -> EngineOutput {
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        return try pair.run(pair.synAck(), .inbound, on: .a)  // no hello: B runs no rackd
    }

    @Test func aSYNACKWithoutTheHelloMakesItsDestinationOrdinaryForTheConfiguredLifetime() throws {
        var configuration = Configuration()
        configuration.ordinaryCacheLifetime = .seconds(300)
        var pair = RacksPair(configuration: configuration)
        let output = try ordinaryAnswer(&pair)
        #expect(output.ordinary == [OrdinaryDestination(destination: pair.serverEnd, lifetime: .seconds(300))])
        #expect(output.ruleChanges.isEmpty, "the flow itself is never queued")
        #expect(pair.a.ordinaryDestinationCount == 1)
        try pair.advance(by: .seconds(100))
        #expect(pair.a.ordinaryDestinations(now: pair.now)
            == [OrdinaryDestination(destination: pair.serverEnd, lifetime: .seconds(200))])
        try pair.advance(by: .seconds(200))
        #expect(pair.a.ordinaryDestinationCount == 0, "expired with the kernel's element")
        #expect(pair.a.ordinaryDestinations(now: pair.now).isEmpty)
    }

    @Test func theDefaultLifetimeIsTenMinutes() throws {
        var pair = RacksPair()
        #expect(try ordinaryAnswer(&pair).ordinary.map(\.lifetime) == [.seconds(600)])
    }

    @Test func aRackdPeerIsNeverOrdinary() throws {
        var pair = RacksPair()
        var outputs: [EngineOutput] = []
        let synOutput = try pair.run(pair.syn(), .outbound, on: .a)
        outputs.append(synOutput)
        _ = try pair.run(try pair.parse(try #require(pair.replacement(of: synOutput))), .inbound, on: .b)
        let synAck = try #require(pair.replacement(of: try pair.run(pair.synAck(), .outbound, on: .b)))
        outputs.append(try pair.run(try pair.parse(synAck), .inbound, on: .a))
        #expect(outputs.allSatisfy { $0.ordinary.isEmpty })
        #expect(pair.a.ordinaryDestinationCount == 0 && pair.b.ordinaryDestinationCount == 0)
        #expect(pair.a.connections.count == 1)
    }

    @Test func aSYNSentWithoutTheHelloProvesNothing() throws {
        var pair = RacksPair()
        _ = try pair.run(pair.syn(), .outbound, on: .a)
        _ = try pair.run(pair.syn(), .outbound, on: .a)  // retransmitted with the hello
        _ = try pair.run(pair.syn(), .outbound, on: .a)  // and again without it (middlebox fallback)
        let output = try pair.run(pair.synAck(), .inbound, on: .a)
        #expect(output.ordinary.isEmpty)
        #expect(pair.eventsA.contains(.fellBack(pair.flowA, reason: "middlebox fallback")))
    }

    @Test func anExcludedDestinationIsNotCachedTheRulesSkipItAlready() throws {
        var configuration = Configuration()
        configuration.policy.excludePorts = [PortRange(22)]
        var pair = RacksPair(configuration: configuration)
        #expect(try ordinaryAnswer(&pair).ordinary.isEmpty)
    }

    @Test func aZeroLifetimeCachesNothing() throws {
        var configuration = Configuration()
        configuration.ordinaryCacheLifetime = .zero
        var pair = RacksPair(configuration: configuration)
        #expect(try ordinaryAnswer(&pair).ordinary.isEmpty)
        #expect(pair.a.ordinaryDestinationCount == 0)
        #expect(pair.a.nextDeadline == nil || pair.a.nextDeadline! > pair.now)
    }

    @Test func anotherAnswerRefreshesTheCopy() throws {
        var pair = RacksPair()
        _ = try ordinaryAnswer(&pair)
        try pair.advance(by: .seconds(500))
        // The kernel's element ran out a little earlier (its clock is not the engine's): the next handshake
        // is queued again and the destination is cached again.
        pair.clientPort = 40_001
        let again = try ordinaryAnswer(&pair)
        #expect(again.ordinary == [OrdinaryDestination(destination: pair.serverEnd, lifetime: .seconds(600))])
        #expect(pair.a.ordinaryDestinationCount == 1)
        try pair.advance(by: .seconds(200))
        #expect(pair.a.ordinaryDestinationCount == 1, "the later expiry holds")
    }

    @Test func theCacheIsBounded() {
        var cache = OrdinaryDestinations()
        let now = EngineInstant.seconds(1)
        for index in 0..<OrdinaryDestinations.maximum {
            let address = IPAddress.v4(IPv4Address(10, UInt8(index >> 8 & 0xff), UInt8(index & 0xff), 1))
            let remembered = cache.remember(TCPEndpoint(address: address, port: 443), until: now + .seconds(60))
            #expect(remembered)
        }
        let extra = TCPEndpoint(address: .v4(IPv4Address(192, 0, 2, 1)), port: 443)
        let rememberedPastTheLimit = cache.remember(extra, until: now + .seconds(60))
        #expect(!rememberedPastTheLimit)
        #expect(cache.count == OrdinaryDestinations.maximum)
    }

    @Test func withRocksProbingEverywhereTheDestinationIsCachedOnlyAfterItsProbeFailed() throws {
        var world = RocksWorld(appIsClient: true) { $0.probing = .everywhere; $0.probePorts = [] }
        try world.fromApp([world.app.syn()])
        let syn = try #require(world.wireToRock.last)
        try world.fromRock([world.rock.synAck(to: syn)])  // no hello back: probed next time, so still queued
        #expect(world.outputs.allSatisfy { $0.ordinary.isEmpty })
        world.app = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressA), port: 50001), remote: world.rock.local, isn: 9)
        world.rock = MiniTCP(local: world.rock.local, remote: world.app.local, isn: 3_100_000_000)
        try world.fromApp([world.app.syn()])
        let probe = try #require(world.probes.first)
        try world.carryOut(world.engine.handleProbeResult(probe, outcome: .notRock(reason: "EOF"), now: world.now))
        #expect(world.outputs.allSatisfy { $0.ordinary.isEmpty }, "not yet: a rackd peer may still answer the hello")
        let released = try #require(world.wireToRock.last)
        try world.fromRock([world.rock.synAck(to: released)])
        #expect(world.outputs.flatMap(\.ordinary).map(\.destination) == [world.rock.local])
    }

    @Test func aListedRocksDestinationIsCachedOnlyAfterItsFailedProbe() throws {
        var world = RocksWorld(appIsClient: true)  // probe = listed, port 7000
        // The destination is listed: until a probe failed, its SYNs must reach the queue.
        try world.fromApp([world.app.syn()])
        let probe = try #require(world.probes.first)
        try world.carryOut(world.engine.handleProbeResult(probe, outcome: .notRock(reason: "EOF"), now: world.now))
        let released = try #require(world.wireToRock.last)
        try world.fromRock([world.rock.synAck(to: released)])
        #expect(world.outputs.flatMap(\.ordinary).map(\.destination) == [world.rock.local],
                "after a failed probe the rocks cache skips the probe: the kernel may skip the queue")
    }

    @Test func theLifetimeIsConfigurable() throws {
        #expect(try ConfigurationParser.parse("[policy]\nordinary-cache = 1h\n").ordinaryCacheLifetime == .seconds(3600))
        #expect(try ConfigurationParser.parse("[policy]\nordinary-cache = 0s\n").ordinaryCacheLifetime == .zero)
        #expect(try ConfigurationParser.parse("").ordinaryCacheLifetime == .seconds(600))
        #expect(throws: ConfigurationError(line: 2, message: "ordinary-cache: 2d is out of range 0d...1d")) {
            try ConfigurationParser.parse("[policy]\nordinary-cache = 2d\n")
        }
    }
}

@Suite struct OrdinaryDestinationRestoreTests {
    @Test func destinationsTakenBackKeepTheTimeTheyHadLeft() throws {
        var engine = HostEngine(configuration: Configuration(), random: SeededRandom(seed: 1))
        let destination = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        let now = EngineInstant.seconds(50)
        let kept = engine.restoreOrdinaryDestinations([OrdinaryDestination(destination: destination, lifetime: .seconds(30))],
                                                      now: now)
        #expect(kept.count == 1 && engine.ordinaryDestinationCount == 1)
        #expect(engine.ordinaryDestinations(now: now + .seconds(10))
            == [OrdinaryDestination(destination: destination, lifetime: .seconds(20))])
        _ = engine.handleTimeout(now: now + .seconds(30))
        #expect(engine.ordinaryDestinationCount == 0)
    }

    @Test func aZeroLifetimeTakesNothingBack() {
        var configuration = Configuration()
        configuration.ordinaryCacheLifetime = .zero
        var engine = HostEngine(configuration: configuration, random: SeededRandom(seed: 1))
        let destination = TCPEndpoint(address: IPAddress(parsing: "10.2.0.2")!, port: 5001)
        #expect(engine.restoreOrdinaryDestinations([OrdinaryDestination(destination: destination, lifetime: .seconds(30))],
                                                   now: .seconds(1)).isEmpty)
        #expect(engine.ordinaryDestinationCount == 0)
    }
}
