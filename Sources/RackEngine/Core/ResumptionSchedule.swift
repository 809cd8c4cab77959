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
// sooner than `eventRetrySpacing` after the last attempt, and the one after it to `followUpDelay` later:
// the path an event announces may not be usable at that instant (when a link's carrier returns, the kernel
// revives its routes without telling anyone, and an attempt made on the link's own event can still find
// no route). At most `eventRetries` attempts per `eventRetryWindow` come early this way: a burst of route
// events costs the peer a handful of attempts, never a flood.

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
    /// The attempt after one an event brought forward comes this soon.
    static let followUpDelay: Duration = .milliseconds(50)
    /// At most this many attempts brought forward by events (follow-ups included) per `eventRetryWindow`.
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

    /// Records an attempt made `now` and schedules the next one: a follow-up if an event asked for one
    /// and the bound allows it, else the schedule's.
    mutating func attempted(now: EngineInstant) {
        lastAttemptAt = now
        nextAttemptAt = attemptAfter(now)
        guard var retries = eventRetries, retries.followUp else { return }
        retries.followUp = false
        if retries.count < ResumptionSchedule.eventRetries {
            retries.count += 1
            nextAttemptAt = min(nextAttemptAt, now + ResumptionSchedule.followUpDelay)
        }
        eventRetries = retries
    }

    /// An event may have given the connection a path: start the schedule again, bring the next attempt
    /// forward and ask for a follow-up, within the bounds of `ResumptionSchedule`.
    mutating func pathMayHaveChanged(now: EngineInstant) {
        scheduleStart = now
        var retries = eventRetries ?? EventRetries(windowStart: now, count: 0, followUp: false)
        if now.duration(since: retries.windowStart) >= ResumptionSchedule.eventRetryWindow {
            retries = EventRetries(windowStart: now, count: 0, followUp: false)
        }
        defer { eventRetries = retries }
        guard retries.count < ResumptionSchedule.eventRetries else {
            // Over the bound: the schedule, started again, still tries within `fastInterval`.
            nextAttemptAt = min(nextAttemptAt, attemptAfter(now))
            return
        }
        retries.followUp = true
        let earliest = max(now, lastAttemptAt.map { $0 + ResumptionSchedule.eventRetrySpacing } ?? now)
        guard earliest < nextAttemptAt else { return }  // already due by then
        retries.count += 1
        nextAttemptAt = earliest
    }
}
