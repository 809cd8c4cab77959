// rackd — key exchange: each rackd sends an ephemeral X25519 public key in a consumed segment until it
// knows the peer has it (DESIGN §4, §6).
//
// A key message says whether its sender already holds the receiver's key (`haveYourKey`) and whether it
// still needs an answer (`wantReply`). Both sides retransmit until done; a side answers a message
// that wants a reply. Two rounds suffice without loss:
//     A: key(a, have: no,  want: yes) ──►
//                                     ◄── B: key(b, have: yes, want: yes)
//     A: key(a, have: yes, want: no)  ──►      (both done)
// If it has not finished after `keySendLimit` sends, the connection is left to plain TCP: nothing of
// it was ever queued, so nothing else changes.
//
// Only the client starts. The server sends its key only in answer to the client's, so a SYN with a
// forged source address, which never leads to a client key message, costs the server's rackd one
// bounded table entry that expires quietly, and makes it send nothing at all: no reflection, no
// amplification.

extension RacksEngine {
    mutating func startKeyExchange(
        flow: FlowKey, role: ConnectionRole, localISN: TCPSequenceNumber, peerISN: TCPSequenceNumber,
        localOptions: HandshakeOptions, peerOptions: HandshakeOptions, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        let ephemeral = KeySchedule.EphemeralKey(seed: randomBytes(32))
        var connection = RacksConnection(
            id: nextConnectionID, flow: flow, role: role, localISN: localISN, peerISN: peerISN,
            localOptions: localOptions, peerOptions: peerOptions, localPublicKey: ephemeral.publicKey,
            state: .keyExchange(.init(ephemeral: ephemeral, nextSendAt: now)), lastHeard: now)
        nextConnectionID += 1
        switch role {
        case .client:
            retransmitKey(connection: &connection, now: now, into: &output)
        case .server:
            // Wait for the client; give up silently when it would have given up.
            connection.state = .keyExchange(.init(
                ephemeral: ephemeral, nextSendAt: now + Self.keyRetransmitInterval * Self.keySendLimit))
        }
        connections[flow] = connection
    }

    /// How many connections are exchanging keys: bounded, so a flood of handshakes cannot grow the table.
    var connectionsInKeyExchange: Int {
        connections.values.reduce(0) { count, connection in
            if case .keyExchange = connection.state { return count + 1 }
            return count
        }
    }

    mutating func retransmitKey(connection: inout RacksConnection, now: EngineInstant, into output: inout EngineOutput) {
        guard case .keyExchange(var exchange) = connection.state else { return }
        if connection.role == .server && exchange.key == nil {
            // The client never spoke: most likely a forged SYN. Expire without sending or logging.
            connections[connection.flow] = nil
            return
        }
        if exchange.sends >= Self.keySendLimit {
            connections[connection.flow] = nil
            output.events.append(.fellBack(connection.flow, reason: "key exchange did not complete"))
            return
        }
        exchange.sends += 1
        exchange.nextSendAt = now + Self.keyRetransmitInterval
        output.transmit(controlSegment(
            .key(publicKey: exchange.ephemeral.publicKey, haveYourKey: exchange.key != nil, wantReply: true),
            connection: connection))
        connection.state = .keyExchange(exchange)
    }

    mutating func handleKey(
        _ publicKey: [UInt8], haveYourKey: Bool, wantReply: Bool, connection: inout RacksConnection,
        now: EngineInstant, into output: inout EngineOutput
    ) {
        connection.lastHeard = now
        switch connection.state {
        case .healthy, .suspended:
            // We finished; the peer has not seen our last answer yet.
            if wantReply {
                output.transmit(controlSegment(
                    .key(publicKey: connection.localPublicKey, haveYourKey: true, wantReply: false),
                    connection: connection))
            }
        case .keyExchange(var exchange):
            if exchange.key == nil {
                // From here a server has heard a real client, and retransmits until done like a client.
                exchange.nextSendAt = now + Self.keyRetransmitInterval
                let transcript = transcriptFor(connection, ours: exchange.ephemeral.publicKey, theirs: publicKey)
                do {
                    exchange.key = try KeySchedule.connectionKey(exchange.ephemeral, peerPublicKey: publicKey,
                                                                 transcript: transcript)
                } catch {
                    connections[connection.flow] = nil
                    output.events.append(.fellBack(connection.flow, reason: "\(error)"))
                    return
                }
            }
            if haveYourKey { exchange.peerHasOurKey = true }
            if wantReply {
                output.transmit(controlSegment(
                    .key(publicKey: exchange.ephemeral.publicKey, haveYourKey: true, wantReply: !exchange.isComplete),
                    connection: connection))
            }
            if exchange.isComplete, let key = exchange.key {
                connection.connectionID = KeySchedule.connectionID(key)
                transition(&connection, to: .healthy(.init(key: key, since: now)), reason: "keys agreed", into: &output)
                output.events.append(.connectionManaged(id: connection.id, connection.flow, role: connection.role))
                scheduleSnapshot(now: now)
            } else {
                connection.state = .keyExchange(exchange)
            }
        }
    }

    private func transcriptFor(_ connection: RacksConnection, ours: [UInt8], theirs: [UInt8]) -> KeyTranscript {
        switch connection.role {
        case .client:
            KeyTranscript(client: connection.flow.local, server: connection.flow.remote,
                          clientISN: connection.localISN, serverISN: connection.peerISN,
                          clientPublicKey: ours, serverPublicKey: theirs)
        case .server:
            KeyTranscript(client: connection.flow.remote, server: connection.flow.local,
                          clientISN: connection.peerISN, serverISN: connection.localISN,
                          clientPublicKey: theirs, serverPublicKey: ours)
        }
    }
}
