// rackd — keeping a departed local address on `lo` while a connection still uses it (docs/roaming.md).
//
// When an address leaves the host, a socket bound to it can send nothing: its route lookup fails
// (a source address that is not local) before netfilter sees the packet. While the engine holds such
// a connection, the address is added back as a host route on the loopback device: /32 or /128, no
// prefix route, no duplicate address detection. IPv6 copies are deprecated (preferred lifetime 0), so
// source address selection never picks them for new connections. The link monitor ignores `lo`, so
// these never look like the address coming back.

import CLinuxNetlink
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

final class LoopbackAddresses {
    private let socket: NetlinkSocket
    private let loopbackIndex: UInt32
    /// What this process added and has not removed.
    private(set) var held: Set<IPAddress> = []

    init() throws(SystemError) {
        socket = try NetlinkSocket(family: .route)
        try socket.setReceiveTimeout(.seconds(2))
        let index = if_nametoindex("lo")
        guard index != 0 else { throw SystemError.current("if_nametoindex(lo)") }
        loopbackIndex = index
    }

    /// Adds `address` to `lo`. An address already there (EEXIST) counts as added.
    func hold(_ address: IPAddress) throws(SystemError) {
        do {
            try socket.requestWithAcknowledgment(
                type: UInt16(RTM_NEWADDR), flags: UInt16(NLM_F_CREATE) | UInt16(NLM_F_EXCL),
                body: request(for: address, lifetimes: true), call: "RTM_NEWADDR \(address)/lo")
        } catch where error.errno == .fileExists {
        }
        held.insert(address)
    }

    /// Removes `address` from `lo`. One already gone (EADDRNOTAVAIL) counts as removed.
    func release(_ address: IPAddress) throws(SystemError) {
        held.remove(address)
        do {
            try socket.requestWithAcknowledgment(
                type: UInt16(RTM_DELADDR), flags: 0, body: request(for: address, lifetimes: false),
                call: "RTM_DELADDR \(address)/lo")
        } catch where error.errno == .addressNotAvailable {
        }
    }

    /// Removes everything this process added (at shutdown).
    func releaseAll() throws(SystemError) {
        for address in held { try release(address) }
    }

    /// ifaddrmsg, then IFA_LOCAL, IFA_ADDRESS, IFA_FLAGS and (IPv6) IFA_CACHEINFO.
    private func request(for address: IPAddress, lifetimes: Bool) -> [UInt8] {
        let isIPv4 = address.isIPv4
        var message = ifaddrmsg()
        message.ifa_family = UInt8(isIPv4 ? AF_INET : AF_INET6)
        message.ifa_prefixlen = isIPv4 ? 32 : 128
        message.ifa_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
        message.ifa_index = loopbackIndex
        var body = withUnsafeBytes(of: message) { Array($0) }
        body += Self.attribute(UInt16(IFA_LOCAL), address.bytes)
        body += Self.attribute(UInt16(IFA_ADDRESS), address.bytes)
        let flags = UInt32(IFA_F_NODAD) | UInt32(IFA_F_NOPREFIXROUTE)
        body += Self.attribute(UInt16(IFA_FLAGS), withUnsafeBytes(of: flags) { Array($0) })
        if lifetimes && !isIPv4 {
            var info = ifa_cacheinfo()
            info.ifa_prefered = 0
            info.ifa_valid = UInt32.max
            body += Self.attribute(UInt16(IFA_CACHEINFO), withUnsafeBytes(of: info) { Array($0) })
        }
        return body
    }

    private static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var header = rtattr()
        header.rta_len = UInt16(MemoryLayout<rtattr>.size + payload.count)
        header.rta_type = type
        let bytes = withUnsafeBytes(of: header) { Array($0) } + payload
        return bytes + [UInt8](repeating: 0, count: netlinkAligned(bytes.count) - bytes.count)
    }
}
