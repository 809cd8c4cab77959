// rackd — a connection's transitions, run on the connection alone (no table, no engine): each returns
// its actions, and the ones that end a connection say so with `end` instead of touching any table.

import Testing
@testable import RackEngine

@Suite struct ConnectionTransitionTests {
    static let flow = FlowKey(
        local: TCPEndpoint(address: .v4(IPv4Address(10, 1, 0, 2)), port: 40_000),
        remote: TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 22))
    static let start = EngineInstant.seconds(100)

    static func context(at now: EngineInstant, configuration: Configuration = Configuration()) -> ConnectionContext {
        ConnectionContext(now: now, configuration: configuration, addresses: HostAddresses(), random: SeededRandom(seed: 3))
    }

    /// A rackd connection in key exchange, as detection creates it.
    static func establishing(role: ConnectionRole = .client) -> Connection {
        var context = context(at: start)
        var options = try! HandshakeOptions(UnsafeRawBufferPointer(start: nil, count: 0))
        options.maximumSegmentSize = 1460
        options.windowScale = 7
        return Connection.rackd(
            id: 1, socketFlow: flow, role: role, localISN: TCPSequenceNumber(1000), peerISN: TCPSequenceNumber(5000),
            localOptions: options, peerOptions: options, &context).0
    }

    /// The same connection, keys agreed, healthy since `start`.
    static func healthy() -> Connection {
        var connection = establishing()
        connection.rackd.keys = .agreed(agreedKey(), name: [1, 2, 3, 4, 5, 6, 7, 8])
        connection.state = .healthy(Healthy(since: start))
        connection.socket = snapshot(.established)
        return connection
    }

    /// A real key, agreed between two ephemeral keys.
    static func agreedKey() -> ConnectionKey {
        let ours = KeySchedule.EphemeralKey(seed: [UInt8](repeating: 1, count: 32))
        let theirs = KeySchedule.EphemeralKey(seed: [UInt8](repeating: 2, count: 32))
        let transcript = KeyTranscript(client: flow.local, server: flow.remote, clientISN: TCPSequenceNumber(1000),
                                       serverISN: TCPSequenceNumber(5000), clientPublicKey: ours.publicKey,
                                       serverPublicKey: theirs.publicKey)
        return try! KeySchedule.connectionKey(ours, peerPublicKey: theirs.publicKey, transcript: transcript)
    }

    static func snapshot(_ state: SocketSnapshot.State) -> SocketSnapshot {
        SocketSnapshot(flow: flow, state: state, bytesAcked: 1, bytesReceived: 0, unackedSegments: 0,
                       lastAckReceived: .zero, lastDataReceived: .zero)
    }

    @Test func aResumptionBeforeTheHoldsSnapshotStillReopensTheSocketsWindow() {
        var connection = Self.suspended()
        #expect(connection.hold?.positions == nil, "the hold's own snapshot has not come")
        var actions = ConnectionActions()
        connection.resume(now: Self.start + .milliseconds(3), into: &actions)
        #expect(connection.phase == ConnectionPhase.healthy)
        let update = actions.transmits.compactMap { try? $0.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) } }
            .first { $0.destination == Self.flow.local && $0.flags == .ack }
        #expect(update != nil, "a window update reaches the local socket")
        #expect((update?.window ?? 0) > 0)
        #expect(update?.acknowledgmentNumber == TCPSequenceNumber(1001), "at the last snapshot's snd_una")
        // Nothing was stashed: a probe to the peer draws its ACK, which frees a socket whose RTO backed off.
        let probe = actions.transmits.compactMap { try? $0.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) } }
            .first { $0.destination == Self.flow.remote }
        #expect(probe?.sequenceNumber == TCPSequenceNumber(1000), "one below snd_una: the peer's kernel answers it")
        #expect(probe?.payload.isEmpty == true)
    }

    /// The same connection, suspended at `start` by a lost address.
    static func suspended() -> Connection {
        var connection = healthy()
        var actions = ConnectionActions()
        connection.suspend(reason: "test", now: start, into: &actions)
        #expect(actions.suspended && actions.wantsSnapshot)
        return connection
    }

    @Test func aSocketThatIsGoneEndsTheConnection() {
        var connection = Self.healthy()
        var context = Self.context(at: Self.start + .seconds(1))
        let actions = connection.handleSnapshot(nil, path: nil, &context)
        #expect(actions.end == .ended(reason: "socket closed"))
    }

    @Test func aClosingSocketStaysManagedUntilItsLastBytesAreAcknowledged() {
        var connection = Self.healthy()
        var context = Self.context(at: Self.start + .seconds(1))
        for state in [SocketSnapshot.State.lastAck, .closing] {
            #expect(connection.handleSnapshot(Self.snapshot(state), path: nil, &context).end == nil, "\(state): still managed")
            #expect(connection.phase == .healthy)
        }
        #expect(connection.handleSnapshot(Self.snapshot(.timeWait), path: nil, &context).end == .ended(reason: "socket is closing (timeWait)"))
    }

    @Test func aClosingSocketEndsAnUnmovedConnectionButKeepsAMovedOne() {
        var unmoved = Self.healthy()
        var context = Self.context(at: Self.start + .seconds(1))
        #expect(unmoved.handleSnapshot(Self.snapshot(.timeWait), path: nil, &context).end == .ended(reason: "socket is closing (timeWait)"))

        var moved = Self.healthy()
        moved.mapping = WireMapping(wire: FlowKey(local: TCPEndpoint(address: .v4(IPv4Address(10, 9, 0, 2)), port: 40_000),
                                                  remote: Self.flow.remote))
        let actions = moved.handleSnapshot(Self.snapshot(.timeWait), path: nil, &context)
        #expect(actions.end == nil)
        #expect(moved.phase == .closing)
        // Still mapped while it closes: by the kernel (a confirmed move with no sequence shift).
        #expect(moved.kernelNeeds.rewrite == KernelRewrite(socket: Self.flow, wire: moved.mapping!.wire))
        #expect(moved.kernelNeeds.queued.isEmpty)
    }

    @Test func theMaximumSuspensionEndsAHeldConnection() {
        var connection = Self.suspended()
        let configuration = Configuration()
        var before = Self.context(at: Self.start + (configuration.maximumSuspension - .seconds(1)))
        #expect(connection.handleTimeout(&before).end == nil)
        var after = Self.context(at: Self.start + configuration.maximumSuspension)
        #expect(connection.handleTimeout(&after).end == .ended(reason: "held for the maximum suspension time"))
    }

    @Test func aResetFromTheLocalSocketEndsAHeldConnection() throws {
        var connection = Self.suspended()
        let reset = TCPSegmentRepr(source: Self.flow.local, destination: Self.flow.remote, sequenceNumber: TCPSequenceNumber(1001),
                                   acknowledgmentNumber: TCPSequenceNumber(0), flags: .rst, window: 0)
        var bytes = [UInt8](repeating: 0, count: reset.bufferLength)
        try bytes.withUnsafeMutableBytes { try reset.emit(into: $0) }
        let actions = try bytes.withUnsafeBytes { buffer in
            connection.handleHeldSegment(try IPPacketView(validating: buffer), direction: .outbound)
        }
        #expect(actions.verdict == .accept)
        #expect(actions.end == .ended(reason: "local socket reset"))
    }

    @Test func closingCleanlyResetsTheHeldSocketAndEnds() {
        let actions = Self.suspended().closeCleanly(reason: "limit")
        #expect(actions.end == .ended(reason: "limit"))
        #expect(actions.transmits.count == 1)
    }

    @Test func aKeyExchangeThatNeverFinishesFallsBack() {
        var connection = Self.establishing()
        var actions = ConnectionActions()
        var now = Self.start
        while actions.end == nil && now < Self.start + .seconds(60) {
            now = now + RackdPeer.keyRetransmitInterval
            var context = Self.context(at: now)
            actions = connection.handleTimeout(&context)
        }
        #expect(actions.end == .fellBack(reason: "key exchange did not complete"))
    }

    @Test func aServerWhoseClientNeverSpokeExpiresSilently() {
        var connection = Self.establishing(role: .server)
        var context = Self.context(at: Self.start + RackdPeer.keyRetransmitInterval * RackdPeer.keySendLimit)
        let actions = connection.handleTimeout(&context)
        #expect(actions.end == .expired)
        #expect(actions.events.isEmpty && actions.transmits.isEmpty)
    }

    @Test func losingTheAddressDuringKeyExchangeFallsBack() {
        var connection = Self.establishing()
        let actions = connection.handleLinkEvent(.addressesLost([Self.flow.local.address]), now: Self.start)
        #expect(actions.end == .fellBack(reason: "local address lost during key exchange"))
    }

    @Test func aHealthyConnectionNeverEndsOnATimerOrALinkElsewhere() {
        var connection = Self.healthy()
        var context = Self.context(at: Self.start + .seconds(3600))
        #expect(connection.handleTimeout(&context).end == nil)
        #expect(connection.handleLinkEvent(.addressesLost([.v4(IPv4Address(192, 0, 2, 1))]), now: Self.start).end == nil)
        #expect(connection.phase == .healthy)
    }
}
