// rackd — the interface table (Decoding/InterfaceTable.swift) fed recorded rtnetlink dumps and
// notifications: after each step its usable addresses are the ones the kernel had, and the changes it
// reports are the difference; cut, corrupted and foreign messages change nothing.

import RackDaemon
import RackEngine
import Testing

@Suite struct InterfaceTableTests {
    static let steps = ["dad-done", "address-added", "address-removed", "link-down", "link-up"]
    static let messageFiles = ["route-links.bin", "route-addresses.bin"] + steps.map { "route-\($0).bin" }

    /// The usable addresses the recording noted after `step`.
    static func noted(_ step: String) throws -> Set<String> {
        let line = try #require(try Fixture.notes("route.txt").first { $0[1] == step })
        return Set(line[2...])
    }

    /// Applies every message of a recording; returns everything lost and made available.
    @discardableResult
    static func apply(_ name: String, to table: inout InterfaceTable) throws -> (lost: [IPAddress], available: [IPAddress]) {
        var lost: [IPAddress] = []
        var available: [IPAddress] = []
        for message in Fixture.messages(in: try Fixture.bytes(name)) {
            let change = try Fixture.withMessage(message) { table.apply($0) }
            lost += change.lost
            available += change.available
        }
        return (lost, available)
    }

    static func dumped() throws -> InterfaceTable {
        var table = InterfaceTable()
        try apply("route-links.bin", to: &table)
        try apply("route-addresses.bin", to: &table)
        return table
    }

    static func usable(_ table: InterfaceTable) -> Set<String> {
        Set(table.usableAddresses.map(\.description))
    }

    @Test func theDumpHasTheKernelsUsableAddresses() throws {
        let table = try Self.dumped()
        #expect(Self.usable(table) == (try Self.noted("dump")))
        #expect(table.usableAddresses.count == Self.usable(table).count)
    }

    @Test func eachStepReportsWhatChanged() throws {
        var table = try Self.dumped()
        var before = try Self.noted("dump")
        for step in Self.steps {
            let (lost, available) = try Self.apply("route-\(step).bin", to: &table)
            let after = try Self.noted(step)
            #expect(Self.usable(table) == after, "after \(step)")
            #expect(Set(lost.map(\.description)) == before.subtracting(after), "lost in \(step)")
            #expect(Set(available.map(\.description)) == after.subtracting(before), "available in \(step)")
            before = after
        }
    }

    @Test func theStepsChangeSomething() throws {
        // The recording is only useful if each step moved an address.
        var before = try Self.noted("dump")
        for step in Self.steps {
            let after = try Self.noted(step)
            #expect(before != after, "\(step)")
            before = after
        }
    }

    /// Cut anywhere, a message changes nothing, or (cut between attributes) what the whole one would.
    @Test(arguments: messageFiles)
    func cutMessagesChangeNothingOrWhatTheWholeOneWould(_ name: String) throws {
        let dumped = try Self.dumped()
        for message in Fixture.messages(in: try Fixture.bytes(name)) {
            var whole = dumped
            let wholeChange = try Fixture.withMessage(message) { whole.apply($0) }
            let type = try Fixture.withMessage(message) { $0.type }
            let isAddress = type == 20 || type == 21  // RTM_NEWADDR, RTM_DELADDR
            let boundaries = try Fixture.attributeBoundaries(message, fixedHeaderSize: isAddress ? 8 : 16)
            for length in 0..<(message.count - NetlinkMessage.headerSize) {
                var table = dumped
                let change = try Fixture.withMessage(Fixture.cut(message, payloadLength: length)) { table.apply($0) }
                if isAddress && !boundaries.contains(length) {
                    #expect(change.lost.isEmpty && change.available.isEmpty)
                    #expect(Self.usable(table) == Self.usable(dumped))
                } else if !isAddress && length < 16 {  // shorter than struct ifinfomsg
                    #expect(Self.usable(table) == Self.usable(dumped))
                } else if !isAddress {
                    // A link message's attributes are not read: a cut one is the whole one.
                    #expect(change.lost == wholeChange.lost && change.available == wholeChange.available)
                }
            }
        }
    }

    /// The RTM_NEWLINK that set v0 (10.90.0.1) down, as it came.
    static func linkDownMessage() throws -> [UInt8] {
        let messages = Fixture.messages(in: try Fixture.bytes("route-link-down.bin"))
        var table = try dumped()
        for message in messages {
            let isLink = try Fixture.withMessage(message) { $0.type == 16 }  // RTM_NEWLINK
            let lost = try Fixture.withMessage(message) { table.apply($0).lost }
            if isLink && lost.contains(where: { $0.description == "10.90.0.1" }) { return message }
        }
        Issue.record("no RTM_NEWLINK took 10.90.0.1 away")
        return []
    }

    @Test func bridgeMessagesAreIgnored() throws {
        var message = try Self.linkDownMessage()
        message[NetlinkMessage.headerSize] = 7  // AF_BRIDGE in ifi_family
        var table = try Self.dumped()
        let change = try Fixture.withMessage(message) { table.apply($0) }
        #expect(change.lost.isEmpty && change.available.isEmpty)
    }

    @Test func aDeletedLinkTakesItsAddresses() throws {
        let message = Fixture.setting(17, at: 4, in: try Self.linkDownMessage())  // RTM_DELLINK
        var table = try Self.dumped()
        let change = try Fixture.withMessage(message) { table.apply($0) }
        #expect(Set(change.lost.map(\.description)) == ["10.90.0.1", "fd00:90::1"])
    }

    @Test(arguments: [UInt16(0), 3, 0xFFFF])
    func anAddressWithABadAttributeLengthChangesNothing(_ length: UInt16) throws {
        var table = InterfaceTable()
        try Self.apply("route-links.bin", to: &table)
        for message in Fixture.messages(in: try Fixture.bytes("route-addresses.bin"))
        where try Fixture.withMessage(message, { $0.type == 20 }) {  // RTM_NEWADDR, not NLMSG_DONE
            let corrupted = Fixture.setting(length, at: NetlinkMessage.headerSize + 8, in: message)
            let change = try Fixture.withMessage(corrupted) { table.apply($0) }
            #expect(change.available.isEmpty)
        }
        #expect(table.usableAddresses.isEmpty)
    }
}
