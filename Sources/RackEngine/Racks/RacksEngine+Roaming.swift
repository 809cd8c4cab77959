// rackd — resuming from a new address (issue 4; wire format in docs/protocol.md, design in
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
//   changed it, and the difference becomes the path's offset.
// - A roam for an unknown id is dropped, counted and reported at most every 10 s. Answers are bounded
//   per connection (`recentNonces` offers, at most one per `roamOfferSpacing` once full).

extension RacksEngine {
    static let roamOfferLifetime: Duration = .seconds(5)
    static let roamOfferSpacing: Duration = .milliseconds(100)
    static let confirmRepeatInterval: Duration = .milliseconds(200)

    // MARK: The roaming side

    /// The address a suspended connection should resume from, when its own wire address has left the
    /// host: the newest usable local address of the peer's family. Nil while the address is still here.
    func roamingAddress(for connection: RacksConnection) -> IPAddress? {
        guard lostAddresses.contains(connection.wireFlow.local.address) else { return nil }
        let remote = connection.wireFlow.remote.address
        return availableAddresses.last { $0.isIPv4 == remote.isIPv4 && !lostAddresses.contains($0) }
    }

    /// Sends (again) the SYN that opens a roam from `address`.
    mutating func sendRoam(connection: inout RacksConnection, from address: IPAddress, now: EngineInstant,
                           into output: inout EngineOutput) {
        guard case .suspended(var suspended) = connection.state, let id = connection.connectionID else { return }
        guard let positions = suspended.sequences else {
            // The socket's positions come with the first snapshot after queueing began: very soon.
            suspended.nextChallengeAt = now + snapshotInterval
            connection.state = .suspended(suspended)
            return
        }
        let wire = FlowKey(local: TCPEndpoint(address: address, port: connection.flow.local.port),
                           remote: connection.wireFlow.remote)
        var attempt = suspended.roam.flatMap { $0.wire == wire ? $0 : nil }
            ?? RacksConnection.RoamAttempt(wire: wire, isn: positions.sendUnacknowledged - 1, nonces: [])
        let nonce = randomBytes(RacksMessage.nonceLength)
        attempt.nonces = Array((attempt.nonces + [nonce]).suffix(Self.recentNonces))
        suspended.roam = attempt
        suspended.nextChallengeAt = now + Self.challengeInterval
        connection.state = .suspended(suspended)
        output.transmit(.syn(
            from: wire.local, to: wire.remote, sequenceNumber: attempt.isn, window: 65535,
            options: [RacksMessage.roam(connectionID: id, nonce: nonce, isn: attempt.isn).option]))
    }

    /// The peer's SYN-ACK answering our roam. On a valid MAC the new path is in use from now on.
    mutating func handleRoamResponse(
        _ packet: IPPacketView, isn responseISN: TCPSequenceNumber, nonce: [UInt8], mac: [UInt8], wire: FlowKey,
        now: EngineInstant, into output: inout EngineOutput
    ) {
        output.verdict = .drop
        guard let socketFlow = connectionFlow(for: wire), var connection = connections[socketFlow],
            case .suspended(var suspended) = connection.state, let attempt = suspended.roam, attempt.wire == wire
        else {
            output.events.append(.resumptionRejected(wire, reason: "roam response for no roam of ours"))
            return
        }
        func transcript(_ roamNonce: [UInt8]) -> RoamTranscript {
            RoamTranscript(roamNonce: roamNonce, roamISN: attempt.isn, responseNonce: nonce, responseISN: responseISN)
        }
        guard let roamNonce = attempt.nonces.last(where: {
            KeySchedule.macsMatch(mac, KeySchedule.roamResponseMAC(suspended.key, roam: transcript($0)))
        }) else {
            output.events.append(.resumptionRejected(wire, reason: "roam response does not match any roam of ours"))
            return
        }
        let arrivedISN = packet.tcp.sequenceNumber
        let confirm = TCPSegmentRepr(
            source: wire.local, destination: wire.remote, sequenceNumber: attempt.isn + 1,
            acknowledgmentNumber: arrivedISN + 1, flags: .ack, window: 1024,
            options: [RacksMessage.confirm(mac: KeySchedule.roamConfirmMAC(suspended.key, roam: transcript(roamNonce))).option])
        output.transmit(confirm)
        connection.confirmRepeat = .init(segment: confirm, nextAt: now + Self.confirmRepeatInterval,
                                         remaining: Self.confirmRepeats)
        suspended.roam = nil
        connection.state = .suspended(suspended)
        takePath(RoamedPath(wire: wire, peerSequenceOffset: TCPSequenceOffset(from: responseISN, to: arrivedISN)),
                 connection: &connection, into: &output)
        resume(&connection, now: now, into: &output)
        connections[socketFlow] = connection
    }

    /// Sends the confirm again until the peer is heard on the new path (`handleSegment` clears it).
    mutating func repeatConfirmIfDue(connection: inout RacksConnection, now: EngineInstant,
                                     into output: inout EngineOutput) {
        guard var pending = connection.confirmRepeat, pending.nextAt <= now else { return }
        output.transmit(pending.segment)
        pending.remaining -= 1
        pending.nextAt = now + Self.confirmRepeatInterval
        connection.confirmRepeat = pending.remaining > 0 ? pending : nil
    }

    // MARK: The answering side

