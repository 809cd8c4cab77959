// rackd — what `rackctl status` shows, as a value. Its JSON form (`rackctl status --json`) is stable and
// documented in docs/control.md: fields may be added in a format version, never renamed or removed.

/// The daemon and every connection it manages, at one moment.
public struct StatusReport: Codable, Sendable, Equatable {
    /// The JSON format's version; it changes only when a field changes meaning or goes away.
    public static let currentFormat = 1

    public var format: Int
    public var daemon: DaemonReport
    public var connections: [ConnectionReport]

    public init(daemon: DaemonReport, connections: [ConnectionReport]) {
        self.format = Self.currentFormat
        self.daemon = daemon
        self.connections = connections
    }
}

public struct DaemonReport: Codable, Sendable, Equatable {
    public var version: String
    public var pid: Int32
    /// "racks" or "passthrough".
    public var mode: String
    /// "native" (nftables queue statement) or "compat" (xtables NFQUEUE target).
    public var rules: String
    public var uptimeSeconds: Double
    public var queue: QueueReport
    /// Connections that stopped being managed since rackd started (closed, given up, limits).
    public var connectionsReleased: UInt64
    /// Connections left to plain TCP because the peer does not run rackd (or the handshake failed).
    public var fallbacks: UInt64
    /// Resumptions since rackd started, all connections together.
    public var resumptions: UInt64
    /// Destinations cached now as ordinary peers, whose handshakes the kernel does not queue (their
    /// connections are left to plain TCP without rackd seeing them). Absent from older rackd.
    public var ordinaryDestinations: UInt64?

    public init(version: String, pid: Int32, mode: String, rules: String, uptimeSeconds: Double, queue: QueueReport,
                connectionsReleased: UInt64, fallbacks: UInt64, resumptions: UInt64, ordinaryDestinations: UInt64? = nil) {
        self.version = version
        self.pid = pid
        self.mode = mode
        self.rules = rules
        self.uptimeSeconds = uptimeSeconds
        self.queue = queue
        self.connectionsReleased = connectionsReleased
        self.fallbacks = fallbacks
        self.resumptions = resumptions
        self.ordinaryDestinations = ordinaryDestinations
    }
}

/// The packets the kernel queued to rackd, and rackd's verdicts on them.
public struct QueueReport: Codable, Sendable, Equatable {
    public var number: UInt16
    public var received: UInt64
    public var accepted: UInt64
    public var modified: UInt64
    public var dropped: UInt64
    /// Packets whose verdict waited (SYNs held while rackd probed their destination for rocks); each is
    /// also counted as accepted, modified or dropped once its verdict left. Absent from older rackd.
    public var held: UInt64?

    public init(number: UInt16, received: UInt64, accepted: UInt64, modified: UInt64, dropped: UInt64,
                held: UInt64? = nil) {
        self.number = number
        self.received = received
        self.accepted = accepted
        self.modified = modified
        self.dropped = dropped
        self.held = held
    }
}

/// One managed connection.
public struct ConnectionReport: Codable, Sendable, Equatable {
    public var id: UInt64
    /// "address:port", IPv6 addresses in brackets: the endpoints the local socket knows.
    public var local: String
    public var peer: String
    /// After a move to a new address: the endpoints the packets carry on the wire.
    public var wireLocal: String?
    public var wirePeer: String?
    /// Who rewrites a moved connection's packets: "kernel" (nftables, nothing queued) or "rackd" (every
    /// packet through the queue); nil when nothing is rewritten.
    public var rewrittenBy: String?
    /// Where its packets are handled: "kernel" (none is queued), "screened" (a rocks client's: only the
    /// socket's segments and the rock's SYN, FIN and RST are queued) or "queued" (every packet passes
    /// rackd). Absent from an older rackd's report.
    public var packets: String?
    /// "rackd" (a rackd peer); "rocks" once rocks peers are supported.
    public var peerKind: String
    /// "client" (this host opened the connection) or "server".
    public var role: String
    /// "key-exchange", "healthy", "suspect", "suspended", "resuming" or "closing".
    public var state: String
    /// Suspended by `rackctl suspend` and held until `rackctl resume`.
    public var heldByOperator: Bool
    public var lastHeardSecondsAgo: Double
    /// When the current suspension began, RFC 3339 in UTC, and how long ago.
    public var suspendedSince: String?
    public var suspendedSeconds: Double?
    /// Bytes the local socket holds that the peer has not acknowledged, when known.
    public var bytesHeld: UInt64?
    public var resumptions: Int
    public var keySuite: String

    public init(id: UInt64, local: String, peer: String, wireLocal: String? = nil, wirePeer: String? = nil,
                rewrittenBy: String? = nil, packets: String? = nil, peerKind: String, role: String, state: String, heldByOperator: Bool, lastHeardSecondsAgo: Double,
                suspendedSince: String? = nil, suspendedSeconds: Double? = nil, bytesHeld: UInt64? = nil,
                resumptions: Int, keySuite: String) {
        self.id = id
        self.local = local
        self.peer = peer
        self.wireLocal = wireLocal
        self.wirePeer = wirePeer
        self.rewrittenBy = rewrittenBy
        self.packets = packets
        self.peerKind = peerKind
        self.role = role
        self.state = state
        self.heldByOperator = heldByOperator
        self.lastHeardSecondsAgo = lastHeardSecondsAgo
        self.suspendedSince = suspendedSince
        self.suspendedSeconds = suspendedSeconds
        self.bytesHeld = bytesHeld
        self.resumptions = resumptions
        self.keySuite = keySuite
    }
}
