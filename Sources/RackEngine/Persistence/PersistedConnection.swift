// rackd — one managed connection as rackd keeps it across its own restarts (docs/restarts.md).
//
// The whole connection is kept: peer kind, keys, both tuples and offsets, state and timers, the hold and
// its replayed segment, for rocks peers the splice, ring and reconnection. Only the socket snapshot is
// not: the kernel is asked again after a start. Instants are CLOCK_BOOTTIME, which a restart of rackd
// does not reset, and the state directory lives in /run, which a reboot empties, so a kept instant
// always means what it meant when it was written.
//
// The engine only turns connections into values and back; where and how they are written is the
// daemon's (Sources/RackDaemon/State/).

/// A managed connection, opaque outside the engine. Contains key material: it is written only to
/// rackd's state directory and never printed.
public struct PersistedConnection: Codable, Sendable, CustomStringConvertible {
    let connection: Connection

    /// The connection's id, which names its state file.
    public var id: UInt64 { connection.id }

    public var description: String { "connection \(connection.id) (\(connection.socketFlow), \(connection.peer.kind), \(connection.phase.rawValue))" }
}

/// What the daemon must write after an input: connections to (re)write, and ids whose state is gone.
public struct PersistenceChanges: Sendable {
    public var save: [PersistedConnection] = []
    public var remove: [UInt64] = []
}

/// What about a connection makes its record stale enough to write at once: the rest (probe counts, the
/// peer's last sign of life, a rocks ring) is written at the next checkpoint.
struct PersistenceDigest: Hashable {
    var phase: ConnectionPhase
    var holder: Holder?
    var holdHasPositions: Bool
    var mapping: WireMapping?
    var keysAgreed: Bool
    var resumptions: Int
    var rocksStage: RocksPeer.Stage?
    var rocksAttempts: Int
    var rocksPicked: FlowKey?

    init(_ connection: Connection) {
        // Suspect is a liveness reading, read afresh after a restart: a connection that turns suspect and
        // healthy again (thousands of them, when a loaded host answers late) is not written each time.
        phase = connection.phase == .suspect ? .healthy : connection.phase
        holder = connection.hold?.holder
        holdHasPositions = connection.hold?.positions != nil
        mapping = connection.mapping
        resumptions = connection.resumptions
        switch connection.peer {
        case .rackd(let rackd):
            keysAgreed = rackd.key != nil
            rocksStage = nil
            rocksAttempts = 0
            rocksPicked = nil
        case .rocks(let rocks):
            keysAgreed = rocks.blowfishKey != nil
            rocksStage = rocks.stage
            rocksAttempts = rocks.reconnection.attempts.count
            rocksPicked = rocks.reconnection.picked
        }
    }
}
