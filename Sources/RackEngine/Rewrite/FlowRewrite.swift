// rackd — rewriting one direction of a resumed connection, in place (docs/architecture.md, "Data path":
// resumed with a new address, port or sequence offset; docs/protocol.md, "Mapping after a roam").
//
// After a resumption from a new address the original sockets keep their old 4-tuple and sequence
// space, while the wire carries the new one. Every packet is mapped between the two: addresses, ports,
// sequence number, acknowledgement number and SACK blocks. Options and payload are never re-encoded:
// the bytes are edited through the mutable views, so nothing the kernel wrote is lost.
//
// Checksums (docs/architecture.md, "Kernel facts: checksums"): a packet that arrived with a complete TCP checksum is updated
// incrementally (RFC 1624), field by field. A packet from the local OUTPUT path may carry only the
// pseudo-header sum (NFQA_SKB_CSUMNOTREADY); the kernel drops offload on any modified packet, so such a
// packet gets a full checksum computed over header and payload.

/// The mapping applied to one direction of a connection.
public struct FlowRewrite: Hashable, Sendable, CustomStringConvertible {
    /// The endpoints the rewritten packet carries.
    public var source: TCPEndpoint
    public var destination: TCPEndpoint
    /// Added to the sequence number.
    public var sequenceOffset: TCPSequenceOffset
    /// Added to the acknowledgement number and to both edges of every SACK block.
    public var acknowledgmentOffset: TCPSequenceOffset

    public init(source: TCPEndpoint, destination: TCPEndpoint, sequenceOffset: TCPSequenceOffset,
                acknowledgmentOffset: TCPSequenceOffset) {
        self.source = source
        self.destination = destination
        self.sequenceOffset = sequenceOffset
        self.acknowledgmentOffset = acknowledgmentOffset
    }

    /// The mapping that undoes this one for a packet whose endpoints, before this rewrite, were
    /// `originalSource` and `originalDestination`.
    public func inverse(originalSource: TCPEndpoint, originalDestination: TCPEndpoint) -> FlowRewrite {
        FlowRewrite(source: originalSource, destination: originalDestination,
                    sequenceOffset: sequenceOffset.inverse, acknowledgmentOffset: acknowledgmentOffset.inverse)
    }

    public var description: String {
        "\(source)->\(destination) seq\(sequenceOffset) ack\(acknowledgmentOffset)"
    }

    /// Why a packet could not be rewritten in place.
    public static func familyMismatch(_ packet: IPPacketView, _ rewrite: FlowRewrite) -> WireError {
        WireError(.addressFamilyMismatch, "cannot rewrite \(packet.sourceEndpoint) to \(rewrite.source) in place")
    }

    /// Rewrites the packet in `bytes`. Throws, leaving `bytes` unspecified, if the packet is not TCP or
    /// the new endpoints are of another address family (mixed-family roaming needs a rebuilt header).
    public func apply(to bytes: UnsafeMutableRawBufferPointer, checksum: TCPChecksumState) throws(WireError) {
        let packet = try MutableIPPacketView(validating: bytes)
        let incremental = checksum == .complete
        let oldPseudoHeader = packet.pseudoHeaderSum
        switch (packet.ip, source.address, destination.address) {
        case (.v4(let header), .v4(let newSource), .v4(let newDestination)):
            header.source = newSource
            header.destination = newDestination
            header.fillHeaderChecksum()
        case (.v6(let header), .v6(let newSource), .v6(let newDestination)):
            header.source = newSource
            header.destination = newDestination
        default:
            throw Self.familyMismatch(packet.readOnly, self)
        }
        let tcp = packet.tcp
        tcp.setSourcePort(source.port, updatingChecksum: incremental)
        tcp.setDestinationPort(destination.port, updatingChecksum: incremental)
        tcp.setSequenceNumber(tcp.readOnly.sequenceNumber.shifted(by: sequenceOffset), updatingChecksum: incremental)
        if tcp.readOnly.flags.contains(.ack) {
            tcp.setAcknowledgmentNumber(tcp.readOnly.acknowledgmentNumber.shifted(by: acknowledgmentOffset),
                                        updatingChecksum: incremental)
        }
        try tcp.shiftSACKBlocks(by: acknowledgmentOffset, updatingChecksum: incremental)
        if incremental {
            tcp.updateChecksum(pseudoHeaderSumChangedFrom: oldPseudoHeader, to: packet.pseudoHeaderSum)
        } else {
            tcp.fillChecksum(pseudoHeaderSum: packet.pseudoHeaderSum)
        }
    }
}
