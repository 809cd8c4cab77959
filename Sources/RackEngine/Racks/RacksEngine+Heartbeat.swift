// rackd — liveness of healthy connections, without queueing a single packet of theirs (DESIGN §4, §6).
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
// down, fails the connection at once.

extension RacksEngine {
    var snapshotInterval: Duration { configuration.heartbeatInterval / 4 }

    /// The flows whose sockets the daemon should snapshot.
    var flowsToSnapshot: Set<FlowKey> {
        Set(connections.values.filter {
            if case .keyExchange = $0.state { return false }
            return true
        }.map(\.flow))
    }

    /// Asks for a snapshot as soon as possible.
    mutating func scheduleSnapshot(now: EngineInstant) {
        nextSnapshotAt = min(nextSnapshotAt ?? now, now)
    }

    /// Takes in the sockets' state. A managed flow missing from `snapshots` has no socket any more.
    mutating func handleSnapshots(_ snapshots: [FlowKey: SocketSnapshot], now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        nextSnapshotAt = flowsToSnapshot.isEmpty ? nil : now + snapshotInterval
        let snapshotFlows = flowsToSnapshot
        for flow in flowsInOrder where snapshotFlows.contains(flow) {
            guard var connection = connections[flow] else { continue }
            guard let snapshot = snapshots[flow] else {
                forget(connection, reason: "socket closed", into: &output)
                continue
            }
            switch snapshot.state {
            case .established, .finWait1, .finWait2, .closeWait:
                break
            case .lastAck, .closing, .timeWait:
                guard connection.path != nil else {
                    forget(connection, reason: "socket is closing (\(snapshot.state))", into: &output)
                    continue
                }
                // A roamed connection still has packets to carry (the last data, the FINs, their ACKs):
                // without the rewrite they would reach the kernel on the wrong tuple and draw a reset.
                // It is held until the socket is gone; no liveness check on a closing socket.
                connection.socket = snapshot
                connections[flow] = connection
                continue
            default:
                forget(connection, reason: "socket is closing (\(snapshot.state))", into: &output)
                continue
            }
            connection.socket = snapshot
            switch connection.state {
            case .healthy(var healthy):
                checkLiveness(&healthy, connection: &connection, snapshot: snapshot, now: now, into: &output)
            case .suspended(var suspended):
                if connection.needsFreshSnapshot {
                    suspended.sequences = connection.sequences(from: snapshot)
                    connection.needsFreshSnapshot = false
                    connection.state = .suspended(suspended)
                }
            case .keyExchange:
                break
            }
            if connections[flow] != nil { connections[flow] = connection }
        }
        reconcile(now: now, into: &output)
        return output
    }

    private mutating func checkLiveness(
        _ healthy: inout RacksConnection.Healthy, connection: inout RacksConnection, snapshot: SocketSnapshot,
        now: EngineInstant, into output: inout EngineOutput
    ) {
        let interval = configuration.heartbeatInterval
        let silence = snapshot.lastAckReceived
        connection.lastHeard = max(connection.lastHeard, EngineInstant(nanoseconds: now.nanoseconds &- UInt64(max(0, silence.nanosecondsValue))))
        if let lastProbe = healthy.lastProbeAt, silence < now.duration(since: lastProbe) {
            healthy.unansweredProbes = 0  // an ACK came after our last probe
        }
        let failed = silence >= configuration.failureTimeout
            && now.duration(since: healthy.since) >= configuration.failureTimeout
            && (snapshot.unackedSegments > 0 || healthy.unansweredProbes >= configuration.heartbeatMisses)
        if failed {
            let reason = "nothing heard for \(silence.roundedMilliseconds) ms"
            connection.state = .healthy(healthy)
            suspend(&connection, reason: reason, now: now, into: &output)
            return
        }
        if silence >= interval && snapshot.unackedSegments == 0
            && (healthy.lastProbeAt.map { now.duration(since: $0) >= interval } ?? true)
        {
            let positions = connection.sequences(from: snapshot)
            output.transmit(toPeer(.keepaliveProbe(
                from: connection.flow.local, to: connection.flow.remote, sendNext: positions.sendUnacknowledged,
                acknowledgmentNumber: positions.receiveNext, window: 1024), connection: connection))
            healthy.lastProbeAt = now
            healthy.unansweredProbes += 1
        }
        let wasSuspect = healthy.suspect
        healthy.suspect = silence >= interval + interval / 2
        let before: ConnectionPhase = wasSuspect ? .suspect : .healthy
        connection.state = .healthy(healthy)
        if before != connection.phase {
            output.events.append(.phaseChanged(
                id: connection.id, connection.flow, from: before, to: connection.phase,
                reason: healthy.suspect ? "nothing heard for \(silence.roundedMilliseconds) ms" : "peer answered"))
        }
    }

    /// Local addresses came or went (rtnetlink). A connection whose wire address left is suspended at
    /// once; a suspended one tries again at once when an address comes, from it if its own is gone
    /// (+Roaming).
    mutating func handleLinkEvent(_ event: LinkEvent, now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        switch event {
        case .addressesLost(let addresses):
            lostAddresses.formUnion(addresses)
            availableAddresses.removeAll { addresses.contains($0) }
        case .addressesAvailable(let addresses):
            lostAddresses.subtract(addresses)
            availableAddresses.removeAll { addresses.contains($0) }
            availableAddresses += addresses
        }
        for flow in flowsInOrder {
            guard var connection = connections[flow] else { continue }
            let wireAddress = connection.wireFlow.local.address
            switch (event, connection.state) {
            case (.addressesLost(let addresses), .healthy) where addresses.contains(wireAddress):
                suspend(&connection, reason: "local address \(wireAddress) lost", now: now, into: &output)
            case (.addressesLost(let addresses), .keyExchange) where addresses.contains(flow.local.address):
                connections[flow] = nil
                output.events.append(.fellBack(flow, reason: "local address lost during key exchange"))
                continue
            case (.addressesAvailable, .suspended(var suspended)):
                suspended.nextChallengeAt = now
                connection.state = .suspended(suspended)
            default:
                break
            }
            if connections[flow] != nil { connections[flow] = connection }
        }
        reconcile(now: now, into: &output)
        return output
    }
}

extension Duration {
    var nanosecondsValue: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }

    var roundedMilliseconds: Int64 { nanosecondsValue / 1_000_000 }
}
