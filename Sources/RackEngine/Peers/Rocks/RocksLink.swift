// rackd — one TCP connection of a rocks reconnection whose local end is rackd itself (docs/rocks.md
// §15). No kernel socket of rackd's carries a reconnection: the engine answers the rock's SYN to the
// reconnection port, or sends its own SYN to the rock's reconnection address, and speaks the pick, the
// challenge-response and the recovery messages as segments of its own, exactly as it writes the init on
// the data connection. Once the exchange is through, the link's tuple and sequence numbers become the
// mapping of the original socket (Connection+RocksReconnection.swift) and the link is forgotten.
//
// The handshake mirrors the local socket's: the same MSS and window scale (the socket's windows will
// travel on this tuple unchanged), no timestamps and no SACK (the socket's values would not match what
// the rock's new socket saw here; a Linux receiver ignores options the handshake did not agree).
//
// Bytes rackd writes are retransmitted until acknowledged, within the rock's window. Bytes from the rock
// are taken in order, up to `receiveLimit`: what the exchange reads, and no more. Anything after it (the
// rock's go-back-N) stays unacknowledged, so the rock sends it again once the link is the socket's.

struct RocksLink: Equatable, Codable {
    enum Opening: Equatable, Codable {
        /// rackd sent the SYN, to the rock's reconnection address.
        case active
        /// The rock's SYN came to rackd's reconnection port.
        case passive
    }

    enum Phase: Equatable, Codable {
        case synSent
        case synReceived
        case established
    }

    /// Local: rackd's reconnection endpoint; remote: the rock's.
    let flow: FlowKey
    let opening: Opening
    let ourISN: TCPSequenceNumber
    var phase: Phase
    let startedAt: EngineInstant
    /// What rackd announces: the local socket's.
    let windowScale: UInt8
    let maximumSegmentSize: UInt16
    let window: UInt16

    /// The rock's side, once its SYN or SYN-ACK came.
    var rockISN: TCPSequenceNumber?
    var rockWindowScale: UInt8 = 0
    var rockMaximumSegmentSize: UInt16 = 536
    /// The rock's latest window, in bytes.
    var rockWindow: UInt32 = 0

    /// rackd's bytes on this link, one element of `writeEnds` per write; how many the rock acknowledged,
    /// and how many went out at least once.
    var outgoing: [UInt8] = []
    var writeEnds: [Int] = []
    var acknowledged = 0
    var sent = 0
    var retransmitAt: EngineInstant?
    var retransmitInterval = RocksPeer.initialRetransmissionInterval

    /// The rock's bytes taken, and those not yet read by the exchange.
    var received = 0
    var unread: [UInt8] = []
    /// How many of the rock's bytes the exchange may take.
    var receiveLimit: Int

    /// Links that are not through their exchange by then are reset.
    static let lifetime: Duration = .seconds(10)
    /// The SYN of an active link is sent again this often until the rock answers.
    static let synInterval: Duration = .seconds(1)
    /// An exchange's bytes are small; its go-back-N is cut into segments of at most this, fewer if the
    /// rock's MSS is smaller (our segments carry 12 bytes of timestamps, as the socket's do).
    static let optionAllowance = 20

    // MARK: Opening

    /// rackd connects to the rock's reconnection address.
    static func connect(flow: FlowKey, isn: TCPSequenceNumber, socketOptions: HandshakeOptions, receiveLimit: Int,
                        now: EngineInstant) -> (RocksLink, TCPSegmentRepr) {
        var link = RocksLink(flow: flow, opening: .active, ourISN: isn, phase: .synSent, startedAt: now,
                             windowScale: socketOptions.windowScale, maximumSegmentSize: socketOptions.maximumSegmentSize,
                             window: 65535, receiveLimit: receiveLimit)
        link.retransmitAt = now + Self.synInterval
        return (link, link.handshakeSegment)
    }

