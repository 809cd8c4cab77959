// rackd — finding rocks peers (docs/rocks.md §2, §14; docs/rocks-policy.md says which destinations are
// probed and how often).
//
// Client side: a local SYN to a destination policy names (or, with `probe = everywhere`, one that did
// not answer rackd's SYN option) is held, and the daemon probes the destination as a rock would. A rock:
// the SYN is released and its connection is expected to become a rocks connection at its SYN-ACK. Not a
// rock: the SYN is released as rackd would have sent it anyway, and the destination is not probed again
// until the negative answer expires. Server side: a SYN to a serve port is queued from the start, so
// that the client's first bytes (or its probe's FIN) are seen; the connection is a rocks candidate from
// its SYN-ACK on (Connection+RocksSetup.swift decides).
//
// Everything here is bounded: held SYNs, expected connections and candidates have limits and expire
// through one deadline heap.

struct RocksDetection {
    /// A local SYN held while its destination is probed.
    struct HeldSYN {
        var flow: FlowKey
        var isn: TCPSequenceNumber
        var options: HandshakeOptions
        /// The SYN as the socket sent it, to release with rackd's own treatment if the peer is no rock.
        var bytes: [UInt8]
        /// Its timestamp value, for the segments rackd writes before the socket's next one.
        var timestampValue: UInt32?
    }

    /// A connection whose SYN went out toward a rock: it becomes a rocks connection at its SYN-ACK.
    struct ExpectedRock {
        var isn: TCPSequenceNumber
        var options: HandshakeOptions
        /// The SYN's timestamp value, for the segments rackd writes before the socket's next one.
        var timestampValue: UInt32?
    }

    /// A peer's SYN to a serve port.
    struct Candidate {
        var peerISN: TCPSequenceNumber
        var options: HandshakeOptions
        var timestampValue: UInt32?
    }

    enum Timer: Hashable, Sendable {
        case probe(RocksProbeRequest)
        case expected(FlowKey)
        case candidate(FlowKey)
        case ordinary(TCPEndpoint)
        case notRackd(TCPEndpoint)
    }

    private(set) var probes: [RocksProbeRequest: [HeldSYN]] = [:]
    private(set) var heldBy: [FlowKey: RocksProbeRequest] = [:]
    private(set) var expected: [FlowKey: ExpectedRock] = [:]
    private(set) var candidates: [FlowKey: Candidate] = [:]
    /// Destinations that failed a probe, until when.
    private(set) var ordinary: Set<TCPEndpoint> = []
    /// Destinations whose SYN-ACK did not carry rackd's option (`probe = everywhere` probes them next).
    private(set) var notRackd: Set<TCPEndpoint> = []
    private var timers = DeadlineHeap<Timer>()

    /// The most SYNs held at once, and the most candidates: past them connections are left alone.
    static let maximumHeld = 1024
    static let maximumCandidates = 1024
    /// A probe whose result never comes (a daemon fault) counts as "not a rock" after this.
    static let probeLimit: Duration = .seconds(15)
    /// How long a released SYN waits for its SYN-ACK, and a candidate for its SYN-ACK.
    static let handshakeLimit: Duration = .seconds(75)

    var nextDeadline: EngineInstant? { timers.nextDeadline }

    func isOrdinary(_ destination: TCPEndpoint) -> Bool { ordinary.contains(destination) }
    func isNotRackd(_ destination: TCPEndpoint) -> Bool { notRackd.contains(destination) }

    mutating func rememberOrdinary(_ destination: TCPEndpoint, until instant: EngineInstant) {
        ordinary.insert(destination)
        timers.set(.ordinary(destination), to: instant)
    }

    mutating func rememberNotRackd(_ destination: TCPEndpoint, until instant: EngineInstant) {
        notRackd.insert(destination)
        timers.set(.notRackd(destination), to: instant)
    }

    /// Holds a SYN for `request`; true when the probe is new and must be started.
    mutating func hold(_ syn: HeldSYN, for request: RocksProbeRequest, now: EngineInstant) -> Bool {
        heldBy[syn.flow] = request
        let isNew = probes[request] == nil
        probes[request, default: []].append(syn)
        if isNew { timers.set(.probe(request), to: now + Self.probeLimit) }
        return isNew
    }

    var heldCount: Int { heldBy.count }

    /// The SYNs a probe held, now that it is over.
    mutating func finishProbe(_ request: RocksProbeRequest) -> [HeldSYN] {
        timers.cancel(.probe(request))
        let held = probes.removeValue(forKey: request) ?? []
        for syn in held { heldBy[syn.flow] = nil }
        return held
    }

