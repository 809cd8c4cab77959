// rackd — what one input costs the engine with 10 and with 10,000 managed connections (bench/engine-cost).
//
// Two engines, A (client) and B (server), are connected back to back through the engine's public API, as
// the daemon would feed them: each connection's SYN, SYN-ACK and key exchange cross from one to the other
// until both call it managed. Then, on A, with N connections:
//   unrelated packet  an ACK of a flow rackd does not manage (what every queued stray packet costs);
//   ordinary SYN      a SYN from a client without rackd's option, to a local server;
//   idle tick         handleTimeout and nextDeadline when no timer is due;
//   due tick          handleTimeout when one connection's timer is due (a held connection that tries to
//                     resume every 500 ms; the other N are healthy).
// Each input runs many times; the figure is the median of 7 rounds, in nanoseconds per input. The last
// column is the cost at 10,000 against the cost at 10: near 1 means the cost does not grow with the
// number of connections. It measures the engine alone, without the kernel; build with -c release.

import RackEngine

struct Pair {
    var a: HostEngine
    var b: HostEngine
    var now = EngineInstant.seconds(100)

    static let addressA = IPAddress.v4(IPv4Address(10, 1, 0, 2))
    static let spareAddressA = IPAddress.v4(IPv4Address(10, 1, 1, 2))
    static let addressB = IPAddress.v4(IPv4Address(10, 2, 0, 2))
    static let synOptions: [TCPOption] = [.maximumSegmentSize(1460), .sackPermitted, .noOperation, .windowScale(7)]

    init() {
        a = HostEngine(configuration: Configuration(), random: SystemRandomNumberGenerator())
        b = HostEngine(configuration: Configuration(), random: SystemRandomNumberGenerator())
        _ = a.handleLinkEvent(.addressesAvailable([Self.addressA, Self.spareAddressA]), now: now)
        _ = b.handleLinkEvent(.addressesAvailable([Self.addressB]), now: now)
    }

