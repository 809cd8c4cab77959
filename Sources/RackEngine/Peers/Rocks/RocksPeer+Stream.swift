// rackd — one queued segment of a rocks connection, in either direction (docs/rocks.md §2, §3, §14).
//
// From the socket: moved past rackd's bytes (`RocksSplice`), its acknowledgement past the rock's.
// From the rock: during setup its announcement and init messages are taken out and acknowledged by
// rackd; a banner before them reaches the socket unmoved; everything after them is moved back. A segment
// that holds both a part for the socket and a part rackd takes is cut: the socket gets its part, and
// the rock retransmits what was cut off, as nothing acknowledged it.

/// What one segment did to a rocks connection.
struct RocksStep {
    var verdict: PacketVerdict = .accept
    /// Segments rackd writes: its own bytes, its acknowledgements, resets.
    var segments: [TCPSegmentRepr] = []
    /// Both sides' init messages are through.
    var established = false
    /// The connection is ordinary after all (a server's client that is no rock): left to plain TCP.
    var fellBack: String?
    /// Management ends (a reset, an abandoned setup, a probe answered).
    var ended: ConnectionEnd?
    /// The rock closed its end: no heartbeats any more, either way (docs/rocks.md §6).
    var rockClosed = false
    /// The rock reset the connection: it suspended (docs/rocks.md §5.1), and so does rackd.
    var rockReset = false
}

extension RocksPeer {
    /// `packet` is the view the core parsed of `bytes`; the rewrite edits `bytes` in place, last.
    mutating func handle(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer, direction: PacketDirection,
                         checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant) -> RocksStep {
        switch direction {
        case .outbound: return handleFromSocket(packet, bytes: bytes, checksum: checksum, flow: flow, now: now)
        case .inbound: return handleFromRock(packet, bytes: bytes, checksum: checksum, flow: flow, now: now)
        }
    }

    // MARK: From the socket

    /// What a segment from the socket says of it: its acknowledgement and window, its timestamp, how far
    /// it sent; its bytes go to the ring.
    private mutating func noteFromSocket(_ packet: IPPacketView) {
        let tcp = packet.tcp
        let payloadCount = tcp.payload.count
        let length = payloadCount + (tcp.flags.contains(.fin) ? 1 : 0)
        if tcp.flags.contains(.ack), tcp.acknowledgmentNumber - socket.acknowledgment >= 0 {
            socket.acknowledgment = tcp.acknowledgmentNumber
            socket.window = tcp.window
            splice.noteSocketAcknowledged(tcp.acknowledgmentNumber, complete: stage == .established)
        }
        if let value = tcp.timestampValue { socket.timestampValue = value }
        let end = tcp.sequenceNumber + UInt32(length)
        if end - socket.sendNext > 0 { socket.sendNext = end }
        if payloadCount > 0, let origin = sendOrigin {
            // Everything the socket sends from the first counted byte on, for a later go-back-N.
            if ring == nil { ring = RocksSendRing(start: origin) }
            ring?.record(tcp.payload, at: tcp.sequenceNumber)
        }
    }

    /// A segment from the socket of a screened connection (`Connection.screenedFlow`): the splice and the
    /// handshake's shift cancel out, so it goes as it is; rackd only keeps what it says, and its bytes in
    /// the ring. Both directions settle into their constant offsets (`RocksSplice`): the kernel no longer
    /// shows rackd what it would compare with the splice points.
    mutating func watchFromSocket(_ packet: IPPacketView) -> RocksStep {
        noteFromSocket(packet)
        splice.outboundSettled = true
        splice.inboundSettled = true
        let tcp = packet.tcp
        if tcp.flags.contains(.ack) {
            let wire = splice.outboundAcknowledgment(tcp.acknowledgmentNumber)
            if wire - socket.wireAcknowledgment > 0 { socket.wireAcknowledgment = wire }
        }
        if tcp.flags.contains(.fin) {
            socket.finSequence = splice.outboundSequence(tcp.sequenceNumber) + UInt32(tcp.payload.count)
        }
        var step = RocksStep()
        if tcp.flags.contains(.rst) { step.ended = .ended(reason: "local socket reset") }
        return step
    }

