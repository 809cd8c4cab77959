// rackd — tells systemd how the service is doing (sd_notify(3): READY=1, WATCHDOG=1, STATUS=, STOPPING=1)
// and keeps descriptors in its file-descriptor store across restarts (FDSTORE=1, FDSTOREREMOVE=1, and
// sd_listen_fds_with_names(3) to take them back).
//
// Linked from libsystemd (CSystemd) since the fd store came in: storing a descriptor means sending it
// with SCM_RIGHTS beside the message, and taking it back means reading LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES. libsystemd does both as systemd itself expects, and it is on every systemd machine
// (libsystemd0), so linking it costs the package one dependency that is always installed. Outside systemd
// (no $NOTIFY_SOCKET) every call does nothing, and no descriptors are handed over.

import CSystemd
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class SystemdNotifier: Sendable {
    /// Whether systemd listens (rackd runs as a Type=notify service): $NOTIFY_SOCKET is set.
    let isActive: Bool
    /// How often systemd wants WATCHDOG=1: half its WatchdogSec, as sd_watchdog_enabled(3) advises. nil
    /// without a watchdog, or when WATCHDOG_PID names another process (a child must not answer for it).
    let watchdogInterval: Duration?
    /// What systemd handed over at start (LISTEN_FDS), until `takeStoredDescriptors` takes it.
    private let handedOver: Mutex<[StoredDescriptor]?>

    /// Reads the process environment systemd set up ($NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID,
    /// $LISTEN_*). Call it once, early: the descriptors systemd hands over become rackd's here.
    public init() {
        isActive = getenv("NOTIFY_SOCKET").map { $0.pointee != 0 } ?? false
        var microseconds: UInt64 = 0
        watchdogInterval = sd_watchdog_enabled(0, &microseconds) > 0 && microseconds > 0
            ? .microseconds(Int64(microseconds / 2)) : nil
        handedOver = Mutex(Self.listenDescriptors())
    }

    /// Sends one notification, e.g. "READY=1" or "STATUS=…". Best effort: systemd not listening is not
    /// rackd's failure.
    public func notify(_ state: String) {
        guard isActive else { return }
        _ = sd_notify(0, state)
    }

    // MARK: The file-descriptor store (FileDescriptorStoreMax= in packaging/systemd/rackd.service)

    /// Puts `descriptors` into systemd's store under `name`; the next rackd of this unit gets them back
    /// (`takeStoredDescriptors`) after a restart. systemd ignores a descriptor it already holds. Returns
    /// whether systemd took the message (false outside systemd).
    @discardableResult
    public func store(_ descriptors: [CInt], name: String) -> Bool {
        guard isActive, !descriptors.isEmpty, StoredDescriptor.isValidName(name) else { return false }
        return descriptors.withUnsafeBufferPointer {
            // FDPOLL=0: systemd would otherwise drop a descriptor that polls EPOLLHUP, and the reconnection
            // socket is bound but never listens (a TCP socket in CLOSE polls EPOLLHUP), so systemd 252
            // forgot it at once (packaging/test-deb-boot found it). rackd's sockets never hang up.
            sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=\(name)\nFDPOLL=0", $0.baseAddress, UInt32($0.count)) > 0
        }
    }

    /// Closes and forgets systemd's copies of every descriptor stored under `name`.
    @discardableResult
    public func removeStored(name: String) -> Bool {
        guard isActive, StoredDescriptor.isValidName(name) else { return false }
        return sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=\(name)") > 0
    }

    /// The descriptors systemd handed over at start, each with the name it was stored under; empty the
    /// second time (they are the caller's to use or close).
    public func takeStoredDescriptors() -> [StoredDescriptor] {
        handedOver.withLock { handed in
            defer { handed = nil }
            return handed ?? []
        }
    }

    /// sd_listen_fds_with_names(3): the descriptors from 3 on, when LISTEN_PID is this process. It marks
    /// them close-on-exec. The environment stays as it is (unsetting it would race other threads'
    /// getenv); a child would not take them anyway, LISTEN_PID being rackd's.
    private static func listenDescriptors() -> [StoredDescriptor] {
        var names: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        let count = sd_listen_fds_with_names(0, &names)
        defer {
            if let names {
                var index = 0
                while let name = names[index] {
                    free(name)
                    index += 1
                }
                free(names)
            }
        }
        guard count > 0 else { return [] }
        return (0..<Int(count)).map { index in
            StoredDescriptor(descriptor: SD_LISTEN_FDS_START + CInt(index),
                             name: names?[index].map { String(cString: $0) } ?? "unknown")
        }
    }
}
