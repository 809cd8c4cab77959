// rackd — what a connection's transition asks for. Transitions never touch the table; the table carries
// these out (ConnectionTable.swift): it sends, reports, forgets, and refreshes its indexes and timers.

/// How a connection's management ends.
enum ConnectionEnd: Equatable {
    /// The connection is no longer managed (socket closed, held too long, limit): `connectionEnded`.
    case ended(reason: String)
    /// The peer's protocol never finished setting up: the connection is plain TCP (`fellBack`).
    case fellBack(reason: String)
    /// Dropped without a word: most likely set up by a forged SYN, so nothing is worth logging.
    case expired
}

/// The outputs of one transition of one connection.
struct ConnectionActions {
    /// The verdict on the packet that caused the transition, if a packet did.
    var verdict: PacketVerdict = .accept
    /// Packets to inject, after that verdict.
    var transmits: [[UInt8]] = []
    /// UDP datagrams to send (rocks heartbeats), after the transmits.
    var datagrams: [Datagram] = []
    var events: [EngineEvent] = []
    /// Set when the connection must be forgotten.
    var end: ConnectionEnd?
    /// The connection needs a socket snapshot as soon as possible.
    var wantsSnapshot = false
    /// The connection entered a suspension: the limits must be checked.
    var suspended = false
    /// Conntrack lost the connection's shift (Core/KernelShift.swift): the entry is to be made again, if
    /// the connection is still shifted once the transition is done.
    var kernelShiftLost: KernelShift?

    /// Queues a segment rackd builds; a segment that cannot be emitted is a bug, never a crash.
    mutating func transmit(_ segment: TCPSegmentRepr) {
        transmits += Self.emit(segment)
    }

    /// A segment's bytes, or none if it cannot be emitted.
    static func emit(_ segment: TCPSegmentRepr) -> [[UInt8]] {
        var bytes = [UInt8](repeating: 0, count: segment.bufferLength)
        let emitted = bytes.withUnsafeMutableBytes { buffer -> Bool in
            do { try segment.emit(into: buffer) } catch { return false }
            return true
        }
        return emitted ? [bytes] : []
    }
}

/// What a transition may read of the world around its connection, and the randomness it may draw.
struct ConnectionContext {
    let now: EngineInstant
    let configuration: Configuration
    /// This host's addresses, as rtnetlink reports them.
    let addresses: HostAddresses
    var random: any RandomNumberGenerator & Sendable

    mutating func randomBytes(_ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count)
        while bytes.count < count {
            var word = random.next()
            for _ in 0..<8 where bytes.count < count {
                bytes.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return bytes
    }
}

/// Local addresses: usable ones, newest last, and ones that left.
struct HostAddresses {
    var available: [IPAddress] = []
    var lost: Set<IPAddress> = []

    /// The address a connection whose wire address left should resume from: the newest usable local
    /// address of the peer's family. Nil while the wire address is still here.
    func roamingAddress(for wire: FlowKey) -> IPAddress? {
        guard lost.contains(wire.local.address) else { return nil }
        let remote = wire.remote.address
        return available.last { $0.isIPv4 == remote.isIPv4 && !lost.contains($0) }
    }
}
