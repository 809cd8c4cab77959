// rackd — resuming from a new address with a rackd peer (wire format in docs/protocol.md, design in
// docs/roaming.md).
//
// The host whose address changed (R) opens a handshake on the new tuple, toward the peer's last known
// address, so that NATs and firewalls on the new network see an ordinary TCP handshake:
//
//     R (new address)                                      P
//     SYN      seq = snd_una−1, roam(id, nR, isnR)     ──►   P's rackd consumes it
//                                                     ◄──   SYN-ACK  seq = snd_una−1, ack, roamResponse(isnP, nP, MAC)
//     ACK      confirm(MAC')                           ──►
//
// - `id` names the connection without its old tuple: HMAC(K, "rackd v1 connection id"), 8 bytes.
// - MAC and MAC' bind both nonces and both ISNs as their senders chose them (`RoamTranscript`).
// - Path validation: P grants nothing to the new tuple (no data, no lifted window) until the confirm
//   arrives from it, which proves that whoever sits at the new address holds the key and received P's
//   nonce there. R lifts when the response verifies.
// - Sequence spaces: each side chooses ISN = its socket's snd_una − 1, so the wire's sequence numbers
//   are the sockets'. If the ISN that arrives differs from the one the message carries, a middlebox
//   changed it, and the difference becomes the mapping's peer offset.
// - A roam for an unknown id is dropped, counted and reported at most every 10 s (Peers/Rackd/
//   RackdDetection.swift). Answers are bounded per connection (`recentNonces` offers, at most one per
//   `roamOfferSpacing` once full).

extension Connection {
    // MARK: The roaming side

    /// Sends (again) the SYN that opens a roam from `address`.
    mutating func sendRoam(from address: IPAddress, _ context: inout ConnectionContext,
                           into actions: inout ConnectionActions) {
        guard var hold else { return }
        let now = context.now
        guard let name = rackd.name else {
            // Never without agreed keys while held; if it were, try again later rather than at once.
            hold.nextAttemptAt = hold.attemptAfter(now)
            updateHold(hold)
            return
        }
        guard let positions = hold.positions else {
            // The socket's positions come with the first snapshot after queueing began: very soon.
            hold.nextAttemptAt = now + context.configuration.heartbeatInterval / 4
            updateHold(hold)
            return
        }
        let wire = FlowKey(local: TCPEndpoint(address: address, port: socketFlow.local.port), remote: wireFlow.remote)
        var attempt = rackd.resumption.roam.flatMap { $0.wire == wire ? $0 : nil }
            ?? RackdPeer.RoamAttempt(wire: wire, isn: positions.sendUnacknowledged - 1, nonces: [])
        let nonce = context.randomBytes(RacksMessage.nonceLength)
        attempt.nonces = Array((attempt.nonces + [nonce]).suffix(RackdPeer.recentNonces))
        rackd.resumption.roam = attempt
        hold.attempted(now: now)
        updateHold(hold)
        actions.transmit(.syn(
            from: wire.local, to: wire.remote, sequenceNumber: attempt.isn, window: 65535,
            options: [RacksMessage.roam(connectionID: name, nonce: nonce, isn: attempt.isn).option]))
    }

    /// The peer's SYN-ACK answering our roam. On a valid MAC the new path is in use from now on.
    mutating func handleRoamResponse(
        _ packet: IPPacketView, isn responseISN: TCPSequenceNumber, nonce: [UInt8], mac: [UInt8], wire: FlowKey,
        now: EngineInstant, into actions: inout ConnectionActions
    ) {
        guard hold != nil, let key, let attempt = rackd.resumption.roam, attempt.wire == wire else {
            actions.events.append(.resumptionRejected(wire, reason: "roam response for no roam of ours"))
            return
        }
        func transcript(_ roamNonce: [UInt8]) -> RoamTranscript {
            RoamTranscript(roamNonce: roamNonce, roamISN: attempt.isn, responseNonce: nonce, responseISN: responseISN)
        }
        guard let roamNonce = attempt.nonces.last(where: {
            KeySchedule.macsMatch(mac, KeySchedule.roamResponseMAC(key, roam: transcript($0)))
        }) else {
            actions.events.append(.resumptionRejected(wire, reason: "roam response does not match any roam of ours"))
            return
        }
        let arrivedISN = packet.tcp.sequenceNumber
        let confirm = TCPSegmentRepr(
            source: wire.local, destination: wire.remote, sequenceNumber: attempt.isn + 1,
            acknowledgmentNumber: arrivedISN + 1, flags: .ack, window: 1024,
            options: [RacksMessage.confirm(mac: KeySchedule.roamConfirmMAC(key, roam: transcript(roamNonce))).option])
        actions.transmit(confirm)
        rackd.confirmRepeat = .init(segment: confirm, nextAt: now + RackdPeer.confirmRepeatInterval,
                                    remaining: RackdPeer.confirmRepeats)
        rackd.resumption.roam = nil
        takeMapping(WireMapping(wire: wire, peerSequenceOffset: TCPSequenceOffset(from: responseISN, to: arrivedISN)),
                    into: &actions)
        resume(now: now, into: &actions)
    }

