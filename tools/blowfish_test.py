#!/usr/bin/env python3
"""blowfish_test.py: known-answer tests of tools/blowfish.py.

    python3 -m unittest tools/blowfish_test.py

Eric Young's Blowfish test vectors (published with the algorithm's reference material as vectors.txt):
34 ECB blocks, 24 variable-length keys (set_key, 1 to 24 bytes) and the CBC chaining example with a
16-byte key, the key length rocks uses. The pi-derived initial boxes are checked at their ends too. When
an `openssl` binary with the legacy provider is at hand, random 16-byte keys and 32-byte messages are also
compared with `openssl enc -bf-ecb` (PKCS#5 padding), which is exactly what rocks' challenges are.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blowfish  # noqa: E402

# key, clear, cipher
ECB_VECTORS = """
0000000000000000 0000000000000000 4EF997456198DD78
FFFFFFFFFFFFFFFF FFFFFFFFFFFFFFFF 51866FD5B85ECB8A
3000000000000000 1000000000000001 7D856F9A613063F2
1111111111111111 1111111111111111 2466DD878B963C9D
0123456789ABCDEF 1111111111111111 61F9C3802281B096
1111111111111111 0123456789ABCDEF 7D0CC630AFDA1EC7
0000000000000000 0000000000000000 4EF997456198DD78
FEDCBA9876543210 0123456789ABCDEF 0ACEAB0FC6A0A28D
7CA110454A1A6E57 01A1D6D039776742 59C68245EB05282B
0131D9619DC1376E 5CD54CA83DEF57DA B1B8CC0B250F09A0
07A1133E4A0B2686 0248D43806F67172 1730E5778BEA1DA4
3849674C2602319E 51454B582DDF440A A25E7856CF2651EB
04B915BA43FEB5B6 42FD443059577FA2 353882B109CE8F1A
0113B970FD34F2CE 059B5E0851CF143A 48F4D0884C379918
0170F175468FB5E6 0756D8E0774761D2 432193B78951FC98
43297FAD38E373FE 762514B829BF486A 13F04154D69D1AE5
07A7137045DA2A16 3BDD119049372802 2EEDDA93FFD39C79
04689104C2FD3B2F 26955F6835AF609A D887E0393C2DA6E3
37D06BB516CB7546 164D5E404F275232 5F99D04F5B163969
1F08260D1AC2465E 6B056E18759F5CCA 4A057A3B24D3977B
584023641ABA6176 004BD6EF09176062 452031C1E4FADA8E
025816164629B007 480D39006EE762F2 7555AE39F59B87BD
49793EBC79B3258F 437540C8698F3CFA 53C55F9CB49FC019
4FB05E1515AB73A7 072D43A077075292 7A8E7BFA937E89A3
49E95D6D4CA229BF 02FE55778117F12A CF9C5D7A4986ADB5
018310DC409B26D6 1D9D5C5018F728C2 D1ABB290658BC778
1C587F1C13924FEF 305532286D6F295A 55CB3774D13EF201
0101010101010101 0123456789ABCDEF FA34EC4847B268B2
1F1F1F1F0E0E0E0E 0123456789ABCDEF A790795108EA3CAE
E0FEE0FEF1FEF1FE 0123456789ABCDEF C39E072D9FAC631D
0000000000000000 FFFFFFFFFFFFFFFF 014933E0CDAFF6E4
FFFFFFFFFFFFFFFF 0000000000000000 F21E9A77B71C49BC
0123456789ABCDEF 0000000000000000 245946885754369A
FEDCBA9876543210 FFFFFFFFFFFFFFFF 6B5C5A9C5D9E0A5A
"""

# set_key: clear FEDCBA9876543210 under the first n bytes of SET_KEY, n = 1..24
SET_KEY = "F0E1D2C3B4A5968778695A4B3C2D1E0F0011223344556677"
SET_KEY_CIPHERS = """
F9AD597C49DB005E E91D21C1D961A6D6 E9C2B70A1BC65CF3 BE1E639408640F05 B39E44481BDB1E6E 9457AA83B1928C0D
8BB77032F960629D E87A244E2CC85E82 15750E7A4F4EC577 122BA70B3AB64AE0 3A833C9AFFC537F6 9409DA87A90F6BF2
884F80625060B8B4 1F85031C19E11968 79D9373A714CA34F 93142887EE3BE15C 03429E838CE2D14B A4299E27469FF67B
AFD5AED1C1BC96A8 10851C0E3858DA9F E6F51ED79B9DB21F 64A6E14AFD36B46F 80C7D7D45A5479AD 05044B62FA52D080
"""

# The chaining example: a 16-byte key, "7654321 Now is the time for " and its NUL, zero-padded to 32
# bytes, CBC with this IV.
CBC_KEY = "0123456789ABCDEFF0E1D2C3B4A59687"
CBC_IV = "FEDCBA9876543210"
CBC_CLEAR = "37363534333231204E6F77206973207468652074696D6520666F722000"
CBC_CIPHER = "6B77B4D63006DEE605B156E27403979358DEB9E7154616D959F1652BD5FF92CC"


def hx(text):
    return bytes.fromhex(text)


class BlowfishKnownAnswers(unittest.TestCase):
    def test_initial_boxes_are_pi(self):
        p, s0, s1, s2, s3 = blowfish._initial_boxes()
        self.assertEqual((p[0], p[1], p[17]), (0x243F6A88, 0x85A308D3, 0x8979FB1B))
        self.assertEqual((s0[0], s0[255]), (0xD1310BA6, 0x6E85076A))
        self.assertEqual((s1[0], s1[255]), (0x4B7A70E9, 0xDB83ADF7))
        self.assertEqual((s2[0], s3[255]), (0xE93D5A68, 0x3AC372E6))

    def test_ecb_vectors(self):
        rows = [line.split() for line in ECB_VECTORS.strip().splitlines()]
        self.assertEqual(len(rows), 34)
        for key, clear, cipher in rows:
            bf = blowfish.Blowfish(hx(key))
            self.assertEqual(bf.encrypt_block(hx(clear)).hex().upper(), cipher, key)
            self.assertEqual(bf.decrypt_block(hx(cipher)).hex().upper(), clear, key)

    def test_variable_key_lengths(self):
        ciphers = SET_KEY_CIPHERS.split()
        self.assertEqual(len(ciphers), 24)
        key = hx(SET_KEY)
        for n, cipher in enumerate(ciphers, 1):
            bf = blowfish.Blowfish(key[:n])
            self.assertEqual(bf.encrypt_block(hx("FEDCBA9876543210")).hex().upper(), cipher, "key of %d bytes" % n)

    def test_cbc_chaining_example_with_a_16_byte_key(self):
        bf = blowfish.Blowfish(hx(CBC_KEY))
        clear = hx(CBC_CLEAR).ljust(32, b"\0")
        prev, out = hx(CBC_IV), b""
        for i in range(0, 32, 8):
            prev = bf.encrypt_block(bytes(a ^ b for a, b in zip(clear[i:i + 8], prev)))
            out += prev
        self.assertEqual(out.hex().upper(), CBC_CIPHER)

    def test_ecb_with_padding(self):
        key = bytes(range(16))
        plain = bytes(range(100, 132))
        cipher = blowfish.ecb_encrypt(key, plain)
        self.assertEqual(len(cipher), 40)                               # rocks: 32 bytes give 40
        self.assertEqual(cipher[32:], blowfish.Blowfish(key).encrypt_block(b"\x08" * 8))
        self.assertEqual(blowfish.ecb_decrypt(key, cipher), plain)
        self.assertEqual(blowfish.ecb_encrypt(hx("0000000000000000"), hx("0000000000000000")).hex().upper(),
                         "4EF997456198DD78B0D4ACB28AA5EBE3")            # a block of 08s under the zero key

    def test_padding_check_as_openssl_096(self):
        key = b"k" * 16
        bf = blowfish.Blowfish(key)
        enc = lambda plain: blowfish.ecb_encrypt(key, plain, pad=False)  # noqa: E731
        self.assertEqual(blowfish.ecb_decrypt(key, enc(b"A" * 8 + b"\x03" * 8)), b"A" * 8 + b"\x03" * 5)
        self.assertEqual(blowfish.ecb_decrypt(key, enc(b"A" * 15 + b"\x00")), b"A" * 15 + b"\x00")  # n = 0
        for bad in (b"A" * 15 + b"\x09", b"A" * 14 + b"\x01\x02", b"A" * 7 + b"\x02"):
            with self.assertRaises(ValueError):
                blowfish.ecb_decrypt(key, enc(bad))
        for size in (0, 7, 41):
            with self.assertRaises(ValueError):
                blowfish.ecb_decrypt(bf, bytes(size))

    def test_key_lengths_refused(self):
        for size in (0, 73):
            with self.assertRaises(ValueError):
                blowfish.Blowfish(bytes(size))


def openssl_bf_ecb(key, plain):
    """openssl enc -bf-ecb (legacy provider) with PKCS#5 padding, or None if it cannot run."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    for providers in (["-provider", "legacy", "-provider", "default"], []):
        try:
            out = subprocess.run([exe, "enc", "-bf-ecb", "-e", "-K", key.hex(), "-nosalt"] + providers,
                                 input=plain, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode == 0:
            return out.stdout
    return None


class BlowfishAgainstOpenSSL(unittest.TestCase):
    def test_random_challenges(self):
        rng = __import__("random").Random(2024)
        checked = 0
        for _ in range(8):
            key, plain = rng.randbytes(16), rng.randbytes(32)
            theirs = openssl_bf_ecb(key, plain)
            if theirs is None:
                self.skipTest("no openssl with Blowfish (legacy provider)")
            self.assertEqual(blowfish.ecb_encrypt(key, plain), theirs)
            checked += 1
        self.assertEqual(checked, 8)


if __name__ == "__main__":
    unittest.main()
