// rackd — the 1of2 pick and the challenge-response of a rocks reconnection (docs/rocks.md, §5.2, §5.3):
// the messages byte for byte, lengths refused before anything after them is read, and the
// `RocksAuthentication` value of each role run against the other in pieces of every size, with a wrong
// key, one flipped byte anywhere, a reflected challenge, and a connection that ends early.

import Testing
@testable import RackEngine

@Suite struct RocksAuthenticationTests {
    static let key = Blowfish(key: Array(0x00...0x0F))

    // MARK: The messages

    @Test func aChallengeIsItsLengthThenFortyBytesAsOpenSSLEncryptsThem() throws {
        let challenge = RocksChallenge(plaintext: Array(0x20...0x3F), cipher: Self.key)
        #expect(challenge.segments == [[0, 0, 0, 0x28], BlowfishTests.openSSLChallenge], "two writes, as rocks makes them")
        #expect(challenge.bytes.count == 44)
        #expect(try challenge.plaintext(cipher: Self.key) == Array(0x20...0x3F))
        #expect(try RocksChallenge(ciphertext: challenge.ciphertext) == challenge)
        #expect(throws: WireError.self) { try RocksChallenge(ciphertext: Array(challenge.ciphertext.prefix(32))) }
        // Under another key the padding block comes out as noise.
        #expect(throws: WireError.self) { try challenge.plaintext(cipher: Blowfish(key: Array(0x01...0x10))) }
        // Both challenges of a reconnection end in the encrypted padding block.
        let other = RocksChallenge(plaintext: [UInt8](repeating: 0xEE, count: 32), cipher: Self.key)
        #expect(other.ciphertext.suffix(8) == challenge.ciphertext.suffix(8))
    }

    @Test func aResponseIsItsLengthThenThirtyTwoBytes() throws {
        let response = try RocksChallengeResponse(plaintext: Array(0x20...0x3F))
        #expect(response.segments == [[0, 0, 0, 0x20], Array(0x20...0x3F)])
        #expect(response.answers(Array(0x20...0x3F)))
        #expect(!response.answers(Array(0x21...0x40)))
        #expect(!response.answers(Array(0x20...0x3E)))
        #expect(throws: WireError.self) { try RocksChallengeResponse(plaintext: Array(0x20...0x40)) }
    }

    @Test func theReaderTakesAMessageInPiecesAndNothingAfterIt() throws {
        let message = RocksChallenge(plaintext: Array(0x20...0x3F), cipher: Self.key).bytes
        for piece in 1...45 {
            var reader = RocksLengthPrefixedReader.challenge
            var offset = 0
            let stream = message + [0xAA, 0xBB]
            while reader.result == nil {
                let chunk = stream[offset..<min(stream.count, offset + piece)]
                offset += try reader.take(chunk)
            }
            #expect(offset == 44, "the bytes after the message are the next message's")
            #expect(reader.result == Array(message.dropFirst(4)))
            #expect(try reader.take([1, 2, 3]) == 0)
        }
        // Every truncation is merely incomplete.
        for length in 0..<message.count {
            var reader = RocksLengthPrefixedReader.challenge
            #expect(try reader.take(message.prefix(length)) == length)
            #expect(reader.result == nil)
        }
    }

    /// Rocks reads the length into a signed int, checks it only against 128 and reads that many bytes
    /// into a 128-byte stack buffer. rackd refuses any length but the one a rock sends, from the four
    /// length bytes alone, and stays refused.
    @Test(arguments: [0, 1, 31, 32, 39, 41, 128, 129, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFF0, 0xFFFF_FFFF] as [UInt32])
    func aWrongChallengeLengthIsRefusedBeforeItsBody(_ length: UInt32) {
        var reader = RocksLengthPrefixedReader.challenge
        let field = RocksInit.bigEndian(length)
        #expect(throws: WireError.self, "length \(length)") { _ = try reader.take(field) }
        #expect(throws: WireError.self, "a refused reader stays refused") { _ = try reader.take([UInt8](repeating: 0, count: 40)) }
        var whole = RocksLengthPrefixedReader.challenge
        #expect(throws: WireError.self) { _ = try whole.take(field + [UInt8](repeating: 0x41, count: 4096)) }
        #expect(whole.result == nil)
        var response = RocksLengthPrefixedReader.response
        if length != 32 {
            #expect(throws: WireError.self) { _ = try response.take(field) }
        }
    }

    @Test func thePickIsOneByteFromTheServer() {
        #expect(RocksPick.segment(0xF7) == [0xF7])
        #expect(RocksPick.writes(.server) && !RocksPick.writes(.client))
    }

    // MARK: Both roles, against each other

    static func random(_ seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return generator.bytes(RocksAuthentication.randomByteCount)
    }

    static func server(_ answering: RocksAuthentication.Answering = .afterVerifying, key: Blowfish = key, seed: UInt64 = 1)
        -> RocksAuthentication {
        RocksAuthentication(role: .server, cipher: key, random: random(seed), answering: answering)
    }

