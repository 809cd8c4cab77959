// rackd — what one connection to a rocks 2.4 peer keeps (docs/rocks.md; §14 maps it onto the core).
//
// Setup, in the rock's own order (docs/rocks.md §2, §3):
//
//     client  SYN held, probe (RocksDetection.swift) ── rock ──► SYN released
//             handshake ─► our announcement ─► scan for theirs (a banner before it reaches the socket)
//             ─► our init (six segments) ─► read theirs ─► healthy
//     server  handshake ─► the client's first bytes: a FIN (a probe: our announcement, then the socket's
//             FIN) · the announcement (ours after whatever the socket wrote, then our init; read theirs
//             ─► healthy) · anything else (an ordinary client: released)
//
// rackd's bytes are sent as stream bytes of the connection, retransmitted until the rock acknowledges
// them; the socket's bytes move past them (`RocksSplice`). A client's SYN goes out 76 lower, so that the
// move and the shift cancel and, after both inits, the flow needs rackd only for the ring, a reset and a
// FIN (`handshakeMapping`, `leavesNoOffset`; docs/rocks.md §14, "In the kernel"). Heartbeats are UDP datagrams
// (Connection+RocksHeartbeats.swift).

struct RocksPeer: Codable {
    enum Stage: Hashable, Codable {
        /// Server: nothing from the client yet.
        case awaitingClient
        /// Server: a probe; our announcement goes before the socket's FIN.
        case answeringProbe
        /// Client: our announcement is out; the rock's is not found yet.
        case scanning
        /// The rock's announcement is in; its init messages are being read.
        case readingInit
        /// Both sides' init messages are through: application bytes only.
        case established
    }

    var stage: Stage
    var splice = RocksSplice()
    /// rackd's own bytes for this connection (the announcement, then the init messages), and where each
    /// of its writes ends: each goes out as a segment of its own, as rocks writes them.
    var ours: [UInt8] = []
    var oursWriteEnds: [Int] = []
    /// How many of `ours` may go out now (client: the init waits for the rock's announcement).
    var oursReleased = 0
    /// How many of `ours` the rock acknowledged.
    var oursAcknowledged = 0
    /// rackd's bytes end with a FIN (a probe's answer).
    var oursEndWithFIN = false
    /// How many of `ours` went out at least once, and how far the rock's window lets them go (nil: no
    /// limit; the init is small, a go-back-N after a reconnection is not).
    var oursSent = 0
    var oursWindowLimit: Int?
    var retransmission = Retransmission()

    /// Our DH private value; the peer's init once read, and the Blowfish key it gives (reconnections use it).
    let privateKey: UInt128
    var initReader = RocksInitReader()
    var peerInit: RocksInit?
    var blowfishKey: [UInt8]?
    /// The cipher under that key, and the last block of every challenge under it (the padding's): how a
    /// rock's reconnection to the one reconnection port names its connection (docs/rocks.md §15).
    var cipher: Blowfish?
    var challengeFingerprint: [UInt8]?

    /// Where rocks' byte counts start, in the socket's sequence numbers: the socket's first byte after
    /// rackd's init (sent) and the rock's first byte after its init (received). Counts wrap at 2³².
    var sendOrigin: TCPSequenceNumber?
    var receiveOrigin: TCPSequenceNumber?
    /// The last bytes the socket sent toward the rock, for a go-back-N.
    var ring: RocksSendRing?
    /// The rock's latest acknowledgement on the wire (where a reset must land to be taken).
    var rockAcknowledgment: TCPSequenceNumber?
    /// The rock's reconnection address (its init, then its latest recovery messages).
    var rockReconnectionAddress: TCPEndpoint?
    /// The window scale of the rock's current tuple.
    var rockWindowScale: UInt8 = 0
    /// Links and 1of2 while reconnecting.
    var reconnection = RocksReconnection()

    /// Client: the wire position up to which the rock's bytes were passed to the socket as banner.
    var scanned: TCPSequenceNumber
    /// Server: how often the client's first segment came with only part of the announcement.
    var partialOpenings = 0

