// rackd — what one rocks connection keeps while it reconnects (docs/rocks.md §5, §15): its links, the
// one 1of2 picked, and each link's place in the exchange.
//
//     link established ─► pick (server: rackd writes the byte on the first link up; client: the first
//     link the rock's byte comes on) ─► challenge-response (RocksAuthentication, rackd answering only
//     once the rock proved the key) ─► recovery messages both ways (RocksRecovery) ─► go-back-N from the
//     ring ─► the link's tuple becomes the socket's mapping (Connection+RocksReconnection.swift)
//
// A link that fails (reset, malformed or wrong authentication, too slow) is reset and forgotten; the
// suspended connection stays as it was and the next attempt starts afresh.

struct RocksReconnection: Codable {
    /// The links of this connection, attributed to it (rackd's own SYNs, and the rock's once its
    /// challenge named the connection's key).
    var attempts: [Attempt] = []
    /// The link 1of2 picked, once picked.
    var picked: FlowKey?
    /// When rackd next sends a SYN to the rock's reconnection address.
    var nextConnectAt: EngineInstant?
    /// An authenticated exchange waits for the socket's positions (a snapshot): look again then.
    var pollAt: EngineInstant?

    struct Attempt: Codable {
        var link: RocksLink
        /// Set once the link is picked (server) or may still be (client).
        var authentication: RocksAuthentication?
        var recoveryReader: RocksRecoveryReader
        var recoveryWritten = false
        /// The rock's recovery messages, once read.
        var peerRecovery: RocksRecovery?
    }

    /// The attempt on `flow`.
    func index(of flow: FlowKey) -> Int? { attempts.firstIndex { $0.link.flow == flow } }

    /// Whether rackd has a link of its own still opening or in its exchange.
    var hasActiveLink: Bool { attempts.contains { $0.link.opening == .active } }

    /// The rock's bytes on a link before the data it resends: the pick when the rock writes it (it is the
    /// server), its challenge and response, and its recovery messages.
    static func rockExchangeLength(ourRole: ConnectionRole) -> Int {
        (RocksPick.writes(ourRole) ? 0 : RocksPick.length) + 4 + RocksChallenge.length + 4 + RocksChallengeResponse.length
            + RocksRecovery.length
    }

    /// How often rackd connects to the rock while suspended, and again soon after a refusal (the rock
    /// listens only once it has suspended itself).
    static let connectInterval: Duration = .seconds(1)
    static let refusedRetry: Duration = .milliseconds(250)
    static let positionsPoll: Duration = .milliseconds(50)

    /// The earliest of the links' timers and rackd's next SYN.
    func nextDeadline(held: Bool) -> EngineInstant? {
        var instants = attempts.compactMap(\.link.retransmitAt) + attempts.map { $0.link.startedAt + RocksLink.lifetime }
        if let pollAt { instants.append(pollAt) }
        if held, let nextConnectAt { instants.append(nextConnectAt) }
        return instants.min()
    }
}
