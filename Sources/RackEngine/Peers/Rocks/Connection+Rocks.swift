// rackd — a connection whose peer is a rocks 2.4 application: its start, its segments, its timers and
// its heartbeats, as transitions of the connection core (docs/rocks.md §14). The protocol itself is in
// RocksPeer+Stream.swift.

extension Connection {
    /// A connection the handshake showed to be toward a rock (client: the probe said so) or from a
    /// possible one (server: a serve port). Nil for a connection rocks cannot carry (IPv6). `peerISN` is
    /// the socket's; `mapping`, the shift of a client's handshake (RocksPeer.handshakeMapping), goes
    /// between the splice and the wire.
    static func rocks(
        id: UInt64, socketFlow: FlowKey, role: ConnectionRole, localISN: TCPSequenceNumber, peerISN: TCPSequenceNumber,
        localOptions: HandshakeOptions, peerOptions: HandshakeOptions, timestamps: (local: UInt32?, peer: UInt32?),
        mapping: WireMapping? = nil, _ context: inout ConnectionContext
    ) -> (Connection, ConnectionActions)? {
        let now = context.now
        let privateKey = RocksKeyExchange.privateKey(from: context.randomBytes(16))
        guard let (bytes, writeEnds) = RocksPeer.ourBytes(
            publicKey: RocksKeyExchange.publicKey(privateKey), local: socketFlow.local,
            configuration: context.configuration.rocks)
        else { return nil }
        let usesTimestamps = localOptions.timestamps && peerOptions.timestamps
        let socket = RocksPeer.SocketView(
            sendNext: localISN + 1, acknowledgment: peerISN + 1,
            window: UInt16(truncatingIfNeeded: 0xFFFF >> Int(localOptions.windowScale)),
            timestampValue: usesTimestamps ? timestamps.local : nil,
            peerTimestampValue: usesTimestamps ? timestamps.peer : nil,
            wireAcknowledgment: peerISN + 1, finSequence: nil)
        var rocks = RocksPeer(stage: role == .client ? .scanning : .awaitingClient, privateKey: privateKey,
                              peerISN: peerISN, socket: socket, now: now)
        rocks.ours = bytes
        rocks.oursWriteEnds = writeEnds
        rocks.kernelMayShift = context.configuration.kernelShiftsAvailable
        var step = RocksStep()
        if role == .client {
            // The announcement at once, on the data connection's first byte; the init once the rock's
            // announcement is in (docs/rocks.md §2.2).
            rocks.splice.insertionPoint = localISN + 1
            rocks.splice.insertedLength = UInt32(bytes.count)
            rocks.oursReleased = RocksPeer.announcementLength
            rocks.sendOurs(from: 0, flow: socketFlow, now: now, into: &step)
        }
        var connection = Connection(
            id: id, socketFlow: socketFlow, role: role, localISN: localISN, peerISN: peerISN,
            localOptions: localOptions, peerOptions: peerOptions, state: .establishing(Establishing(since: now)),
            peer: .rocks(rocks), lastHeard: now)
        connection.mapping = mapping
        var actions = ConnectionActions()
        for segment in step.segments { actions.transmit(mapping?.outbound(segment) ?? segment) }
        return (connection, actions)
    }

    /// The rocks protocol's state; only for connections whose peer is a rock.
    var rocksPeer: RocksPeer? {
        if case .rocks(let rocks) = peer { rocks } else { nil }
    }

    /// Where the rock sends its heartbeats from, once its init is read.
    var heartbeatSource: TCPEndpoint? { rocksPeer?.heartbeats.destination }

    // MARK: Segments

