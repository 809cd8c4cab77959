// rackd — one control client's exchange, from accept to close, as a pure state machine: it is told what
// arrived, what was sent and what time it is, and says what the server does next. The control server
// (ControlServer.swift) owns the descriptor and does the I/O; keeping the decisions here lets the unit
// tests drive a client a byte at a time, or let its time run out, without a socket.
//
// Every phase has a deadline, so a client that stops halfway holds its place for a bounded time: 3 s from
// accept to the end of its request line (rackctl sends it at once; 3 s is for a loaded machine), 5 s for
// the data plane to answer (it answers within one loop turn; this is for a stuck loop, as before), and
// 3 s from the answer being ready to its last byte taken.

import RackControl
import RackEngine

struct ControlExchange {
    /// From accept to the request's newline.
    static let requestTime: Duration = .seconds(3)
    /// From the request going to the data plane to its answer.
    static let answerTime: Duration = .seconds(5)
    /// From the answer being ready to its last byte sent.
    static let takeTime: Duration = .seconds(3)

    enum Phase: Equatable {
        /// Waiting for the request line; the server polls the client for input.
        case reading
        /// The request is judged and with the data plane (or about to be answered without it); the server
        /// polls only for a hang-up.
        case waitingForAnswer
        /// Writing the answer line, of which `sent` bytes have gone; the server polls for output.
        case writing(line: [UInt8], sent: Int)
        /// Nothing more to do: the server closes the descriptor.
        case done
    }

    /// What the server does after an event.
    enum Step: Equatable {
        /// Nothing until the next event.
        case wait
        /// The request line is complete (the exchange now waits for an answer): decode and judge it, then
        /// submit it to the data plane or `answer` at once.
        case judge([UInt8])
        /// Answer this without asking the data plane (encode it and `answer`).
        case respond(ControlResponse)
        /// Close the client; with a farewell, first try once to write it, without waiting.
        case close(farewell: ControlResponse?)
    }

    /// Names the exchange's request in the mailbox.
    let ticket: UInt64
    let peer: PeerCredentials
    let acceptedAt: EngineInstant
    private(set) var phase: Phase = .reading
    /// When the current phase runs out.
    private(set) var deadline: EngineInstant
    private var reader = ControlLineReader(limit: ControlCoding.maximumRequestBytes)

    init(ticket: UInt64, peer: PeerCredentials, now: EngineInstant) {
        self.ticket = ticket
        self.peer = peer
        acceptedAt = now
        deadline = now + Self.requestTime
    }

    /// Whether the whole request has arrived.
    var hasRequest: Bool {
        switch phase {
        case .reading: false
        case .waitingForAnswer, .writing, .done: true
        }
    }

    var isDone: Bool { phase == .done }

    /// The part of the answer still to send (empty outside `.writing`).
    var unsent: ArraySlice<UInt8> {
        guard case .writing(let line, let sent) = phase else { return [] }
        return line[sent...]
    }

    // MARK: Reading the request

    /// Bytes arrived.
    mutating func received(_ bytes: some Collection<UInt8>, now: EngineInstant) -> Step {
        guard phase == .reading else { return .wait }
        switch reader.append(bytes) {
        case .needMore:
            return .wait
        case .line(let line):
            return request(line, now: now)
        case .tooLong:
            return refuseRequest(now: now)
        }
    }

    /// The client shut its end: what it sent so far is its request, and nothing is none.
    mutating func streamEnded(now: EngineInstant) -> Step {
        guard phase == .reading else { return .wait }
        guard let line = reader.finish() else { return refuseRequest(now: now) }
        return request(line, now: now)
    }

    private mutating func request(_ line: [UInt8], now: EngineInstant) -> Step {
        phase = .waitingForAnswer
        deadline = now + Self.answerTime
        return .judge(line)
    }

    private mutating func refuseRequest(now: EngineInstant) -> Step {
        phase = .waitingForAnswer
        deadline = now + Self.answerTime
        return .respond(.failure(
            "expected one request line of JSON of at most \(ControlCoding.maximumRequestBytes) bytes"))
    }

    // MARK: Writing the answer

    /// The answer, encoded as its line, is ready: write it.
    mutating func answer(_ line: [UInt8], now: EngineInstant) {
        guard phase == .waitingForAnswer else { return }
        phase = .writing(line: line, sent: 0)
        deadline = now + Self.takeTime
    }

    /// `count` more bytes of the answer went out.
    mutating func sent(_ count: Int) -> Step {
        guard case .writing(let line, let sent) = phase else { return .wait }
        let total = min(line.count, sent + max(0, count))
        guard total < line.count else {
            phase = .done
            return .close(farewell: nil)
        }
        phase = .writing(line: line, sent: total)
        return .wait
    }

    // MARK: Endings

    /// What to do when `now` reaches the deadline; nil before it.
    mutating func expire(now: EngineInstant) -> Step? {
        guard now >= deadline else { return nil }
        switch phase {
        case .reading:
            phase = .done
            return .close(farewell: .failure("no request line within \(Self.requestTime.components.seconds) s"))
        case .waitingForAnswer:
            // The answer is the failure; it gets the usual time to be taken.
            return .respond(.failure(
                "rackd's packet loop did not answer within \(Self.answerTime.components.seconds) s; "
                    + "see 'journalctl -u rackd'"))
        case .writing:
            phase = .done
            return .close(farewell: nil)
        case .done:
            return nil
        }
    }

    /// The client hung up or its socket failed: nobody is left to answer.
    mutating func hungUp() -> Step {
        phase = .done
        return .close(farewell: nil)
    }

    /// The server needs the place for a newcomer (`ControlAdmission`).
    mutating func evict() -> Step {
        let wasWriting = !unsent.isEmpty
        phase = .done
        // Half an answer cannot be followed by another line; a client still to send or answer is told.
        return .close(farewell: wasWriting ? nil : .failure(
            "rackd had all its control places taken and gave up this client, the longest idle, for a newer one; "
                + "try again"))
    }
}
