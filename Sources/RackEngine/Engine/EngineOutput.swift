// rackd — what the engine asks the I/O layer to do. Outputs are values (docs/architecture.md, "The engine
// is pure").

/// The verdict on one queued packet.
public enum PacketVerdict: Equatable, Sendable {
    /// Let it through unchanged.
    case accept
    /// Let it through with the bytes the engine rewrote in place, now `length` bytes long.
    case acceptModified(length: Int)
    /// Let it through with these bytes instead (a packet that grew, such as a SYN with rackd's option).
    case replace([UInt8])
    /// Discard it.
    case drop
    /// Give it no verdict yet: the kernel keeps it queued until a later output's `releases` names its
    /// flow (a SYN held while rackd probes its destination for rocks, docs/rocks.md §14). Retransmissions
    /// of it are held too.
    case hold(FlowKey)
}

/// The verdict on packets held earlier (`PacketVerdict.hold`): the first packet held for `flow` gets
/// `verdict`; any later one (a retransmission held meanwhile) is dropped, as the first already carries
/// the same bytes.
public struct HeldPacketRelease: Equatable, Sendable {
    public var flow: FlowKey
    public var verdict: PacketVerdict

    public init(flow: FlowKey, verdict: PacketVerdict) {
        self.flow = flow
        self.verdict = verdict
    }
}

/// A rocks Enhancement Detection probe the daemon must run (docs/rocks.md §2.2): a TCP connection of its
/// own from `source` (port 0) to `destination`, its packets marked so rackd's rules let them pass; then
/// `shutdown(SHUT_WR)` (a FIN, no data) and reads of at most `readTimeout` each, keeping the last 16
/// bytes, until EOF or a reset. The outcome goes back through `HostEngine.handleProbeResult`.
public struct RocksProbeRequest: Hashable, Sendable {
    public var source: IPAddress
    public var destination: TCPEndpoint
    public var readTimeout: Duration

    public init(source: IPAddress, destination: TCPEndpoint, readTimeout: Duration) {
        self.source = source
        self.destination = destination
        self.readTimeout = readTimeout
    }
}

/// What a probe found.
public enum RocksProbeOutcome: Equatable, Sendable {
    /// EOF or a reset, with the announcement as the last 16 bytes: a rock.
    case rock
    /// Anything else, and what it was ("EOF without the announcement", "read timed out", "connection
    /// refused", ...).
    case notRock(reason: String)
}

/// A UDP datagram rackd sends (a rocks heartbeat, docs/rocks.md §4), from its heartbeat socket.
/// A heartbeat the kernel would not send.
public struct HeartbeatFailure: Equatable, Sendable {
    public var destination: TCPEndpoint
    public var reason: String

    public init(destination: TCPEndpoint, reason: String) {
        self.destination = destination
        self.reason = reason
    }
}

public struct Datagram: Equatable, Sendable {
    public var destination: TCPEndpoint
    public var payload: [UInt8]

    public init(destination: TCPEndpoint, payload: [UInt8]) {
        self.destination = destination
        self.payload = payload
    }
}

/// A change to what the kernel does for managed flows: queue their every packet, rewrite a moved
/// connection's packets itself (Core/KernelRewrite.swift), or queue a rocks connection's outbound packets
/// and only the inbound ones that need a decision (Core/KernelRewrite.swift, `screenedFlow`).
public enum RuleChange: Hashable, Sendable {
    /// Start queueing every packet of the flow.
    case manage(FlowKey)
    /// Stop queueing the flow's packets.
    case release(FlowKey)
    /// Start rewriting a moved connection's packets in the kernel.
    case rewrite(KernelRewrite)
    /// Stop rewriting them in the kernel.
    case stopRewriting(KernelRewrite)
    /// Queue the flow's outbound packets, and of its inbound ones only SYN, FIN and RST: a rocks
    /// connection whose splice left no offset (docs/rocks.md §14, "In the kernel").
    case screen(FlowKey)
    /// Stop doing so.
    case stopScreening(FlowKey)
    /// Screen the flow as `screen` does while conntrack shifts its sequence numbers (an entry with seqadj,
    /// created over ctnetlink); inbound packets the kernel would not shift are queued too
    /// (Core/KernelShift.swift). Carried out again when the engine sees the kernel lost the entry.
    case shift(KernelShift)
    /// Stop doing so, and delete the entry.
    case stopShifting(KernelShift)

    /// Whether the change takes something away (and so comes before the additions of the same input).
    public var isRemoval: Bool {
        switch self {
        case .release, .stopRewriting, .stopScreening, .stopShifting: true
        case .manage, .rewrite, .screen, .shift: false
        }
    }
}

/// A change to the local addresses rackd keeps on the loopback device. A socket whose address left the
/// host can send nothing (its route lookup fails before netfilter), so while a connection still uses
/// the address rackd keeps it on `lo`, as a host route (docs/roaming.md).
public enum AddressChange: Equatable, Sendable {
    case hold(IPAddress)
    case release(IPAddress)
}

