// rackd — log lines for journald and for terminals: one line per event, the message first, then its
// metadata as sorted key=value pairs.
//
// Under systemd (JOURNAL_STREAM set, stderr going to the journal) each event goes to journald as an
// entry with fields (System/JournalFields.swift): MESSAGE is that line, PRIORITY the level, and every
// metadata key a field of its own (conn.id → CONN_ID), so `journalctl -u rackd CONN_ID=3` selects a
// connection. Should journald not take an entry, the line goes to stderr as before, starting with a
// syslog priority, "<5>connection state changed conn.id=3 conn.state=suspended …", which journald reads
// as the level (SyslogLevelPrefix) and stamps itself. On a terminal a line starts with the time and the
// level instead. A line is written with one write(2), so two threads never interleave.

import Logging

#if canImport(Glibc)
import Glibc
#endif

public struct LineLogHandler: LogHandler {
    public enum Format: Sendable {
        case journal, terminal
    }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    let format: Format

    public init(level: Logger.Level, format: Format) {
        self.logLevel = level
        self.format = format
    }

    /// journald's format when stderr is the journal stream systemd set up, else the terminal's.
    public static func formatForStandardError(environment: [String: String]) -> Format {
        guard let stream = environment["JOURNAL_STREAM"] else { return .terminal }
        var info = stat()
        guard fstat(2, &info) == 0 else { return .terminal }
        // JOURNAL_STREAM is "device:inode" of the stream; a redirected stderr no longer matches it.
        return stream == "\(info.st_dev):\(info.st_ino)" ? .journal : .terminal
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let pairs = all.keys.sorted().map { (key: $0, value: "\(all[$0]!)") }
        var text: String
        switch format {
        case .journal:
            var message = "\(event.message)"
            for (key, value) in pairs { message += " \(key)=\(value)" }
            message = Self.oneLine(message)
            let fields = JournalFields.entry(
                message: message, priority: Self.syslogPriority(event.level), metadata: pairs, file: event.file,
                line: event.line, function: event.function)
            if JournalSender.send(fields) { return }
            text = "<\(Self.syslogPriority(event.level))>\(message)"
        case .terminal:
            text = "\(TimeText.localNow()) \(event.level) \(event.message)"
            for (key, value) in pairs { text += " \(key)=\(value)" }
        }
        var bytes = Array(Self.oneLine(text).utf8)
        bytes.append(0x0A)
        bytes.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// One event, one line, whatever a value contains: a newline becomes the two characters \n.
    static func oneLine(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
    }

    static func syslogPriority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}
