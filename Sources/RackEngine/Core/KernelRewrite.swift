// rackd — a moved connection whose mapping the kernel carries alone (docs/architecture.md, "Data path":
// moved flows in the kernel).
//
// Between two rackds a move changes only addresses and ports: both ends choose the new connection's ISNs
// so that the wire's sequence space is the sockets' (Core/WireMapping.swift). nftables can rewrite
// addresses and ports, checksums included, but has no arithmetic for sequence numbers. So a confirmed,
// unheld mapping with no sequence shift leaves the queue: rackd installs the two halves below as map
// elements and the kernel rewrites every packet. What still needs a decision is queued as before: rackd's
// messages (option 253), a reset from the peer (ConnectionCore.screenBareReset), anything once the
// connection is suspect of a failure and held. A rackd mapping with a sequence shift (a middlebox that
// rewrote the peer's ISN) stays in the queue; a rocks connection's shift is conntrack's where it can be
// (Core/KernelShift.swift).
//
// A rocks client's splice is cancelled by its handshake instead (docs/rocks.md §14, "In the kernel"): its
// SYN goes out 76 lower and the rock's SYN-ACK reaches the socket 76 higher, so once both inits are
// through the wire's numbers are the socket's. Such a connection is screened (`screenedFlow`): its
// outbound packets are still queued (the send ring is filled from them), of its inbound ones only SYN,
// FIN and RST (a rock suspending or closing); the rest reaches the socket untouched.

/// One kernel rewrite: the socket's tuple and the wire's, each written local end first.
public struct KernelRewrite: Hashable, Sendable, CustomStringConvertible {
    /// The tuple the local socket knows: outbound packets carry it until the kernel rewrites them.
    public var socket: FlowKey
    /// The tuple on the wire: inbound packets carry it until the kernel rewrites them.
    public var wire: FlowKey

    public init(socket: FlowKey, wire: FlowKey) {
        self.socket = socket
        self.wire = wire
    }

    public var description: String { "\(socket) as \(wire)" }
}

/// What the kernel holds for the managed connections: the flows it queues, the rewrites it does, the
/// flows it screens (outbound queued, inbound only SYN, FIN and RST: `RuleChange.screen`) and those it
/// screens while conntrack shifts their sequence numbers (`RuleChange.shift`, Core/KernelShift.swift).
/// rackd installs it whole at start and after someone took its rules away (Firewall/NftablesInstaller.swift).
public struct KernelFlows: Equatable, Sendable {
    public var queued: Set<FlowKey>
    public var rewrites: Set<KernelRewrite>
    public var screened: Set<FlowKey>
    public var shifted: Set<KernelShift>

    public init(queued: Set<FlowKey> = [], rewrites: Set<KernelRewrite> = [], screened: Set<FlowKey> = [],
                shifted: Set<KernelShift> = []) {
        self.queued = queued
        self.rewrites = rewrites
        self.screened = screened
        self.shifted = shifted
    }

    public var count: Int { queued.count + rewrites.count + screened.count + shifted.count }
}

extension Connection {
    /// The rewrite the kernel may do for this connection on its own, or nil while rackd must see its
    /// packets: a roam not yet confirmed both ways (the peer has yet to send on the new path, or an offer
    /// is open), a hold, a reset from the peer not yet confirmed, a sequence shift, a change of address
    /// family, a rocks peer.
    var kernelRewrite: KernelRewrite? {
        guard let mapping, hold == nil, unconfirmedResetAt == nil, mapping.wire != socketFlow,
              // One header format: a move between IPv4 and IPv6 is rewritten by rackd.
              mapping.wire.local.address.bytes.count == socketFlow.local.address.bytes.count,
              mapping.localSequenceOffset == .zero, mapping.peerSequenceOffset == .zero,
              case .rackd(let rackd) = peer, rackd.confirmRepeat == nil, rackd.roamOffers.isEmpty
        else { return nil }
        return KernelRewrite(socket: socketFlow, wire: mapping.wire)
    }
}

extension Connection {
    /// The tuple the kernel may screen rather than queue (`RuleChange.screen`), or nil while every packet
    /// must pass rackd: a healthy rocks connection whose splice and mapping (a client's shifted handshake)
    /// cancel out on its own tuple, with nothing of rackd's own left to retransmit (RocksPeer.leavesNoOffset).
    var screenedFlow: FlowKey? {
        guard let (wire, offsets) = settledRocksOffsets, wire == socketFlow, offsets.local == .zero,
              offsets.peer == .zero
        else { return nil }
        return socketFlow
    }

    /// The shift conntrack may carry for the connection instead (`RuleChange.shift`, Core/KernelShift.swift):
    /// the same, with constant offsets that do not cancel out (a rocks server's connection; a client's
    /// whose init had an unexpected length; a connection after a reconnection, on the link's tuple), where
    /// the kernel can shift.
    var kernelShift: KernelShift? {
        guard let (wire, offsets) = settledRocksOffsets, wire != socketFlow || offsets.local != .zero || offsets.peer != .zero,
              rocksPeer?.kernelMayShift == true,
              // One header format for the rewrite: rocks 2.4 is IPv4 only, so this always holds.
              wire.local.address.bytes.count == socketFlow.local.address.bytes.count
        else { return nil }
        return KernelShift(flow: socketFlow, wire: wire, localOffset: offsets.local, peerOffset: offsets.peer)
    }

    /// A healthy rocks connection's wire tuple and settled offsets (RocksPeer.settledOffsets); nil while
    /// anything needs rackd's splice.
    private var settledRocksOffsets: (FlowKey, RocksPeer.SettledOffsets)? {
        guard case .rocks(let rocks) = peer, case .healthy = state else { return nil }
        let mapping = mapping ?? WireMapping(wire: socketFlow)
        return rocks.settledOffsets(mapping).map { (mapping.wire, $0) }
    }
}