    private mutating func handleFromSocket(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                           checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant) -> RocksStep {
        let tcp = packet.tcp
        let payloadCount = tcp.payload.count
        let hasFIN = tcp.flags.contains(.fin)
        let length = payloadCount + (hasFIN ? 1 : 0)
        noteFromSocket(packet)

        if stage == .answeringProbe, splice.insertionPoint == nil, hasFIN {
            return answerProbe(packet, finAt: tcp.sequenceNumber + UInt32(payloadCount), bytes: bytes,
                               checksum: checksum, flow: flow, now: now)
        }
        var rewrite = RocksSegmentRewrite()
        switch splice.placeOutbound(sequence: tcp.sequenceNumber, length: length) {
        case .moved:
            rewrite.sequenceOffset = TCPSequenceOffset(rawValue: splice.insertedLength)
            if hasFIN { socket.finSequence = splice.outboundSequence(tcp.sequenceNumber) + UInt32(payloadCount) }
        case .unmoved:
            if hasFIN { socket.finSequence = tcp.sequenceNumber + UInt32(payloadCount) }
        case .cutAt(let kept):
            // A retransmission reaching past the insertion point: its part before goes, the socket
            // retransmits the rest (moved) once it sees it unacknowledged. A FIN after the cut goes with it.
            rewrite.kept = 0..<min(kept, payloadCount)
            rewrite.droppingFIN = true
        }
        if tcp.flags.contains(.ack) {
            let wire = splice.outboundAcknowledgment(tcp.acknowledgmentNumber)
            rewrite.acknowledgmentOffset = TCPSequenceOffset(from: tcp.acknowledgmentNumber, to: wire)
            if wire - socket.wireAcknowledgment > 0 { socket.wireAcknowledgment = wire }
        }
        var step = RocksStep(verdict: rewrite.apply(to: bytes, checksum: checksum))
        if tcp.flags.contains(.rst) { step.ended = .ended(reason: "local socket reset") }
        return step
    }

    /// The application closes its end of a probe: the announcement and a FIN go out in its FIN's place,
    /// and the socket's own FIN is cut off (the rock's acknowledgement of rackd's FIN, moved back,
    /// acknowledges it).
    private mutating func answerProbe(_ packet: IPPacketView, finAt fin: TCPSequenceNumber,
                                      bytes: UnsafeMutableRawBufferPointer, checksum: TCPChecksumState,
                                      flow: FlowKey, now: EngineInstant) -> RocksStep {
        let tcp = packet.tcp
        let payloadCount = tcp.payload.count
        splice.insertionPoint = fin
        splice.insertedLength = UInt32(ours.count)
        oursReleased = ours.count
        socket.finSequence = fin + UInt32(ours.count)
        var step = RocksStep()
        if payloadCount > 0 {
            var rewrite = RocksSegmentRewrite(kept: 0..<payloadCount, droppingFIN: true)
            if tcp.flags.contains(.ack) {
                let wire = splice.outboundAcknowledgment(tcp.acknowledgmentNumber)
                rewrite.acknowledgmentOffset = TCPSequenceOffset(from: tcp.acknowledgmentNumber, to: wire)
            }
            step.verdict = rewrite.apply(to: bytes, checksum: checksum)
        } else {
            step.verdict = .drop  // a bare FIN: rackd's segment carries it
        }
        sendOurs(from: 0, flow: flow, now: now, into: &step)
        return step
    }

    // MARK: From the rock

