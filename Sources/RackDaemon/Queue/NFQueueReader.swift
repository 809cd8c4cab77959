// rackd — reads packets from NFQUEUE and returns their verdicts, in batches.
//
// Messages are built with libnetfilter_queue's mnl-based API, and decoded by the pure
// Decoding/QueuedPacketMetadata.swift (docs/architecture.md, "Kernel facts": NFQUEUE reader):
// - GSO super-packets are delivered whole (NFQA_CFG_F_GSO): without it every segment is a queue round trip;
// - a large receive buffer and NETLINK_NO_ENOBUFS, so bursts are not lost to the socket;
// - `recvmmsg` takes many packets per system call, and all their verdicts leave in one `send`
//   (one NFQNL_MSG_VERDICT_BATCH when every verdict in the batch is a plain accept);
// - every packet gets exactly one verdict: the handler must return one, and packets that cannot be
//   decoded are accepted unchanged (a malformed packet is not rackd's to judge);
// - a packet the handler holds (`PacketVerdict.hold`, a SYN waiting for a rocks probe) gets its verdict
//   later, from `release`; until then the batch verdict is never used, since it would accept every
//   packet queued before the last id, the held ones included. Held packets are capped (HeldPackets.swift):
//   beyond the cap a packet is accepted at once.
// It decides nothing; the handler does.

import CNFQ
import Logging
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

final class NFQueueReader {
    /// Counters, for status and logs.
    struct Counters {
        var received = 0
        var accepted = 0
        var modified = 0
        var dropped = 0
        var undecodable = 0
        var kernelErrors = 0
        /// Packets whose verdict waited (`PacketVerdict.hold`); each is counted again, as accepted,
        /// modified or dropped, when its verdict leaves.
        var held = 0
        /// Packets held past the cap and accepted at once.
        var heldOverflow = 0

        /// These counts and `other`'s, summed.
        func adding(_ other: Counters) -> Counters {
            Counters(received: received + other.received, accepted: accepted + other.accepted,
                     modified: modified + other.modified, dropped: dropped + other.dropped,
                     undecodable: undecodable + other.undecodable, kernelErrors: kernelErrors + other.kernelErrors,
                     held: held + other.held, heldOverflow: heldOverflow + other.heldOverflow)
        }
    }

    let queueNumber: UInt16
    private let socket: NetlinkSocket
    private let logger: Logger
    private(set) var counters = Counters()
    private var heldPackets = HeldPackets()
    /// The cap was reached at least once; logged only the first time.
    private var heldOverflowLogged = false
    /// False once rackd is stopping: a packet the handler would hold is accepted at once.
    private var holding = true

    /// Datagrams taken per `recvmmsg`.
    private static let batchSize = 32
    private let receiveBuffers: [UnsafeMutableRawBufferPointer]
    private var verdictBuffer: UnsafeMutableRawBufferPointer
    private var verdictBytes = 0

    /// Binds queue `queueNumber`. Fails with EBUSY-like errors if another process holds it.
    init(queueNumber: UInt16, maxLength: UInt32, receiveBufferBytes: Int, logger: Logger) throws(SystemError) {
        self.queueNumber = queueNumber
        self.logger = logger
        self.socket = try NetlinkSocket(family: .netfilter)
        let bufferSize = cnfq_socket_buffer_size()
        receiveBuffers = (0..<Self.batchSize).map { _ in .allocate(byteCount: bufferSize, alignment: 16) }
        verdictBuffer = .allocate(byteCount: 512 * 1024, alignment: 16)

        try socket.setReceiveBuffer(bytes: receiveBufferBytes)
        // A batch of verdicts carrying rewritten GSO packets (up to 64 KiB each) fills the 512 KiB verdict
        // buffer; a netlink send larger than the send buffer fails with EMSGSIZE, so make room for it.
        do {
            try socket.setOption(level: SOL_SOCKET, name: SO_SNDBUFFORCE, value: CInt(2 << 20), call: "SO_SNDBUFFORCE")
        } catch {
            try socket.setOption(level: SOL_SOCKET, name: SO_SNDBUF, value: CInt(2 << 20), call: "SO_SNDBUF")
        }
        try socket.setOption(level: SOL_NETLINK, name: NETLINK_NO_ENOBUFS, value: 1, call: "NETLINK_NO_ENOBUFS")
        try configure("bind queue \(queueNumber)") { header in
            nfq_nlmsg_cfg_put_cmd(header, UInt16(AF_INET), UInt8(NFQNL_CFG_CMD_BIND.rawValue))
        }
        try configure("set copy mode, GSO and queue length") { header in
            nfq_nlmsg_cfg_put_params(header, UInt8(NFQNL_COPY_PACKET.rawValue), 0xffff)
            nfq_nlmsg_cfg_put_qmaxlen(header, maxLength)
            // Not NFQA_CFG_F_FAIL_OPEN: a full queue must not let a rewritten flow's packets pass untouched.
            mnl_attr_put_u32(header, UInt16(NFQA_CFG_FLAGS.rawValue), UInt32(NFQA_CFG_F_GSO).bigEndian)
            mnl_attr_put_u32(header, UInt16(NFQA_CFG_MASK.rawValue), UInt32(NFQA_CFG_F_GSO).bigEndian)
        }
    }

