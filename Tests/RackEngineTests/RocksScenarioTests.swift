// rackd — the engine playing a rock, in both roles, against a scripted rock (RocksHarness.swift): the
// probe and the held SYN, the announcements, a banner, the init messages in their segments, both
// application streams intact, the acknowledgements, heartbeats, and the fallbacks (docs/rocks.md §14).

import Testing
@testable import RackEngine

@Suite struct RocksScenarioTests {
    static let rockInit = RocksInit(
        publicKey: RocksKeyExchange.publicKey(RocksKeyExchange.privateKey(from: [UInt8](repeating: 7, count: 16))),
        reconnection: RocksSocketAddress(address: RocksWorld.addressB, port: 41000), sendBufferSize: 65536,
        receiveBufferSize: 65536, heartbeat: RocksSocketAddress(address: RocksWorld.addressB, port: 42000))

    /// rackd's init as the rock reads it from its stream after `skip` bytes; and what follows it.
    static func readInit(_ stream: [UInt8]) throws -> (RocksInit, rest: [UInt8]) {
        var reader = RocksInitReader()
        let used = try reader.take(stream)
        let result = try #require(reader.result)
        return (result, Array(stream.dropFirst(used)))
    }

    /// The rock writes its announcement and init, each a segment of its own.
    static func rockOpens(_ world: inout RocksWorld) throws {
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        for write in rockInit.segments { try world.fromRock(world.rock.write(write)) }
        try world.settle()
    }

