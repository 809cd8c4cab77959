// rackd — every managed connection of this host, and the inputs that reach them (docs/architecture.md,
// "The connection core and peer kinds").
//
// Inputs: queued packets (`handleSegment`), socket snapshots (`handleSnapshots`), link events, operator
// commands and timer ticks. Each input finds the connections it concerns through the table's indexes,
// runs their transitions, carries out the actions they return (`carryOut`), and ends with `reconcile`,
// which reports what the kernel must change. An input costs the same whatever the number of
// connections, except those that concern every connection (a link event, `rackctl suspend --all`, a
// snapshot of every socket).
//
// How a connection starts depends on the peer's protocol: Peers/Rackd/RackdDetection.swift for rackd.

public struct ConnectionCore: Sendable {
    let configuration: Configuration
    var random: any RandomNumberGenerator & Sendable
    var table: ConnectionTable
    /// Handshakes of possible rackd peers, before both hellos are known.
    var rackdDetection = RackdDetection()
    /// Probes, held SYNs and candidates of possible rocks peers.
    var rocksDetection = RocksDetection()
    /// Destinations known to be ordinary peers, whose handshakes the kernel no longer queues.
    var ordinaryDestinations = OrdinaryDestinations()
    /// Links the rocks peers opened to the reconnection port, before their challenge names a connection.
    var rocksPort = RocksReconnectionPort()
    var nextConnectionID: UInt64 = 1
    /// After a failed socket reading: when to try again.
    var snapshotRetryAt: EngineInstant? = nil
    var addresses = HostAddresses()

    public init(configuration: Configuration, random: any RandomNumberGenerator & Sendable) {
        self.configuration = configuration
        self.random = random
        self.table = ConnectionTable(configuration: configuration)
    }

    // MARK: Packets

