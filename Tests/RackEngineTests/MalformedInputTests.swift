// rackd — malformed and truncated packets and options: each is refused with the right error, never a trap.

import RackEngine
import Testing

@Suite struct MalformedPacketTests {
    @Test func everyStrictPrefixOfEveryFixtureIsRefused() {
        for (name, bytes) in WireFixtures.all {
            for length in 0..<bytes.count {
                // Every length field points past a prefix, so none may parse.
                let error = packetError(Array(bytes[0..<length]))
                #expect(error != nil, "\(name) prefix of \(length) bytes parsed")
            }
            #expect(packetError(bytes) == nil, "\(name) itself must parse")
        }
    }

    @Test func trailingBytesAfterThePacketAreIgnored() throws {
        // Link-layer padding: the IP length fields, not the buffer, bound the segment.
        for (name, bytes) in WireFixtures.all {
            let segment = try withPacket(bytes) { Array($0.tcp.bytes) }
            try withPacket(bytes + [0, 0, 0, 0, 0, 0]) { packet throws in
                #expect(packet.verifyChecksums(tcpChecksum: .complete), "\(name)")
                #expect(Array(packet.tcp.bytes) == segment, "\(name)")
            }
        }
    }

    @Test func emptyBufferIsTruncated() {
        #expect(packetError([])?.kind == .truncated)
    }

    @Test func ipVersionOtherThanFourOrSix() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[0] = 0x55 })
        #expect(error?.kind == .badVersion)
        #expect(error?.description == "badVersion: IP version 5 is neither 4 nor 6")
    }

    @Test func ipv4HeaderLengthBelowFive() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[0] = 0x44 })
        #expect(error?.kind == .badHeaderLength)
        #expect(error?.description == "badHeaderLength: IPv4 header length 4 words is below the minimum 5")
    }

    @Test func ipv6BytesInAnIPv4View() {
        WireFixtures.synAckIPv6.withUnsafeBytes { raw in
            #expect(throws: WireError.self) { try IPv4HeaderView(validating: raw) }
            do throws(WireError) {
                _ = try IPv4HeaderView(validating: raw)
            } catch {
                #expect(error.kind == .badVersion)
            }
        }
        WireFixtures.synIPv4.withUnsafeBytes { raw in
            do throws(WireError) {
                _ = try IPv6HeaderView(validating: raw)
                Issue.record("an IPv4 packet passed as IPv6")
            } catch {
                #expect(error.kind == .badVersion)
            }
        }
    }

    @Test func ipv4HeaderLongerThanTheBuffer() {
        // IHL 15 (60 bytes) in a 40-byte packet.
        let bytes = modified(Array(WireFixtures.synIPv4[0..<40])) {
            $0[0] = 0x4F
            $0[3] = 40
        }
        #expect(packetError(bytes)?.kind == .truncated)
    }

    @Test func ipv4TotalLengthBeyondTheBuffer() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[3] = 61 })
        #expect(error?.kind == .truncated)
        #expect(
            error?.description == "truncated: IPv4 packet of total length 61 needs 61 bytes but only 60 are present")
    }

    @Test func ipv4TotalLengthBelowTheHeader() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[3] = 19 })
        #expect(error?.kind == .badTotalLength)
    }

    @Test func ipv6PayloadLengthBeyondTheBuffer() {
        #expect(packetError(modified(WireFixtures.synAckIPv6) { $0[5] = 41 })?.kind == .truncated)
    }

    @Test func ipv4FragmentsAreRefused() {
        #expect(packetError(modified(WireFixtures.synIPv4) { $0[6] = 0x20 })?.kind == .fragmented)  // MF
        #expect(packetError(modified(WireFixtures.synIPv4) { $0[7] = 0x01 })?.kind == .fragmented)  // offset 8
    }

    @Test func nonTCPIsNotTCP() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[9] = 17 })
        #expect(error?.kind == .notTCP)
        #expect(error?.description == "notTCP: IPv4 protocol 17 is not TCP (6)")
    }

    @Test func tcpDataOffsetBelowFive() {
        let error = packetError(modified(WireFixtures.synIPv4) { $0[32] = 0x40 })
        #expect(error?.kind == .badDataOffset)
        #expect(error?.description == "badDataOffset: TCP data offset 4 words is below the minimum 5")
    }

    @Test func tcpDataOffsetBeyondTheSegment() {
        // The segment holds 45 bytes; data offset 15 claims 60.
        let error = packetError(modified(WireFixtures.ackWithDataIPv4) { $0[32] = 0xF0 })
        #expect(error?.kind == .badDataOffset)
        #expect(error?.description == "badDataOffset: TCP data offset 15 words (60 bytes) exceeds the 45-byte segment")
    }

    @Test func tcpHeaderCutShortByTheIPLength() {
        // Total length 30 leaves 10 bytes for TCP, though the buffer holds more.
        #expect(packetError(modified(WireFixtures.synIPv4) { $0[3] = 30 })?.kind == .truncated)
    }
}

