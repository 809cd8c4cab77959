// rackd — Blowfish against Eric Young's known-answer vectors (the "vectors.txt" Schneier publishes): the
// 34 ECB vectors with 8-byte keys and the 24 set_key vectors with keys of 1 to 24 bytes; the byte order
// OpenSSL uses, which rocks inherits (docs/rocks.md, §5.3); and rocks' padded 32-byte challenge against a
// ciphertext made by OpenSSL itself.

import Testing
@testable import RackEngine

@Suite struct BlowfishTests {
    /// Key, clear, cipher: Eric Young's ECB test data, in the order of vectors.txt (the 7th repeats the 1st).
    static let ecbVectors: [(key: String, clear: String, cipher: String)] = [
        ("0000000000000000", "0000000000000000", "4EF997456198DD78"),
        ("FFFFFFFFFFFFFFFF", "FFFFFFFFFFFFFFFF", "51866FD5B85ECB8A"),
        ("3000000000000000", "1000000000000001", "7D856F9A613063F2"),
        ("1111111111111111", "1111111111111111", "2466DD878B963C9D"),
        ("0123456789ABCDEF", "1111111111111111", "61F9C3802281B096"),
        ("1111111111111111", "0123456789ABCDEF", "7D0CC630AFDA1EC7"),
        ("0000000000000000", "0000000000000000", "4EF997456198DD78"),
        ("FEDCBA9876543210", "0123456789ABCDEF", "0ACEAB0FC6A0A28D"),
        ("7CA110454A1A6E57", "01A1D6D039776742", "59C68245EB05282B"),
        ("0131D9619DC1376E", "5CD54CA83DEF57DA", "B1B8CC0B250F09A0"),
        ("07A1133E4A0B2686", "0248D43806F67172", "1730E5778BEA1DA4"),
        ("3849674C2602319E", "51454B582DDF440A", "A25E7856CF2651EB"),
        ("04B915BA43FEB5B6", "42FD443059577FA2", "353882B109CE8F1A"),
        ("0113B970FD34F2CE", "059B5E0851CF143A", "48F4D0884C379918"),
        ("0170F175468FB5E6", "0756D8E0774761D2", "432193B78951FC98"),
        ("43297FAD38E373FE", "762514B829BF486A", "13F04154D69D1AE5"),
        ("07A7137045DA2A16", "3BDD119049372802", "2EEDDA93FFD39C79"),
        ("04689104C2FD3B2F", "26955F6835AF609A", "D887E0393C2DA6E3"),
        ("37D06BB516CB7546", "164D5E404F275232", "5F99D04F5B163969"),
        ("1F08260D1AC2465E", "6B056E18759F5CCA", "4A057A3B24D3977B"),
        ("584023641ABA6176", "004BD6EF09176062", "452031C1E4FADA8E"),
        ("025816164629B007", "480D39006EE762F2", "7555AE39F59B87BD"),
        ("49793EBC79B3258F", "437540C8698F3CFA", "53C55F9CB49FC019"),
        ("4FB05E1515AB73A7", "072D43A077075292", "7A8E7BFA937E89A3"),
        ("49E95D6D4CA229BF", "02FE55778117F12A", "CF9C5D7A4986ADB5"),
        ("018310DC409B26D6", "1D9D5C5018F728C2", "D1ABB290658BC778"),
        ("1C587F1C13924FEF", "305532286D6F295A", "55CB3774D13EF201"),
        ("0101010101010101", "0123456789ABCDEF", "FA34EC4847B268B2"),
        ("1F1F1F1F0E0E0E0E", "0123456789ABCDEF", "A790795108EA3CAE"),
        ("E0FEE0FEF1FEF1FE", "0123456789ABCDEF", "C39E072D9FAC631D"),
        ("0000000000000000", "FFFFFFFFFFFFFFFF", "014933E0CDAFF6E4"),
        ("FFFFFFFFFFFFFFFF", "0000000000000000", "F21E9A77B71C49BC"),
        ("0123456789ABCDEF", "0000000000000000", "245946885754369A"),
        ("FEDCBA9876543210", "FFFFFFFFFFFFFFFF", "6B5C5A9C5D9E0A5A"),
    ]

    /// Eric Young's set_key test data: the first n bytes of this key, n = 1…24, encrypt FEDCBA9876543210 to
    /// the n-th ciphertext.
    static let setKeyKey = "F0E1D2C3B4A5968778695A4B3C2D1E0F0011223344556677"
    static let setKeyClear = "FEDCBA9876543210"
    static let setKeyCiphers = [
        "F9AD597C49DB005E", "E91D21C1D961A6D6", "E9C2B70A1BC65CF3", "BE1E639408640F05", "B39E44481BDB1E6E",
        "9457AA83B1928C0D", "8BB77032F960629D", "E87A244E2CC85E82", "15750E7A4F4EC577", "122BA70B3AB64AE0",
        "3A833C9AFFC537F6", "9409DA87A90F6BF2", "884F80625060B8B4", "1F85031C19E11968", "79D9373A714CA34F",
        "93142887EE3BE15C", "03429E838CE2D14B", "A4299E27469FF67B", "AFD5AED1C1BC96A8", "10851C0E3858DA9F",
        "E6F51ED79B9DB21F", "64A6E14AFD36B46F", "80C7D7D45A5479AD", "05044B62FA52D080",
    ]

