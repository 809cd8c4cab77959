// rackd — address values and their text forms (dotted quad, RFC 5952).

import RackEngine
import Testing

@Suite struct IPAddressTests {
    @Test func ipv4Text() {
        #expect(IPv4Address(10, 0, 0, 1).description == "10.0.0.1")
        #expect(IPv4Address(rawValue: 0xC0A8_0114).description == "192.168.1.20")
        #expect(IPv4Address(255, 255, 255, 255).bytes == [255, 255, 255, 255])
    }

    @Test(arguments: [
        (IPv6Address(high: 0x2001_0DB8_0000_0000, low: 1), "2001:db8::1"),
        (IPv6Address(high: 0, low: 0), "::"),
        (IPv6Address(high: 0, low: 1), "::1"),
        (IPv6Address(high: 0xFE80_0000_0000_0000, low: 0xA8C2_42FF_FE58_2DC4), "fe80::a8c2:42ff:fe58:2dc4"),
        // A single zero group is not compressed (RFC 5952 §4.2.2).
        (IPv6Address(high: 0x2001_0DB8_0000_0001, low: 0x0001_0001_0001_0001), "2001:db8:0:1:1:1:1:1"),
        // The longest run wins; on a tie, the first (§4.2.3).
        (IPv6Address(high: 0x2001_0000_0000_0001, low: 0x0000_0000_0000_0001), "2001:0:0:1::1"),
        (IPv6Address(high: 0x2001_0DB8_0000_0000, low: 0x0001_0000_0000_0001), "2001:db8::1:0:0:1"),
        (IPv6Address(high: 0x2001_0DB8_0001_0000, low: 0x0000_0000_0000_0000), "2001:db8:1::"),
        // IPv4-mapped addresses use the dotted form (§5).
        (IPv6Address(high: 0, low: 0x0000_FFFF_C000_0201), "::ffff:192.0.2.1"),
    ])
    func ipv6Text(address: IPv6Address, text: String) {
        #expect(address.description == text)
    }

    @Test func ipv6Bytes() {
        let address = IPv6Address(high: 0x2001_0DB8_0000_0000, low: 0x0000_0000_0000_00FF)
        #expect(address.bytes == [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [0xFF])
        #expect(address.groups == [0x2001, 0x0DB8, 0, 0, 0, 0, 0, 0x00FF])
    }

    @Test func endpointsAndFlags() {
        #expect(TCPEndpoint(address: .v4(IPv4Address(10, 0, 0, 1)), port: 80).description == "10.0.0.1:80")
        #expect(TCPEndpoint(address: .v6(IPv6Address(high: 0, low: 1)), port: 22).description == "[::1]:22")
        #expect(TCPFlags([.syn, .ack]).description == "SYN|ACK")
        #expect(TCPFlags().description == "none")
        #expect(TCPFlags(rawValue: 0x0E01).description == "FIN|0xe00")
    }
}
