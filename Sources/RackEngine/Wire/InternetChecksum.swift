// rackd — the Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//
// IPv4 headers and TCP segments carry the one's complement of the one's complement sum of their 16-bit
// words. These are pure functions over bytes, combined by the views: `finish(sum(segment, initial:
// pseudoHeader))`. Rewriting a sequence number must not cost a pass over the payload, hence the
// incremental update.

/// Pure functions that compute and update Internet checksums.
///
/// A *sum* here is the one's complement sum of 16-bit big-endian words, kept folded to 16 bits in a
/// `UInt32` so sums can be added together and folded again. A *checksum* is the complement of a folded
/// sum, as written into the header.
public enum InternetChecksum {
    /// The one's complement sum of `bytes`, taken as big-endian 16-bit words, added to `initial`.
    ///
    /// An odd final byte is padded with a zero byte on the right (RFC 1071 §4.1). The result is folded
    /// to at most `0xFFFF`.
    public static func sum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0) -> UInt32 {
        // Add 64-bit words with end-around carry: 2^64 ≡ 1 (mod 2^16 − 1), so this is the same one's
        // complement sum as adding 16-bit words, four times fewer additions.
        var accumulator = UInt64(initial)
        var offset = 0
        let count = bytes.count
        while count - offset >= 8 {
            let word = bytes.loadBigEndian(fromByteOffset: offset, as: UInt64.self)
            let (partial, overflow) = accumulator.addingReportingOverflow(word)
            accumulator = partial &+ (overflow ? 1 : 0)
            offset += 8
        }
        var tail: UInt64 = 0
        while count - offset >= 2 {
            tail += UInt64(bytes.loadBigEndian(fromByteOffset: offset, as: UInt16.self))
            offset += 2
        }
        if offset < count {
            tail += UInt64(bytes[offset]) << 8
        }
        let (partial, overflow) = accumulator.addingReportingOverflow(tail)
        accumulator = partial &+ (overflow ? 1 : 0)
        return UInt32(fold64(accumulator))
    }

    /// The one's complement sum of two sums.
    public static func combine(_ first: UInt32, _ second: UInt32) -> UInt32 {
        UInt32(fold64(UInt64(first) + UInt64(second)))
    }

    /// Folds a sum to 16 bits by adding the carries back in (end-around carry).
    public static func fold(_ sum: UInt32) -> UInt16 {
        fold64(UInt64(sum))
    }

    /// The checksum to write into a header: the complement of the folded sum.
    public static func finish(_ sum: UInt32) -> UInt16 {
        ~fold(sum)
    }

    /// The sum of the IPv4 pseudo-header (RFC 9293 §3.1): addresses, zero, protocol and the upper-layer
    /// length in bytes (TCP header plus payload).
    public static func pseudoHeaderIPv4(
        source: IPv4Address,
        destination: IPv4Address,
        protocol: IPProtocol,
        length: UInt16
    ) -> UInt32 {
        let words: UInt64 =
            UInt64(source.rawValue) + UInt64(destination.rawValue) + UInt64(`protocol`.rawValue) + UInt64(length)
        return UInt32(fold64(words))
    }

    /// The sum of the IPv6 pseudo-header (RFC 8200 §8.1): addresses, the 32-bit upper-layer length and
    /// the next-header value of the upper layer (not of any extension header).
    public static func pseudoHeaderIPv6(
        source: IPv6Address,
        destination: IPv6Address,
        protocol: IPProtocol,
        length: UInt32
    ) -> UInt32 {
        // Split each 64-bit half into 32-bit words so the additions cannot overflow.
        func words(_ half: UInt64) -> UInt64 { (half >> 32) + (half & 0xFFFF_FFFF) }
        let accumulator =
            words(source.high) + words(source.low) + words(destination.high) + words(destination.low)
            + UInt64(length) + UInt64(`protocol`.rawValue)
        return UInt32(fold64(accumulator))
    }

    /// The checksum after one 16-bit word it covers changed from `old` to `new`, without re-reading
    /// the data: `HC' = ~(~HC + ~m + m')`, RFC 1624 equation 3.
    ///
    /// Equation 3 (unlike RFC 1141's `HC - ~m - m'`) gives `0x0000`, never `0xFFFF`, when the new sum
    /// is `0xFFFF`, matching a full recompute. `old` and `new` may also be folded sums of several words
    /// (e.g. the pseudo-header sums before and after an address change).
    ///
    /// Only valid when `checksum` is a complete, correct checksum. A TCP checksum that holds only the
    /// pseudo-header sum (Linux `CHECKSUM_PARTIAL`, NFQUEUE `CSUMNOTREADY`) must be refilled in full.
    public static func incrementalUpdate(checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        ~fold64(UInt64(~checksum) + UInt64(~old) + UInt64(new))
    }

    /// The checksum after one 32-bit field it covers (two 16-bit words, e.g. a sequence number) changed
    /// from `old` to `new`. The same rules as the 16-bit form apply.
    public static func incrementalUpdate(checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let oldWords = UInt64(~UInt16(truncatingIfNeeded: old >> 16)) + UInt64(~UInt16(truncatingIfNeeded: old))
        let newWords = UInt64(new >> 16) + UInt64(new & 0xFFFF)
        return ~fold64(UInt64(~checksum) + oldWords + newWords)
    }

    private static func fold64(_ value: UInt64) -> UInt16 {
        var sum = value
        while sum > 0xFFFF {
            sum = (sum & 0xFFFF) + (sum >> 16)
        }
        return UInt16(sum)
    }
}

/// Whether rackd checks the checksums of packets it reads, as a setting rather than a code path
/// (smoltcp's `ChecksumCapabilities`).
public enum ChecksumPolicy: Hashable, Sendable {
    /// Check every IPv4 header checksum and every complete TCP checksum; treat a mismatch as corruption.
    case verify
    /// Assume checksums are right: the kernel validated them, or a fuzzer must get past them.
    case trust
}

/// What a packet's TCP checksum field holds when rackd receives it.
public enum TCPChecksumState: Hashable, Sendable {
    /// The full checksum over pseudo-header, header and payload.
    case complete
    /// Only the folded pseudo-header sum, uncomplemented: Linux `CHECKSUM_PARTIAL`, which NFQUEUE reports
    /// as `NFQA_SKB_CSUMNOTREADY` on locally generated packets. Hardware would finish it; after rackd
    /// hands back modified bytes nothing will, so a rewrite must fill the checksum in full.
    case partial
}
