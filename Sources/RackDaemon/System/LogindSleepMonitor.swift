// rackd — logind's word that the machine is about to sleep, and a delay inhibitor so that rackd can hold
// its connections first (docs/systemd.md, "Sleep"; org.freedesktop.login1(5): Inhibit, PrepareForSleep).
//
// rackd takes a "delay" inhibitor for "sleep" over the system bus. Before sleeping logind sends
// PrepareForSleep(true) and waits (at most InhibitDelayMaxSec=, 5 s by default) until every delay
// inhibitor is released: rackd suspends every connection as `rackctl suspend --all` would, then closes
// the inhibitor's descriptor. After waking logind sends PrepareForSleep(false): rackd resumes them and
// takes a new inhibitor. The decisions are the data plane's; this adapter only speaks sd-bus.
//
// Nothing here blocks: the bus is opened without a round trip, every call is asynchronous, and
// DataPlane polls the bus descriptor (`pollDescriptor`, `nextDeadline`) and calls `process` in its loop.
// Without a system bus, or without logind on it (this repository's test namespaces, containers, a
// machine without systemd), the monitor says so once at info and goes away; the system-sleep hook
// (packaging/systemd/rackd-sleep) still suspends and resumes through rackctl then.

import CSystemd
import Logging
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

final class LogindSleepMonitor {
    /// What logind said, for the data plane to act on.
    enum Event: Equatable {
        /// PrepareForSleep(true): hold every connection, then `releaseInhibitor()`.
        case sleeping
        /// PrepareForSleep(false): resume them, then `takeInhibitor()`.
        case woke
    }

    /// sd_bus*, nil once the bus is gone.
    private var bus: OpaquePointer?
    /// The inhibitor logind handed over (a pipe end: closing it releases the inhibitor), or -1.
    private var inhibitor: CInt = -1
    private var inhibitorRequested = false
    /// Between PrepareForSleep(true) and (false): an inhibitor granted now is released at once.
    private var asleep = false
    private var events: [Event] = []
    /// Set from a callback when logind is not there or the bus failed: the monitor closes after `process`.
    private var failure: String?
    private let logger: Logger

    /// Connects to the system bus and asks for the signal and an inhibitor; nil (after one info line)
    /// when there is no system bus.
    static func open(logger: Logger) -> LogindSleepMonitor? {
        var bus: OpaquePointer?
        let result = sd_bus_open_system(&bus)
        guard result >= 0, let bus else {
            logger.info("no system bus: rackd does not hear of sleep from logind; the system-sleep hook holds connections instead",
                        metadata: ["error": "\(Errno(rawValue: -result))"])
            return nil
        }
        _ = sd_bus_set_description(bus, "rackd-logind")
        let monitor = LogindSleepMonitor(bus: bus, logger: logger)
        let userdata = Unmanaged.passUnretained(monitor).toOpaque()
        let subscribed = sd_bus_match_signal_async(
            bus, nil, "org.freedesktop.login1", "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
            "PrepareForSleep", prepareForSleepSignal, matchInstalled, userdata)
        guard subscribed >= 0 else {
            logger.info("could not subscribe to logind's PrepareForSleep; the system-sleep hook holds connections instead",
                        metadata: ["error": "\(Errno(rawValue: -subscribed))"])
            return nil
        }
        monitor.takeInhibitor()
        return monitor
    }

