// rackd — serves rackctl: accepts a client, checks who it is, reads its one request, has the data plane
// answer it, and writes the answer back. Clients are served one at a time on this thread; each has
// 2 s to send and to read, so a stuck client holds up other clients briefly and packets never.

import CLinuxNetlink
import Logging
import RackControl
import RackEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

public final class ControlServer: Sendable {
    private let socket: ControlSocket
    private let statusGroup: UInt32?
    private let mailbox: ControlMailbox
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let stopPipe: (read: CInt, write: CInt)

    public init(path: String, statusGroup: UInt32?, mailbox: ControlMailbox, logger: Logger) throws {
        socket = try ControlSocket(path: path, openToOthers: statusGroup != nil)
        var fds: [CInt] = [0, 0]
        guard pipe(&fds) == 0 else { throw SystemError.current("pipe(control stop)") }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        stopPipe = (fds[0], fds[1])
        self.statusGroup = statusGroup
        self.mailbox = mailbox
        self.logger = logger
    }

    deinit {
        close(stopPipe.read)
        close(stopPipe.write)
    }

    public var path: String { socket.path }

    func requestStop() {
        stopRequested.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
    }

    /// Serves clients on the calling thread until `requestStop`.
    func run() {
        while !stopRequested.load(ordering: .acquiring) {
            var fds = [
                pollfd(fd: socket.descriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0),
            ]
            guard poll(&fds, 2, -1) > 0 else { continue }
            if fds[1].revents != 0 { break }
            if fds[0].revents != 0 { acceptOne() }
        }
        // Gone before rackd exits, so rackctl says "not running" rather than "nothing listens".
        unlink(socket.path)
    }

    private func acceptOne() {
        let client = accept(socket.descriptor, nil, nil)
        guard client >= 0 else { return }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        defer { close(client) }
        UnixSocket.setTimeouts(client, seconds: 2)
        let response = respond(to: client)
        // A client that left gets nothing; there is no one to tell.
        if let line = try? ControlCoding.line(response) { _ = UnixSocket.sendAll(client, line, flags: CLNL_MSG_NOSIGNAL) }
    }

    private func respond(to client: CInt) -> ControlResponse {
        let peer: PeerCredentials
        do {
            peer = try ControlSocket.credentials(of: client)
        } catch {
            return .failure("rackd could not read your credentials: \(error)")
        }
        guard case .line(let line) = UnixSocket.readLine(client, limit: ControlCoding.maximumRequestBytes) else {
            return .failure("expected one request line of JSON of at most \(ControlCoding.maximumRequestBytes) bytes")
        }
        let request: ControlRequest
        do {
            request = try ControlCoding.decode(ControlRequest.self, from: line)
        } catch {
            return .failure("malformed request: \(error); rackctl and rackd may be of different versions")
        }
        let who: Logger.Metadata = ["client.uid": "\(peer.uid)", "client.pid": "\(peer.pid)", "control.command": "\(request.command.rawValue)"]
        if case .denied(let reason) = ControlAccess.decide(request, from: peer, statusGroup: statusGroup) {
            logger.notice("control request refused", metadata: who.merging(["reason": "\(reason)"]) { $1 })
            return .refusal(reason)
        }
        if request.changesState {
            let target = request.id.map { "connection \($0)" } ?? "all connections"
            logger.notice("control request", metadata: who.merging(["control.target": "\(target)"]) { $1 })
        } else {
            logger.debug("control request", metadata: who)
        }
        return mailbox.submit(request)
    }
}
