// rackd — tells systemd how the service is doing (sd_notify(3): READY=1, WATCHDOG=1, STATUS=, STOPPING=1).
//
// Hand-written rather than linked from libsystemd: the protocol is one datagram on the unix socket named
// by $NOTIFY_SOCKET, documented as stable and meant to be reimplemented, and this keeps the package's
// dependencies to the netfilter libraries. Outside systemd (no $NOTIFY_SOCKET) every call does nothing.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

final class SystemdNotifier: Sendable {
    private let address: sockaddr_un?
    private let addressLength: socklen_t
    private let descriptor: CInt
    /// How often systemd wants WATCHDOG=1: half its WatchdogSec, as sd_watchdog_enabled(3) advises.
    let watchdogInterval: Duration?

    init(environment: [String: String]) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array((environment["NOTIFY_SOCKET"] ?? "").utf8)
        // "@name" names a socket in the abstract namespace: a leading NUL on the wire.
        if path.first == UInt8(ascii: "@") { path[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        if !path.isEmpty && path.count < capacity && (path[0] == UInt8(ascii: "/") || path[0] == 0) {
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path) }
            self.address = address
            addressLength = socklen_t(MemoryLayout<sa_family_t>.size + path.count)
            descriptor = socket(AF_UNIX, CLNL_SOCK_DGRAM | CLNL_SOCK_CLOEXEC, 0)
        } else {
            self.address = nil
            addressLength = 0
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
    func notify(_ state: String) {
        guard descriptor >= 0, var address else { return }
        let bytes = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bytes.withUnsafeBytes {
                    sendto(descriptor, $0.baseAddress, $0.count, CLNL_MSG_NOSIGNAL, socketAddress, addressLength)
                }
            }
        }
    }
}
