// rackd — tells systemd how the service is doing (sd_notify(3): READY=1, WATCHDOG=1, STATUS=, STOPPING=1).
//
// Hand-written rather than linked from libsystemd: the protocol is one datagram on the unix socket named
// by $NOTIFY_SOCKET, documented as stable and meant to be reimplemented, and this keeps the package's
// dependencies to the netfilter libraries. Outside systemd (no $NOTIFY_SOCKET) every call does nothing.

import CLinuxNetlink
import RackControl
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

public final class SystemdNotifier: Sendable {
    /// $NOTIFY_SOCKET: a path, or "@name" in the abstract namespace; nil outside systemd.
    private let socketPath: String?
    private let descriptor: CInt
    /// How often systemd wants WATCHDOG=1: half its WatchdogSec, as sd_watchdog_enabled(3) advises.
    let watchdogInterval: Duration?

    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"] ?? ""
        if (path.hasPrefix("/") || path.hasPrefix("@")) && UnixSocket.withAddress(path, { _, _ in true }) == true {
            socketPath = path
            descriptor = socket(AF_UNIX, CLNL_SOCK_DGRAM | CLNL_SOCK_CLOEXEC, 0)
        } else {
            socketPath = nil
            descriptor = -1
        }
        // WATCHDOG_PID, when set, names the process systemd watches; a child must not answer for it.
        let watchedPid = environment["WATCHDOG_PID"].flatMap { Int32($0) }
        if let microseconds = environment["WATCHDOG_USEC"].flatMap({ UInt64($0) }), microseconds > 0,
            watchedPid == nil || watchedPid == getpid()
        {
            watchdogInterval = .microseconds(Int64(microseconds / 2))
        } else {
            watchdogInterval = nil
        }
    }

    deinit {
        if descriptor >= 0 { close(descriptor) }
    }

    /// Whether systemd listens (rackd runs as a Type=notify service).
    var isActive: Bool { descriptor >= 0 }

    /// Sends one notification, e.g. "READY=1" or "STATUS=…". Best effort: systemd not listening is not
    /// rackd's failure.
    public func notify(_ state: String) {
        guard descriptor >= 0, let socketPath else { return }
        let bytes = Array(state.utf8)
        _ = UnixSocket.withAddress(socketPath) { address, length in
            bytes.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, CLNL_MSG_NOSIGNAL, address, length) }
        }
    }
}
