// rackd — how often rackd puts its rules back after someone took them away. Pure: instants in, instants out.
//
// A firewall tool that deletes rackd's table whenever it sees it (or a reload loop) would otherwise fight
// rackd for ever, each round costing a reinstall and the packets queued at that moment. So restorations
// pass a token bucket (a generic cell rate: one token per `interval`, `burst` at most): a burst of `burst`
// back to back, then one per `interval`. A restoration that finds no token waits until one comes
// (docs/rules-restore.md).

import RackEngine

/// The rate limit on restoring rackd's rules.
public struct RulesRestoreLimit: Sendable {
    /// Restorations allowed back to back.
    public let burst: Int
    /// Then one per this much time.
    public let interval: Duration
    /// The generic cell rate algorithm's theoretical arrival time: when the bucket is full again.
    private var fullAt: EngineInstant?

    public init(burst: Int = 3, interval: Duration = .seconds(1)) {
        precondition(burst >= 1, "a rate limit that allows nothing")
        self.burst = burst
        self.interval = interval
    }

    /// When the next restoration may run: `now`, or the later instant a token comes.
    public func earliestRestoration(now: EngineInstant) -> EngineInstant {
        guard let fullAt else { return now }
        // The bucket holds no token while fullAt lies more than (burst - 1) intervals ahead.
        let allowedAt = fullAt + (interval * -(burst - 1))
        return max(now, allowedAt)
    }

    /// Counts a restoration made at `now`.
    public mutating func recordRestoration(at now: EngineInstant) {
        fullAt = max(fullAt ?? now, now) + interval
    }
}
