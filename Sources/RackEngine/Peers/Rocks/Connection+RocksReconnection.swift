// rackd — a suspended rocks connection reconnects (docs/rocks.md §5, §15): rackd's SYNs to the rock's
// reconnection address, the rock's links once attributed, 1of2 by the original role, the
// challenge-response, the recovery messages and the go-back-N, and at the end the link's tuple mapped
// onto the original socket, as a roamed rackd connection's is.
//
// The local socket stays held (zero window) through all of it. A link that fails is reset and forgotten;
// the suspension goes on and the next attempt starts afresh.

extension Connection {
    // MARK: Starting

    /// The connection was just suspended: rackd connects to the rock at once, and, when it noticed the
    /// failure first, resets the old connection as a rock would, so the rock suspends at once too.
    mutating func startRocksReconnection(resetOldConnection: Bool, now: EngineInstant,
                                         into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, rocks.stage == .established else { return }
        rocks.reconnection.nextConnectAt = now
        peer = .rocks(rocks)
        guard resetOldConnection else { return }
        // Exactly at the rock's rcv_nxt, or the rock answers with a challenge ACK instead (RFC 5961): its
        // last acknowledgement rackd saw (mapped onto the wire), the socket's snd_una (a screened
        // connection's rock acknowledgements pass rackd by), and the end of what the socket sent, in case
        // that arrived since.
        let wire = wireFlow
        var sequences: [TCPSequenceNumber] = []
        if let acknowledged = rocks.rockAcknowledgment {
            sequences.append(mapping.map { acknowledged.shifted(by: $0.localSequenceOffset) } ?? acknowledged)
        }
        func onWire(_ sequence: TCPSequenceNumber) -> TCPSequenceNumber {
            toPeer(.ack(from: socketFlow.local, to: socketFlow.remote, sequenceNumber: sequence,
                        acknowledgmentNumber: rocks.socket.acknowledgment, window: 0)).sequenceNumber
        }
        if let unacknowledged = knownSequences?.sendUnacknowledged {
            let sequence = onWire(unacknowledged)
            if !sequences.contains(sequence) { sequences.append(sequence) }
        }
        let sent = onWire(rocks.socket.sendNext)
        if !sequences.contains(sent) { sequences.append(sent) }
        for sequence in sequences {
            actions.transmit(.reset(from: wire.local, to: wire.remote, sequenceNumber: sequence))
        }
    }

    // MARK: Timers

