// rackd — the recovery messages of a rocks reconnection (docs/rocks.md, §5.4): five writes that encode
// and parse back byte for byte, read in pieces of any size up to the go-back-N, sizes checked unchanged,
// malformed addresses refused as soon as they are in, and the go-back-N's length from the counters.

import Testing
@testable import RackEngine

@Suite struct RocksRecoveryTests {
    /// The server's messages of rocks-blackhole.pcap: 10.201.0.1 is the client, 10.201.0.2 the server.
    static let sample = RocksRecovery(
        heartbeat: RocksSocketAddress(address: IPv4Address(10, 201, 0, 2), port: 0x942B),
        reconnection: RocksSocketAddress(address: IPv4Address(10, 201, 0, 2), port: 0xA283),
        received: 0x0003_D400, sendBufferSize: 65536, receiveBufferSize: 65536)

    static func reader() -> RocksRecoveryReader {
        RocksRecoveryReader(expectedSendBufferSize: 65536, expectedReceiveBufferSize: 65536)
    }

    @Test func theMessagesAreFiveWritesInRocksOrder() {
        #expect(Self.sample.segments == [
            hex("0200942b0ac900020000000000000000"), hex("0200a2830ac900020000000000000000"),
            hex("0003d400"), hex("00010000"), hex("00010000"),
        ])
        #expect(Self.sample.bytes.count == RocksRecovery.length)
    }

    @Test func theReaderTakesTheMessagesInPiecesAndLeavesTheGoBackN() throws {
        let goBackN: [UInt8] = Array(repeating: 0x5A, count: 30)
        let stream = Self.sample.bytes + goBackN
        for piece in 1...50 {
            var reader = Self.reader()
            var used = 0
            var offset = 0
            while reader.result == nil {
                let chunk = stream[offset..<min(stream.count, offset + piece)]
                used += try reader.take(chunk)
                offset += chunk.count
            }
            #expect(reader.result == Self.sample)
            #expect(used == 44, "the go-back-N is not the reader's")
            #expect(try reader.take(goBackN) == 0)
        }
        for length in 0..<44 {
            var reader = Self.reader()
            #expect(try reader.take(Self.sample.bytes.prefix(length)) == length)
            #expect(reader.result == nil)
        }
        var fromInit = RocksRecoveryReader(peerInit: RocksInit(
            publicKey: [1], reconnection: Self.sample.reconnection, sendBufferSize: 65536, receiveBufferSize: 65536,
            heartbeat: Self.sample.heartbeat))
        #expect(try fromInit.take(stream) == 44 && fromInit.result == Self.sample)
    }

    /// Rocks asserts the sizes are the ones of init: a change aborts the rock. rackd refuses it as an error.
    @Test func changedBufferSizesAreRefused() {
        for (send, receive) in [(131072, 65536), (65536, 32768), (0, 0)] as [(UInt32, UInt32)] {
            var changed = Self.sample
            changed.sendBufferSize = send
            changed.receiveBufferSize = receive
            var reader = Self.reader()
            #expect(throws: WireError.self) { _ = try reader.take(changed.bytes) }
            #expect(reader.result == nil)
            #expect(throws: WireError.self, "a refused reader stays refused") { _ = try reader.take(Self.sample.bytes) }
        }
    }

    @Test func aMalformedAddressIsRefusedAsSoonAsItIsIn() throws {
        var badFamily = Self.sample.bytes
        badFamily[0] = 10  // AF_INET6
        var reader = Self.reader()
        #expect(throws: WireError.self, "the heartbeat address alone") { _ = try reader.take(badFamily.prefix(16)) }
        var badPadding = Self.sample.bytes
        badPadding[31] = 1
        var second = Self.reader()
        #expect(try second.take(badPadding.prefix(31)) == 31)
        #expect(throws: WireError.self, "the reconnection address's last byte") { _ = try second.take(badPadding[31..<32]) }
    }

    // MARK: The go-back-N

    @Test func theGoBackNIsEverythingSentAfterThePeersCount() throws {
        // rocks-blackhole.pcap: the server had read 250880 bytes and the client resent 9288.
        #expect(try RocksRecovery.resendCount(peerReceived: 0x0003_D400, sent: 0x0003_D400 + 9288, kept: 131072) == 9288)
        #expect(try RocksRecovery.resendCount(peerReceived: 1000, sent: 1000, kept: 0) == 0, "nothing in flight")
        #expect(try RocksRecovery.resendCount(peerReceived: 0, sent: 131072, kept: 131072) == 131072)
        // Counters wrap at 2³² (rocks' own assert does not survive it).
        #expect(try RocksRecovery.resendCount(peerReceived: 0xFFFF_FF00, sent: 0x0000_0100, kept: 131072) == 512)
    }

    @Test func aCountTheRingCannotServeIsRefused() {
        #expect(throws: WireError.self, "the peer claims bytes never sent") {
            try RocksRecovery.resendCount(peerReceived: 2000, sent: 1000, kept: 131072)
        }
        #expect(throws: WireError.self, "older than the ring keeps") {
            try RocksRecovery.resendCount(peerReceived: 0, sent: 131073, kept: 131072)
        }
        #expect(throws: WireError.self) { try RocksRecovery.resendCount(peerReceived: 0x0000_0100, sent: 0xFFFF_FF00, kept: 131072) }
    }
}