    /// What the local socket last said, for the segments rackd writes in its name.
    var socket: SocketView

    /// Heartbeats (docs/rocks.md §4).
    var heartbeats = Heartbeats()

    /// The last time setup moved on, for its deadline.
    var setupStartedAt: EngineInstant

    /// Whether the kernel may carry this connection's constant sequence shift (conntrack's seqadj:
    /// Core/KernelShift.swift): the daemon's finding at start (`Configuration.kernelShiftsAvailable`),
    /// set when the connection is made or restored. Optional, so that older records still decode.
    var kernelMayShift: Bool?
    /// When a packet the kernel did not shift first came for this connection while shifted, or when rackd
    /// last asked for the kernel's entry again: it asks at most once a second.
    var kernelShiftMissedAt: EngineInstant?
    /// The shift the kernel's entry carries, once the connection was shifted: after the engine stops
    /// shifting it, packets queued before the entry was deleted still get that shift after their verdict.
    var kernelShiftInEntry: KernelShift?

    struct Retransmission: Equatable, Codable {
        var deadline: EngineInstant?
        var interval: Duration = RocksPeer.initialRetransmissionInterval
    }

    struct SocketView: Equatable, Codable {
        /// The socket's next sequence number (snd_nxt) as rackd has seen it, in socket terms.
        var sendNext: TCPSequenceNumber
        /// The socket's latest acknowledgement and window, in socket terms.
        var acknowledgment: TCPSequenceNumber
        var window: UInt16
        /// Timestamps, if the connection uses them: the socket's latest value, the rock's latest value.
        var timestampValue: UInt32?
        var peerTimestampValue: UInt32?
        /// The latest acknowledgement that went to the rock, in wire terms.
        var wireAcknowledgment: TCPSequenceNumber
        /// The wire sequence number of the socket's FIN, once sent.
        var finSequence: TCPSequenceNumber?
    }

    struct Heartbeats: Equatable, Codable {
        /// Where the rock takes heartbeats (its init), and when the next one goes.
        var destination: TCPEndpoint?
        var nextSendAt: EngineInstant?
        /// The last heartbeat from the rock, or the end of setup.
        var lastHeard: EngineInstant?
    }

    // MARK: Constants

    /// Rocks' heartbeat period and the misses that suspend (docs/rocks.md §4, §8).
    static let heartbeatInterval: Duration = .seconds(1)
    static let heartbeatMisses = 15
    static let heartbeatPayload: [UInt8] = [0x78]  // "x"
    /// rackd's own bytes are retransmitted from this interval, doubling up to the maximum.
    static let initialRetransmissionInterval: Duration = .milliseconds(250)
    static let maximumRetransmissionInterval: Duration = .seconds(8)
    /// Setup that has not finished by then is abandoned: the connection is reset on both sides.
    static let setupLimit: Duration = .seconds(60)
    /// A probe connection is forgotten this long after it was answered, whatever its state.
    static let probeAnswerLifetime: Duration = .seconds(30)
    /// The buffer sizes rocks reports (Linux doubles the 32768 rocks forces; docs/rocks.md §3).
    static let reportedBufferSize: UInt32 = 65536
    /// A client whose first segment holds only part of the announcement this often is ordinary.
    static let maximumPartialOpenings = 2

    /// The suite status shows.
    static var suiteName: String { RocksKeyExchange.suiteName }

    // MARK: Building

    init(stage: Stage, privateKey: UInt128, peerISN: TCPSequenceNumber, socket: SocketView, now: EngineInstant) {
        self.stage = stage
        self.privateKey = privateKey
        self.scanned = peerISN + 1
        self.socket = socket
        self.setupStartedAt = now
    }