    /// A queued segment of a rocks connection that is not held. `kernelShifts`: conntrack shifts the
    /// packet after its verdict (Core/KernelShift.swift) by the entry rackd made for the connection
    /// (`RocksPeer.kernelShiftInEntry`); such a packet is dropped when rackd knows of no entry.
    mutating func handleRocksSegment(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                     direction: PacketDirection, checksum: TCPChecksumState,
                                     kernelShifts: Bool = false, now: EngineInstant) -> ConnectionActions {
        guard case .rocks(var rocks) = peer else { return ConnectionActions(verdict: .drop) }
        let shift = kernelShift
        if let shift, rocks.kernelShiftInEntry != shift { rocks.kernelShiftInEntry = shift }
        // What the kernel will do to this packet after its verdict: the entry's shift (still there just after
        // the engine stopped shifting the connection: the socket answers a FIN at once, before the entry goes).
        let entryShift = kernelShifts ? rocks.kernelShiftInEntry : nil
        if kernelShifts && entryShift == nil {
            // An entry rackd knows nothing of: neither what rackd would make of the packet nor the packet
            // itself would arrive right. Its sender sends it again.
            return ConnectionActions(verdict: .drop)
        }
        var lostShift: KernelShift?
        if let shift, !kernelShifts, direction == .inbound {
            // The kernel did not shift this one: its entry is gone (a flush, a timeout) or was not made yet
            // when the packet was queued. rackd maps it, and asks for the entry again, at most once a second
            // (the first such packet may be one queued before the entry existed).
            if let missed = rocks.kernelShiftMissedAt {
                if missed + Self.kernelShiftRequestInterval <= now {
                    lostShift = shift
                    rocks.kernelShiftMissedAt = now
                }
            } else {
                rocks.kernelShiftMissedAt = now
            }
            peer = .rocks(rocks)
        }
        if direction == .outbound, screenedFlow != nil || (kernelShifts && shift != nil) {
            // The kernel lets the rock's segments through (Core/KernelRewrite.swift), and shifts the socket's
            // if conntrack carries the connection's shift; the socket's pass here, unchanged, for the ring
            // (docs/rocks.md §14, "In the kernel").
            let step = rocks.watchFromSocket(packet)
            peer = .rocks(rocks)
            var actions = ConnectionActions(verdict: step.verdict)
            if kernelShifts, let shift, shift.isMoved, step.verdict == .accept {
                // A reconnected connection: onto the link's tuple here, its numbers are conntrack's to shift.
                let onto = FlowRewrite(source: shift.wire.local, destination: shift.wire.remote,
                                       sequenceOffset: .zero, acknowledgmentOffset: .zero)
                actions.verdict = (try? onto.apply(to: bytes, checksum: checksum)) != nil
                    ? .acceptModified(length: bytes.count) : .drop
            }
            apply(step, now: now, into: &actions)
            return actions
        }
        var packet = packet
        if let mapping, direction == .inbound {
            // A reconnected connection: the rock's segment in the socket's terms first, then the splice.
            let flow = FlowKey(source: packet.sourceEndpoint, destination: packet.destinationEndpoint, direction: direction)
            guard flow == mapping.wire,
                (try? mapping.inbound(to: socketFlow).apply(to: bytes, checksum: checksum)) != nil,
                let mapped = try? IPPacketView(validating: UnsafeRawBufferPointer(bytes))
            else { return ConnectionActions(verdict: .drop) }  // the old tuple, or unmappable: never for the socket
            packet = mapped
        }
        let step = rocks.handle(packet, bytes: bytes, direction: direction, checksum: checksum, flow: socketFlow, now: now)
        peer = .rocks(rocks)
        var actions = ConnectionActions(verdict: step.verdict)
        if let mapping, direction == .outbound {
            actions.verdict = Self.mapOutbound(bytes, verdict: step.verdict, with: mapping, checksum: checksum)
        } else if mapping != nil, step.verdict == .accept {
            actions.verdict = .acceptModified(length: bytes.count)  // the mapping changed it
        }
        if let entryShift {
            // A segment the kernel shifts after the verdict (inbound, a rock's FIN, SYN or RST from the chain
            // shifted; either way, one queued around the entry's making or deletion): what rackd made of it
            // goes back by the kernel's shift, so that the socket, or the rock, gets exactly that.
            actions.verdict = Self.unshift(bytes, verdict: actions.verdict, by: entryShift, direction: direction,
                                           checksum: checksum)
        }
        actions.kernelShiftLost = lostShift
        apply(step, now: now, into: &actions)
        return actions
    }

