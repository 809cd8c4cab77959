// rackd — the messages that end a rocks 2.4 reconnection, after authentication (docs/rocks.md, §5.4).
//
// Each side writes, in this order (the heartbeat address first, the reverse of init):
//
//     heartbeat address     raw sockaddr_in of a new UDP socket, on the new local address    16
//     reconnection address  raw sockaddr_in of a new listener, on the new local address      16
//     rcvseq                u32be: application bytes its application has read since init      4
//     buffer sizes          u32be SO_SNDBUF, u32be SO_RCVBUF, the values init reported        4 + 4
//     go-back-N             every byte of its ring from the peer's rcvseq on, unframed        0 … 128 KiB
//
// Five writes and the go-back-N, each message written before the peer's is read (rocks writes one, reads
// the peer's, writes the next: hb.c, reconnect.c, flight.c), on a socket with Nagle on, so a capture shows
// them alone or run together. Rocks starts them on its next SIGALRM after authentication, up to 1 s late,
// and reads them with no timeout, blocking inside its signal handler until they come. The go-back-N
// carries no length: the receiver knows it starts at the rcvseq it reported itself, and what follows it
// is application data; `RocksRecoveryReader` stops at the sizes.
//
// Rocks checks the sizes with assert(): a peer that reports other sizes than at init makes the rock
// abort. It also asserts that the peer's rcvseq lies within its ring, before it reads the sizes.

/// One side's recovery messages.
public struct RocksRecovery: Equatable, Sendable, Codable {
    /// Where this side now takes heartbeats.
    public var heartbeat: RocksSocketAddress
    /// Where this side listens for the next reconnection.
    public var reconnection: RocksSocketAddress
    /// Application bytes this side's application has read since init (rocks' rcvseq), modulo 2³²: the
    /// peer resends everything after it.
    public var received: UInt32
    /// The sizes init reported, again.
    public var sendBufferSize: UInt32
    public var receiveBufferSize: UInt32

    public init(heartbeat: RocksSocketAddress, reconnection: RocksSocketAddress, received: UInt32, sendBufferSize: UInt32,
                receiveBufferSize: UInt32) {
        self.heartbeat = heartbeat
        self.reconnection = reconnection
        self.received = received
        self.sendBufferSize = sendBufferSize
        self.receiveBufferSize = receiveBufferSize
    }

    /// The messages before the go-back-N.
    public static let length = 16 + 16 + 4 + 4 + 4

    /// The five writes, as rocks makes them.
    public var segments: [[UInt8]] {
        [heartbeat.bytes, reconnection.bytes, RocksInit.bigEndian(received), RocksInit.bigEndian(sendBufferSize),
         RocksInit.bigEndian(receiveBufferSize)]
    }

    public var bytes: [UInt8] { segments.flatMap { $0 } }

    /// How many of the last bytes sent the go-back-N resends, given the rcvseq the peer reported.
    ///
    /// `sent` is this side's count of application bytes accepted since init (rocks' sndseq) and `kept` how
    /// many of the most recent of them its ring still holds. Counts are 32-bit and wrap; rackd computes
    /// modulo 2³² (rocks' own assert fails across the wrap). Throws when the peer claims bytes that were
    /// never sent, or asks for bytes older than the ring keeps: either way the stream cannot be resumed.
    public static func resendCount(peerReceived: UInt32, sent: UInt32, kept: Int) throws(WireError) -> Int {
        let behind = sent &- peerReceived
        guard behind <= UInt32(Int32.max) else {
            throw WireError(.badMessage, "rocks peer reports having read \(UInt32.max - behind + 1) bytes more than were "
                + "sent (rcvseq \(peerReceived), sndseq \(sent))")
        }
        guard Int(behind) <= kept else {
            throw WireError(.badMessage, "rocks peer's rcvseq \(peerReceived) is \(behind) bytes behind sndseq \(sent), "
                + "but only the last \(kept) are kept")
        }
        return Int(behind)
    }
}

/// Reads a peer's recovery messages from the new connection, after authentication, in pieces of any size.
public struct RocksRecoveryReader: Sendable, Codable {
    /// The sizes the peer's init reported, which it must report again.
    public let expectedSendBufferSize: UInt32
    public let expectedReceiveBufferSize: UInt32
    private var buffer: [UInt8] = []
    private var failure: WireError?
    public private(set) var result: RocksRecovery?
    /// The peer's new reconnection address, as soon as it is read (before the rest of the messages).
    public private(set) var reconnection: RocksSocketAddress?

    public init(expectedSendBufferSize: UInt32, expectedReceiveBufferSize: UInt32) {
        self.expectedSendBufferSize = expectedSendBufferSize
        self.expectedReceiveBufferSize = expectedReceiveBufferSize
    }

    /// Expects the sizes of the peer's init.
    public init(peerInit: RocksInit) {
        self.init(expectedSendBufferSize: peerInit.sendBufferSize, expectedReceiveBufferSize: peerInit.receiveBufferSize)
    }

    /// Takes the next bytes of the peer's stream and returns how many the messages used: the rest is the
    /// go-back-N, then application data. Throws on a malformed address or changed sizes, and again on every
    /// later call. Takes nothing once `result` is set.
    public mutating func take(_ bytes: some Collection<UInt8>) throws(WireError) -> Int {
        if let failure { throw failure }
        guard result == nil else { return 0 }
        let before = buffer.count
        buffer += bytes.prefix(RocksRecovery.length - before)
        let used = buffer.count - before
        do throws(WireError) {
            // Each message is checked as soon as it is whole, so a bad one stops the reading there.
            if before < 16, buffer.count >= 16 { _ = try RocksSocketAddress(parsing: buffer[0..<16]) }
            if before < 32, buffer.count >= 32 { reconnection = try RocksSocketAddress(parsing: buffer[16..<32]) }
            guard buffer.count == RocksRecovery.length else { return used }
            let recovery = try RocksRecovery(
                heartbeat: RocksSocketAddress(parsing: buffer[0..<16]),
                reconnection: RocksSocketAddress(parsing: buffer[16..<32]),
                received: Self.word(buffer, at: 32), sendBufferSize: Self.word(buffer, at: 36),
                receiveBufferSize: Self.word(buffer, at: 40))
            guard recovery.sendBufferSize == expectedSendBufferSize, recovery.receiveBufferSize == expectedReceiveBufferSize else {
                throw WireError(.badMessage, "rocks buffer sizes changed at reconnection: SO_SNDBUF \(expectedSendBufferSize) "
                    + "→ \(recovery.sendBufferSize), SO_RCVBUF \(expectedReceiveBufferSize) → \(recovery.receiveBufferSize)")
            }
            result = recovery
            buffer = []
            return used
        } catch {
            failure = error
            throw error
        }
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }
}
