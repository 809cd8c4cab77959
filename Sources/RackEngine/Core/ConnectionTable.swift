// rackd — every managed connection of this host, with the indexes and the timer table over them.
//
// The table owns every way of finding a connection (its id, its socket's tuple, the tuple the wire
// carries, the name a roaming peer gives it) and keeps them right itself: transitions hand back a changed
// connection (`replace`) and the table updates its indexes, its counts and the connection's timer. Each
// lookup is O(1), a timer change O(log n).
//
// It also derives what the kernel must do for the connections (KernelNeeds.swift): the tuples queued,
// the departed local addresses kept on `lo`, the wire tuples that lead to a connection. Connections
// changed since the last `reconcile` are marked; `reconcile` recomputes only those and reports the
// differences in a fixed order. Nothing is added or removed by hand between inputs, so a forgotten case
// cannot leave a flow queued for ever, and an input costs the same whatever the number of connections.

struct ConnectionTable {
    let configuration: Configuration
    private(set) var connections: [UInt64: Connection] = [:]
    private var bySocket: [FlowKey: UInt64] = [:]
    private var byWire: [FlowKey: UInt64] = [:]
    private var byName: [[UInt8]: UInt64] = [:]
    private var byHeartbeat: [TCPEndpoint: UInt64] = [:]
    private var timers = DeadlineHeap<UInt64>()
    /// When each connection's socket is next due to be read (sock_diag), apart from its timers: only the
    /// due ones are read (`Connection.socketCheckDue`).
    private var socketChecks = DeadlineHeap<UInt64>()

    /// What the indexes and counts hold for each connection, to take it out again.
    private var indexed: [UInt64: IndexFacts] = [:]
    private(set) var establishingCount = 0
    /// Suspended (or resuming) connections by the peer's address.
    private(set) var suspendedByPeer: [IPAddress: Set<UInt64>] = [:]
    private(set) var suspendedCount = 0

    /// The kernel's state as last reported, and what each connection contributed to it.
    private(set) var managedFlows: Set<FlowKey> = []
    private(set) var kernelRewrites: Set<KernelRewrite> = []
    private(set) var screenedFlows: Set<FlowKey> = []
    private(set) var heldAddresses: Set<IPAddress> = []
    private var applied: [UInt64: KernelNeeds] = [:]
    private var queuedUsers: [FlowKey: Int] = [:]
    private var addressUsers: [IPAddress: Int] = [:]
    /// Connections and addresses whose kernel state may have changed since the last `reconcile`.
    private var dirty: Set<UInt64> = []
    private var dirtyAddresses: Set<IPAddress> = []
    /// Flows queued before they are connections (a SYN held for a rocks probe, a possible rock's
    /// connection to a serve port: Peers/Rocks/RocksDetection.swift), and those changed since `reconcile`.
    private(set) var queuedBeforeConnection: Set<FlowKey> = []
    private var dirtyFlows: Set<FlowKey> = []
    /// Which connections' records (Persistence/) are stale.
    var persistence = PersistenceTracker()

    private struct IndexFacts: Equatable {
        var establishing: Bool
        var suspendedPeer: IPAddress?
        var name: [UInt8]?
        var heartbeatSource: TCPEndpoint?
    }

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Lookup

    var count: Int { connections.count }

    subscript(id: UInt64) -> Connection? { connections[id] }

    /// The connection a tuple belongs to: its socket's tuple, or a tuple the wire carries (or is about to
    /// carry) after a move.
    func id(for flow: FlowKey) -> UInt64? {
        bySocket[flow] ?? byWire[flow]
    }

    /// The connection whose socket has this tuple.
    func id(forSocket flow: FlowKey) -> UInt64? { bySocket[flow] }

    /// The connection a roaming rackd peer names.
    func id(named name: [UInt8]) -> UInt64? { byName[name] }

    /// The rocks connection whose peer sends heartbeats from `source`.
    func id(heartbeatsFrom source: TCPEndpoint) -> UInt64? { byHeartbeat[source] }

    /// Every connection's id, oldest first. Walks over connections use this order, never the
    /// dictionary's, which Swift randomizes per process: the same inputs must give the same outputs.
    var idsInOrder: [UInt64] { connections.keys.sorted() }

    // MARK: Changes

    /// Adds a new connection. A socket tuple names one connection: a new one on a tuple still in the table
    /// (the kernel reused it, the old socket being gone) replaces the old one, which is forgotten without
    /// a word, as its socket was.
    mutating func insert(_ connection: Connection) {
        precondition(connections[connection.id] == nil, "connection ids are never reused")
        if let previous = bySocket[connection.socketFlow] { remove(previous) }
        connections[connection.id] = connection
        bySocket[connection.socketFlow] = connection.id
        refresh(connection)
        persistence.noteStored(connection)
    }