    deinit {
        receiveBuffers.forEach { $0.deallocate() }
        verdictBuffer.deallocate()
    }

    /// The descriptor to poll for readability.
    var descriptor: CInt { socket.descriptor }

    /// Stops the kernel queueing to this socket. Packets still queued are dropped by the kernel, so call
    /// this only after the rules are gone, the last batch has its verdicts and `acceptAllHeld` ran.
    func unbind() {
        do {
            try configure("unbind queue \(queueNumber)") { header in
                nfq_nlmsg_cfg_put_cmd(header, UInt16(AF_INET), UInt8(NFQNL_CFG_CMD_UNBIND.rawValue))
            }
        } catch {
            logger.warning("could not unbind the queue", metadata: ["nfq.queue": "\(queueNumber)", "error": "\(error)"])
        }
    }

    // MARK: Receiving

    /// Takes every packet waiting (up to one `recvmmsg` batch), hands each to `handle`, then sends all
    /// their verdicts. Returns how many packets were handled; 0 means nothing was waiting.
    func drainOnce(_ handle: (inout QueuedPacket) -> PacketVerdict) throws(SystemError) -> Int {
        var headers = [cnfq_mmsghdr](repeating: cnfq_mmsghdr(), count: Self.batchSize)
        var vectors = receiveBuffers.map { iovec(iov_base: $0.baseAddress, iov_len: $0.count) }
        let received: CInt = vectors.withUnsafeMutableBufferPointer { iov in
            for index in 0..<Self.batchSize {
                headers[index].msg_hdr.msg_iov = iov.baseAddress! + index
                headers[index].msg_hdr.msg_iovlen = 1
            }
            while true {
                let count = cnfq_recvmmsg(socket.descriptor, &headers, UInt32(Self.batchSize), CNFQ_MSG_DONTWAIT)
                if count >= 0 || Glibc.errno != EINTR { return count }
            }
        }
        if received < 0 {
            let code = Errno(rawValue: Glibc.errno)
            if code == .wouldBlock { return 0 }
            throw SystemError(call: "recvmmsg(NFQUEUE \(queueNumber))", errno: code)
        }
        var pending: [(id: UInt32, verdict: PacketVerdict, bytes: UnsafeMutableRawBufferPointer)] = []
        for index in 0..<Int(received) {
            let datagram = UnsafeMutableRawBufferPointer(rebasing: receiveBuffers[index][0..<Int(headers[index].msg_len)])
            for message in NetlinkMessages(UnsafeRawBufferPointer(datagram)) {
                if message.type == UInt16(NLMSG_ERROR) {
                    if let code = message.errorCode, code != 0 { reportKernelError(code) }
                    continue
                }
                guard var packet = packet(in: message, of: datagram) else { continue }
                counters.received += 1
                let verdict = handle(&packet)
                pending.append((packet.id, verdict, packet.bytes))
            }
        }
        try sendVerdicts(pending)
        return pending.count
    }

