// rackd — the table rackd installs, rule by rule.
//
// Everything lives in rackd's own table `inet rackd`, created (or replaced, with the maps' elements) and
// deleted in one batch each. In text form (the maps are described in RackdMaps.swift):
//
//     table inet rackd {
//         map flows_out4 { type ipv4_addr . inet_service . ipv4_addr . inet_service : verdict; }
//         map flows_in4, flows_out6, flows_in6 (the same; ipv6_addr for 6)
//         map wire_of4 { type ipv4_addr . inet_service . ipv4_addr . inet_service : ipv4_addr . inet_service . ipv4_addr . inet_service; }
//         map socket_of4, wire_of6, socket_of6 (the same)
//         (the SYN chains' sets: ordinary4, ordinary6, excluded4, excluded6, excluded-ports, managed-ports)
//         chain syn-output { ... }  chain syn-input { ... }   (RackdRuleset+Ordinary.swift: policy exclusions
//                                    and ordinary destinations return unqueued; the rest: queue num Q bypass)
//         chain output {
//             type route hook output priority mangle; policy accept;
//             meta l4proto != tcp accept
//             meta mark & MARK == MARK accept
//             tcp flags & syn == syn meta oiftype != loopback jump syn-output
//             meta nfproto ipv4 ip saddr . tcp sport . ip daddr . tcp dport vmap @flows_out4
//             meta nfproto ipv6 ip6 saddr . tcp sport . ip6 daddr . tcp dport vmap @flows_out6
//         }
//         chain input {
//             type filter hook input priority mangle; policy accept;
//             meta l4proto != tcp accept
//             meta mark & MARK == MARK accept
//             tcp flags & syn == syn meta iiftype != loopback jump syn-input
//             @th,160,8 == 253 meta len <= 120 meta iiftype != loopback tcp option 253 exists queue num Q bypass
//             meta nfproto ipv4 ip daddr . tcp dport . ip saddr . tcp sport vmap @flows_in4
//             meta nfproto ipv6 (the same) vmap @flows_in6
//         }
//         chain own-packets {                   (only when rackd can shift: Core/KernelShift.swift)
//             type filter hook output priority raw; policy accept;
//             meta mark & MARK == MARK meta oiftype != loopback notrack
//         }
//         chain queued {
//             ct status & seq-adjust != 0 queue num Q+1      (only when rackd can shift: Core/KernelShift.swift)
//             queue num Q
//         }
//         chain screened {                      (a rocks client whose splice left no offset, inbound)
//             tcp flags & (fin | syn | rst) != 0 queue num Q
//             counter accept
//         }
//         chain shifted {                       (a rocks connection whose shift conntrack carries, inbound)
//             ct status & seq-adjust != 0 jump shifted_screen   (only when rackd can shift: Core/KernelShift.swift)
//             queue num Q                                       (no entry, or one without the shift)
//         }
//         chain shifted_screen {                (what conntrack shifts: Q + 1, the shift queue, tells rackd so)
//             tcp flags & (fin | syn | rst) != 0 queue num Q+1
//             counter accept
//         }
//         chain shifted_out {                   (the same connection, outbound: every packet, for the send ring)
//             ct status & seq-adjust != 0 queue num Q+1
//             queue num Q
//         }
//         chain shifted_rewrite_in4 {           (the same after a reconnection: the link's packets, inbound)
//             ct status & seq-adjust != 0 goto shifted_rewrite_screen_in4
//             queue num Q
//         }
//         chain shifted_rewrite_screen_in4 {
//             tcp flags & (fin | syn | rst) != 0 queue num Q+1
//             ip daddr . tcp dport . ip saddr . tcp sport map @socket_of4 → ip daddr, tcp dport, ip saddr, tcp sport
//         }
//         chain shifted_rewrite_in6, shifted_rewrite_screen_in6 (the same for IPv6; rocks is IPv4 only)
//         chain rewrite_out4 { ip saddr . tcp sport . ip daddr . tcp dport map @wire_of4 → ip saddr, tcp sport, ip daddr, tcp dport }
//         chain rewrite_in4 {
//             tcp flags & rst == rst queue num Q
//             ip daddr . tcp dport . ip saddr . tcp sport map @socket_of4 → ip daddr, tcp dport, ip saddr, tcp sport
//         }
//         chain rewrite_out6, rewrite_in6 (the same for IPv6)
//     }
//
// Map keys are always written local address . local port . remote address . remote port, so the key of
// a flow is the same in both directions.
//
// One early decision per packet (docs/architecture.md, "Data path"): anything but TCP leaves at the first
// rule; a TCP segment of a flow rackd does not manage, or of a healthy one, costs the mark and SYN
// tests and one map lookup. Only small segments are searched for rackd's option: its messages are
// injected segments without payload (Peers/Rackd/Connection+RackdKeyExchange.swift, `controlSegment`),
// at most 60 bytes of TCP header behind at most 60 of IP header.
//
// The output chain is of type `route`: when a rewrite changes a packet's addresses the kernel routes it
// again, as it does for a packet the queue changed.
//
// Fail-open or fail-closed (docs/architecture.md, "Kernel facts": queueing and rules): the SYN chains' queue
// rule has `bypass`, so if rackd is gone new connections still open, as plain TCP. The managed-flow rules do not: a
// flow rackd manages may be rewritten, and letting its packets through untouched would corrupt it. Such
// flows stall until rackd is back (or until `rackd cleanup`). A moved flow the kernel rewrites keeps
// running without rackd. For the same reason the table does not carry NFT_TABLE_F_OWNER: a crashed rackd
// leaves the rules in place so that a restarted rackd finds its flows frozen, or still moving, not broken.

