// rackd — constructors for the nftables expressions rackd's rules are made of.
//
// Each returns a libnftnl expression ready for `nftnl_rule_add_expr`, which takes ownership of it.
// Register numbers follow nft's own allocation, so `nft --debug=netlink` output of the equivalent
// text rule matches what rackd installs.

import CNftables

#if canImport(Glibc)
import Glibc
#endif

/// nftables data registers, in the 32-bit numbering that concatenations use.
enum NftRegister {
    static let verdict = UInt32(NFT_REG_VERDICT.rawValue)
    /// The first 32-bit register; a 16-byte value (an IPv6 address) spans four of them.
    static func r32(_ index: UInt32) -> UInt32 { UInt32(NFT_REG32_00.rawValue) + index }
}

enum NftExpression {
    private static func make(_ name: String) -> OpaquePointer { nftnl_expr_alloc(name)! }

    private static func attribute<T: BinaryInteger>(_ raw: T) -> UInt16 { UInt16(raw) }

    /// `meta KEY` loaded into `register`.
    static func meta(_ key: nft_meta_keys, into register: UInt32) -> OpaquePointer {
        let e = make("meta")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_META_KEY), key.rawValue)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_META_DREG), register)
        return e
    }

    /// `notrack`: conntrack leaves the packet alone (in a chain before conntrack's hook).
    static func notrack() -> OpaquePointer { make("notrack") }

    /// `ct KEY` of the packet's conntrack entry loaded into `register` (no entry: the rule stops here).
    static func conntrack(_ key: nft_ct_keys, into register: UInt32) -> OpaquePointer {
        let e = make("ct")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_CT_KEY), key.rawValue)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_CT_DREG), register)
        return e
    }

    /// `LEN` bytes at `offset` of the network or transport header, loaded into `register`.
    static func payload(_ base: nft_payload_bases, offset: UInt32, length: UInt32, into register: UInt32) -> OpaquePointer {
        let e = make("payload")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_PAYLOAD_LEN), length)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_PAYLOAD_DREG), register)
        return e
    }

    /// Compares `register` with `bytes`; the rule stops here unless it holds.
    static func compare(_ op: nft_cmp_ops, register: UInt32, _ bytes: [UInt8]) -> OpaquePointer {
        let e = make("cmp")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_CMP_SREG), register)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_CMP_OP), op.rawValue)
        bytes.withUnsafeBytes { _ = nftnl_expr_set(e, attribute(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
        return e
    }

    /// `register = register & mask` (xor 0).
    static func and(register: UInt32, mask: [UInt8]) -> OpaquePointer {
        let e = make("bitwise")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_BITWISE_SREG), register)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_BITWISE_DREG), register)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_BITWISE_LEN), UInt32(mask.count))
        mask.withUnsafeBytes { _ = nftnl_expr_set(e, attribute(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, UInt32($0.count)) }
        let zero = [UInt8](repeating: 0, count: mask.count)
        zero.withUnsafeBytes { _ = nftnl_expr_set(e, attribute(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, UInt32($0.count)) }
        return e
    }

    /// `tcp option KIND exists`: 1 in `register` when the segment carries an option of that kind.
    static func tcpOptionPresent(kind: UInt8, into register: UInt32) -> OpaquePointer {
        let e = make("exthdr")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_EXTHDR_DREG), register)
        nftnl_expr_set_u8(e, attribute(NFTNL_EXPR_EXTHDR_TYPE), kind)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_EXTHDR_OFFSET), 0)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_EXTHDR_LEN), 1)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_EXTHDR_FLAGS), UInt32(NFT_EXTHDR_F_PRESENT.rawValue))
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_EXTHDR_OP), UInt32(NFT_EXTHDR_OP_TCPOPT.rawValue))
        return e
    }

    /// `counter`: packets and bytes, shown by `nft list` (what a chain let through unqueued).
    static func counter() -> OpaquePointer {
        make("counter")
    }

    /// The verdict `accept`.
    static func accept() -> OpaquePointer {
        let e = make("immediate")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_DREG), NftRegister.verdict)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NF_ACCEPT))
        return e
    }

    /// Matches when the key starting at `register` is an element of the named set (`inverted`: is not).
    static func lookup(set name: String, setID: UInt32, register: UInt32, inverted: Bool = false) -> OpaquePointer {
        let e = make("lookup")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_LOOKUP_SREG), register)
        nftnl_expr_set_str(e, attribute(NFTNL_EXPR_LOOKUP_SET), name)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_LOOKUP_SET_ID), setID)
        if inverted { nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_LOOKUP_FLAGS), UInt32(NFT_LOOKUP_F_INV.rawValue)) }
        return e
    }

    /// The verdict `jump CHAIN`: on to a regular chain, back after it with `return`.
    static func jump(to chain: String) -> OpaquePointer { toChain(NFT_JUMP, chain) }

    /// The verdict `goto CHAIN`: on to a regular chain, not back (its end is the end of the base chain).
    static func goto(to chain: String) -> OpaquePointer { toChain(NFT_GOTO, chain) }

    private static func toChain(_ code: nft_verdicts, _ chain: String) -> OpaquePointer {
        let e = make("immediate")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_DREG), NftRegister.verdict)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: code.rawValue))
        nftnl_expr_set_str(e, attribute(NFTNL_EXPR_IMM_CHAIN), chain)
        return e
    }

    /// The verdict `return`: back to the chain that jumped here, at its next rule.
    static func returnVerdict() -> OpaquePointer {
        let e = make("immediate")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_DREG), NftRegister.verdict)
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: NFT_RETURN.rawValue))
        return e
    }

    /// The native `queue num N [bypass]` statement (kernel module nft_queue).
    static func nativeQueue(number: UInt16, bypass: Bool) -> OpaquePointer {
        let e = make("queue")
        nftnl_expr_set_u16(e, attribute(NFTNL_EXPR_QUEUE_NUM), number)
        nftnl_expr_set_u16(e, attribute(NFTNL_EXPR_QUEUE_TOTAL), 1)
        nftnl_expr_set_u16(e, attribute(NFTNL_EXPR_QUEUE_FLAGS), bypass ? UInt16(NFT_QUEUE_FLAG_BYPASS) : 0)
        return e
    }

    /// The xtables-compat target `NFQUEUE` revision 3 inside an nftables rule (nft_compat + xt_NFQUEUE),
    /// for kernels without nft_queue. Its info blob is `struct xt_NFQ_info_v3` padded to 8 bytes:
    /// queue number, queues total, flags (bit 0: bypass), all host byte order.
    static func compatQueue(number: UInt16, bypass: Bool) -> OpaquePointer {
        let e = make("target")
        nftnl_expr_set_str(e, attribute(NFTNL_EXPR_TG_NAME), "NFQUEUE")
        nftnl_expr_set_u32(e, attribute(NFTNL_EXPR_TG_REV), 3)
        // libnftnl keeps the pointer it is given and frees it with the expression: hand it malloc'd memory.
        let info = malloc(8)!.bindMemory(to: UInt16.self, capacity: 4)
        info[0] = number
        info[1] = 1
        info[2] = bypass ? 1 : 0
        info[3] = 0
        nftnl_expr_set(e, attribute(NFTNL_EXPR_TG_INFO), info, 8)
        return e
    }
}

