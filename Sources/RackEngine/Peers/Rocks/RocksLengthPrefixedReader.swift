// rackd — one u32be-length-prefixed message of a fixed size, read in pieces of any size (docs/rocks.md,
// §5.3).
//
// Rocks' authentication messages are a u32be length and that many bytes. Rocks itself reads the length
// into a signed int, checks it only against its 128-byte buffer and then reads that many bytes into the
// buffer: a "negative" length from a peer that has not authenticated yet overflows its stack. rackd knows
// the one length a genuine rock sends (40 for a challenge, 32 for a response), so the reader checks the
// length field as soon as its four bytes are in, before it takes a single byte of the body, and takes
// nothing past the message.

/// Reads one length-prefixed message whose length must be exactly `expectedLength`.
public struct RocksLengthPrefixedReader: Sendable, Codable {
    /// The only length accepted.
    public let expectedLength: Int
    /// What the message is, for errors ("challenge", "response").
    public let what: String
    private var buffer: [UInt8] = []
    private var failure: WireError?
    /// The message's body, once complete.
    public private(set) var result: [UInt8]?

    public init(expectedLength: Int, what: String) {
        self.expectedLength = expectedLength
        self.what = what
    }

    /// Takes the next bytes of the peer's stream and returns how many of them the message used (the rest
    /// is the peer's next message). Throws when the length field is not `expectedLength`, and again on
    /// every later call: a refused message leaves the reader dead. Takes nothing once `result` is set.
    public mutating func take(_ bytes: some Collection<UInt8>) throws(WireError) -> Int {
        if let failure { throw failure }
        guard result == nil else { return 0 }
        var rest = bytes[...]
        var used = 0
        if buffer.count < 4 {
            let field = rest.prefix(4 - buffer.count)
            buffer += field
            used += field.count
            rest = rest.dropFirst(field.count)
            guard buffer.count == 4 else { return used }
            let length = UInt32(buffer[0]) << 24 | UInt32(buffer[1]) << 16 | UInt32(buffer[2]) << 8 | UInt32(buffer[3])
            guard length == UInt32(expectedLength) else {
                let error = WireError(.badMessage, "rocks \(what) length \(length) (\(Int32(bitPattern: length)) as rocks "
                    + "reads it); a genuine rock sends \(expectedLength)")
                failure = error
                throw error
            }
        }
        let body = rest.prefix(4 + expectedLength - buffer.count)
        buffer += body
        used += body.count
        if buffer.count == 4 + expectedLength {
            result = Array(buffer[4...])
            buffer = []
        }
        return used
    }
}
