// rackd — rocks 2.4's Diffie-Hellman key agreement (docs/rocks.md, §3.4).
//
// Rocks uses a fixed 128-bit safe prime with generator 2, a fresh 127-bit private exponent (top bit set)
// per exchange, public values and the secret as minimal big-endian byte strings, and no hash: the first
// 16 bytes of the secret, zero-padded on the right, are the Blowfish key of the reconnection
// challenge-response. A 128-bit group is broken by today's standards; rackd speaks it only to rocks
// peers, only with `legacy-auth` on, and shows such connections as `legacy-dh128-bf`.

enum RocksKeyExchange {
    /// p = 0xDC04EB6EB146437F17F6422B78DE6F7B, a safe prime; g = 2.
    static let prime: UInt128 = 0xDC04_EB6E_B146_437F_17F6_422B_78DE_6F7B
    static let generator: UInt128 = 2
    static let suiteName = "legacy-dh128-bf"

    /// A private exponent from 16 random bytes: 127 bits with the top one set, as rocks makes them.
    static func privateKey(from random: [UInt8]) -> UInt128 {
        precondition(random.count == 16, "a rocks private key takes 16 random bytes")
        let value = random.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        return value & (UInt128(1) << 127 - 1) | UInt128(1) << 126
    }

    static func publicKey(_ privateKey: UInt128) -> [UInt8] {
        minimalBigEndian(power(generator, privateKey))
    }

    /// The shared secret with the peer's public value, or nil for a value no peer would send (zero, one,
    /// p − 1 or not below p: they make the secret guessable).
    static func sharedSecret(_ privateKey: UInt128, peerPublicKey: [UInt8]) -> [UInt8]? {
        guard (1...RocksInit.maximumKeyLength).contains(peerPublicKey.count) else { return nil }
        let peer = peerPublicKey.reduce(UInt128(0)) { $0 << 8 | UInt128($1) }
        guard peer > 1, peer < prime - 1 else { return nil }
        return minimalBigEndian(power(peer, privateKey))
    }

    /// The Blowfish key: the secret's first 16 bytes, zero-padded on the right.
    static func blowfishKey(secret: [UInt8]) -> [UInt8] {
        Array((secret + [UInt8](repeating: 0, count: 16)).prefix(16))
    }

    // MARK: Arithmetic modulo p

    static func multiply(_ a: UInt128, _ b: UInt128) -> UInt128 {
        let product = a.multipliedFullWidth(by: b)
        return prime.dividingFullWidth(product).remainder
    }

    static func power(_ base: UInt128, _ exponent: UInt128) -> UInt128 {
        var result: UInt128 = 1
        var square = base % prime
        var remaining = exponent
        while remaining > 0 {
            if remaining & 1 == 1 { result = multiply(result, square) }
            square = multiply(square, square)
            remaining >>= 1
        }
        return result
    }

    static func minimalBigEndian(_ value: UInt128) -> [UInt8] {
        var bytes = (0..<16).map { UInt8(truncatingIfNeeded: value >> (8 * (15 - $0))) }
        while bytes.count > 1, bytes.first == 0 { bytes.removeFirst() }
        return bytes
    }
}
