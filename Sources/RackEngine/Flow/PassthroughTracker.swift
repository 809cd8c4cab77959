// rackd — pass-through mode: queue every packet of every new connection, change nothing.
//
// It exists to measure the queue and prove the data path loses nothing: bench/throughput measures it,
// and integration-tests/test_passthrough_*.sh send 100 MiB each way through it. A flow is managed from
// its first SYN until both FINs or a RST are seen, or until it has been idle for `idleTimeout`; the
// table is bounded so no traffic pattern can grow it without limit.

/// Tracks the flows that pass-through mode manages.
public struct PassthroughTracker: Sendable {
    private struct Flow {
        var lastSeen: EngineInstant
        var finFromLocal = false
        var finFromRemote = false
    }

    public var maximumFlows: Int
    public var idleTimeout: Duration
    private var flows: [FlowKey: Flow] = [:]
    /// Idle flows are swept at most this often, so finding the next deadline costs nothing per packet.
    private static let sweepInterval: Duration = .seconds(30)
    private var nextSweep: EngineInstant? = nil

    public init(maximumFlows: Int = 65_536, idleTimeout: Duration = .seconds(3600)) {
        self.maximumFlows = maximumFlows
        self.idleTimeout = idleTimeout
    }

    public var flowCount: Int { flows.count }

    /// Handles one queued TCP segment of `key`.
    mutating func handleSegment(_ key: FlowKey, flags: TCPFlags, direction: PacketDirection, now: EngineInstant)
        -> EngineOutput
    {
        var output = EngineOutput()
        guard var flow = flows[key] else {
            // Only a SYN starts managing; a stray packet of an unknown flow is not ours.
            guard flags.contains(.syn), !flags.contains(.rst) else { return output }
            guard flows.count < maximumFlows else {
                output.events.append(.flowTableFull(key))
                return output
            }
            flows[key] = Flow(lastSeen: now)
            if nextSweep == nil { nextSweep = now + Self.sweepInterval }
            output.ruleChanges.append(.manage(key))
            output.events.append(.flowManaged(key, reason: "pass-through"))
            return output
        }
        flow.lastSeen = now
        if flags.contains(.fin) {
            if direction == .outbound { flow.finFromLocal = true } else { flow.finFromRemote = true }
        }
        if flags.contains(.rst) || (flow.finFromLocal && flow.finFromRemote) {
            flows[key] = nil
            output.ruleChanges.append(.release(key))
            output.events.append(.flowReleased(key, reason: flags.contains(.rst) ? "reset" : "closed"))
        } else {
            flows[key] = flow
        }
        return output
    }

    /// Releases flows idle for longer than `idleTimeout`.
    mutating func handleTimeout(now: EngineInstant) -> EngineOutput {
        var output = EngineOutput()
        guard let due = nextSweep, now >= due else { return output }
        nextSweep = flows.isEmpty ? nil : now + Self.sweepInterval
        for (key, flow) in flows where now.duration(since: flow.lastSeen) >= idleTimeout {
            flows[key] = nil
            output.ruleChanges.append(.release(key))
            output.events.append(.flowReleased(key, reason: "idle"))
        }
        return output
    }

    /// When idle flows are next swept.
    var nextDeadline: EngineInstant? { nextSweep }
}
