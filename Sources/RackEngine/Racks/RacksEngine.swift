// rackd — every rackd-to-rackd connection of this host, and the decisions about them.
//
// Inputs: queued packets (`handlePacket`), socket snapshots (`handleSnapshots`), link events and timer
// ticks. Outputs go into an `EngineOutput`. The transitions are split by concern into the extensions
// +Handshake, +KeyExchange, +Heartbeat, +Suspension and +Resumption.

public struct RacksEngine: Sendable {
    let configuration: Configuration
    var random: any RandomNumberGenerator & Sendable
    /// Handshakes seen but not finished, by flow.
    var pending: [FlowKey: PendingHandshake] = [:]
    var connections: [FlowKey: RacksConnection] = [:]
    /// Destinations whose SYNs went unanswered with rackd's option: until the instant, SYNs to them go
    /// out untouched (middlebox fallback).
    var optionBlockedDestinations: [IPAddress: EngineInstant] = [:]
    var nextConnectionID: UInt64 = 1
    var nextSnapshotAt: EngineInstant? = nil

    /// Derived from `connections` by `reconcile`, never edited elsewhere: what the data plane was told
    /// to queue and to hold, and which wire tuples lead to which connection.
    var managedFlows: Set<FlowKey> = []
    var heldAddresses: Set<IPAddress> = []
    var wireFlows: [FlowKey: FlowKey] = [:]

    /// Local addresses, as rtnetlink reports them: usable ones, newest last, and ones that left.
    var availableAddresses: [IPAddress] = []
    var lostAddresses: Set<IPAddress> = []

    /// Roam handshakes for unknown connections since the last report, and when that was.
    var unknownRoams = 0
    var lastRejectionReport: EngineInstant?

    static let maximumPending = 4096
    static let pendingLifetime: Duration = .seconds(30)
    static let fallbackMemory: Duration = .seconds(600)
    static let keyRetransmitInterval: Duration = .milliseconds(200)
    static let keySendLimit = 25
    static let challengeInterval: Duration = .milliseconds(500)
    static let recentNonces = 4
    static let confirmRepeats = 10
    static let rejectionReportInterval: Duration = .seconds(10)

    public init(configuration: Configuration, random: any RandomNumberGenerator & Sendable) {
        self.configuration = configuration
        self.random = random
    }

    /// A handshake in progress, before both hellos are known.
    struct PendingHandshake {
        var role: ConnectionRole
        var createdAt: EngineInstant
        /// Client: our SYN's ISN and options. Server: the peer's SYN's.
        var synSequence: TCPSequenceNumber
        var synOptions: HandshakeOptions
        /// Client: whether our SYN carried the hello.
        var decorated: Bool
    }

    // MARK: Packets

