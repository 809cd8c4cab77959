// rackd-kernel-probe — runs one of rackd's kernel adapters alone and prints what it reports, so that the
// integration tests can check it against the kernel (integration-tests/test_sockdiag_adapter.sh,
// integration-tests/test_link_monitor_adapter.sh). Run it inside a test namespace.
//
//   rackd-kernel-probe sockets
//       every snapshot SocketDiagnostics takes, one line per socket:
//       LOCAL REMOTE STATE ACKED RECEIVED UNACKED LASTACK_MS LASTDATA_MS UID INODE
//   rackd-kernel-probe sockets-of LOCAL REMOTE [LOCAL REMOTE]...
//       snapshot(of:) for those flows, the same lines
//   rackd-kernel-probe sockets-cost ROUNDS
//       what reading sockets costs, for docs/architecture.md ("Liveness at scale"): with every TCP socket of
//       the namespace (n, from a dump), ROUNDS times each of: a dump of all (`snapshot()`), all by tuple
//       (`snapshot(of:)`), a tenth by tuple, a tenth found in a dump (`dumpSnapshot(of:)`); one line each,
//       "WHAT sockets=k us_per_round=.. us_per_socket=.." (wall clock, this process).
//   rackd-kernel-probe links STOPFILE [RCVBUF [PAUSE]]
//       LinkMonitor: "INITIAL addr...", then a line per event ("LOST addr...", "AVAILABLE addr..." or
//       "ROUTES family...", e.g. "ROUTES ipv4"), after each drain that produced events "STATE addr...", and
//       once STOPFILE exists "STATE addr..." and "RESYNCS n". PAUSE seconds pass after the initial dump
//       before the first read.
//   rackd-kernel-probe rules [--shifts] [--install] CHANGE...
//       NftablesInstaller: with --install, a fresh table first (queue 3939); then the CHANGEs, +LOCAL,REMOTE
//       (manage), -LOCAL,REMOTE (release), >LOCAL,REMOTE=WIRELOCAL,WIREREMOTE (rewrite the socket's tuple
//       LOCAL,REMOTE as the wire's in the kernel) or <LOCAL,REMOTE=WIRELOCAL,WIREREMOTE (stop),
//       ~LOCAL,REMOTE=LOCALOFFSET/PEEROFFSET (shift: KernelShift's offsets, unsigned 32-bit) or
//       ^LOCAL,REMOTE=LOCALOFFSET/PEEROFFSET (stop shifting), committed as one `apply`; a line "FAILED change
//       error" per change that failed, then "APPLIED n". With --shifts, the installer has ConntrackShifts
//       (checked first: "ERROR ..." if ctnetlink does not answer) and the table tests conntrack's status, as
//       rackd's with kernel shifts available. The table and the conntrack entries stay; `rackd cleanup`
//       removes the table, `conntrack -D` the entries.
//   rackd-kernel-probe rocks-probe [--source ADDR] [--mark MARK] [--read-timeout MS] ADDR:PORT
//       RocksProber: one rocks EDP probe of ADDR:PORT, run exactly as the daemon runs it (from ADDR, or the
//       unspecified address of the destination's family; SO_MARK MARK, default rackd's 0x10000000; reads of
//       at most MS ms, default 500), then one JSON line: {"destination", "local", "outcome" ("rock" or
//       "not-rock"), "reason" (not-rock only), "bytes_received", "elapsed_ms"} (integration-tests/
//       test_rocks_prober.sh).
//   rackd-kernel-probe rocks-sockets HEARTBEAT_PORT RECONNECTION_PORT STOPFILE
//       RocksHeartbeatSocket and RocksReconnectionSocket bound as the daemon binds them (0: any free port):
//       "BOUND heartbeat=N reconnection=M"; then, until STOPFILE exists, "DATAGRAM SOURCE HEX" for every
//       datagram received, each answered with one "x" to its source (a heartbeat) and "SENT SOURCE".

import Glibc
import Logging
import RackDaemon
import RackEngine

