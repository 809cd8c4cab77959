// rackd — `rackctl status` for people: a table of the managed connections, then a summary.

public enum StatusTable {
    public static func render(_ report: StatusReport) -> String {
        var lines: [String] = []
        if report.connections.isEmpty {
            lines.append("No managed connections.")
        } else {
            let header = ["ID", "LOCAL", "PEER", "KIND", "STATE", "PACKETS", "HEARD", "SUSPENDED", "HELD", "RESUMED", "SUITE"]
            let rows = report.connections.map(row)
            lines += alignedColumns([header] + rows)
        }
        lines.append("")
        lines += summary(report)
        return lines.joined(separator: "\n") + "\n"
    }

    static func row(_ connection: ConnectionReport) -> [String] {
        var state = connection.state
        if connection.heldByOperator { state += " (held)" }
        var peer = connection.peer
        if let wirePeer = connection.wirePeer, wirePeer != connection.peer { peer += " via \(wirePeer)" }
        var local = connection.local
        if let wireLocal = connection.wireLocal, wireLocal != connection.local { local += " via \(wireLocal)" }
        if let rewriter = connection.rewrittenBy { state += " (mapped by \(rewriter))" }
        return [
            String(connection.id), local, peer, connection.peerKind, state, connection.packets ?? "-",
            duration(connection.lastHeardSecondsAgo) + " ago",
            connection.suspendedSeconds.map(duration) ?? "-",
            connection.bytesHeld.map(bytes) ?? "-",
            String(connection.resumptions), connection.keySuite,
        ]
    }

    static func summary(_ report: StatusReport) -> [String] {
        let daemon = report.daemon
        let rules = daemon.rules == "native" ? "native (nftables queue statement)"
            : daemon.rules == "compat" ? "compat (xtables NFQUEUE target)" : daemon.rules
        let suspended = report.connections.filter { $0.state == "suspended" || $0.state == "resuming" }.count
        // (An older rackd reports no packet route: no count then.)
        let queued = report.connections.contains { $0.packets != nil }
            ? ", \(report.connections.filter { $0.packets == "queued" }.count) queued" : ""
        let queue = daemon.queue
        return [
            "rackd \(daemon.version), pid \(daemon.pid), up \(duration(daemon.uptimeSeconds)), mode \(daemon.mode), rules \(rules)",
            "queue \(queue.number): \(queue.received) received, \(queue.accepted) accepted, \(queue.modified) modified, \(queue.dropped) dropped"
                + (queue.held.map { $0 > 0 ? ", \($0) held" : "" } ?? ""),
            "connections: \(report.connections.count) managed (\(suspended) suspended\(queued)), \(daemon.connectionsReleased) released, "
                + "\(daemon.fallbacks) left to plain TCP, \(daemon.resumptions) resumptions",
        ] + (daemon.ordinaryDestinations.map {
            ["ordinary peers: \($0) destinations cached (their connections are not queued)"]
        } ?? [])
    }

    /// Pads every column but the last to its widest cell.
    static func alignedColumns(_ rows: [[String]]) -> [String] {
        guard let columns = rows.first?.count else { return [] }
        let widths = (0..<columns).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == columns - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }
    }

    /// "0.4s", "42s", "3m12s", "5h07m", "2d03h".
    public static func duration(_ seconds: Double) -> String {
        let seconds = max(0, seconds)
        if seconds < 10 { return "\(Double(Int(seconds * 10)) / 10)s" }
        let whole = Int(seconds)
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return "\(whole / 60)m\(twoDigits(whole % 60))s" }
        if whole < 86400 { return "\(whole / 3600)h\(twoDigits(whole % 3600 / 60))m" }
        return "\(whole / 86400)d\(twoDigits(whole % 86400 / 3600))h"
    }

    /// "512 B", "12.3 KiB", "4.0 MiB".
    public static func bytes(_ count: UInt64) -> String {
        if count < 1024 { return "\(count) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var value = Double(count) / 1024
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return "\(Double(Int(value * 10)) / 10) \(units[unit])"
    }

    private static func twoDigits(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
