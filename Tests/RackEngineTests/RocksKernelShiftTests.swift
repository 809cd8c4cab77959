// rackd — a rocks connection whose constant sequence shift conntrack carries (Core/KernelShift.swift): a
// rocks server's splice leaves 76 bytes each way for the connection's life; where the kernel can shift
// (the daemon found ctnetlink), the flow is shifted instead of queued. The harness plays conntrack: it
// makes and deletes the entries as the rule changes say, shifts whatever passes a verdict of a packet
// whose entry has the shift, and lets the rock's data past rackd through the chain `shifted`
// (RocksHarness.swift, `pass`).

import Testing
@testable import RackEngine

@Suite struct RocksKernelShiftTests {
    static func connectedShiftedServer() throws -> RocksWorld {
        var world = RocksWorld(appIsClient: false, kernelShifts: true)
        try RocksReconnectionTests.connectedServer(&world)
        return world
    }

    static func expectedShift(_ world: RocksWorld) -> KernelShift {
        KernelShift(flow: world.appFlow, localOffset: TCPSequenceOffset(rawValue: 76), peerOffset: TCPSequenceOffset(rawValue: 76))
    }

    static func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededRandom(seed: seed)
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test func aRocksServersConnectionIsShiftedByConntrackOnceBothInitsAreThrough() throws {
        var world = try Self.connectedShiftedServer()
        let shift = Self.expectedShift(world)
        #expect(world.engine.kernelFlows.shifted == [shift], "76 bytes each way: rackd's init and the rock's")
        #expect(world.engine.kernelFlows.queued.isEmpty && world.engine.kernelFlows.screened.isEmpty)
        #expect(world.conntrack[world.appFlow] == shift)
        #expect(shift.originalOffset == 76 && shift.replyOffset == -76, "conntrack's terms")
        #expect(world.engine.connections.first?.packets == .screened, "status says so")
        let changes = RocksInKernelTests.ruleChanges(world)
        let release = try #require(changes.firstIndex(of: .release(world.appFlow)))
        let shifted = try #require(changes.firstIndex(of: .shift(shift)))
        #expect(release < shifted, "one batch: the queued elements go, the shifted ones come")

        // Bulk both ways: every byte arrives, none of the rock's data passes rackd, and the socket's
        // segments pass rackd unchanged (conntrack moves them).
        let up = Self.pattern(120_000, seed: 3)
        let down = Self.pattern(90_000, seed: 4)
        let receivedBefore = world.rock.received.count
        try world.fromApp(world.app.write(up))
        try world.fromRock(world.rock.write(down))
        try world.settle()
        #expect(Array(world.rock.received.dropFirst(receivedBefore)) == up)
        #expect(world.app.received == down)
        #expect(world.unqueuedFromRock >= down.count / 1400, "the rock's data went straight to the socket")
        #expect(world.queuedFromRockWhileScreened == 0)
        #expect(world.queuedFromAppWhileScreened > 0, "the socket's segments still pass rackd, for the ring")
        #expect(world.lastVerdict == .accept, "passed unchanged: conntrack shifts them")
    }

    @Test func packetsTheKernelShiftsThroughTheQueuedChainArriveOnceAndRight() throws {
        // Between the entry's making and the batch that switches the elements, the flow's packets still go
        // through the chain `queued`, which sends those conntrack shifts to the shift queue.
        var world = try Self.connectedShiftedServer()
        world.queueEverything = true
        let unqueuedBefore = world.unqueuedFromRock
        let up = Self.pattern(20_000, seed: 12)
        let down = Self.pattern(30_000, seed: 13)
        let receivedBefore = world.rock.received.count
        try world.fromApp(world.app.write(up))
        try world.fromRock(world.rock.write(down))
        try world.settle()
        #expect(world.app.received == down)
        #expect(Array(world.rock.received.dropFirst(receivedBefore)) == up)
        #expect(world.unqueuedFromRock == unqueuedBefore && world.queuedFromRockWhileScreened > 0)
    }

    @Test func withoutConntrackTheConnectionStaysQueued() throws {
        var world = RocksWorld(appIsClient: false, kernelShifts: false)
        try RocksReconnectionTests.connectedServer(&world)
        #expect(world.engine.kernelFlows.shifted.isEmpty)
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
    }