    /// How often rackd asks for a lost conntrack entry again.
    static let kernelShiftRequestInterval: Duration = .seconds(1)

    /// A segment as rackd means the socket (inbound) or the rock (outbound) to get it, moved back by what
    /// conntrack will do to it: inbound, the rock's numbers up by `peerOffset`, its acknowledgement and SACK
    /// blocks up by `localOffset`; outbound, the socket's numbers down by `localOffset`, its
    /// acknowledgement and SACK blocks down by `peerOffset` (docs/kernel-seqadj.md §2).
    private static func unshift(_ bytes: UnsafeMutableRawBufferPointer, verdict: PacketVerdict, by shift: KernelShift,
                                direction: PacketDirection, checksum: TCPChecksumState) -> PacketVerdict {
        rewriteAccepted(bytes, verdict: verdict, checksum: checksum) { packet in
            let view = try IPPacketView(validating: UnsafeRawBufferPointer(packet))
            return direction == .inbound
                ? FlowRewrite(source: view.sourceEndpoint, destination: view.destinationEndpoint,
                              sequenceOffset: shift.peerOffset, acknowledgmentOffset: shift.localOffset)
                : FlowRewrite(source: view.sourceEndpoint, destination: view.destinationEndpoint,
                              sequenceOffset: shift.localOffset.inverse, acknowledgmentOffset: shift.peerOffset.inverse)
        }
    }

    /// The socket's segment, spliced, onto the reconnection's tuple.
    private static func mapOutbound(_ bytes: UnsafeMutableRawBufferPointer, verdict: PacketVerdict, with mapping: WireMapping,
                                    checksum: TCPChecksumState) -> PacketVerdict {
        rewriteAccepted(bytes, verdict: verdict, checksum: checksum) { _ in mapping.outbound }
    }