func emit(_ text: String) {
    print(text)
    fflush(nil)
}

func fail(_ text: String) -> Never {
    emit("ERROR \(text)")
    exit(1)
}

func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}

func line(_ s: SocketSnapshot) -> String {
    "\(s.flow.local) \(s.flow.remote) \(s.state) \(s.bytesAcked) \(s.bytesReceived) \(s.unackedSegments) "
        + "\(milliseconds(s.lastAckReceived)) \(milliseconds(s.lastDataReceived)) \(s.uid) \(s.inode)"
}

/// "10.1.0.2:7001" or "[fd00:1::2]:7002".
func endpoint(_ text: String) -> TCPEndpoint {
    guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
        fail("not an endpoint: \(text)")
    }
    var host = String(text[..<colon])
    if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
    guard let address = IPAddress(parsing: host) else { fail("not an address: \(host)") }
    return TCPEndpoint(address: address, port: port)
}

func list(_ addresses: [IPAddress]) -> String { addresses.map(\.description).joined(separator: " ") }

func sockets() throws(SystemError) {
    for snapshot in try SocketDiagnostics().snapshot() { emit(line(snapshot)) }
}

func sockets(of arguments: ArraySlice<String>) throws(SystemError) {
    guard arguments.count % 2 == 0 else { fail("sockets-of takes LOCAL REMOTE pairs") }
    let diagnostics = try SocketDiagnostics()
    let texts = Array(arguments)
    let flows = Set(stride(from: 0, to: texts.count, by: 2).map {
        FlowKey(local: endpoint(texts[$0]), remote: endpoint(texts[$0 + 1]))
    })
    for (flow, snapshot) in try diagnostics.snapshot(of: flows) {
        precondition(flow == snapshot.flow)
        emit(line(snapshot))
    }
}

func socketsCost(rounds: Int) throws(SystemError) {
    let diagnostics = try SocketDiagnostics()
    let all = Set(try diagnostics.snapshot().map(\.flow))
    let tenth = Set(all.prefix(max(1, all.count / 10)))
    func time(_ what: String, _ count: Int, _ body: () throws(SystemError) -> Int) throws(SystemError) {
        var found = 0
        let start = ContinuousClock.now
        for _ in 0..<rounds { found = try body() }
        let (seconds, attoseconds) = (ContinuousClock.now - start).components
        let micros = (Double(seconds) * 1e6 + Double(attoseconds) / 1e12) / Double(rounds)
        emit("\(what) sockets=\(count) found=\(found) us_per_round=\(Int(micros)) us_per_socket=\(Double(Int(micros / Double(max(1, count)) * 100)) / 100)")
    }
    try time("dump-all", all.count) { () throws(SystemError) in try diagnostics.snapshot().count }
    try time("by-tuple-all", all.count) { () throws(SystemError) in try diagnostics.snapshot(of: all).count }
    try time("by-tuple-tenth", tenth.count) { () throws(SystemError) in try diagnostics.snapshot(of: tenth).count }
    try time("dump-for-tenth", tenth.count) { () throws(SystemError) in try diagnostics.dumpSnapshot(of: tenth).count }
}

func links(stopFile: String, receiveBufferBytes: Int?, pause: UInt32?) throws(SystemError) {
    let monitor = if let receiveBufferBytes {
        try LinkMonitor(receiveBufferBytes: receiveBufferBytes)
    } else {
        try LinkMonitor()
    }
    emit("INITIAL \(list(monitor.addresses))")
    if let pause { sleep(pause) }
    while access(stopFile, F_OK) != 0 {
        var descriptor = pollfd(fd: monitor.descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, 100)
        let events = try monitor.drainEvents()
        for event in events {
            switch event {
            case .addressesLost(let addresses): emit("LOST \(list(addresses))")
            case .addressesAvailable(let addresses): emit("AVAILABLE \(list(addresses))")
            case .routesAdded(let families): emit("ROUTES \(families.map(\.description).joined(separator: " "))")
            }
        }
        if !events.isEmpty { emit("STATE \(list(monitor.addresses))") }
    }
    emit("STATE \(list(monitor.addresses))")
    emit("RESYNCS \(monitor.resynchronizations)")
}

