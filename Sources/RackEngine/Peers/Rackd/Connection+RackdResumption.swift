// rackd — authenticated resumption with a rackd peer (docs/protocol.md, docs/security.md).
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
// socket's window (Core/Connection+Hold.swift); from there the kernels' own retransmission delivers
// whatever was in flight.

extension Connection {
    /// One resumption attempt of a held connection: a roam from a new address if its own left the host,
    /// else a challenge. Returns false when there is no address to try from.
    mutating func attemptRackdResumption(_ context: inout ConnectionContext, into actions: inout ConnectionActions) -> Bool {
        if let address = context.addresses.roamingAddress(for: wireFlow) {
            sendRoam(from: address, &context, into: &actions)
            return true
        }
        guard !context.addresses.lost.contains(wireFlow.local.address) else { return false }
        sendChallenge(&context, into: &actions)
        return true
    }

    mutating func sendChallenge(_ context: inout ConnectionContext, into actions: inout ConnectionActions) {
        guard var hold else { return }
        let nonce = context.randomBytes(RacksMessage.nonceLength)
        rackd.resumption.challengeNonces = Array((rackd.resumption.challengeNonces + [nonce]).suffix(RackdPeer.recentNonces))
        hold.attempted(now: context.now)
        updateHold(hold)
        actions.transmit(controlSegment(.challenge(nonce: nonce)))
    }

    mutating func handleChallenge(_ nonce: [UInt8], _ context: inout ConnectionContext, into actions: inout ConnectionActions) {
        if case .exchanging(let exchange) = rackd.keys, exchange.key != nil {
            lastHeard = context.now  // the peer is there, but nothing is agreed yet to prove
        }
        guard let key else { return }  // still exchanging keys: nothing to prove yet
        lastHeard = context.now
        let responseNonce = context.randomBytes(RacksMessage.nonceLength)
        let response = RacksMessage.response(
            nonce: responseNonce, mac: KeySchedule.responseMAC(key, challengeNonce: nonce, responseNonce: responseNonce))
        switch state {
        case .establishing:
            return
        case .healthy, .suspect, .closing:
            // The peer was suspended and we never noticed: prove ourselves; nothing to lift here.
            actions.transmit(controlSegment(response))
            actions.events.append(.challengeAnswered(id: id, socketFlow, phase: .healthy))
        case .suspended(let hold), .resuming(let hold):
            if hold.holder == .operator { return }  // held until `rackctl resume`, path or no path
            if role == .client && !rackd.resumption.challengeNonces.isEmpty {
                return  // our own attempt wins
            }
            rackd.resumption.answeredChallenges = Array(
                (rackd.resumption.answeredChallenges + [RackdPeer.AnsweredChallenge(challenge: nonce, response: responseNonce)]).suffix(RackdPeer.recentNonces))
            actions.transmit(controlSegment(response))
            actions.events.append(.challengeAnswered(id: id, socketFlow, phase: .resuming))
            transition(to: .resuming(hold), reason: "answered the peer's challenge", into: &actions)
        }
    }

    mutating func handleResponse(nonce responseNonce: [UInt8], mac: [UInt8], now: EngineInstant,
                                 into actions: inout ConnectionActions) {
        guard let hold, hold.holder == .outage, let key else { return }
        guard let challengeNonce = rackd.resumption.challengeNonces.last(where: {
            KeySchedule.macsMatch(mac, KeySchedule.responseMAC(key, challengeNonce: $0, responseNonce: responseNonce))
        }) else {
            actions.events.append(.resumptionRejected(socketFlow, reason: "response does not match any challenge of ours"))
            return
        }
        actions.transmit(controlSegment(
            .confirm(mac: KeySchedule.confirmMAC(key, challengeNonce: challengeNonce, responseNonce: responseNonce))))
        resume(now: now, into: &actions)
    }

    mutating func handleConfirm(mac: [UInt8], now: EngineInstant, into actions: inout ConnectionActions) {
        guard let hold, hold.holder == .outage, let key else { return }
        guard rackd.resumption.answeredChallenges.contains(where: {
            KeySchedule.macsMatch(mac, KeySchedule.confirmMAC(key, challengeNonce: $0.challenge, responseNonce: $0.response))
        }) else {
            actions.events.append(.resumptionRejected(socketFlow, reason: "confirm does not match any response of ours"))
            return
        }
        resume(now: now, into: &actions)
    }
}
