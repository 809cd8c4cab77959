// rackd — endpoints to `struct sockaddr_in`/`sockaddr_in6` and back (System/SocketAddress.swift): network
// byte order, the family, the length, and refusal of what is not an IP endpoint.

import Glibc
@testable import RackDaemon
import RackEngine
import Testing

@Suite struct SocketAddressTests {
    @Test func ipv4RoundTripsInNetworkOrder() throws {
        let endpoint = TCPEndpoint(address: .v4(IPv4Address(10, 2, 0, 2)), port: 7101)
        let address = SocketAddress(endpoint)
        #expect(address.family == AF_INET)
        #expect(Int(address.length) == MemoryLayout<sockaddr_in>.size)
        let bytes = withUnsafeBytes(of: address.storage) { Array($0.prefix(8)) }
        #expect(bytes == [UInt8(AF_INET), 0, 0x1b, 0xbd, 10, 2, 0, 2])
        #expect(SocketAddress.endpoint(of: address.storage, length: address.length) == endpoint)
    }

    @Test func ipv6RoundTrips() throws {
        let endpoint = TCPEndpoint(address: try #require(IPAddress(parsing: "fd00:2::2")), port: 443)
        let address = SocketAddress(endpoint)
        #expect(address.family == AF_INET6)
        #expect(Int(address.length) == MemoryLayout<sockaddr_in6>.size)
        #expect(SocketAddress.endpoint(of: address.storage, length: address.length) == endpoint)
    }

    @Test func otherFamiliesAndShortLengthsAreRefused() {
        let address = SocketAddress(TCPEndpoint(address: .v4(IPv4Address(127, 0, 0, 1)), port: 1))
        #expect(SocketAddress.endpoint(of: address.storage, length: 4) == nil)
        var unix = sockaddr_storage()
        unix.ss_family = sa_family_t(AF_UNIX)
        #expect(SocketAddress.endpoint(of: unix, length: socklen_t(MemoryLayout<sockaddr_storage>.size)) == nil)
    }
}
