// rackd — watches the host's links, addresses and routes over rtnetlink, and reports what changed as link
// events.
//
// A NETLINK_ROUTE socket joined to the link, IPv4/IPv6 address and IPv4/IPv6 route groups. At start it
// dumps every link and address; afterwards it follows RTM_NEWLINK/RTM_DELLINK/RTM_NEWADDR/RTM_DELADDR
// notifications, and after a lost notification (ENOBUFS, or a datagram cut short) it dumps again. It keeps,
// per interface, whether the link is up and which addresses it has, and reports the addresses that became
// usable or unusable. RTM_NEWROUTE notifications are reported as routes added, per family (an address
// comes before the default route through it: held connections try again when the route is there); after
// lost notifications, routes of both families count as added. It decides nothing: what counts as usable
// is Decoding/InterfaceTable.swift's, which routes count Decoding/RouteMessage.swift's.

import CLinuxNetlink
import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Follows link, address and route changes over rtnetlink.
public final class LinkMonitor {
    /// How often a dump flagged as inconsistent (NLM_F_DUMP_INTR) is tried again before it is taken as is.
    private static let dumpAttempts = 3

    private let socket: NetlinkSocket
    private var table = InterfaceTable()
    /// How often notifications were lost and the state was dumped again, for status and logs.
    public private(set) var resynchronizations = 0
    /// Notifications were lost and the re-dump has not succeeded yet.
    private var needsResynchronization = false

    /// Joins the link, address and route groups, then dumps the current links and addresses.
    ///
    /// - Parameter receiveBufferBytes: the notification socket's receive buffer. A burst larger than this
    ///   loses notifications (ENOBUFS), which costs a full dump.
    public init(receiveBufferBytes: Int = 1 << 20) throws(SystemError) {
        socket = try NetlinkSocket(
            family: .route,
            groups: UInt32(RTMGRP_LINK) | UInt32(RTMGRP_IPV4_IFADDR) | UInt32(RTMGRP_IPV6_IFADDR)
                | UInt32(RTMGRP_IPV4_ROUTE) | UInt32(RTMGRP_IPV6_ROUTE),
            nonBlocking: true, bufferBytes: 64 * 1024)
        try socket.setReceiveBuffer(bytes: receiveBufferBytes)
        // Joined first, dumped second: a change made during the dump is also queued as a notification, and
        // replaying it on top of the dump is harmless.
        table = try Self.dumpInterfaces()
    }

    /// The descriptor to poll for readability.
    public var descriptor: CInt { socket.descriptor }

    /// The local addresses that can carry traffic now, by interface index.
    public var addresses: [IPAddress] { table.usableAddresses }

    // MARK: Notifications

    /// Reads every notification waiting and returns what changed, in order. Adjacent events of the same
    /// kind are merged. Returns an empty array when nothing is waiting.
    ///
    /// After a lost notification (ENOBUFS, or a datagram too large for the buffer) it dumps everything again
    /// and reports the difference. An error after some events were already taken returns those events; the
    /// error, if it persists, is thrown by the next call, which also retries a re-dump that failed.
    public func drainEvents() throws(SystemError) -> [LinkEvent] {
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
            for message in NetlinkMessages(datagram) {
                if CInt(message.type) == CInt(RTM_NEWROUTE) {
                    if let route = RouteMessage.decode(message.payload), route.mayLeadToPeers {
                        Self.append(routesAdded: [route.family], to: &events)
                    }
                    continue
                }
                let (lost, available) = table.apply(message)
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
        table = try Self.dumpInterfaces()
        needsResynchronization = false
        let after = addresses
        Self.append(
            lost: before.filter { !after.contains($0) }, available: after.filter { !before.contains($0) },
            to: &events)
        // Routes are not dumped: one may have come among the notifications lost.
        Self.append(routesAdded: [.ipv4, .ipv6], to: &events)
    }

    /// Adds routes of `families` to the last event if it reports routes added too, else as an event of its
    /// own: a burst of route notifications read at once is one event.
    private static func append(routesAdded families: [IPFamily], to events: inout [LinkEvent]) {
        if case .routesAdded(let earlier) = events.last {
            events[events.count - 1] = .routesAdded(earlier + families.filter { !earlier.contains($0) })
        } else {
            events.append(.routesAdded(families))
        }
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
    private static func dumpInterfaces() throws(SystemError) -> InterfaceTable {
        let socket = try NetlinkSocket(family: .route)
        try socket.setReceiveTimeout(.seconds(5))
        var table = InterfaceTable()
        for attempt in 1...dumpAttempts {
            table = InterfaceTable()
            let linksConsistent = try socket.dump(
                type: UInt16(RTM_GETLINK), body: ifinfomsg(), call: "RTM_GETLINK"
            ) { message in
                table.apply(message)
            }
            let addressesConsistent = try socket.dump(
                type: UInt16(RTM_GETADDR), body: ifaddrmsg(), call: "RTM_GETADDR"
            ) { message in
                table.apply(message)
            }
            if (linksConsistent && addressesConsistent) || attempt == dumpAttempts { break }
        }
        return table
    }
}
