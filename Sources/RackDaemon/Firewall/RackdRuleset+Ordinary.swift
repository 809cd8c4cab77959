// rackd — the SYN chains: which handshakes are worth queueing (docs/architecture.md, "Data path").
//
// The base chains send every TCP SYN and SYN-ACK to `syn-output` / `syn-input` (`jump`). There a
// handshake rackd could never enhance is accepted at once: nothing later in the base chain (option 253, the
// flow maps) concerns it, and the common case, a destination cached as ordinary, is looked up first.
// Whatever is left is queued, with `bypass`:
//
//     set ordinary4 { type ipv4_addr . inet_service; flags timeout; timeout 10m; size 16384; }
//     set ordinary6 { type ipv6_addr . inet_service; flags timeout; timeout 10m; size 16384; }
//     set excluded4 { type ipv4_addr; flags interval; }        # [policy] exclude-addresses
//     set excluded6 { type ipv6_addr; flags interval; }
//     set excluded-ports { type inet_service; flags interval; } # [policy] exclude-ports
//     set managed-ports { type inet_service; flags interval; }  # [policy] manage-ports, when given
//     set rocks-ports { type inet_service; flags interval; }    # racks mode: [rocks] serve-ports, reconnection-port
//     chain syn-output {
//         tcp flags & (syn | ack) == syn meta nfproto ipv4 ip daddr . tcp dport @ordinary4 accept
//         tcp flags & (syn | ack) == syn meta nfproto ipv6 ip6 daddr . tcp dport @ordinary6 accept
//         tcp option md5sig exists accept                       # TCP-MD5 (19) and TCP-AO (29)
//         tcp option 29 exists accept
//         meta nfproto ipv4 ip daddr @excluded4 accept
//         meta nfproto ipv6 ip6 daddr @excluded6 accept
//         tcp flags & (syn | ack) == syn tcp dport @excluded-ports accept
//         tcp flags & (syn | ack) == syn | ack tcp sport @excluded-ports accept
//         tcp flags & (syn | ack) == syn tcp dport != @managed-ports accept       # only with manage-ports
//         tcp flags & (syn | ack) == syn | ack tcp sport != @managed-ports accept
//         tcp flags & (syn | ack) == syn | ack <flow> vmap @flows_out4             # racks mode only: our
//         tcp flags & (syn | ack) == syn | ack <flow> vmap @flows_out6             #   SYN-ACK to a rackd
//         tcp flags & (syn | ack) == syn | ack tcp sport != @rocks-ports accept    #   client, else accepted
//         queue num Q bypass
//     }
//     chain syn-input {
//         (the same, with the remote address read as saddr, and the ordinary sets consulted for
//         SYN-ACKs: tcp flags & (syn | ack) == syn | ack ... ip saddr . tcp sport @ordinary4 accept;
//         in racks mode, instead of the three SYN-ACK rules:
//         tcp flags & (syn | ack) == syn tcp option 253 missing tcp dport != @rocks-ports accept)
//     }
//
// The policy's "server port" is the destination port of a SYN and the source port of a SYN-ACK, in
// either direction; its peer address is the remote end: the destination going out, the source coming in.
// So the sets say exactly what `Policy.allows` says, and a handshake they let pass is one the engine
// would have left alone (loopback is accepted earlier, by interface type).
//
// `ordinary4`/`ordinary6` hold destinations the engine found to be ordinary peers (`EngineOutput.ordinary`),
// remote address . remote port, each with a kernel-side timeout: our SYN to one and its SYN-ACK back are
// not queued until the element expires.
//
// The server's side needs no cache (racks mode): a client's SYN says itself whether it carries rackd's
// option. One without it is accepted unless its port is one a rocks role needs (`rocks-ports`: the serve
// ports, whose rocks clients are known only by their first bytes, and the reconnection port); our SYN-ACK
// is accepted too unless the engine queues its flow, which it does from a SYN with the option until the
// client's first key message (a retransmitted SYN-ACK must carry the hello again until the client shows
// it had one: Core/KernelNeeds.swift).