    mutating func expect(_ flow: FlowKey, _ rock: ExpectedRock, now: EngineInstant) {
        expected[flow] = rock
        timers.set(.expected(flow), to: now + Self.handshakeLimit)
    }

    mutating func takeExpected(_ flow: FlowKey) -> ExpectedRock? {
        timers.cancel(.expected(flow))
        return expected.removeValue(forKey: flow)
    }

    mutating func addCandidate(_ flow: FlowKey, _ candidate: Candidate, now: EngineInstant) {
        candidates[flow] = candidate
        timers.set(.candidate(flow), to: now + Self.handshakeLimit)
    }

    mutating func takeCandidate(_ flow: FlowKey) -> Candidate? {
        timers.cancel(.candidate(flow))
        return candidates.removeValue(forKey: flow)
    }

    /// Forgets whatever is due; returns the probes that never answered and the flows no longer queued.
    mutating func expire(now: EngineInstant) -> (probes: [RocksProbeRequest], flows: [FlowKey]) {
        var lateProbes: [RocksProbeRequest] = []
        var flows: [FlowKey] = []
        for timer in timers.removeDue(now: now) {
            switch timer {
            case .probe(let request): lateProbes.append(request)
            case .expected(let flow): if expected.removeValue(forKey: flow) != nil { flows.append(flow) }
            case .candidate(let flow): if candidates.removeValue(forKey: flow) != nil { flows.append(flow) }
            case .ordinary(let destination): ordinary.remove(destination)
            case .notRackd(let destination): notRackd.remove(destination)
            }
        }
        return (lateProbes, flows)
    }
}

extension ConnectionCore {
    var rocks: RocksSettings { configuration.rocks }

    // MARK: Client

