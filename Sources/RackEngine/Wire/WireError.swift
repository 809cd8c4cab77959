// rackd — the error thrown when bytes on the wire do not form the packet a view expects.
//
// Packets come from the network and from local applications, so any field may hold any value.
// Parsing never traps: every inconsistency becomes a `WireError` whose description names the field
// and the numbers involved, because "malformed packet" alone is useless in a log line.

/// A packet, header or option that cannot be parsed or emitted.
///
/// Match on ``kind`` (an extensible set of static values, like `NIOSSHError`); the description adds the
/// field and the numbers, e.g. "TCP data offset 4 words is below the minimum 5".
public struct WireError: Error, CustomStringConvertible, Codable {
    /// What went wrong, without the details. New kinds may be added; switch with a `default:`.
    public struct Kind: Hashable, Sendable, CustomStringConvertible, Codable {
        private enum Base: String, Hashable, Sendable, Codable {
            case truncated, badVersion, badHeaderLength, badTotalLength, badDataOffset, badOption, notTCP,
                fragmented, addressFamilyMismatch, bufferTooSmall, badMessage
        }

        private let base: Base

        private init(_ base: Base) { self.base = base }

        /// The buffer ends before a header, option or length field says it should.
        public static let truncated = Kind(.truncated)
        /// The IP version nibble is not the one the view handles.
        public static let badVersion = Kind(.badVersion)
        /// An IPv4 header length (IHL) is below 5 words or beyond the packet.
        public static let badHeaderLength = Kind(.badHeaderLength)
        /// An IPv4 total length or IPv6 payload length is inconsistent with the header or the buffer.
        public static let badTotalLength = Kind(.badTotalLength)
        /// A TCP data offset is below 5 words or beyond the segment.
        public static let badDataOffset = Kind(.badDataOffset)
        /// A TCP option has an impossible length, or an option to emit cannot be encoded.
        public static let badOption = Kind(.badOption)
        /// The packet is a well-formed IP packet whose upper layer is not TCP.
        public static let notTCP = Kind(.notTCP)
        /// The packet is an IP fragment; rackd only looks at whole TCP segments.
        public static let fragmented = Kind(.fragmented)
        /// A packet to emit has an IPv4 address on one end and an IPv6 address on the other.
        public static let addressFamilyMismatch = Kind(.addressFamilyMismatch)
        /// The buffer given to an `emit(into:)` is shorter than the packet.
        public static let bufferTooSmall = Kind(.bufferTooSmall)

        /// A peer protocol's message (in a rocks stream, say) has a field no correct sender writes.
        public static let badMessage = Kind(.badMessage)

        /// The kind's name, e.g. "truncated".
        public var description: String { base.rawValue }
    }

    /// What went wrong.
    public let kind: Kind
    private let detail: String

    /// Creates an error of `kind` with a sentence that names the field and the numbers.
    public init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    /// The field and numbers involved, e.g. "TCP data offset 4 words is below the minimum 5".
    public var description: String { "\(kind): \(detail)" }
}

// MARK: - Cold-path constructors
//
// Kept out of line so the happy path of every parser stays small.

extension WireError {
    @inline(never)
    static func truncated(_ what: String, needs: Int, has: Int) -> WireError {
        WireError(.truncated, "\(what) needs \(needs) bytes but only \(has) are present")
    }

    @inline(never)
    static func badOption(_ detail: String) -> WireError {
        WireError(.badOption, detail)
    }
}
