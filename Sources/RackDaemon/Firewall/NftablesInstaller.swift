// rackd — installs and removes rackd's nftables table, and edits its set of managed flows.
//
// Talks to the kernel over libnftnl + libmnl; it never runs `nft`. It makes no decisions: the engine
// says which flows to manage, the configuration says which queue variant to prefer.
//
// A shifted flow (Core/KernelShift.swift) is a conntrack entry as well as map elements: the entry is created
// first (Kernel/ConntrackShifts.swift), so that the flow's packets find it as soon as the elements send them
// past the queue, and deleted after the elements are gone. An entry that cannot be created does not hold up
// the elements: the chain `shifted` queues the inbound packets conntrack does not shift, so the flow is
// carried right, only slower; the failure is reported with the change.

import Logging
import RackEngine

/// The owner of rackd's `inet rackd` table.
public final class NftablesInstaller {
    private let socket: NetlinkSocket
    private var sequence: UInt32
    private let logger: Logger

    /// The variant that was installed, once `install` has succeeded.
    private(set) var installedVariant: QueueRuleVariant?
    /// The ruleset `install` put in, which `reinstall` puts back.
    private var installedRuleset: RackdRuleset?

    /// The conntrack entries of shifted flows, when rackd can shift flows in the kernel; the table tests
    /// conntrack's status (`RackdRuleset.kernelShifts`) exactly then.
    private let conntrack: ConntrackShifts?

    /// The netlink port id of the installer's socket: nf_tables' notifications of rackd's own batches carry it.
    public var portID: UInt32 { socket.portID }

    public init(logger: Logger, conntrack: ConntrackShifts? = nil) throws(SystemError) {
        self.conntrack = conntrack
        self.socket = try NetlinkSocket(family: .netfilter)
        // Acks come inside send, and a table check is one short dump: never wait long.
        try socket.setReceiveTimeout(.seconds(5))
        self.logger = logger
        // Distinct sequence numbers per process make stray acks easy to tell apart.
        self.sequence = UInt32(truncatingIfNeeded: UInt64.random(in: 1...UInt64(UInt32.max)))
    }

    /// Replaces any table left by an earlier rackd with a fresh one holding `flows` in its maps,
    /// trying the variants that `preference` allows in order: native first, then compat. Each attempt is
    /// one batch that replaces the table whole (`RackdRuleset.appendReplace`), so at no instant is there no
    /// table, or one without its elements, and a failed attempt leaves what was there. The shifted flows'
    /// conntrack entries are created before it (`installEntries`).
    @discardableResult
    public func install(queueNumber: UInt16, firewallMark: UInt32, preference: Configuration.RulesVariant,
                        flows: KernelFlows = KernelFlows(), exclusions: Policy = Policy(),
                        rocksPorts: [PortRange]? = nil,
                        ordinary: [OrdinaryDestination] = []) throws(NftablesError)
        -> QueueRuleVariant
    {
        let candidates: [QueueRuleVariant]
        switch preference {
        case .auto: candidates = [.native, .compat]
        case .native: candidates = [.native]
        case .compat: candidates = [.compat]
        }
        let hadTable = tableExists()
        installEntries(flows.shifted)
        var lastError: NftablesError? = nil
        for variant in candidates {
            var ruleset = RackdRuleset(queueNumber: queueNumber, firewallMark: firewallMark, variant: variant,
                                       exclusions: SYNExclusions(exclusions, rocksPorts: rocksPorts))
            ruleset.kernelShifts = conntrack != nil
            do {
                try replace(with: ruleset, flows: flows, ordinary: ordinary)
                installedVariant = variant
                installedRuleset = ruleset
                if hadTable {
                    logger.notice("replaced a table left by an earlier rackd", metadata: ["nft.table": "inet rackd"])
                }
                logger.notice("rules installed", metadata: [
                    "nft.table": "inet rackd", "nft.queue-variant": "\(variant.rawValue)", "nfq.queue": "\(queueNumber)",
                    "nft.queued-flows": "\(flows.queued.count)", "nft.kernel-rewrites": "\(flows.rewrites.count)", "nft.screened-flows": "\(flows.screened.count)",
                    "nft.shifted-flows": "\(flows.shifted.count)",
                ])
                return variant
            } catch {
                lastError = error
                if variant == .native && candidates.contains(.compat) {
                    logger.notice("native queue statement unavailable; falling back to the xtables-compat NFQUEUE target",
                                  metadata: ["nft.error": "\(error)"])
                }
            }
        }
        throw lastError!
    }

