// rackd — hands control requests from the control socket's thread to the data-plane thread, which owns
// the engine, and the answers back. The data plane answers between packets, so a request waits at most
// one loop turn; a client that stalls stalls only the control thread, never packets.

import Dispatch
import RackControl
import Synchronization

public final class ControlMailbox: Sendable {
    /// One request waiting for its answer.
    final class Pending: @unchecked Sendable {
        let request: ControlRequest
        /// Written once by the data plane before `answered` is signalled; read after the wait.
        var response: ControlResponse?
        let answered = DispatchSemaphore(value: 0)

        init(_ request: ControlRequest) { self.request = request }
    }

    private let waiting = Mutex<[Pending]>([])
    /// Wakes the data plane's poll.
    private let wake: @Sendable () -> Void

    init(wake: @escaping @Sendable () -> Void) {
        self.wake = wake
    }

    /// Called on the control thread: blocks until the data plane has answered, or `timeout` passed.
    func submit(_ request: ControlRequest, timeout: DispatchTimeInterval = .seconds(5)) -> ControlResponse {
        let pending = Pending(request)
        waiting.withLock { $0.append(pending) }
        wake()
        guard pending.answered.wait(timeout: .now() + timeout) == .success, let response = pending.response else {
            return .failure("rackd's packet loop did not answer within 5 s; see 'journalctl -u rackd'")
        }
        return response
    }

    /// Called on the data-plane thread: answers every waiting request.
    func answerAll(_ answer: (ControlRequest) -> ControlResponse) {
        let batch = waiting.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
        for pending in batch {
            pending.response = answer(pending.request)
            pending.answered.signal()
        }
    }
}
