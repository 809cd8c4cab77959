// rackd — local addresses came or went (rtnetlink). A connection whose wire address left is suspended at
// once; a held one tries again at once when an address comes, from it if its own is gone.

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
        case (.addressesAvailable, .suspended(var hold)), (.addressesAvailable, .resuming(var hold)):
            hold.nextAttemptAt = now
            updateHold(hold)
            if peer.isRocks { rocksAddressesAvailable(now: now, into: &actions) }
        default:
            break
        }
        return actions
    }
}
