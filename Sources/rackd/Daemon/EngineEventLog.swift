// rackd — turns engine events into log lines: a short fixed message, details in metadata.

import Logging
import RackEngine

extension Logger {
    func log(_ event: EngineEvent) {
        switch event {
        case .flowManaged(let flow, let reason):
            debug("flow managed", metadata: ["flow.id": "\(flow)", "flow.reason": "\(reason)"])
        case .flowReleased(let flow, let reason):
            debug("flow released", metadata: ["flow.id": "\(flow)", "flow.reason": "\(reason)"])
        case .unparsablePacket(let reason):
            debug("queued packet not parsable; accepted unchanged", metadata: ["packet.error": "\(reason)"])
        case .flowTableFull(let flow):
            warning("flow table full; flow left to plain TCP", metadata: ["flow.id": "\(flow)"])
        }
    }
}
