// rackd — what the kernel must do for one connection, derived from its state alone
// (ConnectionTable.reconcile sums these over the connections).

/// One connection's share of the kernel's state.
struct KernelNeeds: Equatable {
    /// Tuples whose every packet must be queued.
    var queued: [FlowKey] = []
    /// Tuples on the wire, other than the socket's own, that lead to this connection.
    var wires: [FlowKey] = []
    /// The mapping the kernel carries instead of the queue, if any.
    var rewrite: KernelRewrite?
    /// The tuple whose outbound packets are queued and of whose inbound ones only SYN, FIN and RST, if any.
    var screened: FlowKey?
    /// The same, with a sequence shift conntrack carries (Core/KernelShift.swift), if any.
    var shift: KernelShift?
    /// The socket's local address: if it left the host, rackd keeps it on `lo` (docs/roaming.md).
    var address: IPAddress
}

extension Connection {
    var kernelNeeds: KernelNeeds {
        var needs = KernelNeeds(address: socketFlow.local.address)
        if let screened = screenedFlow {
            needs.screened = screened
        } else if let shift = kernelShift {
            needs.shift = shift
        } else if isQueued || peer.isRocks || awaitsOwnSYNACKRetransmissions {
            needs.queued.append(socketFlow)
        }
        // A rocks client's mapping is on its own tuple until a reconnection (its handshake's shift).
        if let mapping, mapping.wire != socketFlow {
            if let rewrite = kernelRewrite {
                needs.rewrite = rewrite
            } else if needs.shift == nil {
                needs.queued.append(mapping.wire)
            }
            needs.wires.append(mapping.wire)
        }
        switch peer {
        case .rackd(let rackd):
            // Until a roam is confirmed its tuple is queued, so that nothing reaches the kernel, which
            // would answer with a reset.
            for offer in rackd.roamOffers {
                needs.queued.append(offer.wire)
                needs.wires.append(offer.wire)
            }
            if hold != nil, let attempt = rackd.resumption.roam { needs.wires.append(attempt.wire) }
        case .rocks(let rocks):
            // Queued, or screened once its offsets cancel out (above). Reconnection links have no socket: the kernel must never see them.
            for attempt in rocks.reconnection.attempts {
                needs.queued.append(attempt.link.flow)
                needs.wires.append(attempt.link.flow)
            }
        }
        return needs
    }

    /// Where the connection's packets are handled now, from what the kernel is asked to do for it.
    var packetRoute: ConnectionPacketRoute {
        let needs = kernelNeeds
        if !needs.queued.isEmpty { return .queued }
        return needs.screened == nil && needs.shift == nil ? .kernel : .screened
    }

    /// A rackd server's connection until the client's first key message: the socket may still send its
    /// SYN-ACK again, which must carry the hello again, and the SYN chain lets only queued flows' SYN-ACKs
    /// reach rackd (RackdRuleset+Ordinary.swift). The client's key message proves it had the hello, so a
    /// SYN-ACK after it (its handshake's ACK was lost) may go out plain: the client's rackd, which has its
    /// connection, lets it pass to its socket, which only acknowledges it again. Released there, the flow
    /// queues about a round trip less of what the client sends first (docs/architecture.md, "Data path").
    var awaitsOwnSYNACKRetransmissions: Bool {
        guard role == .server, case .rackd(let rackd) = peer, case .establishing = state,
              case .exchanging(let exchange) = rackd.keys, exchange.key == nil
        else { return false }
        return true
    }

    /// The name the peer's protocol gives the connection when it roams, if any.
    var peerName: [UInt8]? {
        switch peer {
        case .rackd(let rackd): rackd.name
        case .rocks: nil
        }
    }

    /// The earliest instant one of the connection's timers is due.
    func nextDeadline(_ configuration: Configuration) -> EngineInstant? {
        var deadline: EngineInstant?
        func consider(_ instant: EngineInstant?) {
            guard let instant else { return }
            deadline = min(deadline ?? instant, instant)
        }
        switch state {
        case .suspended(let hold), .resuming(let hold):
            consider(hold.since + configuration.maximumSuspension)
            if hold.holder == .outage, case .rackd = peer { consider(hold.nextAttemptAt) }
        case .establishing, .healthy, .suspect, .closing:
            break
        }
        switch peer {
        case .rackd(let rackd): consider(rackd.nextDeadline(in: state))
        case .rocks(let rocks): consider(rocks.nextDeadline(in: state))
        }
        return deadline
    }
}