    /// rackd's SYNs, the links' retransmissions and lifetimes.
    mutating func runRocksReconnection(_ context: inout ConnectionContext, into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, rocks.stage == .established else { return }
        let now = context.now
        rocks.reconnection.pollAt = nil
        var segments: [TCPSegmentRepr] = []
        var index = 0
        while index < rocks.reconnection.attempts.count {
            if now.duration(since: rocks.reconnection.attempts[index].link.startedAt) >= RocksLink.lifetime {
                let attempt = rocks.reconnection.attempts.remove(at: index)
                segments.append(attempt.link.reset)
                if rocks.reconnection.picked == attempt.link.flow { rocks.reconnection.picked = nil }
                actions.events.append(.rocksReconnection(id: id, socketFlow,
                    detail: "link \(attempt.link.flow) not through its exchange within \(RocksLink.lifetime): reset"))
                continue
            }
            rocks.reconnection.attempts[index].link.retransmit(now: now, into: &segments)
            index += 1
        }
        if let hold, hold.holder == .outage, let due = rocks.reconnection.nextConnectAt, due <= now {
            let source = context.addresses.roamingAddress(for: wireFlow) ?? wireFlow.local.address
            // Not from an address that left with no other to take its place: an address that comes
            // connects at once (`rocksAddressesAvailable`).
            if !rocks.reconnection.hasActiveLink, rocks.reconnection.picked == nil, !context.addresses.lost.contains(source),
                let destination = rocks.rockReconnectionAddress
            {
                let flow = FlowKey(local: TCPEndpoint(address: source, port: context.configuration.rocks.reconnectionPort),
                                   remote: destination)
                let isn = TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &context.random))
                let (link, syn) = RocksLink.connect(
                    flow: flow, isn: isn, socketOptions: localOptions,
                    receiveLimit: RocksReconnection.rockExchangeLength(ourRole: role), now: now)
                rocks.reconnection.attempts.append(RocksReconnection.Attempt(
                    link: link, authentication: nil, recoveryReader: recoveryReader(rocks)))
                segments.append(syn)
            }
            rocks.reconnection.nextConnectAt = now + RocksReconnection.connectInterval
        }
        peer = .rocks(rocks)
        for segment in segments { actions.transmit(segment) }
        // An exchange that waited for the socket's positions goes on once they are known.
        for flow in rocks.reconnection.attempts.map(\.link.flow) { advanceRocksExchange(on: flow, &context, into: &actions) }
    }

    /// An address came: connect at once, from it if the connection's own left (a SYN of rackd's still
    /// unanswered from elsewhere goes).
    mutating func rocksAddressesAvailable(now: EngineInstant, into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, rocks.stage == .established else { return }
        rocks.resetLinks(where: { $0.opening == .active && $0.phase == .synSent }, into: &actions)
        rocks.reconnection.nextConnectAt = now
        peer = .rocks(rocks)
    }

    private func recoveryReader(_ rocks: RocksPeer) -> RocksRecoveryReader {
        rocks.peerInit.map(RocksRecoveryReader.init(peerInit:))
            ?? RocksRecoveryReader(expectedSendBufferSize: RocksPeer.reportedBufferSize,
                                   expectedReceiveBufferSize: RocksPeer.reportedBufferSize)
    }

    // MARK: Links

    /// Whether `flow` is one of this connection's reconnection links.
    func hasRocksLink(_ flow: FlowKey) -> Bool {
        rocksPeer?.reconnection.index(of: flow) != nil
    }

    /// A segment from the rock on one of this connection's links.
    mutating func handleRocksLinkSegment(_ packet: IPPacketView, flow: FlowKey, _ context: inout ConnectionContext)
        -> ConnectionActions
    {
        var actions = ConnectionActions(verdict: .drop)
        guard case .rocks(var rocks) = peer, let index = rocks.reconnection.index(of: flow) else { return actions }
        var segments: [TCPSegmentRepr] = []
        let wasEstablished = rocks.reconnection.attempts[index].link.phase == .established
        let outcome = rocks.reconnection.attempts[index].link.handle(packet, now: context.now, into: &segments)
        let nowEstablished = rocks.reconnection.attempts[index].link.phase == .established
        if outcome == .refused { rocks.reconnection.nextConnectAt = context.now + RocksReconnection.refusedRetry }
        peer = .rocks(rocks)
        for segment in segments { actions.transmit(segment) }
        switch outcome {
        case .refused:
            dropRocksLink(flow, reason: "the rock's side: refused", into: &actions, reset: false)
            return actions
        case .closed(let why):
            dropRocksLink(flow, reason: "the rock's side: \(why)", into: &actions, reset: false)
            return actions
        case .bytes, .nothing:
            break
        }
        if !wasEstablished && nowEstablished { linkEstablished(flow, &context, into: &actions) }
        advanceRocksExchange(on: flow, &context, into: &actions)
        return actions
    }

    /// A link of rackd's own (or one adopted) is up: the server picks the first one (1of2); the client
    /// waits for the rock's byte.
    private mutating func linkEstablished(_ flow: FlowKey, _ context: inout ConnectionContext,
                                          into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, let index = rocks.reconnection.index(of: flow),
            let cipher = rocks.cipher else { return }
        let random = context.randomBytes(RocksAuthentication.randomByteCount)
        var authentication = RocksAuthentication(role: role, cipher: cipher, random: random)
        if role == .server {
            guard rocks.reconnection.picked == nil else {
                peer = .rocks(rocks)
                dropRocksLink(flow, reason: "1of2: another link was picked first", into: &actions, reset: true)
                return
            }
            rocks.reconnection.picked = flow
        }
        let writes = authentication.pollWrites()
        rocks.reconnection.attempts[index].authentication = authentication
        var segments: [TCPSegmentRepr] = []
        rocks.reconnection.attempts[index].link.write(writes, now: context.now, into: &segments)
        peer = .rocks(rocks)
        for segment in segments { actions.transmit(segment) }
    }

    /// A link the rock opened to the reconnection port, which its challenge showed to be this
    /// connection's. `pickWritten`: rackd already wrote the 1of2 byte on it (as a server would).
    mutating func adoptRocksLink(_ link: RocksLink, pickWritten: Bool, _ context: inout ConnectionContext)
        -> ConnectionActions
    {
        var actions = ConnectionActions(verdict: .drop)
        guard case .rocks(var rocks) = peer, let cipher = rocks.cipher else { return actions }
        var link = link
        link.receiveLimit = RocksReconnection.rockExchangeLength(ourRole: role)
        if hold?.holder == .operator {
            // Held by the operator: the link stays unanswered until its lifetime ends (the rock's reads time
            // out after 1 s and it tries again), neither refused (a storm) nor resumed.
            rocks.reconnection.attempts.append(RocksReconnection.Attempt(
                link: link, authentication: nil, recoveryReader: recoveryReader(rocks)))
            peer = .rocks(rocks)
            return actions
        }
        let random = context.randomBytes(RocksAuthentication.randomByteCount)
        var authentication = RocksAuthentication(role: role, cipher: cipher, random: random)
        var writes = authentication.pollWrites()
        if role == .server {
            if pickWritten { writes.removeFirst() }  // the byte is out already
            if let picked = rocks.reconnection.picked, let other = rocks.reconnection.index(of: picked) {
                // Both ends connected at once. The rock's challenge came here: the rock picked this link
                // (a rocks client reads its own link first), so rackd's goes, unless the rock already spoke
                // on it.
                if rocks.reconnection.attempts[other].link.received > 0 {
                    actions.transmit(link.reset)
                    return actions
                }
                let dropped = rocks.reconnection.attempts.remove(at: other)
                actions.transmit(dropped.link.reset)
            }
            rocks.reconnection.picked = link.flow
        }
        var segments: [TCPSegmentRepr] = []
        link.write(writes, now: context.now, into: &segments)
        rocks.reconnection.attempts.append(RocksReconnection.Attempt(
            link: link, authentication: authentication, recoveryReader: recoveryReader(rocks)))
        peer = .rocks(rocks)
        for segment in segments { actions.transmit(segment) }
        actions.events.append(.rocksReconnection(id: id, socketFlow, detail: "the rock connected from \(link.flow.remote)"))
        advanceRocksExchange(on: link.flow, &context, into: &actions)
        return actions
    }

    /// Resets (or just forgets) a link; the suspension stays as it was. A rock that had sent its new
    /// reconnection address listens there from now on, as a rock does after a broken recovery.
    private mutating func dropRocksLink(_ flow: FlowKey, reason: String, into actions: inout ConnectionActions, reset: Bool) {
        guard case .rocks(var rocks) = peer, let index = rocks.reconnection.index(of: flow) else { return }
        let attempt = rocks.reconnection.attempts.remove(at: index)
        if let address = attempt.recoveryReader.reconnection { rocks.rockReconnectionAddress = address.endpoint }
        if rocks.reconnection.picked == flow { rocks.reconnection.picked = nil }
        peer = .rocks(rocks)
        if reset { actions.transmit(attempt.link.reset) }
        actions.events.append(.rocksReconnection(id: id, socketFlow, detail: "link \(flow) dropped: \(reason)"))
    }

    // MARK: The exchange

    /// Feeds the rock's new bytes on a link to its exchange and writes what follows.
    private mutating func advanceRocksExchange(on flow: FlowKey, _ context: inout ConnectionContext,
                                              into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, let index = rocks.reconnection.index(of: flow) else { return }
        var attempt = rocks.reconnection.attempts[index]
        guard var authentication = attempt.authentication else { return }
        let now = context.now
        var segments: [TCPSegmentRepr] = []
        var bytes = attempt.link.takeUnread()[...]
        defer {
            peer = .rocks(rocks)
            for segment in segments { actions.transmit(segment) }
        }
        if !authentication.isAuthenticated {
            let used: Int
            do {
                used = try authentication.take(bytes)
            } catch {
                peer = .rocks(rocks)
                dropRocksLink(flow, reason: "authentication failed: \(error)", into: &actions, reset: true)
                rocks = rocksPeer ?? rocks
                return
            }
            if role == .client, rocks.reconnection.picked != flow, used > 0 {
                // The rock's 1of2 byte (the first byte it writes): this link is the one; any other goes.
                guard rocks.reconnection.picked == nil else {
                    peer = .rocks(rocks)
                    dropRocksLink(flow, reason: "1of2: the rock's byte came on another link first", into: &actions, reset: true)
                    rocks = rocksPeer ?? rocks
                    return
                }
                for other in rocks.reconnection.attempts where other.link.flow != flow { segments.append(other.link.reset) }
                rocks.reconnection.attempts.removeAll { $0.link.flow != flow }
                rocks.reconnection.picked = flow
            }
            bytes = bytes.dropFirst(used)
            attempt.link.write(authentication.pollWrites(), now: now, into: &segments)
            attempt.authentication = authentication
            guard authentication.isAuthenticated else {
                store(attempt, in: &rocks)
                return
            }
        }
        // Authenticated: the rock holds the key. Anything it sent after its response is recovery.
        if !attempt.recoveryWritten {
            if hold == nil {
                // The rock suspended first (its reset never came): this is the signal (docs/rocks.md §9 item 4).
                peer = .rocks(rocks)
                suspend(reason: "the rock reconnected", now: now, peerKnows: true, into: &actions)
                rocks = rocksPeer ?? rocks
            }
            guard let positions = hold?.positions, let receiveOrigin = rocks.receiveOrigin,
                case .v4(let local) = attempt.link.flow.local.address else {
                // Waiting for the socket's positions (a snapshot is on its way): keep the bytes.
                attempt.link.unread = Array(bytes) + attempt.link.unread
                actions.wantsSnapshot = true
                rocks.reconnection.pollAt = now + RocksReconnection.positionsPoll
                store(attempt, in: &rocks)
                return
            }
            let settings = context.configuration.rocks
            let ours = RocksRecovery(
                heartbeat: RocksSocketAddress(address: local, port: settings.heartbeatPort),
                reconnection: RocksSocketAddress(address: local, port: settings.reconnectionPort),
                received: UInt32(bitPattern: positions.receiveNext - receiveOrigin),
                sendBufferSize: RocksPeer.reportedBufferSize, receiveBufferSize: RocksPeer.reportedBufferSize)
            attempt.link.write(ours.segments, now: now, into: &segments)
            attempt.recoveryWritten = true
        }
        do {
            _ = try attempt.recoveryReader.take(bytes)
        } catch {
            store(attempt, in: &rocks)
            peer = .rocks(rocks)
            dropRocksLink(flow, reason: "malformed recovery messages: \(error)", into: &actions, reset: true)
            rocks = rocksPeer ?? rocks
            return
        }
        guard let theirs = attempt.recoveryReader.result else {
            store(attempt, in: &rocks)
            return
        }
        attempt.peerRecovery = theirs
        guard IPAddress.v4(theirs.heartbeat.address) == flow.remote.address else {
            store(attempt, in: &rocks)
            peer = .rocks(rocks)
            dropRocksLink(flow, reason: "the rock's heartbeat address \(theirs.heartbeat) is not its own", into: &actions,
                          reset: true)
            rocks = rocksPeer ?? rocks
            return
        }
        // What the rock's kernel acknowledged and its application never read: from the ring. The rock may
        // also have read bytes whose acknowledgements the hold kept from the socket: those the socket need
        // not send again.
        guard var hold, var positions = hold.positions, let origin = rocks.sendOrigin else { return }
        let from = origin + theirs.received
        let sentEnd = rocks.ring?.end ?? positions.sendUnacknowledged
        let resend: [UInt8]
        var skipped = 0
        if from - positions.sendUnacknowledged >= 0 && sentEnd - from >= 0 {
            resend = []
            skipped = Int(from - positions.sendUnacknowledged)
            positions.sendUnacknowledged = from
            if let stash = hold.stash, stash.sequenceNumber - from < 0 { hold.stash = nil }
            hold.positions = positions
            updateHold(hold)
        } else if let kept = rocks.ring?.bytes(from: from, to: positions.sendUnacknowledged) {
            resend = kept
        } else {
            // Bytes the rock never read and rackd no longer has (or never sent): the stream cannot go on whole.
            store(attempt, in: &rocks)
            peer = .rocks(rocks)
            let ring = rocks.ring.map { "\($0.count) bytes up to \($0.end)" } ?? "empty"
            actions.end = .ended(reason: "the rock asks for bytes from its position \(theirs.received) (sequence \(from)), "
                + "which the local socket no longer has (its snd_una is \(positions.sendUnacknowledged)) and rackd's ring "
                + "(\(ring), at most \(RocksSendRing.capacity)) does not hold")
            actions.transmit(attempt.link.reset)
            actions.transmit(.reset(from: socketFlow.remote, to: socketFlow.local, sequenceNumber: positions.receiveNext))
            return
        }
        attempt.link.write([resend], now: now, into: &segments)
        store(attempt, in: &rocks)
        peer = .rocks(rocks)
        for segment in segments { actions.transmit(segment) }
        segments = []
        completeRocksReconnection(attempt, resent: resend.count, skipped: skipped, now: now, into: &actions)
        rocks = rocksPeer ?? rocks
    }

    private func store(_ attempt: RocksReconnection.Attempt, in rocks: inout RocksPeer) {
        if let index = rocks.reconnection.index(of: attempt.link.flow) { rocks.reconnection.attempts[index] = attempt }
    }

    // MARK: The end

    /// The exchange is through: the link's tuple carries the connection from now on, mapped onto the
    /// socket. rackd's exchange bytes (and the go-back-N) are inserted at the socket's snd_una, the rock's
    /// taken out before its resent bytes, which land at the socket's rcv_nxt.
    private mutating func completeRocksReconnection(_ attempt: RocksReconnection.Attempt, resent: Int, skipped: Int,
                                                    now: EngineInstant,
                                                    into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer, let hold, let positions = hold.positions,
            let theirs = attempt.peerRecovery, let rockISN = attempt.link.rockISN else { return }
        let link = attempt.link
        let inserted = UInt32(link.outgoing.count)
        let removed = UInt32(link.received)
        rocks.splice = RocksSplice(insertionPoint: positions.sendUnacknowledged, insertedLength: inserted,
                                   removalPoint: positions.receiveNext, removedLength: removed)
        mapping = WireMapping(
            wire: link.flow,
            localSequenceOffset: TCPSequenceOffset(from: positions.sendUnacknowledged, to: link.ourISN + 1),
            peerSequenceOffset: TCPSequenceOffset(from: positions.receiveNext, to: rockISN + 1))
        rocks.ours = link.outgoing
        rocks.oursWriteEnds = link.writeEnds
        rocks.oursReleased = link.outgoing.count
        rocks.oursAcknowledged = link.acknowledged
        rocks.oursSent = link.sent
        rocks.oursEndWithFIN = false
        rocks.oursWindowLimit = link.acknowledged + Int(link.rockWindow)
        rocks.rockWindowScale = link.rockWindowScale
        rocks.retransmission = RocksPeer.Retransmission()
        if link.acknowledged < link.outgoing.count {
            rocks.retransmission.deadline = now + rocks.retransmission.interval
        }
        rocks.socket.sendNext = positions.sendUnacknowledged
        rocks.socket.acknowledgment = positions.receiveNext
        rocks.socket.wireAcknowledgment = positions.receiveNext + removed
        rocks.socket.finSequence = nil
        rocks.rockAcknowledgment = nil
        rocks.heartbeats.destination = theirs.heartbeat.endpoint
        rocks.rockReconnectionAddress = theirs.reconnection.endpoint
        rocks.reconnection = RocksReconnection()
        peer = .rocks(rocks)
        if hold.stash == nil, let ring = rocks.ring {
            // The socket sent nothing while held (a black hole lasts 15 s before rackd holds it, so its
            // retransmission timer may be backed off to many seconds). Its first unacknowledged segment,
            // rebuilt from the ring and replayed like a stash, draws the acknowledgement that gets it going.
            let room = max(1, min(Int(peerOptions.maximumSegmentSize), Int(link.rockMaximumSegmentSize)) - RocksLink.optionAllowance)
            let upTo = positions.sendUnacknowledged + UInt32(min(room, max(0, Int(ring.end - positions.sendUnacknowledged))))
            if let bytes = ring.bytes(from: positions.sendUnacknowledged, to: upTo), !bytes.isEmpty {
                var updated = hold
                updated.stash = TCPSegmentRepr(
                    source: socketFlow.local, destination: socketFlow.remote, sequenceNumber: positions.sendUnacknowledged,
                    acknowledgmentNumber: positions.receiveNext, flags: [.ack, .psh], window: rocks.socket.window,
                    payload: bytes)
                updateHold(updated)
            }
        }
        actions.events.append(.rocksReconnection(id: id, socketFlow, detail: "reconnected on \(link.flow) (\(link.opening)): "
            + "rackd resent \(resent) bytes from its ring"
            + (skipped > 0 ? "; the rock had read \(skipped) bytes whose acknowledgement the hold kept from the socket" : "")))
        resume(now: now, into: &actions)
    }
}

extension RocksPeer {
    /// Resets the links `matching` says (all by default) and forgets them.
    mutating func resetLinks(where matching: (RocksLink) -> Bool = { _ in true }, into actions: inout ConnectionActions) {
        for attempt in reconnection.attempts where matching(attempt.link) { actions.transmit(attempt.link.reset) }
        reconnection.attempts.removeAll { matching($0.link) }
        if let picked = reconnection.picked, reconnection.index(of: picked) == nil { reconnection.picked = nil }
    }
}
