// rackd — the control protocol's framing as a pure value: bytes go in as they arrive, in pieces of any
// size, and one request line comes out. rackd's control loop reads its clients without blocking, so a
// request may come a byte at a time; this is where the pieces become a line, without a socket, so that the
// unit tests and the control-requests fuzz target (Fuzz/fuzz-control-requests) can drive it directly.

/// Collects one line of at most `limit` bytes (its newline not counted).
public struct ControlLineReader: Sendable {
    /// What the bytes so far amount to.
    public enum Outcome: Sendable, Equatable {
        /// No newline yet, and fewer than `limit + 1` bytes: wait for more.
        case needMore
        /// The bytes before the first newline; whatever followed it is ignored (one request per connection).
        case line([UInt8])
        /// More than `limit` bytes arrived without a newline.
        case tooLong
    }

    public let limit: Int
    /// The bytes of the unfinished line; never more than `limit`.
    public private(set) var pending: [UInt8] = []

    public init(limit: Int) {
        precondition(limit >= 0, "a line limit cannot be negative")
        self.limit = limit
    }

    /// Takes the next piece of the stream. Once it has returned `.line` or `.tooLong` the reader is done;
    /// the caller stops reading.
    public mutating func append(_ bytes: some Collection<UInt8>) -> Outcome {
        // Only the part that can still belong to the line is looked at: a flood after the limit costs nothing.
        let room = limit + 1 - pending.count
        let piece = bytes.prefix(room)
        if let newline = piece.firstIndex(of: 0x0A) {
            let line = pending + piece[..<newline]
            pending = []
            return .line(line)
        }
        pending += piece
        return pending.count > limit ? .tooLong : .needMore
    }

    /// The stream ended: a line without its newline still counts (as `UnixSocket.readLine` has it); nil when
    /// nothing at all arrived.
    public func finish() -> [UInt8]? {
        pending.isEmpty ? nil : pending
    }
}
