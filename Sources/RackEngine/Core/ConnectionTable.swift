// rackd — every managed connection of this host, with the indexes and the timer table over them.
//
// The table owns every way of finding a connection (its id, its socket's tuple, the tuple the wire
// carries, the name a roaming peer gives it) and keeps them right itself: transitions change a connection
// where it is stored (`modify`, then `noteChanged`; or `replace`) and the table updates its indexes, its
// counts and the connection's timer. Each lookup is O(1), a timer change O(log n).
//
// Each connection sits at a slot of one array that it keeps for life, beside what the table derived from
// it (its index facts, its share of the kernel's state); the timer heaps are keyed by slot. So a
// transition edits the connection in place (no copy of it out of a dictionary and back) and what follows
// it hashes only the id, once (docs/architecture.md, "Liveness at scale"). A slot freed by `remove` is
// reused only after the next `reconcile`, which still needs what its last connection applied.
//
// The paths of the healthy connections to rackd peers are an index too (PathIndex.swift): each path's
// sentinel is read every heartbeat interval, its other members on a slow schedule. A path whose sentinel
// left gets a new one at the end of the input (`electSentinels`), the member heard most recently, which is
// read at once.
//
// It also derives what the kernel must do for the connections (KernelNeeds.swift): the tuples queued,
// the departed local addresses kept on `lo`, the wire tuples that lead to a connection. Connections
// changed since the last `reconcile` are marked; `reconcile` recomputes only those and reports the
// differences in a fixed order. Nothing is added or removed by hand between inputs, so a forgotten case
// cannot leave a flow queued for ever, and an input costs the same whatever the number of connections.

struct ConnectionTable {
    let configuration: Configuration
    /// Every connection, at the slot it keeps for life (`slotByID`); a free slot holds none.
    private var slots: ContiguousArray<Slot> = []
    private var slotByID: [UInt64: Int] = [:]
    /// Slots free for the next connection, and those freed since the last `reconcile`.
    private var freeSlots: [Int] = []
    private var releasedSlots: [Int] = []
    private var bySocket: [FlowKey: UInt64] = [:]
    private var byWire: [FlowKey: UInt64] = [:]
    private var byName: [[UInt8]: UInt64] = [:]
    private var byHeartbeat: [TCPEndpoint: UInt64] = [:]
    /// The wire paths of the healthy connections to rackd peers, and their sentinels.
    private var paths = PathIndex()
    /// Each connection's earliest timer, by slot.
    private var timers = SlotDeadlineHeap()
    /// When each connection's socket is next due to be read (sock_diag), apart from its timers, by slot:
    /// only the due ones are read (`Connection.socketCheckDue`).
    private var socketChecks = SlotDeadlineHeap()

    private(set) var establishingCount = 0
    /// Suspended (or resuming) connections by the peer's address.
    private(set) var suspendedByPeer: [IPAddress: Set<UInt64>] = [:]
    private(set) var suspendedCount = 0

    /// The kernel's state as last reported.
    private(set) var managedFlows: Set<FlowKey> = []
    private(set) var kernelRewrites: Set<KernelRewrite> = []
    private(set) var screenedFlows: Set<FlowKey> = []
    private(set) var kernelShifts: Set<KernelShift> = []
    private(set) var heldAddresses: Set<IPAddress> = []
    private var queuedUsers: [FlowKey: Int] = [:]
    private var addressUsers: [IPAddress: Int] = [:]
    /// Slots and addresses whose kernel state may have changed since the last `reconcile`.
    private var dirty: Set<Int> = []
    private var dirtyAddresses: Set<IPAddress> = []
    /// Flows queued before they are connections (a SYN held for a rocks probe, a possible rock's
    /// connection to a serve port: Peers/Rocks/RocksDetection.swift), and those changed since `reconcile`.
    private(set) var queuedBeforeConnection: Set<FlowKey> = []
    private var dirtyFlows: Set<FlowKey> = []
    /// Which connections' records (Persistence/) are stale.
    var persistence = PersistenceTracker()

    /// One slot: a connection, and what the table derived from it.
    private struct Slot {
        var connection: Connection?
        /// What the indexes and counts hold for the connection, to take it out again.
        var indexed: IndexFacts?
        /// What the connection contributed to the kernel's state at the last `reconcile`, and its id.
        var applied: (id: UInt64, needs: KernelNeeds)?
    }

