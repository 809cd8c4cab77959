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

    static let maximumPending = 4096
    static let pendingLifetime: Duration = .seconds(30)
    static let fallbackMemory: Duration = .seconds(600)
    static let keyRetransmitInterval: Duration = .milliseconds(200)
    static let keySendLimit = 25
    static let challengeInterval: Duration = .milliseconds(500)
    static let recentNonces = 4

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

    /// Decides what happens to one queued TCP segment. `bytes` is the whole IP packet.
    mutating func handleSegment(_ packet: IPPacketView, direction: PacketDirection, now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: direction)
        let tcp = packet.tcp
        if tcp.flags.contains(.syn) {
            handleHandshakeSegment(packet, flow: flow, direction: direction, now: now, into: &output)
            return output
        }
        // rackd's own messages are consumed here and never reach a socket.
        let message: RacksMessage?
        do {
            message = try RacksMessage.find(in: tcp.options)
        } catch {
            output.verdict = connections[flow] == nil ? .accept : .drop
            output.events.append(.resumptionRejected(flow, reason: "malformed rackd option: \(error)"))
            return output
        }
        if let message, direction == .inbound {
            output.verdict = .drop
            handleMessage(message, flow: flow, packet: packet, now: now, into: &output)
            return output
        }
        guard var connection = connections[flow] else { return output }
        if case .suspended = connection.state {
            handleSuspendedSegment(packet, connection: &connection, direction: direction, now: now, into: &output)
            connections[flow] = connection
        }
        return output
    }

    private mutating func handleMessage(
        _ message: RacksMessage, flow: FlowKey, packet: IPPacketView, now: EngineInstant, into output: inout EngineOutput
    ) {
        guard var connection = connections[flow] else {
            output.events.append(.resumptionRejected(flow, reason: "rackd message for no connection rackd holds"))
            return
        }
        switch message {
        case .hello:
            return  // only meaningful on a SYN
        case .key(let publicKey, let haveYourKey, let wantReply):
            handleKey(publicKey, haveYourKey: haveYourKey, wantReply: wantReply, connection: &connection, now: now,
                      into: &output)
        case .challenge(let nonce):
            handleChallenge(nonce, connection: &connection, now: now, into: &output)
        case .response(let nonce, let mac):
            handleResponse(nonce: nonce, mac: mac, connection: &connection, now: now, into: &output)
        case .confirm(let mac):
            handleConfirm(mac: mac, connection: &connection, now: now, into: &output)
        }
        if connections[flow] != nil { connections[flow] = connection }
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
                } else if suspended.nextChallengeAt <= now {
                    sendChallenge(connection: &connection, now: now, into: &output)
                }
            default:
                break
            }
            if connections[flow] != nil { connections[flow] = connection }
        }
        expirePending(now: now)
        return output
    }

    /// The earliest instant a timer or a snapshot is due.
    var nextDeadline: EngineInstant? {
        var deadline = nextSnapshotAt
        func consider(_ instant: EngineInstant) { deadline = min(deadline ?? instant, instant) }
        for connection in connections.values {
            switch connection.state {
            case .keyExchange(let exchange): consider(exchange.nextSendAt)
            case .suspended(let suspended): consider(suspended.nextChallengeAt)
            case .healthy: break
            }
        }
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
        if case .suspended = connection.state { output.ruleChanges.append(.release(connection.flow)) }
        connections[connection.flow] = nil
        output.events.append(.connectionEnded(id: connection.id, connection.flow, reason: reason))
    }

    /// A segment from rackd to the peer's rackd: a keepalive-shaped ACK (seq one below what the peer
    /// expects, so a peer kernel that ever saw it would only answer with an ACK) carrying `message`.
    func controlSegment(_ message: RacksMessage, connection: RacksConnection) -> TCPSegmentRepr {
        let positions = connection.socket.map(connection.sequences(from:))
            ?? SequenceState(sendUnacknowledged: connection.localISN + 1, receiveNext: connection.peerISN + 1)
        return TCPSegmentRepr(
            source: connection.flow.local, destination: connection.flow.remote,
            sequenceNumber: positions.sendUnacknowledged - 1, acknowledgmentNumber: positions.receiveNext,
            flags: .ack, window: 1024, options: [message.option])
    }
}
