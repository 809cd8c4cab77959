// rackd — read-only and writable views over a TCP segment (RFC 9293 §3.1).
//
// A view covers exactly one segment, header plus payload, as bounded by the IP layer: the TCP checksum
// covers every byte of it. Sequence and acknowledgment rewriting happens here, in place, because a
// parse→emit round trip would drop what rackd does not model (URG, unknown options, reserved bits).

private enum Field {
    static let sourcePort = 0
    static let destinationPort = 2
    static let sequenceNumber = 4
    static let acknowledgmentNumber = 8
    static let dataOffsetAndFlags = 12
    static let window = 14
    static let checksum = 16
    static let urgentPointer = 18
    static let options = 20
    static let minimumHeaderLength = 20
}

// MARK: - Read-only view

/// A read-only view of a TCP segment: header fields, options and payload, read in place.
public struct TCPHeaderView {
    /// The segment: the TCP header, then the payload. Its count is the segment length the pseudo-header
    /// sum must use.
    public let bytes: UnsafeRawBufferPointer

    /// Wraps `bytes` without checking anything; use this only on buffers rackd filled itself.
    public init(unchecked bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after checking that the fixed header fits and the data offset is at least 5 words
    /// and within the segment. Options are checked only when iterated.
    public init(validating bytes: UnsafeRawBufferPointer) throws(WireError) {
        try Self.validate(bytes)
        self.bytes = bytes
    }

    static func validate(_ bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Field.minimumHeaderLength else {
            throw .truncated("TCP header", needs: Field.minimumHeaderLength, has: bytes.count)
        }
        let words = Int(bytes[Field.dataOffsetAndFlags] >> 4)
        guard words >= 5 else {
            throw WireError(.badDataOffset, "TCP data offset \(words) words is below the minimum 5")
        }
        guard words * 4 <= bytes.count else {
            throw WireError(
                .badDataOffset,
                "TCP data offset \(words) words (\(words * 4) bytes) exceeds the \(bytes.count)-byte segment")
        }
    }

    /// The source port.
    public var sourcePort: UInt16 { bytes.loadBigEndian(fromByteOffset: Field.sourcePort, as: UInt16.self) }

    /// The destination port.
    public var destinationPort: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.destinationPort, as: UInt16.self)
    }

    /// The sequence number of the first byte of this segment (of the SYN, if set).
    public var sequenceNumber: TCPSequenceNumber {
        TCPSequenceNumber(bytes.loadBigEndian(fromByteOffset: Field.sequenceNumber, as: UInt32.self))
    }

    /// The next sequence number the sender expects; meaningful when ``TCPFlags/ack`` is set.
    public var acknowledgmentNumber: TCPSequenceNumber {
        TCPSequenceNumber(bytes.loadBigEndian(fromByteOffset: Field.acknowledgmentNumber, as: UInt32.self))
    }

    /// The header length in 32-bit words, 5 to 15.
    public var dataOffset: UInt8 { bytes[Field.dataOffsetAndFlags] >> 4 }

    /// The header length in bytes, options included.
    public var headerLength: Int { Int(dataOffset) * 4 }

    /// The control bits, reserved bits included.
    public var flags: TCPFlags {
        TCPFlags(rawValue: bytes.loadBigEndian(fromByteOffset: Field.dataOffsetAndFlags, as: UInt16.self))
    }

    /// The receive window, not yet scaled.
    public var window: UInt16 { bytes.loadBigEndian(fromByteOffset: Field.window, as: UInt16.self) }

    /// The checksum as stored.
    public var checksum: UInt16 { bytes.loadBigEndian(fromByteOffset: Field.checksum, as: UInt16.self) }

    /// The urgent pointer; meaningful when ``TCPFlags/urg`` is set.
    public var urgentPointer: UInt16 {
        bytes.loadBigEndian(fromByteOffset: Field.urgentPointer, as: UInt16.self)
    }

    /// The option bytes between the fixed header and ``headerLength``, undecoded.
    public var options: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[Field.options..<headerLength])
    }

    /// An iterator that decodes ``options`` one at a time without allocating.
    public func makeOptionIterator() -> TCPOptionIterator {
        TCPOptionIterator(options)
    }

    /// The timestamp value (TSval) of the timestamps option, if the segment carries a well-formed one.
    public var timestampValue: UInt32? {
        var iterator = makeOptionIterator()
        while let option = try? iterator.next() {
            if case .timestamps(let value, _) = option { return value }
        }
        return nil
    }

    /// The payload: everything after the header.
    public var payload: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[headerLength...])
    }

    /// Whether the checksum is complete and correct: pseudo-header, header and payload sum to `0xFFFF`.
    ///
    /// - Parameter pseudoHeaderSum: from ``InternetChecksum/pseudoHeaderIPv4(source:destination:protocol:length:)``
    ///   or the IPv6 form, with `length` equal to `bytes.count`.
    public func verifyChecksum(pseudoHeaderSum: UInt32) -> Bool {
        InternetChecksum.fold(InternetChecksum.sum(bytes, initial: pseudoHeaderSum)) == 0xFFFF
    }

    /// Whether the checksum field holds just the folded pseudo-header sum, as Linux leaves it for
    /// `CHECKSUM_PARTIAL` (`th->check = ~tcp_v4_check(len, saddr, daddr, 0)`), for the hardware or
    /// `skb_checksum_help` to finish. NFQUEUE flags such packets with `NFQA_SKB_CSUMNOTREADY`.
    public func verifyPartialChecksum(pseudoHeaderSum: UInt32) -> Bool {
        checksum == InternetChecksum.fold(pseudoHeaderSum)
    }
}