    /// A SYN carrying a roam: answer it if it names a connection we hold. Nothing changes for the
    /// connection until the confirm arrives; the SYN itself never reaches the kernel.
    mutating func handleRoamRequest(
        _ packet: IPPacketView, connectionID: [UInt8], nonce: [UInt8], isn roamISN: TCPSequenceNumber, wire: FlowKey,
        now: EngineInstant, into output: inout EngineOutput
    ) {
        output.verdict = .drop
        // Ids are 64-bit MACs, unique per connection, so any search order finds the same one.
        guard var connection = connections.values.first(where: { $0.connectionID == connectionID }),
            let key = connection.key
        else {
            countDroppedRoam(now: now, into: &output)
            return
        }
        if case .suspended(let suspended) = connection.state, suspended.heldByOperator {
            return  // held until `rackctl resume`; the peer asks again
        }
        let socketFlow = connection.flow
        guard wire.remote.address.isIPv4 == socketFlow.remote.address.isIPv4 else {
            output.events.append(.resumptionRejected(wire, reason: "roam across address families is not supported"))
            return
        }
        if connection.roamOffers.count >= Self.recentNonces,
            let newest = connection.roamOffers.last, now.duration(since: newest.createdAt) < Self.roamOfferSpacing
        {
            return  // answering faster than the roaming side ever asks would only serve a reflector
        }
        let positions: SequenceState?
        if case .suspended(let suspended) = connection.state, let known = suspended.sequences {
            positions = known
        } else {
            positions = connection.socket.map(connection.sequences(from:))
        }
        guard let positions else { return }  // no snapshot yet: the roaming side asks again
        let responseISN = positions.sendUnacknowledged - 1
        let responseNonce = randomBytes(RacksMessage.roamResponseNonceLength)
        let transcript = RoamTranscript(roamNonce: nonce, roamISN: roamISN, responseNonce: responseNonce,
                                        responseISN: responseISN)
        let offer = RacksConnection.RoamOffer(
            wire: wire, transcript: transcript,
            peerSequenceOffset: TCPSequenceOffset(from: roamISN, to: packet.tcp.sequenceNumber), createdAt: now)
        connection.roamOffers = Array((connection.roamOffers + [offer]).suffix(Self.recentNonces))
        output.transmit(.synAck(
            from: wire.local, to: wire.remote, sequenceNumber: responseISN,
            acknowledgmentNumber: packet.tcp.sequenceNumber + 1, window: 65535,
            options: [RacksMessage.roamResponse(
                isn: responseISN, nonce: responseNonce, mac: KeySchedule.roamResponseMAC(key, roam: transcript)).option]))
        output.events.append(.challengeAnswered(id: connection.id, wire, phase: connection.phase))
        connections[socketFlow] = connection
    }

    /// A confirm that may end a roam we answered. Returns false when it matches none of our offers (it
    /// may then be the confirm of a plain resumption).
    mutating func handleRoamConfirm(mac: [UInt8], wire: FlowKey, connection: inout RacksConnection,
                                    now: EngineInstant, into output: inout EngineOutput) -> Bool {
        guard let key = connection.key,
            let offer = connection.roamOffers.last(where: {
                $0.wire == wire && KeySchedule.macsMatch(mac, KeySchedule.roamConfirmMAC(key, roam: $0.transcript))
            })
        else {
            if wire != connection.wireFlow {
                output.events.append(.resumptionRejected(wire, reason: "confirm does not match any roam we answered"))
            }
            return false
        }
        connection.roamOffers.removeAll()
        takePath(RoamedPath(wire: wire, peerSequenceOffset: offer.peerSequenceOffset), connection: &connection,
                 into: &output)
        switch connection.state {
        case .suspended:
            resume(&connection, now: now, into: &output)
        case .healthy(var healthy):
            // We had not noticed the outage; the peer proved itself, so start liveness afresh.
            healthy.since = now
            healthy.unansweredProbes = 0
            healthy.lastProbeAt = nil
            connection.lastHeard = now
            connection.resumptions += 1
            connection.state = .healthy(healthy)
        case .keyExchange:
            break
        }
        return true
    }

    mutating func expireRoamOffers(connection: inout RacksConnection, now: EngineInstant) {
        connection.roamOffers.removeAll { now.duration(since: $0.createdAt) >= Self.roamOfferLifetime }
    }

    // MARK: Both sides

    /// The connection carries on over `path` from now on.
    private func takePath(_ path: RoamedPath, connection: inout RacksConnection, into output: inout EngineOutput) {
        connection.path = path.isIdentity(for: connection.flow) ? nil : path
        output.events.append(.roamed(id: connection.id, connection.flow, phase: connection.phase, wire: path.wire,
                                     peerSequenceOffset: path.peerSequenceOffset.rawValue))
    }

    /// Counts a roam handshake that names no connection, or is malformed, reporting now and then.
    mutating func countDroppedRoam(now: EngineInstant, into output: inout EngineOutput) {
        unknownRoams += 1
        reportUnknownRoams(now: now, into: &output)
    }

    mutating func reportUnknownRoams(now: EngineInstant, into output: inout EngineOutput) {
        guard unknownRoams > 0,
            lastRejectionReport.map({ now.duration(since: $0) >= Self.rejectionReportInterval }) ?? true
        else { return }
        output.events.append(.unknownRoamsDropped(count: unknownRoams))
        unknownRoams = 0
        lastRejectionReport = now
    }
}
