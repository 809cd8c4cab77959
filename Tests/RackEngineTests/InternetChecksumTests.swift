// rackd — the Internet checksum: RFC 1071 sums, pseudo-headers, RFC 1624 incremental updates, and partial
// (CSUMNOTREADY) checksums.

import RackEngine
import Testing

/// The textbook one's complement sum over 16-bit words, to check the 64-bit fast path against.
private func referenceSum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
    var sum = UInt64(initial)
    var index = 0
    while index < bytes.count {
        let high = UInt64(bytes[index]) << 8
        let low = index + 1 < bytes.count ? UInt64(bytes[index + 1]) : 0
        sum += high | low
        index += 2
    }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return UInt32(sum)
}

private func sum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { InternetChecksum.sum($0, initial: initial) }
}

@Suite struct InternetChecksumSumTests {
    @Test func rfc1071Example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        #expect(sum(bytes) == 0xDDF2)
        #expect(InternetChecksum.finish(sum(bytes)) == 0x220D)
    }

    @Test func oddLengthPadsTheLastByteOnTheRight() {
        #expect(sum([0x01]) == 0x0100)
        #expect(sum([0x00, 0x01, 0xF2]) == 0xF201)
        #expect(sum([]) == 0)
    }

    @Test func fastPathMatchesTheReference() {
        var random = SplitMix64(seed: 1071)
        for _ in 0..<2000 {
            let bytes = random.bytes(Int.random(in: 0..<300, using: &random))
            let initial = UInt32.random(in: 0...0xFFFF, using: &random)
            #expect(sum(bytes, initial: initial) == referenceSum(bytes, initial: initial))
        }
        // All-ones input exercises every end-around carry.
        let ones = [UInt8](repeating: 0xFF, count: 65535)
        #expect(sum(ones) == referenceSum(ones))
    }

    @Test func sumsCombineAcrossAnEvenSplit() {
        var random = SplitMix64(seed: 2)
        for _ in 0..<200 {
            let first = random.bytes(2 * Int.random(in: 0..<50, using: &random))
            let second = random.bytes(Int.random(in: 0..<100, using: &random))
            #expect(InternetChecksum.combine(sum(first), sum(second)) == sum(first + second))
            #expect(sum(second, initial: sum(first)) == sum(first + second))
        }
    }

    @Test func ipv4PseudoHeader() {
        // From rocks-basic.pcap: 10.201.0.1 → 10.201.0.2, a 40-byte SYN; Linux left 0x15c3 in the checksum.
        let pseudo = InternetChecksum.pseudoHeaderIPv4(
            source: IPv4Address(10, 201, 0, 1), destination: IPv4Address(10, 201, 0, 2), protocol: .tcp, length: 40)
        #expect(InternetChecksum.fold(pseudo) == 0x15C3)
    }

    @Test func ipv6PseudoHeaderMatchesItsBytes() {
        let source = IPv6Address(high: 0xFE80_0000_0000_0000, low: 0xA8C2_42FF_FE58_2DC4)
        let destination = IPv6Address(high: 0x2001_0DB8_FFFF_FFFF, low: 0xFFFF_FFFF_FFFF_0001)
        let length: UInt32 = 0x0001_0004
        let bytes = source.bytes + destination.bytes + [0x00, 0x01, 0x00, 0x04] + [0, 0, 0, 6]
        let pseudo = InternetChecksum.pseudoHeaderIPv6(
            source: source, destination: destination, protocol: .tcp, length: length)
        #expect(InternetChecksum.fold(pseudo) == UInt16(referenceSum(bytes)))
    }

    @Test func checksumPolicy() throws {
        var corrupted = WireFixtures.synIPv4
        corrupted[corrupted.count - 1] ^= 0x01
        try withPacket(corrupted) { packet throws in
            #expect(!ChecksumPolicy.verify.accepts(packet, tcpChecksum: .complete))
            #expect(ChecksumPolicy.trust.accepts(packet, tcpChecksum: .complete))
            // A partial checksum is not computed yet, so its TCP part is not checked.
            #expect(ChecksumPolicy.verify.accepts(packet, tcpChecksum: .partial))
        }
        try withPacket(WireFixtures.synIPv4) { #expect(ChecksumPolicy.verify.accepts($0, tcpChecksum: .complete)) }
    }
}

