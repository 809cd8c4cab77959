// rackd — the few unix-socket chores rackd and rackctl share: an address from a path, writing a whole
// message, and reading one line of the control protocol.

#if canImport(Glibc)
import Glibc
#endif

public enum UnixSocket {
    /// Calls `body` with the socket address of `path` and its length, or returns nil when the path does
    /// not fit. "@name" names a socket in the abstract namespace (a leading NUL on the wire), as
    /// $NOTIFY_SOCKET may.
    public static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T? {
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        // A filesystem path needs its terminating NUL inside sun_path; an abstract name does not.
        guard !bytes.isEmpty, bytes.count + (bytes[0] == 0 ? 0 : 1) <= MemoryLayout.size(ofValue: address.sun_path) else {
            return nil
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = bytes[0] == 0 ? socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
            : socklen_t(MemoryLayout<sockaddr_un>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }

    /// Bounds every read and write on `fd`, so a stuck peer costs at most this long per call.
    public static func setTimeouts(_ fd: CInt, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends all of `bytes`; false (errno set) when the peer went away or the send timed out. `flags` is
    /// for send(2): rackd passes MSG_NOSIGNAL, so a client that left cannot kill it with SIGPIPE.
    public static func sendAll(_ fd: CInt, _ bytes: [UInt8], flags: CInt = 0) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, flags) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            sent += n
        }
        return true
    }

    public enum LineRead {
        /// The bytes before the first newline, or all of them if the stream ended without one.
        case line([UInt8])
        /// The stream ended before any byte.
        case empty
        /// More than the limit arrived without a newline.
        case tooLong
        /// read(2) failed with this errno (EAGAIN: the receive timeout passed).
        case failed(CInt)
    }

    /// Reads to the first newline, at most `limit` bytes.
    public static func readLine(_ fd: CInt, limit: Int) -> LineRead {
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while line.count <= limit {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failed(errno) }
            if n == 0 { return line.isEmpty ? .empty : .line(line) }
            line += buffer[..<n]
            if let newline = line.firstIndex(of: 0x0A) { return .line(Array(line[..<newline])) }
        }
        return .tooLong
    }
}
