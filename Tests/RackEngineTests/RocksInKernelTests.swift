// rackd — a rocks client's connection left to the kernel once its splice is cancelled out (docs/rocks.md
// §14, "In the kernel"): the SYN goes out 76 lower, the rock's SYN-ACK reaches the socket 76 higher, and
// after both inits the wire's sequence numbers are the socket's both ways. The flow is then screened: the
// socket's segments still pass rackd (the send ring), the rock's reach the socket without rackd unless they
// carry a SYN, a FIN or a reset. The harness plays the kernel's part (RocksHarness.swift, `pass`).

import Testing
@testable import RackEngine

@Suite struct RocksInKernelTests {
    /// The rule changes of every output so far, in order.
    static func ruleChanges(_ world: RocksWorld) -> [RuleChange] { world.outputs.flatMap(\.ruleChanges) }

    @Test func theClientsHandshakeIsShiftedSoTheInitsLeaveNoOffsetAndTheFlowIsScreened() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        let syn = try #require(world.wireToRock.first { $0.flags == .syn })
        #expect(syn.sequenceNumber == world.app.isn - 76, "the SYN leaves room for rackd's 76 bytes")
        #expect(world.app.peerISN == world.rock.isn + 76, "the socket sees the rock's ISN 76 higher")
        #expect(world.app.sendUnacknowledged == world.app.isn + 1, "the SYN-ACK acknowledges the socket's own ISN")
        #expect(world.engine.kernelFlows.screened.isEmpty, "not while the inits are under way")
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
        #expect(world.engine.connections.first?.packets == .queued, "status says so")

        try RocksScenarioTests.rockOpens(&world)
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        #expect(!world.engine.kernelFlows.queued.contains(world.appFlow))
        #expect(world.engine.connections.first?.packets == .screened, "status says so")
        let changes = Self.ruleChanges(world)
        let release = try #require(changes.firstIndex(of: .release(world.appFlow)))
        let screen = try #require(changes.firstIndex(of: .screen(world.appFlow)))
        #expect(release < screen, "one batch: the queued elements go, the screened ones come")

        // Bulk both ways: every byte of the application's goes out at its own sequence number, and none of
        // the rock's data passes rackd.
        let sentBefore = world.wireToRock.count
        var generator = SeededRandom(seed: 5)
        let up = (0..<100_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let down = (0..<150_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let upStart = world.app.sendNext
        try world.fromApp(world.app.write(up))
        try world.fromRock(world.rock.write(down))
        try world.settle()
        #expect(Array(world.rock.received.dropFirst(76)) == up)
        #expect(world.app.received == down)
        let upSegments = world.wireToRock.dropFirst(sentBefore).filter { !$0.payload.isEmpty }
        #expect(upSegments.first?.sequenceNumber == upStart, "the socket's numbers are the wire's")
        #expect(world.unqueuedFromRock >= down.count / 1400, "the rock's data went straight to the socket")
        #expect(world.queuedFromRockWhileScreened == 0)
        #expect(world.queuedFromAppWhileScreened > 0, "the socket's segments still pass rackd, for the ring")
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
    }

    @Test func theSocketsSegmentsPassUnchangedWhileScreened() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        let segment = try #require(world.app.write(Array("unchanged".utf8)).first)
        var bytes = try RocksWorld.bytes(segment)
        let before = bytes
        let output = bytes.withUnsafeMutableBytes { world.engine.handlePacket($0, direction: .outbound, now: world.now) }
        #expect(output.verdict == .accept, "a verdict only: no rewrite, no checksum to redo")
        #expect(bytes == before)
    }

