// rackd — the last bytes the local socket sent toward a rock, for the go-back-N of a reconnection
// (docs/rocks.md §5.4, §15).
//
// A rock's kernel acknowledges bytes its application has not read yet. When the connection breaks, those
// bytes die with the rock's socket, and the local socket, which saw them acknowledged, no longer has
// them. So rackd copies every byte the socket sends as it passes the queue, and after a reconnection
// resends, as its own bytes, those between the rock's reported position and the socket's snd_una.
//
// Its size is rocks' own `maxsnd` (docs/rocks.md §3.3, §9 item 7): the send window plus the rock's
// SO_RCVBUF, 65536 + 65536. A rock that reports a position older than the ring keeps cannot be
// recovered: its connection is ended on both sides (Connection+RocksReconnection.swift).

struct RocksSendRing: Equatable {
    static let capacity = 131_072

    /// The socket position one past the newest byte kept.
    private(set) var end: TCPSequenceNumber
    /// The bytes kept, oldest first, ending at `end`. At most `capacity`.
    private var bytes: [UInt8] = []
    /// Where the oldest kept byte sits in `bytes` once it wrapped (a ring, to keep copies O(n)).
    private var head = 0

    /// An empty ring whose first byte will be the socket's byte at `start`.
    init(start: TCPSequenceNumber) {
        end = start
    }

    /// How many bytes are kept, ending at `end`.
    var count: Int { bytes.count }

    /// Takes a segment's payload at socket position `sequence`. Bytes already kept are skipped; a segment
    /// past a gap (a byte the ring never saw) starts the ring again from it, since what lies before the
    /// gap can no longer be resent whole.
    mutating func record(_ payload: UnsafeRawBufferPointer, at sequence: TCPSequenceNumber) {
        guard !payload.isEmpty else { return }
        let already = end - sequence
        if already < 0 {
            bytes.removeAll(keepingCapacity: true)
            head = 0
            end = sequence
            append(payload[...])
            return
        }
        guard Int(already) < payload.count else { return }
        append(payload[Int(already)...])
    }

    private mutating func append(_ fresh: Slice<UnsafeRawBufferPointer>) {
        var source = fresh.suffix(Self.capacity)
        if bytes.count < Self.capacity {
            // Not wrapped yet (`head` is 0): grow.
            let room = source.prefix(Self.capacity - bytes.count)
            bytes.append(contentsOf: room)
            source = source.dropFirst(room.count)
        }
        while !source.isEmpty {
            // Full: overwrite the oldest bytes, in at most two runs.
            let run = source.prefix(Self.capacity - head)
            bytes.replaceSubrange(head..<head + run.count, with: run)
            head = (head + run.count) % Self.capacity
            source = source.dropFirst(run.count)
        }
        end = end + UInt32(fresh.count)
    }

    /// The bytes from socket position `from` up to (not including) `to`, or nil if the ring does not hold
    /// them all.
    func bytes(from: TCPSequenceNumber, to: TCPSequenceNumber) -> [UInt8]? {
        let length = to - from
        let back = end - from
        guard length >= 0, back >= 0, Int(back) <= bytes.count, (end - to) >= 0 else { return nil }
        let startIndex = bytes.count - Int(back)
        return (0..<Int(length)).map { bytes[(head + startIndex + $0) % bytes.count] }
    }
}

/// Persisted (Persistence/) as its end and its bytes oldest first, in hex: a JSON array of 131072
/// numbers would be four times the size and much slower to read back.
extension RocksSendRing: Codable {
    private enum CodingKeys: String, CodingKey { case end, bytes }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let hex = try container.decode(String.self, forKey: .bytes)
        guard let kept = HexBytes.decode(hex), kept.count <= Self.capacity else {
            throw DecodingError.dataCorruptedError(forKey: .bytes, in: container,
                                                   debugDescription: "not hex, or more than \(Self.capacity) bytes")
        }
        end = try container.decode(TCPSequenceNumber.self, forKey: .end)
        bytes = kept
        head = 0
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(end, forKey: .end)
        let oldestFirst = Array(bytes[head...] + bytes[..<head])
        try container.encode(HexBytes.encode(oldestFirst), forKey: .bytes)
    }
}
