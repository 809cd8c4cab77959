// rackd — the directory where rackd keeps what must outlive the process (docs/restarts.md): one file
// per managed connection, one for the daemon's own facts, and the lock that keeps a second rackd out.
//
// Root only: the directory is 0700 and every file 0600, since records hold connection keys. Each write
// goes to NAME.tmp and is renamed over NAME, so a crash at any instant leaves the old file or the new
// one (rename is atomic); no fsync, since the directory lives in /run (tmpfs) and only the process, not
// the machine, is expected to fail. Decides nothing: the engine says what to write.

import Logging
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

public final class StateDirectory {
    let path: String
    private let lockDescriptor: CInt
    private let logger: Logger

    static let daemonFileName = "rackd"
    private static let connectionPrefix = "connection-"

    /// Creates the directory if needed and takes its lock. Throws when another rackd holds it.
    public init(path: String, logger: Logger) throws(SystemError) {
        self.path = path
        self.logger = logger
        try Self.makeDirectory(path)
        let lockPath = path + "/lock"
        let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw SystemError.current("open(\(lockPath))") }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let error = SystemError.current("flock(\(lockPath))")
            var buffer = [UInt8](repeating: 0, count: 32)
            let count = pread(descriptor, &buffer, buffer.count, 0)
            close(descriptor)
            let holder = String(decoding: buffer.prefix(max(0, count)).filter { (0x30...0x39).contains($0) }, as: UTF8.self)
            guard error.errno == .wouldBlock else { throw error }
            throw SystemError(call: "flock(\(lockPath))", errno: .wouldBlock, hint:
                "another rackd\(holder.isEmpty ? "" : " (pid \(holder))") already runs with state directory \(path); "
                + "it is left untouched. Stop it first (systemctl stop rackd), or give this one its own --state-directory "
                + "and --control-socket if it serves another network namespace")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(descriptor, 0)
        _ = pwrite(descriptor, pid, pid.count, 0)
        lockDescriptor = descriptor
    }

    deinit {
        close(lockDescriptor)
    }

    // MARK: Connections

    /// Every connection record found, and the files refused (each then deleted, so the next start does
    /// not meet it again).
    func loadConnections() -> [PersistedConnection] {
        var records: [PersistedConnection] = []
        for name in fileNames() {
            if name.hasSuffix(".tmp") {
                // A write the last process did not finish: the file it would have replaced is still there.
                unlink(path + "/" + name)
                continue
            }
            guard name.hasPrefix(Self.connectionPrefix) else { continue }
            do {
                let record = try StateFileFormat.decode(PersistedConnection.self, from: try read(name))
                guard Self.fileName(for: record.id) == name else {
                    throw StateFileFormat.Refusal(description: "it holds connection \(record.id), not the one its name says")
                }
                records.append(record)
            } catch {
                logger.error("state file refused; that connection is not restored and its file is deleted", metadata: [
                    "state.file": "\(path)/\(name)", "reason": "\(error)",
                ])
                unlink(path + "/" + name)
            }
        }
        return records
    }

    func save(_ record: PersistedConnection) throws {
        try write(try StateFileFormat.encode(record), to: Self.fileName(for: record.id))
    }

    func removeConnection(_ id: UInt64) {
        unlink(path + "/" + Self.fileName(for: id))
    }

    /// Deletes every connection record (a stop with nothing managed, `rackd cleanup`). The lock stays, and
    /// so does the daemon's own record: the rocks ports it announced are still the ones to bind next.
    public func removeAllRecords() {
        for name in fileNames() where name != "lock" && name != Self.daemonFileName { unlink(path + "/" + name) }
    }

    // MARK: The daemon's own facts

    func loadDaemonRecord() -> DaemonRecord? {
        guard fileNames().contains(Self.daemonFileName) else { return nil }
        do {
            return try StateFileFormat.decode(DaemonRecord.self, from: try read(Self.daemonFileName))
        } catch {
            logger.error("state file refused; starting without it", metadata: [
                "state.file": "\(path)/\(Self.daemonFileName)", "reason": "\(error)",
            ])
            unlink(path + "/" + Self.daemonFileName)
            return nil
        }
    }

    func save(_ record: DaemonRecord) throws {
        try write(try StateFileFormat.encode(record), to: Self.daemonFileName)
    }

    // MARK: Files

    static func fileName(for id: UInt64) -> String { connectionPrefix + String(id) }

    private static func makeDirectory(_ path: String) throws(SystemError) {
        var prefix = ""
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw SystemError.current("mkdir(\(prefix))") }
        }
        // The last one holds keys: root only, whatever it was created with.
        guard chmod(path, 0o700) == 0 else { throw SystemError.current("chmod(\(path), 0700)") }
    }

    private func fileNames() -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    private func read(_ name: String) throws(SystemError) -> [UInt8] {
        let file = path + "/" + name
        let descriptor = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard descriptor >= 0 else { throw SystemError.current("open(\(file))") }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = Glibc.read(descriptor, &chunk, chunk.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw SystemError.current("read(\(file))")
            }
            if count == 0 { return bytes }
            bytes += chunk[0..<count]
        }
    }

    private func write(_ bytes: [UInt8], to name: String) throws(SystemError) {
        let final = path + "/" + name
        let temporary = final + ".tmp"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw SystemError.current("open(\(temporary))") }
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                let error = SystemError.current("write(\(temporary))", hint: "is /run full?")
                close(descriptor)
                unlink(temporary)
                throw error
            }
            written += count
        }
        close(descriptor)
        guard rename(temporary, final) == 0 else {
            let error = SystemError.current("rename(\(temporary), \(final))")
            unlink(temporary)
            throw error
        }
    }
}

/// What the daemon itself must find again after a restart: the rocks ports it announced to every rocks
/// peer (with port 0 in rackd.conf the kernel picked them, and a rock keeps sending to them).
struct DaemonRecord: Codable, Equatable {
    var rocksHeartbeatPort: UInt16?
    var rocksReconnectionPort: UInt16?
}
