// rackd — the reconnections of real rocks 2.4 in the failure captures (docs/rocks.md, §5, §13; the
// fixtures rocks-{linkdown,blackhole,ipchange}-reconnect.pcap, cut down by tools/trim-capture.py): each one
// found by the reconnection address its side announced, and every message in it read by the codecs and
// encoded back to the captured bytes (the pick's value, the challenges and the responses are random or
// key-derived, so those are parsed and re-encoded rather than made anew): the pick from the original
// server, the challenge-response each way, the recovery messages each way, and the go-back-N, which must
// be the original stream again from the peer's rcvseq on.

import Testing
@testable import RackEngine

@Suite struct RocksReconnectionCaptureTests {
    /// One reconnection of a capture, by original role.
    struct Reconnection {
        var clientInit: RocksInit
        var serverInit: RocksInit
        /// The original connection's application bytes each way, as runs at their application offsets (a
        /// trimmed capture keeps the start and the tail).
        var clientApplication: [StreamRun]
        var serverApplication: [StreamRun]
        var connection: CapturedConnection
        /// Whether the original server made this connection (its active side won 1of2).
        var serverConnected: Bool

        var fromServer: [[UInt8]] { serverConnected ? connection.fromClient : connection.fromServer }
        var fromClient: [[UInt8]] { serverConnected ? connection.fromServer : connection.fromClient }
        var serverAddress: IPv4Address? { address(serverConnected ? connection.client : connection.server) }
        var clientAddress: IPv4Address? { address(serverConnected ? connection.server : connection.client) }

        private func address(_ endpoint: TCPEndpoint) -> IPv4Address? {
            if case .v4(let address) = endpoint.address { address } else { nil }
        }
    }

    /// The reconnections of a capture: the connections to either side's announced reconnection address
    /// that carry bytes (the others are refused SYNs of the storm and 1of2's losers).
    static func reconnections(_ fixture: String) throws -> [Reconnection] {
        let connections = try RocksWireTests.connections(fixture)
        let data = try #require(connections.first { $0.fromClient.first == RocksAnnouncement.bytes }, "the data connection")
        let serverAnnouncement = try #require(data.fromServer.firstIndex(of: RocksAnnouncement.bytes))
        let clientInit = try RocksWireTests.initMessages(data.fromClient.dropFirst())
        let serverInit = try RocksWireTests.initMessages(data.fromServer[(serverAnnouncement + 1)...])
        let banner = data.fromServer[..<serverAnnouncement].joined().count
        let clientApplication = application(data.clientRuns, from: 16 + clientInit.bytes.count)
        let serverApplication = application(data.serverRuns, from: banner + 16 + serverInit.bytes.count)
        return connections.compactMap { connection in
            guard !connection.fromClient.isEmpty || !connection.fromServer.isEmpty else { return nil }
            let serverConnected = connection.server == clientInit.reconnection.endpoint
            guard serverConnected || connection.server == serverInit.reconnection.endpoint else { return nil }
            return Reconnection(clientInit: clientInit, serverInit: serverInit, clientApplication: clientApplication,
                                serverApplication: serverApplication, connection: connection, serverConnected: serverConnected)
        }
    }

    /// The runs of a stream from its application's first byte on, at application offsets.
    static func application(_ runs: [StreamRun], from start: Int) -> [StreamRun] {
        runs.compactMap { run in
            guard run.end > start else { return nil }
            let skip = max(0, start - run.offset)
            return StreamRun(offset: run.offset + skip - start, bytes: Array(run.bytes.dropFirst(skip)))
        }
    }

    /// Where each write of one side's reconnection ends, as rocks makes them: the pick (the server's),
    /// each message's length and body, the five recovery messages.
    static func writeEnds(server: Bool) -> [Int] {
        let writes = (server ? [1] : []) + [4, 40, 4, 32, 16, 16, 4, 4, 4]
        return writes.indices.map { writes[...$0].reduce(0, +) }
    }

