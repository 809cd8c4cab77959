// rackd — cutting a queued segment down to part of its payload, in place (docs/rocks.md §14: a segment
// that straddles the rock's own bytes, or rackd's insertion point, is cut).
//
// The kept bytes move to the front of the payload, the sequence number moves with them, and the IP
// length shrinks. A FIN survives only if the payload's end is kept. Checksums are left stale: the caller
// rewrites the packet next with a full checksum (`FlowRewrite.apply` with `.partial`).

enum SegmentTrim {
    /// Keeps `kept` (a range of payload offsets) of the packet in `bytes`; returns the packet's new length.
    /// `droppingFIN` takes the FIN off even when the payload's end is kept.
    static func keepPayload(_ kept: Range<Int>, of bytes: UnsafeMutableRawBufferPointer, droppingFIN: Bool = false)
        throws(WireError) -> Int
    {
        let packet = try MutableIPPacketView(validating: bytes)
        let tcp = packet.tcp
        let payloadCount = tcp.payload.count
        precondition(kept.lowerBound >= 0 && kept.upperBound <= payloadCount, "kept range outside the payload")
        let payloadStart = tcp.bytes.baseAddress! - bytes.baseAddress! + tcp.headerLength
        if kept.lowerBound > 0 {
            let payload = tcp.payload
            if !kept.isEmpty {
                UnsafeMutableRawBufferPointer(rebasing: payload[0..<kept.count])
                    .copyMemory(from: UnsafeRawBufferPointer(rebasing: payload[kept]))
            }
            tcp.setSequenceNumber(tcp.readOnly.sequenceNumber + UInt32(kept.lowerBound), updatingChecksum: false)
        }
        if kept.upperBound < payloadCount || droppingFIN {
            var flags = tcp.readOnly.flags
            flags.remove(.fin)
            tcp.setFlags(flags, updatingChecksum: false)
        }
        let length = payloadStart + kept.count
        switch packet.ip {
        case .v4(let header): header.totalLength = UInt16(length)
        case .v6(let header): header.payloadLength = UInt16(length - 40)
        }
        return length
    }
}