    /// Stores a connection after a transition and brings the indexes, counts and timer up to date.
    /// `persist` false: the change is one its record need not carry (a rackd peer's liveness readings,
    /// PersistenceTracker), unless it is one a crash must not lose.
    mutating func replace(_ connection: Connection, persist: Bool = true) {
        guard connections[connection.id] != nil else { return }
        connections[connection.id] = connection
        refresh(connection)
        persistence.noteStored(connection, detailsChanged: persist)
    }

    /// Forgets a connection.
    mutating func remove(_ id: UInt64) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        if bySocket[connection.socketFlow] == id { bySocket[connection.socketFlow] = nil }
        unindex(id)
        timers.cancel(id)
        socketChecks.cancel(id)
        dirty.insert(id)
        persistence.noteRemoved(id)
    }

    /// Takes back a connection from its record, as `insert` would, without marking its record stale.
    mutating func restore(_ connection: Connection) {
        insert(connection)
        persistence.noteRestored(connection)
    }

    private mutating func refresh(_ connection: Connection) {
        let facts = IndexFacts(
            establishing: { if case .establishing = connection.state { true } else { false } }(),
            suspendedPeer: connection.hold != nil ? connection.socketFlow.remote.address : nil,
            name: connection.peerName, heartbeatSource: connection.heartbeatSource)
        timers.set(connection.id, to: connection.nextDeadline(configuration))
        socketChecks.set(connection.id, to: connection.socketCheckDue)
        // Most changes (a liveness reading, at 10,000 connections thousands a second) touch neither the
        // indexes nor what the kernel holds: then there is nothing to redo.
        if indexed[connection.id] == facts {
            if applied[connection.id] != connection.kernelNeeds { dirty.insert(connection.id) }
            return
        }
        unindex(connection.id)
        if facts.establishing { establishingCount += 1 }
        if let peer = facts.suspendedPeer {
            suspendedByPeer[peer, default: []].insert(connection.id)
            suspendedCount += 1
        }
        if let name = facts.name { byName[name] = connection.id }
        // The first connection to name a heartbeat address keeps it (the core abandons a later one).
        if let source = facts.heartbeatSource, byHeartbeat[source] == nil { byHeartbeat[source] = connection.id }
        indexed[connection.id] = facts
        dirty.insert(connection.id)
    }

    private mutating func unindex(_ id: UInt64) {
        guard let facts = indexed.removeValue(forKey: id) else { return }
        if facts.establishing { establishingCount -= 1 }
        if let peer = facts.suspendedPeer {
            suspendedByPeer[peer]?.remove(id)
            if suspendedByPeer[peer]?.isEmpty == true { suspendedByPeer[peer] = nil }
            suspendedCount -= 1
        }
        if let name = facts.name, byName[name] == id { byName[name] = nil }
        if let source = facts.heartbeatSource, byHeartbeat[source] == id { byHeartbeat[source] = nil }
    }

    // MARK: Timers

    /// The earliest timer of any connection.
    var nextDeadline: EngineInstant? { timers.nextDeadline }

    /// The connections with a timer due, oldest connection first. Their timers are cleared; `replace`
    /// sets the next ones.
    mutating func removeDue(now: EngineInstant) -> [UInt64] {
        timers.removeDue(now: now).sorted()
    }

    // MARK: Socket checks

    /// The earliest instant a connection's socket is due to be read.
    var nextSocketCheck: EngineInstant? { socketChecks.nextDeadline }

    /// The connections whose socket is due to be read at `now`, oldest first. They stay due until a
    /// snapshot of them is taken in (or their connection changes).
    func socketChecksDue(now: EngineInstant) -> [UInt64] {
        socketChecks.due(now: now).sorted()
    }

    // MARK: The kernel's state

    /// Queues every packet of a flow that is not a connection yet, or stops doing so.
    mutating func queueBeforeConnection(_ flow: FlowKey, _ queued: Bool) {
        if queued {
            guard queuedBeforeConnection.insert(flow).inserted else { return }
            queuedUsers[flow, default: 0] += 1
        } else {
            guard queuedBeforeConnection.remove(flow) != nil else { return }
            queuedUsers[flow, default: 0] -= 1
            if queuedUsers[flow] == 0 { queuedUsers[flow] = nil }
        }
        dirtyFlows.insert(flow)
    }

    /// Local addresses came or went: whether rackd keeps them on `lo` may change.
    mutating func addressesChanged(_ addresses: some Sequence<IPAddress>) {
        dirtyAddresses.formUnion(addresses)
    }

    /// Brings the managed flows, held addresses and wire index in line with the connections changed since
    /// the last call, and reports the differences: releases, then additions, each in a fixed order.
    mutating func reconcile(lostAddresses: Set<IPAddress>, into output: inout EngineOutput) {
        guard !dirty.isEmpty || !dirtyAddresses.isEmpty || !dirtyFlows.isEmpty else { return }
        var changedFlows = dirtyFlows
        dirtyFlows.removeAll(keepingCapacity: true)
        var rewritesBefore: Set<KernelRewrite> = []
        var rewritesAfter: Set<KernelRewrite> = []
        var screenedBefore: Set<FlowKey> = []
        var screenedAfter: Set<FlowKey> = []
        for id in dirty {
            let before = applied.removeValue(forKey: id)
            let after = connections[id]?.kernelNeeds
            if let before {
                for flow in before.queued {
                    queuedUsers[flow, default: 0] -= 1
                    if queuedUsers[flow] == 0 { queuedUsers[flow] = nil }
                    changedFlows.insert(flow)
                }
                for flow in before.wires where byWire[flow] == id { byWire[flow] = nil }
                if let rewrite = before.rewrite { rewritesBefore.insert(rewrite) }
                if let screened = before.screened { screenedBefore.insert(screened) }
                addressUsers[before.address, default: 0] -= 1
                if addressUsers[before.address] == 0 { addressUsers[before.address] = nil }
                dirtyAddresses.insert(before.address)
            }
            if let after {
                for flow in after.queued {
                    queuedUsers[flow, default: 0] += 1
                    changedFlows.insert(flow)
                }
                for flow in after.wires { byWire[flow] = id }
                if let rewrite = after.rewrite { rewritesAfter.insert(rewrite) }
                if let screened = after.screened { screenedAfter.insert(screened) }
                addressUsers[after.address, default: 0] += 1
                dirtyAddresses.insert(after.address)
                applied[id] = after
            }
        }
        dirty.removeAll(keepingCapacity: true)

        let released = changedFlows.filter { queuedUsers[$0] == nil && managedFlows.contains($0) }
        let added = changedFlows.filter { queuedUsers[$0] != nil && !managedFlows.contains($0) }
        // A rewrite belongs to one connection (its socket's tuple is in it), so no counts are needed.
        let stoppedRewrites = rewritesBefore.subtracting(rewritesAfter)
        let newRewrites = rewritesAfter.subtracting(rewritesBefore)
        // So is a screened flow (its socket's tuple): the queued elements of the same tuple replace it, or
        // it replaces them, in the same batch (removals first).
        let stoppedScreens = screenedBefore.subtracting(screenedAfter)
        let newScreens = screenedAfter.subtracting(screenedBefore)
        for rewrite in stoppedRewrites.sorted(by: Self.rewriteOrder) { output.ruleChanges.append(.stopRewriting(rewrite)) }
        for flow in stoppedScreens.sorted(by: Self.flowOrder) { output.ruleChanges.append(.stopScreening(flow)) }
        for flow in released.sorted(by: Self.flowOrder) { output.ruleChanges.append(.release(flow)) }
        for flow in added.sorted(by: Self.flowOrder) { output.ruleChanges.append(.manage(flow)) }
        for rewrite in newRewrites.sorted(by: Self.rewriteOrder) { output.ruleChanges.append(.rewrite(rewrite)) }
        for flow in newScreens.sorted(by: Self.flowOrder) { output.ruleChanges.append(.screen(flow)) }
        managedFlows.subtract(released)
        managedFlows.formUnion(added)
        kernelRewrites.subtract(stoppedRewrites)
        kernelRewrites.formUnion(newRewrites)
        screenedFlows.subtract(stoppedScreens)
        screenedFlows.formUnion(newScreens)

        let held = dirtyAddresses.filter { lostAddresses.contains($0) && addressUsers[$0] != nil }
        let stale = dirtyAddresses.filter { heldAddresses.contains($0) && !held.contains($0) }
        let fresh = held.subtracting(heldAddresses)
        dirtyAddresses.removeAll(keepingCapacity: true)
        for address in stale.sorted(by: Self.addressOrder) { output.addressChanges.append(.release(address)) }
        for address in fresh.sorted(by: Self.addressOrder) { output.addressChanges.append(.hold(address)) }
        heldAddresses.subtract(stale)
        heldAddresses.formUnion(fresh)
    }

    /// A fixed order for reporting sets, so the same inputs give the same outputs.
    static func flowOrder(_ a: FlowKey, _ b: FlowKey) -> Bool { a.description < b.description }
    static func rewriteOrder(_ a: KernelRewrite, _ b: KernelRewrite) -> Bool { a.description < b.description }
    static func addressOrder(_ a: IPAddress, _ b: IPAddress) -> Bool { a.description < b.description }
}
