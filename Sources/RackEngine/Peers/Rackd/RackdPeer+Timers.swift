// rackd — the rackd protocol's timers for one connection: key retransmission, the confirm repeated after
// a roam, and the expiry of roam handshakes answered but never confirmed.

extension RackdPeer {
    /// The earliest of these timers, in the connection's current state.
    func nextDeadline(in state: ConnectionState) -> EngineInstant? {
        var deadline: EngineInstant?
        func consider(_ instant: EngineInstant) { deadline = min(deadline ?? instant, instant) }
        if case .establishing = state, case .exchanging(let exchange) = keys { consider(exchange.nextSendAt) }
        if let repeatAt = confirmRepeat?.nextAt { consider(repeatAt) }
        if let oldest = roamOffers.first { consider(oldest.createdAt + Self.roamOfferLifetime) }
        return deadline
    }
}

extension Connection {
    mutating func handleRackdTimers(_ context: inout ConnectionContext, into actions: inout ConnectionActions) {
        let now = context.now
        if case .establishing = state, case .exchanging(let exchange) = rackd.keys, exchange.nextSendAt <= now {
            retransmitKey(now: now, into: &actions)
            if actions.end != nil { return }
        }
        repeatConfirmIfDue(now: now, into: &actions)
        rackd.roamOffers.removeAll { now.duration(since: $0.createdAt) >= RackdPeer.roamOfferLifetime }
    }
}