import CNftables
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// How the rules send packets to the queue.
public enum QueueRuleVariant: String, Sendable {
    /// The native nftables `queue` statement.
    case native
    /// The xtables-compat NFQUEUE target inside an nftables rule.
    case compat
}

/// The names and shape of rackd's table, and the batches that create and delete it.
struct RackdRuleset {
    static let tableName = "rackd"
    static let family = UInt32(NFPROTO_INET)

    var queueNumber: UInt16
    var firewallMark: UInt32
    var variant: QueueRuleVariant
    /// The policy's exclusions, which the SYN chains skip (RackdRuleset+Ordinary.swift).
    var exclusions = SYNExclusions()
    /// Whether the `shifted` chain tests conntrack's status (Core/KernelShift.swift). A rule that reads
    /// `ct` makes conntrack track every flow of the network namespace, so the table has one only when
    /// rackd can shift flows in the kernel (rocks enabled, ctnetlink there).
    var kernelShifts = false

    // MARK: Chains

    enum Hook: CaseIterable {
        case output, input

        var chainName: String { self == .output ? "output" : "input" }
        var number: UInt32 { UInt32(self == .output ? NF_INET_LOCAL_OUT.rawValue : NF_INET_LOCAL_IN.rawValue) }
        /// `route` on output, so a rewritten packet is routed again.
        var chainType: String { self == .output ? "route" : "filter" }
    }

    /// A chain of the table: a base chain on a hook, or one the maps send packets to.
    struct Chain {
        var name: String
        var hook: Hook?
        /// A base chain's priority: mangle (−150), after conntrack (−200), before NAT (−100) and the filter
        /// tables (0); raw (−300) for the one that must come before conntrack.
        var priority: Int32 = -150
    }

    static let queuedChain = "queued"
    static let screenedChain = "screened"
    static let shiftedChain = "shifted"
    static let shiftedOutChain = "shifted_out"
    static let shiftedScreenChain = "shifted_screen"

    /// The queue of packets conntrack shifts after their verdict: the next one; nil past the last number.
    static func shiftQueueNumber(after queueNumber: UInt16) -> UInt16? {
        queueNumber == .max ? nil : queueNumber + 1
    }

    /// The chain a verdict map's element sends a packet to.
    static func chainName(of verdict: FlowVerdict) -> String {
        switch verdict {
        case .queue, .drop: queuedChain
        case .screen: screenedChain
        case .shift: shiftedChain
        case .shiftOut: shiftedOutChain
        case .shiftRewrite(let family): "shifted_rewrite_in\(family == .v4 ? "4" : "6")"
        case .rewrite(let hook, let family):
            "rewrite_\(hook == .output ? "out" : "in")\(family == .v4 ? "4" : "6")"
        }
    }

    /// Every chain, in the order they are created: those the maps' elements name come before the hooks'.
    /// The chain `shifted_rewrite_in4` sends what conntrack shifts to: the screen, then the rewrite.
    static func shiftedRewriteScreenChain(_ family: FlowMap.Family) -> String {
        "shifted_rewrite_screen_in\(family == .v4 ? "4" : "6")"
    }

    /// With kernel shifts, rackd's own packets toward the network skip conntrack (priority raw, before it): an injected segment
    /// on a shifted flow's tuple would otherwise be shifted again, and one on a reconnected flow's link would
    /// make an entry whose reply tuple clashes with the shifted entry's, and be dropped at confirmation
    /// (EPERM to rackd's raw socket: seen in test_restart_rocks_client.sh).
    static let ownPacketsChain = Chain(name: "own-packets", hook: .output, priority: -300)

    /// Every chain, in the order they are created: those the maps' elements name come before the hooks'.
    var chains: [Chain] { Self.fixedChains + (kernelShifts ? [Self.ownPacketsChain] : []) }