    /// A local SYN: holds it for a probe if policy says its destination may be a rock. True when the
    /// SYN is taken care of (held); false leaves it to rackd's own detection.
    mutating func holdForRocksProbe(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant,
                                    into output: inout EngineOutput) -> Bool {
        if rocksDetection.heldBy[flow] != nil {
            // A retransmission of a held SYN: held too.
            output.verdict = .hold(flow)
            return true
        }
        if rocksDetection.expected[flow] != nil || table.id(forSocket: flow).flatMap({ table[$0] })?.peer.isRocks == true {
            return true  // a retransmission of a SYN released toward a rock: shifted as it was (shiftRocksHandshake)
        }
        guard rocks.legacyAuthentication, !options.authenticated, flow.remote.address.isIPv4,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.remote.port),
            !rocksDetection.isOrdinary(flow.remote),
            rocksDetection.heldCount < RocksDetection.maximumHeld
        else { return false }
        switch rocks.probing {
        case .off: return false
        case .listed: guard rocks.lists(flow.remote) else { return false }
        case .everywhere: guard rocksDetection.isNotRackd(flow.remote) else { return false }
        }
        let request = RocksProbeRequest(source: flow.local.address, destination: flow.remote,
                                        readTimeout: rocks.probeReadTimeout)
        let syn = RocksDetection.HeldSYN(flow: flow, isn: packet.tcp.sequenceNumber, options: options,
                                         bytes: Array(packet.bytes), timestampValue: packet.tcp.timestampValue)
        if rocksDetection.hold(syn, for: request, now: now) { output.probes.append(request) }
        // Queued from now on, so that nothing of the connection passes before rackd can map it.
        table.queueBeforeConnection(flow, true)
        output.verdict = .hold(flow)
        return true
    }

    /// A probe finished: every SYN it held is released.
    mutating func handleProbeResult(_ request: RocksProbeRequest, outcome: RocksProbeOutcome, now: EngineInstant)
        -> EngineOutput
    {
        var output = EngineOutput()
        finishProbe(request, outcome: outcome, now: now, into: &output)
        reconcile(into: &output)
        return output
    }

    private mutating func finishProbe(_ request: RocksProbeRequest, outcome: RocksProbeOutcome, now: EngineInstant,
                                      into output: inout EngineOutput) {
        let held = rocksDetection.finishProbe(request)
        guard !held.isEmpty else { return }
        output.events.append(.rocksProbed(request.destination, outcome))
        switch outcome {
        case .rock:
            for syn in held {
                rocksDetection.expect(syn.flow, .init(isn: syn.isn, options: syn.options, timestampValue: syn.timestampValue),
                                      now: now)
                // Shifted down by rackd's announcement and init, which will fill the wire's sequence space
                // before the socket's first byte (docs/rocks.md §14, "In the kernel").
                var bytes = syn.bytes
                let shifted = bytes.withUnsafeMutableBytes { raw in
                    (try? RocksPeer.handshakeMapping(syn.flow).outbound.apply(to: raw, checksum: .partial)) != nil
                }
                output.releases.append(HeldPacketRelease(flow: syn.flow, verdict: shifted ? .replace(bytes) : .drop))
            }
        case .notRock:
            rocksDetection.rememberOrdinary(request.destination, until: now + rocks.negativeCacheLifetime)
            for syn in held {
                table.queueBeforeConnection(syn.flow, false)
                // Released as rackd would have sent it had it not been held: with rackd's option if policy allows.
                var verdict = PacketVerdict.accept
                syn.bytes.withUnsafeBytes { raw in
                    guard let packet = try? IPPacketView(validating: raw) else { return }
                    var sub = EngineOutput()
                    handleLocalSYNForRackd(packet, flow: syn.flow, options: syn.options, now: now, into: &sub)
                    verdict = sub.verdict
                    output.events += sub.events
                }
                output.releases.append(HeldPacketRelease(flow: syn.flow, verdict: verdict))
            }
        }
    }

    /// The SYN-ACK of a connection released toward a rock: it becomes a rocks connection.
    mutating func startRocksClientIfExpected(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions,
                                             now: EngineInstant, into output: inout EngineOutput) -> Bool {
        guard let expected = rocksDetection.takeExpected(flow) else { return false }
        table.queueBeforeConnection(flow, false)
        // Our SYN went out shifted (finishProbe); the rock's numbers reach the socket shifted too. A SYN that
        // went out as the socket sent it (the daemon could hold no more packets and let it pass) is answered
        // unshifted: that connection is spliced as before, queued for life.
        let shifted = RocksPeer.handshakeMapping(flow)
        let mapping: WireMapping?
        switch packet.tcp.acknowledgmentNumber {
        case expected.isn.shifted(by: shifted.localSequenceOffset) + 1: mapping = shifted
        case expected.isn + 1: mapping = nil
        default:
            output.events.append(.fellBack(flow, reason: "rocks server's SYN-ACK does not answer our SYN"))
            return true
        }
        startRocksConnection(flow: flow, role: .client, localISN: expected.isn,
                             peerISN: packet.tcp.sequenceNumber.shifted(by: mapping?.peerSequenceOffset.inverse ?? .zero),
                             localOptions: expected.options, peerOptions: options,
                             timestamps: (expected.timestampValue, packet.tcp.timestampValue), mapping: mapping, now: now,
                             into: &output)
        return true
    }

    /// A rocks client's handshake segment, shifted (docs/rocks.md §14, "In the kernel"): a retransmission of
    /// the socket's SYN goes out as the probe released the first (lower by `RocksPeer.handshakeShift`), and
    /// the rock's SYN-ACK reaches the socket that much higher, acknowledging the socket's own ISN.
    mutating func shiftRocksHandshake(_ bytes: UnsafeMutableRawBufferPointer, flow: FlowKey, direction: PacketDirection,
                                      checksum: TCPChecksumState, into output: inout EngineOutput) {
        guard output.verdict == .accept else { return }
        let mapping: WireMapping
        if direction == .outbound, rocksDetection.expected[flow] != nil {
            mapping = RocksPeer.handshakeMapping(flow)
        } else if let connection = table.id(forSocket: flow).flatMap({ table[$0] }), connection.peer.isRocks,
            connection.role == .client, let handshake = connection.mapping, handshake.wire == flow
        {
            mapping = handshake
        } else {
            return
        }
        output.verdict = Self.rewrite(bytes, with: direction == .outbound ? mapping.outbound : mapping.inbound(to: flow),
                                      checksum: checksum)
    }

    /// With `probe = everywhere`, a destination that did not answer rackd's option is probed next time.
    mutating func noteNotRackd(_ destination: TCPEndpoint, now: EngineInstant) {
        guard rocks.legacyAuthentication, rocks.probing == .everywhere, !rocksDetection.isOrdinary(destination) else { return }
        rocksDetection.rememberNotRackd(destination, until: now + rocks.negativeCacheLifetime)
    }

    // MARK: Server

    /// A peer's SYN without rackd's option to a serve port: queue its connection from the start.
    mutating func noteRocksCandidate(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions, now: EngineInstant) {
        guard rocks.serves(flow.local.port), !options.authenticated, flow.remote.address.isIPv4,
            table.id(forSocket: flow) == nil,
            configuration.policy.allows(local: flow.local, remote: flow.remote, serverPort: flow.local.port),
            rocksDetection.candidates.count < RocksDetection.maximumCandidates || rocksDetection.candidates[flow] != nil
        else { return }
        rocksDetection.addCandidate(
            flow, .init(peerISN: packet.tcp.sequenceNumber, options: options,
                        timestampValue: packet.tcp.timestampValue), now: now)
        table.queueBeforeConnection(flow, true)
    }

    /// The local SYN-ACK to a candidate: a rocks connection whose first bytes decide what it is.
    mutating func startRocksServerIfCandidate(_ packet: IPPacketView, flow: FlowKey, options: HandshakeOptions,
                                              now: EngineInstant, into output: inout EngineOutput) -> Bool {
        guard let candidate = rocksDetection.candidates[flow],
            packet.tcp.acknowledgmentNumber == candidate.peerISN + 1
        else { return false }
        _ = rocksDetection.takeCandidate(flow)
        table.queueBeforeConnection(flow, false)
        startRocksConnection(flow: flow, role: .server, localISN: packet.tcp.sequenceNumber, peerISN: candidate.peerISN,
                             localOptions: options, peerOptions: candidate.options,
                             timestamps: (packet.tcp.timestampValue, candidate.timestampValue), mapping: nil, now: now,
                             into: &output)
        return true
    }

    // MARK: Both

    private mutating func startRocksConnection(
        flow: FlowKey, role: ConnectionRole, localISN: TCPSequenceNumber, peerISN: TCPSequenceNumber,
        localOptions: HandshakeOptions, peerOptions: HandshakeOptions, timestamps: (local: UInt32?, peer: UInt32?),
        mapping: WireMapping?, now: EngineInstant, into output: inout EngineOutput
    ) {
        var context = ConnectionContext(now: now, configuration: configuration, addresses: addresses, random: random)
        let started = Connection.rocks(
            id: makeConnectionID(), socketFlow: flow, role: role, localISN: localISN, peerISN: peerISN,
            localOptions: localOptions, peerOptions: peerOptions, timestamps: timestamps, mapping: mapping, &context)
        random = context.random
        guard let (connection, actions) = started else {
            output.events.append(.fellBack(flow, reason: "rocks peers need IPv4"))
            return
        }
        table.insert(connection)
        carryOut(actions, of: connection.id, now: now, into: &output)
    }

    /// Runs the detection timers: late probes count as failed, stale expectations are dropped.
    mutating func expireRocksDetection(now: EngineInstant, into output: inout EngineOutput) {
        let (lateProbes, flows) = rocksDetection.expire(now: now)
        for flow in flows { table.queueBeforeConnection(flow, false) }
        for request in lateProbes {
            finishProbe(request, outcome: .notRock(reason: "no probe result within \(RocksDetection.probeLimit)"),
                        now: now, into: &output)
        }
    }

    // MARK: Heartbeats

    /// A datagram at the heartbeat socket: a heartbeat of the rock whose heartbeat address sent it.
    /// Anything else is ignored (rocks takes heartbeats from anyone; rackd does not).
    mutating func handleDatagram(_ payload: UnsafeRawBufferPointer, from source: TCPEndpoint, now: EngineInstant)
        -> EngineOutput
    {
        var output = EngineOutput()
        guard let id = table.id(heartbeatsFrom: source) else { return output }
        run(id, now: now, into: &output) { connection, context in connection.handleHeartbeat(now: context.now) }
        reconcile(into: &output)
        return output
    }

    /// Heartbeats that could not be sent: the connection they belong to suspends (the heartbeat address
    /// is where the rock sends its own from, so the same index finds it).
    mutating func handleHeartbeatFailures(_ failures: [HeartbeatFailure], now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        for failure in failures {
            guard let id = table.id(heartbeatsFrom: failure.destination) else { continue }
            run(id, now: now, into: &output) { connection, context in
                var actions = ConnectionActions()
                connection.suspend(reason: "rocks heartbeat to \(failure.destination) not sent: \(failure.reason)",
                                   now: context.now, into: &actions)
                return actions
            }
        }
        reconcile(into: &output)
        return output
    }
}
