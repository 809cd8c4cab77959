// rackd — how one queued segment of a rocks connection reaches its destination: cut to the part that
// goes on, moved by the splice, with SACK blocks that cannot be mapped taken out (docs/rocks.md §14).

struct RocksSegmentRewrite {
    /// The payload bytes to keep; nil keeps the segment whole.
    var kept: Range<Int>?
    /// Takes the FIN off the kept bytes (rackd sends its own in its place).
    var droppingFIN = false
    var sequenceOffset: TCPSequenceOffset = .zero
    var acknowledgmentOffset: TCPSequenceOffset = .zero
    /// A SACK option whose blocks the acknowledgement's offset would not map right.
    var eraseSACK = false

    /// Rewrites the packet in place and says how it goes on. A packet that cannot be rewritten is
    /// dropped: its sender retransmits it.
    func apply(to bytes: UnsafeMutableRawBufferPointer, checksum: TCPChecksumState) -> PacketVerdict {
        do {
            var length = bytes.count
            var checksum = checksum
            if let kept {
                length = try SegmentTrim.keepPayload(kept, of: bytes, droppingFIN: droppingFIN)
                checksum = .partial  // lengths changed: a full checksum follows
            }
            let packet = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])
            let view = try MutableIPPacketView(validating: packet)
            var erased = false
            if eraseSACK, try view.tcp.eraseSACKOption() {
                erased = true
                checksum = .partial
            }
            if kept == nil && !erased && sequenceOffset == .zero && acknowledgmentOffset == .zero {
                return .accept
            }
            let readOnly = view.readOnly
            try FlowRewrite(source: readOnly.sourceEndpoint, destination: readOnly.destinationEndpoint,
                            sequenceOffset: sequenceOffset, acknowledgmentOffset: acknowledgmentOffset)
                .apply(to: packet, checksum: checksum)
            return .acceptModified(length: length)
        } catch {
            return .drop
        }
    }
}
