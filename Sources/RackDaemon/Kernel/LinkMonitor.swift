// rackd — watches the host's links and addresses over rtnetlink, and reports what changed as link events.
//
// A NETLINK_ROUTE socket joined to the link and IPv4/IPv6 address groups. At start it dumps every link
// and address; afterwards it follows RTM_NEWLINK/RTM_DELLINK/RTM_NEWADDR/RTM_DELADDR notifications, and
// after a lost notification (ENOBUFS, or a datagram cut short) it dumps again. It keeps, per interface,
// whether the link is up and which addresses it has, and reports the addresses that became usable or
// unusable. It decides nothing.
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
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Follows link and address changes over rtnetlink.
final class LinkMonitor {
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
    }

    /// One address of an interface, with its `IFA_F_*` flags.
    private struct InterfaceAddress {
        var address: IPAddress
        var flags: AddressFlags

        var isUsable: Bool {
            if flags.contains(.dadFailed) { return false }
            return !flags.contains(.tentative) || flags.contains(.optimistic)
        }
    }

    /// The `IFA_F_*` address flags rackd looks at.
    private struct AddressFlags: OptionSet {
        var rawValue: UInt32
        /// IFA_F_OPTIMISTIC: optimistic DAD; usable while tentative.
        static let optimistic = AddressFlags(rawValue: UInt32(IFA_F_OPTIMISTIC))
        /// IFA_F_DADFAILED: a duplicate was found; never usable.
        static let dadFailed = AddressFlags(rawValue: UInt32(IFA_F_DADFAILED))
        /// IFA_F_TENTATIVE: duplicate address detection has not finished.
        static let tentative = AddressFlags(rawValue: UInt32(IFA_F_TENTATIVE))
        /// IFA_F_NODAD: no duplicate address detection for this address.
        static let noDAD = AddressFlags(rawValue: UInt32(IFA_F_NODAD))
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

    /// How often a dump flagged as inconsistent (NLM_F_DUMP_INTR) is tried again before it is taken as is.
    private static let dumpAttempts = 3

    private let socket: KernelNetlinkSocket
    private var interfaces: [Int32: Interface] = [:]
    /// How often notifications were lost and the state was dumped again, for status and logs.
    private(set) var resynchronizations = 0
    /// Notifications were lost and the re-dump has not succeeded yet.
    private var needsResynchronization = false

    /// Joins the link and address groups, then dumps the current links and addresses.
    ///
    /// - Parameter receiveBufferBytes: the notification socket's receive buffer. A burst larger than this
    ///   loses notifications (ENOBUFS), which costs a full dump.
    init(receiveBufferBytes: Int = 1 << 20) throws(SystemError) {
        socket = try KernelNetlinkSocket(
            family: .route,
            groups: UInt32(RTMGRP_LINK) | UInt32(RTMGRP_IPV4_IFADDR) | UInt32(RTMGRP_IPV6_IFADDR),
            nonBlocking: true, bufferBytes: 64 * 1024)
        try socket.setReceiveBuffer(bytes: receiveBufferBytes)
        // Joined first, dumped second: a change made during the dump is also queued as a notification, and
        // replaying it on top of the dump is harmless.
        interfaces = try Self.dumpInterfaces()
    }

    /// The descriptor to poll for readability.
    var descriptor: CInt { socket.descriptor }

    /// The local addresses that can carry traffic now, by interface index.
    var addresses: [IPAddress] {
        interfaces.keys.sorted().flatMap { interfaces[$0]!.usableAddresses }
    }

    // MARK: Notifications

    /// Reads every notification waiting and returns what changed, in order. Adjacent events of the same
    /// kind are merged. Returns an empty array when nothing is waiting.
    ///
    /// After a lost notification (ENOBUFS, or a datagram too large for the buffer) it dumps everything again
    /// and reports the difference. An error after some events were already taken returns those events; the
    /// error, if it persists, is thrown by the next call, which also retries a re-dump that failed.
    func drainEvents() throws(SystemError) -> [LinkEvent] {
        var events: [LinkEvent] = []
        while true {
            if needsResynchronization {
                do {
                    try resynchronize(into: &events)
                } catch {
                    if events.isEmpty { throw error }
                    return events
                }
            }
            let datagram: UnsafeRawBufferPointer?
            do {
                datagram = try socket.receive(call: "link and address notifications")
            } catch where Self.meansLostNotifications(error) {
                needsResynchronization = true
                continue
            } catch {
                if events.isEmpty { throw error }
                return events
            }
            guard let datagram else { return events }
            for message in KernelNetlinkMessages(datagram) {
                let (lost, available) = Self.apply(message, to: &interfaces)
                Self.append(lost: lost, available: available, to: &events)
            }
        }
    }

    /// ENOBUFS: the socket overflowed and the kernel dropped notifications. EMSGSIZE: a datagram was larger
    /// than the buffer and was cut. Either way something was missed.
    private static func meansLostNotifications(_ error: SystemError) -> Bool {
        error.errno == .noBufferSpace || error.errno == .messageTooLong
    }

    /// Drops what is still queued (the dump supersedes it), dumps everything again and reports the
    /// difference.
    private func resynchronize(into events: inout [LinkEvent]) throws(SystemError) {
        resynchronizations += 1
        let before = addresses
        while true {
            do {
                guard try socket.receive(call: "discard after lost notifications") != nil else { break }
            } catch where Self.meansLostNotifications(error) {
                continue
            }
        }
        interfaces = try Self.dumpInterfaces()
        needsResynchronization = false
        let after = addresses
        Self.append(
            lost: before.filter { !after.contains($0) }, available: after.filter { !before.contains($0) },
            to: &events)
    }

    private static func append(lost: [IPAddress], available: [IPAddress], to events: inout [LinkEvent]) {
        if !lost.isEmpty {
            if case .addressesLost(let earlier) = events.last {
                events[events.count - 1] = .addressesLost(earlier + lost)
            } else {
                events.append(.addressesLost(lost))
            }
        }
        if !available.isEmpty {
            if case .addressesAvailable(let earlier) = events.last {
                events[events.count - 1] = .addressesAvailable(earlier + available)
            } else {
                events.append(.addressesAvailable(available))
            }
        }
    }

    // MARK: Dumping

    /// Dumps every link, then every address, over a socket of its own, so the replies do not mix with
    /// notifications.
    private static func dumpInterfaces() throws(SystemError) -> [Int32: Interface] {
        let socket = try KernelNetlinkSocket(family: .route)
        try socket.setReceiveTimeout(.seconds(5))
        var interfaces: [Int32: Interface] = [:]
        for attempt in 1...dumpAttempts {
            interfaces = [:]
            let linksConsistent = try socket.dump(
                type: UInt16(RTM_GETLINK), body: ifinfomsg(), call: "RTM_GETLINK"
            ) { message in
                _ = apply(message, to: &interfaces)
            }
            let addressesConsistent = try socket.dump(
                type: UInt16(RTM_GETADDR), body: ifaddrmsg(), call: "RTM_GETADDR"
            ) { message in
                _ = apply(message, to: &interfaces)
            }
            if (linksConsistent && addressesConsistent) || attempt == dumpAttempts { break }
        }
        return interfaces
    }

    // MARK: Applying messages

    /// Applies one RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR or RTM_DELADDR message (from a dump or a
    /// notification) and returns the addresses it made unusable and usable. Other messages change nothing.
    private static func apply(_ message: KernelNetlinkMessage, to interfaces: inout [Int32: Interface])
        -> (lost: [IPAddress], available: [IPAddress])
    {
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
                        markIPv6AddressesTentative(&updated)
                    }
                    updated.isUp = flags.isSuperset(of: [.up, .running])
                    updated.isAdministrativelyUp = flags.contains(.up)
                    updated.isLoopback = flags.contains(.loopback)
                    interface = updated
                }
            }
        case CInt(RTM_NEWADDR), CInt(RTM_DELADDR):
            guard let (addressIndex, address) = decodeAddress(message.payload) else { return ([], []) }
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

    /// Does what the kernel does, without a notification, to the IPv6 addresses it keeps when a link is set
    /// down (net.ipv6.conf.*.keep_addr_on_down): marks them tentative unless they skip DAD. When the link
    /// comes back up DAD runs again and each address is announced (RTM_NEWADDR) once it is usable.
    /// Without keep_addr_on_down the kernel has removed them already, before the link message.
    private static func markIPv6AddressesTentative(_ interface: inout Interface) {
        for index in interface.addresses.indices {
            guard case .v6 = interface.addresses[index].address,
                !interface.addresses[index].flags.contains(.noDAD)
            else { continue }
            interface.addresses[index].flags.insert(.tentative)
        }
    }

    /// Decodes an `ifaddrmsg` and its attributes into the interface index and the address. Nil for other
    /// families, and for loopback and IPv6 link-local addresses.
    private static func decodeAddress(_ payload: UnsafeRawBufferPointer) -> (Int32, InterfaceAddress)? {
        let fixedSize = MemoryLayout<ifaddrmsg>.size
        guard payload.count >= fixedSize else { return nil }
        let header = payload.loadUnaligned(as: ifaddrmsg.self)
        var flags = UInt32(header.ifa_flags)
        var local: IPAddress?
        var address: IPAddress?
        for attribute in KernelNetlinkAttributes(payload, after: fixedSize) {
            switch CInt(attribute.type) {
            case CInt(IFA_LOCAL): local = decodeIPAddress(family: header.ifa_family, attribute.payload)
            case CInt(IFA_ADDRESS): address = decodeIPAddress(family: header.ifa_family, attribute.payload)
            // The 8-bit ifa_flags holds only the low flags; IFA_FLAGS holds them all.
            case CInt(IFA_FLAGS): flags = attribute.integer(as: UInt32.self) ?? flags
            default: break
            }
        }
        // IFA_LOCAL is the local address; IFA_ADDRESS is the peer's on a point-to-point link, and the local
        // one otherwise (IPv6 sends only IFA_ADDRESS).
        guard let chosen = local ?? address, !isIgnored(chosen) else { return nil }
        let interfaceAddress = InterfaceAddress(address: chosen, flags: AddressFlags(rawValue: flags))
        return (Int32(bitPattern: header.ifa_index), interfaceAddress)
    }

    private static func decodeIPAddress(family: UInt8, _ bytes: UnsafeRawBufferPointer) -> IPAddress? {
        switch CInt(family) {
        case AF_INET where bytes.count >= 4:
            return .v4(IPv4Address(rawValue: UInt32(bigEndian: bytes.loadUnaligned(as: UInt32.self))))
        case AF_INET6 where bytes.count >= 16:
            return .v6(
                IPv6Address(
                    high: UInt64(bigEndian: bytes.loadUnaligned(as: UInt64.self)),
                    low: UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self))))
        default:
            return nil
        }
    }

    /// Loopback addresses (127.0.0.0/8, ::1) and IPv6 link-local addresses (fe80::/10).
    private static func isIgnored(_ address: IPAddress) -> Bool {
        switch address {
        case .v4(let v4): v4.rawValue >> 24 == 127
        case .v6(let v6): (v6.high == 0 && v6.low == 1) || v6.high >> 54 == 0xfe80 >> 6
        }
    }
}
