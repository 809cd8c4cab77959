// rackd — how a managed connection's packets look on the wire, against how its local socket sees them
// (docs/architecture.md, "Data path").
//
// The original socket keeps its 4-tuple and its sequence space for life. The wire may carry another
// tuple (after a move: this host's new address, or the peer's, seen through whatever NAT is on the way)
// and sequence numbers shifted in either direction:
//
//     socket ──(outbound: socket tuple → wire tuple; seq + local offset, ack + peer offset)──► wire
//     socket ◄──(inbound: wire tuple → socket tuple; seq − peer offset, ack − local offset)─── wire
//
// Between two rackds the local offset is always zero: both ends choose a roam's ISNs so that the wire's
// sequence space is the sockets' (docs/roaming.md). The peer's numbers may arrive shifted if a middlebox
// rewrote the ISN of the peer's SYN; `peerSequenceOffset` is that shift. A rocks peer's in-band messages
// are not offsets of this mapping but a splice applied before it (Peers/Rocks/RocksSplice.swift): below
// the splice points nothing moves. Between the splice and the wire, a rocks connection may have this
// mapping too: a client's on its own tuple from the handshake (its SYN went out lower and the rock's
// SYN-ACK reaches the socket higher by rackd's and the rock's setup bytes, so the two cancel:
// RocksPeer.handshakeMapping), and after a reconnection the link's tuple with the offsets its ISNs make.

/// The mapping between one connection's socket and the wire. Lasts as long as the connection.
struct WireMapping: Hashable, Sendable, Codable {
    /// The connection as this host sees it on the wire now.
    var wire: FlowKey
    /// Added to the local socket's sequence numbers to give them as the wire carries them.
    var localSequenceOffset: TCPSequenceOffset = .zero
    /// Added to the peer's sequence numbers as the socket knows them, to give them as they arrive here.
    var peerSequenceOffset: TCPSequenceOffset = .zero

    /// True when the wire carries the socket's own tuple with no shift: nothing to rewrite.
    func isIdentity(for socketFlow: FlowKey) -> Bool {
        wire == socketFlow && localSequenceOffset == .zero && peerSequenceOffset == .zero
    }

    /// The rewrite for packets from the local socket.
    var outbound: FlowRewrite {
        FlowRewrite(source: wire.local, destination: wire.remote, sequenceOffset: localSequenceOffset,
                    acknowledgmentOffset: peerSequenceOffset)
    }

    /// The rewrite for packets from the peer, onto the socket's tuple.
    func inbound(to socketFlow: FlowKey) -> FlowRewrite {
        FlowRewrite(source: socketFlow.remote, destination: socketFlow.local,
                    sequenceOffset: peerSequenceOffset.inverse, acknowledgmentOffset: localSequenceOffset.inverse)
    }

    /// A segment rackd builds in the socket's terms, as it must go on the wire.
    func outbound(_ segment: TCPSegmentRepr) -> TCPSegmentRepr {
        var mapped = segment
        mapped.source = wire.local
        mapped.destination = wire.remote
        mapped.sequenceNumber = segment.sequenceNumber.shifted(by: localSequenceOffset)
        if segment.flags.contains(.ack) {
            mapped.acknowledgmentNumber = segment.acknowledgmentNumber.shifted(by: peerSequenceOffset)
        }
        mapped.options = segment.options.map { option in
            guard case .sack(let blocks) = option else { return option }
            let shifted = blocks.map {
                SACKBlock(left: $0.left.shifted(by: peerSequenceOffset), right: $0.right.shifted(by: peerSequenceOffset))
            }
            return SACKBlocks(shifted).map(TCPOption.sack) ?? option
        }
        return mapped
    }
}
