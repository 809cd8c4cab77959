// rackd — the one place rackd reads the monotonic clock for the engine.

import RackEngine

#if canImport(Glibc)
import Glibc
#endif

enum MonotonicClock {
    static func now() -> EngineInstant {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return EngineInstant(nanoseconds: UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
    }
}
