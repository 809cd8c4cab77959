// rackd — the rules of each chain of rackd's table (the table in text form: RackdRuleset.swift).

import CNftables
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

extension RackdRuleset {
    struct Rule {
        var comment: String
        var expressions: [OpaquePointer]
    }

    /// How many rules the chain named `chain` holds.
    func ruleCount(for chain: String) -> Int {
        let built = rules(for: chain)
        for rule in built { for expression in rule.expressions { nftnl_expr_free(expression) } }
        return built.count
    }

    /// The rules of the chain named `chain`; the caller owns the expressions.
    func rules(for chain: String) -> [Rule] {
        if let hook = Hook.allCases.first(where: { $0.chainName == chain }) { return hookRules(hook) }
        if let hook = Hook.allCases.first(where: { Self.synChainName($0) == chain }) { return synRules(for: hook) }
        if chain == Self.queuedChain { return queuedRules() }
        if chain == Self.ownPacketsChain.name { return ownPacketsRules() }
        if chain == Self.screenedChain { return screenedRules() }
        if chain == Self.shiftedChain { return shiftedRules() }
        if chain == Self.shiftedOutChain { return shiftedOutRules() }
        if chain == Self.shiftedScreenChain { return shiftedScreenRules() }
        for family in [FlowMap.Family.v4, .v6] {
            if chain == Self.chainName(of: .shiftRewrite(family)) { return shiftedRewriteRules(family) }
            if chain == Self.shiftedRewriteScreenChain(family) { return shiftedRewriteScreenRules(family) }
        }
        for hook in Hook.allCases {
            for family in [FlowMap.Family.v4, .v6] where chain == Self.chainName(of: .rewrite(hook, family)) {
                return rewriteRules(hook, family)
            }
        }
        preconditionFailure("no chain \(chain) in table inet rackd")
    }

