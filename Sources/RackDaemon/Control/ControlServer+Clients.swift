// rackd — the control loop's dealings with one client (ControlServer.swift runs the loop): accepting it
// and refusing a stranger at once, reading and writing without blocking, judging its request, and
// carrying out what its `ControlExchange` decides.

import CLinuxNetlink
import Logging
import RackControl
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

extension ControlServer {
    /// The most connections taken from the listener per loop turn, so that clients already held are read
    /// between batches: a real rackctl's request is then read before a pool's worth of newer clients
    /// (16 for root: ControlAdmission) can push it out.
    static let acceptsPerTurn = 8
    /// How long the listener rests when accept(2) finds no descriptor free.
    static let listenerRest: Duration = .milliseconds(100)

    // MARK: Accepting

    func acceptClients(_ loop: inout ControlLoop, now: EngineInstant) {
        for _ in 0..<Self.acceptsPerTurn {
            let descriptor = accept(socket.descriptor, nil, nil)
            guard descriptor >= 0 else {
                if errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM {
                    let error = SystemError.current("accept")
                    logger.warning("control socket: no descriptor for a new client", metadata: ["error": "\(error)"])
                    loop.listenerRestsUntil = now + Self.listenerRest
                }
                return  // EAGAIN: no one else is waiting; the rest (ECONNABORTED, EINTR) the next poll retries
            }
            // (Swift does not import accept4.) rackd starts no programs, so the moment without
            // FD_CLOEXEC leaks nothing; O_NONBLOCK is what matters: no read or write here may wait.
            _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC)
            _ = fcntl(descriptor, F_SETFL, O_NONBLOCK)
            admit(descriptor, into: &loop, now: now)
        }
    }

    /// Refuses a client that may ask nothing (before reading it: it holds no place); otherwise gives it a
    /// place, taking one from another client when all are taken.
    private func admit(_ descriptor: CInt, into loop: inout ControlLoop, now: EngineInstant) {
        let peer: PeerCredentials
        do {
            peer = try ControlSocket.credentials(of: descriptor)
        } catch {
            sendOnce(.failure("rackd could not read your credentials: \(error)"), to: descriptor)
            close(descriptor)
            return
        }
        if case .denied(let reason) = ControlAccess.admit(peer, statusGroup: statusGroup) {
            logger.notice("control request refused", metadata: [
                "client.uid": "\(peer.uid)", "client.pid": "\(peer.pid)", "reason": "\(reason)",
            ])
            sendOnce(.refusal(reason), to: descriptor)
            close(descriptor)
            return
        }
        if let ticket = ControlAdmission.victim(for: peer, among: loop.clients.map(\.exchange)),
            let index = loop.clients.firstIndex(where: { $0.exchange.ticket == ticket })
        {
            let victim = loop.clients[index].exchange.peer
            if loop.lastFullNotice.map({ now.duration(since: $0) >= .seconds(60) }) ?? true {
                loop.lastFullNotice = now
                logger.notice("control socket: all places taken; a client gives way to each new one", metadata: [
                    "control.places": "\(ControlAdmission.places(for: peer))",
                    "client.uid": "\(victim.uid)", "client.pid": "\(victim.pid)",
                ])
            }
            perform(loop.clients[index].exchange.evict(), for: &loop.clients[index], now: now)
        }
        let ticket = loop.nextTicket
        loop.nextTicket += 1
        let exchange = ControlExchange(ticket: ticket, peer: peer, now: now)
        loop.clients.append(ControlLoop.Client(descriptor: descriptor, exchange: exchange))
        // rackctl writes its request right after connecting: it is often there already.
        service(&loop.clients[loop.clients.count - 1], revents: Int16(POLLIN), now: now)
    }

    // MARK: Reading and writing

    /// Does the I/O a poll event calls for.
    func service(_ client: inout ControlLoop.Client, revents: Int16, now: EngineInstant) {
        switch client.exchange.phase {
        case .reading:
            var buffer = [UInt8](repeating: 0, count: ControlCoding.maximumRequestBytes + 1)
            let count = buffer.withUnsafeMutableBytes { recv(client.descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                perform(client.exchange.received(buffer[..<count], now: now), for: &client, now: now)
            } else if count == 0 {
                perform(client.exchange.streamEnded(now: now), for: &client, now: now)
            } else if errno != EAGAIN && errno != EINTR {
                perform(client.exchange.hungUp(), for: &client, now: now)
            }
        case .waitingForAnswer:
            // Asked for no events: this is a hang-up or an error. Nobody is left to answer.
            perform(client.exchange.hungUp(), for: &client, now: now)
        case .writing:
            writeAnswer(&client, now: now)
        case .done:
            break
        }
    }

    private func writeAnswer(_ client: inout ControlLoop.Client, now: EngineInstant) {
        let unsent = client.exchange.unsent
        let count = unsent.withUnsafeBytes { send(client.descriptor, $0.baseAddress, $0.count, CLNL_MSG_NOSIGNAL) }
        if count >= 0 {
            perform(client.exchange.sent(count), for: &client, now: now)
        } else if errno != EAGAIN && errno != EINTR {
            perform(client.exchange.hungUp(), for: &client, now: now)
        }
    }

    // MARK: Carrying out a step

    func perform(_ step: ControlExchange.Step, for client: inout ControlLoop.Client, now: EngineInstant) {
        switch step {
        case .wait:
            break
        case .judge(let line):
            judge(line, for: &client, now: now)
        case .respond(let response):
            mailbox.withdraw(ticket: client.exchange.ticket)
            client.exchange.answer(Self.line(response), now: now)
            // The socket is almost always writable: most answers leave at once, without a poll turn.
            writeAnswer(&client, now: now)
        case .close(let farewell):
            if let farewell { sendOnce(farewell, to: client.descriptor) }
        }
    }

    /// Decodes and checks the request; answers a bad or forbidden one at once and hands the rest to the
    /// data plane.
    private func judge(_ line: [UInt8], for client: inout ControlLoop.Client, now: EngineInstant) {
        let peer = client.exchange.peer
        let request: ControlRequest
        do {
            request = try ControlCoding.decode(ControlRequest.self, from: line)
        } catch {
            perform(.respond(.failure("malformed request: \(error); rackctl and rackd may be of different versions")),
                    for: &client, now: now)
            return
        }
        let who: Logger.Metadata = [
            "client.uid": "\(peer.uid)", "client.pid": "\(peer.pid)", "control.command": "\(request.command.rawValue)",
        ]
        if case .denied(let reason) = ControlAccess.decide(request, from: peer, statusGroup: statusGroup) {
            logger.notice("control request refused", metadata: who.merging(["reason": "\(reason)"]) { $1 })
            perform(.respond(.refusal(reason)), for: &client, now: now)
            return
        }
        if request.changesState {
            let target = request.id.map { "connection \($0)" } ?? "all connections"
            logger.notice("control request", metadata: who.merging(["control.target": "\(target)"]) { $1 })
        } else {
            logger.debug("control request", metadata: who)
        }
        let ticket = client.exchange.ticket
        mailbox.submit(request, ticket: ticket) { [self] response in
            deliver(Answer(ticket: ticket, response: response))
        }
    }

    // MARK: Closing

    /// Closes the finished clients' descriptors and forgets them.
    func closeFinished(_ loop: inout ControlLoop) {
        for client in loop.clients where client.exchange.isDone {
            mailbox.withdraw(ticket: client.exchange.ticket)
            close(client.descriptor)
        }
        loop.clients.removeAll { $0.exchange.isDone }
    }

    /// One try at writing `response` (the descriptor does not block): for a client about to be closed, who
    /// may or may not read it. A client that left gets nothing; there is no one to tell.
    private func sendOnce(_ response: ControlResponse, to descriptor: CInt) {
        let line = Self.line(response)
        _ = line.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, CLNL_MSG_NOSIGNAL) }
    }

    /// The response's line; encoding a response cannot fail, but if it did the client still gets a line.
    static func line(_ response: ControlResponse) -> [UInt8] {
        (try? ControlCoding.line(response))
            ?? Array(#"{"error":"rackd could not encode its answer","ok":false}"#.utf8) + [0x0A]
    }
}
