// rackd — one route message of rtnetlink (RTM_NEWROUTE, RTM_DELROUTE), decoded. Pure: bytes in, values out.
//
// The message is an `rtmsg` (family, prefix lengths, table, protocol, scope, type, flags) followed by RTA_*
// attributes: RTA_DST the destination (absent for a default route), RTA_GATEWAY, RTA_OIF the output
// interface, RTA_TABLE the table when it does not fit the 8-bit `rtm_table`.
//
// What counts (`mayLeadToPeers`): a unicast route outside the local table that is not a cached clone. Adding
// an address also adds routes of its own (its subnet, and in the local table the address itself and the
// broadcast addresses); only the first of those can reach anything beyond this host, and a default route
// added after the address is what gives a moved host its path to its peers.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// A route, as much of it as rackd reads.
struct RouteMessage: Equatable {
    var family: IPFamily
    /// The destination prefix; nil with `prefixLength` 0 for a default route.
    var destination: IPAddress?
    var prefixLength: UInt8
    /// RT_TABLE_MAIN is 254, RT_TABLE_LOCAL 255.
    var table: UInt32
    /// RTN_UNICAST, RTN_LOCAL, RTN_BROADCAST, RTN_MULTICAST, RTN_BLACKHOLE, …
    var type: UInt8
    /// RTM_F_* flags (RTM_F_CLONED: a cached route, not one anybody added).
    var flags: UInt32
    var gateway: IPAddress?
    var outputInterface: Int32?

    /// A unicast route outside the local table, not cached: one that may give a peer a path.
    var mayLeadToPeers: Bool {
        CInt(type) == CInt(RTN_UNICAST) && table != UInt32(RT_TABLE_LOCAL.rawValue) && flags & UInt32(RTM_F_CLONED) == 0
    }

    /// Decodes an `rtmsg` and its attributes. Nil for a message too short for its header, with a malformed or
    /// cut attribute, or of a family other than IPv4 and IPv6.
    static func decode(_ payload: UnsafeRawBufferPointer) -> RouteMessage? {
        let fixedSize = MemoryLayout<rtmsg>.size
        guard payload.count >= fixedSize else { return nil }
        let header = payload.loadUnaligned(as: rtmsg.self)
        let family: IPFamily
        switch CInt(header.rtm_family) {
        case AF_INET: family = .ipv4
        case AF_INET6: family = .ipv6
        default: return nil
        }
        var route = RouteMessage(
            family: family, destination: nil, prefixLength: header.rtm_dst_len, table: UInt32(header.rtm_table),
            type: header.rtm_type, flags: header.rtm_flags, gateway: nil, outputInterface: nil)
        var attributes = NetlinkAttributes(payload, after: fixedSize)
        while let attribute = attributes.next() {
            switch UInt32(attribute.type) {
            case RTA_DST.rawValue: route.destination = address(family, attribute.payload)
            case RTA_GATEWAY.rawValue: route.gateway = address(family, attribute.payload)
            case RTA_OIF.rawValue: route.outputInterface = attribute.integer(as: Int32.self)
            case RTA_TABLE.rawValue: route.table = attribute.integer(as: UInt32.self) ?? route.table
            default: break
            }
        }
        guard !attributes.isMalformed else { return nil }
        return route
    }

    private static func address(_ family: IPFamily, _ bytes: UnsafeRawBufferPointer) -> IPAddress? {
        switch family {
        case .ipv4 where bytes.count >= 4:
            return .v4(IPv4Address(rawValue: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
        case .ipv6 where bytes.count >= 16:
            return .v6(
                IPv6Address(
                    high: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                    low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))))
        case .ipv4, .ipv6:
            return nil
        }
    }
}