    @Test func anEntryConntrackLostIsMadeAgainWhileRackdMapsThePacketsItMisses() throws {
        var world = try Self.connectedShiftedServer()
        let shift = Self.expectedShift(world)
        try world.fromRock(world.rock.write(Self.pattern(3000, seed: 5)))
        try world.settle()
        // `conntrack -F`: the next packets come without the shift, through the chain's last rule.
        world.conntrack = [:]
        let queuedBefore = world.queuedFromRockWhileScreened
        try world.fromRock(world.rock.write(Self.pattern(5000, seed: 6)))
        try world.settle()
        #expect(world.queuedFromRockWhileScreened > queuedBefore, "rackd maps what conntrack does not")
        #expect(world.conntrack.isEmpty, "the first miss may be a packet queued before the entry was made")
        try world.advance(by: .seconds(2))
        try world.fromRock(world.rock.write(Self.pattern(4000, seed: 7)))
        try world.settle()
        #expect(world.conntrack[world.appFlow] == shift, "asked for again a second after the first miss")
        #expect(world.events.contains(.kernelShiftLost(id: try #require(world.engine.connections.first?.id), world.appFlow)))
        let unqueuedBefore = world.unqueuedFromRock
        try world.fromRock(world.rock.write(Self.pattern(4000, seed: 8)))
        try world.fromApp(world.app.write(Self.pattern(2000, seed: 9)))
        try world.settle()
        #expect(world.unqueuedFromRock > unqueuedBefore, "shifted by the kernel again")
        let expectedDown = [5, 6, 7, 8].flatMap { Self.pattern([5: 3000, 6: 5000, 7: 4000, 8: 4000][$0]!, seed: UInt64($0)) }
        #expect(world.app.received == expectedDown, "every byte, in order, whichever shifted it")
        #expect(Array(world.rock.received.suffix(2000)) == Self.pattern(2000, seed: 9))
    }

    @Test func theRocksFINReachesTheSocketThroughTheVerdictAndTheKernelsShift() throws {
        var world = try Self.connectedShiftedServer()
        try world.fromRock(world.rock.write(Array("last words".utf8)))
        try world.fromRock([world.rock.close()])
        try world.settle()
        #expect(world.app.received == Array("last words".utf8))
        #expect(world.app.receivedFIN, "the FIN arrives at the socket's own sequence number")
        #expect(world.engine.connections.first?.phase == .closing)
        #expect(world.engine.kernelFlows.shifted.isEmpty && world.conntrack.isEmpty, "closing: rackd maps it again")
        try world.fromApp([world.app.close()])
        try world.settle()
        #expect(world.rock.receivedFIN)
    }

    @Test func theSocketsAnswerToTheRocksFINGoesOutRightWhileTheEntryIsStillThere() throws {
        // The socket acknowledges the rock's FIN, and the application closes, at the FIN's verdict: before the
        // daemon deletes the entry the same input asked to delete. Those segments still get the kernel's
        // shift, so rackd moves them back by it.
        var world = try Self.connectedShiftedServer()
        world.conntrackDeletesLate = true
        try world.fromRock([world.rock.close()])
        #expect(world.engine.connections.first?.phase == .closing)
        #expect(world.app.receivedFIN)
        try world.settle()
        try world.fromApp([world.app.close()])
        try world.settle()
        #expect(world.conntrack[world.appFlow] != nil, "the entry is still there")
        #expect(world.rock.receivedFIN, "the socket's FIN reached the rock at its place")
        #expect(world.rock.sendUnacknowledged == world.rock.sendNext, "and its acknowledgement of the rock's FIN")
        world.deleteLateEntries()
    }

    @Test func theRocksResetSuspendsAndTheEntryGoesBeforeRackdWritesAgain() throws {
        var world = try Self.connectedShiftedServer()
        try world.fromApp(world.app.write(Array("before".utf8)))
        try world.settle()
        try world.fromRock([world.rock.segment(at: world.rock.sendNext, payload: []).with(flags: [.rst])])
        #expect(world.engine.connections.first?.phase == .suspended)
        #expect(world.engine.kernelFlows.shifted.isEmpty && world.conntrack.isEmpty)
        #expect(world.engine.kernelFlows.queued.contains(world.appFlow))
        #expect(!world.app.receivedRST, "the socket never sees the rock's reset")
    }

    @Test func aPacketConntrackShiftsForAConnectionNoLongerShiftedIsDropped() throws {
        var world = try Self.connectedShiftedServer()
        let entry = try #require(world.conntrack[world.appFlow])
        // rackctl suspend: the shift goes, but a segment queued before the entry was deleted still has it.
        try world.carryOut(world.engine.suspendByOperator(.all, now: world.now).output)
        #expect(world.engine.kernelFlows.shifted.isEmpty)
        world.conntrack[world.appFlow] = entry
        try world.fromApp(world.app.write(Array("late".utf8)))
        #expect(world.lastVerdict == .drop)
    }

