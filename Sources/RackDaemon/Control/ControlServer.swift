// rackd — serves rackctl: many clients at once from one poll(2) loop on the control thread, with
// non-blocking sockets and no thread per client (docs/control.md, "Many clients at once").
//
// Each client is a `ControlExchange` (ControlExchange.swift: its phases and deadlines) behind a
// descriptor. At accept rackd reads who the client is and refuses a stranger at once, without reading a
// byte of it (ControlAccess.admit); the others take a place in their pool (64 for the status group's
// members, 16 kept for root), and when it is full the longest idle client of that pool gives way
// (ControlAdmission.swift). A request goes to the data plane
// through the mailbox without blocking; its answer comes back on a completion that queues it here and
// wakes this loop through the wake-up pipe, so a client waiting for its answer holds up nobody, and a
// slow or stuck client holds up other clients for no time at all and packets never.
//
// The per-client I/O and the judging of requests are in ControlServer+Clients.swift.

import CLinuxNetlink
import Logging
import RackControl
import RackEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class ControlServer: Sendable {
    /// An answer from the data plane, for the exchange with this ticket.
    struct Answer: Sendable {
        let ticket: UInt64
        let response: ControlResponse
    }

    let socket: ControlSocket
    let statusGroup: UInt32?
    let mailbox: ControlMailbox
    let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    /// Wakes the loop's poll: to stop, or because answers came.
    private let wakePipe: (read: CInt, write: CInt)
    /// Answers the data plane gave, not yet taken by the loop.
    private let answers = Mutex<[Answer]>([])

    public init(path: String, statusGroup: UInt32?, mailbox: ControlMailbox, logger: Logger) throws {
        socket = try ControlSocket(path: path, openToOthers: statusGroup != nil)
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError.current("pipe(control wake-up)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakePipe = (fds[0], fds[1])
        self.statusGroup = statusGroup
        self.mailbox = mailbox
        self.logger = logger
    }

    deinit {
        close(wakePipe.read)
        close(wakePipe.write)
    }

    public var path: String { socket.path }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        wake()
    }

    /// Called on the data-plane thread (the mailbox's completion): queue the answer, wake the loop.
    func deliver(_ answer: Answer) {
        answers.withLock { $0.append(answer) }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        // A full pipe already wakes the loop; the byte is not needed then.
        _ = write(wakePipe.write, &byte, 1)
    }

    /// Serves clients on the calling thread until `requestStop`.
    func run() {
        var loop = ControlLoop()
        while !stopRequested.load(ordering: .acquiring) {
            var fds = [
                pollfd(fd: loop.listening ? socket.descriptor : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakePipe.read, events: Int16(POLLIN), revents: 0),
            ]
            fds += loop.clients.map { pollfd(fd: $0.descriptor, events: Self.events(for: $0.exchange), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), loop.pollTimeout(now: MonotonicClock.now()))
            if ready < 0 && errno != EINTR {
                // Only a broken poll set gets here; stopping the control loop (and with it rackd) beats spinning.
                logger.error("control socket poll failed", metadata: ["error": "\(SystemError.current("poll"))"])
                break
            }
            let now = MonotonicClock.now()
            if fds[1].revents != 0 {
                drainWakePipe()
                takeAnswers(&loop, now: now)
            }
            for index in loop.clients.indices where fds[2 + index].revents != 0 {
                service(&loop.clients[index], revents: fds[2 + index].revents, now: now)
            }
            loop.resumeListening(now: now)
            if fds[0].revents != 0 { acceptClients(&loop, now: now) }
            for index in loop.clients.indices {
                if let step = loop.clients[index].exchange.expire(now: now) {
                    perform(step, for: &loop.clients[index], now: now)
                }
            }
            closeFinished(&loop)
        }
        for index in loop.clients.indices { _ = loop.clients[index].exchange.hungUp() }
        closeFinished(&loop)
        // Gone before rackd exits, so rackctl says "not running" rather than "nothing listens".
        unlink(socket.path)
    }

    /// Input while reading the request, output while writing the answer, and in between only hang-ups
    /// (which poll reports whatever is asked).
    private static func events(for exchange: ControlExchange) -> Int16 {
        switch exchange.phase {
        case .reading: Int16(POLLIN)
        case .writing: Int16(POLLOUT)
        case .waitingForAnswer, .done: 0
        }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 256)
        while buffer.withUnsafeMutableBytes({ read(wakePipe.read, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// After the pipe is drained, so that an answer queued after the take has its wake-up byte still there.
    private func takeAnswers(_ loop: inout ControlLoop, now: EngineInstant) {
        let taken = answers.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
        for answer in taken {
            // The client may have gone (or been given up) meanwhile; then the answer has nowhere to go.
            guard let index = loop.clients.firstIndex(where: { $0.exchange.ticket == answer.ticket }),
                loop.clients[index].exchange.phase == .waitingForAnswer
            else { continue }
            perform(.respond(answer.response), for: &loop.clients[index], now: now)
        }
    }
}

/// The control loop's own state, confined to the control thread.
struct ControlLoop {
    /// A client's descriptor and its exchange.
    struct Client {
        let descriptor: CInt
        var exchange: ControlExchange
    }

    var clients: [Client] = []
    var nextTicket: UInt64 = 1
    /// Set when accept(2) ran out of descriptors: the listener rests until then, so that its pending
    /// connection does not spin the loop.
    var listenerRestsUntil: EngineInstant?
    /// When rackd last said that the places were all taken (at most once a minute).
    var lastFullNotice: EngineInstant?

    var listening: Bool { listenerRestsUntil == nil }

    mutating func resumeListening(now: EngineInstant) {
        if let until = listenerRestsUntil, now >= until { listenerRestsUntil = nil }
    }

    /// Milliseconds to the nearest deadline (rounded up, so the loop wakes after it, not just before), or
    /// -1 for none.
    func pollTimeout(now: EngineInstant) -> CInt {
        let deadlines = clients.filter { !$0.exchange.isDone }.map(\.exchange.deadline)
            + [listenerRestsUntil].compactMap { $0 }
        guard let nearest = deadlines.min() else { return -1 }
        guard nearest > now else { return 0 }
        let nanoseconds = nearest.nanoseconds - now.nanoseconds
        return CInt(min(UInt64(CInt.max), (nanoseconds + 999_999) / 1_000_000))
    }
}
