// rackd — netlink sockets for the kernel's own families (sock_diag and rtnetlink), and message walking.
//
// `NetlinkSocket` speaks NETLINK_NETFILTER through libmnl. The socket diagnostics and the link monitor
// build and read their messages themselves, over this type: it owns a descriptor and a receive buffer,
// sends requests, runs dumps and walks messages and attributes. It decides nothing.

import CLinuxNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Opening, and options every netlink socket shares

/// Opens an `AF_NETLINK` socket of `protocol` and binds it to a kernel-chosen port id.
func openNetlinkSocket(protocol: CInt, name: String, groups: UInt32 = 0, nonBlocking: Bool = false)
    throws(SystemError) -> (descriptor: CInt, portID: UInt32)
{
    var type = CLNL_SOCK_RAW | CLNL_SOCK_CLOEXEC
    if nonBlocking { type |= CLNL_SOCK_NONBLOCK }
    let fd = try syscall("socket(AF_NETLINK, \(name))") { socket(AF_NETLINK, type, `protocol`) }
    var address = sockaddr_nl()
    address.nl_family = sa_family_t(AF_NETLINK)
    address.nl_groups = groups
    do {
        try syscall("bind(\(name))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
        try syscall("getsockname(\(name))") {
            withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
        }
    } catch {
        close(fd)
        throw error
    }
    return (fd, address.nl_pid)
}

/// A netlink socket rackd owns: the options are set the same way whatever the family.
protocol NetlinkDescriptorOwner {
    var descriptor: CInt { get }
    /// The family's name, for errors.
    var familyName: String { get }
}

extension NetlinkDescriptorOwner {
    /// Sets an integer socket option.
    func setOption(level: CInt, name: CInt, value: CInt, call: String) throws(SystemError) {
        var value = value
        try syscall("setsockopt(\(familyName), \(call))") {
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
}

// MARK: - Socket

/// An owned `AF_NETLINK` socket of one kernel family, bound to a kernel-chosen port id.
final class KernelNetlinkSocket: NetlinkDescriptorOwner {
    /// The netlink families rackd talks to directly.
    enum Family {
        /// NETLINK_SOCK_DIAG: socket dumps (inet_diag).
        case socketDiagnostics
        /// NETLINK_ROUTE: links, addresses and their notifications.
        case route

        var rawValue: CInt {
            switch self {
            case .socketDiagnostics: NETLINK_SOCK_DIAG
            case .route: NETLINK_ROUTE
            }
        }

        var name: String {
            switch self {
            case .socketDiagnostics: "NETLINK_SOCK_DIAG"
            case .route: "NETLINK_ROUTE"
            }
        }
    }

    let descriptor: CInt
    let family: Family
    var familyName: String { family.name }
    /// The port id the kernel assigned.
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
    ///   - bufferBytes: the receive buffer: the largest datagram this socket can take. The kernel sizes dump
    ///     datagrams at most 32 KiB; a larger one is reported as `EMSGSIZE`, never silently cut.
    init(family: Family, groups: UInt32 = 0, nonBlocking: Bool = false, bufferBytes: Int = 64 * 1024)
        throws(SystemError)
    {
        let (fd, portID) = try openNetlinkSocket(
            protocol: family.rawValue, name: family.name, groups: groups, nonBlocking: nonBlocking)
        self.descriptor = fd
        self.family = family
        self.portID = portID
        self.isNonBlocking = nonBlocking
        self.buffer = .allocate(byteCount: bufferBytes, alignment: 16)
    }

    deinit {
        close(descriptor)
        buffer.deallocate()
    }

    // MARK: Options

    /// Bounds how long a blocking `receive` waits, so a kernel that never answers cannot hang the daemon.
    func setReceiveTimeout(_ timeout: Duration) throws(SystemError) {
        let (seconds, attoseconds) = timeout.components
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        try syscall("setsockopt(\(family.name), SO_RCVTIMEO)") {
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    // MARK: Sending and receiving

    /// Sends one request: a netlink header of `type` and `flags` (`NLM_F_REQUEST` is added) followed by
    /// `body`. Returns the sequence number it carries.
    @discardableResult
    func sendRequest<Body: BitwiseCopyable>(type: UInt16, flags: UInt16, body: Body, call: String)
        throws(SystemError) -> UInt32
    {
        try sendRequest(type: type, flags: flags, bytes: withUnsafeBytes(of: body) { Array($0) }, call: call)
    }

    /// Sends one request whose body (fixed header and attributes) is already encoded.
    @discardableResult
    func sendRequest(type: UInt16, flags: UInt16, bytes body: [UInt8], call: String) throws(SystemError) -> UInt32 {
        sequence = sequence == 0x7fff_ffff ? 1 : sequence + 1
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(MemoryLayout<nlmsghdr>.size + body.count)
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(NLM_F_REQUEST) | flags
        header.nlmsg_seq = sequence
        // Netlink bodies are C structs aligned to at most 4 bytes: they follow the 16-byte header directly.
        let message = withUnsafeBytes(of: header) { Array($0) } + body
        let sent = try syscall("send(\(family.name), \(call))") {
            message.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
        }
        if sent != message.count {
            throw SystemError(call: "send(\(family.name), \(call))", errno: .messageTooLong, hint: "short netlink send")
        }
        return sequence
    }

    /// Sends one request with `NLM_F_ACK` and waits for the kernel's answer. Needs a blocking socket
    /// without multicast groups. Throws the kernel's error, if any.
    func requestWithAcknowledgment(type: UInt16, flags: UInt16, body: [UInt8], call: String) throws(SystemError) {
        precondition(!isNonBlocking, "acknowledged requests run on a blocking socket")
        let expected = try sendRequest(type: type, flags: UInt16(NLM_F_ACK) | flags, bytes: body, call: call)
        while true {
            guard let datagram = try receive(call: call) else { continue }
            for reply in KernelNetlinkMessages(datagram)
            where reply.sequence == expected && reply.type == UInt16(NLMSG_ERROR) {
                let code = reply.payload.count >= 4 ? reply.payload.loadUnaligned(as: Int32.self) : -EPROTO
                if code == 0 { return }
                throw SystemError(call: "\(family.name) \(call)", errno: Errno(rawValue: -code))
            }
        }
    }

    /// Receives one datagram from the kernel into the socket's buffer. Returns nil when the socket is
    /// non-blocking and nothing is waiting. Datagrams from other processes are dropped: only the kernel
    /// (port id 0) speaks for links and sockets.
    ///
    /// The returned bytes are valid until the next call.
    func receive(call: String) throws(SystemError) -> UnsafeRawBufferPointer? {
        while true {
            var sender = sockaddr_nl()
            var senderLength = socklen_t(MemoryLayout<sockaddr_nl>.size)
            let flags = CLNL_MSG_TRUNC | (isNonBlocking ? CLNL_MSG_DONTWAIT : 0)
            let count = withUnsafeMutablePointer(to: &sender) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    recvfrom(descriptor, buffer.baseAddress, buffer.count, flags, $0, &senderLength)
                }
            }
            if count < 0 {
                let code = Errno(rawValue: Glibc.errno)
                switch code {
                case .interrupted: continue
                case .wouldBlock where isNonBlocking: return nil
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

    /// Runs one dump: sends a `NLM_F_DUMP` request and hands each reply message to `handle`, until
    /// `NLMSG_DONE`. Needs a blocking socket without multicast groups. Returns false when the kernel flagged
    /// the dump as inconsistent (`NLM_F_DUMP_INTR`: the table changed while it was read).
    ///
    /// After a thrown error the socket may still hold the rest of the dump; open a new socket.
    func dump<Body: BitwiseCopyable>(
        type: UInt16, body: Body, call: String, _ handle: (KernelNetlinkMessage) -> Void
    ) throws(SystemError) -> Bool {
        precondition(!isNonBlocking, "dumps run on a blocking socket")
        let sequence = try sendRequest(type: type, flags: UInt16(NLM_F_DUMP), body: body, call: call)
        var consistent = true
        while true {
            guard let datagram = try receive(call: call) else { continue }
            for message in KernelNetlinkMessages(datagram)
            where message.sequence == sequence && message.portID == portID {
                switch message.type {
                case UInt16(NLMSG_DONE):
                    // Some families put the error that ended the dump in NLMSG_DONE's payload.
                    if message.payload.count >= 4 {
                        let code = message.payload.loadUnaligned(as: Int32.self)
                        if code < 0 {
                            throw SystemError(call: "\(family.name) dump (\(call))", errno: Errno(rawValue: -code))
                        }
                    }
                    return consistent
                case UInt16(NLMSG_ERROR):
                    let code = message.payload.count >= 4 ? message.payload.loadUnaligned(as: Int32.self) : -EPROTO
                    throw SystemError(
                        call: "\(family.name) dump (\(call))", errno: Errno(rawValue: code < 0 ? -code : EPROTO))
                case UInt16(NLMSG_NOOP):
                    continue
                default:
                    if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { consistent = false }
                    handle(message)
                }
            }
        }
    }
}

// MARK: - Messages

/// One netlink message within a received datagram.
struct KernelNetlinkMessage {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    var portID: UInt32
    /// Everything after the 16-byte header, up to the message's length.
    var payload: UnsafeRawBufferPointer
}

/// The messages of one datagram, in order. Iteration stops at the first malformed header.
struct KernelNetlinkMessages: Sequence, IteratorProtocol {
    private let datagram: UnsafeRawBufferPointer
    private var offset = 0

    init(_ datagram: UnsafeRawBufferPointer) {
        self.datagram = datagram
    }

    mutating func next() -> KernelNetlinkMessage? {
        let headerSize = MemoryLayout<nlmsghdr>.size
        guard datagram.count - offset >= headerSize else { return nil }
        let header = datagram.loadUnaligned(fromByteOffset: offset, as: nlmsghdr.self)
        let length = Int(header.nlmsg_len)
        guard length >= headerSize, length <= datagram.count - offset else {
            offset = datagram.count
            return nil
        }
        let payload = UnsafeRawBufferPointer(rebasing: datagram[(offset + headerSize)..<(offset + length)])
        offset = Swift.min(datagram.count, offset + netlinkAligned(length))
        return KernelNetlinkMessage(
            type: header.nlmsg_type, flags: header.nlmsg_flags, sequence: header.nlmsg_seq,
            portID: header.nlmsg_pid, payload: payload)
    }
}

// MARK: - Attributes

/// One netlink (or rtnetlink) attribute: its type, without the nested and byte-order flags, and payload.
struct KernelNetlinkAttribute {
    var type: UInt16
    var payload: UnsafeRawBufferPointer

    /// The payload as a native-endian integer, if it is long enough.
    func integer<T: FixedWidthInteger>(as: T.Type) -> T? {
        payload.count >= MemoryLayout<T>.size ? payload.loadUnaligned(as: T.self) : nil
    }
}

/// The attributes that follow a message's fixed header, in order. Iteration stops at the first
/// malformed attribute.
struct KernelNetlinkAttributes: Sequence, IteratorProtocol {
    private let bytes: UnsafeRawBufferPointer
    private var offset: Int

    /// The attributes of `payload` that start after its `fixedHeaderSize`-byte fixed part.
    init(_ payload: UnsafeRawBufferPointer, after fixedHeaderSize: Int) {
        self.bytes = payload
        self.offset = netlinkAligned(fixedHeaderSize)
    }

    mutating func next() -> KernelNetlinkAttribute? {
        guard bytes.count - offset >= 4 else { return nil }
        let length = Int(bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        let type = bytes.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
        guard length >= 4, length <= bytes.count - offset else {
            offset = bytes.count
            return nil
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[(offset + 4)..<(offset + length)])
        offset = Swift.min(bytes.count, offset + netlinkAligned(length))
        return KernelNetlinkAttribute(type: type & CLNL_NLA_TYPE_MASK, payload: payload)
    }
}

/// Rounds up to netlink's 4-byte alignment (NLMSG_ALIGN, RTA_ALIGN, NLA_ALIGN).
func netlinkAligned(_ length: Int) -> Int {
    (length + 3) & ~3
}
