// rackd — finding rackd peers: rackd's hello in the SYN, echoed in the SYN-ACK (docs/protocol.md).
//
// Client side: a local SYN gets the hello if policy allows; a SYN-ACK that carries one makes the
// connection enhanced, one that does not leaves it to plain TCP. If the SYN with the hello goes
// unanswered twice, its next retransmission goes out untouched, and if that one is answered the
// destination is remembered (a middlebox may drop unknown options). Server side: a SYN with the hello
// is remembered and its flow queued, and the local SYN-ACK gets the hello too; a SYN without it never
// reaches rackd, nor does its SYN-ACK (RackdRuleset+Ordinary.swift). Nothing of a connection is queued
// after its handshake unless it is enhanced.
//
// Roam handshakes (SYNs carrying rackd's roam message) name an existing connection and go to it
// (Connection+RackdRoaming.swift); those that name none are dropped and counted.

/// Handshakes seen but not finished, and destinations that dropped the hello. Every entry expires
/// through a deadline heap, so neither grows without bound and expiry never walks them all.
struct RackdDetection {
    /// A handshake in progress, before both hellos are known.
    struct PendingHandshake {
        var role: ConnectionRole
        var createdAt: EngineInstant
        /// Client: our SYN's ISN and options. Server: the peer's SYN's.
        var synSequence: TCPSequenceNumber
        var synOptions: HandshakeOptions
        /// Client: whether our SYN carries the hello. It always starts so; false once a retransmission
        /// went without it because the SYNs that carried it went unanswered (a SYN-ACK to the plain SYN
        /// then suggests a middlebox that drops the option).
        var decorated: Bool
        /// Client: how many times the SYN went out with the hello.
        var helloTransmissions = 1
    }

    private(set) var pending: [FlowKey: PendingHandshake] = [:]
    private var pendingExpiry = DeadlineHeap<FlowKey>()
    /// Destinations whose SYNs went unanswered with rackd's option: until the instant, SYNs to them go
    /// out untouched (middlebox fallback).
    private var optionBlocked: [IPAddress: EngineInstant] = [:]
    private var optionBlockedExpiry = DeadlineHeap<IPAddress>()
    /// Roam handshakes for unknown connections since the last report, and when that was.
    var unknownRoams = 0
    var lastRejectionReport: EngineInstant?

    static let rejectionReportInterval: Duration = .seconds(10)

    subscript(pending flow: FlowKey) -> PendingHandshake? { pending[flow] }

    /// Keeps a handshake until it completes or `pendingLifetime` after its `createdAt`; a newer one for
    /// the same flow replaces it, with its own expiry.
    mutating func remember(_ handshake: PendingHandshake, for flow: FlowKey) {
        pendingExpiry.set(flow, to: handshake.createdAt + RackdPeer.pendingLifetime)
        pending[flow] = handshake
    }

    mutating func forget(_ flow: FlowKey) -> PendingHandshake? {
        pendingExpiry.cancel(flow)
        return pending.removeValue(forKey: flow)
    }

    mutating func blockOption(to destination: IPAddress, until instant: EngineInstant) {
        optionBlocked[destination] = instant
        optionBlockedExpiry.set(destination, to: instant)
    }

    func optionAllowed(to destination: IPAddress, now: EngineInstant) -> Bool {
        optionBlocked[destination].map { $0 <= now } ?? true
    }

    /// Forgets what is due; returns the flows of the server handshakes that expired (the caller stops
    /// queueing them).
    mutating func expire(now: EngineInstant) -> [FlowKey] {
        var expiredServers: [FlowKey] = []
        for flow in pendingExpiry.removeDue(now: now) {
            if pending.removeValue(forKey: flow)?.role == .server { expiredServers.append(flow) }
        }
        for destination in optionBlockedExpiry.removeDue(now: now) { optionBlocked[destination] = nil }
        return expiredServers
    }

    var nextDeadline: EngineInstant? {
        var deadline = pendingExpiry.nextDeadline
        if unknownRoams > 0, let last = lastRejectionReport {
            let report = last + Self.rejectionReportInterval
            deadline = min(deadline ?? report, report)
        }
        return deadline
    }
}

