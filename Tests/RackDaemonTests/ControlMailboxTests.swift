// rackd — the control mailbox (ControlMailbox): submitting never blocks, and a withdrawn request is not
// answered.

import RackControl
import Synchronization
import Testing

@testable import RackDaemon

@Suite struct ControlMailboxTests {
    @Test func aWithdrawnRequestIsNotAnswered() {
        let mailbox = ControlMailbox(wake: {})
        let answered = Answers()
        mailbox.submit(.status, ticket: 1) { _ in answered.add(1) }
        mailbox.submit(.suspend(id: nil), ticket: 2) { _ in answered.add(2) }
        mailbox.withdraw(ticket: 1)
        #expect(mailbox.waitingCount == 1)
        mailbox.answerAll { _ in ControlResponse(ok: true) }
        #expect(answered.tickets == [2])
        #expect(mailbox.waitingCount == 0)
    }

    @Test func submittingWakesTheDataPlaneAndNeverBlocks() {
        let wakes = Answers()
        let mailbox = ControlMailbox(wake: { wakes.add(0) })
        for ticket in 1...100 { mailbox.submit(.status, ticket: UInt64(ticket)) { _ in } }
        #expect(wakes.tickets.count == 100 && mailbox.waitingCount == 100)
    }

    /// Collects what the completions saw.
    final class Answers: Sendable {
        private let list = Mutex<[UInt64]>([])
        func add(_ ticket: UInt64) { list.withLock { $0.append(ticket) } }
        var tickets: [UInt64] { list.withLock { $0 } }
    }
}
