// rackd — state files read back, and the files that must be refused (Sources/RackDaemon/State/).

import Testing
@testable import RackDaemon

@Suite struct StateFileFormatTests {
    let record = DaemonRecord(rocksHeartbeatPort: 43000, rocksReconnectionPort: 44000)

    @Test func aRecordReadsBackTheSame() throws {
        let bytes = try StateFileFormat.encode(record)
        #expect(String(decoding: bytes.prefix(14), as: UTF8.self) == "rackd-state 1\n")
        #expect(try StateFileFormat.decode(DaemonRecord.self, from: bytes) == record)
    }

    @Test func aFileCutShortAtAnyByteIsRefused() throws {
        let bytes = try StateFileFormat.encode(record)
        for length in 0..<bytes.count {
            #expect(throws: StateFileFormat.Refusal.self, "cut at \(length) of \(bytes.count)") {
                try StateFileFormat.decode(DaemonRecord.self, from: Array(bytes.prefix(length)))
            }
        }
    }

    @Test func aChangedByteAnywhereIsRefused() throws {
        let bytes = try StateFileFormat.encode(record)
        for index in bytes.indices {
            var changed = bytes
            changed[index] ^= 0x20
            #expect(throws: StateFileFormat.Refusal.self, "byte \(index) changed") {
                try StateFileFormat.decode(DaemonRecord.self, from: changed)
            }
        }
    }

    @Test func foreignFilesAndOtherVersionsAreRefusedWithTheReason() throws {
        let foreign = Array("{\"rocksHeartbeatPort\": 1}".utf8)
        #expect(Self.refusal(foreign).contains("not a rackd state file"))
        var other = try StateFileFormat.encode(record)
        other[12] = UInt8(ascii: "9")  // "rackd-state 9"
        #expect(Self.refusal(other).contains("written by another version"))
        // A valid header and checksum over contents of the wrong shape.
        let missing = try StateFileFormat.encode(["rocksHeartbeatPort": "not a number"])
        #expect(Self.refusal(missing).contains("do not decode"))
    }

    static func refusal(_ bytes: [UInt8]) -> String {
        do {
            _ = try StateFileFormat.decode(DaemonRecord.self, from: bytes)
            return "accepted"
        } catch {
            return error.description
        }
    }
}
