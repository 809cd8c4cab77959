// rackd — holding a connection while its path is down (docs/architecture.md, "Kernel facts: holding the
// local socket"), and letting it go again.
//
// On failure every packet of the flow is queued. Whatever the local socket sends is dropped, and each
// retransmission, zero-window probe or keepalive is answered, as if from the peer, with an ACK of the
// peer's last acknowledged byte and a zero window. Linux keeps a socket alive for as long as those
// probes are answered, so the connection survives an outage of any length, with data unacknowledged
// in both directions, and the application sees nothing. Packets from the peer are dropped until the
// peer's protocol authenticates a resumption. The latest segment the socket sent at snd_una is kept, to
// be replayed on resumption.

extension Connection {
    /// A healthy (or suspect) connection fails: hold it. The positions come from a snapshot taken after
    /// queueing began, so one is asked for at once.
    /// `peerKnows`: the peer itself broke the connection (a rock's reset, its reconnection), so it
    /// need not be told.
    mutating func suspend(reason: String, now: EngineInstant, peerKnows: Bool = false,
                          into actions: inout ConnectionActions) {
        let healthy: Healthy
        switch state {
        case .healthy(let current), .suspect(let current): healthy = current
        case .establishing, .suspended, .resuming, .closing: return
        }
        switch peer {
        case .rackd: rackd.resumption = RackdPeer.Resumption()
        case .rocks(var rocks):
            // No heartbeats while suspended (docs/rocks.md §4); nothing of the old connection goes to the
            // rock while held.
            rocks.heartbeats.nextSendAt = nil
            rocks.retransmission = RocksPeer.Retransmission()
            peer = .rocks(rocks)
        }
        actions.wantsSnapshot = true
        actions.suspended = true
        transition(to: .suspended(Hold(failing: healthy, reason: reason, now: now)), reason: reason, into: &actions)
        if peer.isRocks { startRocksReconnection(resetOldConnection: !peerKnows, now: now, into: &actions) }
    }

