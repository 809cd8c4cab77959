// rackd — authenticated resumption (DESIGN §6).
//
//     suspended side S                                peer P
//     challenge(nS)                      ──►
//                                        ◄──  response(nP, HMAC(K, "response" | nS | nP))
//     confirm(HMAC(K, "confirm" | nP | nS)) ──►
//
// S lifts its zero window when the response verifies: the peer has answered from its address with the
// key. P lifts its own when the confirm verifies. Nonces are fresh on both sides, so a recorded
// exchange replays nowhere. When both sides are suspended and challenge at once, exactly one attempt
// wins: the client ignores the server's challenge while its own is outstanding, and the server answers
// the client's.
//
// On resumption rackd replays the socket's segment at snd_una to the peer and opens the local
// socket's window; from there the kernels' own retransmission delivers whatever was in flight.

extension RacksEngine {
    mutating func sendChallenge(connection: inout RacksConnection, now: EngineInstant, into output: inout EngineOutput) {
        guard case .suspended(var suspended) = connection.state else { return }
        let nonce = randomBytes(RacksMessage.nonceLength)
        suspended.challengeNonces = Array((suspended.challengeNonces + [nonce]).suffix(Self.recentNonces))
        suspended.nextChallengeAt = now + Self.challengeInterval
        output.transmit(controlSegment(.challenge(nonce: nonce), connection: connection))
        connection.state = .suspended(suspended)
    }

    mutating func handleChallenge(_ nonce: [UInt8], connection: inout RacksConnection, now: EngineInstant,
                                  into output: inout EngineOutput) {
        guard let key = connection.key else { return }  // still exchanging keys: nothing to prove yet
        connection.lastHeard = now
        let responseNonce = randomBytes(RacksMessage.nonceLength)
        let response = RacksMessage.response(
            nonce: responseNonce, mac: KeySchedule.responseMAC(key, challengeNonce: nonce, responseNonce: responseNonce))
        switch connection.state {
        case .keyExchange:
            return
        case .healthy:
            // The peer was suspended and we never noticed: prove ourselves; nothing to lift here.
            output.transmit(controlSegment(response, connection: connection))
            output.events.append(.challengeAnswered(id: connection.id, connection.flow, phase: .healthy))
        case .suspended(var suspended):
            if suspended.heldByOperator { return }  // held until `rackctl resume`, path or no path
            if connection.role == .client && !suspended.challengeNonces.isEmpty {
                return  // our own attempt wins
            }
            suspended.answeredChallenges = Array(
                (suspended.answeredChallenges + [(nonce, responseNonce)]).suffix(Self.recentNonces))
            output.transmit(controlSegment(response, connection: connection))
            output.events.append(.challengeAnswered(id: connection.id, connection.flow, phase: .resuming))
            transition(&connection, to: .suspended(suspended), reason: "answered the peer's challenge", into: &output)
        }
    }

    mutating func handleResponse(nonce responseNonce: [UInt8], mac: [UInt8], connection: inout RacksConnection,
                                 now: EngineInstant, into output: inout EngineOutput) {
        guard case .suspended(let suspended) = connection.state, !suspended.heldByOperator else { return }
        guard let challengeNonce = suspended.challengeNonces.last(where: {
            KeySchedule.macsMatch(mac, KeySchedule.responseMAC(suspended.key, challengeNonce: $0, responseNonce: responseNonce))
        }) else {
            output.events.append(.resumptionRejected(connection.flow, reason: "response does not match any challenge of ours"))
            return
        }
        output.transmit(controlSegment(
            .confirm(mac: KeySchedule.confirmMAC(suspended.key, challengeNonce: challengeNonce, responseNonce: responseNonce)),
            connection: connection))
        resume(&connection, now: now, into: &output)
    }

    mutating func handleConfirm(mac: [UInt8], connection: inout RacksConnection, now: EngineInstant,
                                into output: inout EngineOutput) {
        guard case .suspended(let suspended) = connection.state, !suspended.heldByOperator else { return }
        guard suspended.answeredChallenges.contains(where: {
            KeySchedule.macsMatch(mac, KeySchedule.confirmMAC(suspended.key, challengeNonce: $0.challenge, responseNonce: $0.response))
        }) else {
            output.events.append(.resumptionRejected(connection.flow, reason: "confirm does not match any response of ours"))
            return
        }
        resume(&connection, now: now, into: &output)
    }

    /// Lifts the suspension: replay, open the local window, stop queueing (unless the connection roamed:
    /// then its packets keep being rewritten).
    mutating func resume(_ connection: inout RacksConnection, now: EngineInstant, into output: inout EngineOutput) {
        guard case .suspended(let suspended) = connection.state else { return }
        connection.lastHeard = now
        if let stash = suspended.stash { output.transmit(toPeer(stash, connection: connection)) }
        if let positions = suspended.sequences {
            // A window the local socket will accept as an update (same seq as our zero-window ACKs, larger
            // window), about 64 KiB after the peer's scaling. The peer's own ACKs set the real one.
            let window = UInt16(max(1, min(0xFFFF, 65_536 >> Int(connection.peerOptions.windowScale))))
            output.transmit(.ack(
                from: connection.flow.remote, to: connection.flow.local, sequenceNumber: positions.receiveNext,
                acknowledgmentNumber: positions.sendUnacknowledged, window: window,
                options: echoedTimestamps(suspended)))
        }
        connection.resumptions += 1
        connection.needsFreshSnapshot = false
        transition(&connection, to: .healthy(.init(key: suspended.key, since: now)), reason: "resumed", into: &output)
        output.events.append(.resumed(id: connection.id, connection.flow, after: now.duration(since: suspended.since)))
    }
}