    static func bytes(_ segment: TCPSegmentRepr) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: segment.bufferLength)
        bytes.withUnsafeMutableBytes { try! segment.emit(into: $0) }
        return bytes
    }

    static func handle(_ engine: inout HostEngine, _ bytes: [UInt8], _ direction: PacketDirection,
                       now: EngineInstant) -> EngineOutput {
        var copy = bytes
        return copy.withUnsafeMutableBytes { engine.handlePacket($0, direction: direction, now: now) }
    }

    /// One connection through both engines, key exchange included.
    mutating func connect(from client: TCPEndpoint) {
        let server = TCPEndpoint(address: Self.addressB, port: 22)
        let isnA = TCPSequenceNumber(UInt32(client.port) &* 7919)
        let isnB = TCPSequenceNumber(UInt32(client.port) &* 104_729)
        let syn = Self.bytes(.syn(from: client, to: server, sequenceNumber: isnA, window: 64240, options: Self.synOptions))
        guard case .replace(let decoratedSYN) = Self.handle(&a, syn, .outbound, now: now).verdict else {
            fatalError("A did not add rackd's option to the SYN")
        }
        _ = Self.handle(&b, decoratedSYN, .inbound, now: now)
        let synAck = Self.bytes(.synAck(from: server, to: client, sequenceNumber: isnB, acknowledgmentNumber: isnA + 1,
                                        window: 65160, options: Self.synOptions))
        guard case .replace(let decoratedSYNACK) = Self.handle(&b, synAck, .outbound, now: now).verdict else {
            fatalError("B did not add rackd's option to the SYN-ACK")
        }
        var toB = Self.handle(&a, decoratedSYNACK, .inbound, now: now).transmits
        var toA: [[UInt8]] = []
        while !toB.isEmpty || !toA.isEmpty {
            for packet in toB { toA += Self.handle(&b, packet, .inbound, now: now).transmits }
            toB = []
            for packet in toA { toB += Self.handle(&a, packet, .inbound, now: now).transmits }
            toA = []
        }
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Nanoseconds per call of `body`, the median of 7 rounds of `iterations` calls.
func measure(iterations: Int, _ body: () -> Void) -> Double {
    let clock = ContinuousClock()
    var rounds: [Double] = []
    for _ in 0..<7 {
        let elapsed = clock.measure { for _ in 0..<iterations { body() } }
        let (seconds, attoseconds) = elapsed.components
        rounds.append((Double(seconds) * 1e9 + Double(attoseconds) / 1e9) / Double(iterations))
    }
    return median(rounds)
}

struct Costs {
    var unrelatedPacket = 0.0
    var ordinarySYN = 0.0
    var idleTick = 0.0
    var dueTick = 0.0
    /// One healthy connection's socket read and taken in (`handleSnapshots(_:of:now:)`), as the daemon
    /// does for each due connection.
    var oneReading = 0.0
}

func costs(connections count: Int, iterations: Int) -> Costs {
    var pair = Pair()
    for index in 0..<count {
        pair.connect(from: TCPEndpoint(address: Pair.addressA, port: UInt16(20_000 + index)))
    }
    // One more, from the spare address, to be held: its timer is due every 500 ms.
    pair.connect(from: TCPEndpoint(address: Pair.spareAddressA, port: 40_000))
    let managed = pair.a.connections.filter { $0.phase == .healthy }.count
    guard managed == count + 1 else { fatalError("expected \(count + 1) managed connections, got \(managed)") }
    _ = pair.a.handleLinkEvent(.addressesLost([Pair.spareAddressA]), now: pair.now)
    // The daemon's first snapshot of the sockets: every one established.
    var snapshots: [FlowKey: SocketSnapshot] = [:]
    for flow in pair.a.flowsToSnapshot {
        snapshots[flow] = SocketSnapshot(flow: flow, state: .established, bytesAcked: 1, bytesReceived: 0,
                                         unackedSegments: 0, lastAckReceived: .zero, lastDataReceived: .zero)
    }
    _ = pair.a.handleSnapshots(snapshots, now: pair.now)

    var result = Costs()
    let stranger = TCPEndpoint(address: .v4(IPv4Address(10, 3, 0, 9)), port: 5555)
    let local = TCPEndpoint(address: Pair.addressA, port: 8080)
    let ack = Pair.bytes(.ack(from: stranger, to: local, sequenceNumber: TCPSequenceNumber(1), acknowledgmentNumber: TCPSequenceNumber(1),
                              window: 1000, options: []))
    let syn = Pair.bytes(.syn(from: stranger, to: local, sequenceNumber: TCPSequenceNumber(1), window: 1000, options: Pair.synOptions))
    var engine = pair.a
    var now = pair.now + .milliseconds(1)
    result.unrelatedPacket = measure(iterations: iterations) { _ = Pair.handle(&engine, ack, .inbound, now: now) }
    result.ordinarySYN = measure(iterations: iterations) { _ = Pair.handle(&engine, syn, .inbound, now: now) }
    // Run what is due now, so that the idle tick finds nothing.
    _ = engine.handleTimeout(now: now)
    result.idleTick = measure(iterations: iterations) {
        if let due = engine.nextDeadline, due <= now { fatalError("a timer is due during the idle measurement") }
        _ = engine.handleTimeout(now: now)
    }
    result.dueTick = measure(iterations: max(1, iterations / 10)) {
        now = now + .milliseconds(500)
        _ = engine.handleTimeout(now: now)
    }
    let flow = FlowKey(local: TCPEndpoint(address: Pair.addressA, port: 20_000),
                       remote: TCPEndpoint(address: Pair.addressB, port: 22))
    let reading = SocketSnapshot(flow: flow, state: .established, bytesAcked: 1, bytesReceived: 0,
                                 unackedSegments: 0, lastAckReceived: .milliseconds(100), lastDataReceived: .zero)
    result.oneReading = measure(iterations: iterations) {
        _ = engine.handleSnapshots([flow: reading], of: [flow], now: now)
    }
    return result
}

let iterations = Int(CommandLine.arguments.dropFirst().first ?? "") ?? 20_000
let small = costs(connections: 10, iterations: iterations)
let large = costs(connections: 10_000, iterations: iterations)
func padded(_ text: String, _ width: Int, left: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, width - text.count))
    return left ? text + fill : fill + text
}
func row(_ name: String, _ small: Double, _ large: Double) {
    let ratio = (large / small * 100).rounded() / 100
    print(padded(name, 18, left: true) + padded("\(Int(small.rounded()))", 10) + padded("\(Int(large.rounded()))", 14)
        + padded("\(ratio)x", 9))
}
print(padded("input", 18, left: true) + padded("ns @ 10", 10) + padded("ns @ 10000", 14) + padded("ratio", 9))
row("unrelated packet", small.unrelatedPacket, large.unrelatedPacket)
row("ordinary SYN", small.ordinarySYN, large.ordinarySYN)
row("idle tick", small.idleTick, large.idleTick)
row("due tick", small.dueTick, large.dueTick)
row("one socket read", small.oneReading, large.oneReading)