    private func hookRules(_ hook: Hook) -> [Rule] {
        let r1 = NftRegister.r32(0)
        let loopback = bytesOf(UInt16(772))  // ARPHRD_LOOPBACK
        let interfaceType = hook == .output ? NFT_META_OIFTYPE : NFT_META_IFTYPE
        var rules: [Rule] = []
        // meta l4proto != tcp accept
        rules.append(Rule(comment: "only TCP is ever managed", expressions: [
            NftExpression.meta(NFT_META_L4PROTO, into: r1),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, [UInt8(IPPROTO_TCP)]),
            NftExpression.accept(),
        ]))
        // meta mark & MARK == MARK accept
        rules.append(Rule(comment: "packets rackd injected itself", expressions: [
            NftExpression.meta(NFT_META_MARK, into: r1),
            NftExpression.and(register: r1, mask: bytesOf(firewallMark)),
            NftExpression.compare(NFT_CMP_EQ, register: r1, bytesOf(firewallMark)),
            NftExpression.accept(),
        ]))
        // tcp flags & syn == syn meta oiftype != loopback jump syn-output: the SYN chains queue it for
        // detection unless it could not be enhanced (RackdRuleset+Ordinary.swift)
        rules.append(Rule(comment: "TCP SYN and SYN-ACK: detection, unless it could not enhance them", expressions: [
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 13, length: 1, into: r1),
            NftExpression.and(register: r1, mask: [0x02]),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, [0x00]),
            NftExpression.meta(interfaceType, into: r1),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, loopback),
            NftExpression.jump(to: Self.synChainName(hook)),
        ]))
        if hook == .input {
            // @th,160,8 == 253 meta len <= 120 meta iiftype != loopback tcp option 253 exists queue num Q bypass
            // rackd's messages (key exchange, resumption) arrive for flows that are not queued: a
            // healthy connection whose peer was cut off must still hear the peer's challenge. They ride
            // on segments without payload, so a bulk transfer's segments are never searched for them,
            // and their option is the segment's only one, so its kind is the byte right after the fixed
            // TCP header (docs/protocol.md, "Principles"). That byte is tested first: one load and one
            // compare settle every other segment (docs/architecture.md, "One early decision per packet").
            rules.append(Rule(comment: "rackd protocol messages (experimental option 253)", expressions: [
                NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: Self.firstOptionOffset, length: 1, into: r1),
                NftExpression.compare(NFT_CMP_EQ, register: r1, [Self.messageOptionKind]),
                NftExpression.meta(NFT_META_LEN, into: r1),
                NftExpression.toNetworkOrder(register: r1),
                NftExpression.compare(NFT_CMP_LTE, register: r1, [0, 0, 0, Self.messageSegmentMaximumLength]),
                NftExpression.meta(interfaceType, into: r1),
                NftExpression.compare(NFT_CMP_NEQ, register: r1, loopback),
                NftExpression.tcpOptionPresent(kind: Self.messageOptionKind, into: r1),
                NftExpression.compare(NFT_CMP_EQ, register: r1, [1]),
                queue(bypass: true),
            ]))
        }
        for family in [FlowMap.Family.v4, .v6] {
            let map = FlowMap.flows(hook, family)
            rules.append(Rule(comment: "managed flows (\(map.name))", expressions: flowKey(map, hook: hook) + [
                NftExpression.mapLookup(map: map.name, mapID: map.id, register: r1, into: NftRegister.verdict),
            ]))
        }
        return rules
    }

    /// rackd's option kind (RFC 6994 experiment 1; RacksMessage).
    static let messageOptionKind = TCPOptionKind.experiment1.rawValue

    /// Where a TCP header's first option starts: right after its 20 fixed bytes.
    static let firstOptionOffset: UInt32 = 20

    /// A screened rocks connection's inbound packets (docs/rocks.md §14, "In the kernel"): what needs a
    /// decision goes to rackd (a reset: the rock suspends; a FIN: it closes; a SYN never comes), the rest
    /// reaches the socket as it is, counted.
    private func screenedRules() -> [Rule] {
        [
            screenRule(queue: queue(bypass: false)),
            // counter accept
            Rule(comment: "the rest of a screened rocks connection's inbound packets, unqueued",
                 expressions: [NftExpression.counter(), NftExpression.accept()]),
        ]
    }

    /// `tcp flags & (fin | syn | rst) != 0 <queue>`: what rackd decides of a screened connection's.
    private func screenRule(queue: OpaquePointer) -> Rule {
        let r1 = NftRegister.r32(0)
        return Rule(comment: "a screened rocks connection's FIN, SYN or RST: rackd decides", expressions: [
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 13, length: 1, into: r1),
            NftExpression.and(register: r1, mask: [0x07]),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, [0x00]),
            queue,
        ])
    }

    /// `meta mark & MARK == MARK meta oiftype != loopback notrack`: rackd's own packets to the network,
    /// untracked (RackdRuleset.ownPacketsChain). Not those to a local socket (through `lo`): conntrack never
    /// shifts a loopback packet, and a firewall that accepts only tracked packets on input would drop them.
    private func ownPacketsRules() -> [Rule] {
        let r1 = NftRegister.r32(0)
        return [Rule(comment: "packets rackd injected toward the network: conntrack neither shifts nor tracks them", expressions: [
            NftExpression.meta(NFT_META_MARK, into: r1),
            NftExpression.and(register: r1, mask: bytesOf(firewallMark)),
            NftExpression.compare(NFT_CMP_EQ, register: r1, bytesOf(firewallMark)),
            NftExpression.meta(NFT_META_OIFTYPE, into: r1),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, bytesOf(UInt16(772))),  // ARPHRD_LOOPBACK
            NftExpression.notrack(),
        ])]
    }

    /// Every packet of a queued flow to rackd. With kernel shifts, one whose conntrack entry has the shift to
    /// the shift queue: a flow is queued whole around the moments its entry is made and deleted (the entry
    /// comes before the elements that send its packets past the queue, and goes after them), and rackd must
    /// know that the kernel shifts such a packet whichever chain queued it.
    private func queuedRules() -> [Rule] {
        let every = Rule(comment: "every packet of a queued flow", expressions: [queue(bypass: false)])
        guard kernelShifts else { return [every] }
        return [conntrackShifts(then: shiftQueue(), "a queued flow's packet conntrack shifts: to the shift queue"), every]
    }

    /// A shifted rocks connection's inbound packets (Core/KernelShift.swift): those conntrack shifts go on
    /// as a screened connection's, to the shift queue when rackd must see them; the rest (no entry: lost to
    /// a flush or a timeout, or a packet conntrack found invalid) go to the queue, and rackd maps them
    /// itself. `ct status` of a packet without an entry matches nothing, so the plain queue is the chain's
    /// last rule rather than a test of a missing bit. Without kernel shifts no element names the chain, and
    /// it holds no `ct` rule: such a rule makes conntrack track every flow of the network namespace.
    private func shiftedRules() -> [Rule] {
        conntrackShiftsOn(to: NftExpression.jump(to: Self.shiftedScreenChain), "screened")
    }

    /// A shifted rocks connection's outbound packets: all to rackd (the send ring), to the shift queue if
    /// conntrack shifts them.
    private func shiftedOutRules() -> [Rule] {
        conntrackShiftsOn(to: shiftQueue(), "to the shift queue")
    }

    /// `screened`'s rules, with the shift queue: what conntrack shifts and rackd must see (SYN, FIN, RST).
    private func shiftedScreenRules() -> [Rule] {
        [screenRule(queue: shiftQueue()),
         Rule(comment: "the rest of a shifted rocks connection's inbound packets, unqueued",
              expressions: [NftExpression.counter(), NftExpression.accept()])]
    }

    /// After a reconnection (the link's tuple inbound): the same test, then the screen and the rewrite
    /// onto the socket's tuple. A `goto`, so that the rewrite's end is the base chain's (accept).
    private func shiftedRewriteRules(_ family: FlowMap.Family) -> [Rule] {
        conntrackShiftsOn(to: NftExpression.goto(to: Self.shiftedRewriteScreenChain(family)), "screened, then rewritten")
    }

    /// `ct status & seq-adjust != 0 <verdict>`, then `queue`: a packet conntrack shifts goes on, the rest
    /// to rackd. Without kernel shifts, only the queue (no `ct` rule in the table).
    private func conntrackShiftsOn(to verdict: OpaquePointer, _ what: String) -> [Rule] {
        let queueTheRest = Rule(comment: "a shifted rocks connection's packet conntrack would not shift: rackd maps it",
                                expressions: [queue(bypass: false)])
        guard kernelShifts else {
            nftnl_expr_free(verdict)
            return [queueTheRest]
        }
        return [conntrackShifts(then: verdict, "a shifted rocks connection's packet conntrack shifts: \(what)"), queueTheRest]
    }

    /// `ct status & seq-adjust != 0 <verdict>`.
    private func conntrackShifts(then verdict: OpaquePointer, _ comment: String) -> Rule {
        let r1 = NftRegister.r32(0)
        return Rule(comment: comment, expressions: [
            NftExpression.conntrack(NFT_CT_STATUS, into: r1),
            NftExpression.and(register: r1, mask: bytesOf(Self.sequenceAdjustStatus)),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, bytesOf(UInt32(0))),
            verdict,
        ])
    }

    /// What conntrack shifts of a reconnected connection's link: SYN, FIN and RST to the shift queue, the
    /// rest rewritten onto the socket's tuple (as `rewrite_in4` does).
    private func shiftedRewriteScreenRules(_ family: FlowMap.Family) -> [Rule] {
        [screenRule(queue: shiftQueue()), rewriteRule(.input, family)]
    }

    /// The queue of packets conntrack shifts after the verdict (Daemon/DataPlane.swift reads it apart).
    func shiftQueue() -> OpaquePointer {
        let number = Self.shiftQueueNumber(after: queueNumber) ?? queueNumber
        switch variant {
        case .native: return NftExpression.nativeQueue(number: number, bypass: false)
        case .compat: return NftExpression.compatQueue(number: number, bypass: false)
        }
    }

    /// IPS_SEQ_ADJUST (linux/netfilter/nf_conntrack_common.h): the entry carries a sequence adjustment.
    static let sequenceAdjustStatus: UInt32 = 1 << 6

    /// The longest IP packet searched for rackd's option: a segment without payload behind at most 60
    /// bytes of IP header (IPv4 options, IPv6 extension headers), with 60 of TCP header.
    static let messageSegmentMaximumLength: UInt8 = 120

    /// A moved connection's packets, rewritten onto the other tuple; on input a reset is queued first
    /// (ConnectionCore.screenBareReset decides whether it may reach the socket).
    private func rewriteRules(_ hook: Hook, _ family: FlowMap.Family) -> [Rule] {
        let r1 = NftRegister.r32(0)
        var rules: [Rule] = []
        if hook == .input {
            // tcp flags & rst == rst queue num Q
            rules.append(Rule(comment: "a reset on a moved connection's wire: rackd judges it", expressions: [
                NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 13, length: 1, into: r1),
                NftExpression.and(register: r1, mask: [0x04]),
                NftExpression.compare(NFT_CMP_NEQ, register: r1, [0x00]),
                queue(bypass: false),
            ]))
        }
        rules.append(rewriteRule(hook, family))
        return rules
    }

    /// The rule that writes the other tuple (from the data map) into a moved connection's headers.
    private func rewriteRule(_ hook: Hook, _ family: FlowMap.Family) -> Rule {
        let r1 = NftRegister.r32(0)
        let data = FlowMap.rewriteData(hook, family)
        let words = data.addressLength / 4
        // The data is local address . local port . remote address . remote port, each in the registers
        // from r32(0) on; where each goes depends on the direction.
        let (local, remote) = hook == .output
            ? (family == .v4 ? (12, 16) : (8, 24)) as (UInt32, UInt32)
            : (family == .v4 ? (16, 12) : (24, 8))
        let (localPort, remotePort): (UInt32, UInt32) = hook == .output ? (0, 2) : (2, 0)
        let ipChecksum: UInt32? = family == .v4 ? 10 : nil
        let tcpChecksum: UInt32 = 16
        return Rule(comment: "rewrite a moved connection's packets (\(data.name))", expressions: flowKey(data, hook: hook) + [
            NftExpression.mapLookup(map: data.name, mapID: data.id, register: r1, into: r1),
            NftExpression.payloadWrite(NFT_PAYLOAD_NETWORK_HEADER, offset: local, length: data.addressLength,
                                       from: NftRegister.r32(0), checksumOffset: ipChecksum, pseudoHeader: true),
            NftExpression.payloadWrite(NFT_PAYLOAD_TRANSPORT_HEADER, offset: localPort, length: 2,
                                       from: NftRegister.r32(words), checksumOffset: tcpChecksum, pseudoHeader: false),
            NftExpression.payloadWrite(NFT_PAYLOAD_NETWORK_HEADER, offset: remote, length: data.addressLength,
                                       from: NftRegister.r32(words + 1), checksumOffset: ipChecksum, pseudoHeader: true),
            NftExpression.payloadWrite(NFT_PAYLOAD_TRANSPORT_HEADER, offset: remotePort, length: 2,
                                       from: NftRegister.r32(2 * words + 1), checksumOffset: tcpChecksum, pseudoHeader: false),
        ])
    }

    /// `meta nfproto P <local addr> . <local port> . <remote addr> . <remote port>` into the registers
    /// from r32(0) on (the chains hold only TCP by then).
    func flowKey(_ map: FlowMap, hook: Hook) -> [OpaquePointer] {
        let r1 = NftRegister.r32(0)
        let addressWords = map.addressLength / 4
        // On output the local end is the source; on input it is the destination.
        let (localAddress, remoteAddress) = hook == .output
            ? (map.sourceOffset, map.destinationOffset) : (map.destinationOffset, map.sourceOffset)
        let (localPort, remotePort): (UInt32, UInt32) = hook == .output ? (0, 2) : (2, 0)
        return [
            NftExpression.meta(NFT_META_NFPROTO, into: r1),
            NftExpression.compare(NFT_CMP_EQ, register: r1, [map.nfproto]),
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: localAddress, length: map.addressLength,
                                  into: NftRegister.r32(0)),
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: localPort, length: 2,
                                  into: NftRegister.r32(addressWords)),
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: remoteAddress, length: map.addressLength,
                                  into: NftRegister.r32(addressWords + 1)),
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: remotePort, length: 2,
                                  into: NftRegister.r32(2 * addressWords + 1)),
        ]
    }

    func queue(bypass: Bool) -> OpaquePointer {
        switch variant {
        case .native: return NftExpression.nativeQueue(number: queueNumber, bypass: bypass)
        case .compat: return NftExpression.compatQueue(number: queueNumber, bypass: bypass)
        }
    }

    /// The bytes of a value in host order, as registers hold meta values.
    private func bytesOf<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }
}
