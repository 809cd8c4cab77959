// rackd — keeps rejected resumption attempts from flooding the journal.
//
// Each rejection is worth a line (it may be an attack, or a bug), but an attacker can send thousands a
// second. At most `burst` of them are logged per `window`; the next one logged says how many were left
// out. Every other event always passes.

import RackEngine

struct RejectionLogLimiter {
    enum Decision: Equatable {
        /// Log the event; `suppressedBefore` rejections were left out since the last one logged.
        case log(suppressedBefore: Int)
        case suppress
    }

    var burst = 20
    var window: Duration = .seconds(10)
    private var windowStart: EngineInstant?
    private var loggedInWindow = 0
    private var suppressed = 0

    mutating func admit(_ event: EngineEvent, now: EngineInstant) -> Decision {
        guard case .resumptionRejected = event else { return .log(suppressedBefore: 0) }
        if windowStart.map({ now.duration(since: $0) >= window }) ?? true {
            windowStart = now
            loggedInWindow = 0
        }
        guard loggedInWindow < burst else {
            suppressed += 1
            return .suppress
        }
        loggedInWindow += 1
        defer { suppressed = 0 }
        return .log(suppressedBefore: suppressed)
    }
}