    @Test func afterAReconnectionTheLinksTupleAndShiftAreTheKernelsToo() throws {
        var world = try Self.connectedShiftedServer()
        let cipher = try RocksReconnectionTests.cipher(world)
        let fromApp1 = Self.pattern(2500, seed: 6)
        let fromRock1 = Self.pattern(1800, seed: 7)
        try world.fromApp(world.app.write(fromApp1))
        try world.fromRock(world.rock.write(fromRock1))
        try world.settle()
        try world.fromRock([world.rock.segment(at: world.rock.sendNext, payload: []).with(flags: [.rst])])
        #expect(world.engine.connections.first?.phase == .suspended)
        #expect(world.conntrack.isEmpty)
        try world.carryOut(world.engine.handleSnapshots(
            [world.appFlow: RocksReconnectionTests.snapshot(world.app, client: false)], now: world.now))

        // The rock reconnects from a new port; rackd authenticates it and the connection is healthy again.
        let rockLinkEnd = TCPEndpoint(address: .v4(RocksWorld.addressB), port: 45001)
        world.rockLink = MiniTCP(local: rockLinkEnd, remote: RocksReconnectionTests.rackdPort, isn: 7_000_000)
        try world.fromRock([world.rockLink!.syn()])
        try world.settle()
        var rock = RocksReconnectionTests.ScriptedRock(role: .client, cipher: cipher)
        let recovery = RocksReconnectionTests.recovery(received: fromApp1.count)
        try RocksReconnectionTests.exchange(&world, &rock, recovery: recovery, resend: [])
        #expect(world.engine.connections.first?.phase == .healthy)

        // Once rackd's own bytes on the link are acknowledged, the kernel carries the link's tuple and shift.
        let fromApp2 = Self.pattern(3000, seed: 8)
        try world.fromApp(world.app.write(fromApp2))
        try world.settle()
        _ = try rock.read(world.rockLink!.received, recovery: recovery, resend: [])
        let link = FlowKey(local: RocksReconnectionTests.rackdPort, remote: rockLinkEnd)
        let shift = try #require(world.engine.kernelFlows.shifted.first)
        #expect(shift.flow == world.appFlow && shift.wire == link && shift.isMoved)
        #expect(world.engine.kernelFlows.queued.isEmpty, "neither the socket's tuple nor the link's is queued whole")
        #expect(world.conntrack[link] == shift && world.conntrack[world.appFlow] == shift)

        // Bulk both ways through the kernel's rewrite and shift: every byte once, the rock's data unqueued.
        let fromApp3 = Self.pattern(60_000, seed: 10)
        let fromRock3 = Self.pattern(45_000, seed: 11)
        let unqueuedBefore = world.unqueuedFromRock
        let linkSegmentsBefore = world.linkSegments.count
        try world.fromApp(world.app.write(fromApp3))
        try world.fromRock(world.rockLink!.write(fromRock3))
        try world.settle()
        _ = try rock.read(world.rockLink!.received, recovery: recovery, resend: [])
        #expect(rock.stream == fromApp2 + fromApp3)
        #expect(world.app.received == fromRock1 + fromRock3)
        #expect(world.unqueuedFromRock - unqueuedBefore >= fromRock3.count / 1400, "the rock's data passed rackd by")
        let toLink = world.linkSegments.dropFirst(linkSegmentsBefore).filter { !$0.payload.isEmpty }
        #expect(toLink.count >= fromApp3.count / 1400 && toLink.allSatisfy { $0.source == RocksReconnectionTests.rackdPort },
                "the socket's segments go out on the link's tuple")
    }

    @Test func aRestartedRackdShiftsAgainOrNamesTheEntryToDelete() throws {
        var world = try Self.connectedShiftedServer()
        try world.fromRock(world.rock.write(Self.pattern(3000, seed: 14)))
        try world.settle()
        let shift = Self.expectedShift(world)
        let records = world.engine.takePersistenceChanges(now: world.now, all: true).save
        for shifts in [true, false] {
            var configuration = world.engine.configuration
            configuration.kernelShiftsAvailable = shifts
            var restarted = HostEngine(configuration: configuration, random: SeededRandom(seed: 6))
            _ = restarted.handleLinkEvent(.addressesAvailable([.v4(RocksWorld.addressA)]), now: world.now)
            _ = restarted.restore(records, now: world.now)
            if shifts {
                #expect(restarted.kernelFlows.shifted == [shift], "shifted again: the installer makes the entry again")
                #expect(restarted.staleKernelShifts.isEmpty)
            } else {
                // [rocks] conntrack = no since: the entry the last rackd made must go.
                #expect(restarted.kernelFlows.shifted.isEmpty && restarted.kernelFlows.queued.contains(world.appFlow))
                #expect(restarted.staleKernelShifts == [shift])
            }
        }
    }
}