    /// Puts the table `install` made back, with the variant it chose, holding `flows` and the `ordinary`
    /// destinations (with what is left of their lifetimes): one batch that replaces whatever is there now
    /// (nothing, part of it, or all of it). The shifted flows' conntrack entries are created again before
    /// it: whoever took the table may have flushed conntrack too.
    public func reinstall(flows: KernelFlows, ordinary: [OrdinaryDestination] = []) throws(NftablesError) {
        guard let ruleset = installedRuleset else {
            preconditionFailure("reinstall before a successful install")
        }
        installEntries(flows.shifted)
        try replace(with: ruleset, flows: flows, ordinary: ordinary)
        installedVariant = ruleset.variant
    }

    /// Creates the conntrack entry of every shifted flow, before the elements that send their packets past
    /// the queue. A failure is logged and leaves the flow to the chain `shifted` (the file's header).
    private func installEntries(_ shifts: Set<KernelShift>) {
        for shift in shifts.sorted(by: { $0.description < $1.description }) {
            do {
                try installEntry(shift)
            } catch {
                logger.error("could not create a shifted flow's conntrack entry; its packets stay queued",
                             metadata: ["ct.shift": "\(shift)", "error": "\(error)"])
            }
        }
    }

    private func installEntry(_ shift: KernelShift) throws(SystemError) {
        guard let conntrack else { throw Self.noKernelShifts(shift) }
        try conntrack.install(shift)
    }

    /// A shift with kernel shifts unavailable: the engine should never ask for one then.
    private static func noKernelShifts(_ shift: KernelShift) -> SystemError {
        SystemError(call: "ctnetlink create \(shift)", errno: .notSupported,
                    hint: "kernel shifts are unavailable here (see the start's notice on rocks connections with a "
                        + "sequence shift), yet the engine shifted a flow: a bug in rackd; its packets stay queued")
    }

    private func replace(with ruleset: RackdRuleset, flows: KernelFlows,
                         ordinary: [OrdinaryDestination] = []) throws(NftablesError) {
        let elements = FlowMapElement.elements(for: flows)
        let messages = ruleset.replaceMessageCount(elements: elements, ordinaryCount: ordinary.count)
        // The ruleset takes some KiB; an IPv6 element with IPv6 data about 110 bytes.
        let batch = NftablesBatch(firstSequence: nextSequence(count: UInt32(messages)),
                                  capacity: 256 * 1024 + 112 * elements.count + 64 * ordinary.count)
        ruleset.appendReplace(holding: elements, ordinary: ordinary, to: batch)
        try batch.commit(on: socket)
    }

    /// Adds `destinations` to the ordinary sets, each with its lifetime as the element's timeout, in one
    /// batch: their handshakes are not queued until it runs out (RackdRuleset+Ordinary.swift).
    public func addOrdinary(_ destinations: [OrdinaryDestination]) throws(NftablesError) {
        guard !destinations.isEmpty else { return }
        let messages = (destinations.count + RackdRuleset.elementsPerMessage - 1) / RackdRuleset.elementsPerMessage
        let batch = NftablesBatch(firstSequence: nextSequence(count: UInt32(messages) * 2 + 2),
                                  capacity: 4096 + 64 * destinations.count)
        RackdRuleset.appendOrdinary(destinations, to: batch)
        try batch.commit(on: socket)
    }

    // MARK: Checking the table

