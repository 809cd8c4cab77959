// rackd — a rocks connection through a failure, against a scripted rock (RocksHarness.swift): suspension,
// rackd's SYN to the rock's reconnection address or the rock's to rackd's port, 1of2, the
// challenge-response, the recovery messages, both go-back-Ns, and both application streams whole
// afterwards (docs/rocks.md §5, §15).

import Testing
@testable import RackEngine

@Suite struct RocksReconnectionTests {
    static let rockPrivateKey = RocksKeyExchange.privateKey(from: [UInt8](repeating: 7, count: 16))
    static let rockListener = TCPEndpoint(address: .v4(RocksWorld.addressB), port: 41000)
    static let rackdPort = TCPEndpoint(address: .v4(RocksWorld.addressA), port: 44000)

    /// The rock's side of a reconnection, as rocks 2.4 plays it (RocksAuthentication `.atOnce`).
    struct ScriptedRock {
        var authentication: RocksAuthentication
        var recoveryReader = RocksRecoveryReader(expectedSendBufferSize: 65536, expectedReceiveBufferSize: 65536)
        var recoveryWritten = false
        /// rackd's bytes on the link, after its exchange: its go-back-N, then the application's.
        var stream: [UInt8] = []
        var consumed = 0

        init(role: ConnectionRole, cipher: Blowfish) {
            authentication = RocksAuthentication(role: role, cipher: cipher,
                                                 random: [0x02] + [UInt8](repeating: 9, count: 32), answering: .atOnce)
        }

        /// Reads what rackd sent on the link so far; returns the rock's writes.
        mutating func read(_ received: [UInt8], recovery: RocksRecovery, resend: [UInt8]) throws -> [[UInt8]] {
            var writes = authentication.pollWrites()
            var fresh = received[consumed...]
            consumed = received.count
            if !authentication.isAuthenticated {
                fresh = fresh.dropFirst(try authentication.take(fresh))
                writes += authentication.pollWrites()
            }
            guard authentication.isAuthenticated else { return writes }
            if !recoveryWritten {
                recoveryWritten = true
                writes += recovery.segments + [resend]
            }
            if recoveryReader.result == nil { fresh = fresh.dropFirst(try recoveryReader.take(fresh)) }
            if recoveryReader.result != nil { stream += fresh }
            return writes.filter { !$0.isEmpty }
        }
    }

    static func cipher(_ world: RocksWorld) throws -> Blowfish {
        let (ours, _) = try RocksScenarioTests.readInit(Array(world.rock.received.dropFirst(16)))
        let secret = try #require(RocksKeyExchange.sharedSecret(rockPrivateKey, peerPublicKey: ours.publicKey))
        return Blowfish(key: RocksKeyExchange.blowfishKey(secret: secret))
    }

    static func snapshot(_ app: MiniTCP, client: Bool) -> SocketSnapshot {
        SocketSnapshot(
            flow: FlowKey(local: app.local, remote: app.remote), state: .established,
            bytesAcked: UInt64(UInt32(bitPattern: app.sendUnacknowledged - app.isn)) - (client ? 0 : 1),
            bytesReceived: UInt64(UInt32(bitPattern: app.receiveNext - (app.peerISN! + 1))),
            unackedSegments: 0, lastAckReceived: .zero, lastDataReceived: .zero)
    }

    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    @Test func afterABlackHoleRackdReconnectsAndNoByteIsLostEitherWay() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        let cipher = try Self.cipher(world)
        let rockInitLength = world.rock.written.count  // announcement and init

        // Data both ways; the rock's application reads all but the last 1000 of the application's bytes
        // (its kernel acknowledged them all), and the rock's last 500 bytes never reach host A.
        let fromApp1 = Self.pattern(3000, seed: 1)
        let fromRock1 = Self.pattern(2000, seed: 2)
        let fromRockLost = Self.pattern(500, seed: 3)
        try world.fromApp(world.app.write(fromApp1))
        try world.fromRock(world.rock.write(fromRock1))
        try world.settle()
        _ = world.rock.write(fromRockLost)
        let rockRead = fromApp1.count - 1000
        #expect(world.engine.kernelFlows.screened == [world.appFlow], "screened until the outage (RocksInKernelTests)")
        #expect(world.unqueuedFromRock > 0)