    /// Client role up to the data connection's handshake: the SYN held, probed, released.
    static func connectedClient(_ world: inout RocksWorld) throws {
        try world.fromApp([world.app.syn()])
        #expect(world.heldFlows[world.appFlow]?.count == 1)
        #expect(world.probes == [RocksProbeRequest(source: world.app.local.address, destination: world.rock.local,
                                                   readTimeout: .milliseconds(500))])
        #expect(world.wireToRock.isEmpty, "the SYN waits for the probe")
        try world.carryOut(world.engine.handleProbeResult(world.probes[0], outcome: .rock, now: world.now))
        let syn = try #require(world.wireToRock.last)
        #expect(syn.flags == .syn)
        try world.fromRock([world.rock.synAck(to: syn)])
        try world.settle()
    }

    @Test func asAClientRackdAnnouncesSkipsTheBannerAndHidesTheInit() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        #expect(world.rock.received == RocksAnnouncement.bytes, "the announcement goes first, alone")
        // The application writes at once; its bytes wait behind rackd's init at the rock.
        try world.fromApp(world.app.write(Array("hello from the application".utf8)))
        try world.settle()
        let banner = Array("SSH-2.0-rock\r\n".utf8)
        try world.fromRock(world.rock.write(banner))
        try Self.rockOpens(&world)

        let (ours, rest) = try Self.readInit(Array(world.rock.received.dropFirst(16)))
        #expect(ours.reconnection == RocksSocketAddress(address: RocksWorld.addressA, port: 44000))
        #expect(ours.heartbeat == RocksSocketAddress(address: RocksWorld.addressA, port: 43000))
        #expect(ours.sendBufferSize == 65536 && ours.receiveBufferSize == 65536)
        #expect(rest == Array("hello from the application".utf8))
        #expect(world.app.received == banner, "the banner reaches the application; nothing of rocks' does")

        // rackd's bytes went out one rocks write per segment: announcement, key length, key, reconnection
        // address, two buffer sizes, heartbeat address; in the 76 numbers below the socket's first byte
        // (its SYN went out that much lower).
        let ownEnd = world.app.isn + 1
        let ownSegments = world.wireToRock.filter { !$0.payload.isEmpty && $0.sequenceNumber - ownEnd < 0 }.map(\.payload.count)
        #expect(ownSegments == [16, 4, ours.publicKey.count, 16, 4, 4, 16])

        try world.fromRock(world.rock.write(Array("from the rock".utf8)))
        try world.settle()
        #expect(world.app.received == banner + Array("from the rock".utf8))
        #expect(world.app.sendUnacknowledged == world.app.sendNext, "the application's bytes are acknowledged")
        #expect(world.rock.sendUnacknowledged == world.rock.sendNext, "the rock's bytes are acknowledged")
        let status = try #require(world.engine.connections.first)
        #expect(status.peerKind == "rocks" && status.keySuite == "legacy-dh128-bf" && status.phase == .healthy)
    }

    @Test func largeTransfersBothWaysArriveIntact() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        try Self.rockOpens(&world)
        var generator = SeededRandom(seed: 3)
        let up = (0..<200_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let down = (0..<150_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try world.fromApp(world.app.write(up))
        try world.fromRock(world.rock.write(down))
        try world.settle()
        #expect(Array(world.rock.received.dropFirst(16 + 60)) == up)
        #expect(world.app.received == down)
        // Retransmissions straddling nothing are moved the same way.
        try world.fromApp(world.app.retransmit())
        try world.settle()
        #expect(Array(world.rock.received.dropFirst(16 + 60)) == up)
    }

    @Test func heartbeatsGoOutEverySecondAndTheirAbsenceSuspends() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        try Self.rockOpens(&world)
        try world.advance(by: .seconds(5))
        let heartbeats = world.datagrams.filter { $0.destination == Self.rockInit.heartbeat.endpoint }
        #expect((4...5).contains(heartbeats.count))
        #expect(heartbeats.allSatisfy { $0.payload == [0x78] })
        // Heartbeats from anywhere else are ignored; from the rock's address they keep it alive.
        for _ in 0..<20 {
            try world.carryOut(world.engine.handleDatagram(
                UnsafeRawBufferPointer(start: nil, count: 0), from: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 1), now: world.now))
            try world.carryOut([UInt8]([0x78]).withUnsafeBytes {
                world.engine.handleDatagram($0, from: Self.rockInit.heartbeat.endpoint, now: world.now)
            })
            try world.advance(by: .seconds(1))
        }
        #expect(world.engine.connections.first?.phase == .healthy)
        try world.advance(by: .seconds(16))
        #expect(world.engine.connections.first?.phase == .suspended)
    }

    @Test func asAServerRackdAnswersTheAnnouncementAfterTheApplicationsBanner() throws {
        var world = RocksWorld(appIsClient: false)
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        let banner = Array("220 welcome\r\n".utf8)
        try world.fromApp(world.app.write(banner))
        try world.settle()
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        try world.settle()
        #expect(Array(world.rock.received.prefix(banner.count + 16)) == banner + RocksAnnouncement.bytes)
        // The announcement alone: a rock client finds it only at the start of one of its 16-byte reads, so
        // after this 13-byte banner an init behind it would hide it from a client that reads late
        // (ROCKS-PROTOCOL.md §2.2 step 5). The init goes once the client's own init shows it found it.
        #expect(world.rock.received.count == banner.count + 16, "no init before the client's")
        try world.advance(by: .seconds(3))
        #expect(world.rock.received.count == banner.count + 16, "not even when retransmitting")
        var clientInit = Self.rockInit.segments
        try world.fromRock(world.rock.write(clientInit.removeFirst()))
        try world.settle()
        #expect(world.rock.received.count == banner.count + 16 + 60, "the client's first init bytes release ours")
        for write in clientInit { try world.fromRock(world.rock.write(write)) }
        try world.settle()
        let (ours, rest) = try Self.readInit(Array(world.rock.received.dropFirst(banner.count + 16)))
        #expect(ours.heartbeat.port == 43000 && rest.isEmpty)
        #expect(world.app.received.isEmpty, "the application sees none of rocks' bytes")
        try world.fromRock(world.rock.write(Array("client data".utf8)))
        try world.fromApp(world.app.write(Array("server data".utf8)))
        try world.settle()
        #expect(world.app.received == Array("client data".utf8))
        #expect(Array(world.rock.received.dropFirst(banner.count + 16 + 60)) == Array("server data".utf8))
        #expect(world.engine.connections.first?.role == .server)
    }

    @Test(arguments: [[UInt8](), Array("SSH-2.0-server\r\n".utf8)])
    func aProbeIsAnsweredWithTheAnnouncementJustBeforeTheApplicationsFIN(banner: [UInt8]) throws {
        var world = RocksWorld(appIsClient: false)
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        try world.fromRock([world.rock.close()])
        try world.settle()
        #expect(world.app.receivedFIN, "the application sees a client that closed")
        #expect(world.rock.received.isEmpty, "nothing before the application had its say")
        // The application writes (a banner, after its client closed), then closes, in one segment.
        var segments = world.app.write(banner)
        let fin = world.app.close()
        if var last = segments.popLast() {
            last.flags.insert(.fin)
            segments.append(last)
        } else {
            segments.append(fin)
        }
        try world.fromApp(segments)
        try world.settle()
        #expect(world.rock.received == banner + RocksAnnouncement.bytes, "the announcement is the last 16 bytes")
        #expect(world.rock.receivedFIN)
        #expect(world.app.sendUnacknowledged == world.app.sendNext, "the application's FIN is acknowledged")
        #expect(world.engine.connections.isEmpty, "the probe is over")
    }

    @Test func whenTheRockClosesHeartbeatsStopAndNothingSuspends() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        try Self.rockOpens(&world)
        try world.fromRock([world.rock.close()])
        try world.settle()
        #expect(world.app.receivedFIN)
        #expect(world.engine.connections.first?.phase == .closing)
        let sent = world.datagrams.count
        try world.advance(by: .seconds(20))
        #expect(world.datagrams.count == sent, "no heartbeat to a rock that closed")
        #expect(world.engine.connections.first?.phase == .closing, "a close is not an outage")
    }

    @Test func anOrdinaryClientOfAServePortIsLeftAlone() throws {
        var world = RocksWorld(appIsClient: false)
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        try world.fromRock(world.rock.write(Array("GET / HTTP/1.0\r\n\r\n".utf8)))
        try world.settle()
        #expect(world.app.received == Array("GET / HTTP/1.0\r\n\r\n".utf8))
        #expect(world.engine.connections.isEmpty)
        #expect(world.engine.racksManagedFlows.isEmpty, "nothing of it is queued any more")
    }

    @Test func aFailedProbeReleasesTheSYNAndIsRemembered() throws {
        var world = RocksWorld(appIsClient: true)
        try world.fromApp([world.app.syn()])
        let probe = try #require(world.probes.first)
        try world.carryOut(world.engine.handleProbeResult(probe, outcome: .notRock(reason: "EOF"), now: world.now))
        let released = try #require(world.wireToRock.last)
        #expect(released.flags == .syn)
        #expect(world.engine.racksManagedFlows.isEmpty)
        // The next connection to the same destination goes out at once, unprobed.
        world.app = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressA), port: 50001), remote: world.rock.local, isn: 5)
        let before = world.probes.count
        try world.fromApp([world.app.syn()])
        #expect(world.probes.count == before)
        #expect(world.heldFlows.isEmpty)
    }

    @Test func aProbeThatNeverAnswersReleasesTheSYN() throws {
        var world = RocksWorld(appIsClient: true)
        try world.fromApp([world.app.syn()])
        try world.fromApp([world.app.syn()])  // a retransmission, held too
        #expect(world.heldFlows[world.appFlow]?.count == 2)
        try world.advance(by: .seconds(16))
        #expect(world.heldFlows.isEmpty)
        #expect(world.wireToRock.filter { $0.flags == .syn }.count == 1)
    }

    @Test func withoutLegacyAuthenticationNothingIsProbed() throws {
        var world = RocksWorld(appIsClient: true) { $0.legacyAuthentication = false }
        try world.fromApp([world.app.syn()])
        #expect(world.probes.isEmpty && world.heldFlows.isEmpty)
    }

    @Test func aMalformedInitResetsBothEndsAndNothingTraps() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        try world.fromRock(world.rock.write([0, 0, 0, 200]))
        try world.settle()
        #expect(world.app.receivedRST && world.rock.receivedRST)
        #expect(world.engine.connections.isEmpty && world.engine.racksManagedFlows.isEmpty)
    }

    @Test func aDegenerateDiffieHellmanValueIsRefused() throws {
        var world = RocksWorld(appIsClient: true)
        try Self.connectedClient(&world)
        var degenerate = Self.rockInit
        degenerate.publicKey = [1]
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        for write in degenerate.segments { try world.fromRock(world.rock.write(write)) }
        try world.settle()
        #expect(world.app.receivedRST && world.engine.connections.isEmpty)
    }

    @Test func rackdsBytesAreRetransmittedAndASetupThatNeverFinishesIsAbandoned() throws {
        var world = RocksWorld(appIsClient: true)
        try world.fromApp([world.app.syn()])
        try world.carryOut(world.engine.handleProbeResult(world.probes[0], outcome: .rock, now: world.now))
        let syn = try #require(world.wireToRock.last)
        world.dropToRock = true  // nothing reaches the rock any more
        try world.fromRock([world.rock.synAck(to: syn)])
        try world.advance(by: .seconds(2))
        // Sent at once, then after 250 ms, 500 ms and 1 s of silence.
        #expect(world.wireToRock.filter { $0.payload == RocksAnnouncement.bytes }.count == 4)
        try world.advance(by: .seconds(60))
        #expect(world.engine.connections.isEmpty, "abandoned after the setup limit")
        #expect(world.app.receivedRST, "the application learns at once")
    }

    @Test func withProbingEverywhereARackdPeerIsNeverProbedAndAnOrdinaryOneOnlyAfterTheOption() throws {
        var world = RocksWorld(appIsClient: true) { $0.probing = .everywhere; $0.probePorts = [] }
        try world.fromApp([world.app.syn()])
        #expect(world.probes.isEmpty, "the first connection tries rackd's option instead")
        let syn = try #require(world.wireToRock.last)
        #expect(syn.options.contains { if case .experimental = $0 { true } else { false } }, "the SYN carries rackd's hello")
        try world.fromRock([world.rock.synAck(to: syn)])  // no hello back: not a rackd
        #expect(world.events.contains { if case .fellBack = $0 { true } else { false } })
        world.app = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressA), port: 50001), remote: world.rock.local, isn: 9)
        try world.fromApp([world.app.syn()])
        #expect(world.probes.count == 1, "the next connection to it is probed")
    }
}