extension ConnectionCore {
    mutating func handleHandshakeSegment(
        _ packet: IPPacketView, flow: FlowKey, direction: PacketDirection, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        let tcp = packet.tcp
        let isSynAck = tcp.flags.contains(.ack)
        if direction == .inbound {
            // A roam handshake is rackd's alone; so is a SYN whose rackd option is malformed.
            switch Result(catching: { () throws(WireError) in try RacksMessage.find(in: tcp.options) }) {
            case .success(.roam(let name, let nonce, let isn)) where !isSynAck:
                output.verdict = .drop
                guard let id = table.id(named: name) else {
                    countDroppedRoam(now: now, into: &output)
                    return
                }
                run(id, now: now, into: &output) { connection, context in
                    var actions = ConnectionActions()
                    connection.handleRoamRequest(packet, nonce: nonce, isn: isn, wire: flow, &context, into: &actions)
                    return actions
                }
                return
            case .success(.roamResponse(let isn, let nonce, let mac)) where isSynAck:
                output.verdict = .drop
                guard let id = table.id(for: flow) else {
                    output.events.append(.resumptionRejected(flow, reason: "roam response for no roam of ours"))
                    return
                }
                run(id, now: now, into: &output) { connection, context in
                    var actions = ConnectionActions()
                    connection.handleRoamResponse(packet, isn: isn, nonce: nonce, mac: mac, wire: flow, now: context.now,
                                                  into: &actions)
                    return actions
                }
                return
            case .failure:
                output.verdict = .drop
                countDroppedRoam(now: now, into: &output)
                return
            default:
                break
            }
        }
        guard let options = try? HandshakeOptions(tcp.options) else { return }  // malformed: not ours to judge
        switch (direction, isSynAck) {
        case (.outbound, false):
            // A destination that may be a rock is probed first (Peers/Rocks/RocksDetection.swift).
            if holdForRocksProbe(packet, flow: flow, options: options, now: now, into: &output) { return }
            handleLocalSYNForRackd(packet, flow: flow, options: options, now: now, into: &output)
        case (.inbound, true):
            if let id = table.id(forSocket: flow), table[id]?.peer.isRocks == true { return }  // a retransmitted SYN-ACK
            if startRocksClientIfExpected(packet, flow: flow, options: options, now: now, into: &output) { return }
            handlePeerSYNACK(packet, flow: flow, options: options, now: now, into: &output)
        case (.inbound, false):
            handlePeerSYN(packet, flow: flow, options: options, now: now)
            if options.hello == nil { noteRocksCandidate(packet, flow: flow, options: options, now: now) }
            // Either may queue the flow; the socket answers the SYN at once, and its SYN-ACK must find it.
            output.ruleChangesBeforeVerdict = true
        case (.outbound, true):
            if startRocksServerIfCandidate(packet, flow: flow, options: options, now: now, into: &output) { return }
            handleLocalSYNACK(packet, flow: flow, options: options, now: now, into: &output)
        }
    }

    // MARK: Client

