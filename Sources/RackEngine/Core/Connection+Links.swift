// rackd — local addresses came or went, or routes were added (rtnetlink). A connection whose wire address
// left is suspended at once; a held one tries again at once when an address comes, from it if its own is
// gone, and when a route of its peer's family is added (the address can come before the route to the
// peer: an attempt made in between finds no route). Events bring attempts forward within the bounds of
// Core/ResumptionSchedule.swift, and start its backoff again.

extension Connection {
    mutating func handleLinkEvent(_ event: LinkEvent, now: EngineInstant) -> ConnectionActions {
        var actions = ConnectionActions()
        let wireAddress = wireFlow.local.address
        switch (event, state) {
        case (.addressesLost(let addresses), .healthy), (.addressesLost(let addresses), .suspect):
            if addresses.contains(wireAddress) {
                suspend(reason: "local address \(wireAddress) lost", now: now, into: &actions)
            }
        case (.addressesLost(let addresses), .establishing):
            // A rocks connection's stream may already carry rackd's bytes: it cannot fall back to plain
            // TCP, and its setup limit (60 s) decides if the address does not come back.
            if addresses.contains(socketFlow.local.address), !peer.isRocks {
                actions.end = .fellBack(reason: "local address lost during key exchange")
            }
        case (.addressesAvailable(let addresses), .suspended(var hold)),
             (.addressesAvailable(let addresses), .resuming(var hold)):
            // An address of the other family gives this connection no path, and would spend the bound on
            // attempts that events bring forward before the route that does.
            if addresses.contains(where: { $0.family == wireFlow.remote.address.family }) {
                hold.pathMayHaveChanged(now: now)
                updateHold(hold)
            }
            if peer.isRocks { rocksAddressesAvailable(now: now, into: &actions) }
        case (.routesAdded(let families), .suspended(var hold)), (.routesAdded(let families), .resuming(var hold)):
            // A rock reconnects on its own timers (Connection+RocksReconnection.swift).
            guard !peer.isRocks, families.contains(wireFlow.remote.address.family) else { break }
            hold.pathMayHaveChanged(now: now)
            updateHold(hold)
        default:
            break
        }
        return actions
    }
}
