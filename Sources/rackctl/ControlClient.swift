// rackctl — one request to rackd over its unix socket, and its answer.

import RackControl

#if canImport(Glibc)
import Glibc
#endif

enum ControlClientError: Error, CustomStringConvertible {
    case notRunning(path: String, detail: String)
    case permissionDenied(path: String)
    case failed(String)

    var description: String {
        switch self {
        case .notRunning(let path, let detail):
            "rackd is not running (\(detail) at \(path)). Start it with: systemctl start rackd"
        case .permissionDenied(let path):
            "permission denied on \(path): rackctl needs root, or for 'status' membership of the group named by "
                + "status-group in /etc/rackd/rackd.conf"
        case .failed(let message):
            "rackctl: \(message)"
        }
    }

    /// sysexits: EX_UNAVAILABLE, EX_NOPERM, 1.
    var exitStatus: Int32 {
        switch self {
        case .notRunning: 69
        case .permissionDenied: 77
        case .failed: 1
        }
    }
}

struct ControlClient {
    let path: String
    /// rackd answers at once; a daemon that does not answer in this time is stuck.
    var timeoutSeconds = 10
    /// MSG_NOSIGNAL, which Swift does not import from glibc.
    private static let noSignal: CInt = 0x4000

    func send(_ request: ControlRequest) throws(ControlClientError) -> ControlResponse {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        UnixSocket.setTimeouts(fd, seconds: timeoutSeconds)
        try connect(fd)
        let line: [UInt8]
        do {
            line = try ControlCoding.line(request)
        } catch {
            throw .failed("could not encode the request: \(error)")
        }
        // rackd refuses a client that may ask nothing as soon as it connects, without reading its request,
        // and closes: the send may then fail (without SIGPIPE), while the refusal waits to be read.
        if !UnixSocket.sendAll(fd, line, flags: Self.noSignal) {
            let sendError = errno
            guard sendError == EPIPE || sendError == ECONNRESET else {
                throw .failed("could not send the request: \(String(cString: strerror(sendError)))")
            }
        }
        let answer = try readAnswer(fd)
        do {
            return try ControlCoding.decode(ControlResponse.self, from: answer)
        } catch {
            throw .failed("rackd's answer is not valid: \(error)")
        }
    }

    private func connect(_ fd: CInt) throws(ControlClientError) {
        guard let result = UnixSocket.withAddress(path, { Glibc.connect(fd, $0, $1) }) else {
            throw .failed("socket path too long: \(path)")
        }
        guard result != 0 else { return }
        switch errno {
        case ENOENT: throw .notRunning(path: path, detail: "no socket")
        case ECONNREFUSED: throw .notRunning(path: path, detail: "nothing listens on the socket")
        case EACCES, EPERM: throw .permissionDenied(path: path)
        default: throw .failed("connect(\(path)): \(String(cString: strerror(errno)))")
        }
    }

    /// rackd's answer: one line, or everything it sent before closing.
    private func readAnswer(_ fd: CInt) throws(ControlClientError) -> [UInt8] {
        switch UnixSocket.readLine(fd, limit: Int.max) {
        case .line(let answer): return answer
        case .empty, .tooLong: throw .failed("rackd closed the connection without an answer")
        case .failed(let code):
            let reason = code == EAGAIN ? "no answer within \(timeoutSeconds) s" : String(cString: strerror(code))
            throw .failed("could not read rackd's answer: \(reason)")
        }
    }
}
