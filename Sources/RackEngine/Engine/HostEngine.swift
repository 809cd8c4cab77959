// rackd — the engine: every decision rackd makes for one host, with no I/O (docs/architecture.md, "The
// engine is pure").
//
// Inputs are method calls (`handlePacket`, `handleSnapshots`, `handleLinkEvent`, `handleTimeout`, the
// operator's commands); outputs are `EngineOutput` values that the daemon carries out. Time and
// randomness come in as arguments. In racks mode the inputs go to the connection core
// (Core/ConnectionCore.swift); pass-through mode, which only measures the queue, has its own tracker.

/// rackd's decision-maker for all flows of one host.
public struct HostEngine: Sendable {
    public let configuration: Configuration
    private var passthrough = PassthroughTracker()
    private var core: ConnectionCore

    /// `random` supplies nonces and ephemeral keys: the system generator in the daemon, a seeded one in
    /// tests.
    public init(configuration: Configuration, random: any RandomNumberGenerator & Sendable) {
        self.configuration = configuration
        self.core = ConnectionCore(configuration: configuration, random: random)
    }

    /// Decides what happens to one queued packet, and owns its verdict. `bytes` is the IP packet; the
    /// engine may rewrite it in place and say so with `.acceptModified`. `direction` is nil for a packet
    /// queued from a hook rackd's rules never use. `checksum` says whether its TCP checksum is complete or
    /// only the pseudo-header sum (NFQA_SKB_CSUMNOTREADY), which decides how a rewrite fixes it.
    /// `truncated` says the kernel copied only part of the packet: it can be judged, never rewritten.
    /// `kernelShifts` says the packet's conntrack entry carries a sequence adjustment (its status has
    /// IPS_SEQ_ADJUST): the kernel shifts whatever passes the verdict (Core/KernelShift.swift).
    public mutating func handlePacket(_ bytes: UnsafeMutableRawBufferPointer, direction: PacketDirection?,
                                      checksum: TCPChecksumState = .complete, truncated: Bool = false,
                                      kernelShifts: Bool = false, now: EngineInstant) -> EngineOutput {
        guard let direction else {
            return EngineOutput(events: [.unparsablePacket(reason: "queued from a netfilter hook rackd does not use")])
        }
        let packet: IPPacketView
        do {
            packet = try IPPacketView(validating: UnsafeRawBufferPointer(bytes))
        } catch {
            // Not ours to judge: pass it on exactly as the kernel gave it.
            return EngineOutput(events: [.unparsablePacket(reason: "\(error)")])
        }
        var output: EngineOutput
        switch configuration.mode {
        case .passthrough:
            let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: direction)
            output = passthrough.handleSegment(flow, flags: packet.tcp.flags, direction: direction, now: now)
        case .racks:
            output = core.handleSegment(packet, bytes: bytes, direction: direction, checksum: checksum,
                                        kernelShifts: kernelShifts, now: now)
        }
        if truncated {
            // Only part of the packet is here, so its bytes cannot be sent back changed. A packet rackd had
            // to change (a moved or rocks connection's) must not pass unchanged either: that would put
            // bytes at the wrong place in the stream. It is dropped, and its sender retransmits it.
            switch output.verdict {
            case .acceptModified, .replace: output.verdict = .drop
            case .accept, .drop, .hold: break
            }
        }
        return output
    }

    /// Takes in the state of the sockets in `flowsToSnapshot`; a flow missing from the map has no socket.
    public mutating func handleSnapshots(_ snapshots: [FlowKey: SocketSnapshot], now: EngineInstant) -> EngineOutput {
        core.handleSnapshots(snapshots, now: now)
    }

    /// Takes in the state of the sockets of `flows`, as read (`flowsDueForSnapshot`); a flow of them
    /// missing from the map has no socket. Costs what those flows cost, whatever the number of connections.
    public mutating func handleSnapshots(_ snapshots: [FlowKey: SocketSnapshot], of flows: Set<FlowKey>,
                                         now: EngineInstant) -> EngineOutput {
        core.handleSnapshots(snapshots, of: flows, now: now)
    }

    /// The daemon could not read the sockets this time: try again after the usual interval.
    public mutating func handleSnapshotFailure(now: EngineInstant) -> EngineOutput {
        core.handleSnapshotFailure(now: now)
        return EngineOutput()
    }

    /// Local addresses came or went.
    public mutating func handleLinkEvent(_ event: LinkEvent, now: EngineInstant) -> EngineOutput {
        core.handleLinkEvent(event, now: now)
    }

    /// A rocks probe the engine asked for (`EngineOutput.probes`) finished.
    public mutating func handleProbeResult(_ request: RocksProbeRequest, outcome: RocksProbeOutcome,
                                           now: EngineInstant) -> EngineOutput {
        core.handleProbeResult(request, outcome: outcome, now: now)
    }

    /// A UDP datagram arrived at the rocks heartbeat socket from `source`.
    public mutating func handleDatagram(_ payload: UnsafeRawBufferPointer, from source: TCPEndpoint,
                                        now: EngineInstant) -> EngineOutput {
        core.handleDatagram(payload, from: source, now: now)
    }

    /// Heartbeats the kernel refused to send: their connections suspend, as a rock does on a heartbeat
    /// error (docs/rocks.md §5.1).
    public mutating func handleHeartbeatFailures(_ failures: [HeartbeatFailure], now: EngineInstant) -> EngineOutput {
        core.handleHeartbeatFailures(failures, now: now)
    }

    /// Runs every timer that is due. Spurious calls do nothing.
    public mutating func handleTimeout(now: EngineInstant) -> EngineOutput {
        var output = passthrough.handleTimeout(now: now)
        output.append(core.handleTimeout(now: now))
        return output
    }

    /// When `handleTimeout` or `handleSnapshots` next has work, if ever.
    public var nextDeadline: EngineInstant? {
        [passthrough.nextDeadline, core.nextDeadline].compactMap { $0 }.min()
    }

    /// When the daemon should next read sockets: then `flowsDueForSnapshot(now:)` says which.
    public var nextSnapshotAt: EngineInstant? { core.nextSnapshotAt }

    /// The flows whose sockets are due to be read at `now` (docs/architecture.md, "Liveness at scale").
    public func flowsDueForSnapshot(now: EngineInstant) -> Set<FlowKey> { core.flowsDueForSnapshot(now: now) }

    /// The flows of every connection past its setup: all the engine may want to see.
    public var flowsToSnapshot: Set<FlowKey> { core.flowsToSnapshot }

    /// The local addresses rackd keeps on `lo` for connections whose address left (to release on exit).
    public var heldAddresses: Set<IPAddress> { core.table.heldAddresses }

    /// The flows whose every packet the data plane has been told to queue.
    public var racksManagedFlows: Set<FlowKey> { core.table.managedFlows }

    /// Everything the kernel holds for the managed connections: the queued flows, the rewrites, the
    /// screened flows and the shifted ones.
    public var kernelFlows: KernelFlows {
        KernelFlows(queued: core.table.managedFlows, rewrites: core.table.kernelRewrites,
                    screened: core.table.screenedFlows, shifted: core.table.kernelShifts)
    }

    /// Conntrack entries an earlier rackd made for connections this one does not shift (taken back
    /// suspended or closing, or kernel shifts unavailable now): to delete at start, or they would shift
    /// packets rackd maps itself wherever something keeps conntrack active.
    public var staleKernelShifts: [KernelShift] {
        core.connectionsInOrder.compactMap { connection in
            guard connection.kernelShift == nil, let entry = connection.rocksPeer?.kernelShiftInEntry else { return nil }
            return entry
        }
    }

    /// How many destinations are cached as ordinary peers now (`EngineOutput.ordinary`).
    public var ordinaryDestinationCount: Int { core.ordinaryDestinations.count }

    /// The ordinary destinations cached at `now`, with what is left of their lifetimes: what the kernel's
    /// sets should hold when the table is put back.
    public func ordinaryDestinations(now: EngineInstant) -> [OrdinaryDestination] {
        core.ordinaryDestinations.cached(now: now)
    }

    /// Takes back the ordinary destinations an earlier rackd cached (read from the kernel's sets before
    /// the table is replaced), each for the time it has left; returns those kept (the cache is bounded, and
    /// a zero `ordinary-cache` keeps none).
    public mutating func restoreOrdinaryDestinations(_ destinations: [OrdinaryDestination], now: EngineInstant)
        -> [OrdinaryDestination]
    {
        guard configuration.ordinaryCacheLifetime > .zero else { return [] }
        return destinations.filter { core.ordinaryDestinations.remember($0.destination, until: now + $0.lifetime) }
    }

    /// How many flows the engine is tracking.
    public var flowCount: Int { passthrough.flowCount + core.table.count }

    /// Holds connections as an outage would until `resumeByOperator` (`rackctl suspend`).
    public mutating func suspendByOperator(_ target: OperatorTarget, now: EngineInstant)
        throws(UnknownConnectionError) -> OperatorOutcome
    {
        try core.suspendByOperator(target, now: now)
    }

    /// Lifts the operator's hold and starts resumption at once (`rackctl resume`).
    public mutating func resumeByOperator(_ target: OperatorTarget, now: EngineInstant)
        throws(UnknownConnectionError) -> OperatorOutcome
    {
        try core.resumeByOperator(target, now: now)
    }

    // MARK: Restarts of rackd (Persistence/, docs/restarts.md)

    /// Takes back the connections an earlier rackd kept. Call once, right after the first
    /// `handleLinkEvent(.addressesAvailable)`, before any other input.
    public mutating func restore(_ records: [PersistedConnection], now: EngineInstant) -> EngineOutput {
        core.restore(records, now: now)
    }

    /// Whether connection records are due to be written (a change that a crash must not lose at once;
    /// others at the next checkpoint).
    public func persistenceDue(now: EngineInstant) -> Bool { core.persistenceDue(now: now) }

    /// The connection records to write and the ids whose records go, now. `all` writes every connection,
    /// as before a graceful stop.
    public mutating func takePersistenceChanges(now: EngineInstant, all: Bool = false) -> PersistenceChanges {
        core.takePersistenceChanges(now: now, all: all)
    }

    /// The managed connections, for status and tests.
    public var connections: [ConnectionStatus] {
        core.connectionsInOrder.map(status)
    }

    /// One managed connection, found in O(1): what rackd's log lines add about it (peer kind, state).
    public func connection(id: UInt64) -> ConnectionStatus? {
        core.table[id].map(status)
    }

    private func status(_ connection: Connection) -> ConnectionStatus {
        ConnectionStatus(connection, pathLastHeard: core.table.pathLastHeard(of: connection.id))
    }

    /// What connection `id` is to its wire path (Core/PathIndex.swift), for tests; nil when it is on none.
    func pathStanding(of id: UInt64) -> PathStanding? {
        core.table.pathStanding(of: id)
    }
}

