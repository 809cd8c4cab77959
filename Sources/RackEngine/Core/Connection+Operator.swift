// rackd — what the operator asks of one connection: `rackctl suspend` and `rackctl resume` (and the sleep
// hook, which runs them around a system sleep).
//
// Suspending holds a connection exactly as an outage would (zero window, every packet queued, the peer
// unheard), and then keeps holding it: no resumption is attempted and none of the peer's is answered, so
// the path working does not undo it. The peer sees an outage and suspends on its own. Resuming lifts the
// hold and tries at once, so the connection is back as soon as the peer answers.

extension Connection {
    static let operatorSuspendReason = "suspended by the operator (rackctl suspend)"

    /// Holds the connection for the operator. Returns nil, with the reason, when there is nothing to do.
    mutating func holdForOperator(now: EngineInstant, into actions: inout ConnectionActions) -> String? {
        switch state {
        case .establishing:
            return "still exchanging keys; nothing to hold yet"
        case .closing:
            return "closing; nothing to hold"
        case .healthy, .suspect:
            suspend(reason: Self.operatorSuspendReason, now: now, into: &actions)
        case .suspended(let hold) where hold.holder == .operator, .resuming(let hold) where hold.holder == .operator:
            return "already held by the operator"
        case .suspended, .resuming:
            break
        }
        guard var hold else { return nil }
        // Forget resumption attempts under way: an answer to one must not lift the hold.
        hold.holder = .operator
        switch peer {
        case .rackd:
            rackd.resumption = RackdPeer.Resumption()
            rackd.roamOffers = []
        case .rocks(var rocks):
            // Links under way go; the rock's next ones are held unanswered until `rackctl resume`
            // (Connection+RocksReconnection.swift), so that it retries about once a second, not in a storm.
            rocks.resetLinks(into: &actions)
            peer = .rocks(rocks)
        }
        transition(to: .suspended(hold), reason: Self.operatorSuspendReason, into: &actions)
        return nil
    }

    /// Lifts the operator's hold; the next timer run tries to resume at once, held or not: the operator
    /// wants it now. Returns the reason when the connection is not held.
    mutating func releaseForOperator(now: EngineInstant, into actions: inout ConnectionActions) -> String? {
        guard var hold else { return "not suspended (\(phase.rawValue))" }
        hold.holder = .outage
        hold.nextAttemptAt = now
        hold.scheduleStart = now  // the attempts' backoff starts again (Core/ResumptionSchedule.swift)
        updateHold(hold)
        if case .rocks(var rocks) = peer {
            // Links the rock opened while held were left unanswered: they go, and the old connection is reset
            // again in case the rock never heard the first reset (it then suspends and listens).
            rocks.resetLinks(into: &actions)
            peer = .rocks(rocks)
            startRocksReconnection(resetOldConnection: true, now: now, into: &actions)
        }
        return nil
    }
}