@Suite struct IncrementalChecksumTests {
    @Test func rfc1624Example() {
        // RFC 1624 §4: HC = 0xDD2F, m = 0x5555 → m' = 0x3285. The recomputed checksum is 0x0000; RFC 1141's
        // equation gives the wrong 0xFFFF, equation 3 gives 0x0000.
        #expect(
            InternetChecksum.incrementalUpdate(checksum: 0xDD2F, old: UInt16(0x5555), new: UInt16(0x3285)) == 0x0000)
        let rest: UInt32 = 0xCD7A
        #expect(InternetChecksum.finish(rest + 0x5555) == 0xDD2F)
        #expect(InternetChecksum.finish(rest + 0x3285) == 0x0000)
    }

    @Test func thirtyTwoBitUpdateIsTwoSixteenBitUpdates() {
        var random = SplitMix64(seed: 32)
        for _ in 0..<1000 {
            let checksum = UInt16.random(in: 0...0xFFFE, using: &random)
            let old = UInt32.random(in: 0...UInt32.max, using: &random)
            let new = UInt32.random(in: 0...UInt32.max, using: &random)
            let high = InternetChecksum.incrementalUpdate(
                checksum: checksum, old: UInt16(old >> 16), new: UInt16(new >> 16))
            let both = InternetChecksum.incrementalUpdate(
                checksum: high, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
            #expect(InternetChecksum.incrementalUpdate(checksum: checksum, old: old, new: new) == both)
        }
    }

    @Test func updateThatMustYieldZeroOnARealPacket() throws {
        // Choose a new urgent pointer that makes the segment's sum 0xFFFF ("negative zero"): the full recompute
        // then writes 0x0000, and the O(1) update must do the same (RFC 1624 §3), not 0xFFFF.
        var bytes = WireFixtures.ackWithDataIPv4
        try withMutablePacket(&bytes) { packet throws in
            let tcp = packet.tcp
            let old = tcp.urgentPointer
            let target = InternetChecksum.fold(UInt32(tcp.checksum) + UInt32(old))
            tcp.setUrgentPointer(target, updatingChecksum: true)
            #expect(tcp.checksum == 0x0000)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            let incremental = tcp.checksum
            tcp.fillChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
            #expect(tcp.checksum == incremental)
        }
    }

    /// A random segment of either family with random options and payload, complete checksums.
    private func randomSegment(_ random: inout SplitMix64) throws -> [UInt8] {
        let v6 = Bool.random(using: &random)
        func address() -> IPAddress {
            v6
                ? .v6(IPv6Address(high: random.next(), low: random.next()))
                : .v4(IPv4Address(rawValue: UInt32.random(in: 0...UInt32.max, using: &random)))
        }
        let optionChoices: [[TCPOption]] = [
            [],
            [.noOperation, .noOperation, .timestamps(value: 1, echo: 2)],
            [.noOperation, .sack(SACKBlocks([SACKBlock(left: TCPSequenceNumber(5), right: TCPSequenceNumber(9))])!)],
            [.maximumSegmentSize(1460), .sackPermitted, .windowScale(7)],
        ]
        let repr = TCPSegmentRepr(
            source: TCPEndpoint(address: address(), port: UInt16.random(in: 0...UInt16.max, using: &random)),
            destination: TCPEndpoint(address: address(), port: UInt16.random(in: 0...UInt16.max, using: &random)),
            sequenceNumber: TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &random)),
            acknowledgmentNumber: TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &random)),
            flags: TCPFlags(rawValue: UInt16.random(in: 0...0x1FF, using: &random)),
            window: UInt16.random(in: 0...UInt16.max, using: &random),
            options: optionChoices.randomElement(using: &random)!,
            payload: random.bytes(Int.random(in: 0..<200, using: &random)))
        return try emitted(repr)
    }

    @Test func randomChangesMatchAFullRecompute() throws {
        var random = SplitMix64(seed: 1624)
        for _ in 0..<500 {
            var incremental = try randomSegment(&random)
            var recomputed = incremental
            for _ in 0..<Int.random(in: 1...6, using: &random) {
                let field = Int.random(in: 0..<8, using: &random)
                let value = UInt32.random(in: 0...UInt32.max, using: &random)
                let low = UInt16(truncatingIfNeeded: value)
                try withMutablePacket(&incremental) { packet throws in
                    let tcp = packet.tcp
                    switch field {
                    case 0: tcp.setSourcePort(low, updatingChecksum: true)
                    case 1: tcp.setDestinationPort(low, updatingChecksum: true)
                    case 2: tcp.setSequenceNumber(TCPSequenceNumber(value), updatingChecksum: true)
                    case 3: tcp.setAcknowledgmentNumber(TCPSequenceNumber(value), updatingChecksum: true)
                    case 4: tcp.setWindow(low, updatingChecksum: true)
                    case 5: tcp.setFlags(TCPFlags(rawValue: low), updatingChecksum: true)
                    case 6: try tcp.shiftSACKBlocks(by: TCPSequenceOffset(rawValue: value), updatingChecksum: true)
                    default:
                        // A new source address changes the pseudo-header, not the segment.
                        let before = packet.pseudoHeaderSum
                        switch packet.ip {
                        case .v4(let ip): ip.source = IPv4Address(rawValue: value)
                        case .v6(let ip): ip.source = IPv6Address(high: UInt64(value), low: ~UInt64(value))
                        }
                        tcp.updateChecksum(pseudoHeaderSumChangedFrom: before, to: packet.pseudoHeaderSum)
                        if case .v4(let ip) = packet.ip { ip.fillHeaderChecksum() }
                    }
                    #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
                }
                try withMutablePacket(&recomputed) { packet throws in
                    let tcp = packet.tcp
                    switch field {
                    case 0: tcp.sourcePort = low
                    case 1: tcp.destinationPort = low
                    case 2: tcp.sequenceNumber = TCPSequenceNumber(value)
                    case 3: tcp.acknowledgmentNumber = TCPSequenceNumber(value)
                    case 4: tcp.window = low
                    case 5: tcp.flags = TCPFlags(rawValue: low)
                    case 6: try tcp.shiftSACKBlocks(by: TCPSequenceOffset(rawValue: value), updatingChecksum: false)
                    default:
                        switch packet.ip {
                        case .v4(let ip): ip.source = IPv4Address(rawValue: value)
                        case .v6(let ip): ip.source = IPv6Address(high: UInt64(value), low: ~UInt64(value))
                        }
                    }
                    packet.fillChecksums()
                }
                #expect(incremental == recomputed)
            }
        }
    }
}