    @Test func theSubkeysAreThePiDigits() {
        #expect(Blowfish.initialP.count == 18 && Blowfish.initialS.count == 1024)
        #expect(Blowfish.initialP.first == 0x243F_6A88 && Blowfish.initialP.last == 0x8979_FB1B)
        #expect(Blowfish.initialS.first == 0xD131_0BA6 && Blowfish.initialS.last == 0x3AC3_72E6)
    }

    @Test(arguments: ecbVectors.indices)
    func ecbVectorsWithEightByteKeys(_ index: Int) {
        let vector = Self.ecbVectors[index]
        let cipher = Blowfish(key: hex(vector.key))
        #expect(cipher.encrypt(hex(vector.clear)) == hex(vector.cipher), "vector \(index + 1)")
        #expect(cipher.decrypt(hex(vector.cipher)) == hex(vector.clear), "vector \(index + 1)")
    }

    @Test(arguments: 1...24)
    func setKeyVectorsWithKeysOfOneTo24Bytes(_ length: Int) {
        let cipher = Blowfish(key: Array(hex(Self.setKeyKey).prefix(length)))
        #expect(cipher.encrypt(hex(Self.setKeyClear)) == hex(Self.setKeyCiphers[length - 1]), "key of \(length) bytes")
        #expect(cipher.decrypt(hex(Self.setKeyCiphers[length - 1])) == hex(Self.setKeyClear))
    }

    /// OpenSSL's BF_ecb_encrypt reads a block as two big-endian words and writes them back the same way,
    /// on every host; rocks' ciphertexts are in that order. A host-order load on a little-endian machine
    /// would give other bytes, so the vectors above would catch it; this says it outright.
    @Test func blocksAreTwoBigEndianWordsAsInOpenSSL() {
        let cipher = Blowfish(key: hex("FEDCBA9876543210"))
        let (left, right) = cipher.encrypt(0x0123_4567, 0x89AB_CDEF)
        #expect(left == 0x0ACE_AB0F && right == 0xC6A0_A28D, "the words of vector 8, in byte order")
        #expect(cipher.encrypt(hex("0123456789ABCDEF")) == hex("0ACEAB0FC6A0A28D"))
        // The same block loaded as little-endian words (what a naive port on x86 does) is another block.
        let (littleLeft, littleRight) = cipher.encrypt(0x6745_2301, 0xEFCD_AB89)
        #expect(littleLeft.byteSwapped != 0x0ACE_AB0F || littleRight.byteSwapped != 0xC6A0_A28D)
    }

    /// A key is cycled through the P-array, as OpenSSL's BF_set_key does: 8 bytes and the same 8 twice are
    /// one key. (So rocks' 16-byte key of a short secret, zero-padded, differs from the short secret
    /// alone: docs/rocks.md §5.3.)
    @Test func keysCycleThroughThePArray() {
        let eight = hex("0123456789ABCDEF")
        let block = hex("1111111111111111")
        #expect(Blowfish(key: eight + eight).encrypt(block) == Blowfish(key: eight).encrypt(block))
        #expect(Blowfish(key: eight + [0]).encrypt(block) != Blowfish(key: eight).encrypt(block))
        let longest = Blowfish(key: [UInt8](repeating: 0x5A, count: 56))
        #expect(longest.decrypt(longest.encrypt(block)) == block)
    }

    /// Rocks' challenge under a 16-byte key: 32 bytes padded with eight 08s, Blowfish-ECB. The expected
    /// ciphertext was made with OpenSSL 3.0.19's legacy provider:
    /// `openssl enc -bf-ecb -K 000102030405060708090a0b0c0d0e0f` over the bytes 20…3F (PKCS#5 padding, as
    /// 0.9.6's EVP_EncryptFinal adds).
    @Test func aPaddedChallengeAsOpenSSLMakesIt() {
        let cipher = Blowfish(key: Array(0x00...0x0F))
        let padded = Array(0x20...0x3F) + [UInt8](repeating: 8, count: 8)
        #expect(cipher.encrypt(padded) == Self.openSSLChallenge)
        #expect(cipher.decrypt(Self.openSSLChallenge) == padded)
        #expect(cipher.encrypt([UInt8](repeating: 8, count: 8)) == hex("95fcb249bf3d4145"), "the padding block")
    }

    static let openSSLChallenge = hex("9c971804ab0c7cedcaf9247007989ae2b77ddea6b273a24edc92b252246a418695fcb249bf3d4145")

    @Test func decryptionUndoesEncryptionForRandomKeysAndBlocks() {
        var random = SplitMix64(seed: 0xB10F)
        for _ in 0..<50 {
            let cipher = Blowfish(key: random.bytes(Int(random.next() % 56) + 1))
            let blocks = random.bytes(8 * Int(random.next() % 6))
            let encrypted = cipher.encrypt(blocks)
            #expect(cipher.decrypt(encrypted) == blocks)
            // ECB: each block alone.
            for start in stride(from: 0, to: blocks.count, by: 8) {
                #expect(cipher.encrypt(blocks[start..<start + 8]) == Array(encrypted[start..<start + 8]))
            }
        }
    }
}
