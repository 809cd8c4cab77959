// rackd — the rocks sockets kept in systemd's file-descriptor store (docs/systemd.md, "The fd store").
//
// The heartbeat and reconnection ports are announced to rocks peers, which keep sending there. Between
// one rackd and the next, a port nobody holds refuses what arrives (an ICMP port unreachable for a
// heartbeat, a RST for a SYN), and another program could take it. So rackd stores both sockets with
// systemd after binding them, and the next rackd of the unit adopts them instead of binding: the port
// never closes. Outside systemd nothing is stored or handed back, and DataPlane.bind(configured:kept:…)
// rebinds the port remembered in the state directory instead.

import CLinuxNetlink
import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A rocks socket that can be kept in systemd's store and taken over by the next rackd.
protocol StorableRocksSocket: AnyObject {
    /// The name it is stored under (FDNAME=).
    static var storeName: String { get }
    /// CLNL_SOCK_DGRAM or CLNL_SOCK_STREAM; the family is always AF_INET.
    static var socketType: CInt { get }
    var descriptor: CInt { get }
    var port: UInt16 { get }
    init(adopting descriptor: CInt, port: UInt16)
    /// Binds a new one to `port` (0: any free port).
    init(port: UInt16) throws(SystemError)
}

extension RocksHeartbeatSocket: StorableRocksSocket {
    static let storeName = "rocks-heartbeat"
    static var socketType: CInt { CLNL_SOCK_DGRAM }
}

extension RocksReconnectionSocket: StorableRocksSocket {
    static let storeName = "rocks-reconnection"
    static var socketType: CInt { CLNL_SOCK_STREAM }
}

enum RocksSocketStore {
    /// The names rackd stores with rocks enabled; with it disabled, none.
    static func names(rocksEnabled: Bool) -> Set<String> {
        rocksEnabled ? [RocksHeartbeatSocket.storeName, RocksReconnectionSocket.storeName] : []
    }

    /// Closes what systemd handed back under names rackd no longer stores, and removes those names.
    static func discardUnwanted(_ sorting: StoredDescriptorSorting, notifier: SystemdNotifier, logger: Logger) {
        for stored in sorting.unwanted { close(stored.descriptor) }
        for name in sorting.unwantedNames {
            notifier.removeStored(name: name)
            logger.info("dropped a descriptor systemd kept that rackd no longer uses", metadata: ["fdstore.name": "\(name)"])
        }
    }

    /// The socket of kind `S`: the one systemd handed back under its name (`handed`) when it fits the
    /// configured port, else a new one from `bind`, which is then stored.
    static func adoptOrBind<S: StorableRocksSocket>(
        _ kind: S.Type, handed: [CInt], configured: UInt16, notifier: SystemdNotifier, logger: Logger,
        bind: () throws -> S
    ) throws -> S {
        let candidates = handed.map { (descriptor: $0, port: boundPort(of: $0, type: S.socketType)) }
        let socket: S
        switch StoredSocketChoice.choose(from: candidates, configured: configured) {
        case .adopt(let descriptor, let others, let storeAgain):
            others.forEach { _ = close($0) }
            socket = S(adopting: descriptor, port: candidates.first { $0.descriptor == descriptor }!.port!)
            // systemd hands descriptors over as they were stored; rackd's loop must never block on them.
            _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
            logger.notice("rocks socket taken back from systemd's fd store",
                          metadata: ["fdstore.name": "\(S.storeName)", "rocks.port": "\(socket.port)"])
            guard storeAgain else { return socket }
            notifier.removeStored(name: S.storeName)
        case .bind(let handed, let removeName):
            handed.forEach { _ = close($0) }
            if removeName {
                logger.info("systemd's stored rocks socket does not fit the configuration; binding anew",
                            metadata: ["fdstore.name": "\(S.storeName)", "rocks.configured-port": "\(configured)"])
                notifier.removeStored(name: S.storeName)
            }
            socket = try bind()
        }
        if notifier.store([socket.descriptor], name: S.storeName) {
            logger.debug("rocks socket kept in systemd's fd store", metadata: ["fdstore.name": "\(S.storeName)"])
        }
        return socket
    }

    /// The port `descriptor` is bound to when it is an AF_INET socket of `type`, else nil.
    private static func boundPort(of descriptor: CInt, type: CInt) -> UInt16? {
        guard sd_is_socket_inet(descriptor, AF_INET, type, -1, 0) > 0,
              let local = try? SocketAddress.localEndpoint(of: descriptor, call: "getsockname(stored rocks socket)")
        else { return nil }
        return local.port
    }
}
