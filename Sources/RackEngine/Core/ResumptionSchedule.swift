// rackd — when a held connection tries to resume (docs/roaming.md, "Attempts while held").
//
// Without an event that says the path came back (a black hole simply lifts), only attempts find out, so
// the schedule trades how soon a returned path is found against what a long hold costs the path:
//
//     hold age (since the hold began, or since the last event that reset it)   interval
//     0 to 30 min                                                              500 ms
//     30 min to 2 h                                                            2 s
//     after 2 h                                                                10 s (the cap)
//
// The fast phase covers the outages the tests hold (up to 20 minutes) and README.md's "resumed within
// 1 s"; after two hours the attempts cost 6.4 bytes a second (docs/roaming.md has the 7-day figures).
//
// Both ends of a connection attempt on their own schedules, and either one's attempt resumes it, so a
// returned path is found within one interval of the younger schedule.
//
// An event of this host (a link up, an address added, a route added: anything that may have given the
// connection a path) starts the schedule again and brings the next attempt forward, to at once but no
// sooner than `eventRetrySpacing` after the last attempt, and for at most `eventRetries` attempts per
// `eventRetryWindow`: a burst of route events costs the peer a handful of attempts, never a flood.

/// The resumption attempts of a held connection: their backoff, and how events bring them forward.
enum ResumptionSchedule {
    /// The interval while the schedule is young: a returned path is found within it.
    static let fastInterval: Duration = .milliseconds(500)
    /// How long attempts stay at `fastInterval`.
    static let fastPhase: Duration = .seconds(1800)
    /// The interval after the fast phase, until `slowAfter`.
    static let middleInterval: Duration = .seconds(2)
    static let slowAfter: Duration = .seconds(7200)
    /// The cap: the interval after `slowAfter`, for the rest of the hold.
    static let slowInterval: Duration = .seconds(10)

    /// The least time between an attempt and one an event brings forward.
    static let eventRetrySpacing: Duration = .milliseconds(10)
    /// At most this many attempts brought forward by events per `eventRetryWindow`.
    static let eventRetries = 4
    static let eventRetryWindow: Duration = .seconds(1)

    /// The interval before the next attempt, for a schedule started `age` ago.
    static func interval(age: Duration) -> Duration {
        if age < fastPhase { return fastInterval }
        if age < slowAfter { return middleInterval }
        return slowInterval
    }
}

extension Hold {
    /// When the attempt after one made `now` is due.
    func attemptAfter(_ now: EngineInstant) -> EngineInstant {
        now + ResumptionSchedule.interval(age: now.duration(since: scheduleStart ?? since))
    }

    /// Records an attempt made `now` and schedules the next one.
    mutating func attempted(now: EngineInstant) {
        lastAttemptAt = now
        nextAttemptAt = attemptAfter(now)
    }

    /// An event may have given the connection a path: start the schedule again and bring the next
    /// attempt forward, within the bounds of `ResumptionSchedule`. Returns whether it was brought forward.
    @discardableResult
    mutating func pathMayHaveChanged(now: EngineInstant) -> Bool {
        scheduleStart = now
        var retries = eventRetries ?? EventRetries(windowStart: now, count: 0)
        if now.duration(since: retries.windowStart) >= ResumptionSchedule.eventRetryWindow {
            retries = EventRetries(windowStart: now, count: 0)
        }
        let earliest = max(now, lastAttemptAt.map { $0 + ResumptionSchedule.eventRetrySpacing } ?? now)
        guard earliest < nextAttemptAt else {
            eventRetries = retries
            return false  // already due by then: this event adds nothing
        }
        guard retries.count < ResumptionSchedule.eventRetries else {
            // Over the bound: the schedule, started again, still tries within `fastInterval`.
            nextAttemptAt = min(nextAttemptAt, attemptAfter(now))
            eventRetries = retries
            return false
        }
        retries.count += 1
        eventRetries = retries
        nextAttemptAt = earliest
        return true
    }
}