    private mutating func handleFromRock(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                         checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant) -> RocksStep {
        let tcp = packet.tcp
        if let value = tcp.timestampValue { socket.peerTimestampValue = value }
        var step = RocksStep()
        if tcp.flags.contains(.ack) {
            rockAcknowledgment = tcp.acknowledgmentNumber
            oursAcknowledged = max(oursAcknowledged, Int(splice.insertedAcknowledged(by: tcp.acknowledgmentNumber)))
            if oursWindowLimit != nil {
                oursWindowLimit = oursAcknowledged + Int(UInt32(tcp.window) << UInt32(rockWindowScale))
                if oursSent < oursReleased { sendOurs(from: oursSent, flow: flow, now: now, into: &step) }
            }
            if stage == .established { splice.noteRockAcknowledged(tcp.acknowledgmentNumber) }
            let finAcknowledged = socket.finSequence.map { tcp.acknowledgmentNumber - $0 > 0 } ?? false
            if oursAcknowledged >= oursReleased && (!oursEndWithFIN || finAcknowledged) { retransmission = Retransmission() }
            if stage == .answeringProbe, finAcknowledged {
                step.ended = .expired  // the probe is over: the rock has our answer and the FIN
            }
        }
        if tcp.flags.contains(.rst) {
            if stage == .established {
                // A rock resets on suspension (docs/rocks.md §5.1): rackd suspends too, and the socket never
                // sees it. One far outside the window is nobody's: passed on, the socket ignores it.
                let offset = splice.inboundSequence(tcp.sequenceNumber) - socket.acknowledgment
                if offset >= 0 && UInt32(offset) <= UInt32(0xFFFF) << UInt32(rockWindowScale) {
                    step.verdict = .drop
                    step.rockReset = true
                    return step
                }
            }
            // Before the rock's init is through, only a reset the socket will take (exactly at its rcv_nxt)
            // ends management: any other leaves the socket alive (a challenge ACK at most), so its stream
            // must stay mapped.
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: nil, moved: true)
            if splice.inboundSequence(tcp.sequenceNumber) == socket.acknowledgment || stage == .awaitingClient {
                step.ended = stage == .awaitingClient ? .fellBack(reason: "client reset before it spoke") : .ended(reason: "rock reset the connection")
            }
            return step
        }
        let payloadCount = tcp.payload.count
        let hasFIN = tcp.flags.contains(.fin)
        if stage == .established && splice.inboundSettled {
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: nil, moved: true)
            step.rockClosed = hasFIN
            return step
        }
        if payloadCount == 0 && !hasFIN {
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: nil, moved: true)
            return step
        }
        switch stage {
        case .awaitingClient:
            takeOpening(packet, bytes: bytes, checksum: checksum, flow: flow, now: now, into: &step)
        case .answeringProbe:
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: nil, moved: true)
        case .scanning:
            scanForAnnouncement(packet, bytes: bytes, checksum: checksum, flow: flow, now: now, into: &step)
        case .readingInit, .established:
            takeStream(packet, bytes: bytes, checksum: checksum, flow: flow, now: now, into: &step)
        }
        return step
    }

    /// Server: the client's first data or FIN says what it is (docs/rocks.md §2.3).
    private mutating func takeOpening(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                      checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant,
                                      into step: inout RocksStep) {
        let tcp = packet.tcp
        guard tcp.sequenceNumber == scanned else {
            step.verdict = .drop  // ahead of the first byte: the client retransmits in order
            return
        }
        if socket.finSequence != nil {
            // The application closed before the client spoke: nothing can follow its FIN.
            step.ended = .expired
            return
        }
        if tcp.payload.isEmpty {
            // A FIN and no data: a rock's probe. The socket sees a client that closed. The rock gets the
            // announcement just before the socket's FIN, after everything the application writes until
            // it closes, as a rocks server's library writes it at the application's read of EOF
            // (handleFromSocket).
            stage = .answeringProbe
            setupStartedAt = now
            ours = RocksAnnouncement.bytes
            oursWriteEnds = [ours.count]
            oursEndWithFIN = true
            step.verdict = .accept
            return
        }
        switch RocksAnnouncement.judge(Array(tcp.payload.prefix(RocksPeer.announcementLength))) {
        case .ordinary:
            step.fellBack = "client is no rock (its first bytes are not the announcement)"
        case .undecided:
            partialOpenings += 1
            if partialOpenings > Self.maximumPartialOpenings {
                step.fellBack = "client is no rock (it keeps sending part of the announcement)"
            } else {
                step.verdict = .drop  // not acknowledged: it comes again, with more
            }
        case .rock:
            stage = .readingInit
            setupStartedAt = now
            splice.removalPoint = scanned
            splice.insertionPoint = socket.sendNext
            splice.insertedLength = UInt32(ours.count)
            // The announcement alone: the init waits for the client's first init bytes (`take`). A rock
            // client finds the announcement only where one of its 16-byte reads begins, so after a banner
            // that is no multiple of 16 an init already behind it would hide it for good when the client
            // reads late (docs/rocks.md §14, "Server role").
            oursReleased = RocksPeer.announcementLength
            sendOurs(from: 0, flow: flow, now: now, into: &step)
            takeStream(packet, bytes: bytes, checksum: checksum, flow: flow, now: now, into: &step)
        }
    }

    /// Client: the rock's bytes up to its announcement are a banner for the socket; the announcement
    /// starts what rackd takes (docs/rocks.md §2.2 step 3).
    private mutating func scanForAnnouncement(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                              checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant,
                                              into step: inout RocksStep) {
        let tcp = packet.tcp
        let start = tcp.sequenceNumber
        let payload = tcp.payload
        let already = scanned - start
        guard already >= 0 else {
            step.verdict = .drop  // a gap before it: taken when the rock fills it
            return
        }
        if Int(already) >= payload.count {
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: nil, moved: false)
            return
        }
        let fresh = Array(payload[Int(already)...])
        if let found = fresh.firstRange(of: RocksAnnouncement.bytes)?.lowerBound {
            let announcementAt = scanned + UInt32(found)
            splice.removalPoint = announcementAt
            scanned = announcementAt
            stage = .readingInit
            oursReleased = ours.count
            sendOurs(from: RocksPeer.announcementLength, flow: flow, now: now, into: &step)
            takeStream(packet, bytes: bytes, checksum: checksum, flow: flow, now: now, into: &step)
            return
        }
        // Not yet: pass the banner on, but keep back a tail that may be the announcement's start.
        let keptBack = Self.longestPrefixSuffix(of: fresh, matching: RocksAnnouncement.bytes)
        let passUpTo = payload.count - keptBack
        scanned = start + UInt32(passUpTo)
        if passUpTo == 0 {
            step.verdict = .drop
        } else {
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum,
                                   kept: keptBack == 0 ? nil : 0..<passUpTo, moved: false)
        }
    }

    /// Once the rock's announcement is found: its announcement and init are taken; what lies before them
    /// goes to the socket unmoved, what lies after them moved back.
    private mutating func takeStream(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer,
                                     checksum: TCPChecksumState, flow: FlowKey, now: EngineInstant,
                                     into step: inout RocksStep) {
        guard let removalPoint = splice.removalPoint else { return }
        let tcp = packet.tcp
        let start = tcp.sequenceNumber
        let count = tcp.payload.count
        if stage == .readingInit {
            let from = Int((removalPoint + splice.removedLength) - start)
            if from >= 0 && from < count {
                guard take(Array(tcp.payload[from...]), flow: flow, now: now, into: &step) else { return }
            }
        }
        /// Offsets into the payload of a stream position, clamped to it.
        func offset(of position: TCPSequenceNumber) -> Int { max(0, min(count, Int(position - start))) }
        let headEnd = offset(of: removalPoint)
        let removedEnd = removalPoint + splice.removedLength
        let tailStart = offset(of: removedEnd)
        let reachesTail = stage == .established
            && (tailStart < count || tcp.flags.contains(.fin) && (start + UInt32(count)) - removedEnd >= 0)
        if headEnd > 0 {
            // Bytes before the rock's own: a banner (or its retransmission), unmoved. Anything after them
            // in this segment comes again, as the socket acknowledges only the banner.
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: headEnd < count ? 0..<headEnd : nil,
                                   moved: false)
        } else if reachesTail {
            // Application bytes after the rock's own, moved back; a FIN after them goes with them.
            step.verdict = deliver(packet, bytes: bytes, checksum: checksum, kept: tailStart > 0 ? tailStart..<count : nil,
                                   moved: true)
            step.rockClosed = tcp.flags.contains(.fin)
        } else {
            // Only the rock's own bytes (new, or again because our acknowledgement was lost), or a gap.
            step.verdict = .drop
            acknowledgeTaken(flow: flow, into: &step)
        }
    }

    /// Takes the next bytes of the rock's announcement and init; false when the connection was abandoned.
    private mutating func take(_ bytes: [UInt8], flow: FlowKey, now: EngineInstant, into step: inout RocksStep) -> Bool {
        var remaining = bytes[...]
        // The announcement (already matched) first, then the init messages.
        let announcementLeft = RocksPeer.announcementLength - min(Int(splice.removedLength), RocksPeer.announcementLength)
        let announcementTaken = min(announcementLeft, remaining.count)
        splice.removedLength += UInt32(announcementTaken)
        remaining = remaining.dropFirst(announcementTaken)
        guard !remaining.isEmpty else { return true }
        if oursReleased < ours.count {
            // A server's init waits for the client's: the client found our announcement (takeOpening).
            let heldFrom = oursReleased
            oursReleased = ours.count
            sendOurs(from: heldFrom, flow: flow, now: now, into: &step)
        }
        do {
            splice.removedLength += UInt32(try initReader.take(remaining))
        } catch {
            abandon(reason: "malformed rocks init from the peer: \(error)", flow: flow, into: &step)
            return false
        }
        guard let peerInit = initReader.result else { return true }
        guard IPAddress.v4(peerInit.heartbeat.address) == flow.remote.address else {
            // rackd would send a datagram a second wherever the peer says: only to the peer itself.
            abandon(reason: "the rock's heartbeat address \(peerInit.heartbeat) is not its own address", flow: flow,
                    into: &step)
            return false
        }
        guard let secret = RocksKeyExchange.sharedSecret(privateKey, peerPublicKey: peerInit.publicKey) else {
            abandon(reason: "the rock's DH public value is degenerate", flow: flow, into: &step)
            return false
        }
        self.peerInit = peerInit
        let key = RocksKeyExchange.blowfishKey(secret: secret)
        blowfishKey = key
        let cipher = Blowfish(key: key)
        self.cipher = cipher
        challengeFingerprint = cipher.encrypt(RocksChallenge.padding)
        // The socket's bytes from the insertion point on, and the rock's after its init (which land on the
        // socket at the removal point), are what rocks counts.
        sendOrigin = splice.insertionPoint
        receiveOrigin = splice.removalPoint
        rockReconnectionAddress = peerInit.reconnection.endpoint
        stage = .established
        heartbeats = Heartbeats(destination: peerInit.heartbeat.endpoint, nextSendAt: now + Self.heartbeatInterval,
                                lastHeard: now)
        step.established = true
        return true
    }

    // MARK: Delivering to the socket

    /// The verdict for a segment from the rock, cut to `kept`; `moved` applies the splice to its
    /// sequence number (bytes at or past the rock's removed ones).
    private func deliver(_ packet: IPPacketView, bytes: UnsafeMutableRawBufferPointer, checksum: TCPChecksumState,
                         kept: Range<Int>?, moved: Bool) -> PacketVerdict {
        let tcp = packet.tcp
        var rewrite = RocksSegmentRewrite(kept: kept)
        let first = tcp.sequenceNumber + UInt32(kept?.lowerBound ?? 0)
        if moved, splice.inboundSettled || splice.removalEnd.map({ first - $0 >= 0 }) == true {
            rewrite.sequenceOffset = TCPSequenceOffset(rawValue: 0 &- splice.removedLength)
        }
        if tcp.flags.contains(.ack) {
            let mapped = splice.inboundAcknowledgment(tcp.acknowledgmentNumber)
            rewrite.acknowledgmentOffset = TCPSequenceOffset(from: tcp.acknowledgmentNumber, to: mapped)
            // SACK blocks move with the acknowledgement only once rackd's bytes are all acknowledged.
            let fullyMoved = splice.insertionPoint == nil
                || splice.insertedAcknowledged(by: tcp.acknowledgmentNumber) == splice.insertedLength
            rewrite.eraseSACK = !fullyMoved
        }
        return rewrite.apply(to: bytes, checksum: checksum)
    }

    // MARK: rackd's own segments

    /// Sends rackd's released bytes from `from` on, one segment per rocks write.
    mutating func sendOurs(from: Int, flow: FlowKey, now: EngineInstant, into step: inout RocksStep) {
        guard let point = splice.insertionPoint else { return }
        var writeStart = 0
        for writeEnd in oursWriteEnds {
            defer { writeStart = writeEnd }
            guard writeEnd > from, writeStart < oursReleased else { continue }
            // Within the rock's window, and always the first unacknowledged write.
            if let limit = oursWindowLimit, writeEnd > limit, writeStart > oursAcknowledged { break }
            oursSent = max(oursSent, writeEnd)
            let flags: TCPFlags = oursEndWithFIN && writeEnd == ours.count ? [.ack, .psh, .fin] : [.ack, .psh]
            step.segments.append(TCPSegmentRepr(
                source: flow.local, destination: flow.remote, sequenceNumber: point + UInt32(writeStart),
                acknowledgmentNumber: currentWireAcknowledgment, flags: flags, window: socket.window,
                options: timestampOptions, payload: Array(ours[writeStart..<writeEnd])))
        }
        socket.wireAcknowledgment = currentWireAcknowledgment
        if oursAcknowledged < oursReleased || oursEndWithFIN, retransmission.deadline == nil {
            retransmission.deadline = now + retransmission.interval
        }
    }

    /// Resends what the rock has not acknowledged of rackd's bytes, backing off.
    mutating func retransmitOurs(flow: FlowKey, now: EngineInstant, into step: inout RocksStep) {
        guard oursAcknowledged < oursReleased || oursEndWithFIN else {
            retransmission = Retransmission()
            return
        }
        retransmission.interval = min(retransmission.interval * 2, Self.maximumRetransmissionInterval)
        retransmission.deadline = nil
        sendOurs(from: min(oursAcknowledged, oursReleased - 1), flow: flow, now: now, into: &step)
    }

    /// Acknowledges the rock's bytes rackd took (the socket never sees them, so never acknowledges them).
    private mutating func acknowledgeTaken(flow: FlowKey, into step: inout RocksStep) {
        let acknowledgment = currentWireAcknowledgment
        socket.wireAcknowledgment = acknowledgment
        step.segments.append(.ack(
            from: flow.local, to: flow.remote, sequenceNumber: splice.outboundSequence(socket.sendNext),
            acknowledgmentNumber: acknowledgment, window: socket.window, options: timestampOptions))
    }

    /// What the socket has acknowledged, plus what rackd took after it.
    var currentWireAcknowledgment: TCPSequenceNumber {
        let mapped = splice.outboundAcknowledgment(socket.acknowledgment)
        return mapped - socket.wireAcknowledgment > 0 ? mapped : socket.wireAcknowledgment
    }

    /// Timestamps for a segment rackd writes in the socket's name: the socket's latest value, and the
    /// rock's latest as the echo.
    var timestampOptions: [TCPOption] {
        guard let value = socket.timestampValue else { return [] }
        return [.noOperation, .noOperation, .timestamps(value: value, echo: socket.peerTimestampValue ?? 0)]
    }

    /// Gives up a connection whose stream rackd already changed: both ends get a reset, as neither could
    /// make sense of the other's bytes any more.
    mutating func abandon(reason: String, flow: FlowKey, into step: inout RocksStep) {
        step.verdict = .drop
        // At the rock's rcv_nxt: the end of rackd's bytes while not all of them went out (the socket's
        // wait behind them), else past the socket's.
        var sequence = splice.outboundSequence(socket.sendNext)
        if let point = splice.insertionPoint, oursReleased < ours.count { sequence = point + UInt32(oursReleased) }
        step.segments.append(.reset(from: flow.local, to: flow.remote, sequenceNumber: sequence))
        step.segments.append(.reset(from: flow.remote, to: flow.local, sequenceNumber: socket.acknowledgment))
        step.ended = .ended(reason: reason)
    }

    // MARK: Helpers

    /// The length of the longest proper prefix of `needle` that `haystack` ends with.
    static func longestPrefixSuffix(of haystack: [UInt8], matching needle: [UInt8]) -> Int {
        for length in stride(from: min(needle.count - 1, haystack.count), to: 0, by: -1)
        where haystack.suffix(length).elementsEqual(needle.prefix(length)) {
            return length
        }
        return 0
    }
}