    /// The rock's SYN to rackd's reconnection port. `receiveLimit` may be raised once the link is known.
    static func accept(_ packet: IPPacketView, flow: FlowKey, isn: TCPSequenceNumber, socketOptions: HandshakeOptions,
                       receiveLimit: Int, now: EngineInstant) -> (RocksLink, TCPSegmentRepr) {
        var link = RocksLink(flow: flow, opening: .passive, ourISN: isn, phase: .synReceived, startedAt: now,
                             windowScale: socketOptions.windowScale, maximumSegmentSize: socketOptions.maximumSegmentSize,
                             window: 65535, receiveLimit: receiveLimit)
        link.takeHandshake(packet)
        return (link, link.handshakeSegment)
    }

    /// Our SYN (active) or SYN-ACK (passive), also when sent again.
    var handshakeSegment: TCPSegmentRepr {
        let options: [TCPOption] = [.maximumSegmentSize(maximumSegmentSize), .noOperation, .windowScale(windowScale)]
        if let rockISN {
            return .synAck(from: flow.local, to: flow.remote, sequenceNumber: ourISN, acknowledgmentNumber: rockISN + 1,
                           window: window, options: options)
        }
        return .syn(from: flow.local, to: flow.remote, sequenceNumber: ourISN, window: window, options: options)
    }

    private mutating func takeHandshake(_ packet: IPPacketView) {
        let tcp = packet.tcp
        rockISN = tcp.sequenceNumber
        if let options = try? HandshakeOptions(tcp.options) {
            rockWindowScale = options.windowScale
            rockMaximumSegmentSize = options.maximumSegmentSize
        }
        rockWindow = UInt32(tcp.window)  // never scaled in a handshake segment
    }

    // MARK: Segments from the rock

    enum Outcome: Equatable {
        case nothing
        /// New bytes of the rock's are in `unread`.
        case bytes
        /// The rock refused rackd's SYN (it does not listen yet).
        case refused
        /// The rock reset or closed the link.
        case closed(String)
    }

    /// Takes one segment from the rock; the segments to send answer it.
    mutating func handle(_ packet: IPPacketView, now: EngineInstant, into segments: inout [TCPSegmentRepr]) -> Outcome {
        let tcp = packet.tcp
        if tcp.flags.contains(.rst) {
            // A reset for the SYN we sent (refused), or within the window: the link is over.
            if phase == .synSent {
                return tcp.flags.contains(.ack) && tcp.acknowledgmentNumber == ourISN + 1 ? .refused : .nothing
            }
            guard let rockISN else { return .nothing }
            let offset = tcp.sequenceNumber - (rockISN + 1 + UInt32(received))
            return offset >= 0 && offset <= 65535 << rockWindowScale ? .closed("reset by the rock") : .nothing
        }
        if tcp.flags.contains(.syn) {
            switch phase {
            case .synSent where tcp.flags.contains(.ack) && tcp.acknowledgmentNumber == ourISN + 1:
                takeHandshake(packet)
                phase = .established
                retransmitAt = nil
                segments.append(acknowledgment)
                sendNew(into: &segments, now: now)
            case .synReceived where !tcp.flags.contains(.ack):
                segments.append(handshakeSegment)  // its SYN again: our SYN-ACK was lost
            case .established:
                segments.append(acknowledgment)
            default:
                break
            }
            return .nothing
        }
        guard let rockISN, phase != .synSent else { return .nothing }
        guard tcp.flags.contains(.ack) else { return .nothing }
        let acknowledgedNow = tcp.acknowledgmentNumber - (ourISN + 1)
        if phase == .synReceived {
            guard acknowledgedNow >= 0 else { return .nothing }
            phase = .established
        }
        if acknowledgedNow >= 0 && Int(acknowledgedNow) <= outgoing.count {
            if Int(acknowledgedNow) > acknowledged {
                acknowledged = Int(acknowledgedNow)
                retransmitInterval = RocksPeer.initialRetransmissionInterval
                retransmitAt = acknowledged < outgoing.count ? now + retransmitInterval : nil
            }
            rockWindow = UInt32(tcp.window) << UInt32(rockWindowScale)
        }
        var outcome = Outcome.nothing
        let payload = tcp.payload
        let expected = rockISN + 1 + UInt32(received)
        let skip = expected - tcp.sequenceNumber
        if !payload.isEmpty || tcp.flags.contains(.fin) {
            if skip >= 0 && Int(skip) < payload.count {
                let room = receiveLimit - received
                let fresh = payload[Int(skip)...].prefix(max(0, room))
                if !fresh.isEmpty {
                    unread += fresh
                    received += fresh.count
                    outcome = .bytes
                }
            }
            let finAt = tcp.sequenceNumber + UInt32(payload.count)
            if tcp.flags.contains(.fin), finAt == rockISN + 1 + UInt32(received) {
                return .closed("closed by the rock")
            }
            segments.append(acknowledgment)
        }
        sendNew(into: &segments, now: now)
        return outcome
    }