    /// A queued segment of a held connection that is not a message of the peer's protocol. Outbound ones
    /// come from the local socket; inbound ones from the peer's old or new tuple alike, and none reaches
    /// the socket.
    mutating func handleHeldSegment(_ packet: IPPacketView, direction: PacketDirection) -> ConnectionActions {
        var actions = ConnectionActions(verdict: .drop)
        guard var hold else { return actions }
        guard direction == .outbound else {
            // The peer is not heard until it authenticates. A rock that still sends on the old connection has
            // not noticed the failure: its socket would have been reset, as a rock's is (docs/rocks.md §5.1),
            // so it gets the reset a closed socket's kernel sends, and suspends at once.
            let tcp = packet.tcp
            if peer.isRocks, hold.holder == .outage, !tcp.flags.contains(.rst), tcp.flags.contains(.ack) {
                let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: .inbound)
                actions.transmit(.reset(from: flow.local, to: flow.remote, sequenceNumber: tcp.acknowledgmentNumber))
            }
            return actions
        }
        let tcp = packet.tcp
        if tcp.flags.contains(.rst) {
            // The application aborted the connection: nothing left to hold.
            actions.verdict = .accept
            actions.end = .ended(reason: "local socket reset")
            return actions
        }
        let options = (try? TCPOptions.decode(tcp.options)) ?? []
        for case .timestamps(let value, let echo) in options { hold.timestamps = HeldTimestamps(value: value, echo: echo) }
        if var positions = hold.positions {
            if tcp.flags.contains(.ack) { positions.receiveNext = tcp.acknowledgmentNumber }
            hold.positions = positions
            let carriesData = tcp.payload.count > 0 || tcp.flags.contains(.fin)
            if carriesData && tcp.sequenceNumber == positions.sendUnacknowledged {
                hold.stash = stashSegment(packet)
            }
            if carriesData || tcp.sequenceNumber == positions.sendUnacknowledged - 1 {
                actions.transmit(.zeroWindowAck(
                    from: socketFlow.remote, to: socketFlow.local, sequenceNumber: positions.receiveNext,
                    acknowledgmentNumber: positions.sendUnacknowledged, options: Self.echoedTimestamps(hold)))
            }
        }
        updateHold(hold)
        return actions
    }

    /// Stores a changed hold in whichever held state the connection is in.
    mutating func updateHold(_ hold: Hold) {
        switch state {
        case .suspended: state = .suspended(hold)
        case .resuming: state = .resuming(hold)
        case .establishing, .healthy, .suspect, .closing: preconditionFailure("only a held connection has a hold")
        }
    }

    /// Timestamps for a segment "from the peer": the socket's own echo as our value (it equals the
    /// socket's ts_recent, so PAWS passes) and its value as our echo.
    static func echoedTimestamps(_ hold: Hold) -> [TCPOption] {
        guard let stamps = hold.timestamps else { return [] }
        return [.noOperation, .noOperation, .timestamps(value: stamps.echo, echo: stamps.value)]
    }

    /// The segment to replay on resumption: at most one peer-MSS of the data, so it needs no GSO.
    private func stashSegment(_ packet: IPPacketView) -> TCPSegmentRepr? {
        guard var segment = try? TCPSegmentRepr(parsing: packet) else { return nil }
        let optionBytes = TCPOptions.encodedLength(of: segment.options)
        let limit = max(1, Int(peerOptions.maximumSegmentSize) - optionBytes)
        if segment.payload.count > limit {
            segment.payload = Array(segment.payload.prefix(limit))
            segment.flags.remove(.fin)  // the FIN comes after the bytes we cut
        }
        return segment
    }

    /// Ends a connection now. A held one gets a reset "from the peer", which tells the local socket (and
    /// the application) at once rather than leaving it to time out. Before the suspension's snapshot has
    /// come, the last one's positions serve; if they are stale the kernel answers with a challenge ACK
    /// instead, and the socket, no longer held, times out on its own.
    func closeCleanly(reason: String) -> ConnectionActions {
        var actions = ConnectionActions()
        if let hold, let positions = hold.positions ?? socket.map(sequences(from:)) {
            actions.transmit(.reset(from: socketFlow.remote, to: socketFlow.local, sequenceNumber: positions.receiveNext))
        }
        actions.end = .ended(reason: reason)
        return actions
    }

    /// Lifts the suspension once the peer's protocol has authenticated the peer: replay, open the local
    /// window, stop queueing (unless the connection is mapped: then its packets keep being rewritten).
    mutating func resume(now: EngineInstant, into actions: inout ConnectionActions) {
        guard let hold else { return }
        lastHeard = now
        if let stash = hold.stash { actions.transmit(toPeer(stash)) }
        // A resumption can complete before the hold's own snapshot came (a short failure, answered within
        // milliseconds): the last snapshot's positions serve then. Without a window update a socket left in
        // zero-window persist by an earlier hold would wait out its backed-off probe timer, hear nothing
        // meanwhile, and be suspended again (a cycle the soak found once: integration-tests/soak/).
        if let positions = hold.positions ?? socket.map(sequences(from:)) {
            // A window the local socket will accept as an update (same seq as our zero-window ACKs, larger
            // window), about 64 KiB after the peer's scaling. The peer's own ACKs set the real one. Stale
            // positions cost nothing: the kernel ignores an old ACK.
            let window = UInt16(max(1, min(0xFFFF, 65_536 >> Int(peerOptions.windowScale))))
            actions.transmit(.ack(
                from: socketFlow.remote, to: socketFlow.local, sequenceNumber: positions.receiveNext,
                acknowledgmentNumber: positions.sendUnacknowledged, window: window,
                options: Self.echoedTimestamps(hold)))
            if hold.stash == nil, case .rackd = peer {
                // Nothing to replay (the socket sent nothing while held, as in a hold of a few ms): a probe
                // draws the peer's ACK now. The peer may hold bytes whose ACKs died in the hold; its ACK
                // then frees the socket from an RTO backed off through the outage (up to 120 s), which
                // the soak found stalling a connection that rackd kept resuming (integration-tests/soak/).
                actions.transmit(toPeer(.keepaliveProbe(
                    from: socketFlow.local, to: socketFlow.remote, sendNext: positions.sendUnacknowledged,
                    acknowledgmentNumber: positions.receiveNext, window: 1024)))
            }
        }
        resumptions += 1
        switch peer {
        case .rackd:
            rackd.resumption = RackdPeer.Resumption()
            rackd.lastProbeAt = nil
            rackd.unansweredProbes = 0
        case .rocks(var rocks):
            rocks.heartbeats.lastHeard = now
            rocks.heartbeats.nextSendAt = now
            peer = .rocks(rocks)
        }
        transition(to: .healthy(Healthy(resumedFrom: hold, now: now)), reason: "resumed", into: &actions)
        actions.events.append(.resumed(id: id, socketFlow, after: now.duration(since: hold.since)))
    }
}
