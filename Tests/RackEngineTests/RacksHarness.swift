// rackd — a deterministic two-host world for engine tests (quinn-proto's `Pair`, smoltcp's socket tests).
//
// Host A (the client, 10.1.0.2) and host B (the server, 10.2.0.2) each run an `Engine`. The harness
// plays everything around them: the path between the hosts (up or a black hole), each host's TCP socket
// (reduced to what sock_diag reports), and the kernel of each host answering probes. Time is virtual:
// `advance(by:)` moves in small steps and delivers whatever is due. Nothing sleeps.

import Testing
@testable import RackEngine

/// What the harness models of one local TCP socket.
struct SimulatedSocket {
    var isn: TCPSequenceNumber
    var isClient: Bool
    var bytesAcked: UInt64
    var bytesReceived: UInt64
    var unacked: UInt32 = 0
    var lastAckAt: EngineInstant
    var exists = true
    var state = SocketSnapshot.State.established

    /// What the socket sends next and expects next, the way the engine will compute it.
    func snapshot(flow: FlowKey, now: EngineInstant) -> SocketSnapshot {
        SocketSnapshot(
            flow: flow, state: state, bytesAcked: bytesAcked, bytesReceived: bytesReceived,
            unackedSegments: unacked, lastAckReceived: now.duration(since: lastAckAt),
            lastDataReceived: now.duration(since: lastAckAt))
    }
}

struct RacksPair {
    static let addressA = IPAddress.v4(IPv4Address(10, 1, 0, 2))
    static let addressB = IPAddress.v4(IPv4Address(10, 2, 0, 2))
    var clientPort: UInt16 = 40_000
    var clientEnd: TCPEndpoint { TCPEndpoint(address: Self.addressA, port: clientPort) }
    let serverEnd = TCPEndpoint(address: addressB, port: 22)
    var flowA: FlowKey { FlowKey(local: clientEnd, remote: serverEnd) }
    var flowB: FlowKey { FlowKey(local: serverEnd, remote: clientEnd) }

    var a: HostEngine
    var b: HostEngine
    var now = EngineInstant.seconds(100)
    var pathUp = true
    /// When set, messages in this direction are lost (after the black hole check).
    var dropAToB = false
    var dropBToA = false
    /// When set, only this many more segments from A reach B; the rest are lost.
    var aToBBudget: Int?
    /// The addresses each host has now (the path delivers only to these); each starts with its own.
    var currentAddressesA: Set<IPAddress> = [addressA]
    var currentAddressesB: Set<IPAddress> = [addressB]
    /// A middlebox on the path that adds this to the sequence number of every SYN from A (and, as a
    /// real one would, maps the rest of the connection; the tests only look at the handshake).
    var synSequenceShiftAToB: UInt32 = 0

    var socketA = SimulatedSocket(isn: TCPSequenceNumber(1000), isClient: true, bytesAcked: 1, bytesReceived: 0,
                                  lastAckAt: .seconds(100))
    var socketB = SimulatedSocket(isn: TCPSequenceNumber(5000), isClient: false, bytesAcked: 0, bytesReceived: 0,
                                  lastAckAt: .seconds(100))

    /// Host A's sockets modelled one per flow, for the flows listed (a path of several connections); every
    /// other flow of A shares `socketA`.
    var flowSocketsA: [FlowKey: SimulatedSocket] = [:]
    /// Flows (as A sees them) whose segments the path loses both ways, as a NAT that forgot them would.
    var lostFlows: Set<FlowKey> = []
    /// Sockets host A read, and keepalive-shaped probes it sent toward B.
    var readingsA = 0
    var probesA = 0

    /// Everything each engine output, for assertions.
    var eventsA: [EngineEvent] = []
    var eventsB: [EngineEvent] = []
    var rulesA: [RuleChange] = []
    var rulesB: [RuleChange] = []
    /// Segments rackd injected toward its own local socket.
    var toLocalSocketA: [TCPSegmentRepr] = []
    var toLocalSocketB: [TCPSegmentRepr] = []
    /// Segments that crossed the path from each host's rackd (after loss), for replay tests.
    var wireFromA: [[UInt8]] = []
    var wireFromB: [[UInt8]] = []

