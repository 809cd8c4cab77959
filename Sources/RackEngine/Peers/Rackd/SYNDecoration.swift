// rackd — adds rackd's hello option to a SYN or SYN-ACK, and reads what a handshake segment says.
//
// The option is inserted in place of the end of the option list, so every other byte of the segment
// (IP header fields, ECN bits, the other options, any payload) stays as the kernel wrote it. The TCP
// checksum is then computed in full: the kernel treats a modified packet as having no checksum offload
// (docs/architecture.md, "Kernel facts: checksums").

/// What rackd reads from the options of a SYN or SYN-ACK.
struct HandshakeOptions: Equatable, Codable {
    var hello: UInt8?
    var windowScale: UInt8 = 0
    var maximumSegmentSize: UInt16 = 536
    var timestamps = false
    /// TCP-MD5 (kind 19) or TCP-AO (kind 29): such connections are never rewritten or managed.
    var authenticated = false

    init(_ options: UnsafeRawBufferPointer) throws(WireError) {
        var iterator = TCPOptionIterator(options)
        while let option = try iterator.next() {
            switch option {
            case .windowScale(let shift): windowScale = min(shift, 14)
            case .maximumSegmentSize(let mss): maximumSegmentSize = mss
            case .timestamps: timestamps = true
            case .unknown(let kind, _) where kind.rawValue == 19 || kind.rawValue == 29: authenticated = true
            default:
                if case .hello(let version)? = try RacksMessage(option: option) { hello = version }
            }
        }
    }
}

enum SYNDecoration {
    /// Two NOPs then the 6-byte hello: 8 bytes, so the option area stays a multiple of 4.
    static var helloBytes: [UInt8] {
        [1, 1] + TCPOptions.bytes(of: RacksMessage.hello(version: RacksMessage.version).option)
    }

    /// The packet with the hello option added, or nil when the option area has no room (40 bytes at most).
    static func addingHello(to packet: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let view = try? IPPacketView(validating: packet) else { return nil }
        let tcp = view.tcp
        let insertion = helloBytes
        guard tcp.headerLength + insertion.count <= 60 else { return nil }
        let segmentStart = tcp.bytes.baseAddress! - packet.baseAddress!
        let segmentEnd = segmentStart + tcp.bytes.count
        // Insert where the option list ends: at its end-of-list option, if any, else after the last option.
        var insertAt = tcp.options.count
        var iterator = TCPOptionIterator(tcp.options)
        while let (option, offset) = (try? iterator.nextWithOffset()) ?? nil {
            if option == .endOfList {
                insertAt = offset
                break
            }
        }
        let split = segmentStart + 20 + insertAt
        var bytes = Array(packet[..<split]) + insertion + Array(packet[split..<segmentEnd])
        let grown = bytes.withUnsafeMutableBytes { buffer -> Bool in
            let headerWords = UInt8(tcp.headerLength + insertion.count) / 4
            // Data offset is the high nibble of byte 12 of the TCP header.
            buffer[segmentStart + 12] = (headerWords << 4) | (buffer[segmentStart + 12] & 0x0F)
            switch view.ip {
            case .v4(let header):
                let total = Int(header.totalLength) + insertion.count
                buffer[2] = UInt8(total >> 8)
                buffer[3] = UInt8(total & 0xFF)
            case .v6(let header):
                let payload = Int(header.payloadLength) + insertion.count
                buffer[4] = UInt8(payload >> 8)
                buffer[5] = UInt8(payload & 0xFF)
            }
            guard let mutable = try? MutableIPPacketView(validating: buffer) else { return false }
            mutable.fillChecksums()
            return true
        }
        return grown ? bytes : nil
    }
}
