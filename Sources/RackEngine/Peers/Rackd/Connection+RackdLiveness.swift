// rackd — liveness of a healthy connection to a rackd peer, without queueing a single packet of it
// (docs/architecture.md, "Data path" and "Kernel facts: liveness").
//
// The daemon hands the engine a snapshot of every managed socket a few times per heartbeat interval
// (sock_diag). `lastAckReceived` says when the peer last answered. A connection that has been quiet
// for an interval, and has no data outstanding, gets a keepalive-shaped probe: one byte below what the
// peer expects, which the peer's kernel answers with an ACK that refreshes `lastAckReceived`. Probes
// are never sent while data is outstanding, so duplicate ACKs never pile up on a sending socket; the
// kernel's own retransmissions draw the ACKs then.
//
// The path is declared failed when nothing was heard for `failureTimeout` (2.5 s by default) and
// either `misses` probes went unanswered or data is outstanding. A local address lost, or its link
// down, fails the connection at once (Core/Connection+Links.swift).

extension Connection {
    mutating func checkRackdLiveness(_ healthy: Healthy, snapshot: SocketSnapshot, now: EngineInstant,
                                     configuration: Configuration, into actions: inout ConnectionActions) {
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
        if let lastProbe = lastProbeAt, silence < now.duration(since: lastProbe) {
            unansweredProbes = 0  // an ACK came after our last probe
        }
        let failed = silence >= configuration.failureTimeout
            && now.duration(since: healthy.since) >= configuration.failureTimeout
            && (snapshot.unackedSegments > 0 || unansweredProbes >= configuration.heartbeatMisses)
        if failed {
            suspend(reason: "nothing heard for \(silence.roundedMilliseconds) ms", now: now, into: &actions)
            return
        }
        if silence >= interval && snapshot.unackedSegments == 0
            && (lastProbeAt.map { now.duration(since: $0) >= interval } ?? true)
        {
            let positions = sequences(from: snapshot)
            actions.transmit(toPeer(.keepaliveProbe(
                from: socketFlow.local, to: socketFlow.remote, sendNext: positions.sendUnacknowledged,
                acknowledgmentNumber: positions.receiveNext, window: 1024)))
            lastProbeAt = now
            unansweredProbes += 1
        }
        let suspect = silence >= interval + interval / 2
        let reason = suspect ? "nothing heard for \(silence.roundedMilliseconds) ms" : "peer answered"
        transition(to: suspect ? .suspect(healthy) : .healthy(healthy), reason: reason, into: &actions)
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    var roundedMilliseconds: Int64 { nanosecondsValue / 1_000_000 }
}