    init(configuration: Configuration = Configuration(), seedA: UInt64 = 1, seedB: UInt64 = 2) {
        a = HostEngine(configuration: configuration, random: SeededRandom(seed: seedA))
        b = HostEngine(configuration: configuration, random: SeededRandom(seed: seedB))
    }

    // MARK: Handshake

    static let synOptions: [TCPOption] = [
        .maximumSegmentSize(1460), .sackPermitted, .timestamps(value: 1, echo: 0), .noOperation, .windowScale(7),
    ]

    func syn() -> TCPSegmentRepr {
        .syn(from: clientEnd, to: serverEnd, sequenceNumber: socketA.isn, window: 64240, options: Self.synOptions)
    }

    func synAck() -> TCPSegmentRepr {
        .synAck(from: serverEnd, to: clientEnd, sequenceNumber: socketB.isn, acknowledgmentNumber: socketA.isn + 1,
                window: 65160, options: Self.synOptions)
    }

    /// Runs the three-way handshake through both engines with both running rackd, then lets the key
    /// exchange finish.
    mutating func connect() throws {
        let synOutput = try run(syn(), .outbound, on: .a)
        let decoratedSYN = try #require(replacement(of: synOutput))
        let synVerdict = try run(try parse(decoratedSYN), .inbound, on: .b).verdict
        #expect(synVerdict == .accept)
        let synAckOutput = try run(synAck(), .outbound, on: .b)
        let decoratedSYNACK = try #require(replacement(of: synAckOutput))
        _ = try run(try parse(decoratedSYNACK), .inbound, on: .a)
        try advance(by: .milliseconds(50))
    }

    func replacement(of output: EngineOutput) -> [UInt8]? {
        if case .replace(let bytes) = output.verdict { return bytes }
        return nil
    }

    // MARK: Driving

    enum Host { case a, b }

    /// Hands one segment to a host's engine and routes what it emits.
    @discardableResult
    mutating func run(_ segment: TCPSegmentRepr, _ direction: PacketDirection, on host: Host) throws -> EngineOutput {
        var bytes = try emitted(segment)
        var engine = host == .a ? a : b
        let output = bytes.withUnsafeMutableBytes { engine.handlePacket($0, direction: direction, now: now) }
        if host == .a { a = engine } else { b = engine }
        try route(output, from: host)
        return output
    }

    /// Moves virtual time forward in `step`s, running timers and snapshots as the daemon does.
    mutating func advance(by duration: Duration, step: Duration = .milliseconds(50)) throws {
        let end = now + duration
        while now < end {
            now = min(end, now + step)
            try tick(.a)
            try tick(.b)
        }
    }

    private mutating func tick(_ host: Host) throws {
        var engine = host == .a ? a : b
        var outputs: [EngineOutput] = []
        if let due = engine.nextDeadline, due <= now { outputs.append(engine.handleTimeout(now: now)) }
        if let due = engine.nextSnapshotAt, due <= now {
            // Every flow of a host is modelled by that host's one simulated socket.
            let socket = host == .a ? socketA : socketB
            // As the daemon does: only the sockets due are read.
            let flows = engine.flowsDueForSnapshot(now: now)
            var snapshots: [FlowKey: SocketSnapshot] = [:]
            for flow in flows {
                let own = host == .a ? flowSocketsA[flow] ?? socket : socket
                if own.exists { snapshots[flow] = own.snapshot(flow: flow, now: now) }
            }
            if host == .a { readingsA += flows.count }
            outputs.append(engine.handleSnapshots(snapshots, of: flows, now: now))
        }
        if host == .a { a = engine } else { b = engine }
        for output in outputs { try route(output, from: host) }
    }

