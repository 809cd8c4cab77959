// rackd — the init messages a rocks 2.4 connection opens with, after the announcement (docs/rocks.md,
// §3).
//
// Each side writes its four messages, in this order, then reads the peer's; nothing carries a type or a
// version, so both ends must agree on the options (rocks' defaults: authentication, heartbeats and
// in-flight recovery all on):
//
//     DH public key      u32be length, then the value, big-endian, minimal length      4 + (1…16)
//     reconnection       raw sockaddr_in (RocksSocketAddress)                            16
//     buffer sizes       u32be SO_SNDBUF, u32be SO_RCVBUF (two writes)                   4 + 4
//     heartbeat address  raw sockaddr_in                                                16
//
// 60 bytes per direction with a 16-byte key. Rocks writes them with TCP_NODELAY on, six writes in all
// (the key's length and its value are two), and each goes out as a segment of its own (`segments`, as
// rocks-basic.pcap shows). The reader takes the peer's stream bytes as they come and is done
// once all four are in; whatever follows is application data.

/// One side's init messages.
public struct RocksInit: Equatable, Sendable, Codable {
    /// The DH public value, big-endian, without leading zero bytes.
    public var publicKey: [UInt8]
    /// Where this side listens for the peer to reconnect.
    public var reconnection: RocksSocketAddress
    /// The sizes rocks reports (and must report again, unchanged, at every reconnection): 65536 each,
    /// as Linux doubles the 32768 rocks forces.
    public var sendBufferSize: UInt32
    public var receiveBufferSize: UInt32
    /// Where this side takes heartbeats.
    public var heartbeat: RocksSocketAddress

    public init(publicKey: [UInt8], reconnection: RocksSocketAddress, sendBufferSize: UInt32, receiveBufferSize: UInt32,
                heartbeat: RocksSocketAddress) {
        self.publicKey = publicKey
        self.reconnection = reconnection
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
        self.heartbeat = heartbeat
    }

    /// A public value can be at most as long as the 128-bit prime.
    public static let maximumKeyLength = 16

    /// The messages as rocks writes them, one segment per write: the key's length, the key, the
    /// reconnection address, each buffer size, the heartbeat address.
    public var segments: [[UInt8]] {
        [Self.bigEndian(UInt32(publicKey.count)), publicKey, reconnection.bytes, Self.bigEndian(sendBufferSize),
         Self.bigEndian(receiveBufferSize), heartbeat.bytes]
    }

    public var bytes: [UInt8] { segments.flatMap { $0 } }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

/// Reads a peer's init messages from its stream, in pieces of any size.
public struct RocksInitReader: Sendable, Codable {
    private var buffer: [UInt8] = []
    public private(set) var result: RocksInit?

    public init() {}

    /// The most bytes the messages can take.
    public static let maximumLength = 4 + RocksInit.maximumKeyLength + 16 + 8 + 16

    /// Takes the next bytes of the peer's stream. Returns how many of them the init messages used (the
    /// rest is application data); throws when the messages are malformed. Once `result` is set, takes
    /// nothing more.
    public mutating func take(_ bytes: some Collection<UInt8>) throws(WireError) -> Int {
        guard result == nil else { return 0 }
        let before = buffer.count
        buffer += bytes.prefix(Self.maximumLength - before)
        guard buffer.count >= 4 else { return buffer.count - before }
        let keyLength = Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
        guard (1...RocksInit.maximumKeyLength).contains(keyLength) else {
            throw WireError(.badMessage, "rocks DH public key of \(keyLength) bytes; a 128-bit group allows 1 to 16")
        }
        let total = 4 + keyLength + 16 + 8 + 16
        guard buffer.count >= total else { return buffer.count - before }
        var offset = 4
        let publicKey = Array(buffer[offset..<offset + keyLength])
        offset += keyLength
        let reconnection = try RocksSocketAddress(parsing: buffer[offset..<offset + 16])
        offset += 16
        let sendBufferSize = Self.word(buffer, at: offset)
        let receiveBufferSize = Self.word(buffer, at: offset + 4)
        offset += 8
        let heartbeat = try RocksSocketAddress(parsing: buffer[offset..<offset + 16])
        result = RocksInit(publicKey: publicKey, reconnection: reconnection, sendBufferSize: sendBufferSize,
                           receiveBufferSize: receiveBufferSize, heartbeat: heartbeat)
        let used = total - before
        buffer = []
        return used
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }
}
