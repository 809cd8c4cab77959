// rackd — the raw `struct sockaddr_in` that rocks 2.4 writes on the wire (docs/rocks.md, §3.1).
//
// Rocks sends its reconnection and heartbeat addresses as the 16 bytes of an x86 `struct sockaddr_in`:
//
//     offset  size  byte order       field
//     0       2     little-endian    sin_family = AF_INET (bytes 02 00)
//     2       2     big-endian       port
//     4       4     big-endian       IPv4 address
//     8       8     -                sin_zero (zeros)
//
// The receiving rock passes the bytes unchecked to connect() and sendto(), so what rackd sends must have
// exactly this layout. What rackd receives is checked: anything but AF_INET with zero padding is refused.

/// An IPv4 address and port as rocks writes them.
public struct RocksSocketAddress: Equatable, Sendable, CustomStringConvertible, Codable {
    public var address: IPv4Address
    public var port: UInt16

    public static let length = 16

    public var endpoint: TCPEndpoint { TCPEndpoint(address: .v4(address), port: port) }

    public var description: String { "\(address):\(port)" }

    public var bytes: [UInt8] {
        let raw = address.rawValue
        return [2, 0, UInt8(port >> 8), UInt8(port & 0xFF),
                UInt8(raw >> 24), UInt8((raw >> 16) & 0xFF), UInt8((raw >> 8) & 0xFF), UInt8(raw & 0xFF)]
            + [UInt8](repeating: 0, count: 8)
    }

    public init(address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Reads the 16 bytes at the start of `bytes`.
    public init(parsing bytes: some Collection<UInt8>) throws(WireError) {
        let field = Array(bytes.prefix(Self.length))
        guard field.count == Self.length else {
            throw WireError(.truncated, "a rocks socket address is 16 bytes, got \(field.count)")
        }
        guard field[0] == 2, field[1] == 0 else {
            throw WireError(.badMessage, "rocks socket address of family \(field[0]) \(field[1]), not AF_INET (02 00)")
        }
        guard field[8...].allSatisfy({ $0 == 0 }) else {
            throw WireError(.badMessage, "rocks socket address with non-zero padding")
        }
        port = UInt16(field[2]) << 8 | UInt16(field[3])
        address = IPv4Address(rawValue: UInt32(field[4]) << 24 | UInt32(field[5]) << 16 | UInt32(field[6]) << 8
                              | UInt32(field[7]))
    }
}
