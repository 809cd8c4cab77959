// rackd — destinations known to be ordinary peers (no rackd), whose later connections the kernel lets
// pass unqueued (docs/architecture.md, "Data path: ordinary peers").
//
// A destination is remote address and port: the SYN-ACK to a SYN that carried rackd's hello came back
// without it. The engine decides and says so in `EngineOutput.ordinary`; the daemon adds the destination
// to the kernel's `ordinary4`/`ordinary6` set with the same lifetime, and the SYN rules skip the queue for
// it until the element times out. The engine keeps its own copy with the same expiry, for status and
// for putting the elements back when the table is replaced (docs/rules-restore.md).
//
// Keyed by address and port, not address alone: the remote host's rackd may leave some of its ports to
// plain TCP (its own `[policy]`), and one address may forward ports to different hosts (a NAT's port
// forwards, a load balancer). The rocks negative cache is keyed the same way (docs/rocks-policy.md).

/// "Connections to `destination` are plain TCP for `lifetime`: stop queueing their handshakes."
public struct OrdinaryDestination: Hashable, Sendable, CustomStringConvertible {
    public var destination: TCPEndpoint
    public var lifetime: Duration

    public init(destination: TCPEndpoint, lifetime: Duration) {
        self.destination = destination
        self.lifetime = lifetime
    }

    public var description: String { "\(destination) for \(lifetime)" }
}

/// The ordinary destinations cached now, each until its expiry; bounded like every detection table.
struct OrdinaryDestinations {
    private var until: [TCPEndpoint: EngineInstant] = [:]
    private var expiry = DeadlineHeap<TCPEndpoint>()

    /// The most destinations cached at once (the kernel sets are sized to match): past it a new
    /// destination is not cached, and its connections keep paying for two queued packets.
    static let maximum = 16384

    var count: Int { until.count }
    var nextDeadline: EngineInstant? { expiry.nextDeadline }

    func contains(_ destination: TCPEndpoint) -> Bool { until[destination] != nil }

    /// Caches `destination` until `instant` (again, if it was: a kernel element that expired a little
    /// earlier than the engine's copy is put back). False when the cache is full.
    mutating func remember(_ destination: TCPEndpoint, until instant: EngineInstant) -> Bool {
        guard until[destination] != nil || until.count < Self.maximum else { return false }
        until[destination] = instant
        expiry.set(destination, to: instant)
        return true
    }

    mutating func expire(now: EngineInstant) {
        for destination in expiry.removeDue(now: now) { until[destination] = nil }
    }

    /// Every destination cached at `now`, with what is left of its lifetime, in a stable order.
    func cached(now: EngineInstant) -> [OrdinaryDestination] {
        until.compactMap { destination, instant in
            instant > now ? OrdinaryDestination(destination: destination, lifetime: instant.duration(since: now)) : nil
        }.sorted { "\($0.destination)" < "\($1.destination)" }
    }
}

extension ConnectionCore {
    /// A SYN-ACK answered our hello without one: unless rocks will probe the destination next time, its
    /// next connections need not be queued.
    mutating func noteOrdinary(_ destination: TCPEndpoint, now: EngineInstant, into output: inout EngineOutput) {
        let lifetime = configuration.ordinaryCacheLifetime
        guard lifetime > .zero, !rocksWillProbe(destination) else { return }
        guard ordinaryDestinations.remember(destination, until: now + lifetime) else { return }
        output.ordinary.append(OrdinaryDestination(destination: destination, lifetime: lifetime))
    }

    /// Whether a local SYN to `destination` would be held for a rocks probe (`holdForRocksProbe`'s rules,
    /// but for the flow's own): its SYN must reach the queue.
    func rocksWillProbe(_ destination: TCPEndpoint) -> Bool {
        guard rocks.legacyAuthentication, destination.address.isIPv4, !rocksDetection.isOrdinary(destination) else {
            return false
        }
        switch rocks.probing {
        case .off: return false
        case .listed: return rocks.lists(destination)
        case .everywhere: return rocksDetection.isNotRackd(destination)
        }
    }
}
