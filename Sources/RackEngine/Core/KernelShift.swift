// rackd — a rocks connection whose constant sequence shift the kernel carries: conntrack's sequence
// adjustment (seqadj), on an entry rackd creates over ctnetlink (docs/kernel-seqadj.md; docs/rocks.md
// §14, "In the kernel").
//
// A rocks server's splice (and a rocks client's whose init had an unexpected length) leaves a constant
// offset in each direction once both inits are through, and a reconnection's link carries arbitrary ones
// on another tuple (its ISNs are the rock's and rackd's own): the socket's numbers go out `localOffset` higher,
// the rock's reach the socket `peerOffset` lower. nftables has no arithmetic for that; conntrack's seqadj
// does it after rackd's rules (at the confirm hooks, the last of output and input). Such a connection is
// screened as a rocks client's is (its outbound packets queued for the send ring, verdict only; of its
// inbound ones only SYN, FIN and RST), and its inbound packets without the shift (the entry lost to a
// flush or a timeout) are queued too, so that rackd maps them itself.
//
// Which packets the kernel shifts after the verdict, rackd learns per packet: every rule that queues a
// packet whose entry has IPS_SEQ_ADJUST sends it to the next queue (Firewall/RackdRuleset+Rules.swift), which
// the daemon reads apart; the kernel shifts such a packet whatever rackd does with it
// (`HostEngine.handlePacket`, `kernelShifts`). So rackd moves what it makes of it back by the entry's shift.

/// One shift the kernel carries for one connection.
public struct KernelShift: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The socket's tuple, local end first: the conntrack entry's original direction is outbound.
    public var flow: FlowKey
    /// The tuple on the wire, local end first: the socket's own, or after a reconnection the link's,
    /// onto which nftables rewrites addresses and ports (the chain `shifted_rewrite_in4`). The entry's
    /// reply tuple is this one's inverse, so the rock's packets on the link find it too.
    public var wire: FlowKey
    /// Added to the socket's sequence numbers on the way out (and to its acknowledgements on the way in,
    /// subtracted): conntrack's offset for the original direction.
    public var localOffset: TCPSequenceOffset
    /// Added to the peer's sequence numbers as the socket knows them, to give them as the wire carries
    /// them: conntrack's offset for the reply direction is its inverse.
    public var peerOffset: TCPSequenceOffset

    public init(flow: FlowKey, wire: FlowKey? = nil, localOffset: TCPSequenceOffset, peerOffset: TCPSequenceOffset) {
        self.flow = flow
        self.wire = wire ?? flow
        self.localOffset = localOffset
        self.peerOffset = peerOffset
    }

    /// Conntrack's offset for the original direction (the socket's packets): CTA_SEQ_ADJ_ORIG.
    public var originalOffset: Int32 { Int32(bitPattern: localOffset.rawValue) }
    /// Conntrack's offset for the reply direction (the peer's packets): CTA_SEQ_ADJ_REPLY.
    public var replyOffset: Int32 { Int32(bitPattern: peerOffset.inverse.rawValue) }

    /// Whether the wire carries another tuple than the socket's (a reconnected connection).
    public var isMoved: Bool { wire != flow }

    public var description: String {
        "\(flow)\(isMoved ? " as \(wire)" : "") shifted by \(originalOffset)/\(replyOffset)"
    }
}
