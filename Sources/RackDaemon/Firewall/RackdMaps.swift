// rackd — the maps of rackd's table and the elements the engine's rule changes become.
//
// Every decision about a managed flow is one lookup: the flow's tuple, written local end first, in the
// verdict map of its family and direction (`flows_out4`, `flows_in4`, `flows_out6`, `flows_in6`). A flow
// not there is left alone. An element sends the packet on:
//
//     queued flow (suspect, held, a roam being confirmed, a rocks connection)   → goto queued
//     screened rocks connection (docs/rocks.md §14, "In the kernel"), outbound → goto queued
//                                                                     inbound  → goto screened
//     shifted rocks connection (Core/KernelShift.swift),              outbound → goto shifted_out
//                                                                     inbound  → goto shifted
//     the same after a reconnection (on the link's tuple), socket tuple, outbound → goto shifted_out
//                                                                        (rackd puts the link's tuple in)
//                                                       wire tuple, inbound   → goto shifted_rewrite_in4
//                                                       socket tuple, inbound → drop
//     moved connection the kernel rewrites (Core/KernelRewrite.swift), socket tuple, outbound → goto rewrite_out4
//                                                                      wire tuple, inbound   → goto rewrite_in4
//                                                                      socket tuple, inbound → drop (the old path: stale or forged)
//
// The rewrite chains read the other tuple from a data map: `wire_of4` (socket tuple → wire tuple) and
// `socket_of4` (wire tuple → socket tuple), and write it into the headers. IPv6 has the same maps with 6.

import CNftables
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// One of rackd's maps: a key is a flow (local address . local port . remote address . remote port), the
/// value a verdict or another flow.
struct FlowMap: Hashable {
    enum Family { case v4, v6 }
    enum Value { case verdict, flow }

    var name: String
    var id: UInt32
    var family: Family
    var value: Value

    var addressLength: UInt32 { family == .v4 ? 4 : 16 }
    /// Length of a flow: address, port padded to 4 bytes, address, port padded to 4 bytes.
    var keyLength: UInt32 { 2 * (addressLength + 4) }
    /// nft's data type id of the concatenation, so `nft list` prints the map's type.
    var keyType: UInt32 { Self.concatenatedType(family == .v4 ? [7, 13, 7, 13] : [8, 13, 8, 13]) }
    var nfproto: UInt8 { UInt8(family == .v4 ? NFPROTO_IPV4 : NFPROTO_IPV6) }
    /// Offsets of the source and destination address in the network header.
    var sourceOffset: UInt32 { family == .v4 ? 12 : 8 }
    var destinationOffset: UInt32 { family == .v4 ? 16 : 24 }

    static let flowsOut4 = FlowMap(name: "flows_out4", id: 1, family: .v4, value: .verdict)
    static let flowsIn4 = FlowMap(name: "flows_in4", id: 2, family: .v4, value: .verdict)
    static let flowsOut6 = FlowMap(name: "flows_out6", id: 3, family: .v6, value: .verdict)
    static let flowsIn6 = FlowMap(name: "flows_in6", id: 4, family: .v6, value: .verdict)
    static let wireOf4 = FlowMap(name: "wire_of4", id: 5, family: .v4, value: .flow)
    static let socketOf4 = FlowMap(name: "socket_of4", id: 6, family: .v4, value: .flow)
    static let wireOf6 = FlowMap(name: "wire_of6", id: 7, family: .v6, value: .flow)
    static let socketOf6 = FlowMap(name: "socket_of6", id: 8, family: .v6, value: .flow)

    static let all = [flowsOut4, flowsIn4, flowsOut6, flowsIn6, wireOf4, socketOf4, wireOf6, socketOf6]

    static func flows(_ direction: RackdRuleset.Hook, _ family: Family) -> FlowMap {
        switch (direction, family) {
        case (.output, .v4): flowsOut4
        case (.input, .v4): flowsIn4
        case (.output, .v6): flowsOut6
        case (.input, .v6): flowsIn6
        }
    }

    /// The data map a rewrite chain reads: on output the wire tuple of a socket's, on input the reverse.
    static func rewriteData(_ direction: RackdRuleset.Hook, _ family: Family) -> FlowMap {
        switch (direction, family) {
        case (.output, .v4): wireOf4
        case (.input, .v4): socketOf4
        case (.output, .v6): wireOf6
        case (.input, .v6): socketOf6
        }
    }

    /// nft's encoding of a concatenated type: each part's type id in 6 bits, first part highest.
    private static func concatenatedType(_ parts: [UInt32]) -> UInt32 {
        parts.reduce(0) { ($0 << 6) | $1 }
    }
}

/// What an element of a verdict map does with a packet.
enum FlowVerdict: Hashable {
    /// Every packet to rackd (no bypass: a managed flow's packets wait for rackd rather than pass unmapped).
    case queue
    /// The kernel rewrites the packet (the chain named by `RackdRuleset.rewriteChain`).
    case rewrite(RackdRuleset.Hook, FlowMap.Family)
    /// SYN, FIN and RST to rackd, the rest accepted (a screened rocks connection's inbound packets).
    case screen
    /// The same, and to rackd whatever conntrack would not shift (a shifted rocks connection's inbound
    /// packets).
    case shift
    /// The same, onto the socket's tuple (a shifted rocks connection's after a reconnection, on the link).
    case shiftRewrite(FlowMap.Family)
    /// Every packet to rackd, to the shift queue if conntrack shifts it (a shifted connection's outbound).
    case shiftOut
    case drop
}

