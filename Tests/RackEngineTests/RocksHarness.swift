// rackd — a deterministic world for rocks engine tests: host A runs rackd's engine and an ordinary
// application socket; host B runs a rock (an application under rocks 2.4, reduced to its protocol:
// docs/rocks.md §2, §3). Both sockets are small TCP models that reassemble, acknowledge and retransmit,
// so every byte either application receives can be compared with what the other sent. Time is virtual.

import Testing
@testable import RackEngine

/// A TCP endpoint reduced to what the tests need: in-order delivery with reassembly, cumulative
/// acknowledgements, retransmission of everything unacknowledged on `retransmit()`.
struct MiniTCP {
    let local: TCPEndpoint
    let remote: TCPEndpoint
    let isn: TCPSequenceNumber
    var peerISN: TCPSequenceNumber?
    var sendNext: TCPSequenceNumber
    var sendUnacknowledged: TCPSequenceNumber
    var receiveNext = TCPSequenceNumber(0)
    /// Every byte the application wrote, from ISN + 1 on.
    var written: [UInt8] = []
    var finWritten = false
    var received: [UInt8] = []
    var receivedFIN = false
    var receivedRST = false
    var outOfOrder: [TCPSequenceNumber: [UInt8]] = [:]
    var timestamp: UInt32 = 1000
    /// Segments per write (rocks writes each message as a segment of its own).
    var segmentSize = 1400

    init(local: TCPEndpoint, remote: TCPEndpoint, isn: UInt32) {
        self.local = local
        self.remote = remote
        self.isn = TCPSequenceNumber(isn)
        sendNext = TCPSequenceNumber(isn)
        sendUnacknowledged = TCPSequenceNumber(isn)
    }

    var options: [TCPOption] {
        [.noOperation, .noOperation, .timestamps(value: timestamp, echo: 0)]
    }

    mutating func syn() -> TCPSegmentRepr {
        sendNext = isn + 1
        return .syn(from: local, to: remote, sequenceNumber: isn, window: 64240,
                    options: [.maximumSegmentSize(1460), .sackPermitted, .timestamps(value: timestamp, echo: 0), .noOperation, .windowScale(7)])
    }

    mutating func synAck(to syn: TCPSegmentRepr) -> TCPSegmentRepr {
        peerISN = syn.sequenceNumber
        receiveNext = syn.sequenceNumber + 1
        sendNext = isn + 1
        return .synAck(from: local, to: remote, sequenceNumber: isn, acknowledgmentNumber: receiveNext, window: 64240,
                       options: [.maximumSegmentSize(1460), .sackPermitted, .timestamps(value: timestamp, echo: 0), .noOperation, .windowScale(7)])
    }

    /// Writes bytes as one segment (or several of `segmentSize`).
    mutating func write(_ bytes: [UInt8]) -> [TCPSegmentRepr] {
        written += bytes
        var segments: [TCPSegmentRepr] = []
        var rest = bytes[...]
        while !rest.isEmpty {
            let chunk = Array(rest.prefix(segmentSize))
            rest = rest.dropFirst(chunk.count)
            segments.append(segment(at: sendNext, payload: chunk))
            sendNext += UInt32(chunk.count)
        }
        return segments
    }

    mutating func close() -> TCPSegmentRepr {
        finWritten = true
        var fin = segment(at: sendNext, payload: [])
        fin.flags.insert(.fin)
        sendNext += 1
        return fin
    }

    mutating func segment(at sequence: TCPSequenceNumber, payload: [UInt8]) -> TCPSegmentRepr {
        TCPSegmentRepr(source: local, destination: remote, sequenceNumber: sequence, acknowledgmentNumber: receiveNext,
                       flags: payload.isEmpty ? .ack : [.ack, .psh], window: 502, options: options, payload: payload)
    }

    /// Everything unacknowledged, again (one segment per `segmentSize`).
    mutating func retransmit() -> [TCPSegmentRepr] {
        var segments: [TCPSegmentRepr] = []
        let unacknowledged = Int(sendNext - sendUnacknowledged) - (finWritten ? 1 : 0)
        guard unacknowledged > 0 || (finWritten && sendNext - sendUnacknowledged > 0) else { return [] }
        let startOffset = Int(sendUnacknowledged - (isn + 1))
        var offset = startOffset
        while offset < written.count {
            let chunk = Array(written[offset..<min(written.count, offset + segmentSize)])
            segments.append(segment(at: isn + 1 + UInt32(offset), payload: chunk))
            offset += chunk.count
        }
        if finWritten {
            var fin = segment(at: sendNext - 1, payload: [])
            fin.flags.insert(.fin)
            segments.append(fin)
        }
        return segments
    }