    /// Carries out an engine's output: records it, and delivers injected segments.
    mutating func route(_ output: EngineOutput, from host: Host) throws {
        if host == .a {
            eventsA += output.events
            rulesA += output.ruleChanges
        } else {
            eventsB += output.events
            rulesB += output.ruleChanges
        }
        addressChanges[host == .a ? 0 : 1] += output.addressChanges
        for var bytes in output.transmits {
            let segment = try parse(bytes)
            let ownAddresses = host == .a ? currentAddressesA.union([Self.addressA]) : currentAddressesB.union([Self.addressB])
            if ownAddresses.contains(segment.destination.address) {
                if host == .a { toLocalSocketA.append(segment) } else { toLocalSocketB.append(segment) }
                continue
            }
            let flowA = host == .a ? FlowKey(local: segment.source, remote: segment.destination)
                : FlowKey(local: segment.destination, remote: segment.source)
            if host == .a && Self.isProbe(segment) { probesA += 1 }
            guard pathUp, !(host == .a ? dropAToB : dropBToA), !lostFlows.contains(flowA) else { continue }
            // Nothing routes to an address no host has any more.
            guard (host == .a ? currentAddressesB : currentAddressesA).contains(segment.destination.address) else { continue }
            if host == .a && synSequenceShiftAToB != 0 && segment.flags == .syn {
                var shifted = segment
                shifted.sequenceNumber = segment.sequenceNumber + synSequenceShiftAToB
                bytes = try emitted(shifted)
            }
            if host == .a, let budget = aToBBudget {
                guard budget > 0 else { continue }
                aToBBudget = budget - 1
            }
            if host == .a { wireFromA.append(bytes) } else { wireFromB.append(bytes) }
            try deliver(bytes, to: host == .a ? .b : .a)
        }
    }

    /// A segment arriving at a host from the path. rackd messages reach its engine (option 253 is
    /// queued); anything else reaches its kernel, which answers a probe with an ACK the other socket sees.
    mutating func deliver(_ bytes: [UInt8], to host: Host) throws {
        let segment = try parse(bytes)
        let carriesMessage = segment.options.contains { if case .experimental = $0 { return true }; return false }
        if carriesMessage {
            var copy = bytes
            var engine = host == .a ? a : b
            let output = copy.withUnsafeMutableBytes { engine.handlePacket($0, direction: .inbound, now: now) }
            if host == .a { a = engine } else { b = engine }
            try route(output, from: host)
        } else if segment.payload.isEmpty {
            // A probe: the receiving kernel's duplicate ACK refreshes the sender's last-ACK time.
            let flowA = FlowKey(local: segment.source, remote: segment.destination)
            if host == .b, flowSocketsA[flowA] != nil, !lostFlows.contains(flowA) {
                flowSocketsA[flowA]?.lastAckAt = now
            } else if host == .b {
                socketA.lastAckAt = now
            } else {
                socketB.lastAckAt = now
            }
        }
    }

    /// A keepalive-shaped probe: a bare ACK carrying no rackd message.
    static func isProbe(_ segment: TCPSegmentRepr) -> Bool {
        segment.flags == .ack && segment.payload.isEmpty
            && !segment.options.contains { if case .experimental = $0 { return true }; return false }
    }

    func parse(_ bytes: [UInt8]) throws -> TCPSegmentRepr {
        try bytes.withUnsafeBytes { try TCPSegmentRepr(parsing: try IPPacketView(validating: $0)) }
    }

    /// Traffic flowing normally: both sockets hear ACKs now.
    mutating func exchangeTraffic() {
        socketA.lastAckAt = now
        socketB.lastAckAt = now
        for flow in flowSocketsA.keys { flowSocketsA[flow]?.lastAckAt = now }
    }

    /// Moves a host to a new address, the old one leaving first, as DHCP on another network does.
    mutating func move(_ host: Host, to address: IPAddress) throws {
        let old = host == .a ? currentAddressesA : currentAddressesB
        if host == .a { currentAddressesA = [address] } else { currentAddressesB = [address] }
        var engine = host == .a ? a : b
        let lost = engine.handleLinkEvent(.addressesLost(Array(old.subtracting([address]))), now: now)
        let available = engine.handleLinkEvent(.addressesAvailable([address]), now: now)
        if host == .a { a = engine } else { b = engine }
        try route(lost, from: host)
        try route(available, from: host)
    }

    /// What each host asked to keep on `lo`, in order.
    var addressChanges: [[AddressChange]] = [[], []]

    func phase(_ host: Host) -> ConnectionPhase? {
        (host == .a ? a : b).connections.first?.phase
    }
}

/// SplitMix64 as a Sendable generator the engine can hold.
struct SeededRandom: RandomNumberGenerator, Sendable {
    var inner: SplitMix64
    init(seed: UInt64) { inner = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { inner.next() }
}