        // A black hole: no heartbeats from the rock; 15 s later rackd suspends and resets the old connection.
        world.dropToRock = true
        world.rockLink = MiniTCP(local: Self.rockListener, remote: Self.rackdPort, isn: 5_000_000)
        try world.advance(by: .seconds(16))
        #expect(world.engine.connections.first?.phase == .suspended)
        let resets = world.wireToRock.filter { $0.flags.contains(.rst) && $0.destination == world.rock.local }
        #expect(!resets.isEmpty, "rackd resets the old connection, as a rock would")
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: true)], now: world.now))

        // The rock, suspended too, listens; the path returns and rackd's next SYN gets through.
        world.dropToRock = false
        world.linkSegments = []
        try world.advance(by: .seconds(1))
        let syn = try #require(world.linkSegments.first { $0.flags == .syn })
        #expect(syn.source == Self.rackdPort && syn.destination == Self.rockListener)
        try world.fromRock([world.rockLink!.synAck(to: syn)])
        try world.settle()

        // The rock is the server: its 1of2 byte, then its challenge, at once.
        var rock = ScriptedRock(role: .server, cipher: cipher)
        let rockRecovery = RocksRecovery(
            heartbeat: RocksSocketAddress(address: RocksWorld.addressB, port: 42001),
            reconnection: RocksSocketAddress(address: RocksWorld.addressB, port: 41001),
            received: UInt32(rockRead), sendBufferSize: 65536, receiveBufferSize: 65536)
        let rockResend = Array((fromRock1 + fromRockLost)[fromRock1.count...])  // after rackd's rcvseq: 2000
        for _ in 0..<10 {
            let writes = try rock.read(world.rockLink!.received, recovery: rockRecovery, resend: rockResend)
            for write in writes { try world.fromRock(world.rockLink!.write(write)) }
            try world.settle()
        }
        #expect(rock.authentication.isAuthenticated)
        let rackdRecovery = try #require(rock.recoveryReader.result)
        #expect(rackdRecovery.received == UInt32(fromRock1.count), "rackd reports what the socket has")
        #expect(rackdRecovery.heartbeat == RocksSocketAddress(address: RocksWorld.addressA, port: 43000))
        #expect(rackdRecovery.reconnection == RocksSocketAddress(address: RocksWorld.addressA, port: 44000))

        // The rock's go-back-N was cut at the end of its exchange; it resends it, now for the socket.
        try world.fromRock(world.rockLink!.retransmit())
        try world.settle()
        #expect(world.engine.connections.first?.phase == .healthy)
        #expect(world.app.received == fromRock1 + fromRockLost, "the rock's lost bytes reach the application once")

        // New bytes both ways, through the new tuple.
        let fromApp2 = Self.pattern(4000, seed: 4)
        let fromRock2 = Self.pattern(1500, seed: 5)
        try world.fromApp(world.app.write(fromApp2))
        try world.fromRock(world.rockLink!.write(fromRock2))
        try world.settle()
        _ = try rock.read(world.rockLink!.received, recovery: rockRecovery, resend: rockResend)
        let rockApplication = Array(world.rock.received.dropFirst(16 + 60 + 0))  // rackd's announcement and init
        #expect(Array(rockApplication.prefix(rockRead)) + rock.stream == fromApp1 + fromApp2,
                "the rock's application reads every byte once: its own, then rackd's go-back-N, then the new ones")
        #expect(world.app.received == fromRock1 + fromRockLost + fromRock2)
        #expect(rockInitLength > 0)
        #expect(world.engine.kernelFlows.screened.isEmpty, "a reconnected connection's offsets are arbitrary: queued")
        let heartbeatsAfter = world.datagrams.filter { $0.destination == rockRecovery.heartbeat.endpoint }
        try world.advance(by: .seconds(3))
        #expect(world.datagrams.filter { $0.destination == rockRecovery.heartbeat.endpoint }.count > heartbeatsAfter.count,
                "heartbeats go to the rock's new heartbeat address")
    }

    /// rackd as the rocks client, past both inits, after the application wrote `count` bytes (settled).
    static func clientAfterInit(writing count: Int, seed: UInt8) throws -> (RocksWorld, Blowfish, [UInt8]) {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        let cipher = try Self.cipher(world)
        let written = Self.pattern(count, seed: seed)
        try world.fromApp(world.app.write(written))
        try world.settle()
        return (world, cipher, written)
    }

    /// Runs the rock's side of the exchange on `world.rockLink` until it is through (or stuck).
    static func exchange(_ world: inout RocksWorld, _ rock: inout ScriptedRock, recovery: RocksRecovery,
                         resend: [UInt8]) throws {
        for _ in 0..<10 {
            let writes = try rock.read(world.rockLink!.received, recovery: recovery, resend: resend)
            for write in writes { try world.fromRock(world.rockLink!.write(write)) }
            try world.settle()
        }
    }

    static func recovery(received: Int) -> RocksRecovery {
        RocksRecovery(heartbeat: RocksSocketAddress(address: RocksWorld.addressB, port: 42001),
                      reconnection: RocksSocketAddress(address: RocksWorld.addressB, port: 41001),
                      received: UInt32(received), sendBufferSize: 65536, receiveBufferSize: 65536)
    }

    /// The server role up to a healthy rocks connection.
    static func connectedServer(_ world: inout RocksWorld) throws {
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        try world.settle()
        for write in RocksScenarioTests.rockInit.segments { try world.fromRock(world.rock.write(write)) }
        try world.settle()
        #expect(world.engine.connections.first?.phase == .healthy)
    }

    @Test func asAServerRackdTakesTheRocksLinkOnTheOnePortAndNamesItsConnectionFromTheChallenge() throws {
        var world = RocksWorld(appIsClient: false)
        try Self.connectedServer(&world)
        let cipher = try Self.cipher(world)
        let fromApp1 = Self.pattern(2500, seed: 6)
        let fromRock1 = Self.pattern(1800, seed: 7)
        try world.fromApp(world.app.write(fromApp1))
        try world.fromRock(world.rock.write(fromRock1))
        try world.settle()

        // The rock suspends first (a reset on the old connection): rackd suspends, without a reset back.
        world.wireToRock = []
        try world.fromRock([world.rock.segment(at: world.rock.sendNext, payload: []).with(flags: [.rst])])
        #expect(world.engine.connections.first?.phase == .suspended)
        #expect(!world.wireToRock.contains { $0.flags.contains(.rst) && $0.destination == world.rock.local },
                "the rock reset first: nothing to tell it")
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: false)], now: world.now))

        // A link under another key is reset, and the connection stays suspended.
        world.rockLink = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 45000), remote: Self.rackdPort,
                                 isn: 6_000_000)
        try world.fromRock([world.rockLink!.syn()])
        try world.settle()
        var stranger = ScriptedRock(role: .client, cipher: Blowfish(key: [UInt8](repeating: 1, count: 16)))
        try Self.exchange(&world, &stranger, recovery: Self.recovery(received: 0), resend: [])
        #expect(world.rockLink!.receivedRST, "a challenge that names no connection is reset")
        #expect(world.engine.connections.first?.phase == .suspended)

        // The rock itself, from a new port: rackd writes the 1of2 byte (its connection is a server's).
        world.rockLink = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 45001), remote: Self.rackdPort,
                                 isn: 7_000_000)
        try world.fromRock([world.rockLink!.syn()])
        try world.settle()
        #expect(world.rockLink!.received.count == 1, "the server's 1of2 byte, alone")
        var rock = ScriptedRock(role: .client, cipher: cipher)
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: fromApp1.count), resend: [])
        #expect(rock.authentication.isAuthenticated)
        #expect(world.engine.connections.first?.phase == .healthy)

        let fromApp2 = Self.pattern(3000, seed: 8)
        let fromRock2 = Self.pattern(900, seed: 9)
        try world.fromApp(world.app.write(fromApp2))
        try world.fromRock(world.rockLink!.write(fromRock2))
        try world.settle()
        _ = try rock.read(world.rockLink!.received, recovery: Self.recovery(received: fromApp1.count), resend: [])
        #expect(rock.stream == fromApp2)
        #expect(world.app.received == fromRock1 + fromRock2)
    }

    /// The rock is the server (rackd connected to it), and it opens a link to rackd's port but writes its 1of2
    /// byte late, as a loaded rock does: rackd, a client, never writes one itself (it did after 500 ms, then
    /// read the rock's byte and challenge one byte off and reset the link: test_rocks_recovery.sh under load).
    @Test func asAClientRackdWaitsForALateRockServersPickOnALinkTheRockOpens() throws {
        var (world, cipher, fromApp1) = try Self.clientAfterInit(writing: 2000, seed: 11)
        try world.fromRock([world.rock.segment(at: world.rock.sendNext, payload: []).with(flags: [.rst])])
        #expect(world.engine.connections.first?.phase == .suspended)
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: true)], now: world.now))

        world.rockLink = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 45002), remote: Self.rackdPort,
                                 isn: 8_000_000)
        try world.fromRock([world.rockLink!.syn()])
        try world.settle()
        try world.advance(by: .seconds(2))
        #expect(world.rockLink!.received.isEmpty, "no 1of2 byte from rackd, the client, however late the rock's")
        #expect(!world.rockLink!.receivedRST)
        var rock = ScriptedRock(role: .server, cipher: cipher)
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: fromApp1.count), resend: [])
        #expect(rock.authentication.isAuthenticated)
        #expect(world.engine.connections.first?.phase == .healthy)
    }

    @Test func aHeartbeatTheKernelRefusesSuspendsAtOnceAndTheRockIsReset() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        try world.fromRock(world.rock.write(Self.pattern(100, seed: 1)))
        try world.settle()
        world.wireToRock = []
        try world.carryOut(world.engine.handleHeartbeatFailures(
            [HeartbeatFailure(destination: RocksScenarioTests.rockInit.heartbeat.endpoint, reason: "ENETUNREACH")],
            now: world.now))
        #expect(world.engine.connections.first?.phase == .suspended)
        let reset = try #require(world.wireToRock.first { $0.flags.contains(.rst) })
        #expect(reset.sequenceNumber == world.rock.receiveNext, "exactly at the rock's rcv_nxt, so the rock takes it")
        #expect(world.rock.receivedRST)
        // A failure for a destination no connection sends to changes nothing.
        try world.carryOut(world.engine.handleHeartbeatFailures(
            [HeartbeatFailure(destination: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 9), reason: "x")], now: world.now))
        #expect(world.engine.connections.count == 1)
    }

    @Test func theOperatorsHoldResetsTheRockAndResumeReconnects() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        world.rockLink = MiniTCP(local: Self.rockListener, remote: Self.rackdPort, isn: 5_000_000)
        world.wireToRock = []
        let held = try world.engine.suspendByOperator(.all, now: world.now)
        try world.carryOut(held.output)
        #expect(held.changed.count == 1 && world.engine.connections.first?.phase == .suspended)
        #expect(world.rock.receivedRST, "the rock hears at once, as from a rock that suspends")
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: true)], now: world.now))
        world.linkSegments = []
        try world.advance(by: .seconds(30))
        #expect(!world.linkSegments.contains { $0.flags == .syn }, "no reconnection while the operator holds it")
        #expect(world.engine.connections.first?.phase == .suspended)

        let resumed = try world.engine.resumeByOperator(.all, now: world.now)
        try world.carryOut(resumed.output)
        try world.settle()
        let syn = try #require(world.linkSegments.first { $0.flags == .syn })
        try world.fromRock([world.rockLink!.synAck(to: syn)])
        try world.settle()
        var rock = ScriptedRock(role: .server, cipher: try Self.cipher(world))
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: 0), resend: [])
        #expect(world.engine.connections.first?.phase == .healthy)
    }

    @Test func aFloodOfForgedSYNsCannotKeepTheRockOut() throws {
        var world = RocksWorld(appIsClient: false)
        try Self.connectedServer(&world)
        let cipher = try Self.cipher(world)
        try world.fromRock([world.rock.segment(at: world.rock.sendNext, payload: []).with(flags: [.rst])])
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: false)], now: world.now))
        for index in 0..<1000 {
            let forged = TCPEndpoint(address: .v4(IPv4Address(10, 9, UInt8(index / 250), UInt8(index % 250 + 1))), port: 30000)
            try world.fromRock([.syn(from: forged, to: Self.rackdPort, sequenceNumber: TCPSequenceNumber(UInt32(index)),
                                     window: 64240, options: [.maximumSegmentSize(1460)])])
        }
        #expect(world.strays.filter { $0.flags == [.syn, .ack] }.count == 1000, "every SYN is answered")
        // The rock's own link, after the flood, completes and reconnects.
        world.rockLink = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressB), port: 45001), remote: Self.rackdPort,
                                 isn: 7_000_000)
        try world.fromRock([world.rockLink!.syn()])
        try world.settle()
        var rock = ScriptedRock(role: .client, cipher: cipher)
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: 0), resend: [])
        #expect(world.engine.connections.first?.phase == .healthy)
    }

    @Test func theSocketsFirstUnacknowledgedSegmentGoesAtOnceWithoutWaitingForItsTimer() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        let cipher = try Self.cipher(world)
        // The black hole starts: the application's bytes go out and are lost; its timer backs off and it
        // sends nothing more while held.
        world.dropToRock = true
        world.rockLink = MiniTCP(local: Self.rockListener, remote: Self.rackdPort, isn: 5_000_000)
        let lost = Self.pattern(2000, seed: 13)
        try world.fromApp(world.app.write(lost))
        try world.advance(by: .seconds(16))
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: true)], now: world.now))
        world.dropToRock = false
        world.linkSegments = []
        try world.advance(by: .seconds(1))
        let syn = try #require(world.linkSegments.first { $0.flags == .syn })
        try world.fromRock([world.rockLink!.synAck(to: syn)])
        try world.settle()
        var rock = ScriptedRock(role: .server, cipher: cipher)
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: 0), resend: [])
        #expect(world.engine.connections.first?.phase == .healthy)
        #expect(!rock.stream.isEmpty && lost.starts(with: rock.stream),
                "rackd replays the socket's first unacknowledged bytes from its ring (\(rock.stream.count) of them)")
        #expect(world.app.sendUnacknowledged - (world.app.isn + 1) > 0,
                "the rock's acknowledgement of them reaches the socket")
    }

    @Test func bytesTheRockReadWhoseAcknowledgementTheHoldKeptAreNotSentAgain() throws {
        var (world, cipher, fromApp1) = try Self.clientAfterInit(writing: 3000, seed: 1)
        // The application's last 1000 bytes reach the rock, whose application reads them; its
        // acknowledgement is lost, and then the path fails.
        let late = Self.pattern(1000, seed: 11)
        try world.fromApp(world.app.write(late))
        world.pendingFromRock = []
        world.dropToRock = true
        world.rockLink = MiniTCP(local: Self.rockListener, remote: Self.rackdPort, isn: 5_000_000)
        try world.advance(by: .seconds(16))
        #expect(world.engine.connections.first?.phase == .suspended)
        world.dropToRock = false
        try world.carryOut(world.engine.handleSnapshots([world.appFlow: Self.snapshot(world.app, client: true)], now: world.now))
        world.linkSegments = []
        try world.advance(by: .seconds(1))
        let syn = try #require(world.linkSegments.first { $0.flags == .syn })
        try world.fromRock([world.rockLink!.synAck(to: syn)])
        try world.settle()
        var rock = ScriptedRock(role: .server, cipher: cipher)
        try Self.exchange(&world, &rock, recovery: Self.recovery(received: fromApp1.count + late.count), resend: [])
        #expect(world.engine.connections.first?.phase == .healthy)
        #expect(world.app.sendUnacknowledged == world.app.sendNext, "the socket learns the rock has its last bytes")
        let fromApp2 = Self.pattern(700, seed: 12)
        try world.fromApp(world.app.write(fromApp2))
        try world.settle()
        _ = try rock.read(world.rockLink!.received, recovery: Self.recovery(received: 0), resend: [])
        #expect(rock.stream == fromApp2, "nothing twice, nothing missing")
    }
}

