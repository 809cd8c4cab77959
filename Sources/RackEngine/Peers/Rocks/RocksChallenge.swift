// rackd — the messages of rocks 2.4's reconnection challenge-response (docs/rocks.md, §5.3).
//
// On every reconnection, after the 1of2 pick (RocksPick.swift), each side writes a challenge and answers
// the peer's:
//
//     challenge   u32be 40, then Blowfish-ECB of 32 random bytes padded with eight 08 bytes     4 + 40
//     response    u32be 32, then the plaintext of the peer's challenge, padding removed          4 + 32
//
// Each is two writes (the length, then the body), as rocks makes them. The key is the connection's
// (RocksKeyExchange.blowfishKey); the IV rocks passes is zero and ECB ignores it. Since the padding block
// is the same for both sides, the two challenges of one reconnection end in the same 8 bytes.
//
// Rocks' own check of a challenge's padding is OpenSSL 0.9.6's (the last byte n ≤ 8, the last n bytes all
// n, even n = 0), and it answers with however many bytes that leaves. A genuine rock always sends 32 bytes
// padded with eight 08s, so rackd accepts exactly that and nothing else.

/// A challenge: 32 random bytes, encrypted.
public struct RocksChallenge: Equatable, Sendable, Codable {
    public static let plaintextLength = 32
    /// The plaintext and one block of padding.
    public static let length = 40
    static let padding = [UInt8](repeating: 8, count: 8)

    /// The 40 bytes on the wire after the length.
    public let ciphertext: [UInt8]

    /// Encrypts 32 random bytes, as a challenger does.
    public init(plaintext: [UInt8], cipher: Blowfish) {
        precondition(plaintext.count == Self.plaintextLength, "a rocks challenge encrypts 32 bytes, not \(plaintext.count)")
        ciphertext = cipher.encrypt(plaintext + Self.padding)
    }

    /// Wraps a body read from the wire (RocksLengthPrefixedReader.challenge has checked its length).
    public init(ciphertext: [UInt8]) throws(WireError) {
        guard ciphertext.count == Self.length else {
            throw WireError(.badMessage, "a rocks challenge is 40 bytes, got \(ciphertext.count)")
        }
        self.ciphertext = ciphertext
    }

    /// The 32 bytes the peer must send back: the ciphertext decrypted, its padding checked and removed.
    /// Throws when the padding is not eight 08 bytes, which is what a challenge under another key gives.
    public func plaintext(cipher: Blowfish) throws(WireError) -> [UInt8] {
        let plain = cipher.decrypt(ciphertext)
        guard plain.suffix(8).elementsEqual(Self.padding) else {
            throw WireError(.badMessage, "rocks challenge does not decrypt to 32 bytes and eight 08s "
                + "(padding block \(plain.suffix(8).map { String($0, radix: 16) }.joined(separator: " "))): another key")
        }
        return Array(plain.prefix(Self.plaintextLength))
    }

    /// Its 8-byte blocks, padding included.
    var blocks: [ArraySlice<UInt8>] {
        stride(from: 0, to: Self.length, by: Blowfish.blockLength).map { ciphertext[$0..<$0 + Blowfish.blockLength] }
    }

    /// The two writes: the length, then the ciphertext.
    public var segments: [[UInt8]] { [RocksInit.bigEndian(UInt32(Self.length)), ciphertext] }
    public var bytes: [UInt8] { segments.flatMap { $0 } }
}

/// A response: the plaintext of the peer's challenge.
public struct RocksChallengeResponse: Equatable, Sendable, Codable {
    public static let length = RocksChallenge.plaintextLength

    public let plaintext: [UInt8]

    public init(plaintext: [UInt8]) throws(WireError) {
        guard plaintext.count == Self.length else {
            throw WireError(.badMessage, "a rocks challenge response is 32 bytes, got \(plaintext.count)")
        }
        self.plaintext = plaintext
    }

    /// Whether this answers the challenge whose plaintext was `expected`, comparing every byte whatever
    /// the first difference.
    public func answers(_ expected: [UInt8]) -> Bool {
        guard expected.count == plaintext.count else { return false }
        return zip(plaintext, expected).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }

    /// The two writes: the length, then the plaintext.
    public var segments: [[UInt8]] { [RocksInit.bigEndian(UInt32(Self.length)), plaintext] }
    public var bytes: [UInt8] { segments.flatMap { $0 } }
}

extension RocksLengthPrefixedReader {
    /// Reads a challenge: u32be 40 and 40 bytes.
    public static var challenge: Self { Self(expectedLength: RocksChallenge.length, what: "challenge") }
    /// Reads a response: u32be 32 and 32 bytes.
    public static var response: Self { Self(expectedLength: RocksChallengeResponse.length, what: "challenge response") }
}
