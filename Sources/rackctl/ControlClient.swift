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

    func send(_ request: ControlRequest) throws(ControlClientError) -> ControlResponse {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .failed("socket(AF_UNIX): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        try connect(fd)
        let line: [UInt8]
        do {
            line = try ControlCoding.line(request)
        } catch {
            throw .failed("could not encode the request: \(error)")
        }
        try writeAll(fd, line)
        let answer = try readLine(fd)
        do {
            return try ControlCoding.decode(ControlResponse.self, from: answer)
        } catch {
            throw .failed("rackd's answer is not valid: \(error)")
        }
    }

    private func connect(_ fd: CInt) throws(ControlClientError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw .failed("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result != 0 else { return }
        switch errno {
        case ENOENT: throw .notRunning(path: path, detail: "no socket")
        case ECONNREFUSED: throw .notRunning(path: path, detail: "nothing listens on the socket")
        case EACCES, EPERM: throw .permissionDenied(path: path)
        default: throw .failed("connect(\(path)): \(String(cString: strerror(errno)))")
        }
    }

    private func writeAll(_ fd: CInt, _ bytes: [UInt8]) throws(ControlClientError) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw .failed("could not send the request: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Reads to the first newline (or the end of the stream).
    private func readLine(_ fd: CInt) throws(ControlClientError) -> [UInt8] {
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                let reason = errno == EAGAIN ? "no answer within \(timeoutSeconds) s" : String(cString: strerror(errno))
                throw .failed("could not read rackd's answer: \(reason)")
            }
            if n == 0 { break }
            answer += buffer[..<n]
            if let newline = answer.firstIndex(of: 0x0A) { return Array(answer[..<newline]) }
        }
        guard !answer.isEmpty else { throw .failed("rackd closed the connection without an answer") }
        return answer
    }
}
