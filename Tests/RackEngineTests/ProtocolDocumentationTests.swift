// rackd — docs/protocol.md, checked against the code.
//
// The test reads the document itself: every byte example in it is parsed at test time and must be what
// the code produces and what it parses. If the wire format changes, these tests fail until the document
// is updated with it; an example that no test checks fails them too.

import Foundation
import Testing
@testable import RackEngine

/// The byte examples of docs/protocol.md and its table of message types.
struct ProtocolDocument {
    /// One fenced block of bytes. A nil byte is one the document leaves open (`cs`, `<16-byte nonce>`).
    struct ByteExample {
        /// The heading of the section it stands in.
        var section: String
        var pattern: [UInt8?]

        /// The bytes, when the example leaves none open.
        var bytes: [UInt8]? { pattern.contains(nil) ? nil : pattern.map { $0! } }
    }

    /// A row of the table in "The option".
    struct MessageType {
        var code: UInt8
        var name: String
        var optionLength: Int
    }

    var examples: [ByteExample] = []
    var messageTypes: [MessageType] = []

    /// The examples of one message each: the fully given blocks of "Byte-level examples" that start with
    /// option kind 253.
    var messageExamples: [[UInt8]] {
        examples.filter { $0.section == "Byte-level examples" }.compactMap(\.bytes).filter { $0.first == 253 }
    }

    /// The whole packets of "Byte-level examples".
    var packetExamples: [[UInt8?]] {
        examples.filter { $0.section == "Byte-level examples" && $0.pattern.first != 253 }.map(\.pattern)
    }

    /// The byte examples of one section.
    func examples(in section: String) -> [ByteExample] {
        examples.filter { $0.section == section }
    }

    /// Reads docs/protocol.md from the repository this test file is in.
    static func load(testFile: String = #filePath) throws -> ProtocolDocument {
        var url = URL(fileURLWithPath: testFile)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/RackEngineTests/<file>
        let text = try String(contentsOf: url.appendingPathComponent("docs/protocol.md"), encoding: .utf8)
        return ProtocolDocument(markdown: text)
    }

    init(markdown: String) {
        var section = ""
        var block: [Substring]?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("```") {
                if let lines = block {
                    if let pattern = Self.bytePattern(lines) { examples.append(ByteExample(section: section, pattern: pattern)) }
                    block = nil
                } else {
                    block = []
                }
            } else if block != nil {
                block!.append(line)
            } else if line.hasPrefix("#") {
                section = String(line.drop { $0 == "#" }.drop { $0 == " " })
            } else if section == "The option", let row = Self.messageType(line) {
                messageTypes.append(row)
            }
        }
    }

    /// The bytes of a block, or nil when it is not a block of bytes. Each line is bytes in hex, `cs`, or
    /// `<N-byte what>`, separated by single spaces; text after three spaces is a comment.
    static func bytePattern(_ lines: [Substring]) -> [UInt8?]? {
        var pattern: [UInt8?] = []
        for line in lines {
            var text = line.range(of: "   ").map { line[..<$0.lowerBound] } ?? line[...]
            // <16-byte nonce> → 16 open bytes.
            while let open = text.firstIndex(of: "<"), let close = text[open...].firstIndex(of: ">") {
                let inside = text[text.index(after: open)..<close]
                guard let count = Int(inside.prefix { $0.isNumber }), inside.dropFirst(String(count).count).hasPrefix("-byte")
                else { return nil }
                text = text[..<open] + Substring(Array(repeating: "??", count: count).joined(separator: " ")) + text[text.index(after: close)...]
            }
            for token in text.split(separator: " ") {
                switch token {
                case "cs", "??": pattern.append(nil)
                default:
                    guard token.count == 2, let byte = UInt8(token, radix: 16) else { return nil }
                    pattern.append(byte)
                }
            }
        }
        return pattern.isEmpty ? nil : pattern
    }

    /// `| 3 | challenge | nonce (16) | 21 | … |` → code 3, "challenge", 21.
    static func messageType(_ line: Substring) -> MessageType? {
        let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        guard line.hasPrefix("|"), cells.count == 5, let code = UInt8(cells[0]), let length = Int(cells[3]) else { return nil }
        return MessageType(code: code, name: cells[1], optionLength: length)
    }
}

