// rackd — nf_tables notifications (Decoding/NftablesNotification.swift) over recorded kernel bytes
// (Fixtures/nftables-*.bin) and hand-built ones, the watch that turns them into "rules taken away", and the
// rate limit on restoring them (Firewall/RulesRestoreLimit.swift).

import RackDaemon
import RackEngine
import Testing

@Suite struct NftablesNotificationTests {
    // MARK: Helpers

    /// The notes of Fixtures/nftables.txt for `file`: the nft process, the kinds changed, the element.
    struct Notes {
        var pid: UInt32
        var name: String
        var added: Bool
        var kinds: Set<NftablesChange.Object>
    }

    static func notes(_ file: String) throws -> Notes {
        let lines = try Fixture.notes("nftables.txt")
        let batch = try #require(lines.first { $0.first == "batch" && $0[1] == file })
        let changes = try #require(lines.first { $0.first == "changes" && $0[1] == file })
        return Notes(pid: try #require(UInt32(batch[3])), name: batch[5], added: changes[2] == "added",
                     kinds: Set(changes[3...].compactMap(NftablesChange.Object.init(rawValue:))))
    }

    static func notifications(_ bytes: [UInt8]) -> [NftablesNotification?] {
        bytes.withUnsafeBytes { buffer in NetlinkMessages(buffer).map(NftablesNotification.init(decoding:)) }
    }

    /// Runs a watch over every message of `bytes`; returns what it reported.
    static func watch(_ bytes: [UInt8], _ watch: inout RulesetWatch) -> [RulesTakenAway] {
        bytes.withUnsafeBytes { buffer in NetlinkMessages(buffer).compactMap { watch.handle($0) } }
    }

    /// One hand-built nf_tables message: `command` (NFT_MSG_*), `family`, from `port`, with attributes.
    static func message(_ command: UInt8, family: UInt8 = 1, port: UInt32, subsystem: UInt8 = 10,
                        _ attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var payload: [UInt8] = [family, 0, 0, 0]
        for (type, value) in attributes {
            payload += withUnsafeBytes(of: UInt16(4 + value.count)) { Array($0) } + withUnsafeBytes(of: type) { Array($0) }
            payload += value + [UInt8](repeating: 0, count: (4 - value.count % 4) % 4)
        }
        var header: [UInt8] = []
        header += withUnsafeBytes(of: UInt32(16 + payload.count)) { Array($0) }
        header += withUnsafeBytes(of: UInt16(subsystem) << 8 | UInt16(command)) { Array($0) }
        header += [0, 0] + [1, 0, 0, 0] + withUnsafeBytes(of: port) { Array($0) }
        return header + payload
    }