    /// Sends the confirm again until the peer is heard on the new path (a packet from it clears it).
    mutating func repeatConfirmIfDue(now: EngineInstant, into actions: inout ConnectionActions) {
        guard var pending = rackd.confirmRepeat, pending.nextAt <= now else { return }
        actions.transmit(pending.segment)
        pending.remaining -= 1
        pending.nextAt = now + RackdPeer.confirmRepeatInterval
        rackd.confirmRepeat = pending.remaining > 0 ? pending : nil
    }

    // MARK: The answering side

    /// A SYN carrying a roam that names this connection: answer it. Nothing changes for the connection
    /// until the confirm arrives; the SYN itself never reaches the kernel.
    mutating func handleRoamRequest(
        _ packet: IPPacketView, nonce: [UInt8], isn roamISN: TCPSequenceNumber, wire: FlowKey,
        _ context: inout ConnectionContext, into actions: inout ConnectionActions
    ) {
        actions.verdict = .drop
        guard let key else { return }
        let now = context.now
        if let hold, hold.holder == .operator {
            return  // held until `rackctl resume`; the peer asks again
        }
        guard wire.remote.address.isIPv4 == socketFlow.remote.address.isIPv4 else {
            actions.events.append(.resumptionRejected(wire, reason: "roam across address families is not supported"))
            return
        }
        if rackd.roamOffers.count >= RackdPeer.recentNonces,
            let newest = rackd.roamOffers.last, now.duration(since: newest.createdAt) < RackdPeer.roamOfferSpacing
        {
            return  // answering faster than the roaming side ever asks would only serve a reflector
        }
        guard let positions = knownSequences else { return }  // no snapshot yet: the roaming side asks again
        let responseISN = positions.sendUnacknowledged - 1
        let responseNonce = context.randomBytes(RacksMessage.roamResponseNonceLength)
        let transcript = RoamTranscript(roamNonce: nonce, roamISN: roamISN, responseNonce: responseNonce,
                                        responseISN: responseISN)
        let offer = RackdPeer.RoamOffer(
            wire: wire, transcript: transcript,
            peerSequenceOffset: TCPSequenceOffset(from: roamISN, to: packet.tcp.sequenceNumber), createdAt: now)
        rackd.roamOffers = Array((rackd.roamOffers + [offer]).suffix(RackdPeer.recentNonces))
        actions.transmit(.synAck(
            from: wire.local, to: wire.remote, sequenceNumber: responseISN,
            acknowledgmentNumber: packet.tcp.sequenceNumber + 1, window: 65535,
            options: [RacksMessage.roamResponse(
                isn: responseISN, nonce: responseNonce, mac: KeySchedule.roamResponseMAC(key, roam: transcript)).option]))
        actions.events.append(.challengeAnswered(id: id, wire, phase: phase))
    }

    /// A confirm that may end a roam we answered. Returns false when it matches none of our offers (it
    /// may then be the confirm of a plain resumption).
    mutating func handleRoamConfirm(mac: [UInt8], wire: FlowKey, now: EngineInstant,
                                    into actions: inout ConnectionActions) -> Bool {
        guard let key,
            let offer = rackd.roamOffers.last(where: {
                $0.wire == wire && KeySchedule.macsMatch(mac, KeySchedule.roamConfirmMAC(key, roam: $0.transcript))
            })
        else {
            if wire != wireFlow {
                actions.events.append(.resumptionRejected(wire, reason: "confirm does not match any roam we answered"))
            }
            return false
        }
        rackd.roamOffers.removeAll()
        takeMapping(WireMapping(wire: wire, peerSequenceOffset: offer.peerSequenceOffset), into: &actions)
        switch state {
        case .suspended, .resuming:
            resume(now: now, into: &actions)
        case .healthy(var healthy), .suspect(var healthy):
            // We had not noticed the outage; the peer proved itself, so start liveness afresh.
            healthy.since = now
            rackd.unansweredProbes = 0
            rackd.lastProbeAt = nil
            lastHeard = now
            resumptions += 1
            state = phase == .suspect ? .suspect(healthy) : .healthy(healthy)
        case .establishing, .closing:
            break
        }
        return true
    }

    /// The connection carries on over `newMapping` from now on.
    private mutating func takeMapping(_ newMapping: WireMapping, into actions: inout ConnectionActions) {
        mapping = newMapping.isIdentity(for: socketFlow) ? nil : newMapping
        actions.events.append(.roamed(id: id, socketFlow, phase: phase, wire: newMapping.wire,
                                      peerSequenceOffset: newMapping.peerSequenceOffset.rawValue))
    }
}
