import RackControl
import Testing

@Suite struct StatusFormatTests {
    static let report = StatusReport(
        daemon: DaemonReport(
            version: "0.1.0", pid: 42, mode: "racks", rules: "compat", uptimeSeconds: 3725,
            queue: QueueReport(number: 3939, received: 10, accepted: 7, modified: 1, dropped: 2),
            connectionsReleased: 3, fallbacks: 1, resumptions: 4),
        connections: [
            ConnectionReport(
                id: 7, local: "10.1.0.2:40000", peer: "10.2.0.2:22", wireLocal: "10.3.0.2:40000",
                wirePeer: "10.2.0.2:22", rewrittenBy: "rackd", peerKind: "rackd", role: "client", state: "suspended", heldByOperator: true,
                lastHeardSecondsAgo: 75.5, suspendedSince: "2026-11-21T15:22:21Z", suspendedSeconds: 72.25,
                bytesHeld: 130_696, resumptions: 2, keySuite: "x25519-hkdf-sha256/hmac-sha256-128")
        ])

    /// The documented field names (docs/control.md): a rename here breaks scripts.
    @Test func jsonUsesTheDocumentedNames() throws {
        let json = String(decoding: try ControlCoding.line(Self.report), as: UTF8.self)
        for key in ["\"format\":1", "\"connections_released\":3", "\"uptime_seconds\":3725", "\"held_by_operator\":true",
                    "\"last_heard_seconds_ago\":75.5", "\"suspended_since\":\"2026-11-21T15:22:21Z\"",
                    "\"bytes_held\":130696", "\"key_suite\"", "\"peer_kind\":\"rackd\"", "\"wire_local\":\"10.3.0.2:40000\"", "\"rewritten_by\":\"rackd\"",
                    "\"queue\":{\"accepted\":7,\"dropped\":2,\"modified\":1,\"number\":3939,\"received\":10}"] {
            #expect(json.contains(key), "missing \(key) in \(json)")
        }
        #expect(json.hasSuffix("\n") && json.filter { $0 == "\n" }.count == 1)
    }

    @Test func jsonRoundTrips() throws {
        let line = try ControlCoding.line(ControlResponse(ok: true, status: Self.report))
        let decoded = try ControlCoding.decode(ControlResponse.self, from: line.dropLast())
        #expect(decoded.status == Self.report)
    }

    @Test func requestsRoundTrip() throws {
        for request in [ControlRequest.status, .suspend(id: nil), .resume(id: 9)] {
            let line = try ControlCoding.line(request)
            #expect(try ControlCoding.decode(ControlRequest.self, from: line.dropLast()) == request)
        }
        #expect(String(decoding: try ControlCoding.line(ControlRequest.suspend(id: nil)), as: UTF8.self)
            == "{\"all\":true,\"command\":\"suspend\"}\n")
    }

    @Test func tableShowsOneRowPerConnectionAndTheSummary() {
        let lines = StatusTable.render(Self.report).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].hasPrefix("ID  LOCAL"))
        #expect(lines[1].contains("10.1.0.2:40000 via 10.3.0.2:40000"))
        #expect(lines[1].contains("suspended (held) (mapped by rackd)"))
        #expect(lines[1].contains("1m15s ago"))
        #expect(lines[1].contains("127.6 KiB"))
        #expect(lines[3] == "rackd 0.1.0, pid 42, up 1h02m, mode racks, rules compat (xtables NFQUEUE target)")
        #expect(lines[4] == "queue 3939: 10 received, 7 accepted, 1 modified, 2 dropped")
        #expect(lines[5] == "connections: 1 managed (1 suspended), 3 released, 1 left to plain TCP, 4 resumptions")
    }

    /// `connections[].packets` is optional: absent from an older rackd's JSON (no column value, no count);
    /// present, the table shows it in PACKETS and counts the queued connections in the summary.
    @Test func packetRouteIsAnOptionalAddition() throws {
        var report = Self.report
        #expect(!String(decoding: try ControlCoding.line(report), as: UTF8.self).contains("\"packets\""))
        report.connections[0].packets = "queued"
        var second = report.connections[0]
        second.id = 8
        second.packets = "kernel"
        report.connections.append(second)
        #expect(String(decoding: try ControlCoding.line(report), as: UTF8.self).contains("\"packets\":\"queued\""))
        let lines = StatusTable.render(report).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[0].contains("  PACKETS  HEARD"))
        #expect(lines[1].contains("(mapped by rackd)  queued "))
        #expect(lines[2].contains("(mapped by rackd)  kernel "))
        #expect(lines[6] == "connections: 2 managed (2 suspended, 1 queued), 3 released, 1 left to plain TCP, 4 resumptions")
        let older = StatusTable.render(Self.report).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(older[1].contains("(mapped by rackd)  -  "))
    }

    /// `daemon.ordinary_destinations` is optional: absent from an older rackd's JSON, and its table line too.
    @Test func ordinaryDestinationsAreAnOptionalAddition() throws {
        var report = Self.report
        report.daemon.ordinaryDestinations = 5
        #expect(String(decoding: try ControlCoding.line(report), as: UTF8.self).contains("\"ordinary_destinations\":5"))
        let lines = StatusTable.render(report).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[6] == "ordinary peers: 5 destinations cached (their connections are not queued)")
        #expect(!StatusTable.render(Self.report).contains("ordinary peers"))
        let older = try ControlCoding.line(ControlResponse(ok: true, status: Self.report))
        #expect(try ControlCoding.decode(ControlResponse.self, from: older.dropLast()).status?.daemon.ordinaryDestinations == nil)
    }

    /// `daemon.queue.held` is optional: absent from an older rackd's JSON, which still decodes, and shown in
    /// the table only when packets were held.
    @Test func heldPacketsAreAnOptionalAddition() throws {
        var report = Self.report
        report.daemon.queue.held = 3
        let json = String(decoding: try ControlCoding.line(report), as: UTF8.self)
        #expect(json.contains("\"queue\":{\"accepted\":7,\"dropped\":2,\"held\":3,\"modified\":1,\"number\":3939,\"received\":10}"))
        #expect(StatusTable.render(report).contains("queue 3939: 10 received, 7 accepted, 1 modified, 2 dropped, 3 held\n"))
        report.daemon.queue.held = 0
        #expect(StatusTable.render(report).contains("queue 3939: 10 received, 7 accepted, 1 modified, 2 dropped\n"))
        let older = try ControlCoding.line(ControlResponse(ok: true, status: Self.report))
        #expect(!String(decoding: older, as: UTF8.self).contains("\"held\""))
        let decoded = try ControlCoding.decode(ControlResponse.self, from: older.dropLast())
        #expect(decoded.status?.daemon.queue.held == nil)
    }

    @Test func durationsAndSizesReadNaturally() {
        #expect(StatusTable.duration(0.42) == "0.4s")
        #expect(StatusTable.duration(42) == "42s")
        #expect(StatusTable.duration(192) == "3m12s")
        #expect(StatusTable.duration(2 * 86400 + 3 * 3600) == "2d03h")
        #expect(StatusTable.bytes(512) == "512 B")
        #expect(StatusTable.bytes(4 << 20) == "4.0 MiB")
    }
}