    /// The packet a message carries, its bytes inside `datagram`. Nil for a message that carries no packet
    /// id (the only case where no verdict can be given) or that is malformed.
    private func packet(in message: NetlinkMessage, of datagram: UnsafeMutableRawBufferPointer) -> QueuedPacket? {
        guard let metadata = QueuedPacketMetadata(decoding: message) else {
            counters.undecodable += 1
            logger.warning("queue message without a packet header", metadata: ["nfq.queue": "\(queueNumber)"])
            return nil
        }
        let start = message.payloadOffset + metadata.payload.lowerBound
        let bytes = UnsafeMutableRawBufferPointer(rebasing: datagram[start..<(start + metadata.payload.count)])
        return QueuedPacket(metadata: metadata, bytes: bytes)
    }

    // MARK: Verdicts

    private func sendVerdicts(_ pending: [(id: UInt32, verdict: PacketVerdict, bytes: UnsafeMutableRawBufferPointer)])
        throws(SystemError)
    {
        guard let last = pending.last else { return }
        if heldPackets.isEmpty && pending.allSatisfy({ $0.verdict == .accept }) {
            // One message accepts every packet up to and including the last id: all of them are ours.
            appendVerdict(type: NFQNL_MSG_VERDICT_BATCH, id: last.id, verdict: NF_ACCEPT, payload: nil)
            counters.accepted += pending.count
        } else {
            for entry in pending {
                switch entry.verdict {
                case .accept:
                    counters.accepted += 1
                    appendVerdict(type: NFQNL_MSG_VERDICT, id: entry.id, verdict: NF_ACCEPT, payload: nil)
                case .acceptModified(let length):
                    counters.modified += 1
                    let payload = UnsafeRawBufferPointer(rebasing: entry.bytes[0..<min(length, entry.bytes.count)])
                    try appendVerdictFlushingIfFull(id: entry.id, verdict: NF_ACCEPT, payload: payload)
                case .replace(let bytes):
                    counters.modified += 1
                    if verdictBytes + bytes.count + 256 > verdictBuffer.count { try flushVerdicts() }
                    bytes.withUnsafeBytes { appendVerdict(type: NFQNL_MSG_VERDICT, id: entry.id, verdict: NF_ACCEPT, payload: $0) }
                case .drop:
                    counters.dropped += 1
                    appendVerdict(type: NFQNL_MSG_VERDICT, id: entry.id, verdict: NF_DROP, payload: nil)
                case .hold(let flow):
                    if !holding {
                        counters.accepted += 1
                        appendVerdict(type: NFQNL_MSG_VERDICT, id: entry.id, verdict: NF_ACCEPT, payload: nil)
                    } else if heldPackets.hold(entry.id, for: flow) {
                        counters.held += 1
                    } else {
                        acceptOverCap(entry.id)
                    }
                }
                if verdictBytes > verdictBuffer.count - 256 { try flushVerdicts() }
            }
        }
        try flushVerdicts()
    }

