// rackd — holding a connection while its path is down (DESIGN §4, "Holding the local socket open").
//
// On failure every packet of the flow is queued. Whatever the local socket sends is dropped, and each
// retransmission, zero-window probe or keepalive is answered, as if from the peer, with an ACK of the
// peer's last acknowledged byte and a zero window. Linux keeps a socket alive for as long as those
// probes are answered, so the connection survives an outage of any length, with data unacknowledged
// in both directions, and the application sees nothing. Packets from the peer are dropped until a
// resumption is authenticated. The latest segment the socket sent at snd_una is kept, to be replayed
// on resumption.

extension RacksEngine {
    mutating func suspend(_ connection: inout RacksConnection, reason: String, now: EngineInstant,
                          into output: inout EngineOutput) {
        guard case .healthy(let healthy) = connection.state else { return }
        // The positions must come from a snapshot taken after queueing began: from then on no packet
        // of the peer reaches the socket, so they cannot move.
        connection.needsFreshSnapshot = true
        scheduleSnapshot(now: now)
        transition(&connection, to: .suspended(.init(key: healthy.key, since: now, reason: reason, nextChallengeAt: now)),
                   reason: reason, into: &output)
        connections[connection.flow] = connection
        enforceSuspensionLimits(newest: connection.flow, into: &output)
    }

    /// Keeps the suspended connections within `[limits]`: past a limit the oldest suspended connection
    /// (never the one just suspended) is closed, its socket reset so the application learns at once.
    private mutating func enforceSuspensionLimits(newest: FlowKey, into output: inout EngineOutput) {
        func suspendedSince(_ connection: RacksConnection) -> EngineInstant? {
            if case .suspended(let suspended) = connection.state { return suspended.since }
            return nil
        }
        // Oldest suspension first; among equals, the older connection.
        func older(_ a: RacksConnection, _ b: RacksConnection) -> Bool {
            (suspendedSince(a)!, a.id) < (suspendedSince(b)!, b.id)
        }
        let suspended = connections.values.filter { suspendedSince($0) != nil }
        let peer = newest.remote.address
        let samePeer = suspended.filter { $0.flow.remote.address == peer }
        var victims: [RacksConnection] = []
        if samePeer.count > configuration.maximumSuspendedPerPeer {
            victims += samePeer.filter { $0.flow != newest }.sorted(by: older)
                .prefix(samePeer.count - configuration.maximumSuspendedPerPeer)
        }
        let remaining = suspended.count - victims.count
        if remaining > configuration.maximumSuspendedTotal {
            let chosen = Set(victims.map(\.flow))
            victims += suspended.filter { $0.flow != newest && !chosen.contains($0.flow) }
                .sorted(by: older)
                .prefix(remaining - configuration.maximumSuspendedTotal)
        }
        for victim in victims {
            let limit = samePeer.contains { $0.flow == victim.flow } && samePeer.count > configuration.maximumSuspendedPerPeer
                ? "\(configuration.maximumSuspendedPerPeer) suspended connections to \(peer)"
                : "\(configuration.maximumSuspendedTotal) suspended connections in all"
            closeCleanly(victim, reason: "limit of \(limit) reached; closed the oldest", into: &output)
        }
    }

    /// Ends a held connection now: a reset "from the peer" tells the local socket (and the application)
    /// at once, rather than leaving it to time out. Before the fresh snapshot of the suspension has come,
    /// the last one's positions serve; if they are stale the kernel answers with a challenge ACK instead,
    /// and the socket, no longer held, times out on its own.
    mutating func closeCleanly(_ connection: RacksConnection, reason: String, into output: inout EngineOutput) {
        if case .suspended(let suspended) = connection.state,
            let positions = suspended.sequences ?? connection.socket.map(connection.sequences(from:))
        {
            output.transmit(.reset(from: connection.flow.remote, to: connection.flow.local,
                                   sequenceNumber: positions.receiveNext))
        }
        forget(connection, reason: reason, into: &output)
    }

    /// A queued segment of a suspended connection, not a rackd message. Outbound ones come from the local
    /// socket; inbound ones from the peer's old or new tuple alike, and none reaches the socket.
    mutating func handleSuspendedSegment(
        _ packet: IPPacketView, connection: inout RacksConnection, direction: PacketDirection, now: EngineInstant,
        into output: inout EngineOutput
    ) {
        guard case .suspended(var suspended) = connection.state else { return }
        output.verdict = .drop
        guard direction == .outbound else { return }  // the peer is not heard until it authenticates
        let tcp = packet.tcp
        if tcp.flags.contains(.rst) {
            // The application aborted the connection: nothing left to hold.
            output.verdict = .accept
            forget(connection, reason: "local socket reset", into: &output)
            return
        }
        let options = (try? TCPOptions.decode(tcp.options)) ?? []
        for case .timestamps(let value, let echo) in options { suspended.timestamps = (value, echo) }
        if var positions = suspended.sequences {
            if tcp.flags.contains(.ack) { positions.receiveNext = tcp.acknowledgmentNumber }
            suspended.sequences = positions
            let carriesData = tcp.payload.count > 0 || tcp.flags.contains(.fin)
            if carriesData && tcp.sequenceNumber == positions.sendUnacknowledged {
                suspended.stash = stashSegment(packet, connection: connection)
            }
            if carriesData || tcp.sequenceNumber == positions.sendUnacknowledged - 1 {
                output.transmit(zeroWindowAnswer(connection: connection, suspended: suspended, positions: positions))
            }
        }
        connection.state = .suspended(suspended)
    }

    /// An ACK "from the peer" to the local socket: nothing new acknowledged, window zero.
    private func zeroWindowAnswer(connection: RacksConnection, suspended: RacksConnection.Suspended,
                                  positions: SequenceState) -> TCPSegmentRepr {
        .zeroWindowAck(
            from: connection.flow.remote, to: connection.flow.local, sequenceNumber: positions.receiveNext,
            acknowledgmentNumber: positions.sendUnacknowledged, options: echoedTimestamps(suspended))
    }

    /// Timestamps for a segment "from the peer": the socket's own echo as our value (it equals the
    /// socket's ts_recent, so PAWS passes) and its value as our echo.
    func echoedTimestamps(_ suspended: RacksConnection.Suspended) -> [TCPOption] {
        guard let stamps = suspended.timestamps else { return [] }
        return [.noOperation, .noOperation, .timestamps(value: stamps.echo, echo: stamps.value)]
    }

    /// The segment to replay on resumption: at most one peer-MSS of the data, so it needs no GSO.
    private func stashSegment(_ packet: IPPacketView, connection: RacksConnection) -> TCPSegmentRepr? {
        guard var segment = try? TCPSegmentRepr(parsing: packet) else { return nil }
        let optionBytes = TCPOptions.encodedLength(of: segment.options)
        let limit = max(1, Int(connection.peerOptions.maximumSegmentSize) - optionBytes)
        if segment.payload.count > limit {
            segment.payload = Array(segment.payload.prefix(limit))
            segment.flags.remove(.fin)  // the FIN comes after the bytes we cut
        }
        return segment
    }

    /// Gives a connection up after the maximum suspension. Its socket faces the network again and
    /// closes as TCP would close it: it times out unless the peer answers.
    mutating func abandon(_ connection: inout RacksConnection, reason: String, into output: inout EngineOutput) {
        forget(connection, reason: reason, into: &output)
    }
}
