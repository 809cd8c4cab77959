// rackd — the queued packets the engine gave no verdict yet (`PacketVerdict.hold`), by flow.
//
// The kernel keeps a held packet queued until rackd names its id in a verdict, so only the ids are kept:
// the bytes lived in a receive buffer that the next batch reuses. A release (`HeldPacketRelease`) gives
// the first packet held for the flow the engine's verdict and drops every later one: those are the
// application's retransmissions of the same SYN, and the first already carries its bytes
// (Sources/RackEngine/Engine/EngineOutput.swift). Pure bookkeeping; NFQueueReader sends the verdicts.

import RackEngine

struct HeldPackets {
    /// Enough for every SYN of a busy host waiting on a probe at once; each entry costs a few bytes, but
    /// each packet also occupies a slot of the kernel's queue (8192 by default) while it waits.
    static let defaultCapacity = 4096

    let capacity: Int
    private var byFlow: [FlowKey: [UInt32]] = [:]
    /// Packets held now, all flows together.
    private(set) var count = 0

    init(capacity: Int = Self.defaultCapacity) {
        self.capacity = capacity
    }

    var isEmpty: Bool { count == 0 }

    /// Keeps packet `id` for `flow`, after any held before it. False when `capacity` packets are held
    /// already: the caller must give this one a verdict now.
    mutating func hold(_ id: UInt32, for flow: FlowKey) -> Bool {
        guard count < capacity else { return false }
        byFlow[flow, default: []].append(id)
        count += 1
        return true
    }

    /// The verdicts `release` gives, in the order the packets were held: the first gets the engine's
    /// verdict and every later one `.drop`. A verdict a held packet cannot carry (`acceptModified`: its
    /// bytes are gone; `hold`) becomes `.accept`. Empty when nothing is held for the flow.
    mutating func release(_ release: HeldPacketRelease) -> [(id: UInt32, verdict: PacketVerdict)] {
        guard let ids = byFlow.removeValue(forKey: release.flow), let first = ids.first else { return [] }
        count -= ids.count
        let verdict: PacketVerdict = switch release.verdict {
        case .accept, .acceptModified, .hold: .accept
        case .replace, .drop: release.verdict
        }
        return [(first, verdict)] + ids.dropFirst().map { ($0, PacketVerdict.drop) }
    }

    /// Forgets every held packet and returns their ids, oldest first within each flow: at shutdown they
    /// are all let through, as if rackd had never been there.
    mutating func releaseAll() -> [UInt32] {
        let ids = byFlow.values.flatMap { $0 }
        byFlow.removeAll()
        count = 0
        return ids
    }
}
