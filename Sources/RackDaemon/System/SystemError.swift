// rackd — system errors, named by the call that failed.
//
// Every adapter reports a failed system or library call as a `SystemError`: the call, the errno by its
// Swift name, and a hint that tells the operator what to do about it. Nothing here decides anything.

import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A failed system or library call.
public struct SystemError: Error, CustomStringConvertible {
    /// The call that failed, e.g. `"mnl_socket_bind(NETLINK_NETFILTER)"`.
    var call: String
    /// The error number the call reported.
    var errno: Errno
    /// What the operator can do about it, when rackd knows.
    var hint: String?

    init(call: String, errno: Errno, hint: String? = nil) {
        self.call = call
        self.errno = errno
        self.hint = hint ?? SystemError.defaultHint(for: errno)
    }

    /// Builds the error from the thread's current `errno`.
    static func current(_ call: String, hint: String? = nil) -> SystemError {
        SystemError(call: call, errno: Errno(rawValue: Glibc.errno), hint: hint)
    }

    public var description: String {
        var text = "\(call) failed: \(errno) (errno \(errno.rawValue))"
        if let hint { text += "; \(hint)" }
        return text
    }

    private static func defaultHint(for errno: Errno) -> String? {
        switch errno {
        case .notPermitted, .permissionDenied:
            return "rackd needs CAP_NET_ADMIN and CAP_NET_RAW: run it as root or from its systemd unit"
        default:
            return nil
        }
    }
}

/// Runs a call that returns -1 and sets errno on failure, retrying on EINTR.
@discardableResult
func syscall<T: FixedWidthInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = Errno(rawValue: Glibc.errno)
        if code == .interrupted { continue }
        throw SystemError(call: call(), errno: code)
    }
}
