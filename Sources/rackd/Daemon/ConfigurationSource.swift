// rackd — where the configuration comes from: the file named by --config, else /etc/rackd/rackd.conf
// when it exists, else the built-in defaults. Group names are looked up here, so a status-group that
// does not exist is an error with its line, at --check-config and at start alike.

import Foundation
import RackEngine

#if canImport(Glibc)
import Glibc
#endif

struct ConfigurationSource {
    let explicitPath: String?
    let defaultPath: String

    /// The file read, or "(built-in defaults)".
    var name: String { path ?? "(built-in defaults)" }

    private var path: String? {
        explicitPath ?? (FileManager.default.fileExists(atPath: defaultPath) ? defaultPath : nil)
    }

    /// The configuration, or an error reading "PATH: line N: reason".
    func load() throws(ConfigurationLoadError) -> Configuration {
        guard let path else { return Configuration() }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationLoadError(message: "\(path): cannot read: \(Self.reason(error))")
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

    private static func reason(_ error: Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        return nsError.localizedDescription
    }
}

struct ConfigurationLoadError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
