"""blowfish.py: the Blowfish block cipher (Schneier, 1993), ECB mode and PKCS#5 padding. Python 3 stdlib only.

Python's standard library has no Blowfish, and OpenSSL 3 keeps it in its legacy provider; the rocks 2.4
test peer (tools/rockspeer.py) needs it for the reconnection challenge-response (docs/rocks.md §5.3):
Blowfish-ECB keyed by the 16-byte DH-derived key, 32-byte challenges padded to 40.

Written from the algorithm's definition: 16 rounds; P-array (18 words) and four S-boxes (256 words each)
initialised with the fractional hexadecimal digits of pi, which are computed here (the Chudnovsky series) rather
than copied; the key is XORed cyclically into P, then the all-zero block is encrypted over and over to
replace P and the S-boxes in order. Blocks are two big-endian 32-bit halves, as in every implementation
the standard test vectors were made with (tools/blowfish_test.py checks Eric Young's vectors).

    bf = Blowfish(key)                       # 1 to 72 key bytes (the published definition stops at 56)
    bf.encrypt_block(b) / bf.decrypt_block(b)          # 8 bytes
    ecb_encrypt(key, data)                   # PKCS#5 padding added (always 1-8 bytes)
    ecb_decrypt(key, data)                   # padding checked and removed, as OpenSSL 0.9.6 does
"""

import math
import struct

ROUNDS = 16
BLOCK = 8
_MASK = 0xFFFFFFFF
_INIT = None                      # (P, S0, S1, S2, S3) from pi, computed once


def pi_fraction_words(count):
    """The first `count` 32-bit words of pi's fractional part (0x243F6A88, 0x85A308D3, ...), by the
    Chudnovsky series with binary splitting, in fixed point with 64 guard bits."""
    guard = 64
    bits = 32 * count + guard
    terms = bits // 47 + 2                  # each term adds about 14.18 decimal digits (47.1 bits)

    def split(a, b):
        if b - a == 1:
            if a == 0:
                p = q = 1
            else:
                p = (6 * a - 5) * (2 * a - 1) * (6 * a - 1)
                q = a * a * a * 10939058860032000
            t = p * (13591409 + 545140134 * a)
            return p, q, -t if a & 1 else t
        m = (a + b) // 2
        p1, q1, t1 = split(a, m)
        p2, q2, t2 = split(m, b)
        return p1 * p2, q1 * q2, q2 * t1 + p1 * t2

    _, q, t = split(0, terms)
    one = 1 << bits
    pi = q * 426880 * math.isqrt(10005 * one * one) // t
    fraction = (pi - 3 * one) >> guard
    return [(fraction >> (32 * (count - 1 - i))) & _MASK for i in range(count)]


def _initial_boxes():
    global _INIT
    if _INIT is None:
        words = pi_fraction_words(18 + 4 * 256)
        _INIT = (words[:18],) + tuple(words[18 + 256 * i:18 + 256 * (i + 1)] for i in range(4))
    return _INIT


class Blowfish:
    def __init__(self, key):
        key = bytes(key)
        if not 1 <= len(key) <= 72:
            raise ValueError("Blowfish key of %d bytes (1 to 72)" % len(key))
        p, s0, s1, s2, s3 = _initial_boxes()
        self.p = list(p)
        self.s = [list(s0), list(s1), list(s2), list(s3)]
        pos = 0
        for i in range(ROUNDS + 2):
            word = 0
            for _ in range(4):
                word = (word << 8) | key[pos]
                pos = (pos + 1) % len(key)
            self.p[i] ^= word
        left = right = 0
        for i in range(0, ROUNDS + 2, 2):
            left, right = self._encrypt(left, right)
            self.p[i], self.p[i + 1] = left, right
        for box in self.s:
            for i in range(0, 256, 2):
                left, right = self._encrypt(left, right)
                box[i], box[i + 1] = left, right

    def _encrypt(self, left, right):
        p = self.p
        s0, s1, s2, s3 = self.s
        for i in range(ROUNDS):
            left ^= p[i]
            right ^= ((((s0[left >> 24] + s1[(left >> 16) & 0xFF]) & _MASK) ^ s2[(left >> 8) & 0xFF])
                      + s3[left & 0xFF]) & _MASK
            left, right = right, left
        left, right = right, left
        right ^= p[ROUNDS]
        left ^= p[ROUNDS + 1]
        return left, right

    def _decrypt(self, left, right):
        p = self.p
        s0, s1, s2, s3 = self.s
        for i in range(ROUNDS + 1, 1, -1):
            left ^= p[i]
            right ^= ((((s0[left >> 24] + s1[(left >> 16) & 0xFF]) & _MASK) ^ s2[(left >> 8) & 0xFF])
                      + s3[left & 0xFF]) & _MASK
            left, right = right, left
        left, right = right, left
        right ^= p[1]
        left ^= p[0]
        return left, right

    def encrypt_block(self, block):
        if len(block) != BLOCK:
            raise ValueError("a Blowfish block is 8 bytes, not %d" % len(block))
        return struct.pack(">II", *self._encrypt(*struct.unpack(">II", block)))

    def decrypt_block(self, block):
        if len(block) != BLOCK:
            raise ValueError("a Blowfish block is 8 bytes, not %d" % len(block))
        return struct.pack(">II", *self._decrypt(*struct.unpack(">II", block)))


def pkcs5_pad(data):
    n = BLOCK - len(data) % BLOCK
    return bytes(data) + bytes([n]) * n


def ecb_encrypt(key, data, pad=True):
    """Blowfish-ECB of data, PKCS#5-padded first (so 32 bytes give 40) unless pad is False (then the
    length must be a multiple of 8)."""
    bf = key if isinstance(key, Blowfish) else Blowfish(key)
    data = pkcs5_pad(data) if pad else bytes(data)
    if len(data) % BLOCK:
        raise ValueError("%d bytes is not a whole number of blocks" % len(data))
    return b"".join(bf.encrypt_block(data[i:i + BLOCK]) for i in range(0, len(data), BLOCK))


def ecb_decrypt(key, data, unpad=True):
    """Blowfish-ECB decryption; with unpad, the padding is checked and removed as OpenSSL 0.9.6's
    EVP_DecryptFinal does: the input is one or more whole blocks, the last byte n is at most 8 and the
    last n bytes all equal n (0.9.6 accepts n = 0: nothing is removed). ValueError otherwise."""
    bf = key if isinstance(key, Blowfish) else Blowfish(key)
    data = bytes(data)
    if not data or len(data) % BLOCK:
        raise ValueError("ciphertext of %d bytes: not one or more whole blocks" % len(data))
    plain = b"".join(bf.decrypt_block(data[i:i + BLOCK]) for i in range(0, len(data), BLOCK))
    if not unpad:
        return plain
    n = plain[-1]
    if n > BLOCK or plain[len(plain) - n:] != bytes([n]) * n:
        raise ValueError("bad padding")
    return plain[:len(plain) - n]
