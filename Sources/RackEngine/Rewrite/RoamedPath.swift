// rackd — where a connection's packets travel after it resumed from another address (docs/roaming.md;
// docs/architecture.md, "Data path").
//
// The original sockets keep their 4-tuple for life. After a roam the wire carries another one: this
// host's new address (if this host moved) or the peer's (if the peer moved), seen through whatever NAT
// is on the way. Each host maps its own view:
//
//     socket ──(outbound: socket tuple → wire tuple; ack + offset)──► wire
//     socket ◄──(inbound: wire tuple → socket tuple; seq − offset)─── wire
//
// Both ends choose the roam handshake's ISNs so that the wire's sequence space equals the sockets'. Our
// own sequence numbers therefore never shift at our end. The peer's may arrive shifted, if a middlebox
// on the new path rewrote the ISN of the peer's SYN: `peerSequenceOffset` is that shift, learnt from the
// ISN the peer says it chose (in its roam message) against the ISN that arrived.

/// The mapping between one connection's socket and the wire, after a roam.
struct RoamedPath: Equatable, Sendable {
    /// The connection as this host sees it on the wire now.
    var wire: FlowKey
    /// Added to the peer's sequence numbers as the sockets know them, to give them as they arrive here.
    var peerSequenceOffset: TCPSequenceOffset

    /// True when the wire carries the socket's own tuple with no shift: nothing to rewrite.
    func isIdentity(for socketFlow: FlowKey) -> Bool {
        wire == socketFlow && peerSequenceOffset == .zero
    }

    /// The rewrite for packets from the local socket.
    var outbound: FlowRewrite {
        FlowRewrite(source: wire.local, destination: wire.remote, sequenceOffset: .zero,
                    acknowledgmentOffset: peerSequenceOffset)
    }

    /// The rewrite for packets from the peer, onto the socket's tuple.
    func inbound(to socketFlow: FlowKey) -> FlowRewrite {
        FlowRewrite(source: socketFlow.remote, destination: socketFlow.local,
                    sequenceOffset: peerSequenceOffset.inverse, acknowledgmentOffset: .zero)
    }

    /// A segment rackd builds in the socket's terms, as it must go on the wire.
    func outbound(_ segment: TCPSegmentRepr) -> TCPSegmentRepr {
        var mapped = segment
        mapped.source = wire.local
        mapped.destination = wire.remote
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
