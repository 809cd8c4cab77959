// rackd — one connection between two rackds, and the states it moves through.
//
//     key exchange ──► healthy ◄──────────────┐
//                         │ failure            │ authenticated resumption
//                         ▼                    │
//                     suspended ───────────────┘
//
// Each state carries its own data. The transitions live in the `RacksEngine` extensions named for them:
// +Handshake, +KeyExchange, +Heartbeat, +Suspension, +Resumption.

/// Which end of the connection this host is.
public enum ConnectionRole: String, Sendable {
    /// This host sent the SYN.
    case client
    /// This host answered with the SYN-ACK.
    case server
}

/// The state of a managed connection, as status shows it.
public enum ConnectionPhase: String, Sendable, CaseIterable {
    case keyExchange = "key-exchange"
    case healthy
    /// Healthy, but probes are going unanswered.
    case suspect
    case suspended
    /// Suspended, and the peer has proven itself; waiting for it to confirm.
    case resuming
}

/// The local socket's send and receive positions.
struct SequenceState: Equatable {
    /// The oldest byte the peer has not acknowledged (snd_una).
    var sendUnacknowledged: TCPSequenceNumber
    /// The next byte the local socket expects from the peer (rcv_nxt).
    var receiveNext: TCPSequenceNumber
}

struct RacksConnection {
    let id: UInt64
    let flow: FlowKey
    let role: ConnectionRole
    /// The ISN of the local socket and of the peer.
    let localISN: TCPSequenceNumber
    let peerISN: TCPSequenceNumber
    /// What each side's handshake segment announced.
    let localOptions: HandshakeOptions
    let peerOptions: HandshakeOptions
    /// Our ephemeral public key (not secret), kept to answer a peer that missed our last key message.
    let localPublicKey: [UInt8]
    var state: State
    /// The last time the peer was known to be alive: an ACK seen by the socket or a rackd message.
    var lastHeard: EngineInstant
    var resumptions = 0
    /// The newest snapshot of the local socket.
    var socket: SocketSnapshot?
    /// Set when a decision needs a snapshot taken after the flow started being queued.
    var needsFreshSnapshot = false
    /// Set once the keys are agreed: the name a roaming peer uses for this connection.
    var connectionID: [UInt8]?
    /// Set after a roam: the wire carries another tuple, and every packet is rewritten.
    var path: RoamedPath?
    /// Responder side of a roam: handshakes from the peer's new address, answered, awaiting its confirm.
    var roamOffers: [RoamOffer] = []
    /// Roaming side, after the roam verified: the confirm, sent again until the peer is heard on the new
    /// path (a lost confirm would leave the peer dropping everything).
    var confirmRepeat: ConfirmRepeat?

    enum State {
        case keyExchange(KeyExchange)
        case healthy(Healthy)
        case suspended(Suspended)
    }

    /// Both ends send their public key until each knows the other has it.
    struct KeyExchange {
        let ephemeral: KeySchedule.EphemeralKey
        var key: ConnectionKey?
        var peerHasOurKey = false
        var sends = 0
        var nextSendAt: EngineInstant

        var isComplete: Bool { key != nil && peerHasOurKey }
    }

    /// Keys are agreed and nothing is queued; liveness comes from socket snapshots.
    struct Healthy {
        let key: ConnectionKey
        /// When the connection became healthy, or last resumed: failure detection waits a full
        /// timeout after it.
        var since: EngineInstant
        var lastProbeAt: EngineInstant?
        var unansweredProbes = 0
        /// Quiet for longer than a probe takes to be answered.
        var suspect = false
    }

    /// The path failed; the local socket is held with a zero window and every packet is queued.
    struct Suspended {
        let key: ConnectionKey
        let since: EngineInstant
        let reason: String
        /// Known once a snapshot taken after queueing began has arrived.
        var sequences: SequenceState?
        /// The local socket's latest segment at snd_una, replayed to the peer on resumption so the
        /// kernel's backed-off retransmission timer need not be waited for.
        var stash: TCPSegmentRepr?
        /// The local socket's latest timestamps (value, echo), echoed in the ACKs rackd answers it with.
        var timestamps: (value: UInt32, echo: UInt32)?
        /// Nonces of our recent challenges, newest last; a response to any of them is accepted.
        var challengeNonces: [[UInt8]] = []
        var nextChallengeAt: EngineInstant
        /// (their challenge nonce, our response nonce) pairs we answered, awaiting their confirm.
        var answeredChallenges: [(challenge: [UInt8], response: [UInt8])] = []
        /// Set while this host resumes from a new local address.
        var roam: RoamAttempt?
        /// Suspended by the operator (`rackctl suspend`, the sleep hook): no resumption is attempted or
        /// answered until `rackctl resume`, whatever the path does.
        var heldByOperator = false
    }

    /// A roam handshake this host answered: the peer's nonce and ISNs, our nonce and ISN.
    struct RoamOffer {
        let wire: FlowKey
        let transcript: RoamTranscript
        /// The peer's ISN as it arrived here, against the one it chose: the shift a middlebox applied.
        let peerSequenceOffset: TCPSequenceOffset
        let createdAt: EngineInstant
    }

    /// A roam this host started from a new local address.
    struct RoamAttempt {
        let wire: FlowKey
        let isn: TCPSequenceNumber
        /// Nonces of the recent SYNs, newest last; an answer to any of them is accepted.
        var nonces: [[UInt8]]
    }

    struct ConfirmRepeat {
        let segment: TCPSegmentRepr
        var nextAt: EngineInstant
        var remaining: Int
    }

    /// The tuple the wire carries now, from this host's point of view.
    var wireFlow: FlowKey { path?.wire ?? flow }

    var isSuspended: Bool {
        if case .suspended = state { return true }
        return false
    }

    var phase: ConnectionPhase {
        switch state {
        case .keyExchange: .keyExchange
        case .healthy(let healthy): healthy.suspect ? .suspect : .healthy
        case .suspended(let suspended): suspended.answeredChallenges.isEmpty ? .suspended : .resuming
        }
    }

    var key: ConnectionKey? {
        switch state {
        case .keyExchange(let exchange): exchange.key
        case .healthy(let healthy): healthy.key
        case .suspended(let suspended): suspended.key
        }
    }

    /// The local socket's positions, from a snapshot and the ISNs. For the active opener the kernel's
    /// bytes_acked counts the SYN; for the passive opener it does not (measured on Linux 6.18).
    func sequences(from snapshot: SocketSnapshot) -> SequenceState {
        let synCounted: UInt32 = role == .client ? 0 : 1
        return SequenceState(
            sendUnacknowledged: localISN + UInt32(truncatingIfNeeded: snapshot.bytesAcked) + synCounted,
            receiveNext: peerISN + 1 + UInt32(truncatingIfNeeded: snapshot.bytesReceived))
    }
}
