// rackd — every TCP packet of a real capture (rocks-basic.pcap) through the views and back.
//
// The capture was taken on a veth with checksum offload, so every TCP checksum in it is partial: the field
// holds the folded pseudo-header sum, exactly as NFQUEUE shows locally generated packets flagged
// CSUMNOTREADY (tcpdump calls them "incorrect"). That makes it a fixture for both checksum states: as
// captured (partial) and after filling the full checksum (complete).

import Foundation
import RackEngine
import Testing

@Suite struct RocksCaptureTests {
    /// TCP packets in rocks-basic.pcap (counted with tcpdump): 325 of its 333 frames, all IPv4. The other 8
    /// are 6 one-byte UDP datagrams between the two hosts and 2 ICMPv6 router solicitations.
    static let expectedTCPPacketCount = 325
    static let expectedOtherPacketCount = 8

    static func capture() throws -> [PcapPacket] {
        let directory = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        let data = try Data(contentsOf: directory.appendingPathComponent("rocks-basic.pcap"))
        return try PcapReader.ipPackets(in: [UInt8](data))
    }

    /// The TCP packets of the capture; asserts everything else is reported as not TCP.
    static func tcpPackets() throws -> [[UInt8]] {
        var tcp: [[UInt8]] = []
        var other = 0
        for packet in try capture() {
            if let error = packetError(packet.bytes) {
                #expect(error.kind == .notTCP, "\(error)")
                other += 1
            } else {
                tcp.append(packet.bytes)
            }
        }
        #expect(other == expectedOtherPacketCount)
        return tcp
    }

    @Test func everyTCPPacketParsesAndItsChecksumsCheckOut() throws {
        let packets = try Self.tcpPackets()
        #expect(packets.count == Self.expectedTCPPacketCount)
        var partial = 0
        var complete = 0
        var optionsSeen = 0
        for bytes in packets {
            try withPacket(bytes) { packet throws in
                guard case .v4(let ip) = packet.ip else {
                    Issue.record("rocks-basic.pcap holds only IPv4 TCP")
                    return
                }
                #expect(ip.verifyHeaderChecksum(), "IPv4 header checksum of \(bytes.hex)")
                var iterator = packet.tcp.makeOptionIterator()
                while try iterator.next() != nil { optionsSeen += 1 }
                if packet.tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum) {
                    complete += 1
                } else if packet.tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum) {
                    partial += 1
                } else {
                    Issue.record("TCP checksum neither complete nor partial: \(bytes.hex)")
                }
                #expect(packet.verifyChecksums(tcpChecksum: .partial))
            }
        }
        #expect(partial == Self.expectedTCPPacketCount)
        #expect(complete == 0)
        #expect(optionsSeen > 0)
    }

    @Test func noOpRewriteReproducesEveryPacket() throws {
        let packets = try Self.tcpPackets()
        var checked = 0
        for original in packets {
            // As captured: rewrite every field, refill the IPv4 header checksum and the partial TCP checksum.
            var asCaptured = original
            try withMutablePacket(&asCaptured) { packet throws in
                rewriteEveryFieldInPlace(packet)
                if case .v4(let ip) = packet.ip { ip.fillHeaderChecksum() }
                packet.tcp.fillPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
            }
            #expect(asCaptured == original)

            // Completed: the full checksum, as rackd must write after modifying a CSUMNOTREADY packet.
            var completed = original
            try withMutablePacket(&completed) { packet throws in
                packet.fillChecksums()
                #expect(packet.tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
                #expect(packet.readOnly.verifyChecksums(tcpChecksum: .complete))
            }

            // Full recompute after a no-op rewrite.
            var recomputed = completed
            try withMutablePacket(&recomputed) { packet throws in
                rewriteEveryFieldInPlace(packet)
                packet.fillChecksums()
            }
            #expect(recomputed == completed)

            // The O(1) path after a no-op rewrite.
            var incremental = completed
            try withMutablePacket(&incremental) { packet throws in
                try rewriteEveryFieldIncrementally(packet.tcp)
            }
            #expect(incremental == completed)
            checked += 1
        }
        #expect(checked > 0)
        #expect(checked == Self.expectedTCPPacketCount)
    }

    @Test func shiftingSequenceSpacesIncrementallyMatchesAFullRecompute() throws {
        var random = SplitMix64(seed: 0x5EED_0001)
        for original in try Self.tcpPackets() {
            var completed = original
            try withMutablePacket(&completed) { $0.fillChecksums() }
            let sendOffset = TCPSequenceOffset(rawValue: random.next(upperBound: UInt32.max))
            let receiveOffset = TCPSequenceOffset(rawValue: random.next(upperBound: UInt32.max))

            var incremental = completed
            try withMutablePacket(&incremental) { packet throws in
                let tcp = packet.tcp
                tcp.setSequenceNumber(tcp.sequenceNumber.shifted(by: sendOffset), updatingChecksum: true)
                tcp.setAcknowledgmentNumber(tcp.acknowledgmentNumber.shifted(by: receiveOffset), updatingChecksum: true)
                try tcp.shiftSACKBlocks(by: receiveOffset, updatingChecksum: true)
                #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            }
            var recomputed = completed
            try withMutablePacket(&recomputed) { packet throws in
                let tcp = packet.tcp
                tcp.sequenceNumber = tcp.sequenceNumber.shifted(by: sendOffset)
                tcp.acknowledgmentNumber = tcp.acknowledgmentNumber.shifted(by: receiveOffset)
                try tcp.shiftSACKBlocks(by: receiveOffset, updatingChecksum: false)
                packet.fillChecksums()
            }
            #expect(incremental == recomputed)
        }
    }
}