/// What status shows of one managed connection. Never includes key material.
public struct ConnectionStatus: Sendable, Equatable {
    public var id: UInt64
    public var flow: FlowKey
    public var role: ConnectionRole
    public var phase: ConnectionPhase
    /// The peer's protocol: "rackd" (and "rocks" to come).
    public var peerKind: String
    /// How the connection's key was agreed and how resumptions are authenticated.
    public var keySuite: String
    /// When the peer was last heard: on this connection, or by its path's sentinel on the same path if later.
    public var lastHeard: EngineInstant
    public var suspendedSince: EngineInstant?
    public var resumptions: Int
    /// The tuple the wire carries, when the connection moved.
    public var wire: FlowKey?
    /// Whether the kernel maps the moved connection alone (nothing of it is queued; Core/KernelRewrite.swift).
    public var rewrittenByKernel: Bool
    /// Whether its packets pass rackd.
    public var packets: ConnectionPacketRoute
    /// Suspended by `rackctl suspend` and held until `rackctl resume`.
    public var heldByOperator: Bool
    /// Bytes the local socket holds that the peer has not acknowledged, at the latest snapshot.
    public var bytesHeld: UInt64?

    /// `pathLastHeard`: when the sentinel of the connection's path last heard the peer (Core/PathIndex.swift),
    /// which the connection's own, less frequent readings may lag by seconds.
    init(_ connection: Connection, pathLastHeard: EngineInstant?) {
        id = connection.id
        flow = connection.socketFlow
        role = connection.role
        phase = connection.phase
        peerKind = connection.peer.kind
        keySuite = connection.peer.suite
        lastHeard = max(connection.lastHeard, pathLastHeard ?? connection.lastHeard)
        resumptions = connection.resumptions
        wire = connection.mapping.map(\.wire).flatMap { $0 == connection.socketFlow ? nil : $0 }
        rewrittenByKernel = connection.kernelRewrite != nil
        packets = connection.packetRoute
        bytesHeld = connection.socket.map { UInt64($0.sendQueueBytes) }
        suspendedSince = connection.hold?.since
        heldByOperator = connection.hold?.holder == .operator
    }
}
