// rackd — the timer table (Core/DeadlineHeap.swift) with 10,000 connections: the next deadline, the due
// timers and a cancel each touch only what they name.

import Testing
@testable import RackEngine

@Suite struct DeadlineHeapTests {
    static let connections = 10_000

    /// 10,000 connections, each with a deadline between 1 s and 100 s, in a random order.
    static func filled() -> (heap: DeadlineHeap<UInt64>, deadlines: [UInt64: EngineInstant]) {
        var random = SplitMix64(seed: 7)
        var heap = DeadlineHeap<UInt64>()
        var deadlines: [UInt64: EngineInstant] = [:]
        for id in UInt64(1)...UInt64(connections) {
            let deadline = EngineInstant.milliseconds(UInt64.random(in: 1_000...100_000, using: &random))
            heap.set(id, to: deadline)
            deadlines[id] = deadline
        }
        return (heap, deadlines)
    }

    static func expectUnchanged(_ heap: DeadlineHeap<UInt64>, _ deadlines: [UInt64: EngineInstant],
                                except removed: Set<UInt64> = []) {
        #expect(heap.count == deadlines.count - removed.count)
        let wrong = deadlines.filter { !removed.contains($0.key) && heap.deadline(for: $0.key) != $0.value }
        #expect(wrong.isEmpty)
    }

    @Test func nextDeadlineIsTheEarliest() {
        let (heap, deadlines) = Self.filled()
        #expect(heap.count == Self.connections)
        #expect(heap.nextDeadline == deadlines.values.min())
    }

    @Test func dueTimersComeOutEarliestFirstAndLeaveTheRest() {
        var (heap, deadlines) = Self.filled()
        let now = EngineInstant.milliseconds(10_000)
        let due = heap.removeDue(now: now)
        let expected = deadlines.filter { $0.value <= now }
        #expect(Set(due) == Set(expected.keys))
        #expect(due.map { deadlines[$0]! } == due.map { deadlines[$0]! }.sorted())
        #expect(heap.nextDeadline.map { $0 > now } == true)
        Self.expectUnchanged(heap, deadlines, except: Set(due))
        // Nothing more is due at the same instant: a second tick takes nothing.
        #expect(heap.removeDue(now: now).isEmpty)
    }

    @Test func cancellingOneLeavesTheOthers() {
        var (heap, deadlines) = Self.filled()
        let earliest = deadlines.min { $0.value < $1.value }!.key
        heap.cancel(earliest)
        heap.cancel(5_000)
        heap.cancel(UInt64(Self.connections) + 1)  // never set: ignored
        Self.expectUnchanged(heap, deadlines, except: [earliest, 5_000])
        #expect(heap.deadline(for: earliest) == nil)
        #expect(heap.nextDeadline == deadlines.filter { $0.key != earliest && $0.key != 5_000 }.values.min())
    }

    @Test func movingOneDeadlineMovesOnlyIt() {
        var (heap, deadlines) = Self.filled()
        heap.set(42, to: .milliseconds(1))
        #expect(heap.nextDeadline == .milliseconds(1))
        heap.set(42, to: .seconds(1_000))
        deadlines[42] = .seconds(1_000)
        Self.expectUnchanged(heap, deadlines)
        heap.set(42, to: nil)
        Self.expectUnchanged(heap, deadlines, except: [42])
    }

    @Test func equalDeadlinesComeOutInTheOrderTheyWereSet() {
        var heap = DeadlineHeap<UInt64>()
        for id in [UInt64(9), 3, 7, 1] { heap.set(id, to: .seconds(5)) }
        #expect(heap.removeDue(now: .seconds(5)) == [9, 3, 7, 1])
    }

    /// The connection table's heaps are keyed by slot, their positions in an array: the same random sets,
    /// moves and cancels give the same deadlines and the same due keys as a heap keyed by hash.
    @Test func slotKeysBehaveAsHashedKeys() {
        var random = SplitMix64(seed: 11)
        var hashed = DeadlineHeap<Int>()
        var slots = SlotDeadlineHeap()
        for step in 0..<20_000 {
            let key = Int.random(in: 0..<2_000, using: &random)
            let deadline: EngineInstant? = step % 7 == 0
                ? nil : .milliseconds(UInt64.random(in: 1...100_000, using: &random))
            hashed.set(key, to: deadline)
            slots.set(key, to: deadline)
        }
        #expect(slots.count == hashed.count)
        #expect((0..<2_001).allSatisfy { slots.deadline(for: $0) == hashed.deadline(for: $0) })
        #expect(slots.removeDue(now: .milliseconds(50_000)) == hashed.removeDue(now: .milliseconds(50_000)))
        #expect(slots.nextDeadline == hashed.nextDeadline)
    }
}
