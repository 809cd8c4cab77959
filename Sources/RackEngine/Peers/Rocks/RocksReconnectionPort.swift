// rackd — the one reconnection port every rocks connection of this host names in its init (docs/rocks.md
// §15). It answers at every moment: a rock that suspends first storms a closed port with SYNs, so every
// SYN there gets rackd's SYN-ACK, from the engine (no kernel socket listens).
//
// One port serves every connection, so a link the rock opens does not say whose it is until the rock's
// challenge comes: a challenge's last block is the padding under the connection's key, the same for every
// challenge under that key (RocksChallenge.swift), so it names the connection without revealing the key.
// Until then the link is pending here. Which end writes first depends on the connection's role (the 1of2
// byte is the server's): when every candidate connection (those with the rock's address first, else all
// rocks connections) is a server, rackd writes the byte at once; when every one is a client, it waits for the
// rock's byte and challenge, as a client does, however long they take; with both roles, it waits `pickWait`
// for the rock's byte, then writes its own. A rock whose connection's role disagrees is reset, and tries again.
//
// Bounded: at most `capacity` pending links, each for at most `RocksLink.lifetime`. A SYN that finds the
// table full takes the place of the oldest link still in its handshake (forged SYNs never complete one,
// and a genuine rock's ACK comes within a round trip, so a SYN flood cannot keep a rock out); when every
// link completed its handshake (the sender owns its address), the SYN is answered with a reset, as a full
// backlog would be.

struct RocksReconnectionPort {
    struct PendingLink {
        var link: RocksLink
        /// rackd wrote the 1of2 byte (it assumed the server's role).
        var pickWritten: Bool
        /// Some connection the link may belong to is a server's: if the rock stays silent for `pickWait`,
        /// rackd writes the 1of2 byte. When every candidate is a client's, the rock is the server and its
        /// byte comes however late (a loaded rock took over 500 ms; rackd's byte then made it read the rock's
        /// byte and challenge one byte off, and reset the link).
        var mayPick: Bool
    }

    var pending: [FlowKey: PendingLink] = [:]
    static let capacity = 64
    /// When the connections a link may belong to have both roles, rackd waits this long for the rock's
    /// 1of2 byte (a rocks server writes it at once) and then writes its own (it is the server).
    static let pickWait: Duration = .milliseconds(500)

    /// The earliest instant a pending link expires.
    var nextDeadline: EngineInstant? {
        (pending.values.map { $0.link.startedAt + RocksLink.lifetime } + pending.values.compactMap(\.link.retransmitAt)
            + pending.values.filter { $0.mayPick && $0.link.phase == .established && !$0.pickWritten && $0.link.received == 0 }
                .map { $0.link.startedAt + Self.pickWait }).min()
    }
}

