// rackd — notices when someone else takes rackd's rules away (`nft flush ruleset`, `nft delete table inet
// rackd`, a firewall reload), from nf_tables' own notifications, and says when to put them back.
//
// A NETLINK_NETFILTER socket joined to the NFNLGRP_NFTABLES multicast group, non-blocking, polled by the
// data plane. The kernel sends it every committed change to any table; the pure `RulesetWatch`
// (Decoding/NftablesNotification.swift) keeps the deletions in rackd's table that rackd's own installer
// did not make, and reports them once per batch. After an overrun (ENOBUFS: notifications were lost) the
// answer is "unknown": the data plane then asks the kernel whether the table is intact. What is found
// waits for `takeDue`, which lets restorations through at the pace `RulesRestoreLimit` allows. It decides
// nothing else (docs/rules-restore.md).

import CLinuxNetlink
import Logging
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

/// Follows nf_tables' notifications for changes others make to rackd's table.
public final class RulesetMonitor {
    /// Why the rules may need restoring.
    public enum Trigger: Sendable, CustomStringConvertible {
        /// Someone else's batch deleted part of the table.
        case takenAway(RulesTakenAway)
        /// Notifications were lost (the socket overflowed): whether the table is intact is unknown.
        case notificationsLost

        public var description: String {
            switch self {
            case .takenAway(let taken): "\(taken)"
            case .notificationsLost: "nftables notifications lost"
            }
        }

        /// Both at once: a known deletion wins over not knowing.
        func merged(with other: Trigger) -> Trigger {
            switch (self, other) {
            case (.takenAway(var mine), .takenAway(let theirs)):
                mine.merge(theirs)
                return .takenAway(mine)
            case (.takenAway, .notificationsLost): return self
            case (.notificationsLost, _): return other
            }
        }
    }

    /// A restoration to make: why, and when rackd noticed.
    public struct Restoration: Sendable {
        public var trigger: Trigger
        public var noticedAt: EngineInstant

        /// Whole milliseconds from noticing to `now`, for logs.
        public func millisecondsSinceNoticed(now: EngineInstant) -> Int64 {
            milliseconds(now.duration(since: noticedAt))
        }
    }

    /// NFNLGRP_NFTABLES (linux/netfilter/nfnetlink.h).
    private static let group: UInt32 = 7

    private let socket: NetlinkSocket
    private var watch: RulesetWatch
    private var limit: RulesRestoreLimit
    private var pending: Restoration?
    /// Whether the deferral of `pending` was logged.
    private var deferralLogged = false
    private let logger: Logger
    /// How often the socket overflowed, for logs.
    public private(set) var overruns = 0

    /// Joins the nf_tables group. Batches sent from `ownPortID` (rackd's installer) are rackd's own.
    ///
    /// - Parameter receiveBufferBytes: a batch whose notifications exceed this (a large ruleset flushed at
    ///   once) overflows the socket, which costs a check of the table.
    public init(ownPortID: UInt32, limit: RulesRestoreLimit = RulesRestoreLimit(), receiveBufferBytes: Int = 1 << 20,
                logger: Logger) throws(SystemError) {
        socket = try NetlinkSocket(family: .netfilter, groups: 1 << (Self.group - 1), nonBlocking: true)
        try socket.setReceiveBuffer(bytes: receiveBufferBytes)
        watch = RulesetWatch(table: RackdRuleset.tableName, family: UInt8(RackdRuleset.family), ownPortIDs: [ownPortID])
        self.limit = limit
        self.logger = logger
    }

    /// The descriptor to poll for readability.
    public var descriptor: CInt { socket.descriptor }

    /// Reads every notification waiting; what it finds waits for `takeDue`. An overrun is kept as
    /// `notificationsLost` (with any deletions read before it) and reading goes on.
    public func drain(now: EngineInstant) throws(SystemError) {
        var found: Trigger?
        while true {
            let datagram: UnsafeRawBufferPointer?
            do {
                datagram = try socket.receive(call: "nftables notifications")
            } catch where error.errno == .noBufferSpace || error.errno == .messageTooLong {
                overruns += 1
                var lost = Trigger.notificationsLost
                if let unfinished = watch.takeUnfinished() { lost = .takenAway(unfinished) }
                found = found.map { $0.merged(with: lost) } ?? lost
                continue
            } catch {
                record(found, now: now)
                throw error
            }
            guard let datagram else { break }
            for message in NetlinkMessages(datagram) {
                guard let taken = watch.handle(message) else { continue }
                found = found.map { $0.merged(with: .takenAway(taken)) } ?? .takenAway(taken)
            }
        }
        record(found, now: now)
    }

    private func record(_ trigger: Trigger?, now: EngineInstant) {
        guard let trigger else { return }
        if let earlier = pending {
            pending = Restoration(trigger: earlier.trigger.merged(with: trigger), noticedAt: earlier.noticedAt)
        } else {
            pending = Restoration(trigger: trigger, noticedAt: now)
        }
    }

    /// When a restoration waits for the rate limit; nil when none waits.
    public var nextDeadline: EngineInstant? {
        guard let pending else { return nil }
        return limit.earliestRestoration(now: pending.noticedAt)
    }

    /// The restoration due at `now`, if one is waiting and the rate limit allows it; it is counted.
    public func takeDue(now: EngineInstant) -> Restoration? {
        guard let restoration = pending else { return nil }
        let allowedAt = limit.earliestRestoration(now: now)
        guard allowedAt <= now else {
            if !deferralLogged {
                deferralLogged = true
                logger.warning("rules taken away again soon after being restored; the restoration waits for the rate limit",
                               metadata: ["rules.reason": "\(restoration.trigger)",
                                          "rules.wait-ms": "\(milliseconds(allowedAt.duration(since: now)))"])
            }
            return nil
        }
        pending = nil
        deferralLogged = false
        limit.recordRestoration(at: now)
        return restoration
    }

    /// A restoration that failed goes back, to be tried when the rate limit next allows.
    public func retry(_ restoration: Restoration) {
        record(restoration.trigger, now: restoration.noticedAt)
    }
}

/// Whole milliseconds of a duration, for logs.
private func milliseconds(_ duration: Duration) -> Int64 {
    let (seconds, attoseconds) = duration.components
    return seconds * 1000 + attoseconds / 1_000_000_000_000_000
}
