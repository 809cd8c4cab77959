// rackd — IP endpoints as the socket calls take and give them (`struct sockaddr_in`, `sockaddr_in6`).
//
// The engine's `TCPEndpoint` is an address and a port; the kernel's form is a family-tagged structure in
// network byte order. The rocks sockets (Rocks/) are the only IP sockets rackd binds, connects or reads
// from, so this is where the two meet.

import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// An endpoint in `sockaddr_storage`, ready for bind(2), connect(2) and sendto(2).
struct SocketAddress {
    private(set) var storage = sockaddr_storage()
    private(set) var length: socklen_t

    init(_ endpoint: TCPEndpoint) {
        switch endpoint.address {
        case .v4(let address):
            var inet = sockaddr_in()
            inet.sin_family = sa_family_t(AF_INET)
            inet.sin_port = endpoint.port.bigEndian
            inet.sin_addr.s_addr = address.rawValue.bigEndian
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { storage in
                withUnsafeBytes(of: inet) { storage.copyMemory(from: $0) }
            }
        case .v6(let address):
            var inet6 = sockaddr_in6()
            inet6.sin6_family = sa_family_t(AF_INET6)
            inet6.sin6_port = endpoint.port.bigEndian
            withUnsafeMutableBytes(of: &inet6.sin6_addr) { $0.copyBytes(from: address.bytes) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { storage in
                withUnsafeBytes(of: inet6) { storage.copyMemory(from: $0) }
            }
        }
    }

    /// AF_INET or AF_INET6.
    var family: CInt { CInt(storage.ss_family) }

    func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }

    /// The endpoint a kernel-filled `sockaddr_storage` holds; nil for a family other than AF_INET and
    /// AF_INET6, or a length too short for its family.
    static func endpoint(of storage: sockaddr_storage, length: socklen_t) -> TCPEndpoint? {
        withUnsafeBytes(of: storage) { bytes -> TCPEndpoint? in
            switch CInt(storage.ss_family) {
            case AF_INET where Int(length) >= MemoryLayout<sockaddr_in>.size:
                let inet = bytes.loadUnaligned(as: sockaddr_in.self)
                return TCPEndpoint(address: .v4(IPv4Address(rawValue: UInt32(bigEndian: inet.sin_addr.s_addr))),
                                   port: UInt16(bigEndian: inet.sin_port))
            case AF_INET6 where Int(length) >= MemoryLayout<sockaddr_in6>.size:
                let inet6 = bytes.loadUnaligned(as: sockaddr_in6.self)
                let words = withUnsafeBytes(of: inet6.sin6_addr) {
                    (UInt64(bigEndian: $0.loadUnaligned(as: UInt64.self)),
                     UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
                }
                return TCPEndpoint(address: .v6(IPv6Address(high: words.0, low: words.1)),
                                   port: UInt16(bigEndian: inet6.sin6_port))
            default:
                return nil
            }
        }
    }

    /// The local endpoint of socket `descriptor` (getsockname(2)): the port the kernel picked for a bind
    /// to port 0.
    static func localEndpoint(of descriptor: CInt, call: String) throws(SystemError) -> TCPEndpoint {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try syscall(call) {
            withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
            }
        }
        guard let endpoint = endpoint(of: storage, length: length) else {
            throw SystemError(call: call, errno: .addressFamilyNotSupported, hint: "the socket is not an IP socket (a bug in rackd)")
        }
        return endpoint
    }
}