import CNftables
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// The policy's exclusions, as the kernel's interval sets hold them: sorted, merged ranges of
/// big-endian keys, inclusive.
struct SYNExclusions {
    typealias Range = (lower: [UInt8], upper: [UInt8])

    var addresses4: [Range] = []
    var addresses6: [Range] = []
    var ports: [Range] = []
    /// nil: every server port may be managed.
    var managedPorts: [Range]?
    /// Local server ports whose clients' SYNs rackd needs even without its option (rocks: the serve ports
    /// and the reconnection port). nil: every SYN and SYN-ACK is queued, as passthrough mode needs; else a
    /// SYN from an ordinary client, and the SYN-ACK to it, skip the queue.
    var rocksPorts: [Range]?

    init() {}

    /// The exclusions of `policy`.
    init(_ policy: Policy) {
        func prefixRange(_ prefix: AddressPrefix) -> Range {
            let bytes = prefix.address.bytes
            var lower = bytes
            var upper = bytes
            var remaining = max(0, prefix.length)
            for index in bytes.indices {
                let bits = min(8, remaining)
                let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
                lower[index] = bytes[index] & mask
                upper[index] = bytes[index] | ~mask
                remaining -= bits
            }
            return (lower, upper)
        }
        addresses4 = Self.merged(policy.excludeAddresses.filter { $0.address.isIPv4 }.map(prefixRange))
        addresses6 = Self.merged(policy.excludeAddresses.filter { !$0.address.isIPv4 }.map(prefixRange))
        ports = Self.merged(policy.excludePorts.map(Self.portRange))
        managedPorts = policy.managePorts.isEmpty ? nil : Self.merged(policy.managePorts.map(Self.portRange))
    }

    /// The exclusions of `policy`, and, unless nil, the ports whose plain SYNs rackd must still see.
    init(_ policy: Policy, rocksPorts: [PortRange]?) {
        self.init(policy)
        self.rocksPorts = rocksPorts.map { Self.merged($0.map(Self.portRange)) }
    }

    static func portKey(_ port: UInt16) -> [UInt8] { [UInt8(port >> 8), UInt8(port & 0xff)] }

    static func portRange(_ range: PortRange) -> Range { (portKey(range.lower), portKey(range.upper)) }

    /// Sorts ranges and merges those that overlap or touch: the kernel's interval sets refuse overlaps.
    static func merged(_ ranges: [Range]) -> [Range] {
        var result: [Range] = []
        for range in ranges.sorted(by: { $0.lower.lexicographicallyPrecedes($1.lower) }) {
            // It touches the last one when it starts no later than the key after the last one's end.
            if let last = result.last, successor(last.upper).map({ !$0.lexicographicallyPrecedes(range.lower) }) ?? true {
                if last.upper.lexicographicallyPrecedes(range.upper) { result[result.count - 1].upper = range.upper }
            } else {
                result.append(range)
            }
        }
        return result
    }

    /// The key after `key`, big-endian; nil past the largest.
    static func successor(_ key: [UInt8]) -> [UInt8]? {
        var next = key
        for index in next.indices.reversed() {
            if next[index] == 0xFF {
                next[index] = 0
            } else {
                next[index] += 1
                return next
            }
        }
        return nil
    }

    /// The set elements of `ranges`: a start element per range, and an end element (flag INTERVAL_END) at
    /// the key after its last, unless it runs to the largest key.
    static func elements(_ ranges: [Range]) -> [(key: [UInt8], isEnd: Bool)] {
        ranges.flatMap { range -> [(key: [UInt8], isEnd: Bool)] in
            [(range.lower, false)] + (successor(range.upper).map { [($0, true)] } ?? [])
        }
    }
}

