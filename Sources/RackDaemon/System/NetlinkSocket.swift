// rackd — a netfilter netlink socket, with the options the queue and the rule installer need.
//
// Both the NFQUEUE reader and the nftables installer talk NETLINK_NETFILTER. This type owns the
// descriptor and nothing else: message building stays in libnftnl / libnetfilter_queue.

import CNftables
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An owned `AF_NETLINK`/`NETLINK_NETFILTER` socket bound to a kernel-chosen port id.
final class NetlinkSocket: NetlinkDescriptorOwner {
    let descriptor: CInt
    /// The port id the kernel assigned; replies and acks carry it.
    let portID: UInt32
    var familyName: String { "NETLINK_NETFILTER" }

    init() throws(SystemError) {
        (descriptor, portID) = try openNetlinkSocket(protocol: NETLINK_NETFILTER, name: "NETLINK_NETFILTER")
    }

    deinit { close(descriptor) }

    /// Sends one datagram holding one or more netlink messages.
    func send(_ bytes: UnsafeRawBufferPointer, call: String) throws(SystemError) {
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        let sent = try syscall("sendto(\(call))") {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        if sent != bytes.count {
            throw SystemError(call: "sendto(\(call))", errno: .messageTooLong, hint: "short netlink send")
        }
    }

    /// Receives one datagram. Returns nil when `nonBlocking` is set and nothing is waiting.
    func receive(into buffer: UnsafeMutableRawBufferPointer, nonBlocking: Bool, call: String) throws(SystemError) -> Int? {
        while true {
            let count = recv(descriptor, buffer.baseAddress, buffer.count, nonBlocking ? CNFT_MSG_DONTWAIT : 0)
            if count >= 0 { return count }
            let code = Errno(rawValue: Glibc.errno)
            switch code {
            case .interrupted: continue
            case .wouldBlock where nonBlocking: return nil
            default: throw SystemError(call: "recv(\(call))", errno: code)
            }
        }
    }
}

/// One message in a netlink datagram, as far as rackd needs to look at it.
struct NetlinkMessage {
    static let errorType: UInt16 = 2  // NLMSG_ERROR
    static let doneType: UInt16 = 3  // NLMSG_DONE

    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// For an `NLMSG_ERROR` message: 0 for an ack, otherwise a negative errno.
    var errorCode: Int32?
    /// The offset and length of the whole message within the datagram.
    var range: Range<Int>

    /// Splits a datagram into messages, stopping at the first malformed header.
    static func split(_ datagram: UnsafeRawBufferPointer) -> [NetlinkMessage] {
        var messages: [NetlinkMessage] = []
        var offset = 0
        let headerSize = 16
        while datagram.count - offset >= headerSize {
            let length = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= headerSize, length <= datagram.count - offset else { break }
            let type = datagram.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            var message = NetlinkMessage(
                type: type,
                flags: datagram.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self),
                sequence: datagram.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
                errorCode: nil,
                range: offset..<(offset + length)
            )
            if type == errorType, length >= headerSize + 4 {
                message.errorCode = datagram.loadUnaligned(fromByteOffset: offset + headerSize, as: Int32.self)
            }
            messages.append(message)
            offset += (length + 3) & ~3
        }
        return messages
    }
}
