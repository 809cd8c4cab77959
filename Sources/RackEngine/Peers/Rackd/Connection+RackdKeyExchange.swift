// rackd — key exchange with a rackd peer: each rackd sends an ephemeral X25519 public key in a consumed
// segment until it knows the peer has it (docs/protocol.md).
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

extension Connection {
    /// A connection whose handshake showed a rackd peer: the key exchange starts.
    static func rackd(
        id: UInt64, socketFlow: FlowKey, role: ConnectionRole, localISN: TCPSequenceNumber, peerISN: TCPSequenceNumber,
        localOptions: HandshakeOptions, peerOptions: HandshakeOptions, _ context: inout ConnectionContext
    ) -> (Connection, ConnectionActions) {
        let now = context.now
        let ephemeral = KeySchedule.EphemeralKey(seed: context.randomBytes(32))
        // The server waits for the client, and gives up silently when the client would have given up.
        let firstSendAt = role == .client
            ? now : now + RackdPeer.keyRetransmitInterval * RackdPeer.keySendLimit
        var connection = Connection(
            id: id, socketFlow: socketFlow, role: role, localISN: localISN, peerISN: peerISN,
            localOptions: localOptions, peerOptions: peerOptions, state: .establishing(Establishing(since: now)),
            peer: .rackd(RackdPeer(ephemeral: ephemeral, firstSendAt: firstSendAt)), lastHeard: now)
        var actions = ConnectionActions()
        if role == .client { connection.retransmitKey(now: now, into: &actions) }
        return (connection, actions)
    }

    /// Sends our key again, or gives up.
    mutating func retransmitKey(now: EngineInstant, into actions: inout ConnectionActions) {
        guard case .exchanging(var exchange) = rackd.keys else { return }
        if role == .server && exchange.key == nil {
            // The client never spoke: most likely a forged SYN. Expire without sending or logging.
            actions.end = .expired
            return
        }
        if exchange.sends >= RackdPeer.keySendLimit {
            actions.end = .fellBack(reason: "key exchange did not complete")
            return
        }
        exchange.sends += 1
        exchange.nextSendAt = now + RackdPeer.keyRetransmitInterval
        rackd.keys = .exchanging(exchange)
        actions.transmit(controlSegment(
            .key(publicKey: exchange.ephemeral.publicKey, haveYourKey: exchange.key != nil, wantReply: true)))
    }

    mutating func handleKey(_ publicKey: [UInt8], haveYourKey: Bool, wantReply: Bool, now: EngineInstant,
                            into actions: inout ConnectionActions) {
        lastHeard = now
        guard case .exchanging(var exchange) = rackd.keys else {
            // We finished; the peer has not seen our last answer yet.
            if wantReply {
                actions.transmit(controlSegment(.key(publicKey: rackd.localPublicKey, haveYourKey: true, wantReply: false)))
            }
            return
        }
        if exchange.key == nil {
            // From here a server has heard a real client, and retransmits until done like a client.
            exchange.nextSendAt = now + RackdPeer.keyRetransmitInterval
            let transcript = keyTranscript(ours: exchange.ephemeral.publicKey, theirs: publicKey)
            do {
                exchange.key = try KeySchedule.connectionKey(exchange.ephemeral, peerPublicKey: publicKey,
                                                             transcript: transcript)
            } catch {
                actions.end = .fellBack(reason: "\(error)")
                return
            }
        }
        if haveYourKey { exchange.peerHasOurKey = true }
        if wantReply {
            actions.transmit(controlSegment(
                .key(publicKey: exchange.ephemeral.publicKey, haveYourKey: true, wantReply: !exchange.isComplete)))
        }
        guard exchange.isComplete, let key = exchange.key, case .establishing(let establishing) = state else {
            rackd.keys = .exchanging(exchange)
            return
        }
        rackd.keys = .agreed(key, name: KeySchedule.connectionID(key))
        transition(to: .healthy(Healthy(establishing, now: now)), reason: "keys agreed", into: &actions)
        actions.events.append(.connectionManaged(id: id, socketFlow, role: role, peerKind: peer.kind))
        actions.wantsSnapshot = true
    }

    private func keyTranscript(ours: [UInt8], theirs: [UInt8]) -> KeyTranscript {
        switch role {
        case .client:
            KeyTranscript(client: socketFlow.local, server: socketFlow.remote, clientISN: localISN, serverISN: peerISN,
                          clientPublicKey: ours, serverPublicKey: theirs)
        case .server:
            KeyTranscript(client: socketFlow.remote, server: socketFlow.local, clientISN: peerISN, serverISN: localISN,
                          clientPublicKey: theirs, serverPublicKey: ours)
        }
    }

    /// A segment from rackd to the peer's rackd: a keepalive-shaped ACK (seq one below what the peer
    /// expects, so a peer kernel that ever saw it would only answer with an ACK) carrying `message`.
    func controlSegment(_ message: RacksMessage) -> TCPSegmentRepr {
        let positions = socket.map(sequences(from:))
            ?? SequenceState(sendUnacknowledged: localISN + 1, receiveNext: peerISN + 1)
        return toPeer(TCPSegmentRepr(
            source: socketFlow.local, destination: socketFlow.remote,
            sequenceNumber: positions.sendUnacknowledged - 1, acknowledgmentNumber: positions.receiveNext,
            flags: .ack, window: 1024, options: [message.option]))
    }
}
