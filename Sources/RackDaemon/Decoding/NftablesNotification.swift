// rackd — what nf_tables says about a change to the ruleset: one message of the NFNLGRP_NFTABLES multicast
// group (or of a GETRULE/GETSETELEM dump, whose replies have the same form), decoded from its bytes, and
// `RulesetWatch`, which reads a stream of them and says when a committed batch took something of rackd's
// table away. Pure: bytes in, values out.
//
// A message's type is NFNL_SUBSYS_NFTABLES (10) in the high byte and NFT_MSG_* in the low byte; its
// payload is a 4-byte `nfgenmsg` (family, version, resource id) followed by NFTA_* attributes, numbered as
// in linux/netfilter/nf_tables.h. Every object's first attribute (type 1) names its table. The header's
// port id is the netlink port of the socket whose batch made the change (0 for the kernel itself), so
// rackd can tell its own changes from others'. The kernel sends a batch's notifications at commit, then
// one NFT_MSG_NEWGEN that ends the batch and names the process that sent it.

/// One nf_tables object added or deleted, or the end of a committed batch.
public enum NftablesNotification: Equatable, Sendable {
    /// A table, chain, rule, set or set elements were added or deleted.
    case change(NftablesChange)
    /// NFT_MSG_NEWGEN: the batch that the changes before it belong to is committed.
    case batchEnd(NftablesBatchEnd)

    /// Decodes one nf_tables message; nil for any other message (another subsystem, a message type rackd
    /// does not read, a payload too short for `nfgenmsg`, or attributes that do not fill it exactly).
    public init?(decoding message: NetlinkMessage) {
        guard message.type >> 8 == Self.subsystem, message.payload.count >= Self.nfgenmsgSize else { return nil }
        let family = message.payload[0]
        var attributes = NetlinkAttributes(message.payload, after: Self.nfgenmsgSize)
        let command = UInt8(truncatingIfNeeded: message.type)
        if command == Self.newGeneration {
            var end = NftablesBatchEnd(portID: message.portID)
            while let attribute = attributes.next() {
                switch attribute.type {
                case 1: end.generation = attribute.bigEndianInteger(as: UInt32.self)  // NFTA_GEN_ID
                case 2: end.processID = attribute.bigEndianInteger(as: UInt32.self)  // NFTA_GEN_PROC_PID
                case 3: end.processName = Self.string(attribute.payload)  // NFTA_GEN_PROC_NAME
                default: break
                }
            }
            if attributes.isMalformed { return nil }
            self = .batchEnd(end)
            return
        }
        guard let (object, isDeletion) = Self.objects[command] else { return nil }
        var change = NftablesChange(object: object, isDeletion: isDeletion, family: family, portID: message.portID)
        while let attribute = attributes.next() {
            switch (object, attribute.type) {
            case (_, 1): change.table = Self.string(attribute.payload)
            // NFTA_RULE_CHAIN, NFTA_SET_NAME, NFTA_SET_ELEM_LIST_SET: the object's chain or set.
            case (.rule, 2), (.set, 2), (.elements, 2): change.name = Self.string(attribute.payload)
            case (.chain, 3): change.name = Self.string(attribute.payload)  // NFTA_CHAIN_NAME
            case (.table, 2): break  // NFTA_TABLE_FLAGS
            case (.elements, 3):  // NFTA_SET_ELEM_LIST_ELEMENTS
                guard let keys = Self.elementKeys(attribute.payload) else { return nil }
                change.elementKeys += keys
            default: break
            }
        }
        if attributes.isMalformed { return nil }
        self = .change(change)
    }

    // MARK: Numbers from linux/netfilter/nfnetlink.h and nf_tables.h

    /// NFNL_SUBSYS_NFTABLES.
    static let subsystem: UInt16 = 10
    /// struct nfgenmsg: family, version, resource id.
    static let nfgenmsgSize = 4
    /// NFT_MSG_NEWGEN.
    static let newGeneration: UInt8 = 15
    /// NFT_MSG_NEWTABLE 0, DELTABLE 2, NEWCHAIN 3, DELCHAIN 5, NEWRULE 6, DELRULE 8, NEWSET 9, DELSET 11,
    /// NEWSETELEM 12, DELSETELEM 14. (The DESTROY commands of Linux 6.3 are notified as DEL.)
    static let objects: [UInt8: (NftablesChange.Object, Bool)] = [
        0: (.table, false), 2: (.table, true), 3: (.chain, false), 5: (.chain, true), 6: (.rule, false),
        8: (.rule, true), 9: (.set, false), 11: (.set, true), 12: (.elements, false), 14: (.elements, true),
    ]

    /// A NUL-terminated string attribute, without its terminator; nil when it is not valid UTF-8.
    static func string(_ payload: UnsafeRawBufferPointer) -> String? {
        let bytes = payload.prefix { $0 != 0 }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The keys of NFTA_SET_ELEM_LIST_ELEMENTS: NFTA_LIST_ELEM (1) nests, each with NFTA_SET_ELEM_KEY (1)
    /// nesting NFTA_DATA_VALUE (1). An element without a key is skipped; nil when the nesting is malformed.
    static func elementKeys(_ payload: UnsafeRawBufferPointer) -> [[UInt8]]? {
        var keys: [[UInt8]] = []
        var elements = NetlinkAttributes(payload, after: 0)
        while let element = elements.next() {
            guard element.type == 1 else { continue }
            var fields = NetlinkAttributes(element.payload, after: 0)
            while let field = fields.next() {
                guard field.type == 1 else { continue }
                var data = NetlinkAttributes(field.payload, after: 0)
                while let value = data.next() {
                    if value.type == 1 { keys.append(Array(value.payload)) }
                }
                if data.isMalformed { return nil }
            }
            if fields.isMalformed { return nil }
        }
        return elements.isMalformed ? nil : keys
    }
}

/// One nf_tables object added or deleted.
public struct NftablesChange: Equatable, Sendable {
    /// What kind of object changed.
    public enum Object: String, Sendable, CaseIterable {
        case table, chain, rule, set, elements
    }

