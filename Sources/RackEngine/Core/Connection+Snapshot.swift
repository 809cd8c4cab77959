// rackd — what a snapshot of the local socket (sock_diag) tells a connection: that the socket is gone
// or closing, its positions for a hold, and, through the peer's protocol, whether the peer is alive.

extension Connection {
    /// Takes in the socket's state; nil when the socket no longer exists.
    mutating func handleSnapshot(_ snapshot: SocketSnapshot?, _ context: inout ConnectionContext) -> ConnectionActions {
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
            case .rackd: checkRackdLiveness(healthy, snapshot: snapshot, now: context.now, configuration: context.configuration, into: &actions)
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