extension TCPSegmentRepr {
    func with(flags: TCPFlags) -> TCPSegmentRepr {
        var segment = self
        segment.flags = flags
        return segment
    }

    func with(sequenceShift: UInt32) -> TCPSegmentRepr {
        var segment = self
        segment.sequenceNumber = segment.sequenceNumber + sequenceShift
        return segment
    }
}

@Suite struct RocksSendRingTests {
    @Test func keepsTheLastBytesAcrossWrapsAndRestartsAfterAGap() {
        var ring = RocksSendRing(start: TCPSequenceNumber(1000))
        var all: [UInt8] = []
        var sequence = TCPSequenceNumber(1000)
        var generator = SeededRandom(seed: 5)
        while all.count < 3 * RocksSendRing.capacity + 123 {
            let chunk = (0..<Int.random(in: 1...70_000, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            chunk.withUnsafeBytes { ring.record($0, at: sequence) }
            // A retransmission of part of it changes nothing.
            chunk.prefix(10).withUnsafeBytes { ring.record($0, at: sequence) }
            all += chunk
            sequence = sequence + UInt32(chunk.count)
        }
        #expect(ring.end == sequence && ring.count == RocksSendRing.capacity)
        let from = sequence - 5000
        #expect(ring.bytes(from: from, to: sequence - 100) == Array(all.suffix(5000).prefix(4900)))
        #expect(ring.bytes(from: sequence - UInt32(RocksSendRing.capacity), to: sequence) == Array(all.suffix(RocksSendRing.capacity)))
        #expect(ring.bytes(from: sequence - UInt32(RocksSendRing.capacity) - 1, to: sequence) == nil, "older than kept")
        #expect(ring.bytes(from: sequence, to: sequence + 1) == nil, "never sent")
        // A segment past a byte the ring never saw: only what follows the gap can be resent.
        [UInt8](repeating: 7, count: 10).withUnsafeBytes { ring.record($0, at: sequence + 5) }
        #expect(ring.count == 10 && ring.bytes(from: sequence, to: sequence + 15) == nil)
        #expect(ring.bytes(from: sequence + 5, to: sequence + 15) == [UInt8](repeating: 7, count: 10))
    }
}