    static func string(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }
    static func bigEndian(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    static func deleteTable(_ name: String = "rackd", family: UInt8 = 1, port: UInt32) -> [UInt8] {
        message(2, family: family, port: port, [(1, string(name))])
    }

    static func deleteRule(chain: String, port: UInt32) -> [UInt8] {
        message(8, port: port, [(1, string("rackd")), (2, string(chain))])
    }

    static func generation(port: UInt32, pid: UInt32 = 77, name: String = "nft") -> [UInt8] {
        message(15, family: 0, port: port, [(1, bigEndian(9)), (2, bigEndian(pid)), (3, string(name))])
    }

    // MARK: Recorded

    @Test(arguments: ["nftables-install.bin", "nftables-delete-element.bin", "nftables-flush-ruleset.bin"])
    func recordedBatchesDecodeWholeAndEndWithTheirProcess(_ file: String) throws {
        let notes = try Self.notes(file)
        let decoded = Self.notifications(try Fixture.bytes(file))
        #expect(!decoded.isEmpty)
        #expect(decoded.allSatisfy { $0 != nil })
        guard case .batchEnd(let end)? = decoded.last else {
            Issue.record("the batch does not end with NFT_MSG_NEWGEN")
            return
        }
        #expect(end.processID == notes.pid)
        #expect(end.processName == notes.name)
        var kinds: Set<NftablesChange.Object> = []
        for case .change(let change)? in decoded {
            #expect(change.portID == end.portID)
            #expect(change.isDeletion != notes.added)
            if change.table == "rackd" && change.family == 1 { kinds.insert(change.object) }
        }
        #expect(kinds == notes.kinds)
    }

    @Test func recordedElementDeletionCarriesItsKey() throws {
        let line = try #require(try Fixture.notes("nftables.txt").first { $0.first == "element" })
        let local = try #require(IPAddress(parsing: line[2]))
        let remote = try #require(IPAddress(parsing: line[4]))
        let port = { (text: String) -> [UInt8] in let p = UInt16(text)!; return [UInt8(p >> 8), UInt8(p & 0xff), 0, 0] }
        let expected = local.bytes + port(line[3]) + remote.bytes + port(line[5])
        let decoded = Self.notifications(try Fixture.bytes(line[1]))
        guard case .change(let change)?? = decoded.first else {
            Issue.record("no change decoded")
            return
        }
        #expect(change.object == .elements && change.isDeletion && change.name == "managed4")
        #expect(change.elementKeys == [expected])
    }

    @Test func recordedFlushIsTakenAwayOnceNamingNft() throws {
        let notes = try Self.notes("nftables-flush-ruleset.bin")
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [])
        let reports = Self.watch(try Fixture.bytes("nftables-flush-ruleset.bin"), &watch)
        #expect(reports.count == 1)
        let taken = try #require(reports.first)
        #expect(Set(taken.deleted.keys) == notes.kinds)
        #expect(taken.processID == notes.pid)
        #expect(taken.description.hasSuffix("deleted by nft (pid \(notes.pid))"))
        #expect(taken.description.hasPrefix("table, chain, rule, set"))
    }

