// rackd — turns engine events into log lines: a short fixed message, details in metadata, and the
// connection id, state and peer kind in every line about a connection (journald-friendly: one line per
// event; in the journal they are the fields CONN_ID, CONN_STATE and CONN_PEER_KIND, docs/systemd.md).
// The peer kind, and a rocks reconnection's state, come from `connection(id)`, the engine's O(1) lookup
// after the input; a connection that ended is no longer there, and its last line has no peer kind.

import Logging
import RackEngine

extension Logger {
    func log(_ event: EngineEvent, connection: (UInt64) -> ConnectionStatus? = { _ in nil }) {
        var logger = self
        if let id = event.connectionID, let status = connection(id) {
            logger[metadataKey: "conn.peer-kind"] = "\(status.peerKind)"
            // Its state after the whole input; events that name a state put theirs over it.
            logger[metadataKey: "conn.state"] = "\(status.phase.rawValue)"
        }
        logger.logDetails(event)
    }

    private func logDetails(_ event: EngineEvent) {
        switch event {
        case .flowManaged(let flow, let reason):
            debug("flow queued", metadata: ["flow": "\(flow)", "reason": "\(reason)"])
        case .flowReleased(let flow, let reason):
            debug("flow released", metadata: ["flow": "\(flow)", "reason": "\(reason)"])
        case .unparsablePacket(let reason):
            debug("queued packet not parsable; accepted unchanged", metadata: ["packet.error": "\(reason)"])
        case .flowTableFull(let flow):
            warning("flow table full; flow left to plain TCP", metadata: ["flow": "\(flow)"])
        case .connectionManaged(let id, let flow, let role, let peerKind):
            notice("connection managed", metadata: [
                "conn.id": "\(id)", "conn.state": "healthy", "flow": "\(flow)", "conn.role": "\(role.rawValue)",
                "conn.peer-kind": "\(peerKind)",
            ])
        case .fellBack(let flow, let reason):
            // Debug: at a higher level a laptop's journal would list every site it visited. `rackctl status`
            // counts them (`fallbacks`).
            debug("connection left to plain TCP", metadata: ["flow": "\(flow)", "reason": "\(reason)"])
        case .phaseChanged(let id, let flow, let from, let to, let reason):
            notice("connection state changed", metadata: [
                "conn.id": "\(id)", "conn.state": "\(to.rawValue)", "conn.previous": "\(from.rawValue)",
                "flow": "\(flow)", "reason": "\(reason)",
            ])
        case .resumed(let id, let flow, let after):
            notice("connection resumed", metadata: [
                "conn.id": "\(id)", "conn.state": "healthy", "flow": "\(flow)",
                "conn.suspended-ms": "\(after.components.seconds * 1000 + after.components.attoseconds / 1_000_000_000_000_000)",
            ])
        case .challengeAnswered(let id, let flow, let phase):
            debug("challenge answered", metadata: ["conn.id": "\(id)", "conn.state": "\(phase.rawValue)", "flow": "\(flow)"])
        case .resumptionRejected(let flow, let reason):
            warning("resumption rejected", metadata: ["flow": "\(flow)", "reason": "\(reason)"])
        case .roamed(let id, let flow, let phase, let wire, let offset):
            notice("connection moved to a new path", metadata: [
                "conn.id": "\(id)", "conn.state": "\(phase.rawValue)", "flow": "\(flow)", "conn.wire": "\(wire)", "conn.peer-seq-offset": "\(offset)",
            ])
        case .unknownRoamsDropped(let count):
            warning("dropped roam handshakes for no connection rackd holds (or malformed)", metadata: ["count": "\(count)"])
        case .connectionEnded(let id, let flow, let reason):
            notice("connection no longer managed", metadata: [
                "conn.id": "\(id)", "conn.state": "ended", "flow": "\(flow)", "reason": "\(reason)",
            ])
        case .kernelShiftLost(let id, let flow):
            notice("conntrack lost a shifted connection's entry; rackd maps its packets and makes the entry again",
                   metadata: ["conn.id": "\(id)", "flow": "\(flow)"])
        case .rocksReconnection(let id, let flow, let detail):
            info("rocks reconnection", metadata: ["conn.id": "\(id)", "flow": "\(flow)", "detail": "\(detail)"])
        case .rocksProbed(let destination, .rock):
            info("rocks probe: a rock", metadata: ["rocks.destination": "\(destination)"])
        case .rocksProbed(let destination, .notRock(let reason)):
            info("rocks probe: not a rock; not probed again until the negative cache expires",
                 metadata: ["rocks.destination": "\(destination)", "reason": "\(reason)"])
        }
    }
}

extension EngineEvent {
    /// The managed connection the event is about, if any.
    var connectionID: UInt64? {
        switch self {
        case .connectionManaged(let id, _, _, _), .phaseChanged(let id, _, _, _, _), .resumed(let id, _, _),
             .challengeAnswered(let id, _, _), .roamed(let id, _, _, _, _), .connectionEnded(let id, _, _),
             .rocksReconnection(let id, _, _), .kernelShiftLost(let id, _):
            id
        case .flowManaged, .flowReleased, .unparsablePacket, .flowTableFull, .fellBack, .resumptionRejected,
             .unknownRoamsDropped, .rocksProbed:
            nil
        }
    }
}
