// rackd — the paths of the healthy connections to rackd peers, and each path's sentinel
// (docs/architecture.md, "Liveness at scale").
//
// A path is the pair of wire addresses (local, peer) a connection uses now (`Connection.wireFlow`: after a
// move, the new one). Connections on one path share fate in an outage, so liveness is watched per path:
// one member, the sentinel, is read and probed every heartbeat interval; the others only every
// `Configuration.memberCheckInterval`. When the sentinel fails, the path is marked failed and every member
// is read at once, and judged by the path's failure (Peers/Rackd/Connection+RackdLiveness.swift).
//
// The table (ConnectionTable.swift) derives membership from each connection's state, as it derives its
// other indexes: a healthy or suspect rackd connection is a member of its wire path, any other is not. A
// sentinel keeps its role while it stays a member; when it leaves (it suspends, ends, closes, moves) the
// path waits for an election, which the table holds once at the end of the input, so that a thousand
// members leaving in one input cost one choice, not a thousand.

/// The wire addresses of a connection to a rackd peer: (local, peer), ports aside.
struct WirePath: Hashable, Sendable {
    let local: IPAddress
    let remote: IPAddress

    init(_ wire: FlowKey) {
        local = wire.local.address
        remote = wire.remote.address
    }
}

/// What a connection is to its path at a reading.
struct PathStanding: Sendable {
    let path: WirePath
    /// The connection watches the path (or the path has none yet: it is read as if it did).
    let isSentinel: Bool
    /// When the path's sentinel failed, until a reading of one of its members hears the peer after it.
    let failedAt: EngineInstant?
}

/// The paths and their members, by the slot each member keeps in the table.
struct PathIndex {
    private struct Path {
        var members: Set<Int> = []
        var sentinel: Int?
        var failedAt: EngineInstant?
    }

    private var paths: [WirePath: Path] = [:]
    /// Paths whose sentinel left, to be given a new one by `takeElections`.
    private var withoutSentinel: Set<WirePath> = []

    /// The paths, for tests and status.
    var count: Int { paths.count }

    mutating func join(_ slot: Int, _ path: WirePath) {
        paths[path, default: Path()].members.insert(slot)
        if paths[path]?.sentinel == nil { withoutSentinel.insert(path) }
    }

    mutating func leave(_ slot: Int, _ path: WirePath) {
        guard var entry = paths[path], entry.members.remove(slot) != nil else { return }
        if entry.members.isEmpty {
            paths[path] = nil
            withoutSentinel.remove(path)
            return
        }
        if entry.sentinel == slot {
            entry.sentinel = nil
            withoutSentinel.insert(path)
        }
        paths[path] = entry
    }

    func standing(of slot: Int, on path: WirePath) -> PathStanding {
        let entry = paths[path]
        return PathStanding(path: path, isSentinel: entry?.sentinel.map { $0 == slot } ?? true,
                            failedAt: entry?.failedAt)
    }

    /// Marks the path failed; returns its members (to be read at once).
    mutating func fail(_ path: WirePath, now: EngineInstant) -> Set<Int> {
        guard paths[path] != nil else { return [] }
        paths[path]?.failedAt = now
        return paths[path]?.members ?? []
    }

    /// A member heard the peer after the path failed: the path works.
    mutating func recovered(_ path: WirePath) {
        paths[path]?.failedAt = nil
    }

    /// The paths waiting for a sentinel, each with its members; they are no longer waiting (call
    /// `setSentinel` for each). Each choice depends on its path alone, so their order does not matter.
    mutating func takeElections() -> [(path: WirePath, members: Set<Int>)] {
        guard !withoutSentinel.isEmpty else { return [] }
        defer { withoutSentinel.removeAll(keepingCapacity: true) }
        return withoutSentinel.compactMap { path in paths[path].map { (path, $0.members) } }
    }

    mutating func setSentinel(_ slot: Int, of path: WirePath) {
        paths[path]?.sentinel = slot
    }

    /// The path's sentinel, while the path stands (not failed).
    func standingSentinel(of path: WirePath) -> Int? {
        guard let entry = paths[path], entry.failedAt == nil else { return nil }
        return entry.sentinel
    }
}
