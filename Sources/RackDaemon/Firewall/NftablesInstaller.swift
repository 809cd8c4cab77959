// rackd — installs and removes rackd's nftables table, and edits its set of managed flows.
//
// Talks to the kernel over libnftnl + libmnl; it never runs `nft`. It makes no decisions: the engine
// says which flows to manage, the configuration says which queue variant to prefer.

import Logging
import RackEngine

/// The owner of rackd's `inet rackd` table.
final class NftablesInstaller {
    private let socket: NetlinkSocket
    private var sequence: UInt32
    private let logger: Logger

    /// The variant that was installed, once `install` has succeeded.
    private(set) var installedVariant: QueueRuleVariant?

    init(logger: Logger) throws(SystemError) {
        self.socket = try NetlinkSocket()
        self.logger = logger
        // Distinct sequence numbers per process make stray acks easy to tell apart.
        self.sequence = UInt32(truncatingIfNeeded: UInt64.random(in: 1...UInt64(UInt32.max)))
    }

    /// Replaces any table left by an earlier rackd with a fresh one, trying the variants that `preference`
    /// allows in order: native first, then compat. The whole table is created in one batch, so a
    /// failed attempt leaves nothing behind.
    @discardableResult
    func install(queueNumber: UInt16, firewallMark: UInt32, preference: Configuration.RulesVariant)
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

    /// Deletes the table. Returns whether there was one: deleting a table that is not there succeeds.
    @discardableResult
    func remove() throws(NftablesError) -> Bool {
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

    /// Starts queueing every packet of `flow`.
    func addManagedFlow(_ flow: ManagedFlowKey) throws(NftablesError) {
        let batch = NftablesBatch(firstSequence: nextSequence(count: 4))
        RackdRuleset.appendElement(flow, adding: true, to: batch)
        try batch.commit(on: socket)
    }

    /// Stops queueing `flow`. Removing a flow that is not in the set succeeds.
    func removeManagedFlow(_ flow: ManagedFlowKey) throws(NftablesError) {
        let batch = NftablesBatch(firstSequence: nextSequence(count: 4))
        RackdRuleset.appendElement(flow, adding: false, to: batch)
        do {
            try batch.commit(on: socket)
        } catch where error.error.errno == .noSuchFileOrDirectory {
            return
        }
    }

    private func nextSequence(count: UInt32) -> UInt32 {
        defer { sequence &+= count }
        return sequence
    }
}
