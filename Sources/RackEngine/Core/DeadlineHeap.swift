// rackd — the engine's timer table: at most one deadline per key, in a binary min-heap with a position
// index (docs/architecture.md, "The connection core and peer kinds").
//
// The engine keeps one entry per connection (its earliest timer) and one per pending handshake. The next
// deadline is the heap's top, O(1); setting, moving or cancelling a key's deadline is O(log n); taking
// the due keys costs O(log n) each. Nothing walks every connection to find out what is due, so a timer
// tick or a packet costs the same with 10 connections as with 10,000.

/// Deadlines by key, earliest first. Equal deadlines come out in the order their keys were first set, so
/// the same inputs always give the same outputs.
struct DeadlineHeap<Key: Hashable & Sendable>: Sendable {
    private struct Entry {
        var deadline: EngineInstant
        var key: Key
        /// When the key was first set: breaks ties between equal deadlines.
        var order: UInt64

        func precedes(_ other: Entry) -> Bool {
            (deadline, order) < (other.deadline, other.order)
        }
    }

    private var entries: [Entry] = []
    private var nextOrder: UInt64 = 0
    /// Where each key's entry sits in `entries`.
    private var positions: [Key: Int] = [:]

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// The earliest deadline, if any.
    var nextDeadline: EngineInstant? { entries.first?.deadline }

    /// The deadline set for `key`, if any.
    func deadline(for key: Key) -> EngineInstant? {
        positions[key].map { entries[$0].deadline }
    }

    /// Sets `key`'s deadline, or cancels it when `deadline` is nil.
    mutating func set(_ key: Key, to deadline: EngineInstant?) {
        guard let deadline else {
            cancel(key)
            return
        }
        if let position = positions[key] {
            if entries[position].deadline == deadline { return }
            let earlier = deadline < entries[position].deadline
            entries[position].deadline = deadline
            if earlier { siftUp(position) } else { siftDown(position) }
        } else {
            entries.append(Entry(deadline: deadline, key: key, order: nextOrder))
            nextOrder += 1
            positions[key] = entries.count - 1
            siftUp(entries.count - 1)
        }
    }

    /// Removes `key`'s deadline; a key without one is ignored.
    mutating func cancel(_ key: Key) {
        guard let position = positions.removeValue(forKey: key) else { return }
        let last = entries.removeLast()
        guard position < entries.count else { return }
        entries[position] = last
        positions[last.key] = position
        siftDown(position)
        siftUp(position)
    }

    /// Removes and returns every key whose deadline is at or before `now`, earliest first.
    mutating func removeDue(now: EngineInstant) -> [Key] {
        var due: [Key] = []
        while let top = entries.first, top.deadline <= now {
            due.append(top.key)
            cancel(top.key)
        }
        return due
    }

    /// Every key whose deadline is at or before `now`, leaving them in place; in no particular order.
    /// Costs O(k) for k such keys: a subtree whose root is later than `now` holds nothing earlier.
    func due(now: EngineInstant) -> [Key] {
        var due: [Key] = []
        var pending: [Int] = entries.isEmpty ? [] : [0]
        while let index = pending.popLast() {
            guard entries[index].deadline <= now else { continue }
            due.append(entries[index].key)
            let left = 2 * index + 1
            if left < entries.count { pending.append(left) }
            if left + 1 < entries.count { pending.append(left + 1) }
        }
        return due
    }

    // MARK: Heap order

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard entries[child].precedes(entries[parent]) else { return }
            swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var first = parent
            if left < entries.count && entries[left].precedes(entries[first]) { first = left }
            if right < entries.count && entries[right].precedes(entries[first]) { first = right }
            guard first != parent else { return }
            swapAt(parent, first)
            parent = first
        }
    }

    private mutating func swapAt(_ a: Int, _ b: Int) {
        entries.swapAt(a, b)
        positions[entries[a].key] = a
        positions[entries[b].key] = b
    }
}