    static func client(_ answering: RocksAuthentication.Answering = .afterVerifying, key: Blowfish = key, seed: UInt64 = 2)
        -> RocksAuthentication {
        RocksAuthentication(role: .client, cipher: key, random: random(seed), answering: answering)
    }

    /// What went each way, write by write.
    struct Transcript {
        var serverWrites: [[UInt8]] = []
        var clientWrites: [[UInt8]] = []
        var fromServer: [UInt8] { serverWrites.flatMap { $0 } }
        var fromClient: [UInt8] { clientWrites.flatMap { $0 } }
    }

    /// Runs a server and a client against each other until neither has more to say, delivering each
    /// direction's bytes in pieces of `piece` bytes (random sizes when nil); `flip` XORs the byte at that
    /// offset of one direction's stream on the way.
    static func converse(_ server: inout RocksAuthentication, _ client: inout RocksAuthentication, piece: Int? = nil,
                         seed: UInt64 = 7, flip: (fromServer: Bool, offset: Int)? = nil) -> Transcript {
        var random = SplitMix64(seed: seed)
        var transcript = Transcript()
        var toClient: [UInt8] = []
        var toServer: [UInt8] = []
        var deliveredToClient = 0
        var deliveredToServer = 0
        var flipped = false
        func size(_ remaining: Int) -> Int { min(remaining, piece ?? Int(random.next() % 50) + 1) }
        while true {
            let serverWrites = server.pollWrites()
            let clientWrites = client.pollWrites()
            transcript.serverWrites += serverWrites
            transcript.clientWrites += clientWrites
            toClient += serverWrites.joined()
            toServer += clientWrites.joined()
            if let flip, !flipped, flip.fromServer, toClient.indices.contains(flip.offset) {
                toClient[flip.offset] ^= 0x01
                flipped = true
            }
            if let flip, !flipped, !flip.fromServer, toServer.indices.contains(flip.offset) {
                toServer[flip.offset] ^= 0x01
                flipped = true
            }
            if deliveredToClient == toClient.count && deliveredToServer == toServer.count { return transcript }
            if deliveredToClient < toClient.count {
                let chunk = toClient[deliveredToClient..<deliveredToClient + size(toClient.count - deliveredToClient)]
                _ = try? client.take(chunk)
                deliveredToClient += chunk.count
            }
            if deliveredToServer < toServer.count {
                let chunk = toServer[deliveredToServer..<deliveredToServer + size(toServer.count - deliveredToServer)]
                _ = try? server.take(chunk)
                deliveredToServer += chunk.count
            }
        }
    }

    static let workingPairs: [(RocksAuthentication.Answering, RocksAuthentication.Answering)] =
        [(.afterVerifying, .atOnce), (.atOnce, .afterVerifying), (.atOnce, .atOnce)]

    @Test(arguments: 0..<3)
    func serverAndClientAuthenticateEachOtherInPiecesOfEverySize(_ pair: Int) throws {
        let (serverAnswering, clientAnswering) = Self.workingPairs[pair]
        for piece in [1, 2, 3, 4, 5, 7, 8, 13, 36, 44, 45, 100, nil] {
            var server = Self.server(serverAnswering)
            var client = Self.client(clientAnswering)
            let transcript = Self.converse(&server, &client, piece: piece)
            #expect(server.isAuthenticated && client.isAuthenticated, "piece \(piece ?? 0)")
            // Byte for byte what a rock writes: the pick, then each message as two writes.
            #expect(transcript.serverWrites.map(\.count) == [1, 4, 40, 4, 32])
            #expect(transcript.clientWrites.map(\.count) == [4, 40, 4, 32])
            #expect(transcript.serverWrites[0] == [Self.random(1)[0]], "the pick's value is the first random byte")
            #expect(transcript.serverWrites[1] == [0, 0, 0, 40] && transcript.serverWrites[3] == [0, 0, 0, 32])
            #expect(transcript.serverWrites[2].suffix(8) == transcript.clientWrites[1].suffix(8), "the shared padding block")
            // Each response is the other's random plaintext.
            #expect(transcript.clientWrites[3] == Array(Self.random(1).dropFirst()))
            #expect(transcript.serverWrites[4] == Array(Self.random(2).dropFirst()))
        }
    }

    @Test func theClientWritesNothingBeforeThePickAndAnyPickWillDo() throws {
        var client = Self.client()
        #expect(client.pollWrites().isEmpty)
        #expect(try client.take([0x00]) == 1)
        #expect(client.pollWrites().map(\.count) == [4, 40])
        for value in [0x02, 0xF7, 0xFF] as [UInt8] {
            var server = Self.server(.atOnce)
            var client = Self.client()
            var writes = server.pollWrites()
            writes[0] = [value]
            _ = try client.take(writes.joined())
            _ = Self.converse(&server, &client)
            #expect(client.isAuthenticated && server.isAuthenticated)
        }
    }

