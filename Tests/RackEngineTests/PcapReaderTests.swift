// rackd — the test-only pcap reader, on captures synthesized in each format it claims to read.

import Testing

/// A classic pcap file holding `frames`, in the given byte order and timestamp resolution.
private func capture(
    linkType: UInt32, frames: [[UInt8]], bigEndian: Bool = false, nanoseconds: Bool = false
) -> [UInt8] {
    func word(_ value: UInt32) -> [UInt8] {
        let bytes = [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
        return bigEndian ? bytes : bytes.reversed()
    }
    func half(_ value: UInt16) -> [UInt8] {
        bigEndian ? [UInt8(value >> 8), UInt8(value & 0xFF)] : [UInt8(value & 0xFF), UInt8(value >> 8)]
    }
    var file = word(nanoseconds ? 0xA1B2_3C4D : 0xA1B2_C3D4) + half(2) + half(4) + word(0) + word(0) + word(262_144)
    file += word(linkType)
    for (index, frame) in frames.enumerated() {
        let length = word(UInt32(frame.count))
        file += word(1_700_000_000) + word(UInt32(index) * 1000 + 1) + length + length + frame
    }
    return file
}

private let packets = [WireFixtures.synIPv4, WireFixtures.synAckIPv6]
private let arp: [UInt8] =
    [UInt8](repeating: 0xFF, count: 6) + [UInt8](repeating: 1, count: 6) + [0x08, 0x06]
    + [UInt8](repeating: 0, count: 28)

private func ethernet(_ ip: [UInt8], vlan: Bool = false) -> [UInt8] {
    let type: [UInt8] = ip[0] >> 4 == 4 ? [0x08, 0x00] : [0x86, 0xDD]
    let tag: [UInt8] = vlan ? [0x81, 0x00, 0x00, 0x2A] : []
    return [UInt8](repeating: 0x02, count: 12) + tag + type + ip
}

@Suite struct PcapReaderTests {
    @Test(arguments: [(false, false), (true, false), (false, true), (true, true)])
    func byteOrdersAndResolutions(bigEndian: Bool, nanoseconds: Bool) throws {
        let file = capture(
            linkType: 1, frames: packets.map { ethernet($0) } + [arp], bigEndian: bigEndian, nanoseconds: nanoseconds)
        let read = try PcapReader.ipPackets(in: file)
        #expect(read.map(\.bytes) == packets)
        #expect(read.first?.timestampNanoseconds == 1_700_000_000 * 1_000_000_000 + (nanoseconds ? 1 : 1000))
    }

    @Test func ethernetWithVLANTag() throws {
        let file = capture(linkType: 1, frames: packets.map { ethernet($0, vlan: true) })
        #expect(try PcapReader.ipPackets(in: file).map(\.bytes) == packets)
    }

    @Test func linuxCookedCaptures() throws {
        func sll(_ ip: [UInt8]) -> [UInt8] {
            [UInt8](repeating: 0, count: 14) + (ip[0] >> 4 == 4 ? [0x08, 0x00] : [0x86, 0xDD]) + ip
        }
        func sll2(_ ip: [UInt8]) -> [UInt8] {
            (ip[0] >> 4 == 4 ? [0x08, 0x00] : [0x86, 0xDD]) + [UInt8](repeating: 0, count: 18) + ip
        }
        #expect(try PcapReader.ipPackets(in: capture(linkType: 113, frames: packets.map(sll))).map(\.bytes) == packets)
        #expect(try PcapReader.ipPackets(in: capture(linkType: 276, frames: packets.map(sll2))).map(\.bytes) == packets)
    }

    @Test(arguments: [101, 12] as [UInt32])
    func rawIP(linkType: UInt32) throws {
        #expect(try PcapReader.ipPackets(in: capture(linkType: linkType, frames: packets)).map(\.bytes) == packets)
    }

    @Test func damagedFilesThrow() {
        #expect(throws: PcapError.self) { try PcapReader.ipPackets(in: [0, 1, 2]) }
        #expect(throws: PcapError.self) { try PcapReader.ipPackets(in: [UInt8](repeating: 0x42, count: 24)) }
        let truncated = capture(linkType: 101, frames: packets).dropLast()
        #expect(throws: PcapError.self) { try PcapReader.ipPackets(in: Array(truncated)) }
    }
}