@Suite struct ProtocolDocumentationTests {
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
    }

    static let nonceA = [UInt8](0x10...0x1f)
    static let nonceB = [UInt8](0x20...0x2f)
    static let mac = [UInt8](0xa0...0xaf)
    static let publicKey = [UInt8](0x40...0x5f)

    /// The message each example in "Byte-level examples" shows, with the inputs its caption names.
    static let documentedMessages: [RacksMessage] = [
        .hello(version: 1),
        .key(publicKey: publicKey, haveYourKey: false, wantReply: true),
        .challenge(nonce: nonceA),
        .response(nonce: nonceB, mac: mac),
        .confirm(mac: mac),
        .roam(connectionID: [UInt8](0x30...0x37), nonce: nonceA, isn: TCPSequenceNumber(0x0102_0304)),
        .roamResponse(isn: TCPSequenceNumber(0x0506_0708), nonce: [UInt8](0x20...0x2b), mac: mac),
    ]

    @Test(arguments: documentedMessages)
    func documentedBytes(message: RacksMessage) throws {
        let document = try ProtocolDocument.load()
        let encoded = TCPOptions.bytes(of: message.option)
        // The document shows exactly what the encoder produces…
        let example = try #require(document.messageExamples.first { $0 == encoded },
                                   "docs/protocol.md has no example with the bytes \(Self.hex(encoded)) of \(message)")
        // …and those bytes decode back to the same message.
        let decoded = try example.withUnsafeBytes { try RacksMessage.find(in: $0) }
        #expect(decoded == message)
    }

    @Test func everyMessageExampleIsChecked() throws {
        let document = try ProtocolDocument.load()
        let examples = document.messageExamples
        #expect(examples.count == Self.documentedMessages.count)
        for example in examples {
            let decoded = try example.withUnsafeBytes { try RacksMessage.find(in: $0) }
            let message = try #require(decoded, "not a rackd message: \(Self.hex(example))")
            #expect(Self.documentedMessages.contains(message), "an example no test input produces: \(Self.hex(example))")
            // As "The option" says: kind 253, the whole option's length, ExID 0x5241, and the table's length.
            #expect(Array(example.prefix(4)) == [253, UInt8(example.count), 0x52, 0x41])
            let type = try #require(document.messageTypes.first { $0.code == example[4] }, "type \(example[4]) is not in the table")
            #expect(type.optionLength == example.count, "\(type.name): the table says \(type.optionLength) bytes")
        }
        // Every type in the table has its example.
        #expect(document.messageTypes.count == Self.documentedMessages.count)
        #expect(Set(document.messageTypes.map(\.code)) == Set(examples.map { $0[4] }))
    }

    /// The whole injected challenge is what the engine sends: A (10.1.0.2:40000, ISN 0x3e8, so `snd_una`
    /// is 0x3e9) suspended toward B (10.2.0.2:22, ISN 0x1388, so `rcv_nxt` is 0x1389).
    @Test func wholeChallengeIsWhatTheEngineInjects() throws {
        let document = try ProtocolDocument.load()
        #expect(document.packetExamples.count == 1)
        let pattern = try #require(document.packetExamples.first)

        var pair = RacksPair()
        pair.socketA.isn = TCPSequenceNumber(0x3e8)
        pair.socketB.isn = TCPSequenceNumber(0x1388)
        try pair.connect()
        pair.pathUp = false
        try pair.advance(by: .seconds(4))
        #expect(pair.phase(.a) == .suspended)
        let sentBefore = pair.wireFromA.count
        pair.pathUp = true
        try pair.advance(by: .milliseconds(600))
        let challenge = try #require(try pair.wireFromA[sentBefore...].first { bytes in
            try pair.parse(bytes).options.contains { option in
                if case .challenge = try RacksMessage(option: option) { return true }
                return false
            }
        })

        #expect(challenge.count == pattern.count)
        for (index, expected) in pattern.enumerated() where index < challenge.count {
            if let expected {
                #expect(challenge[index] == expected, "byte \(index): the engine sends \(challenge[index]), the document says \(expected)")
            }
        }
        // The bytes the document leaves open are valid checksums.
        let valid = try challenge.withUnsafeBytes { try IPPacketView(validating: $0).verifyChecksums(tcpChecksum: .complete) }
        #expect(valid)
    }

    @Test func malformedRackdOptionsAreErrorsNotTraps() throws {
        for body: [UInt8] in [[], [0x09], [0x03, 1, 2], [0x02] + [UInt8](repeating: 0, count: 5), [0x01]] {
            let option = TCPOption.experimental(kind: .experiment1, exid: RacksMessage.experimentID, data: TCPOptionData(body)!)
            #expect(throws: WireError.self) { _ = try RacksMessage(option: option) }
        }
        // Another experiment's option is simply not ours.
        let other = TCPOption.experimental(kind: .experiment1, exid: 0x1234, data: TCPOptionData([1, 2])!)
        #expect(try RacksMessage(option: other) == nil)
    }

    @Test func transcriptBindsEndpointsISNsAndKeys() throws {
        let transcript = KeyTranscript(
            client: TCPEndpoint(address: .v4(IPv4Address(192, 0, 2, 1)), port: 40000),
            server: TCPEndpoint(address: .v4(IPv4Address(198, 51, 100, 7)), port: 22),
            clientISN: TCPSequenceNumber(0x0102_0304), serverISN: TCPSequenceNumber(0x0506_0708),
            clientPublicKey: [UInt8](repeating: 0xc1, count: 32), serverPublicKey: [UInt8](repeating: 0x5e, count: 32))
        let bytes = transcript.bytes
        let label = Array("rackd v1 connection key".utf8)
        #expect(Array(bytes.prefix(label.count)) == label)
        #expect(bytes.count == label.count + 2 * 18 + 8 + 64)
        let endpoints = Array(bytes[label.count..<(label.count + 36)])
        #expect(endpoints == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1, 0x9c, 0x40,
                              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7, 0, 22])
        #expect(Array(bytes[(label.count + 36)..<(label.count + 44)]) == [1, 2, 3, 4, 5, 6, 7, 8])
        // The document's example of T, in "Key exchange", is these bytes.
        let examples = try ProtocolDocument.load().examples(in: "Key exchange")
        #expect(examples.count == 1)
        let documented = try #require(examples.first?.bytes)
        #expect(documented == bytes, "docs/protocol.md shows T as \(Self.hex(documented)); the code makes \(Self.hex(bytes))")
    }

    @Test func bothEndsDeriveTheSameKey() throws {
        let client = KeySchedule.EphemeralKey(seed: [UInt8](repeating: 1, count: 32))
        let server = KeySchedule.EphemeralKey(seed: [UInt8](repeating: 2, count: 32))
        let transcript = KeyTranscript(
            client: TCPEndpoint(address: .v4(IPv4Address(192, 0, 2, 1)), port: 40000),
            server: TCPEndpoint(address: .v4(IPv4Address(198, 51, 100, 7)), port: 22),
            clientISN: TCPSequenceNumber(1), serverISN: TCPSequenceNumber(2),
            clientPublicKey: client.publicKey, serverPublicKey: server.publicKey)
        let k1 = try KeySchedule.connectionKey(client, peerPublicKey: server.publicKey, transcript: transcript)
        let k2 = try KeySchedule.connectionKey(server, peerPublicKey: client.publicKey, transcript: transcript)
        let mac1 = KeySchedule.responseMAC(k1, challengeNonce: Self.nonceA, responseNonce: Self.nonceB)
        #expect(KeySchedule.macsMatch(mac1, KeySchedule.responseMAC(k2, challengeNonce: Self.nonceA, responseNonce: Self.nonceB)))
        // A different transcript (another ISN) gives a different key.
        var other = transcript
        other.serverISN = TCPSequenceNumber(3)
        let k3 = try KeySchedule.connectionKey(client, peerPublicKey: server.publicKey, transcript: other)
        #expect(!KeySchedule.macsMatch(mac1, KeySchedule.responseMAC(k3, challengeNonce: Self.nonceA, responseNonce: Self.nonceB)))
        // A low-order public key is refused.
        #expect(throws: KeySchedule.AgreementError.self) {
            _ = try KeySchedule.connectionKey(client, peerPublicKey: [UInt8](repeating: 0, count: 32), transcript: transcript)
        }
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
