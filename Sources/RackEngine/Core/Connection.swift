// rackd — one managed connection, whatever protocol its peer speaks (docs/architecture.md, "The
// connection core and peer kinds").
//
//     establishing ──► healthy ◄──► suspect           (the peer's protocol agrees keys; liveness)
//                         │            │
//                         ▼ failure    ▼
//                      suspended ──► resuming ──► healthy   (authenticated by the peer's protocol)
//                         ▲ operator hold (rackctl suspend) is a holder of the same suspension
//     healthy, suspect ──► closing                  (a moved connection whose socket is closing)
//
// The life of a connection is `state`: one enum whose cases carry their own data, each built from its
// predecessor (ConnectionStates.swift). What the peer's protocol needs lives in `peer`. The wire mapping
// (`mapping`) is not a state: a moved connection can fail and resume again and keeps it, and a rocks
// connection carries offsets from birth.
//
// Transitions are `mutating` methods of `Connection` that return `ConnectionActions`; they never reach
// into the table. The core's transitions live in the `Connection+…` files beside this one, the peer
// protocols' in Peers/.

/// Which end of the connection this host is.
public enum ConnectionRole: String, Sendable, Codable {
    /// This host sent the SYN.
    case client
    /// This host answered with the SYN-ACK.
    case server
}

/// Where a managed connection's packets are handled, as status shows it (Core/KernelNeeds.swift).
public enum ConnectionPacketRoute: String, Sendable, CaseIterable, Codable {
    /// None is queued: the kernel passes them, and rewrites them if the connection moved.
    case kernel
    /// A rocks client's after both inits: the socket's segments pass rackd for a verdict only, the rock's
    /// reach the socket without rackd but for SYN, FIN and RST (docs/rocks.md §14, "In the kernel").
    case screened
    /// Every packet passes rackd: a hold, a move not yet confirmed, a mapping the kernel cannot carry.
    case queued
}

/// The state of a managed connection, as status shows it.
public enum ConnectionPhase: String, Sendable, CaseIterable, Codable {
    case keyExchange = "key-exchange"
    case healthy
    /// Healthy, but probes are going unanswered.
    case suspect
    case suspended
    /// Suspended, and this host has proven itself to the peer; waiting for the peer to confirm.
    case resuming
    /// The socket is closing; a moved connection is still mapped until the socket is gone.
    case closing
}

/// The local socket's send and receive positions.
struct SequenceState: Equatable, Codable {
    /// The oldest byte the peer has not acknowledged (snd_una).
    var sendUnacknowledged: TCPSequenceNumber
    /// The next byte the local socket expects from the peer (rcv_nxt).
    var receiveNext: TCPSequenceNumber
}

struct Connection: Codable {
    /// Names the connection for life (status, rackctl, logs).
    let id: UInt64
    /// The local socket's tuple.
    let socketFlow: FlowKey
    let role: ConnectionRole
    /// The ISN of the local socket and of the peer.
    let localISN: TCPSequenceNumber
    let peerISN: TCPSequenceNumber
    /// What each side's handshake segment announced.
    let localOptions: HandshakeOptions
    let peerOptions: HandshakeOptions
    var state: ConnectionState
    /// The peer's protocol and what it keeps.
    var peer: Peer
    /// Set when the wire carries another tuple or shifted sequence numbers: every packet is rewritten.
    var mapping: WireMapping?
    /// The last time the peer was known to be alive.
    var lastHeard: EngineInstant
    var resumptions = 0
    /// The newest snapshot of the local socket (`socket`), out of line: it is most of a healthy
    /// connection's size otherwise, and only a hold, a roam and status read it.
    var socketStorage: OutOfLine<SocketSnapshot>?
    /// The local socket's inode, from the first snapshot: a tuple the kernel gave to another socket (after
    /// a restart of rackd, say) is not this connection.
    var socketInode: UInt64?
    /// A moved connection's first reset without ACK from the peer, held back until confirmed
    /// (ConnectionCore.screenBareReset).
    var unconfirmedResetAt: EngineInstant?
    /// When the socket is next due to be read (Connection+Snapshot.swift); nil: as soon as possible. Not
    /// kept across restarts: a restored connection's socket is read at once.
    var socketCheckAt: EngineInstant?

