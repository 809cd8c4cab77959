// rackd — sends the packets rackd builds itself (probes, zero-window ACKs, handshakes, RSTs).
//
// Raw IPv4 and IPv6 sockets with the IP header included (IPPROTO_RAW implies IP_HDRINCL, and on
// Linux ≥ 4.5 the IPv6 equivalent). Every packet carries rackd's firewall mark (SO_MARK), so rackd's
// own rules accept it before any queue rule can see it (zapret's desync_fwmark idea).

import CLinuxNetlink
import CNftables
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

final class RawInjector {
    private let ipv4: CInt
    private let ipv6: CInt
    private(set) var sent = 0
    private(set) var failed = 0

    init(firewallMark: UInt32) throws(SystemError) {
        ipv4 = try Self.openSocket(family: AF_INET, name: "AF_INET", mark: firewallMark)
        do {
            ipv6 = try Self.openSocket(family: AF_INET6, name: "AF_INET6", mark: firewallMark)
        } catch {
            close(ipv4)
            throw error
        }
    }

    deinit {
        close(ipv4)
        close(ipv6)
    }

    private static func openSocket(family: CInt, name: String, mark: UInt32) throws(SystemError) -> CInt {
        let fd = try syscall("socket(\(name), SOCK_RAW, IPPROTO_RAW)") {
            socket(family, CLNL_SOCK_RAW | CLNL_SOCK_CLOEXEC, CInt(IPPROTO_RAW))
        }
        var value = mark
        do {
            try syscall("setsockopt(\(name) raw, SO_MARK)") {
                setsockopt(fd, SOL_SOCKET, SO_MARK, &value, socklen_t(MemoryLayout<UInt32>.size))
            }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Sends a complete IP packet (IPv4 or IPv6, by its version nibble) to the destination in its header.
    func send(_ packet: [UInt8]) throws(SystemError) {
        guard let first = packet.first else { return }
        let result = packet.withUnsafeBytes { sendRaw($0) }
        if result == -2 {
            failed += 1
            throw SystemError(call: "inject", errno: .invalidArgument, hint: "not an IPv4 or IPv6 packet (a bug in rackd)")
        }
        guard result >= 0 else {
            failed += 1
            throw SystemError.current("sendto(raw \(first >> 4 == 4 ? "IPv4" : "IPv6"))")
        }
        sent += 1
    }

    /// sendto(2) on the socket of the packet's family; -1 with errno set, or -2 for a packet of neither.
    private func sendRaw(_ packet: UnsafeRawBufferPointer) -> Int {
        switch packet[0] >> 4 {
        case 4 where packet.count >= 20:
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            memcpy(&address.sin_addr, packet.baseAddress! + 16, 4)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(ipv4, packet.baseAddress, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        case 6 where packet.count >= 40:
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            memcpy(&address.sin6_addr, packet.baseAddress! + 24, 16)
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(ipv6, packet.baseAddress, packet.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        default:
            return -2
        }
    }
}
