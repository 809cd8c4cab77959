// rackd — the byte-level examples in docs/protocol.md, checked against the codec.
//
// Each example in the document is the codec's output for fixed inputs. If the wire format changes,
// these tests fail until the document is updated with it.

import Testing
@testable import RackEngine

@Suite struct ProtocolDocumentationTests {
    static func hex(_ option: TCPOption) -> String {
        TCPOptions.bytes(of: option).map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " ")
    }

    static let nonceA = [UInt8](0x10...0x1f)
    static let nonceB = [UInt8](0x20...0x2f)
    static let mac = [UInt8](0xa0...0xaf)
    static let publicKey = [UInt8](0x40...0x5f)

    @Test(arguments: [
        (RacksMessage.hello(version: 1), "fd 06 52 41 01 01"),
        (.key(publicKey: publicKey, haveYourKey: false, wantReply: true),
         "fd 26 52 41 02 02 40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50 51 52 53 54 55 56 57 58 59 5a 5b 5c 5d 5e 5f"),
        (.challenge(nonce: nonceA), "fd 15 52 41 03 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f"),
        (.response(nonce: nonceB, mac: mac),
         "fd 25 52 41 04 20 21 22 23 24 25 26 27 28 29 2a 2b 2c 2d 2e 2f a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af"),
        (.confirm(mac: mac), "fd 15 52 41 05 a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af"),
        (.roam(connectionID: [UInt8](0x30...0x37), nonce: nonceA, isn: TCPSequenceNumber(0x0102_0304)),
         "fd 21 52 41 06 30 31 32 33 34 35 36 37 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f 01 02 03 04"),
        (.roamResponse(isn: TCPSequenceNumber(0x0506_0708), nonce: [UInt8](0x20...0x2b), mac: mac),
         "fd 25 52 41 07 05 06 07 08 20 21 22 23 24 25 26 27 28 29 2a 2b a0 a1 a2 a3 a4 a5 a6 a7 a8 a9 aa ab ac ad ae af"),
    ])
    func documentedBytes(message: RacksMessage, expected: String) throws {
        #expect(Self.hex(message.option) == expected)
        // And the bytes decode back to the same message.
        let bytes = expected.split(separator: " ").map { UInt8($0, radix: 16)! }
        let decoded = try bytes.withUnsafeBytes { try RacksMessage.find(in: $0) }
        #expect(decoded == message)
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

    @Test func transcriptBindsEndpointsISNsAndKeys() {
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
