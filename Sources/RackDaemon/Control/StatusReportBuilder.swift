// rackd — turns the engine's view of its connections into the status report rackctl shows. Runs on the
// data-plane thread, which owns the engine.

import RackControl
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// What the daemon counts itself, for the report's summary.
struct EventTally {
    var connectionsReleased: UInt64 = 0
    var fallbacks: UInt64 = 0
    var resumptions: UInt64 = 0

    mutating func count(_ event: EngineEvent) {
        switch event {
        case .connectionEnded: connectionsReleased += 1
        case .fellBack: fallbacks += 1
        case .resumed: resumptions += 1
        default: break
        }
    }
}

struct StatusReportBuilder {
    let configuration: Configuration
    let rulesVariant: String
    let startedAt: EngineInstant

    func report(connections: [ConnectionStatus], queue: NFQueueReader.Counters, tally: EventTally,
                ordinaryDestinations: Int = 0, now: EngineInstant, wallNow: timespec) -> StatusReport {
        let daemon = DaemonReport(
            version: RackEngineVersion.string, pid: getpid(), mode: configuration.mode.rawValue, rules: rulesVariant,
            uptimeSeconds: seconds(now.duration(since: startedAt)),
            queue: QueueReport(number: configuration.queueNumber, received: UInt64(queue.received),
                               accepted: UInt64(queue.accepted), modified: UInt64(queue.modified),
                               dropped: UInt64(queue.dropped), held: UInt64(queue.held)),
            connectionsReleased: tally.connectionsReleased, fallbacks: tally.fallbacks, resumptions: tally.resumptions,
            ordinaryDestinations: UInt64(ordinaryDestinations))
        return StatusReport(daemon: daemon, connections: connections.map { connection in
            let suspendedFor = connection.suspendedSince.map { seconds(now.duration(since: $0)) }
            return ConnectionReport(
                id: connection.id, local: "\(connection.flow.local)", peer: "\(connection.flow.remote)",
                wireLocal: connection.wire.map { "\($0.local)" }, wirePeer: connection.wire.map { "\($0.remote)" },
                rewrittenBy: connection.wire == nil ? nil : connection.rewrittenByKernel ? "kernel" : "rackd",
                packets: connection.packets.rawValue,
                peerKind: connection.peerKind, role: connection.role.rawValue, state: connection.phase.rawValue,
                heldByOperator: connection.heldByOperator,
                lastHeardSecondsAgo: seconds(now.duration(since: connection.lastHeard)),
                suspendedSince: suspendedFor.map { TimeText.rfc3339UTC(secondsSinceEpoch: Int(wallNow.tv_sec) - Int($0.rounded())) },
                suspendedSeconds: suspendedFor, bytesHeld: connection.bytesHeld,
                resumptions: connection.resumptions, keySuite: connection.keySuite)
        })
    }

    private func seconds(_ duration: Duration) -> Double {
        let rounded = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return (rounded * 1000).rounded() / 1000
    }
}
