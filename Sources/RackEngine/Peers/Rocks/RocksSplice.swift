// rackd — where a rocks connection's own bytes sit in each direction of its stream (docs/rocks.md §3,
// §14).
//
// Toward a rock, rackd writes the announcement and its init messages into the local socket's stream,
// and takes the rock's out of it before the socket sees them. The socket's sequence numbers and the
// wire's therefore differ for the connection's whole life, by a splice in each direction:
//
//     outbound   socket ... P | P ...            rackd's L bytes go in at the socket's position P
//                wire   ... P | ours (L) | P+L ...
//     inbound    wire   ... Q | theirs (R) | Q+R ...   the rock's R bytes at wire position Q come out
//                socket ... Q | Q ...
//
// Below a splice point nothing moves (a banner written before it); above it everything moves by its
// length. In the client role the handshake's shift (RocksPeer.handshakeMapping, applied after the splice)
// cancels both lengths on the wire, so the socket's numbers above the points are the wire's. Acknowledgements are mapped the other way, and an acknowledgement that covers only part of
// rackd's bytes is, for the socket, an acknowledgement of nothing past P. `removed` grows while the
// rock's bytes are being read: the socket never acknowledges the rock's bytes itself, so its
// acknowledgement of Q becomes, on the wire, one of Q plus what rackd has taken.
//
// The splice points are fixed for the connection's life, but sequence numbers can be compared only
// within 2 GiB of each other. So once a direction is far past its point (`settlingDistance`: nothing
// below it can come again), it settles: from then on every number of it moves by the length, with no
// comparison, as a constant offset.

struct RocksSplice: Equatable, Codable {
    /// Outbound: the socket's position where rackd's bytes go in, once decided.
    var insertionPoint: TCPSequenceNumber?
    var insertedLength: UInt32 = 0
    /// Inbound: the wire position where the rock's bytes start, once found.
    var removalPoint: TCPSequenceNumber?
    /// How many of the rock's bytes rackd has taken, contiguous from `removalPoint`.
    var removedLength: UInt32 = 0
    /// Far past the insertion point (outbound) or the removal point (inbound): a constant offset now.
    var outboundSettled = false
    var inboundSettled = false

    /// How far past a point the acknowledged stream must be before the direction settles: far more than
    /// any window, far less than 2 GiB.
    static let settlingDistance: UInt32 = 16 << 20

    /// Settles the outbound direction once the rock acknowledged everything up to `settlingDistance` past
    /// rackd's bytes (the socket then never sends below the insertion point again).
    mutating func noteRockAcknowledged(_ acknowledgment: TCPSequenceNumber) {
        guard !outboundSettled, let point = insertionPoint else { return }
        let past = acknowledgment - (point + insertedLength)
        if past >= 0 && UInt32(past) >= Self.settlingDistance { outboundSettled = true }
    }

    /// Settles the inbound direction once the socket acknowledged everything up to `settlingDistance` past
    /// the rock's bytes, all of them taken (`complete`).
    mutating func noteSocketAcknowledged(_ acknowledgment: TCPSequenceNumber, complete: Bool) {
        guard !inboundSettled, complete, let end = removalEnd else { return }
        let past = acknowledgment - end
        if past >= 0 && UInt32(past) >= Self.settlingDistance { inboundSettled = true }
    }

    // MARK: Outbound (socket → wire)

    /// Where a socket segment starting at `sequence` with `length` sequence numbers (payload and FIN)
    /// goes: unmoved, moved by the inserted length, or cut at the insertion point (a retransmission
    /// that straddles it: the part before goes unmoved, the rest is retransmitted by the socket).
    enum Placement: Equatable, Codable {
        case unmoved
        case moved
        case cutAt(payloadLength: Int)
    }

    func placeOutbound(sequence: TCPSequenceNumber, length: Int) -> Placement {
        if outboundSettled { return .moved }
        guard let point = insertionPoint, insertedLength > 0 else { return .unmoved }
        let before = point - sequence  // how many of the segment's numbers lie before P
        if before <= 0 { return .moved }
        if Int(before) >= length { return .unmoved }
        return .cutAt(payloadLength: Int(before))
    }

    /// The wire sequence number of socket position `sequence`, at or after the insertion point.
    func outboundSequence(_ sequence: TCPSequenceNumber) -> TCPSequenceNumber {
        if outboundSettled { return sequence + insertedLength }
        guard let point = insertionPoint, sequence - point >= 0 else { return sequence }
        return sequence + insertedLength
    }

    /// The wire acknowledgement for the socket's acknowledgement `acknowledgment`.
    func outboundAcknowledgment(_ acknowledgment: TCPSequenceNumber) -> TCPSequenceNumber {
        if inboundSettled { return acknowledgment + removedLength }
        guard let point = removalPoint, acknowledgment - point >= 0 else { return acknowledgment }
        return acknowledgment + removedLength
    }

    // MARK: Inbound (wire → socket)

    /// The socket's acknowledgement for the wire's `acknowledgment`.
    func inboundAcknowledgment(_ acknowledgment: TCPSequenceNumber) -> TCPSequenceNumber {
        if outboundSettled { return acknowledgment - insertedLength }
        guard let point = insertionPoint else { return acknowledgment }
        let past = acknowledgment - point
        if past <= 0 { return acknowledgment }
        if UInt32(past) < insertedLength { return point }
        return acknowledgment - insertedLength
    }

    /// How many of rackd's inserted bytes the wire's `acknowledgment` covers.
    func insertedAcknowledged(by acknowledgment: TCPSequenceNumber) -> UInt32 {
        if outboundSettled { return insertedLength }
        guard let point = insertionPoint else { return 0 }
        let past = acknowledgment - point
        return past <= 0 ? 0 : min(UInt32(past), insertedLength)
    }

    /// The end of the rock's bytes taken so far, on the wire.
    var removalEnd: TCPSequenceNumber? { removalPoint.map { $0 + removedLength } }

    /// The socket sequence number for wire position `sequence`, at or after the removed bytes.
    func inboundSequence(_ sequence: TCPSequenceNumber) -> TCPSequenceNumber {
        if inboundSettled { return sequence - removedLength }
        guard let end = removalEnd, sequence - end >= 0 else { return sequence }
        return sequence - removedLength
    }
}
