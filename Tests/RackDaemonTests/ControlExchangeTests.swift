// rackd — one control client's exchange (ControlExchange) without a socket: a request whole or a byte at
// a time, too long or never finished, an answer taken in pieces or never, and each phase's deadline.

import RackControl
import RackEngine
import Testing

@testable import RackDaemon

@Suite struct ControlExchangeTests {
    static let root = PeerCredentials(pid: 1, uid: 0, gid: 0, groups: [])
    let start = EngineInstant.seconds(100)
    let status = Array(#"{"command":"status"}"#.utf8)

    func exchange() -> ControlExchange { ControlExchange(ticket: 7, peer: Self.root, now: start) }

    func at(milliseconds: Int) -> EngineInstant { start + .milliseconds(milliseconds) }

    @Test func aWholeRequestIsJudgedAndItsAnswerWritten() {
        var client = exchange()
        #expect(client.phase == .reading && !client.hasRequest)
        #expect(client.received(status + [0x0A], now: at(milliseconds: 1)) == .judge(status))
        #expect(client.phase == .waitingForAnswer && client.hasRequest)
        #expect(client.deadline == at(milliseconds: 1) + ControlExchange.answerTime)
        let answer = Array("{\"ok\":true}\n".utf8)
        client.answer(answer, now: at(milliseconds: 2))
        #expect(client.unsent == answer[...])
        #expect(client.deadline == at(milliseconds: 2) + ControlExchange.takeTime)
        #expect(client.sent(answer.count) == .close(farewell: nil))
        #expect(client.isDone)
    }

    @Test func aRequestAByteAtATime() {
        var client = exchange()
        for (offset, byte) in status.enumerated() {
            #expect(client.received([byte], now: at(milliseconds: offset)) == .wait)
        }
        #expect(client.phase == .reading)
        #expect(client.received([0x0A], now: at(milliseconds: 50)) == .judge(status))
    }

    @Test func aTrickleThatOutlastsTheRequestTimeIsClosed() {
        var client = exchange()
        let requestMilliseconds = Int(ControlExchange.requestTime.components.seconds) * 1000
        for millisecond in stride(from: 0, to: requestMilliseconds, by: 100) {
            #expect(client.expire(now: at(milliseconds: millisecond)) == nil)
            #expect(client.received([0x20], now: at(milliseconds: millisecond)) == .wait)
        }
        // Bytes that keep coming do not move the deadline: it is counted from accept.
        guard case .close(let farewell?) = client.expire(now: at(milliseconds: requestMilliseconds)) else {
            Issue.record("a client that never finished its request was not closed with a word")
            return
        }
        #expect(farewell.ok == false && farewell.error?.contains("no request line") == true)
        #expect(client.isDone)
    }

    @Test func aRequestPastTheLimitIsAnsweredWithAFailure() {
        var client = exchange()
        let long = [UInt8](repeating: 0x20, count: ControlCoding.maximumRequestBytes)
        #expect(client.received(long, now: start) == .wait)
        guard case .respond(let response) = client.received([0x20], now: start) else {
            Issue.record("an over-long request was not refused")
            return
        }
        #expect(response.error?.contains("at most \(ControlCoding.maximumRequestBytes) bytes") == true)
        #expect(client.phase == .waitingForAnswer)
    }

    @Test func aStreamEndingWithoutANewlineStillCarriesItsRequest() {
        var client = exchange()
        #expect(client.received(status, now: start) == .wait)
        #expect(client.streamEnded(now: start) == .judge(status))
        var silent = exchange()
        guard case .respond(let response) = silent.streamEnded(now: start) else {
            Issue.record("a client that sent nothing and shut its end got no failure")
            return
        }
        #expect(response.ok == false)
    }

    @Test func aStuckDataPlaneIsAnsweredForAfterItsTime() {
        var client = exchange()
        _ = client.received(status + [0x0A], now: start)
        let limit = start + ControlExchange.answerTime
        #expect(client.expire(now: limit + .milliseconds(-1)) == nil)
        guard case .respond(let response) = client.expire(now: limit) else {
            Issue.record("no failure after the data plane's time ran out")
            return
        }
        #expect(response.error?.contains("did not answer") == true)
        client.answer(ControlServer.line(response), now: limit)
        #expect(client.deadline == limit + ControlExchange.takeTime)
    }

    @Test func anAnswerTakenInPiecesAndOneNeverTaken() {
        var client = exchange()
        _ = client.received(status + [0x0A], now: start)
        let answer = [UInt8](repeating: 0x61, count: 100) + [0x0A]
        client.answer(answer, now: start)
        #expect(client.sent(0) == .wait)
        #expect(client.sent(60) == .wait)
        #expect(client.unsent.count == 41)
        #expect(client.expire(now: start + ControlExchange.takeTime) == .close(farewell: nil))
        #expect(client.isDone)
    }

    @Test func aLateAnswerOrBytesAfterTheRequestChangeNothing() {
        var client = exchange()
        _ = client.received(status + [0x0A], now: start)
        #expect(client.received([0x7B], now: start) == .wait)
        #expect(client.streamEnded(now: start) == .wait)
        #expect(client.hungUp() == .close(farewell: nil))
        client.answer([0x0A], now: start)
        #expect(client.isDone && client.unsent.isEmpty)
    }

    @Test func anEvictedClientIsToldUnlessHalfItsAnswerHasGone() {
        var idle = exchange()
        guard case .close(let farewell?) = idle.evict() else {
            Issue.record("an evicted idle client was not told")
            return
        }
        #expect(farewell.error?.contains("try again") == true)
        var writing = exchange()
        _ = writing.received(status + [0x0A], now: start)
        writing.answer([0x61, 0x0A], now: start)
        _ = writing.sent(1)
        #expect(writing.evict() == .close(farewell: nil))
    }
}