    /// Decides what happens to one queued TCP segment. `bytes` is the whole IP packet, which a roamed
    /// connection's rewrite edits in place.
    mutating func handleSegment(
        _ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer, direction: PacketDirection,
        checksum: TCPChecksumState, now: EngineInstant
    ) -> EngineOutput {
        var output = EngineOutput()
        let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: direction)
        let tcp = packet.tcp
        if tcp.flags.contains(.syn) {
            handleHandshakeSegment(packet, flow: flow, direction: direction, now: now, into: &output)
            reconcile(now: now, into: &output)
            return output
        }
        // rackd's own messages are consumed here and never reach a socket.
        let message: RacksMessage?
        do {
            message = try RacksMessage.find(in: tcp.options)
        } catch {
            output.verdict = connectionFlow(for: flow) == nil ? .accept : .drop
            output.events.append(.resumptionRejected(flow, reason: "malformed rackd option: \(error)"))
            return output
        }
        if let message, direction == .inbound {
            output.verdict = .drop
            handleMessage(message, flow: flow, packet: packet, now: now, into: &output)
            reconcile(now: now, into: &output)
            return output
        }
        guard let socketFlow = connectionFlow(for: flow), var connection = connections[socketFlow] else { return output }
        if case .suspended = connection.state {
            handleSuspendedSegment(packet, connection: &connection, direction: direction, now: now, into: &output)
            if connections[socketFlow] != nil { connections[socketFlow] = connection }
            reconcile(now: now, into: &output)
            return output
        }
        guard let path = connection.path else {
            // Queued only while a roam handshake from this tuple is unconfirmed: nothing may reach the
            // socket (or draw a reset from the kernel) before the peer proves itself.
            if direction == .inbound && flow != socketFlow { output.verdict = .drop }
            return output
        }
        // The fast path: every packet of a roamed connection.
        switch direction {
        case .outbound where flow == socketFlow:
            output.verdict = rewrite(bytes, with: path.outbound, checksum: checksum)
        case .inbound where flow == path.wire:
            output.verdict = rewrite(bytes, with: path.inbound(to: socketFlow), checksum: checksum)
            if connection.confirmRepeat != nil {
                connection.confirmRepeat = nil  // the peer sends on the new path: it has our confirm
                connections[socketFlow] = connection
            }
        default:
            // The old tuple, after the connection moved: stale, or forged. Never for the socket.
            output.verdict = .drop
        }
        return output
    }

    /// Rewrites a packet in place; one that cannot be rewritten is dropped (its sender retransmits).
    private func rewrite(_ bytes: UnsafeMutableRawBufferPointer, with rewrite: FlowRewrite,
                         checksum: TCPChecksumState) -> PacketVerdict {
        do {
            try rewrite.apply(to: bytes, checksum: checksum)
            return .acceptModified(length: bytes.count)
        } catch {
            return .drop
        }
    }

    private mutating func handleMessage(
        _ message: RacksMessage, flow: FlowKey, packet: IPPacketView, now: EngineInstant, into output: inout EngineOutput
    ) {
        guard let socketFlow = connectionFlow(for: flow), var connection = connections[socketFlow] else {
            output.events.append(.resumptionRejected(flow, reason: "rackd message for no connection rackd holds"))
            return
        }
        switch message {
        case .hello, .roam, .roamResponse:
            return  // only meaningful on a SYN or SYN-ACK
        case .key(let publicKey, let haveYourKey, let wantReply):
            handleKey(publicKey, haveYourKey: haveYourKey, wantReply: wantReply, connection: &connection, now: now,
                      into: &output)
        case .challenge(let nonce):
            handleChallenge(nonce, connection: &connection, now: now, into: &output)
        case .response(let nonce, let mac):
            handleResponse(nonce: nonce, mac: mac, connection: &connection, now: now, into: &output)
        case .confirm(let mac):
            let roamConfirmed = handleRoamConfirm(mac: mac, wire: flow, connection: &connection, now: now, into: &output)
            if !roamConfirmed && flow == connection.wireFlow {
                handleConfirm(mac: mac, connection: &connection, now: now, into: &output)
            }
        }
        if connections[socketFlow] != nil { connections[socketFlow] = connection }
    }

    // MARK: Timers

    /// Runs every timer that is due.
    mutating func handleTimeout(now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        for flow in flowsInOrder {
            guard var connection = connections[flow] else { continue }
            switch connection.state {
            case .keyExchange(let exchange) where exchange.nextSendAt <= now:
                retransmitKey(connection: &connection, now: now, into: &output)
            case .suspended(let suspended):
                if now.duration(since: suspended.since) >= configuration.maximumSuspension {
                    abandon(&connection, reason: "held for the maximum suspension time", into: &output)
                } else if suspended.nextChallengeAt <= now && !suspended.heldByOperator {
                    if let address = roamingAddress(for: connection) {
                        sendRoam(connection: &connection, from: address, now: now, into: &output)
                    } else if !lostAddresses.contains(connection.wireFlow.local.address) {
                        sendChallenge(connection: &connection, now: now, into: &output)
                    }
                }
            default:
                break
            }
            repeatConfirmIfDue(connection: &connection, now: now, into: &output)
            expireRoamOffers(connection: &connection, now: now)
            if connections[flow] != nil { connections[flow] = connection }
        }
        expirePending(now: now)
        reportUnknownRoams(now: now, into: &output)
        reconcile(now: now, into: &output)
        return output
    }

    /// The earliest instant a timer or a snapshot is due.
    var nextDeadline: EngineInstant? {
        var deadline = nextSnapshotAt
        func consider(_ instant: EngineInstant) { deadline = min(deadline ?? instant, instant) }
        for connection in connections.values {
            switch connection.state {
            case .keyExchange(let exchange): consider(exchange.nextSendAt)
            case .suspended(let suspended) where suspended.heldByOperator:
                consider(suspended.since + configuration.maximumSuspension)
            case .suspended(let suspended): consider(suspended.nextChallengeAt)
            case .healthy: break
            }
            if let repeatAt = connection.confirmRepeat?.nextAt { consider(repeatAt) }
            if let oldest = connection.roamOffers.first { consider(oldest.createdAt + Self.roamOfferLifetime) }
        }
        if unknownRoams > 0, let last = lastRejectionReport { consider(last + Self.rejectionReportInterval) }
        if let oldest = pending.values.map(\.createdAt).min() { consider(oldest + Self.pendingLifetime) }
        return deadline
    }

    private mutating func expirePending(now: EngineInstant) {
        pending = pending.filter { now.duration(since: $0.value.createdAt) < Self.pendingLifetime }
        optionBlockedDestinations = optionBlockedDestinations.filter { $0.value > now }
    }

    // MARK: Helpers used by the extensions

    /// Every connection's flow, oldest connection first. Walks over connections use this order, never the
    /// dictionary's, which Swift randomizes per process: the same inputs must give the same outputs.
    var flowsInOrder: [FlowKey] {
        connections.values.sorted { $0.id < $1.id }.map(\.flow)
    }

    mutating func randomBytes(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            var word = random.next()
            for _ in 0..<8 where bytes.count < count {
                bytes.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return bytes
    }

    /// Moves a connection to a new state, reporting the change of phase.
    mutating func transition(
        _ connection: inout RacksConnection, to state: RacksConnection.State, reason: String,
        into output: inout EngineOutput
    ) {
        let before = connection.phase
        connection.state = state
        let after = connection.phase
        if before != after {
            output.events.append(.phaseChanged(id: connection.id, connection.flow, from: before, to: after, reason: reason))
        }
    }

    /// Stops managing a connection for good; its socket carries on, or fails, as plain TCP.
    mutating func forget(_ connection: RacksConnection, reason: String, into output: inout EngineOutput) {
        connections[connection.flow] = nil
        output.events.append(.connectionEnded(id: connection.id, connection.flow, reason: reason))
    }

    /// A segment from rackd to the peer's rackd: a keepalive-shaped ACK (seq one below what the peer
    /// expects, so a peer kernel that ever saw it would only answer with an ACK) carrying `message`.
    func controlSegment(_ message: RacksMessage, connection: RacksConnection) -> TCPSegmentRepr {
        let positions = connection.socket.map(connection.sequences(from:))
            ?? SequenceState(sendUnacknowledged: connection.localISN + 1, receiveNext: connection.peerISN + 1)
        return toPeer(TCPSegmentRepr(
            source: connection.flow.local, destination: connection.flow.remote,
            sequenceNumber: positions.sendUnacknowledged - 1, acknowledgmentNumber: positions.receiveNext,
            flags: .ack, window: 1024, options: [message.option]), connection: connection)
    }

    /// A segment built in the socket's terms, as it must travel to the peer: over the roamed path, if any.
    func toPeer(_ segment: TCPSegmentRepr, connection: RacksConnection) -> TCPSegmentRepr {
        connection.path.map { $0.outbound(segment) } ?? segment
    }

    /// The connection a tuple belongs to: its socket's tuple, or a wire tuple after or during a roam.
    func connectionFlow(for flow: FlowKey) -> FlowKey? {
        connections[flow] != nil ? flow : wireFlows[flow]
    }
}
