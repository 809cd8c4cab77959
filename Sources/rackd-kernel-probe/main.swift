// rackd-kernel-probe — runs one of rackd's kernel adapters alone and prints what it reports, so that the
// integration tests can check it against the kernel (integration-tests/test_sockdiag_adapter.sh,
// integration-tests/test_link_monitor_adapter.sh). Run it inside a test namespace.
//
//   rackd-kernel-probe sockets
//       every snapshot SocketDiagnostics takes, one line per socket:
//       LOCAL REMOTE STATE ACKED RECEIVED UNACKED LASTACK_MS LASTDATA_MS UID INODE
//   rackd-kernel-probe sockets-of LOCAL REMOTE [LOCAL REMOTE]...
//       snapshot(of:) for those flows, the same lines
//   rackd-kernel-probe links STOPFILE [RCVBUF [PAUSE]]
//       LinkMonitor: "INITIAL addr...", then a line per event ("LOST addr..." or "AVAILABLE addr..."), after
//       each drain that produced events "STATE addr...", and once STOPFILE exists "STATE addr..." and
//       "RESYNCS n". PAUSE seconds pass after the initial dump before the first read.
//   rackd-kernel-probe rules [--install] CHANGE...
//       NftablesInstaller: with --install, a fresh table first (queue 3939); then the CHANGEs, +LOCAL,REMOTE
//       (manage) or -LOCAL,REMOTE (release), committed as one `apply`; a line "FAILED change error" per
//       change that failed, then "APPLIED n". The table stays; `rackd cleanup` removes it.

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
            }
        }
        if !events.isEmpty { emit("STATE \(list(monitor.addresses))") }
    }
    emit("STATE \(list(monitor.addresses))")
    emit("RESYNCS \(monitor.resynchronizations)")
}

func rules(_ arguments: ArraySlice<String>) throws {
    let installer = try NftablesInstaller(logger: Logger(label: "rackd-kernel-probe"))
    var changes = Array(arguments)
    if changes.first == "--install" {
        changes.removeFirst()
        try installer.install(queueNumber: 3939, firewallMark: 0x1000_0000, preference: .auto)
    }
    let parsed = changes.map { text -> RuleChange in
        let parts = text.dropFirst().split(separator: ",").map(String.init)
        guard parts.count == 2, let sign = text.first, sign == "+" || sign == "-" else {
            fail("not a change: \(text) (+LOCAL,REMOTE or -LOCAL,REMOTE)")
        }
        let flow = FlowKey(local: endpoint(parts[0]), remote: endpoint(parts[1]))
        return sign == "+" ? .manage(flow) : .release(flow)
    }
    for (change, error) in installer.apply(parsed) { emit("FAILED \(change) \(error)") }
    emit("APPLIED \(parsed.count)")
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "sockets": try sockets()
    case "sockets-of": try sockets(of: arguments.dropFirst(2))
    case "rules": try rules(arguments.dropFirst(2))
    case "links" where arguments.count >= 3:
        try links(
            stopFile: arguments[2], receiveBufferBytes: arguments.count > 3 ? Int(arguments[3]) : nil,
            pause: arguments.count > 4 ? UInt32(arguments[4]) : nil)
    default:
        fail("usage: rackd-kernel-probe sockets | sockets-of LOCAL REMOTE... | links STOPFILE [RCVBUF [PAUSE]]"
             + " | rules [--install] CHANGE...")
    }
} catch {
    fail("\(error)")
}