extension RackdRuleset {
    /// A set of the SYN chains (the flow maps are in RackdMaps.swift).
    struct SYNSet {
        var name: String
        var id: UInt32
        var keyLength: UInt32
        var keyType: UInt32
        var flags: UInt32
    }

    // Set ids are unique in a batch: the maps have 1–8 (RackdMaps.swift), these 11–17.
    static let ordinaryIPv4 = SYNSet(name: "ordinary4", id: 11, keyLength: 8, keyType: 7 << 6 | 13, flags: UInt32(NFT_SET_TIMEOUT.rawValue))
    static let ordinaryIPv6 = SYNSet(name: "ordinary6", id: 12, keyLength: 20, keyType: 8 << 6 | 13, flags: UInt32(NFT_SET_TIMEOUT.rawValue))
    static let excludedIPv4 = SYNSet(name: "excluded4", id: 13, keyLength: 4, keyType: 7, flags: UInt32(NFT_SET_INTERVAL.rawValue))
    static let excludedIPv6 = SYNSet(name: "excluded6", id: 14, keyLength: 16, keyType: 8, flags: UInt32(NFT_SET_INTERVAL.rawValue))
    static let excludedPorts = SYNSet(name: "excluded-ports", id: 15, keyLength: 2, keyType: 13, flags: UInt32(NFT_SET_INTERVAL.rawValue))
    static let managedPorts = SYNSet(name: "managed-ports", id: 16, keyLength: 2, keyType: 13, flags: UInt32(NFT_SET_INTERVAL.rawValue))
    static let rocksPorts = SYNSet(name: "rocks-ports", id: 17, keyLength: 2, keyType: 13, flags: UInt32(NFT_SET_INTERVAL.rawValue))

    /// The most elements per ordinary set, as the engine bounds its copy (`OrdinaryDestinations.maximum`).
    static let ordinarySetSize: UInt32 = 16384
    /// The ordinary sets' default timeout (each element carries its own; this one shows in `nft list`).
    static let ordinaryDefaultTimeout: Duration = .seconds(600)

    /// The regular chain a base chain's SYN rule jumps to.
    static func synChainName(_ hook: Hook) -> String { hook == .output ? "syn-output" : "syn-input" }

    private var synSets: [SYNSet] {
        [Self.ordinaryIPv4, Self.ordinaryIPv6, Self.excludedIPv4, Self.excludedIPv6, Self.excludedPorts]
            + (exclusions.managedPorts == nil ? [] : [Self.managedPorts])
            + (exclusions.rocksPorts == nil ? [] : [Self.rocksPorts])
    }

    /// The interval sets and their ranges (each filled by one message, if it has any).
    private var intervalSets: [(SYNSet, [SYNExclusions.Range])] {
        [(Self.excludedIPv4, exclusions.addresses4), (Self.excludedIPv6, exclusions.addresses6),
         (Self.excludedPorts, exclusions.ports), (Self.managedPorts, exclusions.managedPorts ?? []),
         (Self.rocksPorts, exclusions.rocksPorts ?? [])]
    }

