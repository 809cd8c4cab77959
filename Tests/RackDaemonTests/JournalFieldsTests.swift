// rackd — log metadata as journal fields (System/JournalFields.swift): the names journalctl matches on
// (`journalctl -u rackd CONN_ID=3`), the names journald would refuse, and the fields of one entry.

@testable import RackDaemon
import Testing

@Suite struct JournalFieldsTests {
    @Test func dottedAndDashedKeysBecomeUpperCaseWithUnderscores() {
        #expect(JournalFields.fieldName(forMetadataKey: "conn.id") == "CONN_ID")
        #expect(JournalFields.fieldName(forMetadataKey: "conn.peer-kind") == "CONN_PEER_KIND")
        #expect(JournalFields.fieldName(forMetadataKey: "conn.state") == "CONN_STATE")
        #expect(JournalFields.fieldName(forMetadataKey: "nft.queue-variant") == "NFT_QUEUE_VARIANT")
        #expect(JournalFields.fieldName(forMetadataKey: "rocks.heartbeat-port") == "ROCKS_HEARTBEAT_PORT")
        #expect(JournalFields.fieldName(forMetadataKey: "flow") == "FLOW")
        #expect(JournalFields.fieldName(forMetadataKey: "Already_Upper9") == "ALREADY_UPPER9")
    }

    @Test func anythingButLettersAndDigitsBecomesAnUnderscore() {
        #expect(JournalFields.fieldName(forMetadataKey: "a b/c:d=e") == "A_B_C_D_E")
        // Each byte of a non-ASCII character is one underscore: "é" is two bytes in UTF-8.
        #expect(JournalFields.fieldName(forMetadataKey: "café") == "CAF__")
    }

    @Test func aNameStartsWithALetter() {
        // journald keeps a leading "_" for its trusted fields and refuses a leading digit.
        #expect(JournalFields.fieldName(forMetadataKey: "_pid") == "PID")
        #expect(JournalFields.fieldName(forMetadataKey: "__x.y") == "X_Y")
        #expect(JournalFields.fieldName(forMetadataKey: ".id") == "ID")
        #expect(JournalFields.fieldName(forMetadataKey: "3way") == "RACKD_3WAY")
        #expect(JournalFields.fieldName(forMetadataKey: "-1") == "RACKD_1")
        #expect(JournalFields.fieldName(forMetadataKey: "..") == "RACKD_")
        #expect(JournalFields.fieldName(forMetadataKey: "") == nil)
    }

    @Test func metadataCannotReplaceTheFieldsRackdSetsItself() {
        #expect(JournalFields.fieldName(forMetadataKey: "message") == "RACKD_MESSAGE")
        #expect(JournalFields.fieldName(forMetadataKey: "priority") == "RACKD_PRIORITY")
        #expect(JournalFields.fieldName(forMetadataKey: "syslog.identifier") == "RACKD_SYSLOG_IDENTIFIER")
        #expect(JournalFields.fieldName(forMetadataKey: "code-line") == "RACKD_CODE_LINE")
        #expect(JournalFields.fieldName(forMetadataKey: "_message") == "RACKD_MESSAGE", "stripping '_' must not reach a reserved name")
        #expect(JournalFields.fieldName(forMetadataKey: "errno") == "RACKD_ERRNO")
        #expect(JournalFields.fieldName(forMetadataKey: "error") == "ERROR", "only journald's own names are reserved")
    }

    @Test func everyNameIsOneJournaldAccepts() {
        let keys = ["conn.id", "_", "9", "x", "rackd.version", String(repeating: "k", count: 100), "ü.ß", "MESSAGE",
                    "a..b--c", "0conn.id"]
        for key in keys {
            guard let name = JournalFields.fieldName(forMetadataKey: key) else {
                Issue.record("no name for \(key)")
                continue
            }
            #expect(Self.journaldAccepts(name), "\(key) -> \(name)")
            #expect(!JournalFields.reserved.contains(name), "\(key) -> \(name)")
        }
        #expect(JournalFields.fieldName(forMetadataKey: String(repeating: "k", count: 100))?.count == 64)
    }

    @Test func anEntryHasTheMessageItsPriorityOriginAndOneFieldPerKey() {
        let fields = JournalFields.entry(
            message: "connection state changed conn.id=3 conn.state=suspended", priority: 5,
            metadata: [(key: "conn.id", value: "3"), (key: "conn.peer-kind", value: "rocks"),
                       (key: "conn.state", value: "suspended"), (key: "reason", value: "line one\nline two")],
            file: "RackDaemon/Daemon/EngineEventLog.swift", line: 42, function: "logDetails(_:)")
        #expect(fields == [
            "MESSAGE=connection state changed conn.id=3 conn.state=suspended",
            "PRIORITY=5",
            "SYSLOG_IDENTIFIER=rackd",
            "CODE_FILE=RackDaemon/Daemon/EngineEventLog.swift",
            "CODE_LINE=42",
            "CODE_FUNC=logDetails(_:)",
            "CONN_ID=3",
            "CONN_PEER_KIND=rocks",
            "CONN_STATE=suspended",
            // sd_journal_sendv carries a value with a newline as it is.
            "REASON=line one\nline two",
        ])
    }

    @Test func anEmptyKeyIsLeftOut() {
        let fields = JournalFields.entry(message: "m", priority: 6, metadata: [(key: "", value: "x")],
                                         file: "f", line: 1, function: "g")
        #expect(fields.count == 6)
        #expect(!fields.contains { $0.hasSuffix("=x") })
    }

    /// journal_field_valid() in systemd: 1 to 64 characters of A-Z, 0-9 and "_", not starting with a digit
    /// or (for fields a client may send) "_".
    static func journaldAccepts(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 64 else { return false }
        guard first != UInt8(ascii: "_"), !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy {
            (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0)
                || $0 == UInt8(ascii: "_")
        }
    }
}
