// rackd — properties of the in-place rewrite of a resumed connection's packets: over every packet of the
// capture and random offsets and wrap points, the rewritten packet carries exactly the shifted fields
// and a correct checksum, and the inverse rewrite gives back the original bytes.

import Foundation
import Testing
@testable import RackEngine

@Suite struct FlowRewriteTests {
    static func capturePackets() throws -> [[UInt8]] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let file = try [UInt8](Data(contentsOf: url.appendingPathComponent("rocks-basic.pcap")))
        return try PcapReader.ipPackets(in: file).map(\.bytes).filter { packet in
            packet.withUnsafeBytes { (try? IPPacketView(validating: $0)) != nil }
        }
    }

    /// Offsets that cross 2^32 for typical sequence numbers, and random ones.
    static func offsets(_ random: inout SplitMix64) -> [UInt32] {
        [0, 1, 0xFFFF_FFFF, 0x8000_0000, 0x7FFF_FFFF, UInt32(truncatingIfNeeded: random.next()),
         UInt32(truncatingIfNeeded: random.next())]
    }

    static func randomV4(_ random: inout SplitMix64) -> TCPEndpoint {
        TCPEndpoint(address: .v4(IPv4Address(rawValue: UInt32(truncatingIfNeeded: random.next()))),
                    port: UInt16(truncatingIfNeeded: random.next()))
    }

    static func fields(_ bytes: [UInt8]) throws -> TCPSegmentRepr {
        try bytes.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) }
    }

    static func verifies(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { (try? IPPacketView(validating: $0))?.verifyChecksums(tcpChecksum: .complete) ?? false }
    }

    @Test func rewriteShiftsExactlyAndTheInverseRestoresEveryByte() throws {
        var random = SplitMix64(seed: 0x5EED)
        var checked = 0
        for original in try Self.capturePackets() {
            // The capture holds partial checksums; make them complete so the incremental path applies.
            var complete = original
            complete.withUnsafeMutableBytes { try? MutableIPPacketView(validating: $0).fillChecksums() }
            let before = try Self.fields(complete)
            for sequenceOffset in Self.offsets(&random) {
                let acknowledgmentOffset = UInt32(truncatingIfNeeded: random.next())
                let rewrite = FlowRewrite(
                    source: Self.randomV4(&random), destination: Self.randomV4(&random),
                    sequenceOffset: TCPSequenceOffset(rawValue: sequenceOffset),
                    acknowledgmentOffset: TCPSequenceOffset(rawValue: acknowledgmentOffset))
                var bytes = complete
                try bytes.withUnsafeMutableBytes { try rewrite.apply(to: $0, checksum: .complete) }
                #expect(Self.verifies(bytes), "checksum after rewrite \(rewrite)")
                let after = try Self.fields(bytes)
                #expect(after.source == rewrite.source && after.destination == rewrite.destination)
                #expect(after.sequenceNumber == before.sequenceNumber.shifted(by: rewrite.sequenceOffset))
                if before.flags.contains(.ack) {
                    #expect(after.acknowledgmentNumber == before.acknowledgmentNumber.shifted(by: rewrite.acknowledgmentOffset))
                }
                #expect(after.payload == before.payload)
                #expect(after.flags == before.flags && after.window == before.window)
                let inverse = rewrite.inverse(originalSource: before.source, originalDestination: before.destination)
                try bytes.withUnsafeMutableBytes { try inverse.apply(to: $0, checksum: .complete) }
                #expect(bytes == complete)
                checked += 1
            }
        }
        #expect(checked == 325 * 7)
    }

    @Test func partialChecksumPacketsGetAFullChecksum() throws {
        var random = SplitMix64(seed: 7)
        for original in try Self.capturePackets().prefix(50) {
            var bytes = original
            let rewrite = FlowRewrite(source: Self.randomV4(&random), destination: Self.randomV4(&random),
                                      sequenceOffset: TCPSequenceOffset(rawValue: 0xFFFF_FF00),
                                      acknowledgmentOffset: TCPSequenceOffset(rawValue: 0x100))
            #expect(!Self.verifies(bytes))  // the capture's checksums are partial
            try bytes.withUnsafeMutableBytes { try rewrite.apply(to: $0, checksum: .partial) }
            #expect(Self.verifies(bytes))
        }
    }

    @Test func sackBlocksAreShiftedAcrossTheWrap() throws {
        let a = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:1::2")!), port: 40000)
        let b = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:2::2")!), port: 22)
        let blocks = SACKBlocks([SACKBlock(left: TCPSequenceNumber(0xFFFF_FFF0), right: TCPSequenceNumber(0x10))])!
        let segment = TCPSegmentRepr.ack(from: a, to: b, sequenceNumber: TCPSequenceNumber(0xFFFF_FFFE),
                                         acknowledgmentNumber: TCPSequenceNumber(0xFFFF_FFF0), window: 100,
                                         options: [.noOperation, .noOperation, .sack(blocks)])
        var bytes = try emitted(segment)
        let c = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00:1::3")!), port: 50000)
        let rewrite = FlowRewrite(source: c, destination: b, sequenceOffset: TCPSequenceOffset(rawValue: 0x20),
                                  acknowledgmentOffset: TCPSequenceOffset(rawValue: 0x20))
        try bytes.withUnsafeMutableBytes { try rewrite.apply(to: $0, checksum: .complete) }
        let after = try Self.fields(bytes)
        #expect(after.sequenceNumber == TCPSequenceNumber(0x1E))
        #expect(after.acknowledgmentNumber == TCPSequenceNumber(0x10))
        #expect(after.options.contains(.sack(SACKBlocks([SACKBlock(left: TCPSequenceNumber(0x10), right: TCPSequenceNumber(0x30))])!)))
        #expect(Self.verifies(bytes))
    }

    @Test func anotherFamilyCannotBeRewrittenInPlace() throws {
        let v4 = try #require(try Self.capturePackets().first)
        var bytes = v4
        let v6 = TCPEndpoint(address: .v6(IPv6Address(parsing: "fd00::1")!), port: 1)
        let rewrite = FlowRewrite(source: v6, destination: v6, sequenceOffset: .zero, acknowledgmentOffset: .zero)
        #expect(throws: WireError.self) { try bytes.withUnsafeMutableBytes { try rewrite.apply(to: $0, checksum: .complete) } }
    }
}
