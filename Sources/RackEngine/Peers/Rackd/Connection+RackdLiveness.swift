// rackd — liveness of a healthy connection to a rackd peer, without queueing a single packet of it
// (docs/architecture.md, "Data path", "Liveness at scale" and "Kernel facts: liveness").
//
// The daemon hands the engine a snapshot of a managed socket when its connection is due
// (Core/Connection+Snapshot.swift; sock_diag). `lastAckReceived` says when the peer last answered. A
// connection that has been quiet for its pace, and has no data outstanding, gets a keepalive-shaped probe:
// one byte below what the peer expects, which the peer's kernel answers with an ACK that refreshes
// `lastAckReceived`. Probes are never sent while data is outstanding, so duplicate ACKs never pile up on a
// sending socket; the kernel's own retransmissions draw the ACKs then.
//
// Liveness is watched per wire path (Core/PathIndex.swift). The path's sentinel has the pace of the
// heartbeat interval; every other member the pace of `memberCheckInterval`, which only keeps its own flow
// alive in middleboxes and notices it lost on its own, until one of its probes goes unanswered: then it too
// has the heartbeat interval's pace, until it is answered or fails.
//
// A connection has failed when nothing was heard for `failureTimeout` (2.5 s by default) and either
// `misses` probes went unanswered or data is outstanding. On a path whose sentinel failed, silence for
// `failureTimeout` is enough: the path's failure stands for the probes. A local address lost, or its link
// down, fails the connection at once (Core/Connection+Links.swift).

extension Connection {
    mutating func checkRackdLiveness(_ healthy: Healthy, snapshot: SocketSnapshot, path: PathStanding?,
                                     now: EngineInstant, configuration: Configuration,
                                     into actions: inout ConnectionActions) {
        let interval = configuration.heartbeatInterval
        let silence = snapshot.lastAckReceived
        lastHeard = max(lastHeard, EngineInstant(nanoseconds: now.nanoseconds &- UInt64(max(0, silence.nanosecondsValue))))
        // The probes' state is read once and written back once: each access through `rackd` copies the
        // whole rackd peer, and this runs for every reading (docs/architecture.md, "Liveness at scale").
        var (lastProbeAt, unansweredProbes) = (rackd.lastProbeAt, rackd.unansweredProbes)
        defer {
            if (lastProbeAt, unansweredProbes) != (rackd.lastProbeAt, rackd.unansweredProbes) {
                var updated = rackd
                updated.lastProbeAt = lastProbeAt
                updated.unansweredProbes = unansweredProbes
                rackd = updated
            }
        }
        // An ACK came after our last probe. The kernel counts the silence in jiffies (up to 10 ms each) and
        // a probe's answer may come within one: an ACK that close to the probe counts as its answer, or a
        // member's pace would stay at the interval's (livenessPace) though every probe is answered.
        if let lastProbe = lastProbeAt, silence < now.duration(since: lastProbe) + interval / 50 {
            unansweredProbes = 0
        }
        let silent = silence >= configuration.failureTimeout
            && now.duration(since: healthy.since) >= configuration.failureTimeout
        if silent, path?.failedAt != nil {
            suspend(reason: "its path failed: nothing heard for \(silence.roundedMilliseconds) ms", now: now,
                    into: &actions)
            return
        }
        if silent, snapshot.unackedSegments > 0 || unansweredProbes >= configuration.heartbeatMisses {
            suspend(reason: "nothing heard for \(silence.roundedMilliseconds) ms", now: now, into: &actions)
            return
        }
        let pace = livenessPace(path, unansweredProbes: unansweredProbes, configuration)
        if silence >= pace && snapshot.unackedSegments == 0
            && (lastProbeAt.map { now.duration(since: $0) >= pace } ?? true)
        {
            let positions = sequences(from: snapshot)
            actions.transmit(toPeer(.keepaliveProbe(
                from: socketFlow.local, to: socketFlow.remote, sendNext: positions.sendUnacknowledged,
                acknowledgmentNumber: positions.receiveNext, window: 1024)))
            lastProbeAt = now
            unansweredProbes += 1
        }
        let suspect = silence >= pace + interval / 2
        let reason = suspect ? "nothing heard for \(silence.roundedMilliseconds) ms" : "peer answered"
        transition(to: suspect ? .suspect(healthy) : .healthy(healthy), reason: reason, into: &actions)
    }
}

extension Connection {
    /// How long this connection may stay quiet before it is probed (the file's header): the heartbeat
    /// interval for a path's sentinel, and for a member whose probe went unanswered; the slow
    /// `memberCheckInterval` for any other member.
    func livenessPace(_ path: PathStanding?, unansweredProbes: Int, _ configuration: Configuration) -> Duration {
        let isSentinel = path?.isSentinel ?? true
        return isSentinel || unansweredProbes > 0 ? configuration.heartbeatInterval : configuration.memberCheckInterval
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    var roundedMilliseconds: Int64 { nanosecondsValue / 1_000_000 }
}
