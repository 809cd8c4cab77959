// rackd — the control protocol's framing (ControlLineReader): a request line assembled from pieces of
// every size, the limit, and a stream that ends without a newline.

import RackControl
import Testing

@Suite struct ControlLineReaderTests {
    let request = Array(#"{"command":"status"}"#.utf8)

    @Test func aLineInOnePiece() {
        var reader = ControlLineReader(limit: 4096)
        #expect(reader.append(request + [0x0A]) == .line(request))
    }

    @Test func aLineAByteAtATime() {
        var reader = ControlLineReader(limit: 4096)
        for byte in request { #expect(reader.append([byte]) == .needMore) }
        #expect(reader.pending == request)
        #expect(reader.append([0x0A]) == .line(request))
    }

    @Test func whatFollowsTheNewlineIsIgnored() {
        var reader = ControlLineReader(limit: 4096)
        #expect(reader.append(Array(request.prefix(5))) == .needMore)
        #expect(reader.append(Array(request.dropFirst(5)) + Array("\n{\"command\":\"suspend\"}\n".utf8)) == .line(request))
    }

    @Test func exactlyTheLimitIsALineAndOneMoreIsTooLong() {
        var fits = ControlLineReader(limit: 8)
        #expect(fits.append([UInt8](repeating: 0x61, count: 8)) == .needMore)
        #expect(fits.append([0x0A]) == .line([UInt8](repeating: 0x61, count: 8)))
        var over = ControlLineReader(limit: 8)
        #expect(over.append([UInt8](repeating: 0x61, count: 5)) == .needMore)
        #expect(over.append([UInt8](repeating: 0x61, count: 4) + [0x0A]) == .tooLong)
    }

    @Test func aFloodPastTheLimitIsNotKept() {
        var reader = ControlLineReader(limit: 4096)
        #expect(reader.append([UInt8](repeating: 0x20, count: 1 << 20)) == .tooLong)
        #expect(reader.pending.count == 4097)
    }

    @Test func aStreamEndingWithoutANewline() {
        var reader = ControlLineReader(limit: 4096)
        #expect(reader.finish() == nil)
        #expect(reader.append(request) == .needMore)
        #expect(reader.finish() == request)
    }

    @Test func anEmptyLineIsALine() {
        var reader = ControlLineReader(limit: 4096)
        #expect(reader.append([0x0A]) == .line([]))
    }
}
