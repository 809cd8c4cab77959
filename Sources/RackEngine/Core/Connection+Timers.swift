// rackd — a connection's timers: the maximum suspension, resumption attempts, and the peer protocol's
// own (ConnectionTable keeps each connection's earliest one in its deadline heap).

extension Connection {
    /// Runs whatever of this connection's timers is due. Spurious calls do nothing.
    mutating func handleTimeout(_ context: inout ConnectionContext) -> ConnectionActions {
        var actions = ConnectionActions()
        let now = context.now
        if var hold {
            if now.duration(since: hold.since) >= context.configuration.maximumSuspension {
                // Its socket faces the network again and closes as TCP would: it times out unless the
                // peer answers.
                actions.end = .ended(reason: "held for the maximum suspension time")
                return actions
            }
            if hold.holder == .outage && hold.nextAttemptAt <= now {
                switch peer {
                case .rackd:
                    if !attemptRackdResumption(&context, into: &actions) {
                        // No address to try from: wait for one (a link event tries at once).
                        hold.nextAttemptAt = hold.attemptAfter(now)
                        updateHold(hold)
                    }
                case .rocks:
                    break  // a rock reconnects on its own timers (Connection+RocksReconnection.swift)
                }
            }
        }
        switch peer {
        case .rackd: handleRackdTimers(&context, into: &actions)
        case .rocks: handleRocksTimers(&context, into: &actions)
        }
        return actions
    }
}
