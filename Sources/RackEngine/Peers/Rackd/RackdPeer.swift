// rackd — what the rackd protocol keeps for one connection (docs/protocol.md).

/// The rackd protocol's side of one connection: the keys, liveness probes, resumption attempts and the
/// roam handshakes under way.
struct RackdPeer: Codable {
    /// Our ephemeral public key (not secret), kept to answer a peer that missed our last key message.
    let localPublicKey: [UInt8]
    var keys: Keys
    /// Liveness of a healthy connection: our last keepalive-shaped probe and how many went unanswered.
    var lastProbeAt: EngineInstant?
    var unansweredProbes = 0
    /// The resumption under way, while the connection is held. Started afresh at each suspension.
    var resumption = Resumption()
    /// Responder side of a roam: handshakes from the peer's new address, answered, awaiting its confirm.
    var roamOffers: [RoamOffer] = []
    /// Roaming side, after the roam verified: the confirm, sent again until the peer is heard on the new
    /// path (a lost confirm would leave the peer dropping everything).
    var confirmRepeat: ConfirmRepeat?

    init(ephemeral: KeySchedule.EphemeralKey, firstSendAt: EngineInstant) {
        localPublicKey = ephemeral.publicKey
        keys = .exchanging(KeyExchange(ephemeral: ephemeral, nextSendAt: firstSendAt))
    }

    enum Keys: Codable {
        /// Both ends send their public key until each knows the other has it.
        case exchanging(KeyExchange)
        /// Agreed. `name` is what a roaming peer calls the connection: HMAC(K, "rackd v1 connection id").
        case agreed(ConnectionKey, name: [UInt8])
    }

    struct KeyExchange: Codable {
        let ephemeral: KeySchedule.EphemeralKey
        var key: ConnectionKey?
        var peerHasOurKey = false
        var sends = 0
        var nextSendAt: EngineInstant

        var isComplete: Bool { key != nil && peerHasOurKey }
    }

    /// Resumption attempts of a held connection.
    struct Resumption: Codable {
        /// Nonces of our recent challenges, newest last; a response to any of them is accepted.
        var challengeNonces: [[UInt8]] = []
        /// (their challenge nonce, our response nonce) pairs we answered, awaiting their confirm.
        var answeredChallenges: [AnsweredChallenge] = []
        /// Set while this host resumes from a new local address.
        var roam: RoamAttempt?
    }

    /// A challenge of the peer this host answered, and the nonce of its response.
    struct AnsweredChallenge: Codable {
        var challenge: [UInt8]
        var response: [UInt8]
    }

    /// A roam handshake this host answered: the peer's nonce and ISNs, our nonce and ISN.
    struct RoamOffer: Codable {
        let wire: FlowKey
        let transcript: RoamTranscript
        /// The peer's ISN as it arrived here, against the one it chose: the shift a middlebox applied.
        let peerSequenceOffset: TCPSequenceOffset
        let createdAt: EngineInstant
    }

    /// A roam this host started from a new local address.
    struct RoamAttempt: Codable {
        let wire: FlowKey
        let isn: TCPSequenceNumber
        /// Nonces of the recent SYNs, newest last; an answer to any of them is accepted.
        var nonces: [[UInt8]]
    }

    struct ConfirmRepeat: Codable {
        let segment: TCPSegmentRepr
        var nextAt: EngineInstant
        var remaining: Int
    }

    /// The agreed key, once there is one.
    var key: ConnectionKey? {
        switch keys {
        case .exchanging: nil
        case .agreed(let key, _): key
        }
    }

    /// The name a roaming peer uses for this connection, once the keys are agreed.
    var name: [UInt8]? {
        switch keys {
        case .exchanging: nil
        case .agreed(_, let name): name
        }
    }

    // MARK: Constants of the protocol

    static let maximumPending = 4096
    static let pendingLifetime: Duration = .seconds(30)
    static let fallbackMemory: Duration = .seconds(600)
    static let keyRetransmitInterval: Duration = .milliseconds(200)
    static let keySendLimit = 25
    static let recentNonces = 4
    static let confirmRepeats = 10
    static let roamOfferLifetime: Duration = .seconds(5)
    static let roamOfferSpacing: Duration = .milliseconds(100)
    static let confirmRepeatInterval: Duration = .milliseconds(200)
}

extension Connection {
    /// The rackd protocol's state; every connection is a rackd one until rocks peers arrive.
    var rackd: RackdPeer {
        get {
            switch peer {
            case .rackd(let rackd): rackd
            case .rocks: preconditionFailure("a rackd transition ran on a rocks connection; the core routes by peer kind")
            }
        }
        set { peer = .rackd(newValue) }
    }

    /// The agreed key, once there is one.
    var key: ConnectionKey? { rackd.key }
}
