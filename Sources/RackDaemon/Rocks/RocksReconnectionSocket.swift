// rackd — the TCP socket behind the reconnection address rackd announces to rocks peers (docs/rocks.md
// §3.2). A rock connects to it to resume a connection after a failure; until that work exists it is
// bound and held, not listening, so a SYN to it draws a RST, as a rock's own reconnection socket does
// before it suspends. Held for the daemon's life, so the port the engine announced stays rackd's; under
// systemd also across restarts, in the fd store (Rocks/RocksSocketStore.swift).

import CLinuxNetlink

#if canImport(Glibc)
import Glibc
#endif

public final class RocksReconnectionSocket {
    public let descriptor: CInt
    /// The bound port: the configured one, or the one the kernel picked for port 0.
    public let port: UInt16

    /// Binds 0.0.0.0:`port` (0: a free port), with SO_REUSEADDR so that a restarted rackd gets its port
    /// back while connections of the last one linger in TIME_WAIT. Fails with an error naming the port
    /// and the key `reconnection-port`.
    public init(port: UInt16) throws(SystemError) {
        (descriptor, self.port) = try RocksSocketBinding.bind(
            type: CLNL_SOCK_STREAM, port: port, reuseAddress: true, what: "rocks reconnection socket",
            key: "reconnection-port")
    }

    /// Takes over a socket an earlier rackd bound to `port` (RocksSocketStore checked its kind).
    init(adopting descriptor: CInt, port: UInt16) {
        self.descriptor = descriptor
        self.port = port
    }

    deinit {
        close(descriptor)
    }
}
