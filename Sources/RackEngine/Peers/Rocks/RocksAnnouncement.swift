// rackd — the rocks 2.4 Enhancement Detection Protocol's announcement (docs/rocks.md, §2).
//
// Rocks knows its peers by 16 fixed bytes, "IROCKYOUROCKMAN" and a NUL, the same in every rocks 2.4
// process. A rocks server answers a probe (a connection whose client sent a FIN and no data) with them
// and a FIN; on the data connection the client sends them first and the server repeats them, in a
// segment of its own, after whatever its application already wrote. Rocks compares them with
// strncmp(…, 16), so the NUL is part of the match.

/// The rocks 2.4 announcement.
public enum RocksAnnouncement {
    public static let bytes: [UInt8] = Array("IROCKYOUROCKMAN".utf8) + [0]

    /// Whether `tail` (the last bytes seen, at most 16) ends a stream the way a rocks server ends its
    /// answer to a probe: the last 16 bytes are the announcement.
    public static func endsProbeAnswer(_ received: [UInt8]) -> Bool {
        received.count >= bytes.count && Array(received.suffix(bytes.count)) == bytes
    }

    /// What a client's first bytes say about it, as a rocks server judges them (docs/rocks.md, §2.3).
    public enum Opening: Equatable, Sendable {
        /// Too few bytes yet, and all of them match the announcement's start.
        case undecided
        /// The full announcement: a rocks client's data connection.
        case rock
        /// Anything else: an ordinary client.
        case ordinary
    }

    public static func judge(_ first: [UInt8]) -> Opening {
        let count = min(first.count, bytes.count)
        guard first.prefix(count).elementsEqual(bytes.prefix(count)) else { return .ordinary }
        return count == bytes.count ? .rock : .undecided
    }
}