    private struct IndexFacts: Equatable {
        var establishing: Bool
        var suspendedPeer: IPAddress?
        var name: [UInt8]?
        var heartbeatSource: TCPEndpoint?
        var path: WirePath?
    }

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    // MARK: Lookup

    var count: Int { slotByID.count }

    /// The connection with this id, read where it is stored.
    subscript(id: UInt64) -> Connection? {
        _read {
            if let slot = slotByID[id] { yield slots[slot].connection } else { yield nil }
        }
    }

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
    var idsInOrder: [UInt64] { slotByID.keys.sorted() }

    /// Every connection, in no particular order.
    var unorderedConnections: [Connection] { slots.compactMap(\.connection) }

    // MARK: Changes

    /// Adds a new connection. A socket tuple names one connection: a new one on a tuple still in the table
    /// (the kernel reused it, the old socket being gone) replaces the old one, which is forgotten without
    /// a word, as its socket was.
    mutating func insert(_ connection: Connection) {
        precondition(slotByID[connection.id] == nil, "connection ids are never reused")
        if let previous = bySocket[connection.socketFlow] { remove(previous) }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            slots[slot].connection = connection
        } else {
            slot = slots.count
            slots.append(Slot(connection: connection))
        }
        slotByID[connection.id] = slot
        bySocket[connection.socketFlow] = connection.id
        persistence.noteStored(connection.id, digest: refresh(slot))
    }

    /// Stores a connection after a transition and brings the indexes, counts and timer up to date.
    /// `persist` false: the change is one its record need not carry (a rackd peer's liveness readings,
    /// PersistenceTracker), unless it is one a crash must not lose.
    mutating func replace(_ connection: Connection, persist: Bool = true) {
        guard let slot = slotByID[connection.id] else { return }
        slots[slot].connection = connection
        noteChanged(slot: slot, persist: persist)
    }

    /// Runs `body` on connection `id` where it is stored, without copying it; nil when there is no such
    /// connection. Then call `noteChanged` (or `remove`): until then the indexes and timers are those of
    /// the connection before.
    mutating func modify<Result>(_ id: UInt64, _ body: (inout Connection) -> Result) -> Result? {
        guard let slot = slotByID[id] else { return nil }
        return body(&slots[slot].connection!)
    }

    /// Brings the indexes, counts and timer up to date after `modify`, as `replace` does.
    mutating func noteChanged(_ id: UInt64, persist: Bool = true) {
        guard let slot = slotByID[id] else { return }
        noteChanged(slot: slot, persist: persist)
    }

    private mutating func noteChanged(slot: Int, persist: Bool) {
        let digest = refresh(slot)
        persistence.noteStored(slots[slot].connection!.id, digest: digest, detailsChanged: persist)
    }

    /// Forgets a connection.
    mutating func remove(_ id: UInt64) {
        guard let slot = slotByID.removeValue(forKey: id), let connection = slots[slot].connection else { return }
        slots[slot].connection = nil
        if bySocket[connection.socketFlow] == id { bySocket[connection.socketFlow] = nil }
        unindex(slot, id: id)
        timers.cancel(slot)
        socketChecks.cancel(slot)
        dirty.insert(slot)
        releasedSlots.append(slot)
        persistence.noteRemoved(id)
    }

    /// Takes back a connection from its record, as `insert` would, without marking its record stale.
    mutating func restore(_ connection: Connection) {
        insert(connection)
        persistence.noteRestored(connection)
    }

    /// Brings the indexes, counts and timers up to date with the connection at `slot`; returns its
    /// persistence digest.
    @discardableResult
    private mutating func refresh(_ slot: Int) -> PersistenceDigest {
        let derived = Self.derive(&slots[slot].connection!, configuration)
        let (id, facts) = (derived.id, derived.facts)
        timers.set(slot, to: derived.deadline)
        socketChecks.set(slot, to: derived.socketCheck)
        // Most changes (a liveness reading, at 10,000 connections thousands a second) touch neither the
        // indexes nor what the kernel holds: then there is nothing to redo.
        if slots[slot].indexed == facts {
            if slots[slot].applied?.needs != derived.needs { dirty.insert(slot) }
            return derived.digest
        }
        unindex(slot, id: id)
        if facts.establishing { establishingCount += 1 }
        if let peer = facts.suspendedPeer {
            suspendedByPeer[peer, default: []].insert(id)
            suspendedCount += 1
        }
        if let name = facts.name { byName[name] = id }
        // The first connection to name a heartbeat address keeps it (the core abandons a later one).
        if let source = facts.heartbeatSource, byHeartbeat[source] == nil { byHeartbeat[source] = id }
        if let path = facts.path { paths.join(slot, path) }
        slots[slot].indexed = facts
        dirty.insert(slot)
        return derived.digest
    }

    /// What the table derives from a connection. `inout` only so that the connection is read where it is
    /// stored, not copied (it is not changed).
    private static func derive(_ connection: inout Connection, _ configuration: Configuration)
        -> (id: UInt64, facts: IndexFacts, deadline: EngineInstant?, socketCheck: EngineInstant?,
            needs: KernelNeeds, digest: PersistenceDigest)
    {
        let facts = IndexFacts(
            establishing: { if case .establishing = connection.state { true } else { false } }(),
            suspendedPeer: connection.hold != nil ? connection.socketFlow.remote.address : nil,
            name: connection.peerName, heartbeatSource: connection.heartbeatSource, path: connection.livenessPath)
        return (connection.id, facts, connection.nextDeadline(configuration), connection.socketCheckDue,
                connection.kernelNeeds, PersistenceDigest(connection))
    }

    /// Takes connection `id`, at `slot`, out of the indexes and counts.
    private mutating func unindex(_ slot: Int, id: UInt64) {
        guard let facts = slots[slot].indexed else { return }
        slots[slot].indexed = nil
        if facts.establishing { establishingCount -= 1 }
        if let peer = facts.suspendedPeer {
            suspendedByPeer[peer]?.remove(id)
            if suspendedByPeer[peer]?.isEmpty == true { suspendedByPeer[peer] = nil }
            suspendedCount -= 1
        }
        if let name = facts.name, byName[name] == id { byName[name] = nil }
        if let source = facts.heartbeatSource, byHeartbeat[source] == id { byHeartbeat[source] = nil }
        if let path = facts.path { paths.leave(slot, path) }
    }

    // MARK: Timers

    /// The earliest timer of any connection.
    var nextDeadline: EngineInstant? { timers.nextDeadline }

    /// The connections with a timer due, oldest connection first. Their timers are cleared; `replace`
    /// sets the next ones.
    mutating func removeDue(now: EngineInstant) -> [UInt64] {
        timers.removeDue(now: now).compactMap { slots[$0].connection?.id }.sorted()
    }

    // MARK: Socket checks

    /// The earliest instant a connection's socket is due to be read.
    var nextSocketCheck: EngineInstant? { socketChecks.nextDeadline }

    /// The socket tuples of the connections whose socket is due to be read at `now`. They stay due until
    /// a snapshot of them is taken in (or their connection changes).
    func socketChecksDue(now: EngineInstant) -> [FlowKey] {
        socketChecks.due(now: now).compactMap { slots[$0].connection?.socketFlow }
    }

    // MARK: Paths

    /// What connection `id` is to its wire path; nil when it is on none (not a healthy connection to a
    /// rackd peer).
    func pathStanding(of id: UInt64) -> PathStanding? {
        guard let slot = slotByID[id], let path = slots[slot].indexed?.path else { return nil }
        return paths.standing(of: slot, on: path)
    }

    /// The path's sentinel failed: every member is due to be read at once, and judged by the path's failure
    /// until one of them hears the peer (`pathRecovered`).
    mutating func pathFailed(_ path: WirePath, now: EngineInstant) {
        for slot in paths.fail(path, now: now) { readAtOnce(slot) }
    }

    /// A member of a failed path heard the peer after the failure.
    mutating func pathRecovered(_ path: WirePath) {
        paths.recovered(path)
    }

    /// Gives each path whose sentinel left a new one: the member heard most recently (the likeliest to be
    /// busy, so read without probes), the oldest connection among equals. It is read at once: its last
    /// reading was scheduled for a member. O(members) per path that lost its sentinel in this input.
    mutating func electSentinels() {
        for (path, members) in paths.takeElections() {
            var best: (slot: Int, heard: EngineInstant, id: UInt64)?
            for slot in members {
                guard let connection = slots[slot].connection else { continue }
                let candidate = (slot: slot, heard: connection.lastHeard, id: connection.id)
                if let current = best, (current.heard, candidate.id) >= (candidate.heard, current.id) { continue }
                best = candidate
            }
            guard let best else { continue }
            paths.setSentinel(best.slot, of: path)
            readAtOnce(best.slot)
        }
    }

    /// When the peer was last heard on connection `id`'s path, by its sentinel, while the path stands: a
    /// member is read only every few intervals, so its own reading can be seconds old while the sentinel
    /// heard the same peer, over the same path, within the last one. nil for a connection on no path.
    func pathLastHeard(of id: UInt64) -> EngineInstant? {
        guard let slot = slotByID[id], let path = slots[slot].indexed?.path,
              let sentinel = paths.standingSentinel(of: path)
        else { return nil }
        return slots[sentinel].connection?.lastHeard
    }

    /// The number of paths, for tests.
    var pathCount: Int { paths.count }

    private mutating func readAtOnce(_ slot: Int) {
        slots[slot].connection?.socketCheckAt = nil
        socketChecks.set(slot, to: slots[slot].connection?.socketCheckDue)
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
        var shiftsBefore: Set<KernelShift> = []
        var shiftsAfter: Set<KernelShift> = []
        for slot in dirty {
            let before = slots[slot].applied
            slots[slot].applied = nil
            let after = slots[slot].connection.map { (id: $0.id, needs: $0.kernelNeeds) }
            if let (id, before) = before {
                for flow in before.queued {
                    queuedUsers[flow, default: 0] -= 1
                    if queuedUsers[flow] == 0 { queuedUsers[flow] = nil }
                    changedFlows.insert(flow)
                }
                for flow in before.wires where byWire[flow] == id { byWire[flow] = nil }
                if let rewrite = before.rewrite { rewritesBefore.insert(rewrite) }
                if let screened = before.screened { screenedBefore.insert(screened) }
                if let shift = before.shift { shiftsBefore.insert(shift) }
                addressUsers[before.address, default: 0] -= 1
                if addressUsers[before.address] == 0 { addressUsers[before.address] = nil }
                dirtyAddresses.insert(before.address)
            }
            if let (id, after) = after {
                for flow in after.queued {
                    queuedUsers[flow, default: 0] += 1
                    changedFlows.insert(flow)
                }
                for flow in after.wires { byWire[flow] = id }
                if let rewrite = after.rewrite { rewritesAfter.insert(rewrite) }
                if let screened = after.screened { screenedAfter.insert(screened) }
                if let shift = after.shift { shiftsAfter.insert(shift) }
                addressUsers[after.address, default: 0] += 1
                dirtyAddresses.insert(after.address)
                slots[slot].applied = (id, after)
            }
        }
        // What the freed slots applied is taken back: they may hold new connections now.
        freeSlots += releasedSlots
        releasedSlots.removeAll(keepingCapacity: true)
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
        let stoppedShifts = shiftsBefore.subtracting(shiftsAfter)
        let newShifts = shiftsAfter.subtracting(shiftsBefore)
        for rewrite in stoppedRewrites.sorted(by: Self.rewriteOrder) { output.ruleChanges.append(.stopRewriting(rewrite)) }
        for flow in stoppedScreens.sorted(by: Self.flowOrder) { output.ruleChanges.append(.stopScreening(flow)) }
        for shift in stoppedShifts.sorted(by: Self.shiftOrder) { output.ruleChanges.append(.stopShifting(shift)) }
        for flow in released.sorted(by: Self.flowOrder) { output.ruleChanges.append(.release(flow)) }
        for flow in added.sorted(by: Self.flowOrder) { output.ruleChanges.append(.manage(flow)) }
        for rewrite in newRewrites.sorted(by: Self.rewriteOrder) { output.ruleChanges.append(.rewrite(rewrite)) }
        for flow in newScreens.sorted(by: Self.flowOrder) { output.ruleChanges.append(.screen(flow)) }
        for shift in newShifts.sorted(by: Self.shiftOrder) { output.ruleChanges.append(.shift(shift)) }
        managedFlows.subtract(released)
        managedFlows.formUnion(added)
        kernelRewrites.subtract(stoppedRewrites)
        kernelRewrites.formUnion(newRewrites)
        screenedFlows.subtract(stoppedScreens)
        screenedFlows.formUnion(newScreens)
        kernelShifts.subtract(stoppedShifts)
        kernelShifts.formUnion(newShifts)

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
    static func shiftOrder(_ a: KernelShift, _ b: KernelShift) -> Bool { a.description < b.description }
    static func addressOrder(_ a: IPAddress, _ b: IPAddress) -> Bool { a.description < b.description }
}
