// rackd — taking connections back after a restart of rackd, and handing out the records to write
// (docs/restarts.md).

extension ConnectionCore {
    /// Takes back connections from their records. Run before the first input, after the addresses are
    /// known (a moved connection's departed address must be seen as departed). The sockets are checked
    /// at once (a restored connection's socket is due at once): the first snapshot ends the connections
    /// whose socket is gone.
    mutating func restore(_ records: [PersistedConnection], now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        // A moved connection's original address left before the restart: rackd still keeps it on `lo`
        // for the socket, and the link monitor (which ignores `lo`) does not report it. It counts as
        // departed, as it did before.
        let departed = Set(records.flatMap(\.connection.localAddressesInUse)).subtracting(addresses.available)
        addresses.lost.formUnion(departed)
        table.addressesChanged(departed)
        for record in records.sorted(by: { $0.id < $1.id }) {
            var connection = record.connection
            guard table[connection.id] == nil, table.id(forSocket: connection.socketFlow) == nil else {
                output.events.append(.connectionEnded(id: connection.id, connection.socketFlow,
                                                      reason: "a second record for the same connection; not restored"))
                continue
            }
            if connection.peer.isRocks && !configuration.rocks.isEnabled {
                // Its heartbeats and reconnections need the rocks sockets, which this configuration lacks.
                output.events.append(.connectionEnded(id: connection.id, connection.socketFlow,
                                                      reason: "not restored: [rocks] is off in this configuration"))
                continue
            }
            if case .rocks(var rocks) = connection.peer {
                // This rackd's finding, not the last one's: conntrack may have gone (or come) meanwhile.
                rocks.kernelMayShift = configuration.kernelShiftsAvailable
                rocks.kernelShiftMissedAt = nil
                connection.peer = .rocks(rocks)
            }
            connection.socket = nil
            connection.graceAfterRestart(now: now)
            table.restore(connection)
            nextConnectionID = max(nextConnectionID, connection.id + 1)
        }
        reconcile(into: &output)
        return output
    }

    /// The records due to be written now (`all`: every connection, as at a graceful stop).
    mutating func takePersistenceChanges(now: EngineInstant, all: Bool) -> PersistenceChanges {
        table.persistence.take(now: now, all: all, table: table)
    }

    /// Whether records are due to be written.
    func persistenceDue(now: EngineInstant) -> Bool { table.persistence.isDue(now: now) }
}

extension Connection {
    /// The local addresses the connection's socket, wire and roam under way use: after a restart, those
    /// that are not the host's any more are departed ones (the roam from them must go on).
    var localAddressesInUse: [IPAddress] {
        var used = [socketFlow.local.address]
        if let mapping { used.append(mapping.wire.local.address) }
        if case .rackd(let rackd) = peer, let roam = rackd.resumption.roam { used.append(roam.wire.local.address) }
        return used
    }

    /// While rackd was away no heartbeat of a rock was read, and the record may be a checkpoint old: a
    /// healthy rocks connection gets at least half its heartbeat timeout to hear the rock again. A rackd
    /// peer's liveness comes from the kernel's socket, which kept counting.
    mutating func graceAfterRestart(now: EngineInstant) {
        guard case .rocks(var rocks) = peer, rocks.stage == .established, let heard = rocks.heartbeats.lastHeard else { return }
        let grace = RocksPeer.heartbeatInterval * RocksPeer.heartbeatMisses / 2
        let floor = EngineInstant(nanoseconds: now.nanoseconds &- UInt64(grace.nanosecondsValue))
        if heard < floor { rocks.heartbeats.lastHeard = floor }
        peer = .rocks(rocks)
    }
}
