// rackd — binding the sockets rackd announces to rocks peers (docs/rocks.md §3.2, §4): the shared part of
// the heartbeat and the reconnection socket, and the error an operator sees when it fails.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

enum RocksSocketBinding {
    /// A socket of `type` bound to 0.0.0.0:`port` (0: a free port), non-blocking and close-on-exec, and
    /// the port it got. `what` and `key` name the socket and its configuration key in errors.
    static func bind(type: CInt, port: UInt16, reuseAddress: Bool, what: String, key: String)
        throws(SystemError) -> (descriptor: CInt, port: UInt16)
    {
        let proto = type == CLNL_SOCK_DGRAM ? "UDP" : "TCP"
        let descriptor = try syscall("socket(\(what))") {
            socket(AF_INET, type | CLNL_SOCK_NONBLOCK | CLNL_SOCK_CLOEXEC, 0)
        }
        do throws(SystemError) {
            if reuseAddress {
                var one: CInt = 1
                try syscall("setsockopt(\(what), SO_REUSEADDR)") {
                    setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
                }
            }
            let address = SocketAddress(TCPEndpoint(address: .v4(IPv4Address(rawValue: 0)), port: port))
            do {
                try syscall("bind(\(what), \(proto) 0.0.0.0:\(port))") { address.withSockaddr { Glibc.bind(descriptor, $0, $1) } }
            } catch {
                throw SystemError(call: error.call, errno: error.errno, hint: hint(for: error, port: port, key: key))
            }
            let bound = try SocketAddress.localEndpoint(of: descriptor, call: "getsockname(\(what))")
            return (descriptor, bound.port)
        } catch {
            close(descriptor)
            throw error
        }
    }

    /// What to do about a failed bind: every case names the configuration key.
    private static func hint(for error: SystemError, port: UInt16, key: String) -> String {
        let setting = "'\(key)' in [rocks] of rackd.conf"
        switch error.errno {
        case .addressInUse:
            return "another socket holds port \(port); set \(setting) to a free port, or to 0 to let rackd pick one"
        case .permissionDenied where port < 1024:
            return "ports below 1024 need CAP_NET_BIND_SERVICE, which rackd does not keep; set \(setting) to 1024 or above, or to 0"
        case .permissionDenied, .notPermitted:
            return "binding was refused (a SocketBindDeny= in rackd's unit or a drop-in?); allow the port, or change \(setting)"
        default:
            return "check \(setting)"
        }
    }
}