func rules(_ arguments: ArraySlice<String>) throws {
    var changes = Array(arguments)
    var conntrack: ConntrackShifts?
    if changes.first == "--shifts" {
        changes.removeFirst()
        let shifts = try ConntrackShifts()
        try shifts.checkAvailable()
        conntrack = shifts
    }
    let installer = try NftablesInstaller(logger: Logger(label: "rackd-kernel-probe"), conntrack: conntrack)
    if changes.first == "--install" {
        changes.removeFirst()
        try installer.install(queueNumber: 3939, firewallMark: 0x1000_0000, preference: .auto)
    }
    let parsed = changes.map { text -> RuleChange in
        if text.first == "~" || text.first == "^" {
            let parts = text.dropFirst().split(separator: "=")
            let ends = parts.first?.split(separator: ",").map(String.init) ?? []
            let offsets = parts.count == 2 ? parts[1].split(separator: "/").compactMap { UInt32($0) } : []
            guard ends.count == 2, offsets.count == 2 else { fail("not a change: \(text) (see rackd-kernel-probe --help)") }
            let shift = KernelShift(flow: FlowKey(local: endpoint(ends[0]), remote: endpoint(ends[1])),
                                    localOffset: TCPSequenceOffset(rawValue: offsets[0]),
                                    peerOffset: TCPSequenceOffset(rawValue: offsets[1]))
            return text.first == "~" ? .shift(shift) : .stopShifting(shift)
        }
        let flows = text.dropFirst().split(separator: "=").map { flow -> FlowKey in
            let parts = flow.split(separator: ",").map(String.init)
            guard parts.count == 2 else { fail("not a change: \(text) (see rackd-kernel-probe --help)") }
            return FlowKey(local: endpoint(parts[0]), remote: endpoint(parts[1]))
        }
        switch (text.first, flows.count) {
        case ("+", 1): return .manage(flows[0])
        case ("-", 1): return .release(flows[0])
        case (">", 2): return .rewrite(KernelRewrite(socket: flows[0], wire: flows[1]))
        case ("<", 2): return .stopRewriting(KernelRewrite(socket: flows[0], wire: flows[1]))
        default: fail("not a change: \(text) (see rackd-kernel-probe --help)")
        }
    }
    for (change, error) in installer.apply(parsed) { emit("FAILED \(change) \(error)") }
    emit("APPLIED \(parsed.count)")
}

