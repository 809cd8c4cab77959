// rackd — NFQUEUE packet messages (Decoding/QueuedPacketMetadata.swift) recorded from the kernel: the
// metadata is what the recording noted and the payload is the queued IP packet; cut, corrupted and
// foreign messages are refused.

import CNFQ
@testable import RackDaemon
import RackEngine
import Testing

@Suite struct QueuedPacketMetadataTests {
    static let recordings = ["nfqueue-syn.bin", "nfqueue-data-truncated.bin"]

    /// The recording's note on `name`, as key-value pairs.
    static func noted(_ name: String) throws -> [String: Int] {
        let line = try #require(try Fixture.notes("nfqueue.txt").first { $0[1] == name })
        var values: [String: Int] = [:]
        for index in stride(from: 2, to: line.count - 1, by: 2) { values[line[index]] = Int(line[index + 1]) }
        return values
    }

    static func message(_ name: String) throws -> [UInt8] {
        try #require(Fixture.messages(in: try Fixture.bytes(name)).first)
    }

    static func decode(_ message: [UInt8]) throws -> QueuedPacketMetadata? {
        try Fixture.withMessage(message) { QueuedPacketMetadata(decoding: $0) }
    }

    /// The IP packet as the metadata locates it in the message.
    static func payload(_ message: [UInt8], _ metadata: QueuedPacketMetadata) -> [UInt8] {
        let start = NetlinkMessage.headerSize + metadata.payload.lowerBound
        return Array(message[start..<(start + metadata.payload.count)])
    }

    @Test(arguments: recordings)
    func metadataIsWhatTheRecordingNoted(_ name: String) throws {
        let note = try Self.noted(name)
        let message = try Self.message(name)
        let metadata = try #require(try Self.decode(message))
        #expect(Int(metadata.id) == note["id"])
        #expect(metadata.hook == QueuedPacketMetadata.Hook(UInt8(note["hook"]!)))
        #expect(metadata.hook == .localOut)
        #expect(metadata.hook.direction == .outbound)
        #expect(Int(metadata.mark) == note["mark"])
        #expect(Int(metadata.skbInfo.rawValue) == note["skb_info"])
        #expect(metadata.skbInfo.contains(.checksumNotReady))
        #expect(metadata.outputInterface.map(Int.init) == note["outdev"])
        #expect(metadata.inputInterface == nil)

        let packet = Self.payload(message, metadata)
        let copy = try #require(note["copy"])
        #expect(packet.count >= 40)
        #expect(packet[0] >> 4 == 4)  // IPv4, no options in these
        #expect(packet[9] == 6)  // TCP
        let totalLength = Int(packet[2]) << 8 | Int(packet[3])
        #expect(Int(packet[20]) << 8 | Int(packet[21]) == note["sport"])
        #expect(Int(packet[22]) << 8 | Int(packet[23]) == note["dport"])
        #expect(metadata.originalLength == totalLength)
        if copy >= totalLength {
            #expect(packet.count == totalLength)
            #expect(packet[33] & 0x02 != 0)  // SYN
        } else {
            #expect(packet.count == copy)
            let tcpHeaderLength = Int(packet[32] >> 4) * 4
            #expect(totalLength == 20 + tcpHeaderLength + note["data"]!)
        }
    }

    /// Cut anywhere, a message is refused, or (cut between attributes) decoded with the same id.
    @Test(arguments: recordings)
    func everyCutIsRefusedOrEndsBetweenAttributes(_ name: String) throws {
        let message = try Self.message(name)
        let full = try #require(try Self.decode(message))
        let boundaries = try Fixture.attributeBoundaries(message, fixedHeaderSize: 4)
        for length in 0..<(message.count - NetlinkMessage.headerSize) {
            let decoded = try Self.decode(Fixture.cut(message, payloadLength: length))
            if let decoded {
                #expect(boundaries.contains(length))
                #expect(decoded.id == full.id)
                #expect(decoded.payload.upperBound <= length)
            }
        }
    }

    /// The offset, within the message, of the header of the first attribute of `type`.
    static func attributeHeader(_ type: UInt16, in message: [UInt8]) throws -> Int {
        try Fixture.withMessage(message) { message in
            var walk = NetlinkAttributes(message.payload, after: 4)
            while let attribute = walk.next() {
                if attribute.type == type { return NetlinkMessage.headerSize + attribute.payloadOffset - 4 }
            }
            Issue.record("no attribute \(type)")
            return 0
        }
    }

    /// A 32-bit attribute two bytes short, a packet header one byte short or long, an attribute longer than
    /// the message: each refused, as libnetfilter_queue's parser refuses them.
    @Test(arguments: [(UInt16(3), UInt16(6)), (1, 10), (1, 12), (14, 0xFFFF), (1, 3)])
    func aBadAttributeLengthIsRefused(_ type: UInt16, _ length: UInt16) throws {
        let message = try Self.message("nfqueue-syn.bin")
        let offset = try Self.attributeHeader(type, in: message)
        #expect(try Self.decode(Fixture.setting(length, at: offset, in: message)) == nil)
    }

    @Test func aMessageWithoutPacketHeaderIsRefused() throws {
        let message = try Self.message("nfqueue-syn.bin")
        let offset = try Self.attributeHeader(1, in: message)
        #expect(try Self.decode(Fixture.setting(0x7F, at: offset + 2, in: message)) == nil)  // type 127: unknown
    }

    /// NFQNL_MSG_VERDICT and NFQNL_MSG_CONFIG (0x301, 0x302), and NLMSG_ERROR.
    @Test(arguments: [UInt16(0x301), 0x302, 2])
    func anotherMessageTypeIsRefused(_ type: UInt16) throws {
        #expect(try Self.decode(Fixture.setting(type, at: 4, in: try Self.message("nfqueue-syn.bin"))) == nil)
    }

    @Test func hooksMapToDirections() {
        #expect(QueuedPacketMetadata.Hook(1) == .localIn)
        #expect(QueuedPacketMetadata.Hook(1).direction == .inbound)
        #expect(QueuedPacketMetadata.Hook(3).direction == .outbound)
        #expect(QueuedPacketMetadata.Hook(0) == .other(0))
        #expect(QueuedPacketMetadata.Hook(0).direction == nil)
        #expect(QueuedPacketMetadata.Hook(4).direction == nil)
    }

    /// The decoder's numbers are the kernel header's, as libnetfilter_queue sees them (the input device is
    /// in no recording: they are all queued on output).
    @Test func attributeNumbersAreTheKernels() {
        typealias Attribute = QueuedPacketMetadata.Attribute
        let values: [(nfqnl_attr_type, UInt16)] = [
            (NFQA_PACKET_HDR, Attribute.packetHeader), (NFQA_MARK, Attribute.mark),
            (NFQA_IFINDEX_INDEV, Attribute.inputInterface), (NFQA_IFINDEX_OUTDEV, Attribute.outputInterface),
            (NFQA_PAYLOAD, Attribute.payload), (NFQA_CAP_LEN, Attribute.capturedLength),
            (NFQA_SKB_INFO, Attribute.skbInfo),
        ]
        for (kernel, ours) in values { #expect(UInt16(kernel.rawValue) == ours) }
        #expect(QueuedPacketMetadata.packetMessageType == UInt16(NFNL_SUBSYS_QUEUE) << 8 | UInt16(NFQNL_MSG_PACKET.rawValue))
    }
}
