// rackd — the engine's timer table: at most one deadline per key, in a binary min-heap with a position
// index (docs/architecture.md, "The connection core and peer kinds").
//
// The engine keeps one entry per connection (its earliest timer) and one per pending handshake. The next
// deadline is the heap's top, O(1); setting, moving or cancelling a key's deadline is O(log n); taking
// the due keys costs O(log n) each. Nothing walks every connection to find out what is due, so a timer
// tick or a packet costs the same with 10 connections as with 10,000.
//
// Each move of an entry records its new position. Keyed by any hashable value that is a dictionary write;
// the connection table keys its heaps by slot (ConnectionTable.swift), whose positions are an array, so a
// reading that pushes 10,000 connections' checks back hashes nothing here (docs/architecture.md, "Liveness
// at scale").

/// Where each key's entry sits in a heap's array.
protocol HeapPositions: Sendable {
    associatedtype Key: Sendable
    init()
    subscript(_ key: Key) -> Int? { get set }
}

/// Positions of any hashable keys, in a dictionary.
struct HashedPositions<Key: Hashable & Sendable>: HeapPositions {
    private var storage: [Key: Int] = [:]

    subscript(_ key: Key) -> Int? {
        get { storage[key] }
        set { storage[key] = newValue }
    }
}

/// Positions of small non-negative integer keys (the connection table's slots), in an array.
struct SlotPositions: HeapPositions {
    private var storage: [Int32] = []

    subscript(_ key: Int) -> Int? {
        get { key < storage.count && storage[key] >= 0 ? Int(storage[key]) : nil }
        set {
            if key >= storage.count {
                guard newValue != nil else { return }
                storage += repeatElement(-1, count: key + 1 - storage.count)
            }
            storage[key] = newValue.map { Int32($0) } ?? -1
        }
    }
}

/// Deadlines by any hashable key.
typealias DeadlineHeap<Key: Hashable & Sendable> = IndexedDeadlineHeap<HashedPositions<Key>>

/// Deadlines by slot of the connection table.
typealias SlotDeadlineHeap = IndexedDeadlineHeap<SlotPositions>

/// Deadlines by key, earliest first. Equal deadlines come out in the order their keys were first set, so
/// the same inputs always give the same outputs.
struct IndexedDeadlineHeap<Positions: HeapPositions>: Sendable {
    typealias Key = Positions.Key

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
    private var positions = Positions()

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
        guard let position = positions[key] else { return }
        positions[key] = nil
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
