// rackd — the table rackd installs, rule by rule.
//
// Everything lives in rackd's own table `inet rackd`, created (or replaced, with the managed sets' elements)
// and deleted in one batch each. In text form:
//
//     table inet rackd {
//         set managed4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }
//         set managed6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }
//         chain output {
//             type filter hook output priority mangle; policy accept;
//             meta oiftype loopback accept
//             meta mark & MARK == MARK accept
//             meta l4proto tcp tcp flags & syn == syn queue num Q bypass
//             meta nfproto ipv4 meta l4proto tcp ip saddr . tcp sport . ip daddr . tcp dport @managed4 queue num Q
//             meta nfproto ipv6 meta l4proto tcp ip6 saddr . tcp sport . ip6 daddr . tcp dport @managed6 queue num Q
//         }
//         chain input {
//             type filter hook input priority mangle; policy accept;
//             (the same, with iiftype, and with the set key read as daddr . dport . saddr . sport), and:
//             meta l4proto tcp tcp option 253 exists queue num Q bypass
//         }
//     }
//
// Set elements are always written local address . local port . remote address . remote port, so one
// element covers both directions of a flow.
//
// Fail-open or fail-closed (docs/architecture.md, "Kernel facts": queueing and rules): the SYN rule has
// `bypass`, so if rackd is gone new connections still open, as plain TCP. The managed-flow rules do not: a
// flow rackd manages may be rewritten, and letting its packets through untouched would corrupt it. Such
// flows stall until rackd is back (or until `rackd cleanup`). For the same reason the table does not carry
// NFT_TABLE_F_OWNER: a crashed rackd leaves the rules in place so that a restarted rackd finds its flows
// frozen, not broken.

