// rackd — the TCP control bits.

/// The control bits of a TCP header: the low 12 bits of the 16-bit word at offset 12, below the data
/// offset. Bits 9–11 are reserved; they are kept as they are so a rewrite never changes them.
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible, Codable {
    /// The bits as they sit in the low 12 bits of header bytes 12–13.
    public var rawValue: UInt16

    /// Wraps control bits; bits above the low 12 are dropped.
    public init(rawValue: UInt16) {
        self.rawValue = rawValue & 0x0FFF
    }

    /// FIN: the sender has finished sending.
    public static let fin = TCPFlags(rawValue: 0x001)
    /// SYN: synchronize sequence numbers.
    public static let syn = TCPFlags(rawValue: 0x002)
    /// RST: reset the connection.
    public static let rst = TCPFlags(rawValue: 0x004)
    /// PSH: push.
    public static let psh = TCPFlags(rawValue: 0x008)
    /// ACK: the acknowledgment number is significant.
    public static let ack = TCPFlags(rawValue: 0x010)
    /// URG: the urgent pointer is significant.
    public static let urg = TCPFlags(rawValue: 0x020)
    /// ECE: ECN echo (RFC 3168).
    public static let ece = TCPFlags(rawValue: 0x040)
    /// CWR: congestion window reduced (RFC 3168).
    public static let cwr = TCPFlags(rawValue: 0x080)
    /// AE: accurate ECN (RFC 9768; formerly the NS bit of RFC 3540).
    public static let ae = TCPFlags(rawValue: 0x100)

    private static let names: [(TCPFlags, String)] = [
        (.fin, "FIN"), (.syn, "SYN"), (.rst, "RST"), (.psh, "PSH"), (.ack, "ACK"), (.urg, "URG"), (.ece, "ECE"),
        (.cwr, "CWR"), (.ae, "AE"),
    ]

    /// The set bits by name, e.g. "SYN|ACK"; reserved bits appear in hex; "none" when empty.
    public var description: String {
        var parts = Self.names.filter { contains($0.0) }.map(\.1)
        let reserved = rawValue & 0x0E00
        if reserved != 0 { parts.append("0x" + String(reserved, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}