    // MARK: Our bytes

    /// Writes, each sent as a segment of its own (as rocks writes them) once the rock's window allows.
    mutating func write(_ writes: [[UInt8]], now: EngineInstant, into segments: inout [TCPSegmentRepr]) {
        let limit = max(536, Int(rockMaximumSegmentSize) - Self.optionAllowance)
        for write in writes where !write.isEmpty {
            var start = 0
            while start < write.count {
                let piece = write[start..<min(write.count, start + limit)]
                outgoing += piece
                writeEnds.append(outgoing.count)
                start += piece.count
            }
        }
        sendNew(into: &segments, now: now)
    }

    /// Sends the writes not sent yet that fit in the rock's window.
    private mutating func sendNew(into segments: inout [TCPSegmentRepr], now: EngineInstant) {
        guard phase == .established else { return }
        let windowEnd = acknowledged + max(Int(rockWindow), 1)
        var writeStart = 0
        for end in writeEnds {
            defer { writeStart = end }
            guard end > sent else { continue }
            guard end <= windowEnd || writeStart == acknowledged else { break }
            segments.append(dataSegment(writeStart..<end))
            sent = end
        }
        if acknowledged < sent, retransmitAt == nil { retransmitAt = now + retransmitInterval }
    }

    /// Resends the SYN, or what the rock has not acknowledged, backing off.
    mutating func retransmit(now: EngineInstant, into segments: inout [TCPSegmentRepr]) {
        guard let due = retransmitAt, due <= now else { return }
        guard phase == .established else {
            // As rocks does, a SYN every second until the rock answers (its listener may not exist yet).
            retransmitAt = now + Self.synInterval
            segments.append(handshakeSegment)
            return
        }
        retransmitInterval = min(retransmitInterval * 2, RocksPeer.maximumRetransmissionInterval)
        retransmitAt = now + retransmitInterval
        var writeStart = 0
        for end in writeEnds {
            defer { writeStart = end }
            guard end > acknowledged, writeStart < sent else { continue }
            segments.append(dataSegment(writeStart..<end))
        }
        if acknowledged >= sent { retransmitAt = nil }
    }

    private func dataSegment(_ range: Range<Int>) -> TCPSegmentRepr {
        TCPSegmentRepr(source: flow.local, destination: flow.remote, sequenceNumber: ourISN + 1 + UInt32(range.lowerBound),
                       acknowledgmentNumber: receiveNext, flags: [.ack, .psh], window: window,
                       payload: Array(outgoing[range]))
    }

    /// The next byte rackd expects from the rock.
    var receiveNext: TCPSequenceNumber { (rockISN ?? TCPSequenceNumber(0)) + 1 + UInt32(received) }

    var acknowledgment: TCPSegmentRepr {
        .ack(from: flow.local, to: flow.remote, sequenceNumber: ourISN + 1 + UInt32(sent), acknowledgmentNumber: receiveNext,
             window: window)
    }

    /// A reset that ends the link on the rock's side.
    var reset: TCPSegmentRepr {
        .reset(from: flow.local, to: flow.remote, sequenceNumber: ourISN + 1 + UInt32(sent))
    }

    /// Takes the unread bytes.
    mutating func takeUnread() -> [UInt8] {
        defer { unread = [] }
        return unread
    }
}