/// A JSON string literal.
func json(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case _ where scalar.value < 0x20:
            let hex = String(scalar.value, radix: 16)
            out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

func rocksProbe(_ arguments: ArraySlice<String>) {
    var arguments = arguments
    var source: IPAddress?
    var mark = Configuration().firewallMark
    var readTimeout = RocksSettings().probeReadTimeout
    while let option = arguments.first, option.hasPrefix("--") {
        arguments.removeFirst()
        guard let value = arguments.popFirst() else { fail("\(option) needs a value") }
        switch option {
        case "--source":
            guard let address = IPAddress(parsing: value) else { fail("not an address: \(value)") }
            source = address
        case "--mark":
            guard let parsed = value.hasPrefix("0x") ? UInt32(value.dropFirst(2), radix: 16) : UInt32(value) else {
                fail("not a mark: \(value)")
            }
            mark = parsed
        case "--read-timeout":
            guard let milliseconds = Int64(value) else { fail("not milliseconds: \(value)") }
            readTimeout = .milliseconds(milliseconds)
        default:
            fail("unknown option \(option)")
        }
    }
    guard arguments.count == 1, let text = arguments.first else { fail("rocks-probe takes one ADDR:PORT") }
    let destination = endpoint(text)
    let any: IPAddress = destination.address.isIPv4 ? .v4(IPv4Address(rawValue: 0)) : .v6(IPv6Address(high: 0, low: 0))
    let request = RocksProbeRequest(source: source ?? any, destination: destination, readTimeout: readTimeout)
    var logger = Logger(label: "rackd-kernel-probe")
    logger.logLevel = .critical
    let prober = RocksProber(firewallMark: mark, logger: logger)
    prober.start(request, now: MonotonicClock.now())
    while true {
        var fds = prober.pollDescriptors
        let timeout = prober.nextDeadline.map { deadline -> CInt in
            let now = MonotonicClock.now()
            return deadline <= now ? 0 : CInt((deadline.nanoseconds - now.nanoseconds + 999_999) / 1_000_000)
        } ?? 1000
        _ = poll(&fds, nfds_t(fds.count), timeout)
        guard let completion = prober.service(fds, now: MonotonicClock.now()).first else { continue }
        var fields = ["\"destination\":\(json("\(completion.request.destination)"))"]
        if let local = completion.local { fields.append("\"local\":\(json("\(local)"))") }
        switch completion.outcome {
        case .rock:
            fields.append("\"outcome\":\"rock\"")
        case .notRock(let reason):
            fields.append("\"outcome\":\"not-rock\"")
            fields.append("\"reason\":\(json(reason))")
        }
        fields.append("\"bytes_received\":\(completion.bytesReceived)")
        fields.append("\"elapsed_ms\":\(milliseconds(completion.duration))")
        emit("{" + fields.joined(separator: ",") + "}")
        return
    }
}

func rocksSockets(heartbeatPort: UInt16, reconnectionPort: UInt16, stopFile: String) throws(SystemError) {
    let heartbeat = try RocksHeartbeatSocket(port: heartbeatPort)
    let reconnection = try RocksReconnectionSocket(port: reconnectionPort)
    emit("BOUND heartbeat=\(heartbeat.port) reconnection=\(reconnection.port)")
    while access(stopFile, F_OK) != 0 {
        var descriptor = pollfd(fd: heartbeat.descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, 100)
        var sources: [TCPEndpoint] = []
        _ = try heartbeat.receive { payload, source in
            emit("DATAGRAM \(source) \(payload.map { String($0, radix: 16) }.map { $0.count == 1 ? "0" + $0 : $0 }.joined())")
            sources.append(source)
        }
        for source in sources {
            try heartbeat.send(Datagram(destination: source, payload: Array("x".utf8)))
            emit("SENT \(source)")
        }
    }
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "sockets": try sockets()
    case "sockets-of": try sockets(of: arguments.dropFirst(2))
    case "sockets-cost": try socketsCost(rounds: arguments.count > 2 ? Int(arguments[2]) ?? 10 : 10)
    case "rules": try rules(arguments.dropFirst(2))
    case "rocks-probe": rocksProbe(arguments.dropFirst(2))
    case "rocks-sockets" where arguments.count == 5:
        guard let heartbeat = UInt16(arguments[2]), let reconnection = UInt16(arguments[3]) else { fail("ports are 0 to 65535") }
        try rocksSockets(heartbeatPort: heartbeat, reconnectionPort: reconnection, stopFile: arguments[4])
    case "links" where arguments.count >= 3:
        try links(
            stopFile: arguments[2], receiveBufferBytes: arguments.count > 3 ? Int(arguments[3]) : nil,
            pause: arguments.count > 4 ? UInt32(arguments[4]) : nil)
    default:
        fail("usage: rackd-kernel-probe sockets | sockets-of LOCAL REMOTE... | links STOPFILE [RCVBUF [PAUSE]]"
             + " | rules [--shifts] [--install] CHANGE... | rocks-probe [--source ADDR] [--mark MARK] [--read-timeout MS] ADDR:PORT"
             + " | rocks-sockets HEARTBEAT_PORT RECONNECTION_PORT STOPFILE")
    }
} catch {
    fail("\(error)")
}
