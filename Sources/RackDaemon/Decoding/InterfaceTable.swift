// rackd — the host's interfaces as rtnetlink describes them, and the addresses that can carry traffic.
// Pure: messages in, changes out. Kernel/LinkMonitor.swift feeds it the dumps and notifications.
//
// What counts:
// - a link is up when it is administratively up (IFF_UP) and operational (IFF_RUNNING, which the kernel
//   sets for operstate UP or UNKNOWN). `ip link set dev X down` clears both; carrier loss and a dormant
//   link clear IFF_RUNNING only;
// - an address is usable when its link is up and it is neither tentative (IPv6 DAD still running, unless
//   optimistic) nor failed DAD;
// - loopback links, loopback addresses and IPv6 link-local addresses (fe80::/10) are never reported.
//
// Measured on Linux 6.18 (veth in namespaces): `ip link set down` removes the link's IPv6 addresses
// (RTM_DELADDR, before the RTM_NEWLINK) unless net.ipv6.conf.*.keep_addr_on_down is set, so after `up` only
// the IPv4 ones come back (with keep_addr_on_down they stay, silently made tentative, and are announced
// again after DAD on `up`); carrier loss keeps every address and does not restart DAD; a new IPv6 address
// is announced tentative, then again without the flag once DAD is done.

import CLinuxNetlink
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// What rackd knows about each interface, built from RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR and
/// RTM_DELADDR messages.
public struct InterfaceTable {
    /// What rackd knows about one interface.
    private struct Interface {
        /// Administratively and operationally up.
        var isUp = false
        /// Administratively up (IFF_UP).
        var isAdministrativelyUp = false
        /// A loopback interface: never reported.
        var isLoopback = false
        /// The interface's addresses in the order they appeared, link-local and loopback ones left out.
        var addresses: [InterfaceAddress] = []

        /// The addresses that can carry traffic now.
        var usableAddresses: [IPAddress] {
            guard isUp, !isLoopback else { return [] }
            return addresses.filter(\.isUsable).map(\.address)
        }

        /// Does what the kernel does, without a notification, to the IPv6 addresses it keeps when a link is
        /// set down (net.ipv6.conf.*.keep_addr_on_down): marks them tentative unless they skip DAD. When the
        /// link comes back up DAD runs again and each address is announced (RTM_NEWADDR) once it is usable.
        /// Without keep_addr_on_down the kernel has removed them already, before the link message.
        mutating func markIPv6AddressesTentative() {
            for index in addresses.indices {
                guard case .v6 = addresses[index].address, !addresses[index].flags.contains(.noDAD) else { continue }
                addresses[index].flags.insert(.tentative)
            }
        }
    }

    /// The `IFF_*` link flags rackd looks at (`ifi_flags`).
    private struct LinkFlags: OptionSet {
        var rawValue: UInt32
        /// IFF_UP: administratively up.
        static let up = LinkFlags(rawValue: 0x1)
        /// IFF_LOOPBACK.
        static let loopback = LinkFlags(rawValue: 0x8)
        /// IFF_RUNNING: operationally up (RFC 2863 operstate UP or UNKNOWN).
        static let running = LinkFlags(rawValue: 0x40)
    }

    private var interfaces: [Int32: Interface] = [:]

    public init() {}

    /// The local addresses that can carry traffic now, by interface index.
    public var usableAddresses: [IPAddress] {
        interfaces.keys.sorted().flatMap { interfaces[$0]!.usableAddresses }
    }

    /// Applies one RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR or RTM_DELADDR message (from a dump or a
    /// notification) and returns the addresses it made unusable and usable. Other messages, and messages too
    /// short or of another family, change nothing.
    @discardableResult
    public mutating func apply(_ message: NetlinkMessage) -> (lost: [IPAddress], available: [IPAddress]) {
        let index: Int32
        let change: (inout Interface?) -> Void
        switch CInt(message.type) {
        case CInt(RTM_NEWLINK), CInt(RTM_DELLINK):
            guard message.payload.count >= MemoryLayout<ifinfomsg>.size else { return ([], []) }
            let header = message.payload.loadUnaligned(as: ifinfomsg.self)
            // Bridge port messages (AF_BRIDGE) share the group and describe the port, not the link.
            guard header.ifi_family == UInt8(AF_UNSPEC) else { return ([], []) }
            index = header.ifi_index
            if CInt(message.type) == CInt(RTM_DELLINK) {
                change = { $0 = nil }
            } else {
                let flags = LinkFlags(rawValue: header.ifi_flags)
                change = { interface in
                    var updated = interface ?? Interface()
                    if updated.isAdministrativelyUp, !flags.contains(.up) {
                        updated.markIPv6AddressesTentative()
                    }
                    updated.isUp = flags.isSuperset(of: [.up, .running])
                    updated.isAdministrativelyUp = flags.contains(.up)
                    updated.isLoopback = flags.contains(.loopback)
                    interface = updated
                }
            }
        case CInt(RTM_NEWADDR), CInt(RTM_DELADDR):
            guard let (addressIndex, address) = InterfaceAddress.decode(message.payload) else { return ([], []) }
            index = addressIndex
            if CInt(message.type) == CInt(RTM_DELADDR) {
                change = { interface in interface?.addresses.removeAll { $0.address == address.address } }
            } else {
                change = { interface in
                    // An address can be announced before its link; the link's message sets it up later.
                    var updated = interface ?? Interface()
                    if let existing = updated.addresses.firstIndex(where: { $0.address == address.address }) {
                        updated.addresses[existing] = address
                    } else {
                        updated.addresses.append(address)
                    }
                    interface = updated
                }
            }
        default:
            return ([], [])
        }
        var interface = interfaces[index]
        let before = interface?.usableAddresses ?? []
        change(&interface)
        interfaces[index] = interface
        let after = interface?.usableAddresses ?? []
        return (before.filter { !after.contains($0) }, after.filter { !before.contains($0) })
    }
}