import CNftables

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

    /// A set of managed flows, one per address family.
    struct ManagedSet {
        var name: String
        var id: UInt32
        var addressLength: UInt32
        /// nft's data type id of the concatenation, so `nft list` prints the set's type.
        var keyType: UInt32
        var nfproto: UInt8
        /// Offsets of source and destination address in the network header.
        var sourceOffset: UInt32
        var destinationOffset: UInt32

        /// Length of a key: address, port padded to 4 bytes, address, port padded to 4 bytes.
        var keyLength: UInt32 { 2 * (addressLength + 4) }
    }

    static let managedIPv4 = ManagedSet(
        name: "managed4", id: 1, addressLength: 4, keyType: concatenatedType([7, 13, 7, 13]),
        nfproto: UInt8(NFPROTO_IPV4), sourceOffset: 12, destinationOffset: 16)
    static let managedIPv6 = ManagedSet(
        name: "managed6", id: 2, addressLength: 16, keyType: concatenatedType([8, 13, 8, 13]),
        nfproto: UInt8(NFPROTO_IPV6), sourceOffset: 8, destinationOffset: 24)

    var queueNumber: UInt16
    var firewallMark: UInt32
    var variant: QueueRuleVariant

    // MARK: Batches

    /// Adds "replace whatever table inet rackd there is with the whole table, holding `elements`" to
    /// `batch`: `add table` (without NLM_F_EXCL it succeeds whether or not the table exists), `delete
    /// table`, then the create and the elements. The kernel commits a batch at once, so nobody ever sees no
    /// table, or a table without its elements. (NFT_MSG_DESTROYTABLE, which would spare the `add`, needs
    /// Linux 6.3; Debian 12 has 6.1.)
    func appendReplace(holding elements: [ManagedFlowKey], to batch: NftablesBatch) {
        Self.appendAddTable(to: batch, step: "make sure table inet rackd exists")
        Self.appendDelete(to: batch)
        appendCreate(to: batch)
        Self.appendElements(elements, to: batch)
    }

    /// How many messages `appendReplace` adds for `elementCount` elements, at most.
    func replaceMessageCount(elementCount: Int) -> Int {
        let chainsAndRules = Hook.allCases.reduce(0) { $0 + 1 + ruleCount(for: $1) }
        let elementMessages = (elementCount + Self.elementsPerMessage - 1) / Self.elementsPerMessage
        // The batch's begin and end; add, delete; the table and its two sets; chains, rules, elements.
        return 2 + 2 + 3 + chainsAndRules + elementMessages
    }

    /// Adds "create the whole table" to `batch`.
    func appendCreate(to batch: NftablesBatch) {
        Self.appendAddTable(to: batch, step: "add table inet rackd")
        for set in [Self.managedIPv4, Self.managedIPv6] {
            batch.append("add set \(set.name)", type: NFT_MSG_NEWSET, flags: NLM_F_CREATE) { header in
                let nftSet = nftnl_set_alloc()!
                defer { nftnl_set_free(nftSet) }
                nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), Self.tableName)
                nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), set.name)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), Self.family)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_ID.rawValue), set.id)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_KEY_LEN.rawValue), set.keyLength)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_KEY_TYPE.rawValue), set.keyType)
                nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FLAGS.rawValue), 0)
                nftnl_set_nlmsg_build_payload(header, nftSet)
            }
        }
        for hook in Hook.allCases {
            batch.append("add chain \(hook.chainName)", type: NFT_MSG_NEWCHAIN, flags: NLM_F_CREATE) { header in
                let chain = nftnl_chain_alloc()!
                defer { nftnl_chain_free(chain) }
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TABLE.rawValue), Self.tableName)
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_NAME.rawValue), hook.chainName)
                nftnl_chain_set_str(chain, UInt16(NFTNL_CHAIN_TYPE.rawValue), "filter")
                nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_HOOKNUM.rawValue), hook.number)
                // mangle: after conntrack (-200), before NAT (-100) and the filter tables (0).
                nftnl_chain_set_s32(chain, UInt16(NFTNL_CHAIN_PRIO.rawValue), -150)
                nftnl_chain_set_u32(chain, UInt16(NFTNL_CHAIN_POLICY.rawValue), UInt32(NF_ACCEPT))
                nftnl_chain_nlmsg_build_payload(header, chain)
            }
            for rule in rules(for: hook) {
                batch.append("add rule \(hook.chainName): \(rule.comment) (\(variant.rawValue) queue)",
                             type: NFT_MSG_NEWRULE, flags: NLM_F_CREATE | NLM_F_APPEND) { header in
                    let nftRule = nftnl_rule_alloc()!
                    defer { nftnl_rule_free(nftRule) }
                    nftnl_rule_set_str(nftRule, UInt16(NFTNL_RULE_TABLE.rawValue), Self.tableName)
                    nftnl_rule_set_str(nftRule, UInt16(NFTNL_RULE_CHAIN.rawValue), hook.chainName)
                    nftnl_rule_set_u32(nftRule, UInt16(NFTNL_RULE_FAMILY.rawValue), Self.family)
                    for expression in rule.expressions { nftnl_rule_add_expr(nftRule, expression) }
                    Self.attachComment(rule.comment, to: nftRule)
                    nftnl_rule_nlmsg_build_payload(header, nftRule)
                }
            }
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

    /// Adds "delete every rule, keep the chains" to `batch` (`nft flush chain` on each): nothing is queued
    /// any more, yet no hook goes away, which would make the kernel drop every packet still queued
    /// (docs/architecture.md, "Kernel facts: NFQUEUE reader").
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

    /// Adds "add this flow to (or remove it from) the managed set" to `batch`.
    static func appendElement(_ key: ManagedFlowKey, adding: Bool, to batch: NftablesBatch) {
        let set = key.isIPv6 ? managedIPv6 : managedIPv4
        batch.append("\(adding ? "add" : "delete") element \(set.name) \(key)",
                     type: adding ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
                     flags: adding ? NLM_F_CREATE : 0, acknowledged: false) { header in
            let nftSet = nftnl_set_alloc()!
            defer { nftnl_set_free(nftSet) }
            nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), tableName)
            nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), set.name)
            nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), family)
            let element = nftnl_set_elem_alloc()!
            let bytes = key.setKeyBytes
            bytes.withUnsafeBytes {
                _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
            }
            nftnl_set_elem_add(nftSet, element)  // the set owns the element now
            nftnl_set_elems_nlmsg_build_payload(header, nftSet)
        }
    }

    /// Elements per NFT_MSG_NEWSETELEM message in `appendElements`: 256 IPv6 elements are about 14 KiB.
    static let elementsPerMessage = 256

    /// Adds "add these flows to the managed sets" to `batch`, many elements per message.
    static func appendElements(_ keys: [ManagedFlowKey], to batch: NftablesBatch) {
        for set in [managedIPv4, managedIPv6] {
            let inSet = keys.filter { ($0.isIPv6 ? managedIPv6 : managedIPv4).name == set.name }
            for start in stride(from: 0, to: inSet.count, by: elementsPerMessage) {
                let chunk = inSet[start..<min(inSet.count, start + elementsPerMessage)]
                batch.append("add \(chunk.count) elements to \(set.name), from \(chunk.first!)",
                             type: NFT_MSG_NEWSETELEM, flags: NLM_F_CREATE) { header in
                    let nftSet = nftnl_set_alloc()!
                    defer { nftnl_set_free(nftSet) }
                    nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_TABLE.rawValue), tableName)
                    nftnl_set_set_str(nftSet, UInt16(NFTNL_SET_NAME.rawValue), set.name)
                    nftnl_set_set_u32(nftSet, UInt16(NFTNL_SET_FAMILY.rawValue), family)
                    for key in chunk {
                        let element = nftnl_set_elem_alloc()!
                        key.setKeyBytes.withUnsafeBytes {
                            _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
                        }
                        nftnl_set_elem_add(nftSet, element)  // the set owns the element now
                    }
                    nftnl_set_elems_nlmsg_build_payload(header, nftSet)
                }
            }
        }
    }

    // MARK: Rules

    /// How many rules `hook`'s chain holds.
    func ruleCount(for hook: Hook) -> Int {
        let built = rules(for: hook)
        for rule in built { for expression in rule.expressions { nftnl_expr_free(expression) } }
        return built.count
    }

    enum Hook: CaseIterable {
        case output, input

        var chainName: String { self == .output ? "output" : "input" }
        var number: UInt32 { UInt32(self == .output ? NF_INET_LOCAL_OUT.rawValue : NF_INET_LOCAL_IN.rawValue) }
    }

    struct Rule {
        var comment: String
        var expressions: [OpaquePointer]
    }

    func rules(for hook: Hook) -> [Rule] {
        let r1 = NftRegister.r32(0)
        let tcp = NftExpression.compare(NFT_CMP_EQ, register: r1, [UInt8(IPPROTO_TCP)])
        var rules: [Rule] = []
        // meta oiftype loopback accept  /  meta iiftype loopback accept
        rules.append(Rule(comment: "loopback is never managed", expressions: [
            NftExpression.meta(hook == .output ? NFT_META_OIFTYPE : NFT_META_IFTYPE, into: r1),
            NftExpression.compare(NFT_CMP_EQ, register: r1, bytesOf(UInt16(772))),  // ARPHRD_LOOPBACK
            NftExpression.accept(),
        ]))
        // meta mark & MARK == MARK accept
        rules.append(Rule(comment: "packets rackd injected itself", expressions: [
            NftExpression.meta(NFT_META_MARK, into: r1),
            NftExpression.and(register: r1, mask: bytesOf(firewallMark)),
            NftExpression.compare(NFT_CMP_EQ, register: r1, bytesOf(firewallMark)),
            NftExpression.accept(),
        ]))
        // meta l4proto tcp tcp flags & syn == syn queue num Q bypass
        rules.append(Rule(comment: "TCP SYN and SYN-ACK: detection", expressions: [
            NftExpression.meta(NFT_META_L4PROTO, into: r1),
            tcp,
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: 13, length: 1, into: r1),
            NftExpression.and(register: r1, mask: [0x02]),
            NftExpression.compare(NFT_CMP_NEQ, register: r1, [0x00]),
            queue(bypass: true),
        ]))
        if hook == .input {
            // meta l4proto tcp tcp option 253 exists queue num Q bypass
            // rackd's messages (key exchange, resumption) arrive for flows that are not queued: a
            // healthy connection whose peer was cut off must still hear the peer's challenge.
            rules.append(Rule(comment: "rackd protocol messages (experimental option 253)", expressions: [
                NftExpression.meta(NFT_META_L4PROTO, into: r1),
                NftExpression.compare(NFT_CMP_EQ, register: r1, [UInt8(IPPROTO_TCP)]),
                NftExpression.tcpOptionPresent(kind: 253, into: r1),
                NftExpression.compare(NFT_CMP_EQ, register: r1, [1]),
                queue(bypass: true),
            ]))
        }
        for set in [Self.managedIPv4, Self.managedIPv6] {
            rules.append(Rule(comment: "every packet of a managed flow", expressions: managedFlowMatch(set, hook: hook) + [
                queue(bypass: false)
            ]))
        }
        return rules
    }

    /// `meta nfproto P meta l4proto tcp <local addr> . <local port> . <remote addr> . <remote port> @set`
    private func managedFlowMatch(_ set: ManagedSet, hook: Hook) -> [OpaquePointer] {
        let r1 = NftRegister.r32(0)
        let addressWords = set.addressLength / 4
        // On output the local end is the source; on input it is the destination.
        let (localAddress, remoteAddress) = hook == .output
            ? (set.sourceOffset, set.destinationOffset) : (set.destinationOffset, set.sourceOffset)
        let (localPort, remotePort): (UInt32, UInt32) = hook == .output ? (0, 2) : (2, 0)
        return [
            NftExpression.meta(NFT_META_NFPROTO, into: r1),
            NftExpression.compare(NFT_CMP_EQ, register: r1, [set.nfproto]),
            NftExpression.meta(NFT_META_L4PROTO, into: r1),
            NftExpression.compare(NFT_CMP_EQ, register: r1, [UInt8(IPPROTO_TCP)]),
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: localAddress, length: set.addressLength,
                                  into: NftRegister.r32(0)),
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: localPort, length: 2,
                                  into: NftRegister.r32(addressWords)),
            NftExpression.payload(NFT_PAYLOAD_NETWORK_HEADER, offset: remoteAddress, length: set.addressLength,
                                  into: NftRegister.r32(addressWords + 1)),
            NftExpression.payload(NFT_PAYLOAD_TRANSPORT_HEADER, offset: remotePort, length: 2,
                                  into: NftRegister.r32(2 * addressWords + 1)),
            NftExpression.lookup(set: set.name, setID: set.id, register: r1),
        ]
    }

    private func queue(bypass: Bool) -> OpaquePointer {
        switch variant {
        case .native: return NftExpression.nativeQueue(number: queueNumber, bypass: bypass)
        case .compat: return NftExpression.compatQueue(number: queueNumber, bypass: bypass)
        }
    }

    // MARK: Helpers

    /// Rules carry a comment in their user data, so `nft list` shows why each exists.
    private static func attachComment(_ comment: String, to rule: OpaquePointer) {
        let text = "rackd: " + comment
        let userData = nftnl_udata_buf_alloc(UInt32(text.utf8.count + 16))!
        defer { nftnl_udata_buf_free(userData) }
        _ = nftnl_udata_put_strz(userData, UInt8(NFTNL_UDATA_RULE_COMMENT.rawValue), text)
        nftnl_rule_set_data(rule, UInt16(NFTNL_RULE_USERDATA.rawValue),
                            nftnl_udata_buf_data(userData), nftnl_udata_buf_len(userData))
    }

    /// nft's encoding of a concatenated type: each part's type id in 6 bits, first part highest.
    private static func concatenatedType(_ parts: [UInt32]) -> UInt32 {
        parts.reduce(0) { ($0 << 6) | $1 }
    }

    /// The bytes of a value in host order, as registers hold meta values.
    private func bytesOf<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }
}