    @Test func recordedAdditionsAreNotTakenAway() throws {
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [])
        #expect(Self.watch(try Fixture.bytes("nftables-install.bin"), &watch).isEmpty)
        #expect(watch.takeUnfinished() == nil)
    }

    @Test func recordedBatchFromOwnPortIsIgnored() throws {
        let bytes = try Fixture.bytes("nftables-flush-ruleset.bin")
        let port = try #require(Fixture.messages(in: bytes).first.map { try Fixture.withMessage($0) { $0.portID } })
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [port])
        #expect(Self.watch(bytes, &watch).isEmpty)
        #expect(watch.takeUnfinished() == nil)
    }

    // MARK: Hand-built

    @Test func onlyDeletionsOfTheWatchedTableAndFamilyCount() {
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [5])
        let bytes = Self.deleteTable("other", port: 9) + Self.deleteTable(family: 2, port: 9)
            + Self.message(0, port: 9, [(1, Self.string("rackd"))])  // NEWTABLE
            + Self.deleteTable(port: 5) + Self.generation(port: 9) + Self.generation(port: 5)
        #expect(Self.watch(bytes, &watch).isEmpty)
    }

    @Test func oneReportPerBatchAtItsEnd() throws {
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [])
        let changes = Self.deleteRule(chain: "output", port: 9) + Self.deleteRule(chain: "input", port: 9)
            + Self.message(5, port: 9, [(1, Self.string("rackd")), (3, Self.string("input"))])
        #expect(Self.watch(changes, &watch).isEmpty)
        let reports = Self.watch(Self.generation(port: 9, pid: 4242, name: "firewalld"), &watch)
        let taken = try #require(reports.first)
        #expect(reports.count == 1)
        #expect(taken.deleted == [.rule: 2, .chain: 1])
        #expect(taken.description == "chain, 2 rules deleted by firewalld (pid 4242)")
        // The next batch starts afresh.
        #expect(Self.watch(Self.generation(port: 9), &watch).isEmpty)
    }

    @Test func anotherPortsBatchEndDoesNotEndThisOne() {
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [])
        let bytes = Self.deleteTable(port: 9) + Self.generation(port: 10)
        #expect(Self.watch(bytes, &watch).isEmpty)
        #expect(watch.takeUnfinished()?.deleted == [.table: 1])
        #expect(watch.takeUnfinished() == nil)
    }

    @Test func kernelOriginatedDeletionsCount() {
        // Port 0: the kernel itself (a table owner's socket closing, for instance).
        var watch = RulesetWatch(table: "rackd", ownPortIDs: [1234])
        #expect(Self.watch(Self.deleteTable(port: 0) + Self.generation(port: 0), &watch).count == 1)
    }

    @Test func malformedOrForeignMessagesDecodeToNothing() {
        let goodTable = Self.deleteTable(port: 9)
        var badLength = goodTable
        badLength[16 + 4] = 200  // the attribute claims more than there is
        let otherSubsystem = Self.message(2, port: 9, subsystem: 3, [(1, Self.string("rackd"))])
        let unknownCommand = Self.message(20, port: 9, [(1, Self.string("rackd"))])  // NFT_MSG_DELOBJ
        let shortPayload = Array(goodTable[0..<16] + [1, 0]).withLength()
        for bytes in [badLength, otherSubsystem, unknownCommand, shortPayload] {
            #expect(Self.notifications(bytes).allSatisfy { $0 == nil })
        }
        #expect(Self.notifications(goodTable).first == .change(
            NftablesChange(object: .table, isDeletion: true, family: 1, portID: 9, table: "rackd")))
    }

    @Test func elementKeysAreReadFromTheirNests() {
        func nest(_ type: UInt16, _ inner: [UInt8]) -> [UInt8] {
            withUnsafeBytes(of: UInt16(4 + inner.count)) { Array($0) } + withUnsafeBytes(of: type | 0x8000) { Array($0) }
                + inner
        }
        let key: [UInt8] = [10, 0, 0, 1, 0x9c, 0x41, 0, 0, 10, 0, 0, 2, 0, 22, 0, 0]
        let value = withUnsafeBytes(of: UInt16(4 + key.count)) { Array($0) } + [1, 0] + key
        let elements = nest(1, nest(1, value)) + nest(1, nest(1, value))
        let bytes = Self.message(14, port: 9, [(1, Self.string("rackd")), (2, Self.string("managed4")), (3 | 0x8000, elements)])
        guard case .change(let change)?? = Self.notifications(bytes).first else {
            Issue.record("nothing decoded")
            return
        }
        #expect(change.elementKeys == [key, key])
        #expect(change.name == "managed4")
    }

    // MARK: Rate limit

    @Test func restorationsComeInABurstThenOneAnInterval() {
        var limit = RulesRestoreLimit(burst: 3, interval: .seconds(1))
        let start = EngineInstant.seconds(100)
        for _ in 0..<3 {
            #expect(limit.earliestRestoration(now: start) == start)
            limit.recordRestoration(at: start)
        }
        #expect(limit.earliestRestoration(now: start) == start + .seconds(1))
        limit.recordRestoration(at: start + .seconds(1))
        #expect(limit.earliestRestoration(now: start + .seconds(1)) == start + .seconds(2))
        // After a quiet spell the whole burst is back.
        let later = start + .seconds(60)
        for _ in 0..<3 {
            #expect(limit.earliestRestoration(now: later) == later)
            limit.recordRestoration(at: later)
        }
        #expect(limit.earliestRestoration(now: later) > later)
    }
}

extension Array where Element == UInt8 {
    /// The message with its header's length field set to its byte count.
    fileprivate func withLength() -> [UInt8] {
        var bytes = self
        Swift.withUnsafeBytes(of: UInt32(bytes.count)) { bytes.replaceSubrange(0..<4, with: $0) }
        return bytes
    }
}
