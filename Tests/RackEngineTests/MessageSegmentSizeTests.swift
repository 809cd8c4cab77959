// rackd — rackd's messages outside the SYN and SYN-ACK ride on segments the input rule that looks for them
// matches: `@th,160,8 == 253 meta length <= 120` (Sources/RackDaemon/Firewall/RackdRuleset+Rules.swift,
// `messageSegmentMaximumLength`; docs/protocol.md, "Principles"). A message that grew past the length, one
// sent with payload, or one whose option is not the first, right after the fixed TCP header, would never
// reach the peer's rackd on a healthy connection.

import Testing
@testable import RackEngine

@Suite struct MessageSegmentSizeTests {
    /// The rule's limit, in bytes of IP packet.
    static let ruleLimit = 120

    /// Where the rule looks for the option's kind: the first byte after the fixed TCP header.
    static let firstOptionOffset = 20

    @Test(arguments: [4, 6])
    func everyConsumedMessageFitsTheRule(family: Int) throws {
        let largest: [RacksMessage] = [
            .key(publicKey: [UInt8](repeating: 7, count: 32), haveYourKey: true, wantReply: true),
            .challenge(nonce: [UInt8](repeating: 1, count: 16)),
            .response(nonce: [UInt8](repeating: 1, count: 16), mac: [UInt8](repeating: 2, count: 16)),
            .confirm(mac: [UInt8](repeating: 3, count: 16)),
        ]
        let connection = ConnectionTransitionTests.healthy()
        for message in largest {
            var segment = connection.controlSegment(message)
            if family == 6 {
                segment.source = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:1::2")!), port: 40_000)
                segment.destination = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:2::2")!), port: 22)
            }
            #expect(segment.payload.isEmpty, "\(message) rides without payload")
            #expect(segment.bufferLength <= Self.ruleLimit, "\(message): \(segment.bufferLength) bytes over IPv\(family)")
            var bytes = [UInt8](repeating: 0, count: segment.bufferLength)
            try bytes.withUnsafeMutableBytes { try segment.emit(into: $0) }
            let tcpStart = family == 4 ? 20 : 40
            #expect(bytes[tcpStart + Self.firstOptionOffset] == 253, "\(message): its option is the first one")
        }
    }
}