    @Test func aBannerMapsAboveTheShiftAndTheFlowIsScreenedAfterIt() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        let banner = Array("SSH-2.0-rock\r\n".utf8)
        try world.fromRock(world.rock.write(banner))
        try world.settle()
        #expect(world.app.received == banner)
        try RocksScenarioTests.rockOpens(&world)
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        try world.fromRock(world.rock.write(Array("after".utf8)))
        try world.fromApp(world.app.write(Array("up".utf8)))
        try world.settle()
        #expect(world.app.received == banner + Array("after".utf8))
        #expect(Array(world.rock.received.dropFirst(76)) == Array("up".utf8))
        #expect(world.unqueuedFromRock > 0)
    }

    @Test func aResetFromTheRockIsSeenAndQueuesTheFlowAgain() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        try world.fromRock(world.rock.write(Array("data".utf8)))
        try world.settle()
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        let changesBefore = Self.ruleChanges(world).count
        try world.fromRock([.reset(from: world.rock.local, to: world.rock.remote, sequenceNumber: world.rock.sendNext)])
        #expect(world.engine.connections.first?.phase == .suspended, "the rock suspended: so does rackd")
        #expect(!world.app.receivedRST, "the socket never sees it")
        #expect(world.engine.kernelFlows.screened.isEmpty)
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
        #expect(world.engine.connections.first?.packets == .queued)
        let changes = Array(Self.ruleChanges(world).dropFirst(changesBefore))
        #expect(Array(changes.prefix(2)) == [.stopScreening(world.appFlow), .manage(world.appFlow)])
    }

    @Test func aFINFromTheRockIsSeenAndQueuesTheFlowAgain() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        try world.fromRock(world.rock.write(Array("bye".utf8)))
        try world.fromRock([world.rock.close()])
        try world.settle()
        #expect(world.app.received == Array("bye".utf8) && world.app.receivedFIN)
        #expect(world.engine.connections.first?.phase == .closing)
        #expect(world.engine.kernelFlows.screened.isEmpty)
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
    }

    @Test func aRockInitOfAnotherLengthLeavesAnOffsetAndTheFlowQueued() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)
        // A DH value with a leading zero byte is sent one byte shorter (1 in 256): 75 bytes, not 76.
        var rockInit = RocksScenarioTests.rockInit
        rockInit.publicKey = Array(rockInit.publicKey.dropFirst())
        try world.fromRock(world.rock.write(RocksAnnouncement.bytes))
        for write in rockInit.segments { try world.fromRock(world.rock.write(write)) }
        try world.settle()
        #expect(world.engine.connections.first?.phase == .healthy)
        #expect(world.engine.kernelFlows.screened.isEmpty, "an offset of one: rackd keeps mapping it")
        try world.fromRock(world.rock.write(Array("from the rock".utf8)))
        try world.fromApp(world.app.write(Array("from the app".utf8)))
        try world.settle()
        #expect(world.app.received == Array("from the rock".utf8))
        #expect(Array(world.rock.received.dropFirst(76)) == Array("from the app".utf8))
        #expect(world.unqueuedFromRock == 0)
    }

    @Test func aSYNThatWentOutUnshiftedIsSplicedAsBeforeAndStaysQueued() throws {
        var world = RocksWorld(appIsClient: true)
        let syn = world.app.syn()
        try world.fromApp([syn])
        world.heldFlows = [:]  // the daemon could hold no more packets: the SYN went out as the socket sent it
        try world.carryOut(world.engine.handleProbeResult(world.probes[0], outcome: .rock, now: world.now))
        try world.fromRock([world.rock.synAck(to: syn)])
        try world.settle()
        #expect(world.app.peerISN == world.rock.isn, "the SYN-ACK reaches the socket unshifted")
        try RocksScenarioTests.rockOpens(&world)
        try world.fromRock(world.rock.write(Array("from the rock".utf8)))
        try world.fromApp(world.app.write(Array("from the app".utf8)))
        try world.settle()
        #expect(world.engine.connections.first?.phase == .healthy)
        #expect(world.app.received == Array("from the rock".utf8))
        #expect(Array(world.rock.received.dropFirst(76)) == Array("from the app".utf8))
        #expect(world.engine.kernelFlows.screened.isEmpty, "its splice leaves offsets of 76: queued")
    }

    @Test func theServerRoleStaysQueued() throws {
        var world = RocksWorld(appIsClient: false)
        try RocksReconnectionTests.connectedServer(&world)
        try world.fromRock(world.rock.write(Array("client data".utf8)))
        try world.settle()
        #expect(world.app.received == Array("client data".utf8))
        #expect(world.engine.kernelFlows.screened.isEmpty, "its SYN came before rackd knew it was a rock")
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
        #expect(world.engine.connections.first?.packets == .queued)
    }
}
