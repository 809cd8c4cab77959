// rackd — installs and removes rackd's nftables table, and edits its set of managed flows.
//
// Talks to the kernel over libnftnl + libmnl; it never runs `nft`. It makes no decisions: the engine
// says which flows to manage, the configuration says which queue variant to prefer.

import Logging
import RackEngine

/// The owner of rackd's `inet rackd` table.
public final class NftablesInstaller {
    private let socket: NetlinkSocket
    private var sequence: UInt32
    private let logger: Logger

    /// The variant that was installed, once `install` has succeeded.
    private(set) var installedVariant: QueueRuleVariant?

    public init(logger: Logger) throws(SystemError) {
        self.socket = try NetlinkSocket(family: .netfilter)
        self.logger = logger
        // Distinct sequence numbers per process make stray acks easy to tell apart.
        self.sequence = UInt32(truncatingIfNeeded: UInt64.random(in: 1...UInt64(UInt32.max)))
    }

    /// Replaces any table left by an earlier rackd with a fresh one, trying the variants that `preference`
    /// allows in order: native first, then compat. The whole table is created in one batch, so a
    /// failed attempt leaves nothing behind.
    @discardableResult
    public func install(queueNumber: UInt16, firewallMark: UInt32, preference: Configuration.RulesVariant)
        throws(NftablesError) -> QueueRuleVariant
    {
        let candidates: [QueueRuleVariant]
        switch preference {
        case .auto: candidates = [.native, .compat]
        case .native: candidates = [.native]
        case .compat: candidates = [.compat]
        }
        let removedStale = try remove()
        if removedStale {
            logger.notice("removed a table left by an earlier rackd", metadata: ["nft.table": "inet rackd"])
        }
        var lastError: NftablesError? = nil
        for variant in candidates {
            let ruleset = RackdRuleset(queueNumber: queueNumber, firewallMark: firewallMark, variant: variant)
            let batch = NftablesBatch(firstSequence: nextSequence(count: 64))
            ruleset.appendCreate(to: batch)
            do {
                try batch.commit(on: socket)
                installedVariant = variant
                logger.notice("rules installed", metadata: [
                    "nft.table": "inet rackd", "nft.queue-variant": "\(variant.rawValue)", "nfq.queue": "\(queueNumber)",
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

    /// Commits `changes` to the managed sets in one batch, in order, and returns the changes that failed.
    ///
    /// A batch fails whole, and deleting an element that is not in its set fails it with ENOENT (Linux 6.1
    /// has no DESTROY, which would not): then the changes are committed one by one, and such a delete
    /// counts as done, so one stale release cannot hold up the others.
    public func apply(_ changes: [RuleChange]) -> [(change: RuleChange, error: NftablesError)] {
        guard !changes.isEmpty else { return [] }
        do {
            try commit(changes)
            return []
        } catch where error.error.errno == .noSuchFileOrDirectory {
            return changes.compactMap { change -> (change: RuleChange, error: NftablesError)? in
                do throws(NftablesError) {
                    try commit([change])
                    return nil
                } catch {
                    if case .release = change, error.error.errno == .noSuchFileOrDirectory { return nil }
                    return (change, error)
                }
            }
        } catch {
            return changes.map { ($0, error) }
        }
    }

    /// Adds the flows `changes` manage to the managed sets and deletes those they release, in one batch.
    private func commit(_ changes: [RuleChange]) throws(NftablesError) {
        // Sequence numbers: the batch's begin and end, and one per element.
        let batch = NftablesBatch(firstSequence: nextSequence(count: UInt32(changes.count) + 2))
        for change in changes {
            switch change {
            case .manage(let flow): RackdRuleset.appendElement(ManagedFlowKey(flow), adding: true, to: batch)
            case .release(let flow): RackdRuleset.appendElement(ManagedFlowKey(flow), adding: false, to: batch)
            }
        }
        try batch.commit(on: socket)
    }

    private func nextSequence(count: UInt32) -> UInt32 {
        defer { sequence &+= count }
        return sequence
    }
}