// MARK: - Writable view

/// A writable view of a TCP segment, for rewriting segments in place and for filling new ones.
///
/// Every getter of ``TCPHeaderView`` is here too, with a setter that leaves the checksum alone. Two ways
/// to keep the checksum right after changes:
/// - ``fillChecksum(pseudoHeaderSum:)`` recomputes it over the whole segment. Always correct, and the
///   only correct way for a segment that arrived with a partial checksum (``TCPChecksumState/partial``):
///   once rackd returns modified bytes, the kernel will not finish a partial checksum.
/// - The `set…(_:updatingChecksum: true)` setters adjust it in O(1) (RFC 1624). They are correct only if
///   the checksum was complete and correct before the change (``TCPChecksumState/complete``).
public struct MutableTCPHeaderView {
    /// The segment: the TCP header, then the payload.
    public let bytes: UnsafeMutableRawBufferPointer

    /// Wraps `bytes` without checking anything, e.g. a buffer about to be filled with a new segment.
    public init(unchecked bytes: UnsafeMutableRawBufferPointer) {
        self.bytes = bytes
    }

    /// Wraps `bytes` after the checks of ``TCPHeaderView/init(validating:)``.
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try TCPHeaderView.validate(UnsafeRawBufferPointer(bytes))
        self.bytes = bytes
    }

    /// The same bytes, read-only.
    public var readOnly: TCPHeaderView { TCPHeaderView(unchecked: UnsafeRawBufferPointer(bytes)) }

    // MARK: Plain setters (checksum untouched)

    /// The source port.
    public var sourcePort: UInt16 {
        get { readOnly.sourcePort }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.sourcePort) }
    }

    /// The destination port.
    public var destinationPort: UInt16 {
        get { readOnly.destinationPort }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.destinationPort) }
    }

    /// The sequence number.
    public var sequenceNumber: TCPSequenceNumber {
        get { readOnly.sequenceNumber }
        nonmutating set { bytes.storeBigEndian(newValue.rawValue, toByteOffset: Field.sequenceNumber) }
    }

    /// The acknowledgment number.
    public var acknowledgmentNumber: TCPSequenceNumber {
        get { readOnly.acknowledgmentNumber }
        nonmutating set { bytes.storeBigEndian(newValue.rawValue, toByteOffset: Field.acknowledgmentNumber) }
    }

    /// The header length in 32-bit words; only the low four bits of a new value are stored.
    public var dataOffset: UInt8 {
        get { readOnly.dataOffset }
        nonmutating set {
            bytes[Field.dataOffsetAndFlags] = (newValue << 4) | (bytes[Field.dataOffsetAndFlags] & 0x0F)
        }
    }

    /// The header length in bytes, options included.
    public var headerLength: Int { readOnly.headerLength }

    /// The control bits, reserved bits included; the data offset is kept.
    public var flags: TCPFlags {
        get { readOnly.flags }
        nonmutating set { bytes.storeBigEndian(flagsWord(newValue), toByteOffset: Field.dataOffsetAndFlags) }
    }

    /// The receive window, not yet scaled.
    public var window: UInt16 {
        get { readOnly.window }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.window) }
    }

    /// The checksum as stored.
    public var checksum: UInt16 {
        get { readOnly.checksum }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.checksum) }
    }

    /// The urgent pointer.
    public var urgentPointer: UInt16 {
        get { readOnly.urgentPointer }
        nonmutating set { bytes.storeBigEndian(newValue, toByteOffset: Field.urgentPointer) }
    }

    /// The option bytes, writable in place (e.g. to shift SACK blocks).
    public var options: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[Field.options..<headerLength])
    }

    /// The payload, writable.
    public var payload: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(rebasing: bytes[headerLength...])
    }

    // MARK: Checksums

    /// Whether the checksum is complete and correct.
    public func verifyChecksum(pseudoHeaderSum: UInt32) -> Bool {
        readOnly.verifyChecksum(pseudoHeaderSum: pseudoHeaderSum)
    }

    /// Whether the checksum field holds just the folded pseudo-header sum (a partial checksum).
    public func verifyPartialChecksum(pseudoHeaderSum: UInt32) -> Bool {
        readOnly.verifyPartialChecksum(pseudoHeaderSum: pseudoHeaderSum)
    }

    /// Computes the full checksum over pseudo-header, header and payload, and stores it.
    public func fillChecksum(pseudoHeaderSum: UInt32) {
        checksum = 0
        checksum = InternetChecksum.finish(
            InternetChecksum.sum(UnsafeRawBufferPointer(bytes), initial: pseudoHeaderSum))
    }

    /// Stores the folded pseudo-header sum alone, as Linux does for `CHECKSUM_PARTIAL`. Useful to build
    /// test packets and to hand a packet back in the state it came in.
    public func fillPartialChecksum(pseudoHeaderSum: UInt32) {
        checksum = InternetChecksum.fold(pseudoHeaderSum)
    }

    /// Adjusts a complete checksum after the pseudo-header changed (an address, or the segment length),
    /// in O(1). Pass the old and new sums from `InternetChecksum.pseudoHeaderIPv4/IPv6`.
    public func updateChecksum(pseudoHeaderSumChangedFrom old: UInt32, to new: UInt32) {
        checksum = InternetChecksum.incrementalUpdate(
            checksum: checksum, old: InternetChecksum.fold(old), new: InternetChecksum.fold(new))
    }

    // MARK: Setters that can keep a complete checksum right in O(1)

    /// Sets the source port; with `updatingChecksum`, adjusts a complete checksum to match (RFC 1624).
    public func setSourcePort(_ port: UInt16, updatingChecksum: Bool) {
        replace16(at: Field.sourcePort, with: port, updatingChecksum: updatingChecksum)
    }

    /// Sets the destination port; with `updatingChecksum`, adjusts a complete checksum to match.
    public func setDestinationPort(_ port: UInt16, updatingChecksum: Bool) {
        replace16(at: Field.destinationPort, with: port, updatingChecksum: updatingChecksum)
    }

    /// Sets the sequence number; with `updatingChecksum`, adjusts a complete checksum to match.
    public func setSequenceNumber(_ number: TCPSequenceNumber, updatingChecksum: Bool) {
        replace32(at: Field.sequenceNumber, with: number.rawValue, updatingChecksum: updatingChecksum)
    }

    /// Sets the acknowledgment number; with `updatingChecksum`, adjusts a complete checksum to match.
    public func setAcknowledgmentNumber(_ number: TCPSequenceNumber, updatingChecksum: Bool) {
        replace32(at: Field.acknowledgmentNumber, with: number.rawValue, updatingChecksum: updatingChecksum)
    }

    /// Sets the control bits (keeping the data offset); with `updatingChecksum`, adjusts a complete
    /// checksum to match.
    public func setFlags(_ flags: TCPFlags, updatingChecksum: Bool) {
        replace16(at: Field.dataOffsetAndFlags, with: flagsWord(flags), updatingChecksum: updatingChecksum)
    }

    /// Sets the window; with `updatingChecksum`, adjusts a complete checksum to match.
    public func setWindow(_ window: UInt16, updatingChecksum: Bool) {
        replace16(at: Field.window, with: window, updatingChecksum: updatingChecksum)
    }

    /// Sets the urgent pointer; with `updatingChecksum`, adjusts a complete checksum to match.
    public func setUrgentPointer(_ pointer: UInt16, updatingChecksum: Bool) {
        replace16(at: Field.urgentPointer, with: pointer, updatingChecksum: updatingChecksum)
    }

    /// Moves every SACK block edge into another sequence space, in place; with `updatingChecksum`,
    /// adjusts a complete checksum to match. Throws if the options are malformed, changing nothing.
    ///
    /// Acknowledgment-side rewriting needs this: SACK blocks name sequence numbers of the peer's
    /// stream, so they shift with the acknowledgment number.
    public func shiftSACKBlocks(by offset: TCPSequenceOffset, updatingChecksum: Bool) throws(WireError) {
        guard let location = try TCPOptions.locateSACKBlocks(in: UnsafeRawBufferPointer(options)) else { return }
        for edge in 0..<location.count * 2 {
            let fieldOffset = Field.options + location.offset + edge * 4
            let old = TCPSequenceNumber(bytes.loadBigEndian(fromByteOffset: fieldOffset, as: UInt32.self))
            replace32(at: fieldOffset, with: old.shifted(by: offset).rawValue, updatingChecksum: updatingChecksum)
        }
    }

    /// Overwrites the SACK option, if there is one, with NOPs; returns whether there was one. The
    /// checksum is left stale: recompute it after. Throws if the options are malformed, changing nothing.
    public func eraseSACKOption() throws(WireError) -> Bool {
        guard let location = try TCPOptions.locateSACKBlocks(in: UnsafeRawBufferPointer(options)) else { return false }
        let start = Field.options + location.offset - 2
        for index in start..<(Field.options + location.offset + location.count * 8) { bytes[index] = 1 }
        return true
    }

    // MARK: Helpers

    private func flagsWord(_ flags: TCPFlags) -> UInt16 {
        UInt16(bytes[Field.dataOffsetAndFlags] & 0xF0) << 8 | flags.rawValue
    }

    private func replace16(at offset: Int, with new: UInt16, updatingChecksum: Bool) {
        if updatingChecksum {
            // Every 16-bit field of the fixed header sits at an even offset, so it is one checksum word.
            let old = bytes.loadBigEndian(fromByteOffset: offset, as: UInt16.self)
            checksum = InternetChecksum.incrementalUpdate(checksum: checksum, old: old, new: new)
        }
        bytes.storeBigEndian(new, toByteOffset: offset)
    }

    private func replace32(at offset: Int, with new: UInt32, updatingChecksum: Bool) {
        if updatingChecksum {
            let old = bytes.loadBigEndian(fromByteOffset: offset, as: UInt32.self)
            if offset % 2 == 0 {
                checksum = InternetChecksum.incrementalUpdate(checksum: checksum, old: old, new: new)
            } else {
                // A field at an odd offset (a SACK block after a lone NOP) straddles checksum words: each
                // byte lands in the other half of its word, which rotates its contribution by 8 bits
                // (RFC 1071 §2(B)). Fold the field to 16 bits and swap the bytes to match.
                func contribution(_ value: UInt32) -> UInt16 {
                    InternetChecksum.fold((value >> 16) + (value & 0xFFFF)).byteSwapped
                }
                checksum = InternetChecksum.incrementalUpdate(
                    checksum: checksum, old: contribution(old), new: contribution(new))
            }
        }
        bytes.storeBigEndian(new, toByteOffset: offset)
    }
}