    public var object: Object
    /// A deletion (NFT_MSG_DEL*), else an addition.
    public var isDeletion: Bool
    /// The table's family (NFPROTO_INET is 1).
    public var family: UInt8
    /// The netlink port id of the socket whose batch made the change; 0 for the kernel.
    public var portID: UInt32
    /// The table the object belongs to (for a table, its own name); nil when the message names none.
    public var table: String?
    /// A chain's name, a rule's chain, a set's name, or the set the elements belong to.
    public var name: String?
    /// The keys of the elements added or deleted (elements only).
    public var elementKeys: [[UInt8]] = []

    public init(object: Object, isDeletion: Bool, family: UInt8, portID: UInt32, table: String? = nil,
                name: String? = nil, elementKeys: [[UInt8]] = []) {
        self.object = object
        self.isDeletion = isDeletion
        self.family = family
        self.portID = portID
        self.table = table
        self.name = name
        self.elementKeys = elementKeys
    }
}

/// The end of one committed batch (NFT_MSG_NEWGEN).
public struct NftablesBatchEnd: Equatable, Sendable {
    /// The port id of the socket that sent the batch.
    public var portID: UInt32
    /// The ruleset's new generation.
    public var generation: UInt32?
    /// The process that sent the batch, and its name (`comm`), as the kernel saw them.
    public var processID: UInt32?
    public var processName: String?

    public init(portID: UInt32, generation: UInt32? = nil, processID: UInt32? = nil, processName: String? = nil) {
        self.portID = portID
        self.generation = generation
        self.processID = processID
        self.processName = processName
    }
}

// MARK: - The watch

/// Someone else's committed batch deleted some of rackd's table.
public struct RulesTakenAway: Equatable, Sendable, CustomStringConvertible {
    /// How many objects of each kind the batch deleted (elements: element messages).
    public var deleted: [NftablesChange.Object: Int] = [:]
    /// Who sent the batch, when the batch's end was read.
    public var processID: UInt32?
    public var processName: String?

    public init(deleted: [NftablesChange.Object: Int] = [:], processID: UInt32? = nil, processName: String? = nil) {
        self.deleted = deleted
        self.processID = processID
        self.processName = processName
    }

    /// "table, 2 chains, 11 rules, 2 sets deleted by nft (pid 4242)".
    public var description: String {
        let parts = NftablesChange.Object.allCases.compactMap { object -> String? in
            guard let count = deleted[object], count > 0 else { return nil }
            if object == .elements { return "elements (\(count) messages)" }
            return count == 1 ? object.rawValue : "\(count) \(object.rawValue)s"
        }
        var text = parts.joined(separator: ", ") + " deleted"
        switch (processName, processID) {
        case (let name?, let pid?): text += " by \(name) (pid \(pid))"
        case (nil, let pid?): text += " by pid \(pid)"
        case (let name?, nil): text += " by \(name)"
        case (nil, nil): break
        }
        return text
    }

    /// Adds another batch's deletions; the process named is the latest's.
    mutating func merge(_ other: RulesTakenAway) {
        deleted.merge(other.deleted, uniquingKeysWith: +)
        processID = other.processID ?? processID
        processName = other.processName ?? processName
    }
}

/// Reads nf_tables notifications in order and reports each committed batch that deleted part of one table
/// (rackd's `inet rackd`) and was not sent from one of the given ports (rackd's own installer). Additions
/// are not reported: only deletions take rackd's rules away. The verdict comes once per batch, at its
/// NFT_MSG_NEWGEN, however many objects it deleted.
public struct RulesetWatch: Sendable {
    public let table: String
    public let family: UInt8
    /// Ports whose batches are rackd's own.
    public var ownPortIDs: Set<UInt32>
    /// Deletions of the watched table read since the last batch end, by port id.
    private var pending: [UInt32: RulesTakenAway] = [:]

    /// Watches `table` of `family` (NFPROTO_INET, 1, by default).
    public init(table: String, family: UInt8 = 1, ownPortIDs: Set<UInt32>) {
        self.table = table
        self.family = family
        self.ownPortIDs = ownPortIDs
    }

    /// Reads one message. Returns what a batch took away when `message` ends a batch that deleted part of
    /// the table; nil otherwise (and for messages that are not nf_tables notifications).
    public mutating func handle(_ message: NetlinkMessage) -> RulesTakenAway? {
        guard let notification = NftablesNotification(decoding: message) else { return nil }
        switch notification {
        case .change(let change):
            guard change.isDeletion, change.family == family, change.table == table,
                  !ownPortIDs.contains(change.portID) else { return nil }
            pending[change.portID, default: RulesTakenAway()].deleted[change.object, default: 0] += 1
            return nil
        case .batchEnd(let end):
            guard var taken = pending.removeValue(forKey: end.portID) else { return nil }
            taken.processID = end.processID
            taken.processName = end.processName
            return taken
        }
    }

    /// Deletions read whose batch end was not (it may have been lost with an overrun), merged; they are
    /// forgotten.
    public mutating func takeUnfinished() -> RulesTakenAway? {
        guard !pending.isEmpty else { return nil }
        var merged = RulesTakenAway()
        for (_, taken) in pending.sorted(by: { $0.key < $1.key }) { merged.merge(taken) }
        pending = [:]
        return merged
    }
}
