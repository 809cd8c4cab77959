// rackd — hands control requests from the control socket's thread to the data-plane thread, which owns
// the engine, and the answers back. The data plane answers between packets, so a request waits at most
// one loop turn.
//
// Submitting never blocks: the control thread serves many clients from one poll(2) loop
// (ControlServer.swift), and a client waiting for its answer must not hold up the others. The answer
// comes back through the completion, which runs on the data-plane thread and so must be quick (the
// control server's completion only queues the answer and writes a byte to its wake-up pipe).

import RackControl
import Synchronization

public final class ControlMailbox: Sendable {
    /// Runs on the data-plane thread with the answer.
    typealias Completion = @Sendable (ControlResponse) -> Void

    /// One request waiting for its answer.
    private struct Pending {
        let ticket: UInt64
        let request: ControlRequest
        let completion: Completion
    }

    private let waiting = Mutex<[Pending]>([])
    /// Wakes the data plane's poll.
    private let wake: @Sendable () -> Void

    init(wake: @escaping @Sendable () -> Void) {
        self.wake = wake
    }

    /// Called on the control thread: queues `request` for the data plane and returns at once. `ticket`
    /// names it for `withdraw`.
    func submit(_ request: ControlRequest, ticket: UInt64, completion: @escaping Completion) {
        waiting.withLock { $0.append(Pending(ticket: ticket, request: request, completion: completion)) }
        wake()
    }

    /// Called on the control thread when the client went away (or was given up) before its answer: the
    /// data plane need not answer it, and what waits here stays bounded by the clients the server holds.
    func withdraw(ticket: UInt64) {
        waiting.withLock { queue in queue.removeAll { $0.ticket == ticket } }
    }

    /// How many requests wait for the data plane.
    var waitingCount: Int { waiting.withLock { $0.count } }

    /// Called on the data-plane thread: answers every waiting request.
    func answerAll(_ answer: (ControlRequest) -> ControlResponse) {
        let batch = waiting.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
        for pending in batch {
            pending.completion(answer(pending.request))
        }
    }
}
