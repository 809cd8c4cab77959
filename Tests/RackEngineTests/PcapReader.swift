// rackd — a test-only reader for classic pcap files, yielding IP packets as NFQUEUE would deliver them.
//
// Captures of real traffic (tcpdump, Wireshark) are the best fixtures for the wire views, but they carry a
// link-layer header NFQUEUE never shows. This strips it for the link types our captures use.

/// A record of a classic pcap file, reduced to what the wire tests need.
struct PcapPacket {
    /// Capture time in nanoseconds since the epoch, whatever resolution the file used.
    var timestampNanoseconds: UInt64
    /// The IP packet (IPv4 or IPv6), link-layer header removed.
    var bytes: [UInt8]
}

/// Why a capture could not be read.
struct PcapError: Error, CustomStringConvertible {
    var description: String
}

/// Reads classic pcap (not pcapng): both byte orders, microsecond and nanosecond timestamps, and link types
/// Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL and SLL2, and raw IP.
enum PcapReader {
    private enum LinkType: UInt32 {
        case ethernet = 1
        case rawIPOpenBSD = 12
        case rawIP = 101
        case linuxCooked = 113
        case linuxCooked2 = 276
    }

    private static let ethertypeIPv4: UInt16 = 0x0800
    private static let ethertypeIPv6: UInt16 = 0x86DD
    private static let vlanEthertypes: Set<UInt16> = [0x8100, 0x88A8]

    /// Every IPv4 or IPv6 packet in the capture, in file order. Frames of other protocols (ARP, …) are skipped.
    static func ipPackets(in file: [UInt8]) throws -> [PcapPacket] {
        guard file.count >= 24 else { throw PcapError(description: "file of \(file.count) bytes has no pcap header") }
        let magic = readUInt32(file, 0, bigEndian: false)
        let bigEndian: Bool
        let nanoseconds: Bool
        switch magic {
        case 0xA1B2_C3D4: (bigEndian, nanoseconds) = (false, false)
        case 0xA1B2_3C4D: (bigEndian, nanoseconds) = (false, true)
        case 0xD4C3_B2A1: (bigEndian, nanoseconds) = (true, false)
        case 0x4D3C_B2A1: (bigEndian, nanoseconds) = (true, true)
        default: throw PcapError(description: "unknown pcap magic 0x\(String(magic, radix: 16))")
        }
        // The low 28 bits carry the link type; the top bits are FCS flags we do not use.
        let rawLinkType = readUInt32(file, 20, bigEndian: bigEndian) & 0x0FFF_FFFF
        guard let linkType = LinkType(rawValue: rawLinkType) else {
            throw PcapError(description: "unsupported link type \(rawLinkType)")
        }

        var packets: [PcapPacket] = []
        var offset = 24
        while offset < file.count {
            guard file.count - offset >= 16 else {
                throw PcapError(description: "truncated record header at \(offset)")
            }
            let seconds = UInt64(readUInt32(file, offset, bigEndian: bigEndian))
            let fraction = UInt64(readUInt32(file, offset + 4, bigEndian: bigEndian))
            let capturedLength = Int(readUInt32(file, offset + 8, bigEndian: bigEndian))
            offset += 16
            guard file.count - offset >= capturedLength else {
                throw PcapError(description: "record at \(offset - 16) claims \(capturedLength) bytes past the end")
            }
            let frame = Array(file[offset..<offset + capturedLength])
            offset += capturedLength
            if let ip = try ipPacket(in: frame, linkType: linkType) {
                let timestamp = seconds * 1_000_000_000 + (nanoseconds ? fraction : fraction * 1000)
                packets.append(PcapPacket(timestampNanoseconds: timestamp, bytes: ip))
            }
        }
        return packets
    }

    /// The IP packet in one frame, or nil if the frame carries something else.
    private static func ipPacket(in frame: [UInt8], linkType: LinkType) throws -> [UInt8]? {
        let headerLength: Int
        let ethertype: UInt16?
        switch linkType {
        case .ethernet:
            var typeOffset = 12
            guard frame.count >= typeOffset + 2 else { throw PcapError(description: "short Ethernet frame") }
            while vlanEthertypes.contains(readUInt16(frame, typeOffset)) {
                typeOffset += 4
                guard frame.count >= typeOffset + 2 else { throw PcapError(description: "short VLAN tag") }
            }
            headerLength = typeOffset + 2
            ethertype = readUInt16(frame, typeOffset)
        case .linuxCooked:
            guard frame.count >= 16 else { throw PcapError(description: "short SLL header") }
            headerLength = 16
            ethertype = readUInt16(frame, 14)
        case .linuxCooked2:
            guard frame.count >= 20 else { throw PcapError(description: "short SLL2 header") }
            headerLength = 20
            ethertype = readUInt16(frame, 0)
        case .rawIP, .rawIPOpenBSD:
            headerLength = 0
            ethertype = nil  // decided by the version nibble below
        }
        let ip = Array(frame[headerLength...])
        switch ethertype {
        case ethertypeIPv4?, ethertypeIPv6?: return ip
        case nil: return (ip.first.map { $0 >> 4 == 4 || $0 >> 4 == 6 } ?? false) ? ip : nil
        default: return nil
        }
    }

    private static func readUInt16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
        UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    private static func readUInt32(_ bytes: [UInt8], _ offset: Int, bigEndian: Bool) -> UInt32 {
        let value = bytes[offset..<offset + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return bigEndian ? value : value.byteSwapped
    }
}
