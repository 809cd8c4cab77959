// rackd — the netlink message and attribute walks (Decoding/NetlinkMessages.swift,
// Decoding/NetlinkAttributes.swift) over recorded kernel bytes, cut and corrupted.

import RackDaemon
import Testing

@Suite struct NetlinkWalkTests {
    static let recordings = [
        "inet-diag-ipv4.bin", "inet-diag-ipv6.bin", "route-links.bin", "route-addresses.bin", "route-dad-done.bin",
        "route-address-added.bin", "route-address-removed.bin", "route-link-down.bin", "route-link-up.bin",
        "nfqueue-syn.bin", "nfqueue-data-truncated.bin",
        "nftables-install.bin", "nftables-delete-element.bin", "nftables-flush-ruleset.bin",
    ]
    static let dumps = ["inet-diag-ipv4.bin", "inet-diag-ipv6.bin", "route-links.bin", "route-addresses.bin"]

    /// Where each message of `bytes` starts, and where the last ends.
    static func boundaries(_ bytes: [UInt8]) -> [Int] {
        Fixture.messages(in: bytes).reduce(into: [0]) { ends, message in ends.append(ends.last! + message.count) }
    }

    @Test(arguments: recordings)
    func everyRecordingWalksWhole(_ name: String) throws {
        let bytes = try Fixture.bytes(name)
        let messages = Fixture.messages(in: bytes)
        #expect(!messages.isEmpty)
        #expect(messages.map(\.count).reduce(0, +) == bytes.count)
    }

    @Test(arguments: dumps)
    func dumpsEndWithDone(_ name: String) throws {
        let last = try #require(Fixture.messages(in: try Fixture.bytes(name)).last)
        try Fixture.withMessage(last) { #expect($0.type == 3) }  // NLMSG_DONE
    }

    /// Cut anywhere, the walk yields the whole messages before the cut and says whether bytes were left.
    @Test(arguments: recordings)
    func cutBytesYieldTheWholeMessagesBeforeTheCut(_ name: String) throws {
        let bytes = try Fixture.bytes(name)
        let ends = Self.boundaries(bytes)
        let full = Fixture.messages(in: bytes)
        for length in 0..<bytes.count {
            bytes[0..<length].withUnsafeBytes { buffer in
                var walk = NetlinkMessages(buffer)
                var count = 0
                while let message = walk.next() {
                    #expect(message.payload.count + NetlinkMessage.headerSize == full[count].count)
                    count += 1
                }
                #expect(ends[count] <= length && length < ends[count + 1])
                #expect(walk.isMalformed == (length != ends[count]))
            }
        }
    }

    @Test(arguments: [UInt32(0), 15, 18, 0xFFFF_FFFF])
    func aBadMessageLengthStopsTheWalk(_ length: UInt32) throws {
        var bytes = try Fixture.bytes("route-addresses.bin")
        withUnsafeBytes(of: length) { bytes.replaceSubrange(0..<4, with: $0) }
        bytes.removeSubrange(17...)
        bytes.withUnsafeBytes { buffer in
            var walk = NetlinkMessages(buffer)
            let first = walk.next()
            #expect(first == nil)
            #expect(walk.isMalformed)
        }
    }

    @Test func errorMessagesCarryTheirCode() throws {
        // nlmsghdr (length 36, NLMSG_ERROR) and struct nlmsgerr: error -16 (EBUSY), then the request's header.
        var bytes: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0]
        withUnsafeBytes(of: Int32(-16)) { bytes += $0 }
        bytes += [UInt8](repeating: 0, count: 16)
        try Fixture.withMessage(bytes) { message in
            #expect(message.errorCode == -16)
            #expect(message.sequence == 7)
        }
        try Fixture.withMessage(Fixture.cut(bytes, payloadLength: 3)) { #expect($0.errorCode == nil) }
    }

    @Test(arguments: [UInt16(0), 3, 0xFFFF])
    func aBadAttributeLengthStopsTheWalk(_ length: UInt16) throws {
        // The first address message: nlmsghdr, ifaddrmsg (8 bytes), then its first attribute.
        let message = try #require(Fixture.messages(in: try Fixture.bytes("route-addresses.bin")).first)
        try Fixture.withMessage(message) { message in
            var walk = NetlinkAttributes(message.payload, after: 8)
            var count = 0
            while walk.next() != nil { count += 1 }
            #expect(count > 1)
            #expect(!walk.isMalformed)
        }
        try Fixture.withMessage(Fixture.setting(length, at: 16 + 8, in: message)) { message in
            var walk = NetlinkAttributes(message.payload, after: 8)
            let first = walk.next()
            #expect(first == nil)
            #expect(walk.isMalformed)
        }
    }

    @Test func attributeTypesLoseTheirFlags() throws {
        var payload: [UInt8] = [8, 0, 0x05, 0x80, 1, 2, 3, 4]  // NLA_F_NESTED | 5, four bytes
        payload.withUnsafeBytes { buffer in
            var walk = NetlinkAttributes(buffer, after: 0)
            let attribute = walk.next()
            #expect(attribute?.type == 5)
            #expect(attribute?.bigEndianInteger(as: UInt32.self) == 0x0102_0304)
            #expect(attribute?.bigEndianInteger(as: UInt16.self) == nil)
        }
        payload[3] = 0x40  // NLA_F_NET_BYTEORDER
        payload.withUnsafeBytes { buffer in
            var walk = NetlinkAttributes(buffer, after: 0)
            let attribute = walk.next()
            #expect(attribute?.type == 5)
        }
    }
}