    /// Our announcement and init messages for a connection whose local end is `local`.
    static func ourBytes(publicKey: [UInt8], local: TCPEndpoint, configuration: RocksSettings)
        -> (bytes: [UInt8], writeEnds: [Int])?
    {
        guard case .v4(let address) = local.address else { return nil }  // rocks 2.4 is IPv4 only
        let ourInit = RocksInit(
            publicKey: publicKey,
            reconnection: RocksSocketAddress(address: address, port: configuration.reconnectionPort),
            sendBufferSize: reportedBufferSize, receiveBufferSize: reportedBufferSize,
            heartbeat: RocksSocketAddress(address: address, port: configuration.heartbeatPort))
        var bytes = RocksAnnouncement.bytes
        var ends = [bytes.count]
        for write in ourInit.segments {
            bytes += write
            ends.append(bytes.count)
        }
        return (bytes, ends)
    }

    /// The bytes of the announcement alone.
    static let announcementLength = RocksAnnouncement.bytes.count

    /// The announcement and an init with a 16-byte DH value, as either side's almost always is (a value
    /// with a leading zero byte is one shorter: 1 in 256). A rocks client's handshake is shifted by it in
    /// each direction (docs/rocks.md §14, "In the kernel"), so that after both inits the wire's sequence
    /// numbers are the socket's.
    static let handshakeShift: UInt32 = 76

    /// The mapping a rocks client's connection starts with on its own tuple: its SYN went out
    /// `handshakeShift` lower, and the rock's numbers reach the socket that much higher.
    static func handshakeMapping(_ flow: FlowKey) -> WireMapping {
        let shift = TCPSequenceOffset(rawValue: 0 &- handshakeShift)
        return WireMapping(wire: flow, localSequenceOffset: shift, peerSequenceOffset: shift)
    }

    /// Whether the splice and `mapping` (the handshake's) cancel out: every segment the socket sends from
    /// now on and every segment of the rock's the socket still takes has the same numbers on the wire,
    /// and nothing of rackd's own waits for the rock's acknowledgement. Needs both inits through with the
    /// expected lengths and the socket's acknowledgement past any banner (below the rock's init the
    /// mapping is not the identity; above the splice it is).
    func leavesNoOffset(_ mapping: WireMapping) -> Bool {
        settledOffsets(mapping) == .init(local: .zero, peer: .zero)
    }

    /// The offsets the splice and `mapping` leave together once they are constant, as a `WireMapping`'s
    /// (the socket's numbers go out `local` higher, the rock's reach the socket `peer` lower), or nil
    /// while they are not: the same conditions as `leavesNoOffset`, whatever the offsets. A rocks server's
    /// splice leaves both inits' lengths (76 each, almost always); conntrack can carry them
    /// (Core/KernelShift.swift).
    func settledOffsets(_ mapping: WireMapping) -> SettledOffsets? {
        guard stage == .established, let removalPoint = splice.removalPoint, splice.insertionPoint != nil,
              oursAcknowledged >= ours.count, !oursEndWithFIN, reconnection.attempts.isEmpty,
              socket.acknowledgment - removalPoint >= 0
        else { return nil }
        return SettledOffsets(
            local: TCPSequenceOffset(rawValue: mapping.localSequenceOffset.rawValue &+ splice.insertedLength),
            peer: TCPSequenceOffset(rawValue: mapping.peerSequenceOffset.rawValue &+ splice.removedLength))
    }

    struct SettledOffsets: Equatable {
        var local: TCPSequenceOffset
        var peer: TCPSequenceOffset
    }

    /// The earliest of this peer's timers.
    func nextDeadline(in state: ConnectionState) -> EngineInstant? {
        var deadline = retransmission.deadline
        func consider(_ instant: EngineInstant?) {
            guard let instant else { return }
            deadline = min(deadline ?? instant, instant)
        }
        switch stage {
        case .established:
            let held: Bool = if case .suspended = state { true } else { false }
            consider(reconnection.nextDeadline(held: held))
            if case .healthy = state {
                consider(heartbeats.nextSendAt)
                consider(heartbeats.lastHeard.map { $0 + Self.heartbeatInterval * Self.heartbeatMisses })
            }
        case .answeringProbe:
            consider(setupStartedAt + Self.probeAnswerLifetime)
        case .awaitingClient, .scanning, .readingInit:
            consider(setupStartedAt + Self.setupLimit)
        }
        return deadline
    }
}
