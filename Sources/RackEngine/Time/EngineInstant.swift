// rackd — engine time: a monotonic instant the caller passes in.
//
// The engine never reads a clock (docs/architecture.md, "The engine is pure"). The daemon passes
// CLOCK_BOOTTIME (docs/design-notes.md: it counts the time a laptop sleeps); tests build instants
// directly and jump straight to the next deadline instead of sleeping.

/// A point on a monotonic clock, in nanoseconds since an arbitrary origin.
public struct EngineInstant: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func milliseconds(_ value: UInt64) -> EngineInstant { EngineInstant(nanoseconds: value * 1_000_000) }
    public static func seconds(_ value: UInt64) -> EngineInstant { EngineInstant(nanoseconds: value * 1_000_000_000) }

    public static func < (lhs: EngineInstant, rhs: EngineInstant) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    public static func + (lhs: EngineInstant, rhs: Duration) -> EngineInstant {
        let (seconds, attoseconds) = rhs.components
        let nanoseconds = Int64(seconds) * 1_000_000_000 + attoseconds / 1_000_000_000
        return EngineInstant(nanoseconds: UInt64(max(0, Int64(lhs.nanoseconds) + nanoseconds)))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    public func duration(since earlier: EngineInstant) -> Duration {
        .nanoseconds(Int64(nanoseconds >= earlier.nanoseconds ? nanoseconds - earlier.nanoseconds : 0))
    }

    public var description: String { "t+\(nanoseconds / 1_000_000)ms" }
}
