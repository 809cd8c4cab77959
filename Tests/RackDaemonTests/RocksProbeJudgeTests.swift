// rackd — the rocks probe's decisions (Rocks/RocksProbeJudge.swift, docs/rocks.md §2.2): the last 16 bytes at
// EOF or a reset decide; a banner before the announcement is tolerated, bytes after it are not; each read
// waits the read timeout after the last progress; connect has 3 s and the whole probe 10 s.

@testable import RackDaemon
import RackEngine
import SystemPackage
import Testing

@Suite struct RocksProbeJudgeTests {
    static let start = EngineInstant.seconds(100)
    static let announcement = RocksAnnouncement.bytes

    static func at(_ milliseconds: UInt64) -> EngineInstant { start + .milliseconds(milliseconds) }

    static func reading(at milliseconds: UInt64 = 5) -> RocksProbeJudge {
        var judge = RocksProbeJudge(readTimeout: .milliseconds(500), startedAt: start)
        judge.connected(now: at(milliseconds))
        return judge
    }

    @Test func theAnnouncementThenEOFIsARock() {
        var judge = Self.reading()
        judge.received(Self.announcement, now: Self.at(6))
        #expect(judge.endOfStream() == .rock)
        #expect(judge.reset() == .rock, "rocks takes ECONNRESET like EOF")
        #expect(judge.failed(.connectionReset) == .rock)
    }

    @Test func aBannerBeforeTheAnnouncementIsToleratedEvenInPieces() {
        var judge = Self.reading()
        judge.received(Array("SSH-2.0-x\r\n".utf8), now: Self.at(6))
        judge.received(Self.announcement.prefix(5), now: Self.at(7))
        judge.received(Self.announcement.dropFirst(5), now: Self.at(8))
        #expect(judge.tail == Self.announcement)
        #expect(judge.bytesReceived == 11 + 16)
        #expect(judge.endOfStream() == .rock)
    }

    @Test func anythingElseAtEOFIsNotARock() {
        var judge = Self.reading()
        #expect(judge.endOfStream() == .notRock(reason: "EOF after 0 bytes without the announcement"))
        judge.received(Self.announcement + [0x0a], now: Self.at(6))
        #expect(judge.endOfStream() == .notRock(reason: "EOF after 17 bytes without the announcement"),
                "a byte after the announcement")
        var short = Self.reading()
        short.received(Self.announcement.dropLast(), now: Self.at(6))
        #expect(short.endOfStream() == .notRock(reason: "EOF after 15 bytes without the announcement"))
        var data = Self.reading()
        data.received(Array("hello\n".utf8), now: Self.at(6))
        #expect(data.reset() == .notRock(reason: "reset after 6 bytes without the announcement"))
        #expect(data.failed(.connectionReset) == .notRock(reason: "reset after 6 bytes without the announcement"))
    }

    @Test func eachReadWaitsTheReadTimeoutAfterTheLastProgress() {
        var judge = Self.reading(at: 40)
        #expect(judge.deadline == Self.at(540))
        #expect(judge.timedOut(now: Self.at(539)) == nil)
        #expect(judge.timedOut(now: Self.at(540)) == .notRock(reason: "no data for 500 ms"))
        judge.received([1], now: Self.at(400))
        #expect(judge.deadline == Self.at(900))
        #expect(judge.timedOut(now: Self.at(899)) == nil)
        #expect(judge.timedOut(now: Self.at(900)) == .notRock(reason: "no data for 500 ms after 1 byte"))
    }

    @Test func connectHasThreeSeconds() {
        let judge = RocksProbeJudge(readTimeout: .milliseconds(500), startedAt: Self.start)
        #expect(judge.phase == .connecting)
        #expect(judge.deadline == Self.at(3000))
        #expect(judge.timedOut(now: Self.at(2999)) == nil)
        #expect(judge.timedOut(now: Self.at(3000)) == .notRock(reason: "connect timed out after 3 s"))
    }

    @Test func connectFailuresAreNamed() {
        let judge = RocksProbeJudge(readTimeout: .milliseconds(500), startedAt: Self.start)
        #expect(judge.failed(.connectionRefused) == .notRock(reason: "connection refused"))
        #expect(judge.failed(.timedOut) == .notRock(reason: "connect timed out"))
        #expect(judge.failed(.noRouteToHost) == .notRock(reason: "connect failed: \(Errno.noRouteToHost)"))
        #expect(judge.failed(.connectionReset) == .notRock(reason: "connect failed: \(Errno.connectionReset)"),
                "a reset before the connection is made is no probe answer")
        #expect(Self.reading().failed(.noRouteToHost) == .notRock(reason: "read failed after 0 bytes: \(Errno.noRouteToHost)"))
    }

    @Test func aTricklingServerMeetsTheOverallLimit() {
        var judge = Self.reading()
        var now: UInt64 = 5
        while now + 400 < 10_000 {
            now += 400
            judge.received([0x41], now: Self.at(now))
            #expect(judge.timedOut(now: Self.at(now)) == nil)
        }
        #expect(judge.deadline == Self.at(10_000))
        #expect(judge.timedOut(now: Self.at(10_000)) == .notRock(reason: "no EOF within 10 s (\(judge.bytesReceived) bytes received)"))
    }

    @Test func theTailKeepsOnlyTheLast16Bytes() {
        var judge = Self.reading()
        judge.received([UInt8](repeating: 0x41, count: 5000), now: Self.at(6))
        #expect(judge.tail.count == 16)
        judge.received([1, 2, 3], now: Self.at(7))
        #expect(judge.tail == [UInt8](repeating: 0x41, count: 13) + [1, 2, 3])
        judge.received([], now: Self.at(600))
        #expect(judge.deadline == Self.at(507), "an empty read is no progress")
    }

    @Test func durationsReadNaturally() {
        #expect(RocksProbeJudge.text(.milliseconds(500)) == "500 ms")
        #expect(RocksProbeJudge.text(.seconds(3)) == "3 s")
        #expect(RocksProbeJudge.text(.milliseconds(1500)) == "1500 ms")
    }
}
