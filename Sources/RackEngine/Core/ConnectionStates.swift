// rackd — the states of a managed connection and what each carries. A state is built from its
// predecessor, so the allowed transitions are written into the initializers.

enum ConnectionState: Codable {
    /// The peer's protocol is setting the connection up (a rackd peer: the key exchange). Nothing of the
    /// flow is queued.
    case establishing(Establishing)
    /// Nothing is queued (unless the connection moved); liveness comes from the peer's protocol.
    case healthy(Healthy)
    /// Healthy, but quiet for longer than a probe takes to be answered.
    case suspect(Healthy)
    /// The path failed, or the operator holds the connection: the local socket is held with a zero window
    /// and every packet is queued. A hold is out of line (`indirect`): a healthy connection, the common
    /// one, would otherwise carry its size (docs/architecture.md, "Liveness at scale").
    indirect case suspended(Hold)
    /// Still held; this host has proven itself to the peer and waits for the peer's confirmation.
    indirect case resuming(Hold)
    /// The local socket is closing and the connection moved: its last packets are still mapped until the
    /// socket is gone. Nothing else happens to it. For a rackd peer, from TIME_WAIT (until then its last
    /// bytes may need a resumption); for a rock, from LAST_ACK, CLOSING or TIME_WAIT.
    case closing(Closing)

    var phase: ConnectionPhase {
        switch self {
        case .establishing: .keyExchange
        case .healthy: .healthy
        case .suspect: .suspect
        case .suspended: .suspended
        case .resuming: .resuming
        case .closing: .closing
        }
    }
}

/// The peer's protocol is setting up.
struct Establishing: Codable {
    let since: EngineInstant
}

/// Working: nothing held.
struct Healthy: Codable {
    /// When the connection became healthy, or last resumed: failure detection waits a full timeout
    /// after it.
    var since: EngineInstant

    init(since: EngineInstant) {
        self.since = since
    }

    /// The peer's protocol finished setting up.
    init(_ previous: Establishing, now: EngineInstant) {
        since = now
    }

    /// A suspension was lifted.
    init(resumedFrom previous: Hold, now: EngineInstant) {
        since = now
    }
}

/// Who keeps a connection suspended.
enum Holder: Hashable, Codable {
    /// The path failed; the peer's protocol tries to resume on its schedule.
    case outage
    /// `rackctl suspend` (or the sleep hook): no resumption is attempted or answered until `rackctl
    /// resume`, whatever the path does.
    case `operator`
}

/// A suspension: the local socket is held with a zero window.
struct Hold: Codable {
    let since: EngineInstant
    let reason: String
    var holder: Holder
    /// The local socket's positions; nil until a snapshot taken after queueing began has arrived (from
    /// then on no packet of the peer reaches the socket, so they cannot move).
    var positions: SequenceState?
    /// The local socket's latest segment at snd_una, replayed to the peer on resumption so the kernel's
    /// backed-off retransmission timer need not be waited for.
    var stash: TCPSegmentRepr?
    /// The local socket's latest timestamps (value, echo), echoed in the ACKs rackd answers it with.
    var timestamps: HeldTimestamps?
    /// When the peer's protocol next tries to resume (unless the operator holds the connection).
    var nextAttemptAt: EngineInstant
    /// When the attempts' backoff started (`ResumptionSchedule`): the hold's start, or the last link,
    /// address or route event, or `rackctl resume`. Nil: `since`.
    var scheduleStart: EngineInstant?
    /// When the last attempt went out; nil before the first.
    var lastAttemptAt: EngineInstant?
    /// The attempts that events brought forward lately, bounded by `ResumptionSchedule.eventRetries`.
    var eventRetries: EventRetries?

    /// A healthy (or suspect) connection fails.
    init(failing previous: Healthy, reason: String, now: EngineInstant) {
        since = now
        self.reason = reason
        holder = .outage
        nextAttemptAt = now
    }
}

/// Attempts brought forward by events within one window of `ResumptionSchedule.eventRetryWindow`.
struct EventRetries: Codable, Equatable {
    var windowStart: EngineInstant
    var count: Int
    /// The next attempt is to be followed up `ResumptionSchedule.followUpDelay` later.
    var followUp: Bool
}

/// The local socket's latest timestamp option: its value and the echo of the peer's.
struct HeldTimestamps: Codable {
    var value: UInt32
    var echo: UInt32
}

/// A moved connection whose socket is closing.
struct Closing: Codable {
    let since: EngineInstant

    init(_ previous: Healthy, now: EngineInstant) {
        since = now
    }
}