    /// Takes a segment from the peer; returns an ACK when it carried data or a FIN.
    mutating func receive(_ segment: TCPSegmentRepr) -> TCPSegmentRepr? {
        if segment.flags.contains(.rst) {
            receivedRST = true
            return nil
        }
        if segment.flags.contains(.syn) {
            peerISN = segment.sequenceNumber
            receiveNext = segment.sequenceNumber + 1
            if segment.flags.contains(.ack) { sendUnacknowledged = segment.acknowledgmentNumber }
            return segment.flags.contains(.ack) ? self.segment(at: sendNext, payload: []) : nil
        }
        if segment.flags.contains(.ack), segment.acknowledgmentNumber - sendUnacknowledged > 0,
            sendNext - segment.acknowledgmentNumber >= 0
        {
            sendUnacknowledged = segment.acknowledgmentNumber
        }
        guard !segment.payload.isEmpty || segment.flags.contains(.fin) else { return nil }
        if !segment.payload.isEmpty { outOfOrder[segment.sequenceNumber] = segment.payload }
        var progressed = true
        while progressed {
            progressed = false
            for (sequence, payload) in outOfOrder {
                let end = sequence + UInt32(payload.count)
                if sequence - receiveNext <= 0 && end - receiveNext > 0 {
                    received += payload[Int(receiveNext - sequence)...]
                    receiveNext = end
                    outOfOrder[sequence] = nil
                    progressed = true
                } else if end - receiveNext <= 0 {
                    outOfOrder[sequence] = nil
                }
            }
        }
        if segment.flags.contains(.fin), segment.sequenceNumber + UInt32(segment.payload.count) == receiveNext, !receivedFIN {
            receivedFIN = true
            receiveNext += 1
        }
        return self.segment(at: sendNext, payload: [])
    }
}

/// Host A: rackd's engine and an ordinary socket; host B: a rock. Everything A's engine transmits goes to
/// the socket it names.
struct RocksWorld {
    static let addressA = IPv4Address(10, 1, 0, 2)
    static let addressB = IPv4Address(10, 2, 0, 2)
    var engine: HostEngine
    var app: MiniTCP
    var rock: MiniTCP
    var now = EngineInstant.seconds(100)
    var outputs: [EngineOutput] = []
    /// Everything that crossed the wire from A to B (after the engine), and from B.
    var wireToRock: [TCPSegmentRepr] = []
    var heldFlows: [FlowKey: [[UInt8]]] = [:]
    /// A black hole toward the rock (what was sent is still recorded in `wireToRock`).
    var dropToRock = false
    var datagrams: [Datagram] = []

    /// `hosts` names A's and B's addresses (a capture's, to replay it); the defaults otherwise.
    init(appIsClient: Bool, hosts: (a: IPv4Address, b: IPv4Address) = (addressA, addressB),
         kernelShifts: Bool = false, configure: (inout RocksSettings) -> Void = { _ in }) {
        var configuration = Configuration()
        configuration.kernelShiftsAvailable = kernelShifts
        configuration.rocks.legacyAuthentication = true
        configuration.rocks.probing = .listed
        configuration.rocks.probePorts = [PortRange(7000)]
        configuration.rocks.servePorts = [PortRange(7000)]
        configuration.rocks.heartbeatPort = 43000
        configuration.rocks.reconnectionPort = 44000
        configure(&configuration.rocks)
        engine = HostEngine(configuration: configuration, random: SeededRandom(seed: 11))
        let a = TCPEndpoint(address: .v4(hosts.a), port: appIsClient ? 50000 : 7000)
        let b = TCPEndpoint(address: .v4(hosts.b), port: appIsClient ? 7000 : 50000)
        app = MiniTCP(local: a, remote: b, isn: 1_000_000)
        rock = MiniTCP(local: b, remote: a, isn: 3_000_000_000)
    }

    var appFlow: FlowKey { FlowKey(local: app.local, remote: app.remote) }