    /// The cap of held packets is reached: this one passes now, and the engine's later release finds
    /// fewer packets than it held (at worst none), which is harmless.
    private func acceptOverCap(_ id: UInt32) {
        counters.heldOverflow += 1
        counters.accepted += 1
        appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: NF_ACCEPT, payload: nil)
        if !heldOverflowLogged {
            heldOverflowLogged = true
            logger.warning("too many packets held at once; accepting the rest without waiting (logged once)", metadata: [
                "nfq.queue": "\(queueNumber)", "nfq.held-cap": "\(heldPackets.capacity)",
            ])
        }
    }

    /// Sends the verdicts of packets held earlier: for each release, the first packet held for its flow
    /// gets its verdict and every later one NF_DROP (HeldPackets.swift). Call it right after the verdicts
    /// of the input that produced the releases, before that input's rule changes.
    func release(_ releases: [HeldPacketRelease]) throws(SystemError) {
        guard !releases.isEmpty else { return }
        for release in releases {
            for (id, verdict) in heldPackets.release(release) {
                switch verdict {
                case .replace(let bytes):
                    counters.modified += 1
                    if verdictBytes + bytes.count + 256 > verdictBuffer.count { try flushVerdicts() }
                    bytes.withUnsafeBytes { appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: NF_ACCEPT, payload: $0) }
                case .drop:
                    counters.dropped += 1
                    appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: NF_DROP, payload: nil)
                case .accept, .acceptModified, .hold:
                    counters.accepted += 1
                    appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: NF_ACCEPT, payload: nil)
                }
                if verdictBytes > verdictBuffer.count - 256 { try flushVerdicts() }
            }
        }
        try flushVerdicts()
    }

    /// From now on a packet the handler holds is accepted at once (at shutdown).
    func stopHolding() {
        holding = false
    }

    /// Accepts every packet still held, unchanged: at shutdown, before the rules go (deleting them makes
    /// the kernel drop every queued packet), so that no application's SYN is lost with rackd.
    func acceptAllHeld() throws(SystemError) {
        for id in heldPackets.releaseAll() {
            counters.accepted += 1
            appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: NF_ACCEPT, payload: nil)
            if verdictBytes > verdictBuffer.count - 256 { try flushVerdicts() }
        }
        try flushVerdicts()
    }

    /// Packets held now.
    var heldCount: Int { heldPackets.count }

    private func appendVerdictFlushingIfFull(id: UInt32, verdict: Int32, payload: UnsafeRawBufferPointer) throws(SystemError) {
        if verdictBytes + payload.count + 256 > verdictBuffer.count { try flushVerdicts() }
        appendVerdict(type: NFQNL_MSG_VERDICT, id: id, verdict: verdict, payload: payload)
    }

    private func appendVerdict(type: nfqnl_msg_types, id: UInt32, verdict: Int32, payload: UnsafeRawBufferPointer?) {
        let start = (verdictBuffer.baseAddress! + verdictBytes).assumingMemoryBound(to: CChar.self)
        let header = nfq_nlmsg_put(start, CInt(type.rawValue), UInt32(queueNumber))!
        nfq_nlmsg_verdict_put(header, CInt(bitPattern: id), verdict)
        if let payload { nfq_nlmsg_verdict_put_pkt(header, payload.baseAddress, UInt32(payload.count)) }
        verdictBytes += (Int(header.pointee.nlmsg_len) + 3) & ~3
    }

    private func flushVerdicts() throws(SystemError) {
        guard verdictBytes > 0 else { return }
        defer { verdictBytes = 0 }
        try socket.send(UnsafeRawBufferPointer(rebasing: verdictBuffer[0..<verdictBytes]), call: "NFQUEUE verdicts")
    }

    private func reportKernelError(_ code: Int32) {
        counters.kernelErrors += 1
        logger.warning("the kernel refused a queue message", metadata: [
            "nfq.queue": "\(queueNumber)", "error": "\(Errno(rawValue: -code))",
        ])
    }

    // MARK: Configuration

    /// Sends one NFQNL_MSG_CONFIG message and waits for its ack.
    private func configure(_ what: String, _ fill: (UnsafeMutablePointer<nlmsghdr>) -> Void) throws(SystemError) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 16)
        defer { buffer.deallocate() }
        let header = nfq_nlmsg_put(buffer.baseAddress!.assumingMemoryBound(to: CChar.self),
                                   CInt(NFQNL_MSG_CONFIG.rawValue), UInt32(queueNumber))!
        header.pointee.nlmsg_flags |= UInt16(NLM_F_ACK)
        let sequence = socket.nextSequence()
        header.pointee.nlmsg_seq = sequence
        fill(header)
        try socket.send(UnsafeRawBufferPointer(rebasing: buffer[0..<Int(header.pointee.nlmsg_len)]), call: "NFQUEUE \(what)")
        do {
            try socket.awaitAcknowledgment(of: sequence, call: "NFQUEUE \(what)")
        } catch where error.errno == .resourceBusy
            || (error.errno == .notPermitted && ProcessCapabilities.effectiveHasNetAdmin())
        {
            // The kernel answers EPERM to a bind of a queue another socket holds (nfnetlink_queue.c,
            // nfqnl_recv_config), the same errno as for a missing CAP_NET_ADMIN: tell the two apart.
            throw SystemError(
                call: error.call, errno: error.errno,
                hint: "queue \(queueNumber) is already taken in this network namespace: another rackd (or another "
                    + "NFQUEUE program) runs here and is left untouched. Stop it first, or set a different 'queue' in rackd.conf")
        }
    }
}
