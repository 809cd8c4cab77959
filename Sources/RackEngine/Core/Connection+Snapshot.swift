// rackd — what a snapshot of the local socket (sock_diag) tells a connection: that the socket is gone
// or closing, its positions for a hold, and, through the peer's protocol, whether the peer is alive; and
// when the socket is next worth reading.
//
// Sockets are read only when their connection is due (docs/architecture.md, "Liveness at scale"). A healthy
// connection to a rackd peer is due when the silence the last reading showed would reach the next
// threshold at which liveness acts (a probe at its pace, the failure timeout); ACKs that come meanwhile
// only push those back, so reading earlier would change nothing. After a probe, the next reading comes a
// pace and an eighth of an interval later: it sees the probe's ACK a pace old and probes again.
//
// The pace is the heartbeat interval for its path's sentinel, `memberCheckInterval` (5 intervals) for the
// path's other members (Core/PathIndex.swift, Peers/Rackd/Connection+RackdLiveness.swift). A member has no
// failure deadline of its own, the sentinel watches the path for it, unless its own probe went unanswered
// or its path failed. Every other connection past its setup is read every quarter interval, as all were
// before; a suspended one whose positions are known, once an interval (only its socket closing is left to
// see).

extension Connection {
    /// Takes in the socket's state; nil when the socket no longer exists.
    /// `path`: what the connection is to its wire path (ConnectionTable.pathStanding), if it is on one.
    mutating func handleSnapshot(_ snapshot: SocketSnapshot?, path: PathStanding?, _ context: inout ConnectionContext)
        -> ConnectionActions
    {
        var actions = ConnectionActions()
        guard let snapshot else {
            actions.end = .ended(reason: "socket closed")
            return actions
        }
        if snapshot.inode != 0 {
            // (0: no inode reported, as in the tests' simulated sockets.)
            if let known = socketInode, known != snapshot.inode {
                actions.end = .ended(reason: "socket closed; another socket (inode \(snapshot.inode)) has its tuple now")
                return actions
            }
            socketInode = snapshot.inode
        }
        switch snapshot.state {
        case .established, .finWait1, .finWait2, .closeWait:
            break
        case .lastAck where !peer.isRocks, .closing where !peer.isRocks:
            // The socket's last data and its FIN may still be unacknowledged: an outage now is held and
            // resumed like any other. Let go here, the peer, which holds its side, would wait for a
            // resumption this host no longer knows, and the last bytes would never arrive (found by the
            // soak: a server closing in a black hole). TIME_WAIT means all of it was acknowledged.
            break
        case .lastAck, .closing, .timeWait:
            guard isRewritten else {
                actions.end = .ended(reason: "socket is closing (\(snapshot.state))")
                return actions
            }
            // A moved connection still has packets to carry (the last data, the FINs, their ACKs): unmapped
            // they would reach the kernel on the wrong tuple and draw a reset. It is kept until the socket
            // is gone; no liveness check on a closing socket.
            socket = snapshot
            switch state {
            case .healthy(let healthy), .suspect(let healthy):
                transition(to: .closing(Closing(healthy, now: context.now)),
                           reason: "socket is closing (\(snapshot.state))", into: &actions)
            case .establishing, .suspended, .resuming, .closing:
                break
            }
            return actions
        default:
            actions.end = .ended(reason: "socket is closing (\(snapshot.state))")
            return actions
        }
        socket = snapshot
        switch state {
        case .healthy(let healthy), .suspect(let healthy):
            switch peer {
            case .rackd:
                checkRackdLiveness(healthy, snapshot: snapshot, path: path, now: context.now,
                                   configuration: context.configuration, into: &actions)
            case .rocks: break  // a rock's liveness is its heartbeats (Connection+RocksHeartbeats.swift)
            }
        case .suspended(var hold), .resuming(var hold):
            if hold.positions == nil {
                hold.positions = sequences(from: snapshot)
                // A roam waits for them (Connection+RackdRoaming.swift): the first attempt goes now, not a
                // snapshot interval later.
                if hold.holder == .outage, hold.lastAttemptAt == nil { hold.nextAttemptAt = min(hold.nextAttemptAt, context.now) }
                updateHold(hold)
            }
        case .establishing, .closing:
            break
        }
        return actions
    }
}

extension Connection {
    /// When the socket is due to be read: nil while the connection sets up (nothing to read), the start
    /// of time when a reading is wanted at once.
    var socketCheckDue: EngineInstant? {
        if case .establishing = state { return nil }
        return socketCheckAt ?? EngineInstant(nanoseconds: 0)
    }

    /// When, after the reading `snapshot` taken at `now`, the socket is next due: see the file's header.
    func nextSocketCheck(after snapshot: SocketSnapshot?, path: PathStanding?, now: EngineInstant,
                         configuration: Configuration) -> EngineInstant
    {
        let interval = configuration.heartbeatInterval
        let soon = now + interval / 4
        guard let snapshot else { return soon }
        switch state {
        case .healthy(let healthy):
            guard case .rackd(let rackd) = peer else { return soon }
            let silence = snapshot.lastAckReceived
            guard silence >= .zero else { return soon }
            let lastAck = EngineInstant(nanoseconds: now.nanoseconds &- UInt64(silence.nanosecondsValue))
            // A probe sent at this reading has not gone unanswered yet: a member's slow probe is followed by a
            // slow reading.
            let unanswered = rackd.unansweredProbes - (rackd.lastProbeAt == now ? 1 : 0)
            let pace = livenessPace(path, unansweredProbes: unanswered, configuration)
            var next: EngineInstant
            if silence < pace {
                next = lastAck + pace  // the first probe
            } else if snapshot.unackedSegments == 0 {
                // The next probe, an eighth of an interval later than its pace: the reading then sees the
                // last one's ACK (a round trip under that) already a pace old and probes again at once. One
                // reading and one probe per pace for an idle connection: suspect (a label, nothing is
                // queued for it) is read at the next probe rather than at its own threshold.
                next = (rackd.lastProbeAt ?? now) + pace + interval / 8
            } else {
                next = lastAck + pace + interval / 2  // suspect, with data outstanding
            }
            // A member at the slow pace has no failure deadline of its own while its path stands: the
            // sentinel watches the path for it.
            if pace == interval || path?.failedAt != nil {
                next = min(next, max(lastAck, healthy.since) + configuration.failureTimeout)
            }
            return max(next, soon)
        case .suspended(let hold), .resuming(let hold):
            return hold.positions == nil ? soon : now + interval
        case .establishing, .suspect, .closing:
            return soon
        }
    }
}
