// rackd — the rocks 2.4 messages against captures of real rocks (rocks-basic.pcap, rocks-edp-banner.pcap,
// rocks-edp-fallback.pcap): every init message parses and encodes back to the captured bytes, segment for
// segment; malformed and truncated ones are refused without a trap; the DH arithmetic holds.

import Foundation
import Testing
@testable import RackEngine

@Suite struct RocksWireTests {
    static func connections(_ fixture: String) throws -> [CapturedConnection] {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let file = try [UInt8](Data(contentsOf: directory.appendingPathComponent(fixture)))
        return try TCPStreams.connections(in: PcapReader.ipPackets(in: file).map(\.bytes))
    }

    /// Reads one side's init messages from the segments after its announcement, checks them against the
    /// capture segment for segment, and returns them.
    static func initMessages(_ segments: ArraySlice<[UInt8]>) throws -> RocksInit {
        var reader = RocksInitReader()
        let stream = Array(segments.joined())
        let used = try reader.take(stream)
        let parsed = try #require(reader.result)
        #expect(used == parsed.bytes.count)
        #expect(Array(segments.prefix(6)) == parsed.segments, "rocks writes each init message as a segment of its own")
        return parsed
    }

    @Test func theBasicCaptureIsAProbeThenAnAnnouncedConnectionWithInit() throws {
        let connections = try Self.connections("rocks-basic.pcap")
        try #require(connections.count == 2)
        let probe = connections[0]
        #expect(probe.fromClient.isEmpty && probe.clientFIN, "the probe is a FIN with no data")
        #expect(probe.serverStream == RocksAnnouncement.bytes && probe.serverFIN)
        #expect(RocksAnnouncement.endsProbeAnswer(probe.serverStream))

        let data = connections[1]
        #expect(data.fromClient.first == RocksAnnouncement.bytes)
        #expect(data.fromServer.first == RocksAnnouncement.bytes, "the server's announcement is a segment of its own")
        let client = try Self.initMessages(data.fromClient.dropFirst())
        let server = try Self.initMessages(data.fromServer.dropFirst())
        for side in [client, server] {
            #expect(side.publicKey.count == 16)
            #expect(side.sendBufferSize == 65536 && side.receiveBufferSize == 65536)
        }
        // Each side's addresses are its own host's, on ports of their own.
        #expect(client.reconnection.address == IPv4Address(10, 201, 0, 1))
        #expect(client.heartbeat.address == IPv4Address(10, 201, 0, 1))
        #expect(server.reconnection.address == IPv4Address(10, 201, 0, 2))
        #expect(client.reconnection.port != client.heartbeat.port)
        // Application data starts right after: at relative sequence 1 + 16 + 60 on the client's side.
        #expect(data.clientStream.count > 16 + 60)
    }

    @Test func aBannerComesBeforeTheServersAnnouncementInSegmentsOfItsOwn() throws {
        let connections = try Self.connections("rocks-edp-banner.pcap")
        try #require(connections.count == 2)
        let probe = connections[0]
        #expect(probe.serverStream.count == 22 + 16)
        #expect(RocksAnnouncement.endsProbeAnswer(probe.serverStream))
        let data = connections[1]
        let banner = try #require(data.fromServer.first)
        #expect(banner.count == 22)
        #expect(data.fromServer[1] == RocksAnnouncement.bytes)
        #expect(RocksAnnouncement.judge(banner) == .ordinary, "a banner never looks like the announcement")
        _ = try Self.initMessages(data.fromServer.dropFirst(2))
        _ = try Self.initMessages(data.fromClient.dropFirst())
    }

    @Test func ordinaryPeersAreToldApart() throws {
        let connections = try Self.connections("rocks-edp-fallback.pcap")
        try #require(connections.count >= 2)
        // A rock client against a plain server: the probe's answer is not the announcement.
        #expect(!RocksAnnouncement.endsProbeAnswer(connections[0].serverStream))
        // A plain client against a rock server: its first bytes are not the announcement.
        let plainClient = try #require(connections.last)
        #expect(RocksAnnouncement.judge(plainClient.clientStream) == .ordinary)
    }