    /// One side's messages, read and checked against the captured bytes; returns its recovery messages
    /// and the bytes after them (the go-back-N, then application data).
    static func messages(_ segments: [[UInt8]], server: Bool, ownInit: RocksInit, newAddress: IPv4Address?) throws -> (recovery: RocksRecovery, challenge: [UInt8], rest: [UInt8]) {
        let stream = segments.flatMap { $0 }
        try #require(stream.count >= (server ? 1 : 0) + 44 + 36 + RocksRecovery.length)
        var offset = 0
        if server {
            #expect(segments.first?.count == RocksPick.length, "the pick is a segment of its own")
            offset = RocksPick.length
        }
        var challengeReader = RocksLengthPrefixedReader.challenge
        offset += try challengeReader.take(stream[offset...])
        let challenge = try RocksChallenge(ciphertext: try #require(challengeReader.result))
        #expect(challenge.bytes == Array(stream[(offset - 44)..<offset]))
        var responseReader = RocksLengthPrefixedReader.response
        offset += try responseReader.take(stream[offset...])
        let response = try RocksChallengeResponse(plaintext: try #require(responseReader.result))
        #expect(response.bytes == Array(stream[(offset - 36)..<offset]))
        var recoveryReader = RocksRecoveryReader(peerInit: ownInit)
        offset += try recoveryReader.take(stream[offset...])
        let recovery = try #require(recoveryReader.result)
        #expect(recovery.bytes == Array(stream[(offset - RocksRecovery.length)..<offset]))
        // Rocks reports the sizes of its own init again (the reader checked them), and its new sockets are
        // on the connection's new local address.
        #expect(recovery.sendBufferSize == ownInit.sendBufferSize && recovery.receiveBufferSize == ownInit.receiveBufferSize)
        #expect(recovery.heartbeat.address == newAddress && recovery.reconnection.address == newAddress)
        #expect(recovery.heartbeat.port != recovery.reconnection.port)
        // Every captured segment ends where one of rocks' writes does: writes run together (Nagle is on)
        // but none is split, and they come in the codecs' order.
        let ends = Set(writeEnds(server: server))
        var end = 0
        for segment in segments {
            end += segment.count
            guard end <= offset else { break }
            #expect(ends.contains(end), "a captured segment ends at \(end), inside a write")
        }
        return (recovery, challenge.ciphertext, Array(stream[offset...]))
    }

    static let fixtures = ["rocks-linkdown-reconnect.pcap", "rocks-blackhole-reconnect.pcap", "rocks-ipchange-reconnect.pcap"]

    @Test(arguments: fixtures)
    func everyReconnectionMessageParsesAndEncodesBackAsCaptured(_ fixture: String) throws {
        let reconnections = try Self.reconnections(fixture)
        try #require(reconnections.count == 1, "one reconnection with bytes in \(fixture)")
        for reconnection in reconnections {
            let server = try Self.messages(reconnection.fromServer, server: true, ownInit: reconnection.serverInit,
                                           newAddress: reconnection.serverAddress)
            let client = try Self.messages(reconnection.fromClient, server: false, ownInit: reconnection.clientInit,
                                           newAddress: reconnection.clientAddress)
            #expect(server.challenge.suffix(8) == client.challenge.suffix(8), "both challenges end in the padding block")
            #expect(server.challenge != client.challenge)

            // The go-back-N: each side resends its original stream from the peer's rcvseq on, and what
            // follows is the stream going on. Compared wherever the capture has the original bytes
            // (rocks-blackhole: the client resends 9288 bytes, the server 1024; in the others the peers had
            // read all that was captured).
            for (rest, application, peerReceived) in [
                (server.rest, reconnection.serverApplication, client.recovery.received),
                (client.rest, reconnection.clientApplication, server.recovery.received),
            ] {
                let resumed = Int(peerReceived)
                let sent = try #require(application.last?.end)
                try #require(sent >= resumed, "the peer read only bytes that were sent")
                try #require(rest.count >= sent - resumed, "every byte carried past the peer's rcvseq comes again")
                for run in application where run.end > resumed {
                    let from = max(run.offset, resumed)
                    #expect(Array(rest[(from - resumed)..<(run.end - resumed)]) == Array(run.bytes[(from - run.offset)...]))
                }
            }
        }
    }

    /// A real rock's opening read by rackd's client role: the pick and the challenge's length are taken,
    /// and the challenge, under a key that is not the connection's, fails on its padding, as it would
    /// under a wrong key in earnest.
    @Test(arguments: fixtures)
    func aRealRocksChallengeIsReadToTheEnd(_ fixture: String) throws {
        let reconnection = try #require(try Self.reconnections(fixture).first)
        var client = RocksAuthentication(role: .client, cipher: Blowfish(key: Array(0x00...0x0F)),
                                         random: [UInt8](repeating: 7, count: RocksAuthentication.randomByteCount))
        let stream = reconnection.fromServer.flatMap { $0 }
        var failure: WireError?
        for (index, byte) in stream.prefix(1 + 44).enumerated() {
            do {
                #expect(try client.take([byte]) == 1)
            } catch {
                failure = error
                #expect(index == 44, "only the whole challenge can fail, at its last byte")
            }
        }
        #expect(failure?.kind == .badMessage)
        #expect(client.pollWrites().map(\.count) == [4, 40], "its own challenge went out after the pick, and no answer")
    }
}
