// rackd — detection: rackd's hello in the SYN, echoed in the SYN-ACK (DESIGN §6).
//
// Client side: a local SYN gets the hello if policy allows; a SYN-ACK that carries one makes the
// connection enhanced, one that does not leaves it to plain TCP. If the SYN with the hello goes
// unanswered, its retransmission goes out untouched and the destination is remembered (a middlebox
// may drop unknown options). Server side: a SYN with the hello is remembered, and the local SYN-ACK
// gets the hello too. Nothing of a connection is queued after its handshake unless it is enhanced.

extension RacksEngine {
    mutating func handleHandshakeSegment(
        _ packet: IPPacketView, flow: FlowKey, direction: PacketDirection, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        let tcp = packet.tcp
        let isSynAck = tcp.flags.contains(.ack)
        if direction == .inbound {
            // A roam handshake is rackd's alone (+Roaming); so is a SYN whose rackd option is malformed.
            switch Result(catching: { () throws(WireError) in try RacksMessage.find(in: tcp.options) }) {
            case .success(.roam(let id, let nonce, let isn)) where !isSynAck:
                handleRoamRequest(packet, connectionID: id, nonce: nonce, isn: isn, wire: flow, now: now, into: &output)
                return
            case .success(.roamResponse(let isn, let nonce, let mac)) where isSynAck:
                handleRoamResponse(packet, isn: isn, nonce: nonce, mac: mac, wire: flow, now: now, into: &output)
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
            handleLocalSYN(packet, flow: flow, options: options, now: now, into: &output)
        case (.inbound, true):
            handlePeerSYNACK(packet, flow: flow, options: options, now: now, into: &output)
        case (.inbound, false):
            handlePeerSYN(packet, flow: flow, options: options, now: now)
        case (.outbound, true):
            handleLocalSYNACK(packet, flow: flow, options: options, now: now, into: &output)
        }
    }

    // MARK: Client

    private mutating func handleLocalSYN(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        let isn = packet.tcp.sequenceNumber
        if var earlier = pending[flow], earlier.role == .client, earlier.synSequence == isn {
            // A retransmission. If the first went out with the hello, assume it was dropped for it.
            if earlier.decorated {
                earlier.decorated = false
                pending[flow] = earlier
                optionBlockedDestinations[flow.remote.address] = now + Self.fallbackMemory
                output.events.append(.fellBack(flow, reason: "SYN with rackd's option went unanswered; retrying without it"))
            }
            return
        }
        guard !options.authenticated,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.remote.port),
            optionBlockedDestinations[flow.remote.address].map({ $0 <= now }) ?? true,
            pending.count < Self.maximumPending,
            let decorated = SYNDecoration.addingHello(to: packet.bytes)
        else { return }
        pending[flow] = PendingHandshake(role: .client, createdAt: now, synSequence: isn, synOptions: options, decorated: true)
        output.verdict = .replace(decorated)
    }

    private mutating func handlePeerSYNACK(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        guard let handshake = pending.removeValue(forKey: flow), handshake.role == .client else { return }
        guard handshake.decorated, options.hello != nil else {
            output.events.append(.fellBack(flow, reason: handshake.decorated ? "peer does not run rackd" : "middlebox fallback"))
            return
        }
        startKeyExchange(
            flow: flow, role: .client, localISN: handshake.synSequence, peerISN: packet.tcp.sequenceNumber,
            localOptions: handshake.synOptions, peerOptions: options, now: now, into: &output)
    }

    // MARK: Server

    private mutating func handlePeerSYN(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant) {
        guard options.hello != nil, !options.authenticated, pending.count < Self.maximumPending,
            connections[flow] == nil,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.local.port)
        else { return }
        pending[flow] = PendingHandshake(
            role: .server, createdAt: now, synSequence: packet.tcp.sequenceNumber, synOptions: options, decorated: false)
    }

    private mutating func handleLocalSYNACK(
        _ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        if let connection = connections[flow], connection.role == .server, connection.localISN == packet.tcp.sequenceNumber {
            // A retransmitted SYN-ACK: it must carry the hello again.
            if let decorated = SYNDecoration.addingHello(to: packet.bytes) { output.verdict = .replace(decorated) }
            return
        }
        guard let handshake = pending[flow], handshake.role == .server,
            packet.tcp.acknowledgmentNumber == handshake.synSequence + 1,
            !options.authenticated,
            connectionsInKeyExchange < Self.maximumPending,
            let decorated = SYNDecoration.addingHello(to: packet.bytes)
        else { return }
        pending[flow] = nil
        output.verdict = .replace(decorated)
        startKeyExchange(
            flow: flow, role: .server, localISN: packet.tcp.sequenceNumber, peerISN: handshake.synSequence,
            localOptions: options, peerOptions: handshake.synOptions, now: now, into: &output)
    }
}