    private init(bus: OpaquePointer, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    deinit {
        close()
    }

    // MARK: Polling, for the data-plane loop

    /// The bus descriptor and what to wait for; fd -1 (polls nothing) once the bus is gone.
    var pollDescriptor: pollfd {
        guard let bus else { return pollfd(fd: -1, events: 0, revents: 0) }
        return pollfd(fd: sd_bus_get_fd(bus), events: Int16(truncatingIfNeeded: max(0, sd_bus_get_events(bus))), revents: 0)
    }

    /// When sd-bus needs `process` without anything to read (a call timing out), on the engine's clock.
    func nextDeadline(now: EngineInstant) -> EngineInstant? {
        var microseconds: UInt64 = 0
        guard let bus, sd_bus_get_timeout(bus, &microseconds) >= 0, microseconds != UInt64.max else { return nil }
        // sd-bus counts on CLOCK_MONOTONIC, MonotonicClock on CLOCK_BOOTTIME: carry the distance over.
        var monotonic = timespec()
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        let nowMicroseconds = UInt64(monotonic.tv_sec) * 1_000_000 + UInt64(monotonic.tv_nsec) / 1000
        return now + .microseconds(Int64(microseconds > nowMicroseconds ? microseconds - nowMicroseconds : 0))
    }

    /// Lets sd-bus read, write and dispatch when the descriptor is ready (`revents`) or a deadline passed,
    /// and returns what logind said. Afterwards `isClosed` tells whether the monitor gave up.
    func process(revents: Int16, now: EngineInstant) -> [Event] {
        guard let bus, revents != 0 || nextDeadline(now: now).map({ $0 <= now }) == true else { return [] }
        while true {
            let result = sd_bus_process(bus, nil)
            if result == 0 { break }
            if result < 0 {
                failure = failure ?? "the system bus failed: \(Errno(rawValue: -result))"
                break
            }
        }
        if let failure {
            logger.info("rackd no longer hears of sleep from logind; the system-sleep hook holds connections instead",
                        metadata: ["reason": "\(failure)"])
            close()
        }
        defer { events = [] }
        return events
    }

    /// Whether the monitor gave up (no logind, the bus failed); the data plane then drops it.
    var isClosed: Bool { bus == nil }

    // MARK: The inhibitor

    /// Asks logind for a delay inhibitor on sleep, unless one is held or asked for.
    func takeInhibitor() {
        guard let bus, inhibitor < 0, !inhibitorRequested else { return }
        let result = csystemd_call_inhibit(
            bus, "sleep", "rackd", "hold managed connections before sleep", "delay", inhibitReply,
            Unmanaged.passUnretained(self).toOpaque())
        if result < 0 {
            logger.warning("could not ask logind for a sleep inhibitor", metadata: ["error": "\(Errno(rawValue: -result))"])
        } else {
            inhibitorRequested = true
        }
    }

    /// Lets the machine sleep: closes the inhibitor's descriptor.
    func releaseInhibitor() {
        guard inhibitor >= 0 else { return }
        _ = Glibc.close(inhibitor)
        inhibitor = -1
    }

    private func close() {
        releaseInhibitor()
        if let bus { _ = sd_bus_close_unref(bus) }
        bus = nil
    }

    // MARK: Callbacks from sd_bus_process

    fileprivate func handleInhibitReply(_ message: OpaquePointer?) {
        inhibitorRequested = false
        guard let message, sd_bus_message_is_method_error(message, nil) == 0 else {
            // No logind (ServiceUnknown), or it refused: the hook is the fallback.
            failure = "logind refused or is not there: \(Self.errorText(message))"
            return
        }
        var descriptor: CInt = -1
        let read = sd_bus_message_read_basic(message, CChar(UInt8(ascii: "h")), &descriptor)
        // The message owns its descriptor; keep a copy of our own.
        let kept = read > 0 ? fcntl(descriptor, F_DUPFD_CLOEXEC, 3) : -1
        guard kept >= 0 else {
            failure = "logind's Inhibit reply held no descriptor"
            return
        }
        inhibitor = kept
        if asleep {
            // PrepareForSleep(true) came first; the connections are held already.
            releaseInhibitor()
        } else {
            logger.debug("holding logind's sleep inhibitor", metadata: ["logind.inhibitor-fd": "\(kept)"])
        }
    }

    fileprivate func handleMatchInstalled(_ message: OpaquePointer?) {
        guard let message, sd_bus_message_is_method_error(message, nil) != 0 else { return }
        failure = "could not subscribe to PrepareForSleep: \(Self.errorText(message))"
    }

    fileprivate func handlePrepareForSleep(_ message: OpaquePointer?) {
        var starting: CInt = 0
        guard let message, sd_bus_message_read_basic(message, CChar(UInt8(ascii: "b")), &starting) > 0 else { return }
        asleep = starting != 0
        events.append(asleep ? .sleeping : .woke)
    }

    private static func errorText(_ message: OpaquePointer?) -> String {
        guard let message, let error = sd_bus_message_get_error(message) else { return "no reply" }
        let name = error.pointee.name.map { String(cString: $0) } ?? "?"
        let text = error.pointee.message.map { String(cString: $0) } ?? ""
        return text.isEmpty ? name : "\(name): \(text)"
    }
}

// sd-bus calls C function pointers; each finds its monitor in `userdata` (unretained: the monitor owns the
// bus, and the bus runs callbacks only inside the monitor's own `process`).

private let inhibitReply: sd_bus_message_handler_t = { message, userdata, _ in
    userdata.map { Unmanaged<LogindSleepMonitor>.fromOpaque($0).takeUnretainedValue() }?.handleInhibitReply(message)
    return 0
}

private let matchInstalled: sd_bus_message_handler_t = { message, userdata, _ in
    userdata.map { Unmanaged<LogindSleepMonitor>.fromOpaque($0).takeUnretainedValue() }?.handleMatchInstalled(message)
    return 0
}

private let prepareForSleepSignal: sd_bus_message_handler_t = { message, userdata, _ in
    userdata.map { Unmanaged<LogindSleepMonitor>.fromOpaque($0).takeUnretainedValue() }?.handlePrepareForSleep(message)
    return 0
}