    /// A local SYN, as rackd's own detection treats it (also a SYN released by a probe that found no rock).
    mutating func handleLocalSYNForRackd(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        let isn = packet.tcp.sequenceNumber
        if var earlier = rackdDetection[pending: flow], earlier.role == .client, earlier.synSequence == isn {
            // A retransmission: with the hello again, up to `helloTransmissions` SYNs (the first may just
            // have been lost); after that without it, in case a middlebox drops SYNs that carry it.
            guard earlier.decorated else { return }
            if earlier.helloTransmissions < RackdPeer.helloTransmissions,
                let decorated = SYNDecoration.addingHello(to: packet.bytes)
            {
                earlier.helloTransmissions += 1
                rackdDetection.remember(earlier, for: flow)
                output.verdict = .replace(decorated)
                return
            }
            earlier.decorated = false
            rackdDetection.remember(earlier, for: flow)
            output.events.append(.fellBack(flow, reason: "\(earlier.helloTransmissions) SYNs with rackd's option went unanswered; retrying without it"))
            return
        }
        guard !options.authenticated,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.remote.port),
            rackdDetection.optionAllowed(to: flow.remote.address, now: now),
            rackdDetection.pending.count < RackdPeer.maximumPending,
            let decorated = SYNDecoration.addingHello(to: packet.bytes)
        else { return }
        rackdDetection.remember(
            .init(role: .client, createdAt: now, synSequence: isn, synOptions: options, decorated: true), for: flow)
        output.verdict = .replace(decorated)
    }

    private mutating func handlePeerSYNACK(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        guard let handshake = rackdDetection.forget(flow), handshake.role == .client else { return }
        guard handshake.decorated, options.hello != nil else {
            output.events.append(.fellBack(flow, reason: handshake.decorated ? "peer does not run rackd" : "middlebox fallback"))
            if handshake.decorated {
                noteNotRackd(flow.remote, now: now)
                noteOrdinary(flow.remote, now: now, into: &output)
            }
            if !handshake.decorated {
                // The plain SYN got through where those with the hello did not: the destination's next
                // SYNs go without it for a while (a lossy path that lost both is taken for one too).
                rackdDetection.blockOption(to: flow.remote.address, until: now + RackdPeer.fallbackMemory)
            }
            return
        }
        startRackdConnection(
            flow: flow, role: .client, localISN: handshake.synSequence, peerISN: packet.tcp.sequenceNumber,
            localOptions: handshake.synOptions, peerOptions: options, now: now, into: &output)
    }

    // MARK: Server

    private mutating func handlePeerSYN(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant) {
        guard options.hello != nil, !options.authenticated, rackdDetection.pending.count < RackdPeer.maximumPending,
            table.id(forSocket: flow) == nil,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.local.port)
        else { return }
        rackdDetection.remember(
            .init(role: .server, createdAt: now, synSequence: packet.tcp.sequenceNumber, synOptions: options, decorated: false),
            for: flow)
        // Our SYN-ACK must come to us to carry the hello: the SYN chain lets every other SYN-ACK pass
        // (RackdRuleset+Ordinary.swift), so the flow is queued from now until the client shows it had the
        // hello (Core/KernelNeeds.swift).
        table.queueBeforeConnection(flow, true)
    }

    private mutating func handleLocalSYNACK(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        if let id = table.id(forSocket: flow), let connection = table[id], connection.role == .server,
            connection.localISN == packet.tcp.sequenceNumber, !connection.peer.isRocks
        {
            // A retransmitted SYN-ACK: it must carry the hello again.
            if let decorated = SYNDecoration.addingHello(to: packet.bytes) { output.verdict = .replace(decorated) }
            return
        }
        guard let handshake = rackdDetection[pending: flow], handshake.role == .server,
            packet.tcp.acknowledgmentNumber == handshake.synSequence + 1,
            !options.authenticated,
            table.establishingCount < RackdPeer.maximumPending,
            let decorated = SYNDecoration.addingHello(to: packet.bytes)
        else { return }
        _ = rackdDetection.forget(flow)
        table.queueBeforeConnection(flow, false)  // the connection queues it while establishing (KernelNeeds.swift)
        output.verdict = .replace(decorated)
        startRackdConnection(
            flow: flow, role: .server, localISN: packet.tcp.sequenceNumber, peerISN: handshake.synSequence,
            localOptions: options, peerOptions: handshake.synOptions, now: now, into: &output)
    }

    // MARK: Both

    /// The handshake showed a rackd peer: the connection is managed from now on, starting with the key
    /// exchange (Connection+RackdKeyExchange.swift).
    private mutating func startRackdConnection(
        flow: FlowKey, role: ConnectionRole, localISN: TCPSequenceNumber, peerISN: TCPSequenceNumber,
        localOptions: HandshakeOptions, peerOptions: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        var context = ConnectionContext(now: now, configuration: configuration, addresses: addresses, random: random)
        let (connection, actions) = Connection.rackd(
            id: makeConnectionID(), socketFlow: flow, role: role, localISN: localISN, peerISN: peerISN,
            localOptions: localOptions, peerOptions: peerOptions, &context)
        random = context.random
        table.insert(connection)
        carryOut(actions, of: connection.id, now: now, into: &output)
    }

    /// Counts a roam handshake that names no connection, or is malformed, reporting now and then.
    mutating func countDroppedRoam(now: EngineInstant, into output: inout EngineOutput) {
        rackdDetection.unknownRoams += 1
        reportUnknownRoams(now: now, into: &output)
    }

    mutating func reportUnknownRoams(now: EngineInstant, into output: inout EngineOutput) {
        guard rackdDetection.unknownRoams > 0,
            rackdDetection.lastRejectionReport.map({ now.duration(since: $0) >= RackdDetection.rejectionReportInterval })
                ?? true
        else { return }
        output.events.append(.unknownRoamsDropped(count: rackdDetection.unknownRoams))
        rackdDetection.unknownRoams = 0
        rackdDetection.lastRejectionReport = now
    }
}