    /// Applies the rewrite `rewrite` gives for the packet to a packet the verdict accepts (as rackd left it:
    /// a splice's rewrite may have shortened it and filled in its checksum); another verdict stays as it
    /// is, and a packet that cannot be rewritten is dropped.
    private static func rewriteAccepted(_ bytes: UnsafeMutableRawBufferPointer, verdict: PacketVerdict,
                                        checksum: TCPChecksumState,
                                        _ rewrite: (UnsafeMutableRawBufferPointer) throws -> FlowRewrite) -> PacketVerdict {
        let length: Int
        var checksum = checksum
        switch verdict {
        case .accept: length = bytes.count
        case .acceptModified(let modified):
            length = modified
            checksum = .complete  // the splice's rewrite filled it in
        default: return verdict
        }
        let packet = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])
        do {
            try rewrite(packet).apply(to: packet, checksum: checksum)
            return .acceptModified(length: length)
        } catch {
            return .drop
        }
    }

    /// Carries a rocks step into the core's actions and states (all but its verdict). Segments toward the
    /// rock go through the mapping of a reconnected connection.
    private mutating func apply(_ step: RocksStep, now: EngineInstant, into actions: inout ConnectionActions) {
        for segment in step.segments {
            actions.transmit(segment.destination == socketFlow.remote ? (mapping?.outbound(segment) ?? segment) : segment)
        }
        if let reason = step.fellBack {
            actions.end = .fellBack(reason: reason)
            return
        }
        if let end = step.ended {
            actions.end = end
            return
        }
        if step.established, case .establishing(let establishing) = state {
            lastHeard = now
            transition(to: .healthy(Healthy(establishing, now: now)), reason: "rocks init exchanged", into: &actions)
            actions.events.append(.connectionManaged(id: id, socketFlow, role: role, peerKind: peer.kind))
            actions.wantsSnapshot = true  // from now on the socket is watched, to see it close
        }
        if step.rockReset {
            switch state {
            case .healthy, .suspect:
                suspend(reason: "the rock reset the connection", now: now, peerKnows: true, into: &actions)
            case .closing:
                // It had closed: this is its socket going away. The local socket gets the reset too.
                if case .rocks(let rocks) = peer {
                    actions.transmit(.reset(from: socketFlow.remote, to: socketFlow.local,
                                            sequenceNumber: rocks.socket.acknowledgment))
                }
                actions.end = .ended(reason: "the rock reset the connection after closing it")
            case .establishing, .suspended, .resuming:
                break
            }
        }
        if step.rockClosed {
            switch state {
            case .healthy(let healthy), .suspect(let healthy):
                // A rock closes its heartbeat socket with the connection: no more liveness to watch.
                transition(to: .closing(Closing(healthy, now: now)), reason: "the rock closed the connection", into: &actions)
            case .establishing, .suspended, .resuming, .closing:
                break
            }
        }
    }

    /// Gives up a rocks connection whose stream rackd already changed: resets to both ends.
    mutating func abandonRocks(reason: String, now: EngineInstant) -> ConnectionActions {
        guard case .rocks(var rocks) = peer else { return ConnectionActions() }
        var step = RocksStep()
        rocks.abandon(reason: reason, flow: socketFlow, into: &step)
        peer = .rocks(rocks)
        var actions = ConnectionActions()
        apply(step, now: now, into: &actions)
        return actions
    }

    // MARK: Timers

    /// Retransmits rackd's own bytes, gives up a setup that takes too long, and sends and misses heartbeats.
    mutating func handleRocksTimers(_ context: inout ConnectionContext, into actions: inout ConnectionActions) {
        guard case .rocks(var rocks) = peer else { return }
        let now = context.now
        var step = RocksStep()
        if let deadline = rocks.retransmission.deadline, deadline <= now {
            rocks.retransmitOurs(flow: socketFlow, now: now, into: &step)
        }
        switch rocks.stage {
        case .awaitingClient where now.duration(since: rocks.setupStartedAt) >= RocksPeer.setupLimit:
            step.ended = .expired  // the client never spoke: nothing of the stream was changed
        case .answeringProbe where now.duration(since: rocks.setupStartedAt) >= RocksPeer.probeAnswerLifetime:
            step.ended = .expired
        case .scanning, .readingInit:
            if now.duration(since: rocks.setupStartedAt) >= RocksPeer.setupLimit {
                rocks.abandon(reason: "rocks setup did not finish within \(RocksPeer.setupLimit)", flow: socketFlow, into: &step)
            }
        case .established:
            if case .healthy = state { rocks.runHeartbeats(now: now, into: &actions) }
        default:
            break
        }
        peer = .rocks(rocks)
        apply(step, now: now, into: &actions)
        if actions.end == nil { runRocksReconnection(&context, into: &actions) }
        if rocks.stage == .established, case .healthy = state,
            let heard = rocks.heartbeats.lastHeard,
            now.duration(since: heard) >= RocksPeer.heartbeatInterval * RocksPeer.heartbeatMisses
        {
            suspend(reason: "no rocks heartbeat for \(RocksPeer.heartbeatMisses) s", now: now, into: &actions)
        }
    }

    // MARK: Heartbeats

    /// A heartbeat from the rock.
    mutating func handleHeartbeat(now: EngineInstant) -> ConnectionActions {
        guard case .rocks(var rocks) = peer else { return ConnectionActions() }
        rocks.heartbeats.lastHeard = now
        lastHeard = now
        peer = .rocks(rocks)
        return ConnectionActions()
    }
}

extension RocksPeer {
    /// Sends the heartbeat that is due (docs/rocks.md §4: one `x` a second to the rock's heartbeat address).
    mutating func runHeartbeats(now: EngineInstant, into actions: inout ConnectionActions) {
        guard let destination = heartbeats.destination, let due = heartbeats.nextSendAt, due <= now else { return }
        actions.datagrams.append(Datagram(destination: destination, payload: Self.heartbeatPayload))
        // On the rock's own one-second beat, without drifting; after a long pause, from now.
        let next = due + Self.heartbeatInterval
        heartbeats.nextSendAt = next > now ? next : now + Self.heartbeatInterval
    }
}