/// One element of one of rackd's maps.
struct FlowMapElement: Hashable, CustomStringConvertible {
    enum Value: Hashable {
        case verdict(FlowVerdict)
        case flow(ManagedFlowKey)
    }

    var map: FlowMap
    var key: ManagedFlowKey
    var value: Value

    var description: String {
        switch value {
        case .verdict(let verdict): "\(map.name) \(key) : \(verdict)"
        case .flow(let flow): "\(map.name) \(key) : \(flow)"
        }
    }

    /// The elements that carry out `change`; a removal deletes the same elements its addition added.
    static func elements(for change: RuleChange) -> [FlowMapElement] {
        switch change {
        case .manage(let flow), .release(let flow): queued(flow)
        case .rewrite(let rewrite), .stopRewriting(let rewrite): rewritten(rewrite)
        case .screen(let flow), .stopScreening(let flow): screened(flow)
        case .shift(let shift), .stopShifting(let shift): shifted(shift)
        }
    }

    /// Every element of the maps for `flows`.
    static func elements(for flows: KernelFlows) -> [FlowMapElement] {
        flows.queued.sorted { $0.description < $1.description }.flatMap(queued)
            + flows.rewrites.sorted { $0.description < $1.description }.flatMap(rewritten)
            + flows.screened.sorted { $0.description < $1.description }.flatMap(screened)
            + flows.shifted.sorted { $0.description < $1.description }.flatMap(shifted)
    }

    private static func queued(_ flow: FlowKey) -> [FlowMapElement] {
        let key = ManagedFlowKey(flow)
        let family: FlowMap.Family = key.isIPv6 ? .v6 : .v4
        return [FlowMapElement(map: .flows(.output, family), key: key, value: .verdict(.queue)),
                FlowMapElement(map: .flows(.input, family), key: key, value: .verdict(.queue))]
    }

    private static func screened(_ flow: FlowKey) -> [FlowMapElement] {
        let key = ManagedFlowKey(flow)
        let family: FlowMap.Family = key.isIPv6 ? .v6 : .v4
        return [FlowMapElement(map: .flows(.output, family), key: key, value: .verdict(.queue)),
                FlowMapElement(map: .flows(.input, family), key: key, value: .verdict(.screen))]
    }

    private static func shifted(_ shift: KernelShift) -> [FlowMapElement] {
        let socket = ManagedFlowKey(shift.flow)
        let wire = ManagedFlowKey(shift.wire)
        let family: FlowMap.Family = socket.isIPv6 ? .v6 : .v4
        guard shift.isMoved else {
            return [FlowMapElement(map: .flows(.output, family), key: socket, value: .verdict(.shiftOut)),
                    FlowMapElement(map: .flows(.input, family), key: socket, value: .verdict(.shift))]
        }
        return [
            FlowMapElement(map: .flows(.output, family), key: socket, value: .verdict(.shiftOut)),
            FlowMapElement(map: .flows(.input, family), key: wire, value: .verdict(.shiftRewrite(family))),
            FlowMapElement(map: .rewriteData(.input, family), key: wire, value: .flow(socket)),
            FlowMapElement(map: .flows(.input, family), key: socket, value: .verdict(.drop)),
        ]
    }

    private static func rewritten(_ rewrite: KernelRewrite) -> [FlowMapElement] {
        let socket = ManagedFlowKey(rewrite.socket)
        let wire = ManagedFlowKey(rewrite.wire)
        let family: FlowMap.Family = socket.isIPv6 ? .v6 : .v4
        return [
            FlowMapElement(map: .flows(.output, family), key: socket, value: .verdict(.rewrite(.output, family))),
            FlowMapElement(map: .rewriteData(.output, family), key: socket, value: .flow(wire)),
            FlowMapElement(map: .flows(.input, family), key: wire, value: .verdict(.rewrite(.input, family))),
            FlowMapElement(map: .rewriteData(.input, family), key: wire, value: .flow(socket)),
            FlowMapElement(map: .flows(.input, family), key: socket, value: .verdict(.drop)),
        ]
    }

    /// Adds the element to `nftSet` (which then owns it).
    func add(to nftSet: OpaquePointer) {
        let element = nftnl_set_elem_alloc()!
        key.setKeyBytes.withUnsafeBytes {
            _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_KEY), $0.baseAddress, UInt32($0.count))
        }
        switch value {
        case .verdict(.drop):
            nftnl_set_elem_set_u32(element, UInt16(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: NF_DROP))
        case .verdict(let verdict):
            nftnl_set_elem_set_u32(element, UInt16(NFTNL_SET_ELEM_VERDICT), UInt32(bitPattern: NFT_GOTO.rawValue))
            nftnl_set_elem_set_str(element, UInt16(NFTNL_SET_ELEM_CHAIN), RackdRuleset.chainName(of: verdict))
        case .flow(let flow):
            flow.setKeyBytes.withUnsafeBytes {
                _ = nftnl_set_elem_set(element, UInt16(NFTNL_SET_ELEM_DATA), $0.baseAddress, UInt32($0.count))
            }
        }
        nftnl_set_elem_add(nftSet, element)
    }
}
