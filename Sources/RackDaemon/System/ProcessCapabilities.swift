// rackd — which capabilities this process holds, to word an error right (an EPERM means "not allowed"
// or "taken" depending on it).

#if canImport(Glibc)
import Glibc
#endif

enum ProcessCapabilities {
    /// Whether CAP_NET_ADMIN (12) is in this process's effective set, from /proc/self/status (readable
    /// under the unit's ProtectProc=invisible: it is our own). False when unreadable.
    static func effectiveHasNetAdmin() -> Bool {
        guard let file = fopen("/proc/self/status", "r") else { return false }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, CInt(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            guard text.hasPrefix("CapEff:") else { continue }
            let hex = text.dropFirst("CapEff:".count).filter { $0.isHexDigit }
            guard let mask = UInt64(hex, radix: 16) else { return false }
            return mask & (1 << 12) != 0
        }
        return false
    }
}