extension NftExpression {
    /// Looks the key starting at `register` up in the named map and loads the element's data into
    /// `data` (a verdict map: `NftRegister.verdict`, which jumps). The rule stops here on a miss.
    static func mapLookup(map name: String, mapID: UInt32, register: UInt32, into data: UInt32) -> OpaquePointer {
        let e = lookup(set: name, setID: mapID, register: register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOOKUP_DREG), data)
        return e
    }

    /// Writes `length` bytes from `register` at `offset` of the network or transport header, and has the
    /// kernel update the checksums the bytes are part of: `checksumOffset` names the header's own
    /// checksum (the IPv4 header's, or TCP's for a port; nil for an IPv6 address), and `pseudoHeader`
    /// says the bytes are in TCP's pseudo-header too (an address). The kernel handles packets whose
    /// checksum is still to be completed by the device (CHECKSUM_PARTIAL) itself.
    static func payloadWrite(_ base: nft_payload_bases, offset: UInt32, length: UInt32, from register: UInt32,
                             checksumOffset: UInt32?, pseudoHeader: Bool) -> OpaquePointer {
        let e = nftnl_expr_alloc("payload")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_SREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_LEN), length)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_CSUM_TYPE),
                           checksumOffset == nil ? UInt32(NFT_PAYLOAD_CSUM_NONE.rawValue) : UInt32(NFT_PAYLOAD_CSUM_INET.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_CSUM_OFFSET), checksumOffset ?? 0)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_FLAGS), pseudoHeader ? NFT_PAYLOAD_L4CSUM_PSEUDOHDR.rawValue : 0)
        return e
    }

    /// Turns the 4-byte host-order value in `register` into network order, so `<` and `>` compare it as
    /// a number (cmp compares bytes).
    static func toNetworkOrder(register: UInt32) -> OpaquePointer {
        let e = nftnl_expr_alloc("byteorder")!
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BYTEORDER_SREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BYTEORDER_DREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BYTEORDER_OP), UInt32(NFT_BYTEORDER_HTON.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BYTEORDER_LEN), 4)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BYTEORDER_SIZE), 4)
        return e
    }
}