    /// Whether the kernel holds rackd's table as `install` made it, holding exactly `flows`: each chain
    /// has its rules, and each map the keys of its elements. Asked after nf_tables' notifications were
    /// lost, when only the kernel can say. False when the table or a map is missing.
    public func isIntact(flows: KernelFlows) throws(NftablesError) -> Bool {
        guard let ruleset = installedRuleset else { return false }
        do throws(SystemError) {
            var rulesPerChain: [String: Int] = [:]
            _ = try socket.dump(type: Self.messageType(7), bytes: Self.request([(1, RackdRuleset.tableName)]),  // GETRULE
                                call: "list rules of inet rackd") { message in
                guard case .change(let rule)? = NftablesNotification(decoding: message), rule.object == .rule,
                      rule.table == RackdRuleset.tableName, let chain = rule.name else { return }
                rulesPerChain[chain, default: 0] += 1
            }
            for chain in ruleset.chainNames where rulesPerChain[chain, default: 0] != ruleset.ruleCount(for: chain) {
                return false
            }
            var found: Set<[UInt8]> = []
            for map in FlowMap.all {
                _ = try socket.dump(type: Self.messageType(13),  // GETSETELEM
                                    bytes: Self.request([(1, RackdRuleset.tableName), (2, map.name)]),
                                    call: "list elements of \(map.name)") { message in
                    guard case .change(let elements)? = NftablesNotification(decoding: message) else { return }
                    found.formUnion(elements.elementKeys.map { Array(map.name.utf8) + [0] + $0 })
                }
            }
            let expected = FlowMapElement.elements(for: flows).map { Array($0.map.name.utf8) + [0] + $0.key.setKeyBytes }
            return found == Set(expected)
        } catch where error.errno == .noSuchFileOrDirectory {
            return false
        } catch {
            throw NftablesError(step: "check table inet rackd", error: error)
        }
    }

    /// The ordinary destinations the table there now holds (left by an earlier rackd), each with the time
    /// its element has left; none when there is no table, no ordinary set, or the kernel cannot say. Read
    /// before `install` replaces the table, so a restart keeps them (docs/restarts.md).
    public func cachedOrdinary() -> [OrdinaryDestination] {
        var found: [OrdinaryDestination] = []
        for set in [RackdRuleset.ordinaryIPv4, RackdRuleset.ordinaryIPv6] {
            do throws(SystemError) {
                _ = try socket.dump(type: Self.messageType(13),  // GETSETELEM
                                    bytes: Self.request([(1, RackdRuleset.tableName), (2, set.name)]),
                                    call: "list elements of \(set.name)") { message in
                    found += OrdinaryElementDump.destinations(in: message)
                }
            } catch {
                continue
            }
        }
        return found
    }

    /// Whether table inet rackd exists (NFT_MSG_GETTABLE); false too when the kernel cannot say.
    private func tableExists() -> Bool {
        do {
            try socket.requestWithAcknowledgment(
                type: Self.messageType(1), flags: 0, body: Self.request([(1, RackdRuleset.tableName)]),  // GETTABLE
                call: "get table inet rackd")
            return true
        } catch {
            return false
        }
    }

    /// nf_tables' message type for `command` (NFT_MSG_*): the subsystem NFNL_SUBSYS_NFTABLES in the high byte.
    private static func messageType(_ command: UInt16) -> UInt16 { 10 << 8 | command }

    /// A request body: `nfgenmsg` (family inet, version 0) and NUL-terminated string attributes.
    private static func request(_ strings: [(type: UInt16, value: String)]) -> [UInt8] {
        var bytes: [UInt8] = [UInt8(RackdRuleset.family), 0, 0, 0]
        for (type, value) in strings {
            let payload = Array(value.utf8) + [0]
            let length = UInt16(4 + payload.count)
            bytes += withUnsafeBytes(of: length) { Array($0) } + withUnsafeBytes(of: type) { Array($0) } + payload
            bytes += [UInt8](repeating: 0, count: netlinkAligned(payload.count) - payload.count)
        }
        return bytes
    }

    /// Deletes every rule and keeps the table and its chains: from now on nothing is queued, and the
    /// packets queued already stay queued for their verdicts. Deleting the table (`remove`) would drop them.
    public func stopQueueing() throws(NftablesError) {
        let batch = NftablesBatch(firstSequence: nextSequence(count: 2 + UInt32(RackdRuleset.Hook.allCases.count)))
        RackdRuleset.appendFlushRules(to: batch)
        try batch.commit(on: socket)
    }

    /// Deletes the table. Returns whether there was one: deleting a table that is not there succeeds.
    @discardableResult
    public func remove() throws(NftablesError) -> Bool {
        let batch = NftablesBatch(firstSequence: nextSequence(count: 4))
        RackdRuleset.appendDelete(to: batch)
        do {
            try batch.commit(on: socket)
            installedVariant = nil
            return true
        } catch where error.error.errno == .noSuchFileOrDirectory {
            installedVariant = nil
            return false
        }
    }

