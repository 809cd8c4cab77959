// rackd — the engine: every decision rackd makes about a packet, with no I/O.
//
// Inputs are method calls (`handlePacket`, `handleTimeout`); outputs are `EngineOutput` values that the
// daemon carries out. Time comes in as an argument. See DESIGN §3.

/// rackd's decision-maker for all flows of one host.
public struct Engine: Sendable {
    public let configuration: Configuration
    private var passthrough = PassthroughTracker()

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// How many flows the engine is tracking.
    public var flowCount: Int { passthrough.flowCount }

    /// Decides what happens to one queued packet. `bytes` is the IP packet; the engine may rewrite it in
    /// place and say so with `.acceptModified`.
    public mutating func handlePacket(_ bytes: UnsafeMutableRawBufferPointer, direction: PacketDirection,
                                      now: EngineInstant) -> EngineOutput {
        let segment: SegmentSummary
        do {
            segment = try SegmentSummary(parsing: UnsafeRawBufferPointer(bytes))
        } catch {
            // Not ours to judge: pass it on exactly as the kernel gave it.
            return EngineOutput(events: [.unparsablePacket(reason: "\(error)")])
        }
        let key = FlowKey(source: segment.source, destination: segment.destination, direction: direction)
        switch configuration.mode {
        case .passthrough:
            return passthrough.handleSegment(key, flags: segment.flags, direction: direction, now: now)
        case .racks:
            // Detection and management of rackd peers come with the racks protocol; until then every
            // connection is left to plain TCP.
            return EngineOutput()
        }
    }

    /// Runs every timer that is due. Spurious calls do nothing.
    public mutating func handleTimeout(now: EngineInstant) -> EngineOutput {
        passthrough.handleTimeout(now: now)
    }

    /// When `handleTimeout` next has work, if ever.
    public var nextDeadline: EngineInstant? { passthrough.nextDeadline }
}