    @Test func theBytesAfterTheResponseAreLeftForTheRecovery() throws {
        var server = Self.server(.atOnce)
        var client = Self.client(.atOnce)
        let transcript = Self.converse(&server, &client)
        var late = Self.client(.atOnce)
        let recovery: [UInt8] = [2, 0, 0x9C, 0x40]
        #expect(try late.take(transcript.fromServer + recovery) == transcript.fromServer.count)
        #expect(late.isAuthenticated)
        #expect(try late.take(recovery) == 0)
    }

    /// The order rackd keeps toward a rock: it answers only after the rock has answered it. A rock answers
    /// at once, so nothing waits; two ends that both waited would wait for ever, which is why rocks'
    /// own order stays available for the test peer.
    @Test func answeringAfterVerifyingHoldsTheAnswerUntilThePeerHasProvedTheKey() throws {
        var rackd = Self.server(.afterVerifying)
        var rock = Self.client(.atOnce)
        _ = try rock.take(rackd.pollWrites().joined())
        let rockWrites = rock.pollWrites()
        #expect(rockWrites.map(\.count) == [4, 40, 4, 32], "a rock answers as soon as it has read the challenge")
        _ = try rackd.take(rockWrites[0...1].joined())
        #expect(rackd.pollWrites().isEmpty, "the rock's challenge alone draws no answer")
        _ = try rackd.take(rockWrites[2...3].joined())
        #expect(rackd.isAuthenticated)
        _ = try rock.take(rackd.pollWrites().joined())
        #expect(rock.isAuthenticated)

        var both = (Self.server(.afterVerifying), Self.client(.afterVerifying))
        _ = Self.converse(&both.0, &both.1)
        guard case .inProgress = both.0.status, case .inProgress = both.1.status else {
            Issue.record("two ends that both verify first can only wait")
            return
        }
    }

    // MARK: Failures

    @Test func aWrongKeyFailsOnThePeersChallenge() {
        for pair in Self.workingPairs {
            var server = Self.server(pair.0)
            var client = Self.client(pair.1, key: Blowfish(key: Array(0x01...0x10)))
            let transcript = Self.converse(&server, &client)
            #expect(!server.isAuthenticated && !client.isAuthenticated)
            guard case .failed = client.status, case .failed = server.status else {
                Issue.record("each side reads the other's challenge and neither decrypts to the padding")
                continue
            }
            #expect(transcript.clientWrites.map(\.count) == [4, 40], "nothing is answered under a wrong key")
        }
    }

    /// One byte flipped anywhere after the pick, in either direction: the two never both end
    /// authenticated, and one of them knows it failed (rocks closes the connection then, and the other
    /// sees it end).
    @Test(arguments: 0..<3)
    func oneFlippedByteFails(_ pair: Int) {
        let (serverAnswering, clientAnswering) = Self.workingPairs[pair]
        for fromServer in [true, false] {
            let length = fromServer ? 1 + 44 + 36 : 44 + 36
            for offset in (fromServer ? 1 : 0)..<length {
                var server = Self.server(serverAnswering)
                var client = Self.client(clientAnswering)
                _ = Self.converse(&server, &client, flip: (fromServer, offset))
                let failed = [server.status, client.status].contains { if case .failed = $0 { true } else { false } }
                #expect(failed && !(server.isAuthenticated && client.isAuthenticated),
                        "byte \(offset) from the \(fromServer ? "server" : "client")")
            }
        }
    }

    /// Sending rackd its own challenge back (or its blocks in another order, ECB being ECB) would make a
    /// rock decrypt it for you. rackd refuses, whatever its answering.
    @Test func aReflectedChallengeIsRefused() throws {
        for answering in [RocksAuthentication.Answering.atOnce, .afterVerifying] {
            var rackd = Self.server(answering)
            let writes = rackd.pollWrites()
            let ours = writes[2]
            var reordered = ours
            reordered.replaceSubrange(0..<16, with: ours[8..<16] + ours[0..<8])
            for echo in [ours, reordered] {
                var attacked = rackd
                #expect(throws: WireError.self) { _ = try attacked.take([0, 0, 0, 40] + echo) }
                #expect(attacked.pollWrites().isEmpty, "no answer goes out")
            }
        }
    }

    @Test func aConnectionThatEndsEarlyFailsTheAttemptOnly() throws {
        var client = Self.client()
        client.peerClosed()
        guard case .failed = client.status else {
            Issue.record("the client drops a connection that ends before the pick")
            return
        }
        var server = Self.server(.atOnce)
        var peer = Self.client(.atOnce)
        _ = Self.converse(&server, &peer)
        server.peerClosed()
        #expect(server.isAuthenticated, "after authentication an end is the recovery's business")
        var halfway = Self.server()
        _ = try halfway.take([0, 0, 0, 40, 1, 2])
        halfway.peerClosed()
        guard case .failed(let error) = halfway.status else {
            Issue.record("a challenge cut short fails")
            return
        }
        #expect(error.kind == .truncated)
        #expect(throws: WireError.self) { _ = try halfway.take([3]) }
    }
}