    /// Adds the SYN chains' sets, their exclusion elements, `ordinary`'s elements and the chains with their
    /// rules to `batch`: before the base chains, whose SYN rule jumps to them.
    func appendSYNChains(holding ordinary: [OrdinaryDestination], to batch: NftablesBatch) {
        for set in synSets {
            Self.appendNewSet("add set \(set.name)", name: set.name, id: set.id, keyLength: set.keyLength,
                              keyType: set.keyType, flags: set.flags, to: batch) { nftSet in
                if set.flags & UInt32(NFT_SET_TIMEOUT.rawValue) != 0 {
                    nftnl_set_set_u64(nftSet, UInt16(NFTNL_SET_TIMEOUT.rawValue), Self.milliseconds(Self.ordinaryDefaultTimeout))
                    nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_DESC_SIZE.rawValue), Self.ordinarySetSize)
                }
            }
        }
        for (set, ranges) in intervalSets where !ranges.isEmpty {
            let elements = SYNExclusions.elements(ranges)
            batch.append("add \(elements.count) interval elements to \(set.name)", type: NFT_MSG_NEWSETELEM,
                         flags: NLM_F_CREATE) { header in
                Self.buildElements(set, header: header) { nftSet in
                    for element in elements {
                        let nftElement = nftnl_set_elem_alloc()!
                        element.key.withUnsafeBytes {
                            _ = nftnl_set_elem_set(nftElement, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
                        }
                        if element.isEnd {
                            nftnl_set_elem_set_u32(nftElement, UInt16(NFTNL_SET_ELEM_FLAGS), UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue))
                        }
                        nftnl_set_elem_add(nftSet, nftElement)  // the set owns the element now
                    }
                }
            }
        }
        Self.appendOrdinary(ordinary, to: batch)
        for hook in Hook.allCases {
            let name = Self.synChainName(hook)
            batch.append("add chain \(name)", type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE) { header in
                let chain = nftnl_chain_alloc()!
                defer { nftnl_chain_free(chain) }
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), Self.tableName)
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), name)
                nftnl_chain_nlmsg_build_payload(header, chain)
            }
            appendRules(synRules(for: hook), chain: name, to: batch)
        }
    }

    /// How many messages `appendSYNChains` adds for `ordinaryCount` ordinary elements, at most.
    func synChainsMessageCount(ordinaryCount: Int) -> Int {
        let rules = Hook.allCases.reduce(0) { $0 + 1 + synRuleCount(for: $1) }
        return synSets.count + intervalSets.count + (ordinaryCount + Self.elementsPerMessage - 1) / Self.elementsPerMessage + 2 + rules
    }

    /// Adds "these destinations are ordinary, each for its lifetime" to `batch`, many per message. An
    /// element already there keeps its own timeout (adding it again is no error).
    static func appendOrdinary(_ destinations: [OrdinaryDestination], to batch: NftablesBatch) {
        for set in [ordinaryIPv4, ordinaryIPv6] {
            let inSet = destinations.filter { $0.destination.address.isIPv4 == (set.name == ordinaryIPv4.name) }
            for start in stride(from: 0, to: inSet.count, by: elementsPerMessage) {
                let chunk = inSet[start..<min(inSet.count, start + elementsPerMessage)]
                batch.append("add \(chunk.count) elements to \(set.name), from \(chunk.first!)",
                             type: NFT_MSG_NEWSETELEM, flags: NLM_F_CREATE) { header in
                    buildElements(set, header: header) { nftSet in
                        for destination in chunk {
                            let element = nftnl_set_elem_alloc()!
                            ordinaryKey(destination.destination).withUnsafeBytes {
                                _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
                            }
                            // At least 1 ms: a zero timeout would mean the set's default.
                            nftnl_set_elem_set_u64(element, UInt16(NFTNL_SET_ELEM_TIMEOUT), max(1, milliseconds(destination.lifetime)))
                            nftnl_set_elem_add(nftSet, element)  // the set owns the element now
                        }
                    }
                }
            }
        }
    }

    /// An ordinary set's key: the address, then the port big-endian, padded to a 4-byte register.
    static func ordinaryKey(_ destination: TCPEndpoint) -> [UInt8] {
        destination.address.bytes + [UInt8(destination.port >> 8), UInt8(destination.port & 0xff), 0, 0]
    }

    private static func buildElements(_ set: SYNSet, header: UnsafeMutablePointer<nlmsghdr>,
                                      _ fill: (OpaquePointer) -> Void) {
        let nftSet = nftnl_set_alloc()!
        defer { nftnl_set_free(nftSet) }
        nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), tableName)
        nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), set.name)
        nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), family)
        fill(nftSet)
        nftnl_set_elems_nlmsg_build_payload(header, nftSet)
    }

    private static func milliseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1000 + UInt64(max(0, attoseconds) / 1_000_000_000_000_000)
    }

    // MARK: Rules

    func synRuleCount(for hook: Hook) -> Int {
        let built = synRules(for: hook)
        for rule in built { for expression in rule.expressions { nftnl_expr_free(expression) } }
        return built.count
    }

    func synRules(for hook: Hook) -> [Rule] {
        let r1 = NftRegister.r32(0)
        // Going out the remote end is the destination; coming in, the source.
        let (addressOffset4, addressOffset6): (UInt32, UInt32) = hook == .output ? (16, 24) : (12, 8)
        let remotePortOffset: UInt32 = hook == .output ? 2 : 0
        func flags(_ value: UInt8) -> [OpaquePointer] {
            [NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 13, length: 1, into: r1),
             NftExpression.and(register: r1, mask: [0x12]),
             NftExpression.compare(NFT_CMP_EQ, register: r1, [value])]
        }
        let syn: UInt8 = 0x02
        let synAck: UInt8 = 0x12
        func nfproto(_ value: Int) -> [OpaquePointer] {
            [NftExpression.meta(NFT_META_NFPROTO, into: r1), NftExpression.compare(NFT_CMP_EQ, register: r1, [UInt8(value)])]
        }
        func port(at offset: UInt32, in set: SYNSet, inverted: Bool = false) -> [OpaquePointer] {
            [NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: offset, length: 2, into: r1),
             NftExpression.lookup(set: set.name, setID: set.id, register: r1, inverted: inverted)]
        }
        var rules: [Rule] = []
        // First what the common case needs: a destination cached as ordinary (the first lookup its handshakes
        // meet). Each skip accepts: nothing further in the base chain concerns a handshake rackd leaves alone.
        // Our SYN to an ordinary destination going out; its SYN-ACK coming in.
        for (set, offset, length) in [(Self.ordinaryIPv4, addressOffset4, UInt32(4)), (Self.ordinaryIPv6, addressOffset6, UInt32(16))] {
            rules.append(Rule(comment: "destinations known to be ordinary peers (\(set.name))", expressions:
                flags(hook == .output ? syn : synAck) + nfproto(length == 4 ? NFPROTO_IPV4 : NFPROTO_IPV6) + [
                    NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: offset, length: length, into: r1),
                    NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: remotePortOffset, length: 2,
                                          into: NftRegister.r32(length / 4)),
                    NftExpression.lookup(set: set.name, setID: set.id, register: r1),
                    NftExpression.accept(),
                ]))
        }
        for (kind, name) in [(UInt8(19), "TCP-MD5"), (UInt8(29), "TCP-AO")] {
            rules.append(Rule(comment: "\(name) connections are never managed", expressions: [
                NftExpression.tcpOptionPresent(kind: kind, into: r1),
                NftExpression.compare(NFT_CMP_EQ, register: r1, [1]),
                NftExpression.accept(),
            ]))
        }
        rules.append(Rule(comment: "excluded peer addresses (IPv4)", expressions: nfproto(NFPROTO_IPV4) + [
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: addressOffset4, length: 4, into: r1),
            NftExpression.lookup(set: Self.excludedIPv4.name, setID: Self.excludedIPv4.id, register: r1),
            NftExpression.accept(),
        ]))
        rules.append(Rule(comment: "excluded peer addresses (IPv6)", expressions: nfproto(NFPROTO_IPV6) + [
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: addressOffset6, length: 16, into: r1),
            NftExpression.lookup(set: Self.excludedIPv6.name, setID: Self.excludedIPv6.id, register: r1),
            NftExpression.accept(),
        ]))
        // The server port: a SYN's destination port, a SYN-ACK's source port.
        rules.append(Rule(comment: "excluded server ports (SYN)", expressions:
            flags(syn) + port(at: 2, in: Self.excludedPorts) + [NftExpression.accept()]))
        rules.append(Rule(comment: "excluded server ports (SYN-ACK)", expressions:
            flags(synAck) + port(at: 0, in: Self.excludedPorts) + [NftExpression.accept()]))
        if exclusions.managedPorts != nil {
            rules.append(Rule(comment: "server ports not in manage-ports (SYN)", expressions:
                flags(syn) + port(at: 2, in: Self.managedPorts, inverted: true) + [NftExpression.accept()]))
            rules.append(Rule(comment: "server ports not in manage-ports (SYN-ACK)", expressions:
                flags(synAck) + port(at: 0, in: Self.managedPorts, inverted: true) + [NftExpression.accept()]))
        }
        if exclusions.rocksPorts != nil {
            rules += ordinaryClientRules(hook, flags: flags(_:), port: { port(at: $0, in: Self.rocksPorts, inverted: true) })
        }
        rules.append(Rule(comment: "every other SYN and SYN-ACK: detection", expressions: [queue(bypass: true)]))
        return rules
    }

    /// The server's side of a handshake with an ordinary client. Its SYN carries no rackd option, and
    /// unless it is for a port a rocks role needs, rackd has nothing to do with it: accepted. Our SYN-ACK
    /// matters only to a client whose SYN had the option, and the engine queues such a flow from its SYN
    /// until the connection is established (RackdDetection.swift, KernelNeeds.swift): the flow maps send it
    /// to the queue, and every other SYN-ACK, outside the rocks ports, is accepted.
    private func ordinaryClientRules(_ hook: Hook, flags: (UInt8) -> [OpaquePointer],
                                     port notRocks: (UInt32) -> [OpaquePointer]) -> [Rule] {
        let r1 = NftRegister.r32(0)
        switch hook {
        case .input:
            // tcp flags & (syn | ack) == syn tcp option 253 missing tcp dport != @rocks-ports accept
            return [Rule(comment: "a SYN without rackd's option, to a port no rocks role needs: an ordinary client",
                         expressions: flags(0x02) + [
                            NftExpression.tcpOptionPresent(kind: Self.messageOptionKind, into: r1),
                            NftExpression.compare(NFT_CMP_EQ, register: r1, [0]),
                         ] + notRocks(2) + [NftExpression.accept()])]
        case .output:
            // tcp flags & (syn | ack) == syn | ack <flow> vmap @flows_out4 (and 6), then
            // tcp flags & (syn | ack) == syn | ack tcp sport != @rocks-ports accept
            let queuedFlows = [FlowMap.Family.v4, .v6].map { family in
                let map = FlowMap.flows(hook, family)
                return Rule(comment: "our SYN-ACK on a flow rackd queues (\(map.name)): a rackd client's handshake",
                            expressions: flags(0x12) + flowKey(map, hook: hook) + [
                                NftExpression.mapLookup(map: map.name, mapID: map.id, register: NftRegister.r32(0),
                                                        into: NftRegister.verdict),
                            ])
            }
            return queuedFlows + [Rule(comment: "our SYN-ACK to any other client, outside the rocks ports: an ordinary one",
                                       expressions: flags(0x12) + notRocks(0) + [NftExpression.accept()])]
        }
    }

    /// Adds `rules` to `chain` in `batch`.
    func appendRules(_ rules: [Rule], chain: String, to batch: NftablesBatch) {
        for rule in rules {
            batch.append("add rule \(chain): \(rule.comment) (\(variant.rawValue) queue)",
                         type: NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { header in
                let nftRule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(nftRule) }
                nftnl_rule_set_str(nftRule, UInt16(NFTNL_RULE_TABLE.rawValue), Self.tableName)
                nftnl_rule_set_str(nftRule, UInt16(NFTNL_RULE_CHAIN.rawValue), chain)
                nftnl_rule_set_u32(nftRule, UInt16(NFTNL_RULE_FAMILY.rawValue), Self.family)
                for expression in rule.expressions { nftnl_rule_add_expr(nftRule, expression) }
                Self.attachComment(rule.comment, to: nftRule)
                nftnl_rule_nlmsg_build_payload(header, nftRule)
            }
        }
    }
}
