// rackd — the engine in place of one rock of a real capture (rocks-basic.pcap, rocks-edp-banner.pcap):
// the other rock's segments are replayed into it, byte for byte, and what rackd sends toward that rock
// must be what the replaced rock sent, segment for segment, apart from the DH value and the addresses its
// sockaddrs name; the application behind rackd must receive exactly the replaced rock's application
// stream, and the rock exactly the application's.

import Testing
@testable import RackEngine

@Suite struct RocksCaptureReplayTests {
    static let captureClient = IPv4Address(10, 201, 0, 1)
    static let captureServer = IPv4Address(10, 201, 0, 2)

    /// rackd's own segments toward the rock against the replaced rock's: the announcement and the six
    /// init writes, in the same lengths; every byte but the DH value and the sockaddrs' port and address.
    static func compare(ours: [[UInt8]], theirs: [[UInt8]]) {
        #expect(ours.map(\.count) == theirs.map(\.count), "the same writes, in the same lengths")
        guard ours.count == 7, theirs.count == 7 else { return }
        #expect(ours[0] == RocksAnnouncement.bytes && theirs[0] == RocksAnnouncement.bytes)
        #expect(ours[1] == theirs[1], "the DH value's length")
        for index in [3, 6] {  // the reconnection and heartbeat sockaddrs: family and padding
            #expect(ours[index].prefix(2) == theirs[index].prefix(2))
            #expect(ours[index].suffix(8) == theirs[index].suffix(8))
        }
        #expect(ours[4] == theirs[4] && ours[5] == theirs[5], "the buffer sizes")
    }

    /// The payloads rackd wrote toward the rock: segments inside its own bytes' range.
    static func ownSegments(_ world: RocksWorld, insertedAt point: TCPSequenceNumber) -> [[UInt8]] {
        var seen = Set<TCPSequenceNumber>()
        return world.wireToRock.filter {
            !$0.payload.isEmpty && $0.sequenceNumber - point >= 0 && $0.sequenceNumber - (point + 76) < 0
                && seen.insert($0.sequenceNumber).inserted
        }.map(\.payload)
    }

    @Test(arguments: ["rocks-basic.pcap", "rocks-edp-banner.pcap"])
    func rackdPlaysTheClientRock(fixture: String) throws {
        let data = try RocksWireTests.connections(fixture)[1]
        let serverAnnouncement = try #require(data.fromServer.firstIndex(of: RocksAnnouncement.bytes))
        let banner = Array(data.fromServer[..<serverAnnouncement].joined())
        let serverRocks = data.fromServer[serverAnnouncement..<serverAnnouncement + 7]
        let serverApplication = Array(data.fromServer[(serverAnnouncement + 7)...].joined())
        let clientApplication = Array(data.fromClient.dropFirst(7).joined())

        // The captured rocks run between 10.201.0.1 (client) and 10.201.0.2 (server), whose init names them.
        var world = RocksWorld(appIsClient: true, hosts: (Self.captureClient, Self.captureServer))
        try RocksScenarioTests.connectedClient(&world)
        for segment in data.fromServer[..<serverAnnouncement] { try world.fromRock(world.rock.write(segment)) }
        for segment in serverRocks { try world.fromRock(world.rock.write(segment)) }
        try world.settle()
        for segment in data.fromClient.dropFirst(7) { try world.fromApp(world.app.write(segment)) }
        for segment in data.fromServer[(serverAnnouncement + 7)...] { try world.fromRock(world.rock.write(segment)) }
        try world.settle()

        // The client's SYN went out 76 lower: rackd's bytes fill the numbers below the socket's first byte.
        Self.compare(ours: Self.ownSegments(world, insertedAt: world.app.isn + 1 - 76), theirs: Array(data.fromClient.prefix(7)))
        #expect(world.app.received == banner + serverApplication)
        #expect(Array(world.rock.received.dropFirst(76)) == clientApplication)
        #expect(world.engine.connections.first?.phase == .healthy)
        // After both inits the offsets are zero both ways: the rock's application bytes reached the socket
        // without rackd (docs/rocks.md §14, "In the kernel").
        #expect(world.engine.kernelFlows.screened == [world.appFlow])
        #expect(world.unqueuedFromRock > 0 && world.queuedFromRockWhileScreened == 0)
    }

    @Test func rackdPlaysTheServerRock() throws {
        let data = try RocksWireTests.connections("rocks-basic.pcap")[1]
        let clientApplication = Array(data.fromClient.dropFirst(7).joined())
        let serverApplication = Array(data.fromServer.dropFirst(7).joined())

        var world = RocksWorld(appIsClient: false, hosts: (Self.captureServer, Self.captureClient))
        let syn = world.rock.syn()
        try world.fromRock([syn])
        try world.fromApp([world.app.synAck(to: syn)])
        try world.settle()
        for segment in data.fromClient.prefix(7) { try world.fromRock(world.rock.write(segment)) }
        try world.settle()
        for segment in data.fromClient.dropFirst(7) { try world.fromRock(world.rock.write(segment)) }
        for segment in data.fromServer.dropFirst(7) { try world.fromApp(world.app.write(segment)) }
        try world.settle()

        Self.compare(ours: Self.ownSegments(world, insertedAt: world.app.isn + 1), theirs: Array(data.fromServer.prefix(7)))
        #expect(world.app.received == clientApplication)
        #expect(Array(world.rock.received.dropFirst(76)) == serverApplication)
        #expect(world.engine.kernelFlows.screened.isEmpty, "a rocks server's connection stays queued")
    }
}