@Suite struct PartialChecksumTests {
    @Test func partialChecksumIsRecognisedAndCanBeCompleted() throws {
        var bytes = WireFixtures.ackWithDataIPv4
        try withMutablePacket(&bytes) { packet throws in
            let tcp = packet.tcp
            tcp.fillPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
            #expect(tcp.checksum == InternetChecksum.fold(packet.pseudoHeaderSum))
            #expect(tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(!tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(packet.readOnly.verifyChecksums(tcpChecksum: .partial))
            #expect(!packet.readOnly.verifyChecksums(tcpChecksum: .complete))

            // Rewriting a CSUMNOTREADY packet: change the fields, then fill the full checksum.
            tcp.sequenceNumber = tcp.sequenceNumber + 1000
            tcp.fillChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
            #expect(tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(!tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }

    @Test func incrementalUpdateOfAPartialChecksumIsNotAFullChecksum() throws {
        // Why the O(1) path is documented as valid only for complete checksums: applied to a partial checksum
        // it yields a value that is neither a correct full checksum nor the pseudo-header sum any more.
        var bytes = WireFixtures.ackWithDataIPv4
        try withMutablePacket(&bytes) { packet throws in
            let tcp = packet.tcp
            tcp.fillPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
            tcp.setSequenceNumber(tcp.sequenceNumber + 1000, updatingChecksum: true)
            #expect(!tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
            #expect(!tcp.verifyPartialChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
    }
}
