// rackd — one end of a rocks 2.4 reconnection, from the 1of2 pick to the end of the challenge-response
// (docs/rocks.md, §5.2, §5.3), as a value: bytes in, bytes out, no clock and no sockets.
//
//     server  writes the pick, its challenge ─► reads the peer's challenge ─► [answers] ─► reads the
//             peer's response ─► authenticated
//     client  reads the pick ─► writes its challenge ─► the same
//
// Rocks answers the peer's challenge as soon as it has read it, before it has seen any proof that the
// peer holds the key. That makes every rock a decryption oracle for whoever reaches its reconnection port:
// send back the rock's own challenge (or its blocks reordered, ECB being ECB) as yours, and the rock hands
// you the response it expects. rackd does not answer until the peer has answered rackd's challenge
// correctly (`Answering.afterVerifying`), which a rock never notices: it writes its response without
// waiting for ours, so ours comes one round trip later, within its 1 s read unless the round trip itself
// nears a second (docs/rocks.md §5.3). As a second guard, a challenge that repeats any block of ours is
// refused whatever the answering. `Answering.atOnce` is rocks' own order, for playing a rock in tests;
// two ends that both verify first would wait for each other for ever, which cannot happen with a rock.
//
// The bytes after the response belong to the recovery messages (RocksRecovery.swift): `take` stops at
// the response's last byte. The timeouts (rocks gives each read 1 s) are the caller's.

/// One end of a rocks reconnection's pick and challenge-response.
public struct RocksAuthentication: Sendable, Codable {
    public enum Answering: Sendable, Equatable, Codable {
        /// Answer the peer's challenge once the peer has answered ours correctly (rackd toward a rock).
        case afterVerifying
        /// Answer the peer's challenge as soon as it is in, as rocks does.
        case atOnce
    }

    public enum Status {
        case inProgress
        case authenticated
        /// The attempt is over; close the connection (the suspended connection stays as it was).
        case failed(WireError)
    }

    /// The random bytes an attempt takes: the pick's value (used by the server only), then the
    /// challenge's 32 bytes.
    public static let randomByteCount = RocksPick.length + RocksChallenge.plaintextLength

    public let role: ConnectionRole
    public let answering: Answering
    private let cipher: Blowfish
    /// Our challenge's plaintext, which the peer must send back.
    private let expected: [UInt8]
    let challenge: RocksChallenge
    private var stage: Stage
    private var writes: [[UInt8]] = []

    private enum Stage: Codable {
        /// Client: the server has not picked this connection yet.
        case awaitingPick
        /// Our challenge is written; the peer's is being read.
        case readingChallenge(RocksLengthPrefixedReader)
        /// The peer's challenge is in; its response to ours is being read. `heldAnswer` is our response to
        /// its challenge, kept back until its response checks out (`Answering.afterVerifying`).
        case readingResponse(RocksLengthPrefixedReader, heldAnswer: RocksChallengeResponse?)
        case authenticated
        case failed(WireError)
    }

    /// Starts an attempt on a connection just established, in the original connection's role, with the
    /// connection's Blowfish key and `randomByteCount` fresh random bytes.
    public init(role: ConnectionRole, cipher: Blowfish, random: [UInt8], answering: Answering = .afterVerifying) {
        precondition(random.count == Self.randomByteCount, "a rocks authentication takes \(Self.randomByteCount) random bytes, not \(random.count)")
        self.role = role
        self.answering = answering
        self.cipher = cipher
        expected = Array(random.dropFirst(RocksPick.length))
        challenge = RocksChallenge(plaintext: expected, cipher: cipher)
        if RocksPick.writes(role) {
            writes = [RocksPick.segment(random[0])] + challenge.segments
            stage = .readingChallenge(.challenge)
        } else {
            stage = .awaitingPick
        }
    }

    public var status: Status {
        switch stage {
        case .awaitingPick, .readingChallenge, .readingResponse: .inProgress
        case .authenticated: .authenticated
        case .failed(let error): .failed(error)
        }
    }

    public var isAuthenticated: Bool {
        if case .authenticated = stage { true } else { false }
    }

    /// What to write now, one element per write as rocks makes them (the pick; a length; a body), and
    /// forgets it.
    public mutating func pollWrites() -> [[UInt8]] {
        defer { writes = [] }
        return writes
    }

    /// Takes the next bytes the peer sent and returns how many of them the pick and the challenge-response
    /// used; once authenticated, the rest is the peer's recovery messages. Throws when the attempt fails,
    /// and again on every later call.
    public mutating func take(_ bytes: some Collection<UInt8>) throws(WireError) -> Int {
        if case .failed(let error) = stage { throw error }
        do throws(WireError) {
            return try advance(Array(bytes)[...])
        } catch {
            stage = .failed(error)
            throw error
        }
    }

    /// The peer closed the connection (or it broke): an attempt not yet through has failed.
    public mutating func peerClosed() {
        switch stage {
        case .awaitingPick:
            stage = .failed(WireError(.truncated, "rocks reconnection closed before the server's 1of2 pick"))
        case .readingChallenge:
            stage = .failed(WireError(.truncated, "rocks reconnection closed before the peer's challenge"))
        case .readingResponse:
            stage = .failed(WireError(.truncated, "rocks reconnection closed before the peer's challenge response"))
        case .authenticated, .failed:
            break
        }
    }

    private mutating func advance(_ bytes: ArraySlice<UInt8>) throws(WireError) -> Int {
        var rest = bytes
        while true {
            switch stage {
            case .awaitingPick:
                guard !rest.isEmpty else { return bytes.count - rest.count }
                rest = rest.dropFirst(RocksPick.length)  // any value picks this connection
                writes += challenge.segments
                stage = .readingChallenge(.challenge)
            case .readingChallenge(var reader):
                rest = rest.dropFirst(try reader.take(rest))
                guard let body = reader.result else {
                    stage = .readingChallenge(reader)
                    return bytes.count - rest.count
                }
                let answer = try answer(RocksChallenge(ciphertext: body))
                switch answering {
                case .atOnce:
                    writes += answer.segments
                    stage = .readingResponse(.response, heldAnswer: nil)
                case .afterVerifying:
                    stage = .readingResponse(.response, heldAnswer: answer)
                }
            case .readingResponse(var reader, let heldAnswer):
                rest = rest.dropFirst(try reader.take(rest))
                guard let body = reader.result else {
                    stage = .readingResponse(reader, heldAnswer: heldAnswer)
                    return bytes.count - rest.count
                }
                guard try RocksChallengeResponse(plaintext: body).answers(expected) else {
                    throw WireError(.badMessage, "rocks challenge response is not our challenge's plaintext: the peer "
                        + "does not hold the connection's key")
                }
                if let heldAnswer { writes += heldAnswer.segments }
                stage = .authenticated
            case .authenticated:
                return bytes.count - rest.count
            case .failed(let error):
                throw error
            }
        }
    }

    /// Our response to the peer's challenge, unless the challenge is a reflection or under another key.
    private func answer(_ peer: RocksChallenge) throws(WireError) -> RocksChallengeResponse {
        // The last block is the padding's, the same in both; any other in common is ours sent back.
        let ours = challenge.blocks.dropLast()
        for block in peer.blocks.dropLast() where ours.contains(block) {
            throw WireError(.badMessage, "rocks challenge repeats a block of our own challenge: a reflection, refused")
        }
        return try RocksChallengeResponse(plaintext: peer.plaintext(cipher: cipher))
    }
}