    /// Everything but the socket snapshot is kept across rackd's restarts (Persistence/): the kernel
    /// is asked afresh on start.
    private enum CodingKeys: String, CodingKey {
        case id, socketFlow, role, localISN, peerISN, localOptions, peerOptions, state, peer, mapping, lastHeard
        case resumptions, socketInode
    }

    /// The newest snapshot of the local socket.
    var socket: SocketSnapshot? {
        get { socketStorage?.value }
        set { socketStorage = newValue.map(OutOfLine.init) }
    }

    /// The tuple the wire carries now, from this host's point of view.
    var wireFlow: FlowKey { mapping?.wire ?? socketFlow }

    /// The wire path whose liveness this connection shares (Core/PathIndex.swift): a healthy or suspect
    /// connection to a rackd peer's; nil for any other.
    var livenessPath: WirePath? {
        guard !peer.isRocks else { return nil }
        switch state {
        case .healthy, .suspect: return WirePath(wireFlow)
        case .establishing, .suspended, .resuming, .closing: return nil
        }
    }

    var phase: ConnectionPhase { state.phase }

    /// The suspension, while the connection is suspended or resuming.
    var hold: Hold? {
        switch state {
        case .suspended(let hold), .resuming(let hold): hold
        case .establishing, .healthy, .suspect, .closing: nil
        }
    }

    /// Every packet of the flow is queued: while held, and while mapped.
    /// Whether every packet of the socket's tuple goes through rackd: while held, and while a mapping
    /// needs rackd (one the kernel carries alone is a `kernelRewrite`, Core/KernelRewrite.swift).
    var isQueued: Bool { hold != nil || (mapping != nil && kernelRewrite == nil) }

    /// Whether the socket's packets differ from the wire's: a moved connection, or a rocks peer's, whose
    /// offsets last its life. Such a connection is kept until its socket is gone.
    var isRewritten: Bool { mapping != nil || peer.isRocks }

    /// The local socket's positions, from a snapshot and the ISNs. For the active opener the kernel's
    /// bytes_acked counts the SYN; for the passive opener it does not (measured on Linux 6.18).
    func sequences(from snapshot: SocketSnapshot) -> SequenceState {
        let synCounted: UInt32 = role == .client ? 0 : 1
        return SequenceState(
            sendUnacknowledged: localISN + UInt32(truncatingIfNeeded: snapshot.bytesAcked) + synCounted,
            receiveNext: peerISN + 1 + UInt32(truncatingIfNeeded: snapshot.bytesReceived))
    }

    /// The best known positions: the hold's, else the latest snapshot's.
    var knownSequences: SequenceState? {
        hold?.positions ?? socket.map(sequences(from:))
    }

    /// A segment built in the socket's terms, as it must travel to the peer: through the mapping, if any.
    func toPeer(_ segment: TCPSegmentRepr) -> TCPSegmentRepr {
        var segment = segment
        if case .rocks(let rocks) = peer {
            segment.sequenceNumber = rocks.splice.outboundSequence(segment.sequenceNumber)
            if segment.flags.contains(.ack) {
                segment.acknowledgmentNumber = rocks.splice.outboundAcknowledgment(segment.acknowledgmentNumber)
            }
        }
        return mapping.map { $0.outbound(segment) } ?? segment
    }

    /// Moves to a new state, reporting the change of phase.
    mutating func transition(to newState: ConnectionState, reason: String, into actions: inout ConnectionActions) {
        let before = phase
        state = newState
        if before != phase {
            actions.events.append(.phaseChanged(id: id, socketFlow, from: before, to: phase, reason: reason))
        }
    }
}
