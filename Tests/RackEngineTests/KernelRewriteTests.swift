// rackd — which moved connections the kernel rewrites alone (Sources/RackEngine/Core/KernelRewrite.swift),
// and how the change reaches the rules (ConnectionTable.reconcile).

import Testing
@testable import RackEngine

@Suite struct KernelRewriteTests {
    static let socket = ConnectionTransitionTests.flow
    static let wire = FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 3, 0, 2)), port: 40_000),
                              remote: socket.remote)

    /// A healthy connection moved to `wire`, confirmed both ways.
    static func moved() -> Connection {
        var connection = ConnectionTransitionTests.healthy()
        connection.mapping = WireMapping(wire: wire)
        return connection
    }

    @Test func aConfirmedMoveWithoutShiftIsRewrittenByTheKernel() {
        let connection = Self.moved()
        #expect(connection.kernelRewrite == KernelRewrite(socket: Self.socket, wire: Self.wire))
        #expect(!connection.isQueued)
        #expect(connection.kernelNeeds.queued.isEmpty)
        #expect(connection.kernelNeeds.wires == [Self.wire], "the wire tuple still leads to the connection")
        #expect(connection.packetRoute == .kernel, "status shows nothing of it queued")
    }

    @Test func whatTheKernelCannotMapStaysQueued() {
        var shifted = Self.moved()
        shifted.mapping?.peerSequenceOffset = TCPSequenceOffset(rawValue: 7)  // a middlebox rewrote the peer's ISN
        var localShift = Self.moved()
        localShift.mapping?.localSequenceOffset = TCPSequenceOffset(rawValue: 1)
        var unconfirmed = Self.moved()
        unconfirmed.rackd.confirmRepeat = RackdPeer.ConfirmRepeat(
            segment: TCPSegmentRepr(source: Self.wire.local, destination: Self.wire.remote,
                                    sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(1),
                                    flags: .ack, window: 0, options: []),
            nextAt: ConnectionTransitionTests.start, remaining: 3)
        var resetPending = Self.moved()
        resetPending.unconfirmedResetAt = ConnectionTransitionTests.start
        var otherFamily = Self.moved()
        otherFamily.mapping = WireMapping(wire: FlowKey(
            local: TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:3::2")!), port: 40_000),
            remote: TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:2::2")!), port: 22)))
        var held = Self.moved()
        var actions = ConnectionActions()
        held.suspend(reason: "test", now: ConnectionTransitionTests.start, into: &actions)
        for (name, connection) in [("sequence shift", shifted), ("local shift", localShift), ("confirm repeating", unconfirmed),
                                   ("reset to judge", resetPending), ("IPv4 to IPv6", otherFamily), ("held", held)] {
            #expect(connection.kernelRewrite == nil, "\(name)")
            #expect(connection.kernelNeeds.rewrite == nil, "\(name)")
            #expect(connection.kernelNeeds.queued.contains(Self.socket), "\(name): the socket's tuple is queued")
            #expect(connection.kernelNeeds.queued.contains(connection.mapping!.wire), "\(name): the wire tuple is queued")
            #expect(connection.packetRoute == .queued, "\(name): status says so")
        }
    }

    @Test func reconcileSwapsTheRewriteAndTheQueueRemovalsFirst() {
        var table = ConnectionTable(configuration: Configuration())
        var output = EngineOutput()
        var connection = Self.moved()
        table.insert(connection)
        table.reconcile(lostAddresses: [], into: &output)
        let rewrite = KernelRewrite(socket: Self.socket, wire: Self.wire)
        #expect(output.ruleChanges == [.rewrite(rewrite)])
        #expect(table.kernelRewrites == [rewrite] && table.managedFlows.isEmpty)

        // A suspicion of failure: the same batch takes the rewrite away and queues both tuples.
        var actions = ConnectionActions()
        connection.suspend(reason: "test", now: ConnectionTransitionTests.start, into: &actions)
        table.replace(connection)
        output = EngineOutput()
        table.reconcile(lostAddresses: [], into: &output)
        #expect(output.ruleChanges.first == .stopRewriting(rewrite))
        #expect(Set(output.ruleChanges.dropFirst()) == [.manage(Self.socket), .manage(Self.wire)])
        #expect(table.kernelRewrites.isEmpty && table.managedFlows == [Self.socket, Self.wire])

        // Resumed: back to the kernel, the queued tuples released before the rewrite comes.
        connection.resume(now: ConnectionTransitionTests.start + .seconds(1), into: &actions)
        table.replace(connection)
        output = EngineOutput()
        table.reconcile(lostAddresses: [], into: &output)
        #expect(Set(output.ruleChanges.dropLast()) == [.release(Self.socket), .release(Self.wire)])
        #expect(output.ruleChanges.last == .rewrite(rewrite))

        // Gone: nothing of it stays.
        table.remove(connection.id)
        output = EngineOutput()
        table.reconcile(lostAddresses: [], into: &output)
        #expect(output.ruleChanges == [.stopRewriting(rewrite)])
        #expect(table.kernelRewrites.isEmpty && table.managedFlows.isEmpty)
    }
}
