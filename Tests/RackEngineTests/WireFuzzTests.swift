// rackd — seeded random and mutated inputs through the parse entry point and the option decoder.
//
// The only assertion is that parsing returns or throws: any read outside the buffer traps, because debug
// builds bounds-check every raw-buffer access. Inputs that ever trapped belong in MalformedInputTests as
// regression cases.

import RackEngine
import Testing

/// Parses `bytes` and, if they form a packet, touches every accessor, decodes the options, rewrites in
/// place and re-emits through the Repr. Returns whether the bytes parsed.
@discardableResult
private func exercise(_ bytes: [UInt8], offset: TCPSequenceOffset) -> Bool {
    var copy = bytes
    return copy.withUnsafeMutableBytes { raw -> Bool in
        guard let packet = try? MutableIPPacketView(validating: raw) else { return false }
        let view = packet.readOnly
        switch view.ip {
        case .v4(let ip):
            _ = (ip.version, ip.headerLength, ip.dscp, ip.ecn, ip.totalLength, ip.identification, ip.flags)
            _ = (ip.fragmentOffset, ip.timeToLive, ip.protocol, ip.headerChecksum, ip.source, ip.destination)
            _ = (ip.options.count, ip.payload.count, ip.verifyHeaderChecksum())
        case .v6(let ip):
            _ = (ip.version, ip.trafficClass, ip.flowLabel, ip.payloadLength, ip.nextHeader, ip.hopLimit)
            _ = (ip.source.description, ip.destination, ip.payload.count, try? ip.locateUpperLayer())
        }
        let tcp = view.tcp
        _ = (tcp.sourcePort, tcp.destinationPort, tcp.sequenceNumber, tcp.acknowledgmentNumber, tcp.flags)
        _ = (tcp.dataOffset, tcp.window, tcp.checksum, tcp.urgentPointer, tcp.options.count, tcp.payload.count)
        _ = (view.verifyChecksums(tcpChecksum: .complete), tcp.verifyPartialChecksum(pseudoHeaderSum: 0))
        var iterator = tcp.makeOptionIterator()
        while (try? iterator.next()) != nil {}

        if let repr = try? TCPSegmentRepr(parsing: view) {
            // Whatever parses re-emits into a valid packet that parses back to the same Repr.
            if let again = try? emitted(repr) {
                #expect((try? withPacket(again) { try TCPSegmentRepr(parsing: $0) }) == repr)
            } else {
                Issue.record("a parsed Repr failed to emit: \(bytes.hex)")
            }
        }

        try? packet.tcp.shiftSACKBlocks(by: offset, updatingChecksum: true)
        packet.tcp.setSequenceNumber(packet.tcp.sequenceNumber.shifted(by: offset), updatingChecksum: true)
        packet.fillChecksums()
        return true
    }
}

@Suite struct WireFuzzTests {
    @Test func randomBuffers() {
        var random = SplitMix64(seed: 0xF022_0001)
        var parsed = 0
        for _ in 0..<10_000 {
            var bytes = random.bytes(Int.random(in: 0..<100, using: &random))
            // Most random bytes die at the version check; steer half of them past it, with plausible lengths.
            if bytes.count >= 40, Bool.random(using: &random) {
                if Bool.random(using: &random) {
                    bytes[0] = 0x45
                    bytes[2] = 0
                    bytes[3] = UInt8(bytes.count)
                    bytes[6] &= 0x40
                    bytes[7] = 0
                    bytes[9] = 6
                } else {
                    bytes[0] = 0x60
                    bytes[4] = 0
                    bytes[5] = UInt8(bytes.count - 40)
                    bytes[6] = [0, 6, 43, 60].randomElement(using: &random)!
                }
            }
            if exercise(bytes, offset: TCPSequenceOffset(rawValue: UInt32.random(in: 0...UInt32.max, using: &random))) {
                parsed += 1
            }
        }
        // Make sure the steering works, so the deeper code is really exercised.
        #expect(parsed > 500)
    }

    @Test func mutatedFixtures() {
        var random = SplitMix64(seed: 0xF022_0002)
        var parsed = 0
        for _ in 0..<10_000 {
            var bytes = WireFixtures.all.randomElement(using: &random)!.bytes
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            }
            switch Int.random(in: 0..<4, using: &random) {
            case 0: bytes.removeLast(Int.random(in: 0...min(8, bytes.count), using: &random))
            case 1: bytes += random.bytes(Int.random(in: 1...8, using: &random))
            default: break
            }
            if exercise(bytes, offset: TCPSequenceOffset(rawValue: UInt32.random(in: 0...UInt32.max, using: &random))) {
                parsed += 1
            }
        }
        #expect(parsed > 1000)
    }

    @Test func randomOptionAreas() {
        var random = SplitMix64(seed: 0xF022_0003)
        var decoded = 0
        for _ in 0..<10_000 {
            var options = random.bytes(Int.random(in: 0...44, using: &random))
            // Bias kinds toward the ones with structure.
            if !options.isEmpty, Bool.random(using: &random) {
                options[0] = [2, 3, 4, 5, 8, 253, 254].randomElement(using: &random)!
            }
            if optionError(options) == nil { decoded += 1 }
            let location = options.withUnsafeBytes { try? TCPOptions.locateSACKBlocks(in: $0) }
            if let location = location ?? nil {
                #expect(location.offset + location.count * 8 <= options.count)
            }
        }
        #expect(decoded > 100)
    }
}
