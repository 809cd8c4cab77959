// rackd — one nftables transaction: a netlink batch sent at once and checked message by message.
//
// The kernel applies a batch atomically: if any message fails, nothing in it takes effect. Every
// message asks for an ack, so a failure can be traced to the step that caused it (for example the
// native `queue` expression missing from the kernel).

import CNftables

#if canImport(Glibc)
import Glibc
#endif

/// A failed nftables transaction: which step failed and how.
public struct NftablesError: Error, CustomStringConvertible {
    /// The step that failed, e.g. "add rule output: queue TCP SYNs (native queue)".
    var step: String
    var error: SystemError

    public var description: String { "nftables: \(step): \(error)" }
}

/// Builds a batch of nftables messages and commits it over a netfilter netlink socket.
final class NftablesBatch {
    private var buffer: UnsafeMutableRawBufferPointer
    private let batch: OpaquePointer
    private var sequence: UInt32
    private var steps: [UInt32: String] = [:]

    /// - Parameter capacity: the batch's largest size in bytes. The default holds rackd's whole ruleset;
    ///   a batch that also carries set elements needs more. `append` checks.
    init(firstSequence: UInt32, capacity: Int = 256 * 1024) {
        buffer = .allocate(byteCount: capacity, alignment: 16)
        batch = mnl_nlmsg_batch_start(buffer.baseAddress, buffer.count)
        sequence = firstSequence
        nftnl_batch_begin(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), nextSequence())
        _ = mnl_nlmsg_batch_next(batch)
    }

    deinit {
        mnl_nlmsg_batch_stop(batch)
        buffer.deallocate()
    }

    /// Appends one message. `build` writes it at the pointer it gets, using the header fields given.
    /// `acknowledged` false: no ack when it succeeds (the kernel reports a failure all the same), so that
    /// thousands of set elements do not queue thousands of acks past the socket's receive buffer.
    func append(
        _ step: String,
        type: nf_tables_msg_types,
        flags: Int32,
        family: Int32 = Int32(NFPROTO_INET),
        acknowledged: Bool = true,
        build: (UnsafeMutablePointer<nlmsghdr>) -> Void
    ) {
        let seq = nextSequence()
        steps[seq] = step
        let header = nftnl_nlmsg_build_hdr(
            mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self),
            UInt16(type.rawValue), UInt16(family), UInt16(flags | (acknowledged ? NLM_F_ACK : 0)), seq
        )!
        build(header)
        precondition(mnl_nlmsg_batch_next(batch), "nftables batch buffer overflow: \(step) did not fit \(buffer.count) bytes")
    }

    /// Sends the batch and waits for the kernel's verdict on each message.
    func commit(on socket: NetlinkSocket) throws(NftablesError) {
        nftnl_batch_end(mnl_nlmsg_batch_current(batch).assumingMemoryBound(to: CChar.self), nextSequence())
        _ = mnl_nlmsg_batch_next(batch)
        let head = UnsafeRawBufferPointer(start: mnl_nlmsg_batch_head(batch), count: mnl_nlmsg_batch_size(batch))
        // netlink refuses a datagram larger than the socket's send buffer (EMSGSIZE); the default (about
        // 200 KiB) holds the ruleset and some thousands of elements.
        if head.count > Self.defaultSendBufferBytes {
            try? socket.setOption(level: SOL_SOCKET, name: SO_SNDBUFFORCE, value: CInt(2 * head.count), call: "SO_SNDBUFFORCE")
        }
        do {
            try socket.send(head, call: "nftables batch")
        } catch {
            throw NftablesError(step: "send batch", error: error)
        }
        try collectAcks(on: socket)
    }

    /// The kernel processes a batch inside sendmsg, so every ack and error is already queued when send
    /// returns: drain without blocking and report the first failure.
    private func collectAcks(on socket: NetlinkSocket) throws(NftablesError) {
        var firstFailure: NftablesError? = nil
        while true {
            let datagram: UnsafeRawBufferPointer?
            do {
                datagram = try socket.receive(waiting: false, call: "nftables acks")
            } catch {
                throw NftablesError(step: "read acks", error: error)
            }
            guard let datagram else { break }
            for message in NetlinkMessages(datagram) {
                guard let code = message.errorCode, code != 0, firstFailure == nil else { continue }
                firstFailure = NftablesError(
                    step: steps[message.sequence] ?? "message \(message.sequence)",
                    error: SystemError(call: "nftables commit", errno: .init(rawValue: -code), hint: nil)
                )
            }
        }
        if let firstFailure { throw firstFailure }
    }

    /// Less than the kernel's default `wmem_default` (212,992 bytes), which bounds a netlink datagram.
    private static let defaultSendBufferBytes = 160 * 1024

    private func nextSequence() -> UInt32 {
        defer { sequence &+= 1 }
        return sequence
    }
}
