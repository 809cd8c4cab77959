// rackd — which connections' records are stale, and when they are due to be written.
//
// A change to what `PersistenceDigest` covers (a new connection, a phase, a hold, a mapping, keys, a
// reconnection link) is due at once: a crash right after it must not bring back the connection as it
// was before. Any other change (liveness counters, the peer's last sign of life, a rocks ring) waits for
// the next checkpoint, at most `checkpointInterval` later, so that thousands of healthy connections do
// not each cost a write per snapshot. A graceful stop writes everything (`takeAll`).

struct PersistenceTracker {
    static let checkpointInterval: Duration = .seconds(10)

    /// The hash of each connection's digest as last written: 8 bytes a connection rather than the
    /// digest's 132 (docs/architecture.md, "Liveness at scale"). A change whose digest had the same 64-bit
    /// hash as the one written (about one in 2^64) would wait for the connection's next write.
    private var written: [UInt64: Int] = [:]
    /// Changed since last written: urgently (digest differs, or gone), or only in detail.
    private(set) var urgent: Set<UInt64> = []
    private var changed: Set<UInt64> = []
    private var lastCheckpointAt: EngineInstant?

    /// A connection was stored after a transition. `detailsChanged` false: nothing changed that its record
    /// needs beyond what the digest covers (a rackd peer's liveness readings, which the first snapshot
    /// after a restart reads afresh from the kernel), so only a digest change makes it stale.
    mutating func noteStored(_ id: UInt64, digest: PersistenceDigest, detailsChanged: Bool = true) {
        if written[id] != digest.hashValue {
            urgent.insert(id)
        } else if detailsChanged {
            changed.insert(id)
        }
    }

    /// A connection was forgotten.
    mutating func noteRemoved(_ id: UInt64) {
        urgent.insert(id)
        changed.remove(id)
    }

    /// A connection was taken back from its record: nothing to write.
    mutating func noteRestored(_ connection: Connection) {
        written[connection.id] = PersistenceDigest(connection).hashValue
        urgent.remove(connection.id)
        changed.remove(connection.id)
    }

    /// Whether anything must be written now.
    func isDue(now: EngineInstant) -> Bool {
        if !urgent.isEmpty { return true }
        return !changed.isEmpty && checkpointDue(now: now)
    }

    private func checkpointDue(now: EngineInstant) -> Bool {
        lastCheckpointAt.map { now.duration(since: $0) >= Self.checkpointInterval } ?? true
    }

    /// The ids to write or delete now, and forgets that they were stale. `table` gives each id's current
    /// connection (nil: forgotten, so its record goes).
    mutating func take(now: EngineInstant, all: Bool, table: ConnectionTable) -> PersistenceChanges {
        var ids = urgent
        if all || (!changed.isEmpty && checkpointDue(now: now)) {
            ids.formUnion(changed)
            changed.removeAll(keepingCapacity: true)
            lastCheckpointAt = now
        }
        if all { ids.formUnion(table.idsInOrder) }
        // The first checkpoint is counted from the first write.
        if lastCheckpointAt == nil { lastCheckpointAt = now }
        urgent.removeAll(keepingCapacity: true)
        var changes = PersistenceChanges()
        for id in ids.sorted() {
            if let connection = table[id] {
                changed.remove(id)
                written[id] = PersistenceDigest(connection).hashValue
                changes.save.append(PersistedConnection(connection: connection))
            } else {
                written[id] = nil
                changes.remove.append(id)
            }
        }
        return changes
    }
}