    /// Decides what happens to one queued TCP segment. `bytes` is the whole IP packet, which a mapped
    /// connection's rewrite edits in place.
    mutating func handleSegment(
        _ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer, direction: PacketDirection,
        checksum: TCPChecksumState, kernelShifts: Bool = false, now: EngineInstant
    ) -> EngineOutput {
        var output = EngineOutput()
        let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: direction)
        let tcp = packet.tcp
        if let reconnection = handleRocksReconnectionSegment(packet, flow: flow, direction: direction, now: now) {
            return reconnection
        }
        if tcp.flags.contains(.syn) {
            handleHandshakeSegment(packet, flow: flow, direction: direction, now: now, into: &output)
            shiftRocksHandshake(bytes, flow: flow, direction: direction, checksum: checksum, into: &output)
            reconcile(into: &output)
            return output
        }
        if let id = table.id(for: flow), table[id]?.peer.isRocks == true {
            // A rocks connection's every segment carries its splice (Peers/Rocks/RocksPeer+Stream.swift).
            run(id, now: now, into: &output) { connection, context in
                if kernelShifts && connection.hold != nil {
                    // Conntrack shifts it after the verdict, and a held segment is not the socket's to send
                    // now: its sender sends it again, unshifted once the entry is gone.
                    return ConnectionActions(verdict: .drop)
                }
                return connection.hold != nil
                    ? connection.handleHeldSegment(packet, direction: direction)
                    : connection.handleRocksSegment(packet, bytes: bytes, direction: direction, checksum: checksum,
                                                    kernelShifts: kernelShifts, now: context.now)
            }
            if let source = table[id]?.heartbeatSource, table.id(heartbeatsFrom: source) != id {
                // Another rocks connection already takes heartbeats from there: one source, one connection.
                run(id, now: now, into: &output) { connection, context in
                    connection.abandonRocks(reason: "another rocks connection already has heartbeat address \(source)",
                                            now: context.now)
                }
            }
            reconcile(into: &output)
            return output
        }
        // rackd's own messages are consumed here and never reach a socket.
        let message: RacksMessage?
        do {
            message = try RacksMessage.find(in: tcp.options)
        } catch {
            output.verdict = table.id(for: flow) == nil ? .accept : .drop
            output.events.append(.resumptionRejected(flow, reason: "malformed rackd option: \(error)"))
            return output
        }
        guard let id = table.id(for: flow) else {
            if message != nil, direction == .inbound {
                output.verdict = .drop
                output.events.append(.resumptionRejected(flow, reason: "rackd message for no connection rackd holds"))
            }
            return output
        }
        if let message, direction == .inbound {
            output.verdict = .drop
            run(id, now: now, into: &output) { connection, context in
                connection.handleRackdMessage(message, wire: flow, &context)
            }
            reconcile(into: &output)
            return output
        }
        guard let connection = table[id] else { return output }
        if connection.hold != nil {
            run(id, now: now, into: &output) { connection, _ in connection.handleHeldSegment(packet, direction: direction) }
            reconcile(into: &output)
            return output
        }
        guard let mapping = connection.mapping else {
            // Queued only while a roam handshake from this tuple is unconfirmed: nothing may reach the
            // socket (or draw a reset from the kernel) before the peer proves itself.
            if direction == .inbound && flow != connection.socketFlow { output.verdict = .drop }
            return output
        }
        // Every packet of a mapped connection the kernel does not rewrite alone (Core/KernelRewrite.swift),
        // and what the kernel still queues of one it does (rackd's messages, resets).
        switch direction {
        case .outbound where flow == connection.socketFlow:
            output.verdict = Self.rewrite(bytes, with: mapping.outbound, checksum: checksum)
        case .inbound where flow == mapping.wire:
            if let verdict = screenBareReset(connection, flags: tcp.flags, now: now) {
                output.verdict = verdict
                reconcile(into: &output)  // a reset held back queues the connection again until it is judged
                return output
            }
            output.verdict = Self.rewrite(bytes, with: mapping.inbound(to: connection.socketFlow), checksum: checksum)
            if connection.awaitsPeerOnNewPath() {
                var updated = connection
                updated.rackd.confirmRepeat = nil  // the peer sends on the new path: it has our confirm
                table.replace(updated)
            }
        default:
            // The old tuple, after the connection moved: stale, or forged. Never for the socket.
            output.verdict = .drop
        }
        // A roam confirmed by the peer's first packet on the new path, or a reset judged: the kernel may
        // carry the mapping from now on (Core/KernelRewrite.swift).
        reconcile(into: &output)
        return output
    }

    /// A reset without ACK on a moved connection's wire tuple is what the peer's kernel answers when a
    /// segment reached it unmapped: no socket there has that tuple. That happens for good when the peer
    /// forgot the connection, and for a moment when the peer's rules were taken away (a firewall reload;
    /// docs/rules-restore.md): only the first must reach the socket. So such a reset passes only if
    /// another one comes `bareResetConfirmation` after the first with nothing else from the peer between
    /// (the socket retransmits meanwhile, and the peer's kernel answers each); anything else from the peer
    /// forgets it. A socket's own abort carries an ACK and passes at once. Nil: carry on as usual.
    private mutating func screenBareReset(_ connection: Connection, flags: TCPFlags, now: EngineInstant) -> PacketVerdict? {
        guard flags.contains(.rst), !flags.contains(.ack) else {
            if connection.unconfirmedResetAt != nil {
                var updated = connection
                updated.unconfirmedResetAt = nil
                table.replace(updated)
            }
            return nil
        }
        guard let first = connection.unconfirmedResetAt else {
            var updated = connection
            updated.unconfirmedResetAt = now
            table.replace(updated)
            return .drop
        }
        return now.duration(since: first) >= Self.bareResetConfirmation ? nil : .drop
    }

    static let bareResetConfirmation: Duration = .seconds(1)

    /// Rewrites a packet in place; one that cannot be rewritten is dropped (its sender retransmits).
    static func rewrite(_ bytes: UnsafeMutableRawBufferPointer, with rewrite: FlowRewrite,
                        checksum: TCPChecksumState) -> PacketVerdict {
        do {
            try rewrite.apply(to: bytes, checksum: checksum)
            return .acceptModified(length: bytes.count)
        } catch {
            return .drop
        }
    }

    // MARK: Timers

    /// Runs every timer that is due: only the due connections are visited.
    mutating func handleTimeout(now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        for id in table.removeDue(now: now) {
            run(id, now: now, into: &output) { connection, context in connection.handleTimeout(&context) }
        }
        for flow in rackdDetection.expire(now: now) { table.queueBeforeConnection(flow, false) }
        ordinaryDestinations.expire(now: now)
        expireRocksDetection(now: now, into: &output)
        expirePendingRocksLinks(now: now, into: &output)
        reportUnknownRoams(now: now, into: &output)
        reconcile(into: &output)
        return output
    }

    /// The earliest instant a timer or a snapshot is due.
    var nextDeadline: EngineInstant? {
        [nextSnapshotAt, table.nextDeadline, rackdDetection.nextDeadline, rocksDetection.nextDeadline,
         rocksPort.nextDeadline, ordinaryDestinations.nextDeadline].compactMap { $0 }.min()
    }

    // MARK: Sockets

    var snapshotInterval: Duration { configuration.heartbeatInterval / 4 }

    /// Socket readings are gathered on this grid, so that connections due at nearby instants are read
    /// together rather than one wake-up each; a reading comes at most this late. Fine enough that the
    /// probes of one reading (about a fiftieth of the idle connections) do not come as one burst that
    /// overflows a device's backlog (`netdev_max_backlog`, 1000 packets).
    var snapshotGrid: Duration { configuration.heartbeatInterval / 50 }

    /// When the daemon should next read sockets: the earliest connection due, on the grid, and not before
    /// the retry after a failed reading.
    var nextSnapshotAt: EngineInstant? {
        guard let due = table.nextSocketCheck else { return nil }
        let grid = UInt64(max(1, snapshotGrid.nanosecondsValue))
        let onGrid = EngineInstant(nanoseconds: (due.nanoseconds + grid - 1) / grid * grid)
        return max(onGrid, snapshotRetryAt ?? onGrid)
    }

    /// The flows of every connection past its setup (what `handleSnapshots(_:now:)` takes in).
    var flowsToSnapshot: Set<FlowKey> {
        Set(table.unorderedConnections.filter {
            if case .establishing = $0.state { return false }
            return true
        }.map(\.socketFlow))
    }

    /// The flows whose sockets are due to be read at `now`.
    func flowsDueForSnapshot(now: EngineInstant) -> Set<FlowKey> {
        Set(table.socketChecksDue(now: now))
    }

    /// Takes in the sockets' state. A managed flow missing from `snapshots` has no socket any more.
    mutating func handleSnapshots(_ snapshots: [FlowKey: SocketSnapshot], now: EngineInstant) -> EngineOutput {
        handleSnapshots(snapshots, of: flowsToSnapshot, now: now)
    }

    /// Takes in the state of the sockets of `flows` (those read): a flow of them missing from `snapshots`
    /// has no socket any more. Costs O(k log k) for k flows, whatever the number of connections.
    mutating func handleSnapshots(_ snapshots: [FlowKey: SocketSnapshot], of flows: Set<FlowKey>,
                                  now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        snapshotRetryAt = nil
        let configuration = configuration
        table.electSentinels()
        for id in flows.compactMap({ table.id(forSocket: $0) }).sorted() {
            var context = ConnectionContext(now: now, configuration: configuration, addresses: addresses, random: random)
            let path = table.pathStanding(of: id)
            // The connection is read and changed where the table keeps it: at 10,000 connections this runs
            // thousands of times a second (docs/architecture.md, "Liveness at scale").
            let taken: (actions: ConnectionActions, persist: Bool, heard: EngineInstant)? = table.modify(id) { connection in
                if case .establishing = connection.state { return nil }
                let snapshot = snapshots[connection.socketFlow]
                let inode = connection.socketInode
                let actions = connection.handleSnapshot(snapshot, path: path, &context)
                connection.socketCheckAt = connection.nextSocketCheck(after: snapshot, path: path, now: now,
                                                                      configuration: configuration)
                // A rackd peer's liveness readings (when last heard, probes) are read afresh after a
                // restart: not worth a write of the record each (docs/restarts.md).
                return (actions, connection.peer.isRocks || connection.socketInode != inode, connection.lastHeard)
            } ?? nil
            random = context.random
            guard let taken else { continue }
            carryOut(taken.actions, of: id, now: now, into: &output, persist: taken.persist)
            if let path { notePathReading(path, suspended: taken.actions.suspended, heard: taken.heard, now: now) }
        }
        reconcile(into: &output)
        return output
    }

    /// What a reading of a member of `path` says about the path (Core/PathIndex.swift): its sentinel failing
    /// fails the path, so that every member is read at once; a member that heard the peer after the path
    /// failed shows that it works. A member failing on its own says nothing of the others.
    private mutating func notePathReading(_ path: PathStanding, suspended: Bool, heard: EngineInstant,
                                          now: EngineInstant) {
        if path.isSentinel && suspended && path.failedAt == nil {
            table.pathFailed(path.path, now: now)
        } else if let failedAt = path.failedAt, !suspended, heard > failedAt {
            table.pathRecovered(path.path)
        }
    }

    /// The daemon could not read the sockets this time: try again after the usual interval.
    mutating func handleSnapshotFailure(now: EngineInstant) {
        snapshotRetryAt = now + snapshotInterval
    }

    // MARK: Links

    /// Local addresses came or went, or routes were added (rtnetlink).
    mutating func handleLinkEvent(_ event: LinkEvent, now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        switch event {
        case .addressesLost(let lost):
            addresses.lost.formUnion(lost)
            addresses.available.removeAll { lost.contains($0) }
            table.addressesChanged(lost)
        case .addressesAvailable(let available):
            addresses.lost.subtract(available)
            addresses.available.removeAll { available.contains($0) }
            addresses.available += available
            table.addressesChanged(available)
        case .routesAdded:
            break  // the addresses are as they were; only held connections care (Connection+Links.swift)
        }
        for id in table.idsInOrder {
            // A route changes nothing for a connection that is not held: skip it (a routing daemon may add
            // routes by the thousand).
            if case .routesAdded = event, table[id]?.hold == nil { continue }
            run(id, now: now, into: &output) { connection, _ in connection.handleLinkEvent(event, now: now) }
        }
        reconcile(into: &output)
        return output
    }

    // MARK: Carrying out transitions

    /// Runs one transition of connection `id` and carries out the actions it returns. The verdict is the
    /// caller's to take.
    mutating func run(
        _ id: UInt64, now: EngineInstant, into output: inout EngineOutput,
        _ transition: (inout Connection, inout ConnectionContext) -> ConnectionActions
    ) {
        var context = ConnectionContext(now: now, configuration: configuration, addresses: addresses, random: random)
        guard let actions = table.modify(id, { connection in transition(&connection, &context) }) else { return }
        random = context.random
        if actions.verdict != .accept { output.verdict = actions.verdict }
        carryOut(actions, of: id, now: now, into: &output)
    }

    /// Sends, reports, stores or forgets, as a transition of connection `id` (changed in the table)
    /// asked.
    mutating func carryOut(_ actions: ConnectionActions, of id: UInt64, now: EngineInstant,
                           into output: inout EngineOutput, persist: Bool = true) {
        output.transmits += actions.transmits
        output.datagrams += actions.datagrams
        output.events += actions.events
        if let end = actions.end {
            guard let socketFlow = table[id]?.socketFlow else { return }
            table.remove(id)
            switch end {
            case .ended(let reason): output.events.append(.connectionEnded(id: id, socketFlow, reason: reason))
            case .fellBack(let reason): output.events.append(.fellBack(socketFlow, reason: reason))
            case .expired: break
            }
            return
        }
        if let lost = actions.kernelShiftLost, let connection = table[id], connection.kernelShift == lost {
            // Not a difference the reconcile would see: the engine's view is unchanged, the kernel's is not.
            output.ruleChanges.append(.shift(lost))
            output.events.append(.kernelShiftLost(id: id, connection.socketFlow))
        }
        // Wanted now: the socket is read at the next turn of the daemon's loop.
        if actions.wantsSnapshot { table.modify(id) { $0.socketCheckAt = nil } }
        table.noteChanged(id, persist: persist)
        if actions.suspended { enforceSuspensionLimits(newest: id, now: now, into: &output) }
    }

    /// Reports what the kernel must change for the connections this input touched.
    mutating func reconcile(into output: inout EngineOutput) {
        table.electSentinels()
        table.reconcile(lostAddresses: addresses.lost, into: &output)
    }

    /// Creates a connection id.
    mutating func makeConnectionID() -> UInt64 {
        defer { nextConnectionID += 1 }
        return nextConnectionID
    }

    /// The managed connections, oldest first, for status and tests.
    var connectionsInOrder: [Connection] {
        table.idsInOrder.compactMap { table[$0] }
    }
}

extension Connection {
    /// Whether our roam confirm is still being repeated: the first packet from the peer on the new path
    /// shows it arrived.
    func awaitsPeerOnNewPath() -> Bool {
        switch peer {
        case .rackd(let rackd): rackd.confirmRepeat != nil
        case .rocks: false
        }
    }
}
