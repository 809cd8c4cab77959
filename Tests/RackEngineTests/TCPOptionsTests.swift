// rackd — encoding TCP options, the inline option containers, and finding and shifting SACK blocks in place.

import RackEngine
import Testing

private func encode(_ options: [TCPOption]) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0xA5, count: TCPOptions.encodedLength(of: options))
    let written = try buffer.withUnsafeMutableBytes { try TCPOptions.encode(options, into: $0) }
    #expect(written == buffer.count)
    return buffer
}

private func decode(_ bytes: [UInt8]) throws -> [TCPOption] {
    try bytes.withUnsafeBytes { try TCPOptions.decode($0) }
}

private func blocks(_ pairs: [(UInt32, UInt32)]) -> SACKBlocks {
    SACKBlocks(pairs.map { SACKBlock(left: TCPSequenceNumber($0.0), right: TCPSequenceNumber($0.1)) })!
}

@Suite struct TCPOptionEncodingTests {
    @Test func everyKindRoundTrips() throws {
        let options: [TCPOption] = [
            .maximumSegmentSize(536), .windowScale(14), .sackPermitted, .timestamps(value: .max, echo: 1),
            .sack(blocks([(1, 2)])), .experimental(kind: .experiment2, exid: 0xFFFF, data: TCPOptionData()),
            .unknown(kind: .md5Signature, data: TCPOptionData([1, 2])!), .noOperation,
        ]
        let bytes = try encode(options)
        #expect(bytes.count == 40)
        // 38 bytes of options, then two of padding that decode as end-of-list.
        #expect(try decode(bytes) == options + [.endOfList])
    }

    @Test func paddingIsEndOfList() throws {
        let bytes = try encode([.maximumSegmentSize(1460), .windowScale(7)])
        #expect(bytes == [0x02, 0x04, 0x05, 0xB4, 0x03, 0x03, 0x07, 0x00])
        #expect(try decode(bytes) == [.maximumSegmentSize(1460), .windowScale(7), .endOfList])
        #expect(try encode([]) == [])
    }

    @Test func encodedLengths() {
        #expect(TCPOptions.encodedLength(of: [.sackPermitted]) == 4)
        #expect(TCPOptions.encodedLength(of: [.sack(blocks([(1, 2), (3, 4), (5, 6), (7, 8)]))]) == 36)
        #expect(TCPOption.experimental(exid: 1, data: TCPOptionData([1, 2, 3])!).encodedLength == 7)
        #expect(TCPOption.unknown(kind: TCPOptionKind(rawValue: 30), data: TCPOptionData()).encodedLength == 2)
    }

    @Test func emptySACKIsRefused() {
        var buffer = [UInt8](repeating: 0, count: 4)
        let error = buffer.withUnsafeMutableBytes { raw in
            #expect(throws: WireError.self) { try TCPOptions.encode([.sack(SACKBlocks([])!)], into: raw) }
        }
        #expect(error?.kind == .badOption)
    }

    @Test func shortBufferIsRefused() {
        var buffer = [UInt8](repeating: 0, count: 3)
        let error = buffer.withUnsafeMutableBytes { raw in
            #expect(throws: WireError.self) { try TCPOptions.encode([.sackPermitted], into: raw) }
        }
        #expect(error?.kind == .bufferTooSmall)
    }

    @Test func decodingStopsAtEndOfList() throws {
        #expect(try decode([0x01, 0x00, 0xFF, 0xFF]) == [.noOperation, .endOfList])
    }
}

@Suite struct TCPOptionContainerTests {
    @Test func optionDataCapacity() {
        #expect(TCPOptionData([UInt8](repeating: 7, count: 38)) != nil)
        #expect(TCPOptionData([UInt8](repeating: 7, count: 39)) == nil)
        let data = TCPOptionData([0x52, 0x41, 0x0F])!
        #expect(Array(data) == [0x52, 0x41, 0x0F])
        #expect(data.description == "52 41 0f")
        #expect(data == TCPOptionData([0x52, 0x41, 0x0F]))
        #expect(data != TCPOptionData([0x52, 0x41]))
        #expect(Set([data, TCPOptionData([0x52, 0x41, 0x0F])!]).count == 1)
    }

    @Test func sackBlocksCapacity() {
        let four = (0..<4).map { SACKBlock(left: TCPSequenceNumber($0), right: TCPSequenceNumber($0 + 1)) }
        #expect(SACKBlocks(four)?.count == 4)
        #expect(SACKBlocks(four + four.prefix(1)) == nil)
        #expect(SACKBlocks(four)?[3] == SACKBlock(left: TCPSequenceNumber(3), right: TCPSequenceNumber(4)))
    }
}

@Suite struct SACKRewriteTests {
    @Test func locateFindsTheBlocks() throws {
        let options = try encode([.noOperation, .noOperation, .sack(blocks([(10, 20), (30, 40)]))])
        let location = try options.withUnsafeBytes { try TCPOptions.locateSACKBlocks(in: $0) }
        #expect(location == SACKBlockLocation(offset: 4, count: 2))
        let none = try [UInt8]([0x01, 0x01, 0x01, 0x00]).withUnsafeBytes { try TCPOptions.locateSACKBlocks(in: $0) }
        #expect(none == nil)
    }

    /// An ACK with `options`, complete checksums.
    private func ack(options: [TCPOption]) throws -> [UInt8] {
        try emitted(
            .ack(
                from: TCPEndpoint(address: .v4(IPv4Address(10, 0, 0, 1)), port: 1),
                to: TCPEndpoint(address: .v4(IPv4Address(10, 0, 0, 2)), port: 2),
                sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(2), window: 3,
                options: options))
    }

    @Test(arguments: [
        // Aligned, as Linux sends it.
        [TCPOption.noOperation, .noOperation, .sack(blocks([(0xFFFF_FF00, 0xFFFF_FFF0), (0x10, 0x20)]))],
        // After a lone NOP: every edge sits at an odd offset and straddles checksum words.
        [TCPOption.noOperation, .sack(blocks([(0xFFFF_FF00, 0xFFFF_FFF0), (0x10, 0x20), (0x30, 0x40)]))],
    ])
    func shiftingBlocksInPlaceKeepsTheChecksum(options: [TCPOption]) throws {
        let offset = TCPSequenceOffset(rawValue: 0x8000_1234)
        var bytes = try ack(options: options)
        try withMutablePacket(&bytes) { packet throws in
            try packet.tcp.shiftSACKBlocks(by: offset, updatingChecksum: true)
            #expect(packet.tcp.verifyChecksum(pseudoHeaderSum: packet.pseudoHeaderSum))
        }
        let shifted = options.map { option -> TCPOption in
            guard case .sack(let original) = option else { return option }
            let moved = original.map { block in
                SACKBlock(left: block.left.shifted(by: offset), right: block.right.shifted(by: offset))
            }
            return .sack(SACKBlocks(moved)!)
        }
        #expect(bytes == (try ack(options: shifted)))
    }
}
