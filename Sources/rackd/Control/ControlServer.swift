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

final class ControlServer: Sendable {
    private let socket: ControlSocket
    private let statusGroup: UInt32?
    private let mailbox: ControlMailbox
    private let logger: Logger
    private let stopRequested = Atomic<Bool>(false)
    private let stopPipe: (read: CInt, write: CInt)

    init(path: String, statusGroup: UInt32?, mailbox: ControlMailbox, logger: Logger) throws {
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

    var path: String { socket.path }

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
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let response = respond(to: client)
        if let line = try? ControlCoding.line(response) { writeAll(client, line) }
    }

    private func respond(to client: CInt) -> ControlResponse {
        let peer: PeerCredentials
        do {
            peer = try ControlSocket.credentials(of: client)
        } catch {
            return .failure("rackd could not read your credentials: \(error)")
        }
        guard let line = readRequestLine(client) else {
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

    /// The bytes up to the first newline, or nil when the client sends too much, too slowly, or nothing.
    private func readRequestLine(_ client: CInt) -> [UInt8]? {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        while line.count <= ControlCoding.maximumRequestBytes {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return line.isEmpty ? nil : line }
            line += buffer[..<n]
            if let newline = line.firstIndex(of: 0x0A) { return Array(line[..<newline]) }
        }
        return nil
    }

    private func writeAll(_ client: CInt, _ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, CLNL_MSG_NOSIGNAL) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }  // the client left; nothing to tell it
            sent += n
        }
    }
}
