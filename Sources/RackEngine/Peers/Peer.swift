// rackd — the protocol a managed connection's peer speaks (docs/architecture.md, "The connection core
// and peer kinds").
//
// The core (Core/) holds what every managed connection needs: suspension, the wire mapping, limits, the
// operator hold, link events and the kernel state derived from the connections. Each peer kind adds what
// only its protocol needs, as one value per connection and a folder of transitions: detection, key
// exchange, liveness, resumption and the authentication of a move to a new path.

/// The peer's protocol, and what it keeps for one connection.
enum Peer: Codable {
    /// Another rackd: SYN option, X25519 keys, HMAC resumption, roam handshake (Peers/Rackd/).
    case rackd(RackdPeer)
    /// An application under the rocks 2.4 library: EDP, in-band init, UDP heartbeats (Peers/Rocks/).
    /// Out of line: it is twice the size of a rackd peer's, and every connection is as large as its
    /// largest peer kind could be (docs/architecture.md, "Liveness at scale").
    indirect case rocks(RocksPeer)

    /// The name status shows for the peer kind.
    var kind: String {
        switch self {
        case .rackd: "rackd"
        case .rocks: "rocks"
        }
    }

    /// How the connection's key was agreed and how resumptions are authenticated, for status.
    var suite: String {
        switch self {
        case .rackd: KeySchedule.suiteName
        case .rocks: RocksPeer.suiteName
        }
    }

    var isRocks: Bool {
        if case .rocks = self { true } else { false }
    }
}
