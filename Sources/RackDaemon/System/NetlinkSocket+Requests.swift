// rackd — requests over a netlink socket: one message with a fresh sequence number, the kernel's
// acknowledgment of it, and dumps. Replies are read with the pure walk of Decoding/NetlinkMessages.swift.

import CLinuxNetlink
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSocket {
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
        let sequence = nextSequence()
        var header = nlmsghdr()
        header.nlmsg_len = UInt32(MemoryLayout<nlmsghdr>.size + body.count)
        header.nlmsg_type = type
        header.nlmsg_flags = UInt16(NLM_F_REQUEST) | flags
        header.nlmsg_seq = sequence
        // Netlink bodies are C structs aligned to at most 4 bytes: they follow the 16-byte header directly.
        let message = withUnsafeBytes(of: header) { Array($0) } + body
        var failure: SystemError?
        message.withUnsafeBytes { bytes in
            do throws(SystemError) { try send(bytes, call: call) } catch { failure = error }
        }
        if let failure { throw failure }
        return sequence
    }

    /// Sends one request with `NLM_F_ACK` and waits for the kernel's answer. Needs a blocking socket
    /// without multicast groups. Throws the kernel's error, if any.
    func requestWithAcknowledgment(type: UInt16, flags: UInt16, body: [UInt8], call: String) throws(SystemError) {
        let expected = try sendRequest(type: type, flags: UInt16(NLM_F_ACK) | flags, bytes: body, call: call)
        try awaitAcknowledgment(of: expected, call: "\(family.name) \(call)")
    }

    /// Waits for the kernel's acknowledgment (`NLMSG_ERROR`) of the request sent with `sequence`; other
    /// messages are passed over. Throws the kernel's error as `call`'s, if any. Needs a blocking socket.
    func awaitAcknowledgment(of sequence: UInt32, call: String) throws(SystemError) {
        precondition(!isNonBlocking, "acknowledged requests run on a blocking socket")
        while true {
            guard let datagram = try receive(call: call) else { continue }
            for reply in NetlinkMessages(datagram)
            where reply.sequence == sequence && reply.type == UInt16(NLMSG_ERROR) {
                let code = reply.errorCode ?? -EPROTO
                if code == 0 { return }
                throw SystemError(call: call, errno: Errno(rawValue: -code))
            }
        }
    }

    /// Runs one dump: sends a `NLM_F_DUMP` request and hands each reply message to `handle`, until
    /// `NLMSG_DONE`. Needs a blocking socket without multicast groups. Returns false when the kernel flagged
    /// the dump as inconsistent (`NLM_F_DUMP_INTR`: the table changed while it was read).
    ///
    /// After a thrown error the socket may still hold the rest of the dump; open a new socket.
    func dump<Body: BitwiseCopyable>(
        type: UInt16, body: Body, call: String, _ handle: (NetlinkMessage) -> Void
    ) throws(SystemError) -> Bool {
        try dump(type: type, bytes: withUnsafeBytes(of: body) { Array($0) }, call: call, handle)
    }

    /// Runs one dump whose request body (fixed header and attributes) is already encoded; as above.
    func dump(
        type: UInt16, bytes body: [UInt8], call: String, _ handle: (NetlinkMessage) -> Void
    ) throws(SystemError) -> Bool {
        precondition(!isNonBlocking, "dumps run on a blocking socket")
        let sequence = try sendRequest(type: type, flags: UInt16(NLM_F_DUMP), bytes: body, call: call)
        var consistent = true
        while true {
            guard let datagram = try receive(call: call) else { continue }
            for message in NetlinkMessages(datagram) where message.sequence == sequence && message.portID == portID {
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
                    let code = message.errorCode ?? -EPROTO
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
