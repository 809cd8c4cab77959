// rackd — the limits on suspended connections (`[limits]` in rackd.conf, docs/configuration.md): past a
// limit the oldest suspended connection (never the one just suspended) is closed, its socket reset so the
// application learns at once. Counting costs nothing per input: the table keeps the suspended
// connections by peer; only a connection over a limit sorts anything.

extension ConnectionCore {
    mutating func enforceSuspensionLimits(newest: UInt64, now: EngineInstant, into output: inout EngineOutput) {
        guard let peer = table[newest]?.socketFlow.remote.address else { return }
        let perPeer = configuration.maximumSuspendedPerPeer
        let total = configuration.maximumSuspendedTotal
        let samePeer = table.suspendedByPeer[peer] ?? []
        guard samePeer.count > perPeer || table.suspendedCount > total else { return }
        // Oldest suspension first; among equals, the older connection.
        func older(_ a: UInt64, _ b: UInt64) -> Bool {
            (table[a]?.hold?.since ?? now, a) < (table[b]?.hold?.since ?? now, b)
        }
        var victims: [UInt64] = []
        if samePeer.count > perPeer {
            victims += samePeer.filter { $0 != newest }.sorted(by: older).prefix(samePeer.count - perPeer)
        }
        let remaining = table.suspendedCount - victims.count
        if remaining > total {
            let chosen = Set(victims)
            let everySuspended = table.suspendedByPeer.values.joined()
            victims += everySuspended.filter { $0 != newest && !chosen.contains($0) }.sorted(by: older)
                .prefix(remaining - total)
        }
        for victim in victims {
            guard let connection = table[victim] else { continue }
            let limit = samePeer.contains(victim) && samePeer.count > perPeer
                ? "\(perPeer) suspended connections to \(peer)"
                : "\(total) suspended connections in all"
            carryOut(connection.closeCleanly(reason: "limit of \(limit) reached; closed the oldest"), of: victim,
                     now: now, into: &output)
        }
    }
}
