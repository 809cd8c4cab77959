// rackd — the route decoder (Decoding/RouteMessage.swift) against the kernel's own RTM_NEWROUTE and
// RTM_DELROUTE notifications (Fixtures/routes-*.bin, recorded by tools/record-netlink-fixtures): which of
// them may give a peer a path, and what a cut or corrupted message decodes to.

import Testing
@testable import RackDaemon
import RackEngine

@Suite struct RouteMessageTests {
    static let steps = ["default-added", "address-added", "default-deleted"]
    static let newRoute: UInt16 = 24  // RTM_NEWROUTE
    static let deletedRoute: UInt16 = 25  // RTM_DELROUTE

    /// Every route message of one step's notifications: its type and what it decodes to.
    static func routes(_ step: String) throws -> [(type: UInt16, route: RouteMessage?, bytes: [UInt8])] {
        try Fixture.messages(in: try Fixture.bytes("routes-\(step).bin")).map { bytes in
            try Fixture.withMessage(bytes) { ($0.type, RouteMessage.decode($0.payload), bytes) }
        }
    }

    /// The routes the recorder saw a step add or delete (routes.txt), as "FAMILY DESTINATION/LENGTH TABLE TYPE".
    static func noted(_ step: String, _ change: String) throws -> Set<String> {
        Set(try Fixture.notes("routes.txt").filter { $0[0] == step && $0[1] == change }.map { $0[2...].joined(separator: " ") })
    }

    static let typeNames: [UInt8: String] = [1: "unicast", 2: "local", 3: "broadcast", 5: "multicast"]

    /// A decoded route in the notes' form.
    static func described(_ route: RouteMessage) -> String {
        let destination = route.destination?.description ?? (route.family == .ipv4 ? "0.0.0.0" : "::")
        return "\(route.family) \(destination)/\(route.prefixLength) \(route.table) \(typeNames[route.type] ?? "\(route.type)")"
    }

    @Test(arguments: steps) func decodesWhatTheKernelSent(step: String) throws {
        let routes = try Self.routes(step)
        #expect(!routes.isEmpty)
        let added = Set(routes.filter { $0.type == Self.newRoute }.compactMap { $0.route.map(Self.described) })
        let deleted = Set(routes.filter { $0.type == Self.deletedRoute }.compactMap { $0.route.map(Self.described) })
        #expect(added == (try Self.noted(step, "new")))
        #expect(deleted == (try Self.noted(step, "del")))
        #expect(routes.allSatisfy { $0.route != nil }, "every route message decodes")
    }

    @Test func theDefaultRoutesLeadToPeersAndCarryTheirGateways() throws {
        let added = try Self.routes("default-added").compactMap(\.route)
        let v4 = try #require(added.first { $0.family == .ipv4 })
        let v6 = try #require(added.first { $0.family == .ipv6 })
        #expect(v4.mayLeadToPeers && v6.mayLeadToPeers)
        #expect(v4.destination == nil && v4.prefixLength == 0 && v4.table == 254)
        #expect(v4.gateway?.description == "10.90.0.99" && v6.gateway?.description == "fd00:90::99")
        #expect(v4.outputInterface != nil && v4.outputInterface == v6.outputInterface)
    }

    @Test func anAddressLeadsToPeersOnlyThroughItsSubnetRoute() throws {
        let added = try Self.routes("address-added").filter { $0.type == Self.newRoute }.compactMap(\.route)
        let leading = added.filter(\.mayLeadToPeers).map(Self.described)
        #expect(leading == ["ipv4 10.91.0.0/24 254 unicast"])
        #expect(added.count == 3, "the subnet, and in the local table the address and its broadcast")
    }

    @Test func otherFamiliesAreNotRoutesOfOurs() throws {
        var message = try #require(try Self.routes("default-added").first).bytes
        message[NetlinkMessage.headerSize] = 7  // AF_BRIDGE in rtm_family
        #expect(try Fixture.withMessage(message) { RouteMessage.decode($0.payload) } == nil)
    }

    @Test func aClonedRouteDoesNotCount() throws {
        var message = try #require(try Self.routes("default-added").first { $0.route?.family == .ipv4 }).bytes
        message[NetlinkMessage.headerSize + 9] |= 0x02  // RTM_F_CLONED (0x200) in rtm_flags
        let route = try #require(try Fixture.withMessage(message) { RouteMessage.decode($0.payload) })
        #expect(!route.mayLeadToPeers)
    }

    /// Cut at every length: too short for `rtmsg` or with a cut attribute, nothing; never a trap.
    @Test(arguments: steps) func everyCutIsRefusedOrComplete(step: String) throws {
        for (_, whole, bytes) in try Self.routes(step) {
            let payloadLength = bytes.count - NetlinkMessage.headerSize
            // An attribute's padding may be cut too: from its end to its aligned end, the message is whole.
            let ends = try Fixture.attributeBoundaries(bytes, fixedHeaderSize: 12)
            let boundaries = Set(ends.flatMap { $0...(($0 + 3) & ~3) })
            for length in 0...payloadLength {
                let cut = Fixture.cut(bytes, payloadLength: length)
                let route = try Fixture.withMessage(cut) { RouteMessage.decode($0.payload) }
                if length < 12 || !boundaries.contains(length) {
                    #expect(route == nil, "cut at \(length) of \(payloadLength)")
                } else if length == payloadLength {
                    #expect(route == whole)
                }
            }
        }
    }
}
