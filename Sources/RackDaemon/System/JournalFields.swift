// rackd — log events as journal entries with fields (sd_journal_sendv(3), systemd.journal-fields(7)), so
// that `journalctl -u rackd CONN_ID=3` finds every line about connection 3.
//
// The mapping is pure (`JournalFields`): MESSAGE is the line rackd writes anywhere else, without the
// time or level in front ("connection state changed conn.id=3 conn.state=suspended …"), so the journal
// reads as it did when rackd wrote plain lines; PRIORITY is the syslog level, SYSLOG_IDENTIFIER=rackd,
// CODE_FILE/CODE_LINE/CODE_FUNC where swift-log says the call was made, and each metadata key becomes a
// field of its own: "conn.id" → CONN_ID, "conn.peer-kind" → CONN_PEER_KIND. `JournalSender` is the thin
// adapter that hands the fields to libsystemd.

import CSystemd

#if canImport(Glibc)
import Glibc
#endif

enum JournalFields {
    /// The longest field name journald accepts (journal_field_valid() in systemd: 64).
    static let maximumNameLength = 64

    /// Fields that rackd sets itself or that mean something to journald or journalctl: a metadata key
    /// that maps onto one of them is sent as RACKD_<name> instead, so it cannot replace the message, its
    /// priority or its origin.
    static let reserved: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO", "INVOCATION_ID",
        "USER_INVOCATION_ID", "SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP",
        "SYSLOG_RAW", "DOCUMENTATION", "TID", "UNIT", "USER_UNIT",
    ]

    /// The journal field for a metadata key: ASCII letters upper-cased, digits kept, anything else
    /// (".", "-", other bytes) an underscore. A name must start with a letter (journald reserves a
    /// leading "_" for its own trusted fields, and refuses a leading digit), so leading underscores go
    /// and a leading digit, a reserved name or a key with no letter or digit at all gets "RACKD_" in
    /// front; nil for an empty key. At most 64 characters.
    static func fieldName(forMetadataKey key: String) -> String? {
        guard !key.isEmpty else { return nil }
        var name = String(decoding: key.utf8.map { byte -> UInt8 in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - 0x20
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): byte
            default: UInt8(ascii: "_")
            }
        }, as: UTF8.self)
        name = String(name.drop { $0 == "_" })
        if name.isEmpty || name.first!.isNumber || reserved.contains(name) {
            name = "RACKD_" + name
        }
        // "RACKD_" alone (a key of underscores and punctuation) is still a valid name.
        return String(name.prefix(maximumNameLength))
    }

    /// One entry's fields, "NAME=value" each: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, the code location,
    /// then the metadata in the order given (the caller sorts it).
    static func entry(message: String, priority: Int, metadata: [(key: String, value: String)],
                      file: String, line: UInt, function: String) -> [String] {
        var fields = [
            "MESSAGE=\(message)", "PRIORITY=\(priority)", "SYSLOG_IDENTIFIER=rackd",
            "CODE_FILE=\(file)", "CODE_LINE=\(line)", "CODE_FUNC=\(function)",
        ]
        for (key, value) in metadata {
            guard let name = fieldName(forMetadataKey: key) else { continue }
            fields.append("\(name)=\(value)")
        }
        return fields
    }
}

enum JournalSender {
    /// journald's native socket (sd_journal_sendv(3) sends there).
    static let socketPath = "/run/systemd/journal/socket"

    /// Whether journald's socket was there at start. sd_journal_sendv reports success when the socket is
    /// missing (it drops the entry "silently", by design), so rackd looks for itself: a JOURNAL_STREAM
    /// that matches stderr without a journald socket (a test's stand-in) must still get the lines.
    static let isAvailable: Bool = {
        var info = stat()
        return stat(socketPath, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK
    }()

    /// Sends one entry to journald. Values may hold any bytes, newlines included (sd_journal_sendv
    /// encodes them). Returns false when journald did not take it, or has no socket: the caller then
    /// writes the line to stderr instead.
    static func send(_ fields: [String]) -> Bool {
        guard isAvailable else { return false }
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes += field.utf8
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { buffer in
            guard let base = buffer.baseAddress else { return false }
            let vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, CInt($0.count)) == 0 }
        }
    }
}
