// rackd — what the engine asks the I/O layer to do. Outputs are values (DESIGN §3).

/// The verdict on one queued packet.
public enum PacketVerdict: Equatable, Sendable {
    /// Let it through unchanged.
    case accept
    /// Let it through with the bytes the engine rewrote in place, now `length` bytes long.
    case acceptModified(length: Int)
    /// Discard it.
    case drop
}

/// A change to the set of flows whose every packet is queued.
public enum RuleChange: Equatable, Sendable {
    /// Start queueing every packet of the flow.
    case manage(FlowKey)
    /// Stop queueing the flow's packets.
    case release(FlowKey)
}

/// Something worth a log line or a counter.
public enum EngineEvent: Equatable, Sendable {
    case flowManaged(FlowKey, reason: String)
    case flowReleased(FlowKey, reason: String)
    /// A queued packet that could not be parsed; it was accepted unchanged.
    case unparsablePacket(reason: String)
    /// The flow table is full; the flow was left alone.
    case flowTableFull(FlowKey)
}

/// Everything that follows from one input.
public struct EngineOutput: Equatable, Sendable {
    public var verdict: PacketVerdict
    public var ruleChanges: [RuleChange]
    /// Packets to inject, after the verdict on the packet that caused them.
    public var transmits: [[UInt8]]
    public var events: [EngineEvent]

    public init(verdict: PacketVerdict = .accept, ruleChanges: [RuleChange] = [], transmits: [[UInt8]] = [],
                events: [EngineEvent] = []) {
        self.verdict = verdict
        self.ruleChanges = ruleChanges
        self.transmits = transmits
        self.events = events
    }
}
