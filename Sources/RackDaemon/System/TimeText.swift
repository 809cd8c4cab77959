// rackd — times as text, by hand from the C library: Foundation's formatters would link ICU's data.

#if canImport(Glibc)
import Glibc
#endif

enum TimeText {
    /// "2026-11-21T15:22:21Z": RFC 3339 in UTC, for status.
    static func rfc3339UTC(secondsSinceEpoch: Int) -> String {
        var seconds = time_t(secondsSinceEpoch)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return dateAndTime(parts) + "Z"
    }

    /// "2026-11-21T15:22:21.123": local time with milliseconds, for log lines on a terminal.
    static func localNow() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        return dateAndTime(parts) + "." + padded(now.tv_nsec / 1_000_000, 3)
    }

    private static func dateAndTime(_ parts: tm) -> String {
        "\(padded(parts.tm_year + 1900, 4))-\(padded(parts.tm_mon + 1, 2))-\(padded(parts.tm_mday, 2))T"
            + "\(padded(parts.tm_hour, 2)):\(padded(parts.tm_min, 2)):\(padded(parts.tm_sec, 2))"
    }

    private static func padded(_ value: some BinaryInteger, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