    private static let fixedChains: [Chain] = [queuedChain, screenedChain, shiftedScreenChain, shiftedChain, shiftedOutChain]
        .map { Chain(name: $0, hook: nil) }
        + [Hook.output, .input].flatMap { hook in
            [FlowMap.Family.v4, .v6].map { Chain(name: chainName(of: .rewrite(hook, $0)), hook: nil) }
        }
        + [FlowMap.Family.v4, .v6].flatMap { family in
            [shiftedRewriteScreenChain(family), chainName(of: .shiftRewrite(family))].map { Chain(name: $0, hook: nil) }
        }
        + Hook.allCases.map { Chain(name: $0.chainName, hook: $0) }

    /// Every chain's name, the SYN chains' (RackdRuleset+Ordinary.swift, created with their sets) included.
    var chainNames: [String] { chains.map(\.name) + Hook.allCases.map(Self.synChainName) }

    // MARK: Batches

    /// Adds "replace whatever table inet rackd there is with the whole table, holding `elements`" to
    /// `batch`: `add table` (without NLM_F_EXCL it succeeds whether or not the table exists), `delete
    /// table`, then the create and the elements. The kernel commits a batch at once, so nobody ever sees no
    /// table, or a table without its elements. (NFT_MSG_DESTROYTABLE, which would spare the `add`, needs
    /// Linux 6.3; Debian 12 has 6.1.)
    func appendReplace(holding elements: [FlowMapElement], ordinary: [OrdinaryDestination] = [],
                       to batch: NftablesBatch) {
        Self.appendAddTable(to: batch, step: "make sure table inet rackd exists")
        Self.appendDelete(to: batch)
        appendCreate(ordinary: ordinary, to: batch)
        Self.appendElements(elements, adding: true, to: batch)
    }

    /// How many messages `appendReplace` adds for `elements`, at most.
    func replaceMessageCount(elements: [FlowMapElement], ordinaryCount: Int = 0) -> Int {
        let chainsAndRules = chains.reduce(0) { $0 + 1 + ruleCount(for: $1.name) }
        let elementMessages = Self.elementMessageCount(elements)
        // The batch's begin and end; add, delete; the table and its maps; chains, rules, elements; the SYN
        // chains with their sets.
        return 2 + 2 + 1 + FlowMap.all.count + chainsAndRules + elementMessages
            + synChainsMessageCount(ordinaryCount: ordinaryCount)
    }