@Suite struct MalformedOptionTests {
    @Test(arguments: [0, 1])
    func optionLengthBelowTwo(length: UInt8) {
        let error = optionError([0x02, length, 0x05, 0xB4])
        #expect(error?.kind == .badOption)
        #expect(
            error?.description == "badOption: TCP option kind 2 at offset 0 has length \(length), below the minimum 2")
    }

    @Test func optionLengthOverrunningTheOptionArea() {
        let error = optionError([0x01, 0x08, 0x0A, 0x00])
        #expect(error?.kind == .badOption)
        #expect(
            error?.description
                == "badOption: TCP option kind 8 at offset 1 has length 10 but only 3 bytes of options remain")
    }

    @Test func optionWithoutALengthByte() {
        #expect(optionError([0x01, 0x01, 0x01, 0x02])?.kind == .badOption)
    }

    @Test func mssWithLengthThree() {
        let error = optionError([0x02, 0x03, 0x05, 0x01])
        #expect(error?.description == "badOption: TCP MSS option at offset 0 has length 3 instead of 4")
    }

    @Test func fixedLengthsAreEnforced() {
        #expect(optionError([0x03, 0x04, 0x07, 0x00])?.kind == .badOption)  // window scale, length 4
        #expect(optionError([0x04, 0x03, 0x00, 0x00])?.kind == .badOption)  // SACK permitted, length 3
        #expect(optionError([0x08, 0x0C] + [UInt8](repeating: 0, count: 10))?.kind == .badOption)  // timestamps, 12
    }

    @Test func sackWithLengthEleven() {
        let error = optionError([0x05, 0x0B] + [UInt8](repeating: 0, count: 9) + [0x01])
        #expect(error?.kind == .badOption)
        #expect(error?.description == "badOption: TCP SACK option at offset 0 has length 11, not 2 + 8n with n ≥ 1")
        #expect(optionError([0x05, 0x02, 0x01, 0x01])?.kind == .badOption)  // no blocks
    }

    @Test func experimentalOptionTooShortForItsExID() {
        let error = optionError([0xFD, 0x03, 0x52, 0x01])
        #expect(error?.kind == .badOption)
        #expect(error?.description.contains("too short for its 16-bit ExID") == true)
        #expect(optionError([0xFE, 0x02, 0x01, 0x01])?.kind == .badOption)
    }

    @Test func optionLongerThanAnyTCPHeaderAllows() {
        #expect(optionError([0x63, 0x2A] + [UInt8](repeating: 0, count: 40))?.kind == .badOption)
    }

    @Test func iteratorStopsAfterAnError() {
        [UInt8]([0x02, 0x00, 0x01, 0x01]).withUnsafeBytes { raw in
            var iterator = TCPOptionIterator(raw)
            #expect(throws: WireError.self) { try iterator.next() }
            #expect((try? iterator.next()) == nil)
        }
    }

    @Test func malformedOptionsInAPacketSurfaceOnlyWhenIterated() throws {
        // Parsing the packet succeeds (options are checked lazily); decoding them fails.
        let bytes = modified(WireFixtures.synIPv4) { $0[41] = 0x01 }  // MSS length 1
        try withPacket(bytes) { packet throws in
            var iterator = packet.tcp.makeOptionIterator()
            #expect(throws: WireError.self) { while try iterator.next() != nil {} }
            #expect(throws: WireError.self) { try TCPSegmentRepr(parsing: packet) }
        }
        var mutable = bytes
        try withMutablePacket(&mutable) { packet throws in
            #expect(throws: WireError.self) { try packet.tcp.shiftSACKBlocks(by: .zero, updatingChecksum: true) }
        }
        #expect(mutable == bytes)
    }
}