    static func bytes(_ segment: TCPSegmentRepr) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: segment.bufferLength)
        try bytes.withUnsafeMutableBytes { try segment.emit(into: $0) }
        return bytes
    }

    static func parse(_ bytes: [UInt8]) throws -> TCPSegmentRepr {
        try bytes.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) }
    }

    /// A segment from the application socket through the engine; returns what reached the wire.
    mutating func fromApp(_ segments: [TCPSegmentRepr]) throws {
        for segment in segments { try pass(segment, direction: .outbound) }
    }

    /// A segment from the rock through the engine to the application.
    mutating func fromRock(_ segments: [TCPSegmentRepr]) throws {
        for segment in segments { try pass(segment, direction: .inbound) }
    }

    private mutating func pass(_ segment: TCPSegmentRepr, direction: PacketDirection) throws {
        var bytes = try Self.bytes(segment)
        let flow = FlowKey(source: segment.source, destination: segment.destination, direction: direction)
        let entry = conntrack[flow]
        let shiftedInKernel = engine.kernelFlows.shifted.contains { $0.flow == flow || $0.wire == flow }
        if direction == .inbound, engine.kernelFlows.shifted.contains(where: { $0.isMoved && $0.flow == flow }) {
            return  // the old tuple of a reconnected connection: the map drops it (RackdMaps.swift)
        }
        if direction == .inbound, shiftedInKernel, let entry, segment.flags.isDisjoint(with: [.syn, .fin, .rst]),
            !queueEverything
        {
            // The chain `shifted` sends a segment conntrack shifts on as a screened one: past rackd, and
            // shifted at the input's confirm hook (Core/KernelShift.swift).
            unqueuedFromRock += 1
            try forward(Self.shift(bytes, by: entry, direction: direction), direction: direction)
            return
        }
        if direction == .inbound, engine.kernelFlows.screened.contains(flow),
            segment.flags.isDisjoint(with: [.syn, .fin, .rst])
        {
            // What the kernel does with a screened flow's inbound segment (Firewall/RackdRuleset+Rules.swift,
            // the chain `screened`): it reaches the socket as it is, unseen by rackd.
            unqueuedFromRock += 1
            try forward(bytes, direction: direction)
            return
        }
        if engine.kernelFlows.screened.contains(flow) || shiftedInKernel {
            if direction == .inbound { queuedFromRockWhileScreened += 1 } else { queuedFromAppWhileScreened += 1 }
        }
        let output = bytes.withUnsafeMutableBytes {
            engine.handlePacket($0, direction: direction, kernelShifts: entry != nil, now: now)
        }
        lastVerdict = output.verdict
        // Whatever passes the verdict, conntrack shifts if the packet's entry has the shift.
        let afterVerdict = { (bytes: [UInt8]) throws -> [UInt8] in
            guard let entry else { return bytes }
            return try Self.shift(bytes, by: entry, direction: direction)
        }
        switch output.verdict {
        case .accept: try forward(afterVerdict(bytes), direction: direction)
        case .acceptModified(let length): try forward(afterVerdict(Array(bytes[0..<length])), direction: direction)
        case .replace(let replaced): try forward(afterVerdict(replaced), direction: direction)
        case .drop: break
        case .hold(let flow): heldFlows[flow, default: []].append(bytes)
        }
        try carryOut(output)
    }

    /// What conntrack's seqadj does to a packet of `entry`'s flow (docs/kernel-seqadj.md §2): the socket's
    /// numbers up by the local offset and its acknowledgements up by the peer's on the way out; the rock's
    /// down by the peer offset and its acknowledgements down by the local one on the way in.
    static func shift(_ bytes: [UInt8], by entry: KernelShift, direction: PacketDirection) throws -> [UInt8] {
        var bytes = bytes
        try bytes.withUnsafeMutableBytes { raw in
            let view = try IPPacketView(validating: UnsafeRawBufferPointer(raw))
            // Inbound, onto the socket's tuple too: after a reconnection nftables rewrites the link's
            // (the chain `shifted_rewrite_in4`); a packet rackd passed carries it already.
            let rewrite = direction == .outbound
                ? FlowRewrite(source: view.sourceEndpoint, destination: view.destinationEndpoint,
                              sequenceOffset: entry.localOffset, acknowledgmentOffset: entry.peerOffset)
                : FlowRewrite(source: entry.flow.remote, destination: entry.flow.local,
                              sequenceOffset: entry.peerOffset.inverse, acknowledgmentOffset: entry.localOffset.inverse)
            try rewrite.apply(to: raw, checksum: .complete)
        }
        return bytes
    }

    /// The kernel's conntrack entries with a shift, by the socket's tuple: made and deleted as the engine's
    /// rule changes say, unless `conntrackRefuses` (a kernel without ctnetlink) or a test takes them away
    /// (a flush).
    var conntrack: [FlowKey: KernelShift] = [:]
    var conntrackRefuses = false
    /// Entries rackd deleted that the kernel still applies: the socket answers a packet at its verdict, before
    /// the daemon deletes the entry its input asked to delete. `deleteLateEntries` carries them out.
    var conntrackDeletesLate = false
    var lateDeletions: [KernelShift] = []

    mutating func deleteLateEntries() {
        for shift in lateDeletions {
            conntrack[shift.flow] = nil
            conntrack[shift.wire] = nil
        }
        lateDeletions = []
    }
    /// Every packet through the engine, as the chain `queued` sends them while the elements that would send
    /// them past rackd are not in the maps yet (or no longer): the moments around an entry's making.
    var queueEverything = false
    /// The verdict on the last packet that passed the engine.
    var lastVerdict: PacketVerdict?

    mutating func carryOut(_ output: EngineOutput) throws {
        outputs.append(output)
        datagrams += output.datagrams
        // Rule changes before transmits, as the daemon commits them (Daemon/DataPlane.swift).
        for change in output.ruleChanges {
            switch change {
            // One entry: the socket's tuple is its original one, the wire's inverse its reply one.
            case .shift(let shift) where !conntrackRefuses:
                conntrack[shift.flow] = shift
                conntrack[shift.wire] = shift
            case .stopShifting(let shift) where conntrackDeletesLate:
                lateDeletions.append(shift)
            case .stopShifting(let shift):
                conntrack[shift.flow] = nil
                conntrack[shift.wire] = nil
            default: break
            }
        }
        for release in output.releases {
            guard let held = heldFlows.removeValue(forKey: release.flow), let first = held.first else { continue }
            switch release.verdict {
            case .accept, .acceptModified: try forward(first, direction: .outbound)
            case .replace(let bytes): try forward(bytes, direction: .outbound)
            case .drop, .hold: break
            }
        }
        for transmit in output.transmits {
            let segment = try Self.parse(transmit)
            if rockLink != nil, segment.destination == rockLink?.local {
                wireToRock.append(segment)
                linkSegments.append(segment)
                if !dropToRock, let reply = rockLink?.receive(segment) { pendingFromRock.append(reply) }
            } else if segment.destination == rock.local {
                // rackd's own segments toward the rock pass conntrack too.
                let flow = FlowKey(source: segment.source, destination: segment.destination, direction: .outbound)
                if let entry = conntrack[flow] {
                    try toRock(Self.parse(Self.shift(transmit, by: entry, direction: .outbound)))
                } else {
                    try toRock(segment)
                }
            } else if segment.destination == app.local {
                try toApp(segment)
            } else {
                strays.append(segment)  // to an endpoint nobody plays (a forged source's)
            }
        }
    }

    private mutating func forward(_ bytes: [UInt8], direction: PacketDirection) throws {
        let segment = try Self.parse(bytes)
        #expect(bytes.withUnsafeBytes { raw in
            (try? IPPacketView(validating: raw))?.verifyChecksums(tcpChecksum: .complete) ?? false
        }, "a forwarded packet's checksums are wrong")
        if direction == .outbound { try toRock(segment) } else { try toApp(segment) }
    }

    private mutating func toRock(_ segment: TCPSegmentRepr) throws {
        if rockLink != nil, segment.destination == rockLink?.local {
            wireToRock.append(segment)
            linkSegments.append(segment)
            if !dropToRock, let reply = rockLink?.receive(segment) { pendingFromRock.append(reply) }
            return
        }
        wireToRock.append(segment)
        guard !dropToRock else { return }
        if let reply = rock.receive(segment) { pendingFromRock.append(reply) }
    }

    private mutating func toApp(_ segment: TCPSegmentRepr) throws {
        if let reply = app.receive(segment) { pendingFromApp.append(reply) }
    }

    /// The rock's segments the kernel let through a screened flow without rackd, and the segments of a
    /// screened flow rackd saw, each way.
    var unqueuedFromRock = 0
    var queuedFromRockWhileScreened = 0
    var queuedFromAppWhileScreened = 0

    /// The rock's socket of a reconnection, once it has one, and every segment rackd sent to it.
    var rockLink: MiniTCP?
    var linkSegments: [TCPSegmentRepr] = []
    var strays: [TCPSegmentRepr] = []
    var pendingFromRock: [TCPSegmentRepr] = []
    var pendingFromApp: [TCPSegmentRepr] = []

    /// Delivers queued replies both ways until the world is quiet.
    mutating func settle() throws {
        var rounds = 0
        while !(pendingFromRock.isEmpty && pendingFromApp.isEmpty) && rounds < 100 {
            rounds += 1
            let fromRock = pendingFromRock
            pendingFromRock = []
            try self.fromRock(fromRock)
            let fromApp = pendingFromApp
            pendingFromApp = []
            try self.fromApp(fromApp)
        }
    }

    /// Moves virtual time, running the engine's timers.
    mutating func advance(by duration: Duration) throws {
        let end = now + duration
        while now < end {
            now = min(end, now + .milliseconds(50))
            if let due = engine.nextDeadline, due <= now { try carryOut(engine.handleTimeout(now: now)) }
            try settle()
        }
    }

    var events: [EngineEvent] { outputs.flatMap(\.events) }
    var probes: [RocksProbeRequest] { outputs.flatMap(\.probes) }
}