    @Test func theAnnouncementIsJudgedOnItsPrefix() {
        let announcement = RocksAnnouncement.bytes
        #expect(RocksAnnouncement.judge([]) == .undecided)
        #expect(RocksAnnouncement.judge(Array(announcement.prefix(5))) == .undecided)
        #expect(RocksAnnouncement.judge(announcement) == .rock)
        #expect(RocksAnnouncement.judge(announcement + [1, 2]) == .rock)
        #expect(RocksAnnouncement.judge(Array(announcement.prefix(15)) + [0x41]) == .ordinary, "the NUL counts")
        #expect(RocksAnnouncement.judge(Array("SSH-2.0-".utf8)) == .ordinary)
    }

    @Test func initMessagesParseInPiecesOfAnySize() throws {
        let data = try Self.connections("rocks-basic.pcap")[1]
        let stream = Array(data.clientStream.dropFirst(16))
        let whole = try Self.initMessages(data.fromClient.dropFirst())
        for piece in 1...17 {
            var reader = RocksInitReader()
            var used = 0
            var offset = 0
            while reader.result == nil {
                let chunk = stream[offset..<min(stream.count, offset + piece)]
                used += try reader.take(chunk)
                offset += chunk.count
            }
            #expect(reader.result == whole)
            #expect(used == 60)
            #expect(try reader.take([1, 2, 3]) == 0, "nothing is taken once the messages are in")
        }
    }

    @Test func malformedInitMessagesAreRefused() throws {
        let good = try Self.initMessages(try Self.connections("rocks-basic.pcap")[1].fromClient.dropFirst()).bytes
        func refused(_ bytes: [UInt8]) -> Bool {
            var reader = RocksInitReader()
            do { _ = try reader.take(bytes) } catch { return true }
            return false
        }
        #expect(refused([0, 0, 0, 0]), "an empty key")
        #expect(refused([0, 0, 0, 17]), "a key longer than the prime")
        #expect(refused([0xFF, 0xFF, 0xFF, 0xF0]), "a negative length, as rocks' own reader would take it")
        var badFamily = good
        badFamily[20] = 10  // AF_INET6
        #expect(refused(badFamily))
        var badPadding = good
        badPadding[35] = 1
        #expect(refused(badPadding))
        // Every truncation is merely incomplete, never an error or a trap.
        for length in 0..<good.count {
            var reader = RocksInitReader()
            #expect(try reader.take(good.prefix(length)) == length)
            #expect(reader.result == nil)
        }
    }

    @Test func socketAddressesRoundTrip() throws {
        let address = RocksSocketAddress(address: IPv4Address(10, 201, 0, 1), port: 37267)
        #expect(address.bytes == [0x02, 0x00, 0x91, 0x93, 0x0a, 0xc9, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try RocksSocketAddress(parsing: address.bytes) == address)
        #expect(throws: WireError.self) { try RocksSocketAddress(parsing: address.bytes.prefix(15)) }
    }

    @Test func diffieHellmanAgreesAndRefusesDegenerateValues() {
        let p = RocksKeyExchange.prime
        #expect(RocksKeyExchange.power(2, 1) == 2)
        #expect(RocksKeyExchange.power(2, p - 1) == 1, "Fermat: p is prime")
        var random = SplitMix64(seed: 11)
        for _ in 0..<20 {
            let a = RocksKeyExchange.privateKey(from: random.bytes(16))
            let b = RocksKeyExchange.privateKey(from: random.bytes(16))
            #expect(a >> 126 == 1, "127 bits, the top one set")
            let publicA = RocksKeyExchange.publicKey(a)
            let publicB = RocksKeyExchange.publicKey(b)
            #expect(publicA.count <= 16 && publicA.first != 0)
            let secretA = RocksKeyExchange.sharedSecret(a, peerPublicKey: publicB)
            #expect(secretA != nil && secretA == RocksKeyExchange.sharedSecret(b, peerPublicKey: publicA))
            #expect(RocksKeyExchange.blowfishKey(secret: secretA ?? []).count == 16)
        }
        let a = RocksKeyExchange.privateKey(from: [UInt8](repeating: 7, count: 16))
        for degenerate in [[0], [1], RocksKeyExchange.minimalBigEndian(p - 1), RocksKeyExchange.minimalBigEndian(p), [],
                           [UInt8](repeating: 1, count: 17)] {
            #expect(RocksKeyExchange.sharedSecret(a, peerPublicKey: degenerate) == nil)
        }
        #expect(RocksKeyExchange.blowfishKey(secret: [1, 2, 3]) == [1, 2, 3] + [UInt8](repeating: 0, count: 13))
    }
}
