// rackd — the Blowfish block cipher (Schneier 1993), for rocks 2.4's reconnection challenge (docs/rocks.md,
// §5.3).
//
// Rocks authenticates a reconnection with Blowfish-ECB under the first 16 bytes of the DH secret. No
// maintained Swift library offers Blowfish (swift-crypto does not, and OpenSSL 3 keeps it in the legacy
// provider), so it is written here from the published description: 16 rounds on two 32-bit halves, a
// P-array of 18 subkeys and four 256-entry S-boxes, all first filled with π (BlowfishSubkeys.swift), then
// mixed with the key, 1 to 56 bytes.
//
// Byte order. Blowfish itself works on 32-bit words; how an 8-byte block becomes two words is the
// implementation's choice, and implementations differ. Rocks calls OpenSSL 0.9.6's EVP_bf_ecb, whose
// BF_ecb_encrypt loads each block big-endian (n2l: bytes 0…3 are the left half, byte 0 its most
// significant) and stores it the same way on every host, and its BF_set_key takes the key bytes
// big-endian too, four at a time, cycling. Eric Young's test vectors, which come from the same code,
// assume that order; an implementation that loads host-order (little-endian) words on x86 gives other
// bytes for the same key and block. `BlowfishTests` checks both the vectors and that difference.
//
// This is for interoperating with rocks only: an 8-byte block and a 16-byte key under a 128-bit DH are
// no protection by today's standards (docs/rocks.md, §3.4).

/// Blowfish with its key schedule done: encrypts and decrypts 8-byte blocks (ECB).
public struct Blowfish: Sendable, Codable {
    /// The P-array and the S-boxes (S0 at 0, S1 at 256, …) after the key schedule: 4168 bytes.
    private var p: [UInt32]
    private var s: [UInt32]

    public static let blockLength = 8
    /// Schneier's limit: 448 bits. Rocks uses 16 bytes.
    public static let keyLengths = 1...56

    /// Runs the key schedule for `key`, 1 to 56 bytes (the caller's own value, never a peer's).
    public init(key: [UInt8]) {
        precondition(Self.keyLengths.contains(key.count), "Blowfish takes a key of 1 to 56 bytes, not \(key.count)")
        p = Self.initialP
        s = Self.initialS
        // XOR the key into the P-array, four bytes big-endian at a time, cycling through the key.
        var next = 0
        for index in 0..<18 {
            var word: UInt32 = 0
            for _ in 0..<4 {
                word = word << 8 | UInt32(key[next])
                next = (next + 1) % key.count
            }
            p[index] ^= word
        }
        // Replace P and then the S-boxes, two words at a time, with the encryption of the previous pair,
        // starting from a block of zeros.
        var left: UInt32 = 0
        var right: UInt32 = 0
        for index in stride(from: 0, to: 18, by: 2) {
            (left, right) = encrypt(left, right)
            p[index] = left
            p[index + 1] = right
        }
        for index in stride(from: 0, to: 1024, by: 2) {
            (left, right) = encrypt(left, right)
            s[index] = left
            s[index + 1] = right
        }
    }

    // MARK: Blocks of bytes (ECB)

    /// Encrypts `bytes` block by block; their count must be a multiple of 8 (the caller pads).
    public func encrypt(_ bytes: some Collection<UInt8>) -> [UInt8] {
        transform(Array(bytes), encrypt)
    }

    /// Decrypts `bytes` block by block; their count must be a multiple of 8 (the caller checks lengths
    /// read from the wire first).
    public func decrypt(_ bytes: some Collection<UInt8>) -> [UInt8] {
        transform(Array(bytes), decrypt)
    }

    private func transform(_ bytes: [UInt8], _ block: (UInt32, UInt32) -> (UInt32, UInt32)) -> [UInt8] {
        precondition(bytes.count % Self.blockLength == 0, "Blowfish-ECB takes whole 8-byte blocks, not \(bytes.count) bytes")
        var out = bytes
        for start in stride(from: 0, to: bytes.count, by: Self.blockLength) {
            // Big-endian halves, as OpenSSL's n2l/l2n (see the head of this file).
            let (left, right) = block(Self.word(bytes, at: start), Self.word(bytes, at: start + 4))
            Self.store(left, into: &out, at: start)
            Self.store(right, into: &out, at: start + 4)
        }
        return out
    }

    static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }

    static func store(_ word: UInt32, into bytes: inout [UInt8], at offset: Int) {
        bytes[offset] = UInt8(word >> 24)
        bytes[offset + 1] = UInt8(truncatingIfNeeded: word >> 16)
        bytes[offset + 2] = UInt8(truncatingIfNeeded: word >> 8)
        bytes[offset + 3] = UInt8(truncatingIfNeeded: word)
    }

    // MARK: One block as two words

    /// The 16 rounds on a block's halves.
    func encrypt(_ left: UInt32, _ right: UInt32) -> (UInt32, UInt32) {
        var left = left
        var right = right
        for round in stride(from: 0, to: 16, by: 2) {
            left ^= p[round]
            right ^= f(left)
            right ^= p[round + 1]
            left ^= f(right)
        }
        return (right ^ p[17], left ^ p[16])
    }

    /// The rounds backwards: the P-array in reverse order.
    func decrypt(_ left: UInt32, _ right: UInt32) -> (UInt32, UInt32) {
        var left = left
        var right = right
        for round in stride(from: 17, to: 1, by: -2) {
            left ^= p[round]
            right ^= f(left)
            right ^= p[round - 1]
            left ^= f(right)
        }
        return (right ^ p[0], left ^ p[1])
    }

    /// F(x) = ((S0[a] + S1[b]) ^ S2[c]) + S3[d], a the most significant byte of x.
    private func f(_ x: UInt32) -> UInt32 {
        let a = Int(x >> 24)
        let b = Int((x >> 16) & 0xFF)
        let c = Int((x >> 8) & 0xFF)
        let d = Int(x & 0xFF)
        return ((s[a] &+ s[256 + b]) ^ s[512 + c]) &+ s[768 + d]
    }
}

// The subkeys are the key in another form: they stay out of logs, test output and debugger dumps.
extension Blowfish: CustomStringConvertible, CustomReflectable {
    public var description: String { "Blowfish(key schedule not shown)" }
    public var customMirror: Mirror { Mirror(self, children: [:]) }
}
