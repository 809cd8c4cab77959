// Review findings for the rocks peer kind: each test is expected to FAIL on main as it stands.

import Testing
@testable import RackEngine

@Suite struct RocksReviewTests {
    static let payload = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }

    static func established(appIsClient: Bool = true) throws -> RocksWorld {
        var world = RocksWorld(appIsClient: appIsClient)
        try RocksScenarioTests.connectedClient(&world)
        try RocksScenarioTests.rockOpens(&world)
        try world.fromApp(world.app.write(Array("first".utf8)))
        try world.fromRock(world.rock.write(Array("first".utf8)))
        try world.settle()
        return world
    }

    // 1. RocksSplice compares with the splice points by signed 32-bit distance, for the connection's life:
    //    once a direction has carried 2 GiB past P (or Q), segments are no longer moved.
    @Test func theSpliceStillMovesSegmentsAfterTwoGibibytes() throws {
        var world = try Self.established()
        let jump: UInt32 = 0x4000_0000  // pretend 1 GiB went each way (rackd keeps no window: a jump is the same)
        for step in 1...3 {
            world.app.sendNext += jump
            world.app.sendUnacknowledged += jump
            world.rock.receiveNext += jump
            let up = world.rock.received.count
            try world.fromApp(world.app.write(Self.payload))
            try world.settle()
            #expect(Array(world.rock.received.dropFirst(up)) == Self.payload, "socket → rock after \(step) GiB")

            world.rock.sendNext += jump
            world.rock.sendUnacknowledged += jump
            world.app.receiveNext += jump
            let down = world.app.received.count
            try world.fromRock(world.rock.write(Self.payload))
            try world.settle()
            #expect(Array(world.app.received.dropFirst(down)) == Self.payload, "rock → socket after \(step) GiB")
        }
    }

    // 2. A socket retransmission that collapses unacknowledged bytes before P with a FIN at P is cut at P,
    //    but SegmentTrim keeps the FIN when the cut keeps the whole payload: the rock gets a FIN at P,
    //    in front of rackd's announcement and init.
    @Test func aRetransmissionCutAtTheInsertionPointLeavesItsFINBehind() throws {
        var world = RocksWorld(appIsClient: false)
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        let banner = Array("220 welcome\r\n".utf8)
        world.dropToRock = true  // the banner is lost on its way
        try world.fromApp(world.app.write(banner))
        try world.settle()
        world.dropToRock = false
        try RocksScenarioTests.rockOpens(&world)
        let insertionPoint = world.app.isn + 1 + UInt32(banner.count)
        try world.fromApp([world.app.close()])  // the application closes: its FIN is at P
        try world.settle()
        // Linux retransmits the banner and the FIN collapsed into one segment.
        var collapsed = world.app.segment(at: world.app.isn + 1, payload: banner)
        collapsed.flags.insert(.fin)
        world.wireToRock.removeAll()
        try world.fromApp([collapsed])
        for segment in world.wireToRock where segment.flags.contains(.fin) {
            #expect(segment.sequenceNumber + UInt32(segment.payload.count) == insertionPoint + 76,
                    "a FIN at \(segment.sequenceNumber + UInt32(segment.payload.count)), before rackd's bytes (P = \(insertionPoint))")
        }
    }

    // 3. Any RST from the rock's side ends management, whatever its sequence number: a blind (or stale)
    //    RST the rock's kernel would ignore (RFC 5961) removes the splice, and the socket's next bytes
    //    reach the rock 76 bytes early: the rock's kernel trims them as duplicates and 76 bytes are lost.
    @Test func anOutOfWindowResetDoesNotUnmapALiveConnection() throws {
        var world = try Self.established()
        try world.fromRock([.reset(from: world.rock.local, to: world.app.local,
                                   sequenceNumber: world.rock.sendNext + 0x4000_0000)])
        let before = world.rock.received.count
        try world.fromApp(world.app.write(Self.payload))
        try world.settle()
        #expect(Array(world.rock.received.dropFirst(before)) == Self.payload)
    }

    // 4. A local address lost during setup makes the core's `.fellBack`: management ends though rackd's
    //    announcement is already in the rock's stream; the socket's bytes then overlap it.
    @Test func anAddressLostDuringSetupDoesNotLeaveASplicedStreamUnmapped() throws {
        var world = RocksWorld(appIsClient: true)
        try RocksScenarioTests.connectedClient(&world)  // rackd's announcement is out; the rock has not answered
        try world.carryOut(world.engine.handleLinkEvent(.addressesLost([.v4(RocksWorld.addressA)]), now: world.now))
        try world.carryOut(world.engine.handleLinkEvent(.addressesAvailable([.v4(RocksWorld.addressA)]), now: world.now))
        try world.fromApp(world.app.write(Self.payload))
        try world.settle()
        #expect(world.rock.received == RocksAnnouncement.bytes || world.app.receivedRST,
                "the application's bytes overwrote rocks' stream: \(world.rock.received.count - 16) of them reached the rock in init's place")
    }

    // 5. `rackctl suspend` then `rackctl resume` (the sleep hook does both) held a rocks connection for good,
    //    as nothing resumed a rock: now the operator's hold resets the rock and `resume` reconnects
    //    (RocksReconnectionTests.theOperatorsHoldResetsTheRockAndResumeReconnects).

    @Test func aSecondRockCannotTakeTheFirstOnesHeartbeats() throws {
        var world = try Self.established()
        let firstFlow = world.appFlow
        world.app = MiniTCP(local: TCPEndpoint(address: .v4(RocksWorld.addressA), port: 50001),
                            remote: world.rock.local, isn: 2_000_000)
        world.rock = MiniTCP(local: world.rock.local, remote: world.app.local, isn: 4_000_000)
        let probesBefore = world.probes.count
        try world.fromApp([world.app.syn()])
        let probe = try #require(world.probes.dropFirst(probesBefore).first)
        try world.carryOut(world.engine.handleProbeResult(probe, outcome: .rock, now: world.now))
        let syn = try #require(world.wireToRock.last)
        try world.fromRock([world.rock.synAck(to: syn)])
        try world.settle()
        try RocksScenarioTests.rockOpens(&world)  // the same init: the same heartbeat address
        #expect(world.engine.connections.count == 1, "the second, naming the same heartbeat address, is abandoned")
        #expect(world.app.receivedRST)
        for _ in 0..<20 {
            try world.carryOut([UInt8]([0x78]).withUnsafeBytes {
                world.engine.handleDatagram($0, from: RocksScenarioTests.rockInit.heartbeat.endpoint, now: world.now)
            })
            try world.advance(by: .seconds(1))
        }
        let first = world.engine.connections.first(where: { $0.flow == firstFlow })
        #expect(first?.phase == .healthy, "the first connection's heartbeats still arrive")
    }

    // 7. A banner ending in a byte that starts the announcement ('I'): the tail is cut off and the
    //    announcement's segment is a gap; a rock whose kernel retransmits them as they were sent (no
    //    collapse) is never found, and setup is abandoned after 60 s.
    @Test func aSYNRetransmittedAfterTheProbeIsNotProbedAgain() throws {
        var world = RocksWorld(appIsClient: true)
        let syn = world.app.syn()
        try world.fromApp([syn])
        try world.carryOut(world.engine.handleProbeResult(world.probes[0], outcome: .rock, now: world.now))
        try world.fromApp([syn])  // the first one was lost
        #expect(world.probes.count == 1, "probed again")
        #expect(world.heldFlows.isEmpty, "the retransmission is held")
        #expect(world.wireToRock.map(\.sequenceNumber) == [syn.sequenceNumber - 76, syn.sequenceNumber - 76],
                "both go out shifted as the first was released (docs/rocks.md §14, \"In the kernel\")")
    }
}
