// rackd — the netlink socket every kernel adapter talks through: the NFQUEUE reader and the nftables
// installer (netfilter), the socket diagnostics (sock_diag), the link monitor and the loopback addresses
// (rtnetlink).
//
// It owns a descriptor and a receive buffer, sets options, sends datagrams and receives them. Requests,
// acknowledgments and dumps are in NetlinkSocket+Requests.swift; reading what comes back is the pure walk of
// Decoding/NetlinkMessages.swift. Building netfilter messages stays in libnftnl and libnetfilter_queue. It
// decides nothing.

import CLinuxNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An owned `AF_NETLINK` socket of one family, bound to a kernel-chosen port id.
final class NetlinkSocket {
    /// The netlink families rackd talks to.
    enum Family {
        /// NETLINK_NETFILTER: the queue (nfnetlink_queue) and the rules (nf_tables).
        case netfilter
        /// NETLINK_SOCK_DIAG: socket dumps (inet_diag).
        case socketDiagnostics
        /// NETLINK_ROUTE: links, addresses and their notifications.
        case route

        var rawValue: CInt {
            switch self {
            case .netfilter: NETLINK_NETFILTER
            case .socketDiagnostics: NETLINK_SOCK_DIAG
            case .route: NETLINK_ROUTE
            }
        }

        var name: String {
            switch self {
            case .netfilter: "NETLINK_NETFILTER"
            case .socketDiagnostics: "NETLINK_SOCK_DIAG"
            case .route: "NETLINK_ROUTE"
            }
        }
    }

    let descriptor: CInt
    let family: Family
    /// The port id the kernel assigned; replies and acks carry it.
    let portID: UInt32
    /// Whether `receive` returns nil instead of waiting.
    let isNonBlocking: Bool
    private let buffer: UnsafeMutableRawBufferPointer
    private var sequence = UInt32.random(in: 1...0x7fff_ffff)

    /// Opens and binds the socket.
    ///
    /// - Parameters:
    ///   - groups: the multicast groups to join (`RTMGRP_*` bits), 0 for none.
    ///   - nonBlocking: open with `SOCK_NONBLOCK`, for polling.
    ///   - bufferBytes: the receive buffer: the largest datagram `receive` can take. The kernel sizes dump
    ///     datagrams at most 32 KiB; a larger one is reported as `EMSGSIZE`, never silently cut.
    init(family: Family, groups: UInt32 = 0, nonBlocking: Bool = false, bufferBytes: Int = 64 * 1024)
        throws(SystemError)
    {
        var type = CLNL_SOCK_RAW | CLNL_SOCK_CLOEXEC
        if nonBlocking { type |= CLNL_SOCK_NONBLOCK }
        let fd = try syscall("socket(AF_NETLINK, \(family.name))") { socket(AF_NETLINK, type, family.rawValue) }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = groups
        do {
            try syscall("bind(\(family.name))") {
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                    }
                }
            }
            var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
            try syscall("getsockname(\(family.name))") {
                withUnsafeMutablePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        self.descriptor = fd
        self.family = family
        self.portID = address.nl_pid
        self.isNonBlocking = nonBlocking
        self.buffer = .allocate(byteCount: bufferBytes, alignment: 16)
    }

    deinit {
        close(descriptor)
        buffer.deallocate()
    }

    /// A fresh sequence number for a request, never 0.
    func nextSequence() -> UInt32 {
        sequence = sequence == 0x7fff_ffff ? 1 : sequence + 1
        return sequence
    }

    // MARK: Options

    /// Sets an integer socket option.
    func setOption(level: CInt, name: CInt, value: CInt, call: String) throws(SystemError) {
        var value = value
        try syscall("setsockopt(\(family.name), \(call))") {
            setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<CInt>.size))
        }
    }

    /// Asks for a large receive buffer: `SO_RCVBUFFORCE` (CAP_NET_ADMIN, ignores `rmem_max`), else what
    /// `SO_RCVBUF` allows.
    func setReceiveBuffer(bytes: Int) throws(SystemError) {
        do {
            try setOption(level: SOL_SOCKET, name: SO_RCVBUFFORCE, value: CInt(bytes), call: "SO_RCVBUFFORCE")
        } catch {
            try setOption(level: SOL_SOCKET, name: SO_RCVBUF, value: CInt(bytes), call: "SO_RCVBUF")
        }
    }

    /// Bounds how long a blocking `receive` waits, so a kernel that never answers cannot hang the daemon.
    func setReceiveTimeout(_ timeout: Duration) throws(SystemError) {
        let (seconds, attoseconds) = timeout.components
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        try syscall("setsockopt(\(family.name), SO_RCVTIMEO)") {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    // MARK: Sending and receiving

    /// Sends one datagram, holding one or more netlink messages, to the kernel.
    func send(_ bytes: UnsafeRawBufferPointer, call: String) throws(SystemError) {
        let sent = try syscall("send(\(family.name), \(call))") { Glibc.send(descriptor, bytes.baseAddress, bytes.count, 0) }
        if sent != bytes.count {
            throw SystemError(call: "send(\(family.name), \(call))", errno: .messageTooLong, hint: "short netlink send")
        }
    }

    /// Receives one datagram from the kernel into the socket's buffer. Returns nil when nothing is waiting
    /// and the socket is non-blocking or `waiting` is false. Datagrams from other processes are dropped:
    /// only the kernel (port id 0) speaks for queues, rules, links and sockets.
    ///
    /// The returned bytes are valid until the next call.
    func receive(waiting: Bool = true, call: String) throws(SystemError) -> UnsafeRawBufferPointer? {
        let returnsWhenEmpty = isNonBlocking || !waiting
        while true {
            var sender = sockaddr_nl()
            var senderLength = socklen_t(MemoryLayout<sockaddr_nl>.size)
            let flags = CLNL_MSG_TRUNC | (returnsWhenEmpty ? CLNL_MSG_DONTWAIT : 0)
            let count = withUnsafeMutablePointer(to: &sender) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, buffer.baseAddress, buffer.count, flags, $0, &senderLength)
                }
            }
            if count < 0 {
                let code = Errno(rawValue: Glibc.errno)
                switch code {
                case .interrupted: continue
                case .wouldBlock where returnsWhenEmpty: return nil
                case .wouldBlock:
                    throw SystemError(
                        call: "recv(\(family.name), \(call))", errno: code,
                        hint: "the kernel did not answer within the receive timeout")
                default: throw SystemError(call: "recv(\(family.name), \(call))", errno: code)
                }
            }
            if count > buffer.count {
                // MSG_TRUNC makes recv report the datagram's real length.
                throw SystemError(
                    call: "recv(\(family.name), \(call))", errno: .messageTooLong,
                    hint: "a \(count)-byte netlink datagram did not fit the \(buffer.count)-byte buffer")
            }
            if sender.nl_pid != 0 { continue }
            return UnsafeRawBufferPointer(rebasing: buffer[0..<count])
        }
    }
}