/// Something worth a log line or a counter. Keys never appear in events.
public enum EngineEvent: Equatable, Sendable {
    case flowManaged(FlowKey, reason: String)
    case flowReleased(FlowKey, reason: String)
    /// A queued packet that could not be parsed; it was accepted unchanged.
    case unparsablePacket(reason: String)
    /// The flow table is full; the flow was left alone.
    case flowTableFull(FlowKey)
    /// A packet of a connection whose shift conntrack carries came without it: the entry is gone (a
    /// flush, a timeout). rackd maps the connection's packets itself and asks for the entry again
    /// (Core/KernelShift.swift).
    case kernelShiftLost(id: UInt64, FlowKey)
    /// The peer runs rackd (or rocks) and the keys are agreed: the connection is managed from now on.
    /// `peerKind` is "rackd" or "rocks", as status shows it.
    case connectionManaged(id: UInt64, FlowKey, role: ConnectionRole, peerKind: String)
    /// The connection is left to plain TCP, and why (ordinary peer, middlebox, key exchange failed).
    case fellBack(FlowKey, reason: String)
    case phaseChanged(id: UInt64, FlowKey, from: ConnectionPhase, to: ConnectionPhase, reason: String)
    case resumed(id: UInt64, FlowKey, after: Duration)
    /// We proved ourselves to the peer's challenge; the peer lifts its suspension when it verifies.
    case challengeAnswered(id: UInt64, FlowKey, phase: ConnectionPhase)
    /// A resumption attempt that failed authentication, or came for no connection we hold.
    case resumptionRejected(FlowKey, reason: String)
    /// The connection carries on over another tuple: `wire`, as this host sees it.
    case roamed(id: UInt64, FlowKey, phase: ConnectionPhase, wire: FlowKey, peerSequenceOffset: UInt32)
    /// Roam handshakes for no connection rackd holds, dropped since the last such report. Reported at
    /// most once per `RackdDetection.rejectionReportInterval`, so a flood cannot flood the log.
    case unknownRoamsDropped(count: Int)
    /// rackd stopped managing the connection (socket closed, held too long).
    case connectionEnded(id: UInt64, FlowKey, reason: String)
    /// A step of a rocks connection's reconnection (a link dropped, the rock connected, reconnected).
    case rocksReconnection(id: UInt64, FlowKey, detail: String)
    /// A rocks probe of `destination` finished (docs/rocks.md §2.2).
    case rocksProbed(TCPEndpoint, RocksProbeOutcome)
}

/// Everything that follows from one input.
public struct EngineOutput: Equatable, Sendable {
    public var verdict: PacketVerdict
    public var ruleChanges: [RuleChange]
    public var addressChanges: [AddressChange]
    /// Packets to inject, after the verdict on the packet that caused them.
    public var transmits: [[UInt8]]
    public var events: [EngineEvent]
    /// Verdicts on packets held earlier; given with this input's own verdict, before its rule changes.
    public var releases: [HeldPacketRelease]
    /// Rocks probes to start (after this input's rule changes).
    public var probes: [RocksProbeRequest]
    /// UDP datagrams to send from the rocks heartbeat socket (after this input's transmits).
    public var datagrams: [Datagram]
    /// Destinations found to be ordinary peers: the kernel stops queueing their handshakes for the
    /// lifetime given (with this input's rule changes; Peers/Rackd/OrdinaryDestinations.swift).
    public var ordinary: [OrdinaryDestination]
    /// Whether this input's rule changes must be in the kernel before its verdict: a peer's SYN whose flow
    /// is queued from now on draws a SYN-ACK from the socket at once, which must find the flow queued
    /// (Peers/Rackd/RackdDetection.swift).
    public var ruleChangesBeforeVerdict = false

    public init(verdict: PacketVerdict = .accept, ruleChanges: [RuleChange] = [], addressChanges: [AddressChange] = [],
                transmits: [[UInt8]] = [], events: [EngineEvent] = [], releases: [HeldPacketRelease] = [],
                probes: [RocksProbeRequest] = [], datagrams: [Datagram] = [], ordinary: [OrdinaryDestination] = []) {
        self.verdict = verdict
        self.ruleChanges = ruleChanges
        self.addressChanges = addressChanges
        self.transmits = transmits
        self.events = events
        self.releases = releases
        self.probes = probes
        self.datagrams = datagrams
        self.ordinary = ordinary
    }

    /// Adds what a later step of the same input produced; its verdict is not this output's.
    mutating func append(_ other: EngineOutput) {
        ruleChanges += other.ruleChanges
        addressChanges += other.addressChanges
        transmits += other.transmits
        events += other.events
        releases += other.releases
        probes += other.probes
        datagrams += other.datagrams
        ordinary += other.ordinary
        ruleChangesBeforeVerdict = ruleChangesBeforeVerdict || other.ruleChangesBeforeVerdict
    }
}
