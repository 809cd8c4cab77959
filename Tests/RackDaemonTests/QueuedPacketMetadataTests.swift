// rackd — NFQUEUE packet messages (Decoding/QueuedPacketMetadata.swift) recorded from the kernel: the
// metadata is what the recording noted and the payload is the queued IP packet; cut, corrupted and
// foreign messages are refused. The packet's conntrack entry (NFQA_CT) is in no recording: it is appended
// to one, laid out as the kernel lays it out (nested, with NLA_F_NESTED).

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
            (NFQA_SKB_INFO, Attribute.skbInfo), (NFQA_CT, Attribute.conntrack),
        ]
        for (kernel, ours) in values { #expect(UInt16(kernel.rawValue) == ours) }
        #expect(QueuedPacketMetadata.packetMessageType == UInt16(NFNL_SUBSYS_QUEUE) << 8 | UInt16(NFQNL_MSG_PACKET.rawValue))
    }

    // MARK: The packet's conntrack entry (NFQA_CT)

    /// One netlink attribute: header (native order), payload, padding to 4 bytes.
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        var bytes = withUnsafeBytes(of: UInt16(4 + payload.count)) { Array($0) } + withUnsafeBytes(of: type) { Array($0) }
        bytes += payload
        bytes += [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4)
        return bytes
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    /// NLA_F_NESTED, which the kernel sets on nested attributes.
    static let nested: UInt16 = 0x8000

    /// NFQA_CT as ctnetlink_glue_build fills it: the original tuple (nested), then the status, then more.
    static func conntrack(status: [UInt8]?) -> [UInt8] {
        let tuple = attribute(1 | nested, attribute(1 | nested, attribute(1, [127, 0, 0, 1]) + attribute(2, [127, 0, 0, 1])))
        let statusAttribute = status.map { attribute(3, $0) } ?? []
        return attribute(11 | nested, tuple + statusAttribute + attribute(7, bigEndian(300)))  // CTA_TIMEOUT
    }

    /// The SYN recording with `extra` appended to its attributes, its header's length saying so.
    static func appending(_ extra: [UInt8]) throws -> [UInt8] {
        var bytes = try message("nfqueue-syn.bin")
        #expect(bytes.count % 4 == 0)
        bytes += extra
        withUnsafeBytes(of: UInt32(bytes.count)) { bytes.replaceSubrange(0..<4, with: $0) }
        return bytes
    }

    @Test func aRecordingWithoutConntrackHasNoStatus() throws {
        let metadata = try #require(try Self.decode(try Self.message("nfqueue-syn.bin")))
        #expect(metadata.conntrackStatus == nil)
        #expect(!metadata.kernelShifts)
    }

    /// 0x4e: CONFIRMED, ASSURED, SEEN_REPLY and SEQ_ADJUST, as docs/kernel-seqadj.md saw after the create;
    /// 0x0e: the same entry made by the packet path, without the shift.
    @Test(arguments: [(UInt32(0x4e), true), (0x0e, false), (0x40, true), (0, false)])
    func theStatusSaysWhetherTheKernelShifts(_ status: UInt32, _ shifts: Bool) throws {
        let plain = try #require(try Self.decode(try Self.message("nfqueue-syn.bin")))
        let metadata = try #require(try Self.decode(try Self.appending(Self.conntrack(status: Self.bigEndian(status)))))
        #expect(metadata.conntrackStatus == status)
        #expect(metadata.kernelShifts == shifts)
        // The rest is as without the entry.
        #expect(metadata.id == plain.id)
        #expect(metadata.payload == plain.payload)
        #expect(metadata.skbInfo == plain.skbInfo)
    }

    @Test func anEntryWithoutStatusHasNone() throws {
        let metadata = try #require(try Self.decode(try Self.appending(Self.conntrack(status: nil))))
        #expect(metadata.conntrackStatus == nil)
        #expect(!metadata.kernelShifts)
    }

    /// A status of the wrong length, or nested attributes that do not fill NFQA_CT: refused, as a malformed
    /// attribute of the message itself is.
    @Test func aMalformedEntryIsRefused() throws {
        #expect(try Self.decode(try Self.appending(Self.conntrack(status: [0, 0x40]))) == nil)
        #expect(try Self.decode(try Self.appending(Self.conntrack(status: [0, 0, 0, 0x40, 0, 0, 0, 0]))) == nil)
        // A nested attribute claiming more than NFQA_CT holds.
        var overlong = Self.attribute(11 | Self.nested, Self.attribute(3, Self.bigEndian(0x40)))
        overlong[4] = 200
        #expect(try Self.decode(try Self.appending(overlong)) == nil)
        // Three bytes left over after the nested attributes.
        #expect(try Self.decode(try Self.appending(Self.attribute(11, Self.attribute(3, Self.bigEndian(0x40)) + [1, 2, 3]))) == nil)
    }

    /// Cut anywhere, a message with an entry is refused, or decoded without the entry (cut before it), or
    /// whole.
    @Test func everyCutOfAnEntryIsRefusedOrEndsBetweenAttributes() throws {
        let message = try Self.appending(Self.conntrack(status: Self.bigEndian(0x4e)))
        let boundaries = try Fixture.attributeBoundaries(message, fixedHeaderSize: 4)
        for length in 0..<(message.count - NetlinkMessage.headerSize) {
            guard let decoded = try Self.decode(Fixture.cut(message, payloadLength: length)) else { continue }
            #expect(boundaries.contains(length))
            #expect(decoded.conntrackStatus == nil || decoded.conntrackStatus == 0x4e)
        }
    }
}
