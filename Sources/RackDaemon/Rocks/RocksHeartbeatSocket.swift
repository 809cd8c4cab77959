// rackd — the UDP socket of rocks heartbeats (docs/rocks.md §4): one for every rocks connection, where a
// rock has one per connection. The engine announces its port in the init messages, sends through it the
// one-byte heartbeats it decides on (`EngineOutput.datagrams`), and routes what arrives by its source
// (`HostEngine.handleDatagram`): the socket itself decides nothing and accepts datagrams from anyone.
//
// AF_INET only: rocks 2.4 carries addresses as `struct sockaddr_in` (docs/rocks.md §3.1). Bound to
// 0.0.0.0, so it answers on whatever address a connection uses, roaming included. Under systemd it is kept
// in the fd store across restarts (Rocks/RocksSocketStore.swift), so its port never closes.

import CLinuxNetlink
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

public final class RocksHeartbeatSocket {
    public let descriptor: CInt
    /// The bound port: the configured one, or the one the kernel picked for port 0.
    public let port: UInt16
    /// Datagrams read per wake-up, so a flood cannot hold up the loop.
    static let batchSize = 64
    /// Heartbeats are one byte; anything longer is cut here and refused by the engine.
    private let buffer: UnsafeMutableRawBufferPointer

    /// Binds 0.0.0.0:`port` (0: a free port). Fails with an error naming the port and the key
    /// `heartbeat-port`.
    public init(port: UInt16) throws(SystemError) {
        (descriptor, self.port) = try RocksSocketBinding.bind(
            type: CLNL_SOCK_DGRAM, port: port, reuseAddress: false, what: "rocks heartbeat socket",
            key: "heartbeat-port")
        buffer = .allocate(byteCount: 2048, alignment: 8)
    }

    /// Takes over a socket an earlier rackd bound to `port` (RocksSocketStore checked its kind).
    init(adopting descriptor: CInt, port: UInt16) {
        self.descriptor = descriptor
        self.port = port
        buffer = .allocate(byteCount: 2048, alignment: 8)
    }

    deinit {
        close(descriptor)
        buffer.deallocate()
    }

    /// Reads up to `batchSize` waiting datagrams and hands each to `handle` with its source; the payload
    /// is valid only during the call. Returns how many were read. A datagram from anything but an IPv4
    /// endpoint cannot come (the socket is AF_INET) and is skipped.
    public func receive(_ handle: (UnsafeRawBufferPointer, TCPEndpoint) -> Void) throws(SystemError) -> Int {
        var count = 0
        while count < Self.batchSize {
            var source = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let received = withUnsafeMutablePointer(to: &source) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, buffer.baseAddress, buffer.count, CInt(MSG_DONTWAIT), $0, &length)
                }
            }
            if received < 0 {
                let code = Errno(rawValue: Glibc.errno)
                if code == .interrupted { continue }
                if code == .wouldBlock { return count }
                // An ICMP error for an earlier send may surface here: not a problem of this socket.
                if code == .connectionRefused || code == .noRouteToHost || code == .networkUnreachable { continue }
                throw SystemError(call: "recvfrom(rocks heartbeat socket)", errno: code)
            }
            count += 1
            guard let endpoint = SocketAddress.endpoint(of: source, length: length) else { continue }
            handle(UnsafeRawBufferPointer(rebasing: buffer[0..<received]), endpoint)
        }
        return count
    }

    /// Sends one datagram. Fails for an IPv6 destination (rocks has none) and when the kernel refuses
    /// (no route while a link is down, a full buffer).
    public func send(_ datagram: Datagram) throws(SystemError) {
        guard datagram.destination.address.isIPv4 else {
            throw SystemError(call: "sendto(rocks heartbeat socket, \(datagram.destination))", errno: .addressFamilyNotSupported,
                              hint: "rocks heartbeats are IPv4 only (a bug in rackd)")
        }
        let address = SocketAddress(datagram.destination)
        try syscall("sendto(rocks heartbeat socket, \(datagram.destination))") {
            datagram.payload.withUnsafeBytes { payload in
                address.withSockaddr { sendto(descriptor, payload.baseAddress, payload.count, CInt(MSG_DONTWAIT), $0, $1) }
            }
        }
    }
}
