// rackd — inet_diag replies (Decoding/InetDiagMessage.swift) recorded from the kernel: the snapshots
// carry the endpoints, states and counters the recording noted; cut, corrupted and foreign messages are
// refused.

import RackDaemon
import RackEngine
import Testing

@Suite struct InetDiagMessageTests {
    static let dumps = ["inet-diag-ipv4.bin", "inet-diag-ipv6.bin"]
    /// The size of `struct inet_diag_msg`, after which the attributes start.
    static let fixedSize = 72

    /// The socket messages of a dump (NLMSG_DONE left out).
    static func socketMessages(_ name: String) throws -> [[UInt8]] {
        try Fixture.messages(in: try Fixture.bytes(name)).filter { message in
            try Fixture.withMessage(message) { $0.type == 20 }  // SOCK_DIAG_BY_FAMILY
        }
    }

    static func decode(_ message: [UInt8], including: (FlowKey) -> Bool = { _ in true }) throws -> SocketSnapshot? {
        try Fixture.withMessage(message) { SocketSnapshot(decoding: $0, including: including) }
    }

    @Test(arguments: dumps)
    func snapshotsAreWhatTheRecordingNoted(_ name: String) throws {
        let notes = try Fixture.notes("inet-diag.txt").filter { $0[1] == name }
        let messages = try Self.socketMessages(name)
        let snapshots = try messages.compactMap { try Self.decode($0) }
        let described = Set(snapshots.map {
            "\($0.flow.local) \($0.flow.remote) \($0.state) \($0.bytesAcked) \($0.bytesReceived)"
        })
        let expected = Set(notes.filter { $0[0] == "socket" }.map { $0[2...].joined(separator: " ") })
        #expect(described == expected)
        #expect(snapshots.count == expected.count)
        // The listeners are in the dump and are never reported.
        #expect(messages.count - snapshots.count == notes.filter { $0[0] == "listener" }.count)
        for snapshot in snapshots {
            #expect(snapshot.unackedSegments == 0)
            #expect(snapshot.sendQueueBytes == 0 && snapshot.receiveQueueBytes == 0)
            #expect(snapshot.inode != 0)
        }
    }

    @Test func aDualStackSocketIsReportedWithIPv4Endpoints() throws {
        let snapshots = try Self.socketMessages("inet-diag-ipv6.bin").compactMap { try Self.decode($0) }
        let mapped = try #require(snapshots.first { $0.flow.local.port == 7103 })
        #expect(mapped.flow.local.address == IPAddress(parsing: "10.90.0.2"))
        #expect(mapped.flow.remote.address.isIPv4)
    }

    @Test(arguments: dumps)
    func flowsNotAskedForAreLeftOut(_ name: String) throws {
        for message in try Self.socketMessages(name) {
            #expect(try Self.decode(message, including: { _ in false }) == nil)
        }
    }

    @Test(arguments: dumps)
    func everyCutIsRefusedOrWhole(_ name: String) throws {
        for message in try Self.socketMessages(name) {
            let full = try Self.decode(message)
            let boundaries = try Fixture.attributeBoundaries(message, fixedHeaderSize: Self.fixedSize)
            for length in 0..<(message.count - NetlinkMessage.headerSize) {
                let decoded = try Self.decode(Fixture.cut(message, payloadLength: length))
                #expect(decoded == nil || (boundaries.contains(length) && decoded == full))
            }
        }
    }

    /// AF_UNIX (1) and AF_BRIDGE (7) in idiag_family: nothing to make an endpoint of.
    @Test(arguments: [UInt8(1), 7, 0xFF])
    func anotherFamilyIsRefused(_ family: UInt8) throws {
        for message in try Self.socketMessages("inet-diag-ipv4.bin") {
            var bytes = message
            bytes[NetlinkMessage.headerSize] = family
            #expect(try Self.decode(bytes) == nil)
        }
    }

    @Test func anotherMessageTypeIsRefused() throws {
        for message in try Self.socketMessages("inet-diag-ipv6.bin") {
            #expect(try Self.decode(Fixture.setting(21, at: 4, in: message)) == nil)
        }
    }

    @Test(arguments: [UInt16(0), 3, 0xFFFF])
    func aBadAttributeLengthIsRefused(_ length: UInt16) throws {
        for message in try Self.socketMessages("inet-diag-ipv4.bin") {
            let corrupted = Fixture.setting(length, at: NetlinkMessage.headerSize + Self.fixedSize, in: message)
            #expect(try Self.decode(corrupted) == nil)
        }
    }
}