    /// Adds "create the whole table" to `batch`, its ordinary sets holding `ordinary`.
    func appendCreate(ordinary: [OrdinaryDestination] = [], to batch: NftablesBatch) {
        Self.appendAddTable(to: batch, step: "add table inet rackd")
        for map in FlowMap.all {
            Self.appendNewSet("add map \(map.name)", name: map.name, id: map.id, keyLength: map.keyLength,
                              keyType: map.keyType, flags: UInt32(NFT_SET_MAP.rawValue), to: batch) { nftSet in
                switch map.value {
                case .verdict:
                    nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_DATA_TYPE.rawValue), UInt32(NFT_DATA_VERDICT.rawValue))
                case .flow:
                    nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_DATA_TYPE.rawValue), map.keyType)
                    nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_DATA_LEN.rawValue), map.keyLength)
                }
            }
        }
        // The SYN chains and their sets, before the hooks' chains jump to them.
        appendSYNChains(holding: ordinary, to: batch)
        for chain in chains {
            batch.append("add chain \(chain.name)", type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE) { header in
                let nftChain = nftnl_chain_alloc()!
                defer { nftnl_chain_free(nftChain) }
                nftnl_chain_set_str(nftChain, UInt16(NFTNL_CHAIN_TABLE.rawValue), Self.tableName)
                nftnl_chain_set_str(nftChain, UInt16(NFTNL_CHAIN_NAME.rawValue), chain.name)
                if let hook = chain.hook {
                    nftnl_chain_set_str(nftChain, UInt16(NFTNL_CHAIN_TYPE.rawValue), hook.chainType)
                    nftnl_chain_set_u32(nftChain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), hook.number)
                    nftnl_chain_set_s32(nftChain, UInt16(NFTNL_CHAIN_PRIO.rawValue), chain.priority)
                    nftnl_chain_set_u32(nftChain, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
                }
                nftnl_chain_nlmsg_build_payload(header, nftChain)
            }
            appendRules(rules(for: chain.name), chain: chain.name, to: batch)
        }
    }

    /// Adds "create this set (or map)" to `batch`; `configure` sets what only some sets have (map data,
    /// timeouts).
    static func appendNewSet(_ step: String, name: String, id: UInt32, keyLength: UInt32, keyType: UInt32,
                             flags: UInt32, to batch: NftablesBatch, configure: (OpaquePointer) -> Void = { _ in }) {
        batch.append(step, type: NFT_MSG_NEWSET, flags: NLM_F_CREATE) { header in
            let nftSet = nftnl_set_alloc()!
            defer { nftnl_set_free(nftSet) }
            nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), tableName)
            nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), name)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), family)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_ID.rawValue), id)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_KEY_LEN.rawValue), keyLength)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_KEY_TYPE.rawValue), keyType)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FLAGS.rawValue), flags)
            configure(nftSet)
            nftnl_set_nlmsg_build_payload(header, nftSet)
        }
    }

    /// Adds "add table inet rackd" to `batch`; it succeeds if the table exists already.
    private static func appendAddTable(to batch: NftablesBatch, step: String) {
        batch.append(step, type: NFT_MSG_NEWTABLE, flags: NLM_F_CREATE) { header in
            let table = nftnl_table_alloc()!
            defer { nftnl_table_free(table) }
            nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), tableName)
            nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue), family)
            nftnl_table_nlmsg_build_payload(header, table)
        }
    }

    /// Adds "delete the whole table" to `batch`.
    static func appendDelete(to batch: NftablesBatch) {
        batch.append("delete table inet rackd", type: NFT_MSG_DELTABLE, flags: 0) { header in
            let table = nftnl_table_alloc()!
            defer { nftnl_table_free(table) }
            nftnl_table_set_str(table, UInt16(NFTNL_TABLE_NAME.rawValue), tableName)
            nftnl_table_set_u32(table, UInt16(NFTNL_TABLE_FAMILY.rawValue), family)
            nftnl_table_nlmsg_build_payload(header, table)
        }
    }

    /// Adds "delete every rule of the hooks' chains, keep the chains" to `batch` (`nft flush chain` on
    /// each): nothing is queued or rewritten any more, yet no hook goes away, which would make the kernel
    /// drop every packet still queued (docs/architecture.md, "Kernel facts: NFQUEUE reader").
    static func appendFlushRules(to batch: NftablesBatch) {
        for hook in Hook.allCases {
            batch.append("flush chain \(hook.chainName)", type: NFT_MSG_DELRULE, flags: 0) { header in
                let rule = nftnl_rule_alloc()!
                defer { nftnl_rule_free(rule) }
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue), tableName)
                nftnl_rule_set_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue), hook.chainName)
                nftnl_rule_set_u32(rule, UInt16(NFTNL_RULE_FAMILY.rawValue), family)
                nftnl_rule_nlmsg_build_payload(header, rule)
            }
        }
    }

    /// Elements per NFT_MSG_NEWSETELEM message: 256 IPv6 elements with IPv6 data are about 28 KiB.
    static let elementsPerMessage = 256

    /// How many messages `appendElements` uses for `elements`.
    static func elementMessageCount(_ elements: [FlowMapElement]) -> Int {
        Dictionary(grouping: elements, by: \.map.name).values.reduce(0) {
            $0 + ($1.count + elementsPerMessage - 1) / elementsPerMessage
        }
    }

    /// Adds "add these elements to (or delete them from) their maps" to `batch`, in order, many elements
    /// of one map per message.
    static func appendElements(_ elements: [FlowMapElement], adding: Bool, to batch: NftablesBatch) {
        var start = 0
        while start < elements.count {
            let map = elements[start].map
            var end = start + 1
            while end < elements.count, end - start < elementsPerMessage, elements[end].map == map { end += 1 }
            let chunk = elements[start..<end]
            let step = chunk.count == 1 ? "\(adding ? "add" : "delete") element \(chunk.first!)"
                : "\(adding ? "add" : "delete") \(chunk.count) elements of \(map.name), from \(chunk.first!.key)"
            batch.append(step, type: adding ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                         flags: adding ? NLM_F_CREATE : 0, acknowledged: false) { header in
                let nftSet = nftnl_set_alloc()!
                defer { nftnl_set_free(nftSet) }
                nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), tableName)
                nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), map.name)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), family)
                for element in chunk { element.add(to: nftSet) }
                nftnl_set_elems_nlmsg_build_payload(header, nftSet)
            }
            start = end
        }
    }

    // MARK: Helpers

    /// Rules carry a comment in their user data, so `nft list` shows why each exists.
    static func attachComment(_ comment: String, to rule: OpaquePointer) {
        let text = "rackd: " + comment
        let userData = nftnl_udata_buf_alloc(UInt32(text.utf8.count + 16))!
        defer { nftnl_udata_buf_free(userData) }
        _ = nftnl_udata_put_strz(userData, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), text)
        nftnl_rule_set_data(rule, UInt16(NFTNL_RULE_USERDATA.rawValue),
                            nftnl_udata_buf_data(userData), nftnl_udata_buf_len(userData))
    }
}