extension ConnectionCore {
    /// A segment on a reconnection link, or to the reconnection port; nil for any other segment.
    mutating func handleRocksReconnectionSegment(_ packet: IPPacketView, flow: FlowKey, direction: PacketDirection,
                                                 now: EngineInstant) -> EngineOutput? {
        let settings = configuration.rocks
        // Every link's local end is the reconnection port: rackd's SYNs leave from it too.
        guard settings.legacyAuthentication, settings.reconnectionPort != 0, direction == .inbound,
            flow.local.port == settings.reconnectionPort
        else { return nil }
        var output = EngineOutput()
        if let id = table.id(for: flow), table[id]?.hasRocksLink(flow) == true {
            output.verdict = .drop
            run(id, now: now, into: &output) { connection, context in
                connection.handleRocksLinkSegment(packet, flow: flow, &context)
            }
            reconcile(into: &output)
            return output
        }
        guard table.id(for: flow) == nil else { return nil }  // a reconnected connection's wire: mapped traffic
        output.verdict = .drop
        if pendingRocksLinkSegment(packet, flow: flow, now: now, into: &output) {
            reconcile(into: &output)
            return output
        }
        let tcp = packet.tcp
        if addresses.lost.contains(flow.local.address) {
            // The address left (it is only kept on lo for the sockets that use it): a link there would carry
            // the connection on it, and rackd would announce it again. No answer, so the rock retries at its
            // pace (a refusal would make it storm) while rackd's own SYNs go from the new address.
            return output
        }
        guard tcp.flags.contains(.syn), !tcp.flags.contains(.ack), !tcp.flags.contains(.rst) else {
            if !tcp.flags.contains(.rst) {
                // A link rackd forgot: as a closed port would.
                output.transmits.append(contentsOf: ConnectionActions.emit(.reset(
                    from: flow.local, to: flow.remote, sequenceNumber: tcp.acknowledgmentNumber)))
            }
            return output
        }
        let candidates = rocksReconnectionCandidates(from: flow.remote.address)
        if !candidates.isEmpty, rocksPort.pending.count >= RocksReconnectionPort.capacity,
            let oldest = rocksPort.pending.values.filter({ $0.link.phase == .synReceived })
                .min(by: { ($0.link.startedAt, $0.link.flow.description) < ($1.link.startedAt, $1.link.flow.description) })
        {
            forgetPendingRocksLink(oldest.link.flow)
        }
        guard !candidates.isEmpty, rocksPort.pending.count < RocksReconnectionPort.capacity,
            let socketOptions = candidates.first.map({ table[$0]!.localOptions })
        else {
            output.transmits.append(contentsOf: ConnectionActions.emit(.reset(
                from: flow.local, to: flow.remote, sequenceNumber: TCPSequenceNumber(0), acknowledgmentNumber: tcp.sequenceNumber + 1)))
            return output
        }
        let isn = TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &random))
        let (link, synAck) = RocksLink.accept(packet, flow: flow, isn: isn, socketOptions: socketOptions,
                                              receiveLimit: RocksReconnection.rockExchangeLength(ourRole: .client),
                                              now: now)
        rocksPort.pending[flow] = RocksReconnectionPort.PendingLink(
            link: link, pickWritten: false, mayPick: candidates.contains { table[$0]?.role == .server })
        table.queueBeforeConnection(flow, true)
        output.transmits.append(contentsOf: ConnectionActions.emit(synAck))
        reconcile(into: &output)
        return output
    }

    /// The rocks connections a link from `address` may belong to: those whose rock is there, else every
    /// one that could reconnect (past its init).
    private func rocksReconnectionCandidates(from address: IPAddress) -> [UInt64] {
        let reconnectable = table.idsInOrder.filter { table[$0]?.rocksPeer?.challengeFingerprint != nil }
        let there = reconnectable.filter { table[$0]?.socketFlow.remote.address == address
            || table[$0]?.wireFlow.remote.address == address }
        return there.isEmpty ? reconnectable : there
    }

    /// A segment on a pending link; false if `flow` is no pending link.
    private mutating func pendingRocksLinkSegment(_ packet: IPPacketView, flow: FlowKey, now: EngineInstant,
                                                  into output: inout EngineOutput) -> Bool {
        guard var pending = rocksPort.pending[flow] else { return false }
        var segments: [TCPSegmentRepr] = []
        let wasEstablished = pending.link.phase == .established
        let outcome = pending.link.handle(packet, now: now, into: &segments)
        if !wasEstablished, pending.link.phase == .established {
            let candidates = rocksReconnectionCandidates(from: flow.remote.address)
            if !candidates.isEmpty, candidates.allSatisfy({ table[$0]?.role == .server }) {
                // Every connection it may be is a server's: write the 1of2 byte now.
                writePick(on: &pending, now: now, into: &segments)
            }
        }
        for segment in segments { output.transmits.append(contentsOf: ConnectionActions.emit(segment)) }
        if case .closed = outcome {
            forgetPendingRocksLink(flow)
            return true
        }
        rocksPort.pending[flow] = pending
        attributePendingRocksLink(flow, now: now, into: &output)
        return true
    }

    /// Names the connection a pending link belongs to from the rock's challenge, and hands the link over.
    private mutating func attributePendingRocksLink(_ flow: FlowKey, now: EngineInstant, into output: inout EngineOutput) {
        guard let pending = rocksPort.pending[flow] else { return }
        let prefix = pending.pickWritten ? 0 : RocksPick.length
        let challengeEnd = prefix + 4 + RocksChallenge.length
        guard pending.link.unread.count >= challengeEnd else { return }
        let bytes = pending.link.unread
        let length = bytes[prefix..<prefix + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let fingerprint = Array(bytes[(challengeEnd - Blowfish.blockLength)..<challengeEnd])
        forgetPendingRocksLink(flow)
        let owner = length == UInt32(RocksChallenge.length)
            ? table.idsInOrder.first { table[$0]?.rocksPeer?.challengeFingerprint == fingerprint } : nil
        guard let id = owner, let connection = table[id], (connection.role == .server) == pending.pickWritten else {
            output.transmits.append(contentsOf: ConnectionActions.emit(pending.link.reset))
            output.events.append(.resumptionRejected(flow, reason: owner == nil
                ? "rocks reconnection whose challenge names no connection of this host (wrong key, or none)"
                : "rocks reconnection for a connection whose 1of2 role rackd guessed wrong: reset, the rock tries again"))
            return
        }
        run(id, now: now, into: &output) { connection, context in
            connection.adoptRocksLink(pending.link, pickWritten: pending.pickWritten, &context)
        }
    }

    /// rackd takes the server's part on a pending link: the 1of2 byte (any value).
    private mutating func writePick(on pending: inout RocksReconnectionPort.PendingLink, now: EngineInstant,
                                    into segments: inout [TCPSegmentRepr]) {
        var random = self.random
        let byte = UInt8.random(in: 0...255, using: &random)
        self.random = random
        pending.link.write([RocksPick.segment(byte)], now: now, into: &segments)
        pending.pickWritten = true
        pending.link.receiveLimit = RocksReconnection.rockExchangeLength(ourRole: .server)
    }

    private mutating func forgetPendingRocksLink(_ flow: FlowKey) {
        guard rocksPort.pending.removeValue(forKey: flow) != nil else { return }
        table.queueBeforeConnection(flow, false)
    }

    /// Resets pending links past their lifetime, and resends what they have not had acknowledged.
    mutating func expirePendingRocksLinks(now: EngineInstant, into output: inout EngineOutput) {
        for flow in rocksPort.pending.keys.sorted(by: ConnectionTable.flowOrder) {
            guard var pending = rocksPort.pending[flow] else { continue }
            if now.duration(since: pending.link.startedAt) >= RocksLink.lifetime {
                output.transmits.append(contentsOf: ConnectionActions.emit(pending.link.reset))
                forgetPendingRocksLink(flow)
                continue
            }
            var segments: [TCPSegmentRepr] = []
            if pending.mayPick, pending.link.phase == .established, !pending.pickWritten, pending.link.received == 0,
                now.duration(since: pending.link.startedAt) >= RocksReconnectionPort.pickWait
            {
                // The rock wrote nothing: it is a client waiting for the server's byte, so rackd is the server.
                writePick(on: &pending, now: now, into: &segments)
            }
            pending.link.retransmit(now: now, into: &segments)
            rocksPort.pending[flow] = pending
            for segment in segments { output.transmits.append(contentsOf: ConnectionActions.emit(segment)) }
        }
    }
}