    /// Commits `changes` to the flow maps in one batch, in order, and returns the changes that failed
    /// (an `NftablesError`, or a `SystemError` for a shifted flow's conntrack entry).
    ///
    /// A batch fails whole, and deleting an element that is not in its set fails it with ENOENT (Linux 6.1
    /// has no DESTROY, which would not): then the changes are committed one by one, and such a delete
    /// counts as done, so one stale release cannot hold up the others.
    public func apply(_ changes: [RuleChange]) -> [(change: RuleChange, error: any Error)] {
        guard changes.count > Self.elementsPerBatch else { return applyInOneBatch(changes) }
        // Thousands at once (10,000 connections suspended by one black hole): in batches of a bounded
        // size, in order, so each fits the batch buffer and a datagram (docs/architecture.md, "Liveness at
        // scale"). Only each batch is atomic; the engine's order (releases, then additions) is kept.
        var failures: [(change: RuleChange, error: any Error)] = []
        var start = 0
        while start < changes.count {
            let end = min(changes.count, start + Self.elementsPerBatch)
            failures += applyInOneBatch(Array(changes[start..<end]))
            start = end
        }
        return failures
    }

    /// Set element changes per batch: about 100 bytes each, so a batch stays well inside the batch buffer
    /// (256 KiB) and the default netlink send buffer.
    static let elementsPerBatch = 1000

    /// The changes' conntrack entries around their batch: each shift's created before it (again for a flow
    /// already shifted: the engine asks when it sees the kernel lost the entry, and the elements added again
    /// change nothing), and after it, the entry of each flow whose last change here stops its shift deleted. A
    /// flow whose shift is replaced by another in the same changes keeps the new entry.
    private func applyInOneBatch(_ changes: [RuleChange]) -> [(change: RuleChange, error: any Error)] {
        guard !changes.isEmpty else { return [] }
        var failures: [(change: RuleChange, error: any Error)] = []
        var lastShiftChange: [FlowKey: RuleChange] = [:]
        for change in changes {
            switch change {
            case .shift(let shift):
                lastShiftChange[shift.flow] = change
                do throws(SystemError) { try installEntry(shift) } catch { failures.append((change, error)) }
            case .stopShifting(let shift):
                lastShiftChange[shift.flow] = change
            default:
                break
            }
        }
        failures += commitElements(changes)
        for change in changes {
            guard case .stopShifting(let shift) = change, lastShiftChange[shift.flow] == change, let conntrack else { continue }
            do throws(SystemError) { try conntrack.remove(shift) } catch { failures.append((change, error)) }
        }
        return failures
    }

    /// The elements of `changes` in one batch; after a failure that may be a stale removal's, one by one.
    private func commitElements(_ changes: [RuleChange]) -> [(change: RuleChange, error: any Error)] {
        do {
            try commit(changes)
            return []
        } catch where error.error.errno == .noSuchFileOrDirectory {
            return changes.compactMap { change -> (change: RuleChange, error: any Error)? in
                do throws(NftablesError) {
                    try commit([change])
                    return nil
                } catch {
                    if change.isRemoval, error.error.errno == .noSuchFileOrDirectory { return nil }
                    return (change, error)
                }
            }
        } catch {
            return changes.map { ($0, error) }
        }
    }

    /// Adds the elements of the changes that add and deletes those of the changes that remove, in order,
    /// in one batch.
    private func commit(_ changes: [RuleChange]) throws(NftablesError) {
        let perChange = changes.map { (elements: FlowMapElement.elements(for: $0), adding: !$0.isRemoval) }
        // Sequence numbers: the batch's begin and end, and one per message.
        let messages = perChange.reduce(0) { $0 + RackdRuleset.elementMessageCount($1.elements) }
        let elements = perChange.reduce(0) { $0 + $1.elements.count }
        // An element with IPv6 data and its message's share of headers: at most about 160 bytes.
        let batch = NftablesBatch(firstSequence: nextSequence(count: UInt32(messages) + 2),
                                  capacity: 64 * 1024 + 160 * elements)
        for change in perChange {
            RackdRuleset.appendElements(change.elements, adding: change.adding, to: batch)
        }
        try batch.commit(on: socket)
    }

    private func nextSequence(count: UInt32) -> UInt32 {
        defer { sequence &+= count }
        return sequence
    }
}
