// rackd — where the configuration comes from: the file named by --config, else /etc/rackd/rackd.conf
// when it exists, else the built-in defaults. Group names are looked up here, so a status-group that
// does not exist is an error with its line, at --check-config and at start alike.

import RackEngine
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

public struct ConfigurationSource {
    let explicitPath: String?
    let defaultPath: String

    public init(explicitPath: String?, defaultPath: String) {
        self.explicitPath = explicitPath
        self.defaultPath = defaultPath
    }

    /// The file read, or "(built-in defaults)".
    public var name: String { path ?? "(built-in defaults)" }

    private var path: String? {
        explicitPath ?? (access(defaultPath, F_OK) == 0 ? defaultPath : nil)
    }

    /// The configuration, or an error reading "PATH: line N: reason".
    public func load() throws(ConfigurationLoadError) -> Configuration {
        guard let path else { return Configuration() }
        let text: String
        do {
            text = try Self.read(path)
        } catch {
            throw ConfigurationLoadError(message: "\(path): cannot read: \(error.errno)")
        }
        do {
            return try ConfigurationParser.parse(text, resolveGroup: Self.groupID(named:))
        } catch {
            throw ConfigurationLoadError(message: "\(path): \(error)")
        }
    }

    private static func groupID(named name: String) -> UInt32? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return group.gr_gid
    }

    /// The file's text, read with plain read(2) so that any file works, /dev/null included.
    private static func read(_ path: String) throws(SystemError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError.current("open(\(path))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw SystemError.current("read(\(path))") }
            if n == 0 { break }
            bytes += buffer[..<n]
            // A configuration is a few KiB; a huge file is a mistake, not a configuration.
            guard bytes.count <= 1 << 20 else { throw SystemError(call: "read(\(path))", errno: .fileTooLarge) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

public struct ConfigurationLoadError: Error, CustomStringConvertible {
    var message: String
    public var description: String { message }
}
