#!/usr/bin/env python3
"""Unit test of tools/rocks_resume_time.py on the real rocks 2.4 failure fixtures (no root; under a second):

    python3 -m unittest tools/rocks_resume_time_test.py

The figures are the ones docs/rocks.md §13 and bench/rocks quote: in each capture the path's return, the 1of2
winner and the first application bytes after the recovery messages each way. The same fixtures cut to 200 bytes a
packet (bench/rocks captures 256) must give the same figures: the recovery messages end at stream byte
125, and 66 bytes of headers come first.
"""

import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rocks_resume_time as rrt  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "RackEngineTests", "Fixtures")


def fixture(name):
    return os.path.join(FIXTURES, "rocks-%s-reconnect.pcap" % name)


def cut(src, dst, snaplen):
    """Copy a classic little-endian pcap keeping at most snaplen bytes of each record (as tcpdump -s does)."""
    with open(src, "rb") as f:
        data = f.read()
    assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    out = bytearray(data[:16] + struct.pack("<I", snaplen) + data[20:24])
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack("<IIII", data[off:off + 16])
        keep = min(caplen, snaplen)
        out += struct.pack("<IIII", sec, frac, keep, origlen) + data[off + 16:off + 16 + keep]
        off += 16 + caplen
    with open(dst, "wb") as f:
        f.write(out)


def early_syn(src, dst, addr, port, seconds):
    """Copy a classic little-endian pcap with a copy of the SYN from addr:port inserted `seconds` before it, as
    the first transmission of a SYN the kernel retransmitted."""
    with open(src, "rb") as f:
        data = f.read()
    records, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[off:off + 16])
        records.append((sec * 1_000_000 + frac, data[off:off + 16 + caplen]))
        off += 16 + caplen
    index = {p.index: p for p in rrt.read_pcap(src)}
    syn = next(i for i, p in sorted(index.items())
               if p.flags & rrt.SYN and not p.flags & rrt.ACK and (p.src, p.sport) == (addr, port))
    us, raw = records[syn - 1]
    early = us - int(seconds * 1_000_000)
    copy = struct.pack("<II", early // 1_000_000, early % 1_000_000) + raw[8:]
    at = max(i for i, (t, _) in enumerate(records) if t <= early) + 1
    records.insert(at, (early, copy))
    with open(dst, "wb") as f:
        f.write(data[:24] + b"".join(r for _, r in records))


class ResumeTimeTest(unittest.TestCase):
    def check(self, r, how, winner, to_server_ms, to_client_ms):
        self.assertEqual(r["server"], "10.201.0.2:5000")
        self.assertEqual(r["return_how"], how)
        self.assertEqual(r["reconnection"], winner)
        self.assertEqual(r["directions"]["to_server"]["recovery_bytes"], 124)
        self.assertEqual(r["directions"]["to_client"]["recovery_bytes"], 125)
        self.assertAlmostEqual(r["from_return"]["to_server"] * 1000, to_server_ms, delta=0.1)
        self.assertAlmostEqual(r["from_return"]["to_client"] * 1000, to_client_ms, delta=0.1)
        self.assertAlmostEqual(r["from_return"]["both"], max(r["from_return"]["to_server"], r["from_return"]["to_client"]))

    def test_blackhole(self):
        r = rrt.analyse(fixture("blackhole"))
        # 25 s without a sign of the path, then the server's 1of2 SYN to the client's listener is answered and wins.
        self.assertAlmostEqual(r["outage_s"], 25.49, delta=0.01)
        self.check(r, "SYN answered by a SYN-ACK", "10.201.0.2:32990 > 10.201.0.1:35849", 981.7, 981.5)
        self.assertEqual(r["from_return"]["reconnection_syn"], 0.0)
        # The client's SYN 0.496 s earlier drew nothing: the path came back in between.
        self.assertAlmostEqual((r["return"] - r["last_unanswered_syn"]) * 1000, 496.0, delta=0.1)
        self.assertEqual(r["unanswered_syns"], 24)

    def test_linkdown(self):
        r = rrt.analyse(fixture("linkdown"))
        # At link-up the server's retransmission (queued while A's link was down) meets A's kernel, which resets it.
        self.assertAlmostEqual(r["outage_s"], 10.05, delta=0.01)
        self.check(r, "segment answered by a bare RST", "10.201.0.2:53762 > 10.201.0.1:37949", 988.5, 989.5)
        self.assertIsNone(r["last_unanswered_syn"])

    def test_lift(self):
        r = rrt.analyse(fixture("blackhole"))
        s = rrt.analyse(fixture("blackhole"), lift=r["return"] - 0.25)
        self.assertAlmostEqual(s["from_lift"]["return"], 0.25)
        self.assertAlmostEqual(s["from_lift"]["both"], r["from_return"]["both"] + 0.25)

    def test_snap_length(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("blackhole", "linkdown", "ipchange"):
                whole = rrt.analyse(fixture(name))
                path = os.path.join(tmp, name + ".pcap")
                cut(fixture(name), path, 200)
                self.assertEqual(rrt.analyse(path)["from_return"], whole["from_return"], name)
                # Too short to hold the recovery messages' lengths: refused, not guessed.
                cut(fixture(name), path, 54)
                with self.assertRaises(rrt.CaptureError):
                    rrt.analyse(path)

    def test_retransmitted_syn(self):
        # A 1of2 SYN sent in the outage may be retransmitted by the kernel once the path is back (before rocks gives
        # it up after 1 s): the answered retransmission is the return, and its connection still the winner.
        whole = rrt.analyse(fixture("blackhole"))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "retransmitted.pcap")
            early_syn(fixture("blackhole"), path, "10.201.0.2", 32990, 1.0)
            r = rrt.analyse(path)
        self.assertEqual(r["return"], whole["return"])
        self.assertEqual(r["reconnection"], whole["reconnection"])
        self.assertEqual(r["from_return"], whole["from_return"])
        self.assertEqual(r["unanswered_syns"], whole["unanswered_syns"])

    def test_server_option(self):
        with self.assertRaises(rrt.CaptureError):
            rrt.analyse(fixture("blackhole"), server="10.9.9.9")
        self.assertEqual(rrt.analyse(fixture("blackhole"), server="10.201.0.2")["server"], "10.201.0.2:5000")


if __name__ == "__main__":
    unittest.main()
