// rackd — sequence number arithmetic and ordering across the 2³² wrap, and sequence-space offsets.

import RackEngine
import Testing

@Suite struct TCPSequenceNumberTests {
    @Test func orderingAcrossTheWrap() {
        let beforeWrap = TCPSequenceNumber(0xFFFF_FFF0)
        let afterWrap = TCPSequenceNumber(0x10)
        #expect(beforeWrap < afterWrap)
        #expect(afterWrap > beforeWrap)
        #expect(!(afterWrap < beforeWrap))
        #expect(TCPSequenceNumber(5) < TCPSequenceNumber(6))
        #expect(TCPSequenceNumber(0x7FFF_FFFF) < TCPSequenceNumber(0x8000_0000))
        #expect([afterWrap, beforeWrap].max() == afterWrap)
    }

    @Test func distanceAcrossTheWrap() {
        let beforeWrap = TCPSequenceNumber(0xFFFF_FFF0)
        let afterWrap = TCPSequenceNumber(0x10)
        #expect(afterWrap - beforeWrap == 32)
        #expect(beforeWrap - afterWrap == -32)
        #expect(afterWrap - afterWrap == 0)
        // The largest distances either way.
        #expect(TCPSequenceNumber(0x7FFF_FFFF) - TCPSequenceNumber(0) == Int32.max)
        #expect(TCPSequenceNumber(0x8000_0000) - TCPSequenceNumber(0) == Int32.min)
    }

    @Test func additionWraps() {
        #expect(TCPSequenceNumber(0xFFFF_FFF0) + 0x20 == TCPSequenceNumber(0x10))
        #expect(TCPSequenceNumber(0) - 1 == TCPSequenceNumber(0xFFFF_FFFF))
        var number = TCPSequenceNumber(UInt32.max)
        number += 1
        #expect(number == TCPSequenceNumber(0))
        #expect(TCPSequenceNumber(42).description == "42")
    }

    @Test func offsetsMapOneSpaceOntoAnother() {
        let original = TCPSequenceNumber(0xFFFF_0000)
        let resumed = TCPSequenceNumber(0x0000_1000)
        let offset = TCPSequenceOffset(from: original, to: resumed)
        #expect(original.shifted(by: offset) == resumed)
        #expect(resumed.shifted(by: offset.inverse) == original)
        #expect((original + 500).shifted(by: offset) == resumed + 500)
        #expect(offset.inverse.inverse == offset)
        #expect(TCPSequenceOffset.zero.inverse == .zero)
        #expect(original.shifted(by: .zero) == original)
        #expect(offset.description == "+69632")
        #expect(offset.inverse.description == "-69632")
    }

    @Test func randomOffsetsRoundTrip() {
        var random = SplitMix64(seed: 7)
        for _ in 0..<1000 {
            let a = TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &random))
            let b = TCPSequenceNumber(UInt32.random(in: 0...UInt32.max, using: &random))
            let offset = TCPSequenceOffset(from: a, to: b)
            #expect(a.shifted(by: offset) == b)
            #expect(b.shifted(by: offset.inverse) == a)
            // Shifting preserves distances, so ordering near any point survives a shift.
            #expect((a + 100).shifted(by: offset) - b == 100)
            #expect(a < a + 1 && (a + 1).shifted(by: offset) > a.shifted(by: offset))
        }
    }
}
