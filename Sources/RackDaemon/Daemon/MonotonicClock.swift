// rackd — the one place rackd reads the clock for the engine.
//
// CLOCK_BOOTTIME, not CLOCK_MONOTONIC: it keeps counting while the machine sleeps, so a laptop asleep
// overnight counts the night towards a connection's suspension (and its maximum), and status shows
// how long a connection has really been held.

import RackEngine

#if canImport(Glibc)
import Glibc
#endif

public enum MonotonicClock {
    public static func now() -> EngineInstant {
        var time = timespec()
        clock_gettime(CLOCK_BOOTTIME, &time)
        return EngineInstant(nanoseconds: UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
    }
}
