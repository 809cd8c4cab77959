#!/usr/bin/env python3
"""rocks_trace_compare_test.py: tools/rocks_trace_compare.py on the real rocks 2.4 captures.

    python3 -m unittest tools/rocks_trace_compare_test.py      (no root; about a second)

Each capture compared with itself is equal. A copy of rocks-basic.pcap whose DH public values and
reconnection port were changed is still equal (they are masked); copies altered in one place each
(an application byte, a buffer size, a sockaddr's padding, the announcement sharing a segment with the DH
length, a byte on the probe, the DH length field, a heartbeat's payload, the probe's answer) must differ,
and the difference must be the one reported. The altered copies are written with a small pcap editor below
(the frames of the fixture, with payload bytes replaced or segments merged, lengths kept consistent).
"""

import contextlib
import io
import os
import shutil
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import rocks_trace_compare as rtc  # noqa: E402

FIXTURES = os.environ.get("ROCKS_CAPTURES_DIR") or os.path.join(REPO, "Tests", "RackEngineTests", "Fixtures")
BASIC = os.path.join(FIXTURES, "rocks-basic.pcap")
BANNER = os.path.join(FIXTURES, "rocks-edp-banner.pcap")


class Pcap:
    """The records of an Ethernet pcap, editable: frames as bytearrays, with their record headers."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        assert struct.unpack(self.endian + "I", data[20:24])[0] == 1, "the fixtures are Ethernet captures"
        self.header = data[:24]
        self.records = []
        off = 24
        while off + 16 <= len(data):
            sec, frac, caplen, origlen = struct.unpack(self.endian + "IIII", data[off:off + 16])
            self.records.append([sec, frac, bytearray(data[off + 16:off + 16 + caplen])])
            off += 16 + caplen

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.header)
            for sec, frac, frame in self.records:
                f.write(struct.pack(self.endian + "IIII", sec, frac, len(frame), len(frame)))
                f.write(frame)

    @staticmethod
    def fields(frame):
        """(proto, src, sport, dst, dport, seq, flags, payload offset, payload length) of an IPv4 frame."""
        ip = 14
        if struct.unpack(">H", frame[12:14])[0] != 0x0800:
            return None
        ihl = (frame[ip] & 15) * 4
        total = struct.unpack(">H", frame[ip + 2:ip + 4])[0]
        proto = frame[ip + 9]
        src, dst = bytes(frame[ip + 12:ip + 16]), bytes(frame[ip + 16:ip + 20])
        l4 = ip + ihl
        sport, dport = struct.unpack(">HH", frame[l4:l4 + 4])
        if proto == 6:
            seq = struct.unpack(">I", frame[l4 + 4:l4 + 8])[0]
            hlen = (frame[l4 + 12] >> 4) * 4
            return ("tcp", src, sport, dst, dport, seq, frame[l4 + 13], l4 + hlen, ip + total - l4 - hlen)
        if proto == 17:
            return ("udp", src, sport, dst, dport, None, None, l4 + 8, ip + total - l4 - 8)
        return None

    def find(self, pred):
        """Indexes of the records whose fields satisfy pred."""
        out = []
        for i, (_, _, frame) in enumerate(self.records):
            f = self.fields(frame)
            if f is not None and pred(f):
                out.append(i)
        return out

    def set_payload(self, i, payload):
        """Replace record i's TCP/UDP payload (any length): IP total length and UDP length follow."""
        frame = self.records[i][2]
        f = self.fields(frame)
        start, length = f[7], f[8]
        new = frame[:start] + bytearray(payload)
        total = len(new) - 14
        new[16:18] = struct.pack(">H", total)
        if f[0] == "udp":
            new[start - 4:start - 2] = struct.pack(">H", 8 + len(payload))
        self.records[i][2] = new

    def payload(self, i):
        f = self.fields(self.records[i][2])
        return bytes(self.records[i][2][f[7]:f[7] + f[8]])


def data_connection(path):
    """The rock connection of a capture: (client ip bytes, client port, ISNs per direction)."""
    conns = rtc.tcp_connections(rtc.read_pcap(path), rtc.first_port(rtc.read_pcap(path)))
    rock = [c for c in conns if c.kind == "rock"][0]
    probe = [c for c in conns if c.kind == "probe"][0]
    return rock, probe


def ip(text):
    return bytes(int(x) for x in text.split("."))


class Edit:
    """A copy of a fixture with one change, in a temporary directory."""

    def __init__(self, test, source):
        self.test = test
        self.pcap = Pcap(source)
        self.rock, self.probe = data_connection(source)

    def segment(self, conn, d, rel):
        """The record index of the first transmission of conn's segment at relative seq rel."""
        client, server = conn.client, conn.server
        src, dst = (client, server) if d == "c2s" else (server, client)
        seq = (conn.isn[d] + rel) & 0xFFFFFFFF
        found = self.pcap.find(lambda f: f[0] == "tcp" and f[1] == ip(src[0]) and f[2] == src[1]
                               and f[3] == ip(dst[0]) and f[4] == dst[1] and f[5] == seq and f[8] > 0)
        self.test.assertTrue(found, "no segment at rel %d %s" % (rel, d))
        return found[0]

    def patch(self, conn, d, rel, offset, new):
        i = self.segment(conn, d, rel)
        payload = bytearray(self.pcap.payload(i))
        payload[offset:offset + len(new)] = new
        self.pcap.set_payload(i, payload)

    def write(self, name):
        path = os.path.join(self.test.tmp, name)
        self.pcap.write(path)
        return path


def run(*argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = rtc.main(list(argv))
    return rc, out.getvalue()


@unittest.skipUnless(os.path.isfile(BASIC), "the rocks captures are not there")
class CompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rtc-test.")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def assertEqualCaptures(self, ref, path, side="both"):
        rc, out = run("compare", ref, path, "--side", side)
        self.assertEqual(rc, 0, out)
        self.assertIn("EQUAL", out)
        return out

    def assertDifferent(self, ref, path, expected, side="both"):
        rc, out = run("compare", ref, path, "--side", side)
        self.assertEqual(rc, 1, out)
        fails = [line for line in out.splitlines() if line.strip().startswith("FAIL")]
        self.assertTrue(any(expected in line for line in fails), "expected a failure mentioning %r:\n%s" % (expected, out))
        return out

    # -- equal -------------------------------------------------------------------------------------

    def test_basic_against_itself(self):
        out = self.assertEqualCaptures(BASIC, BASIC)
        self.assertIn("connections: reference probe rock, run probe rock", out)
        self.assertIn("the reference's 150528 application bytes, byte for byte", out)

    def test_banner_against_itself(self):
        out = self.assertEqualCaptures(BANNER, BANNER)
        self.assertIn("s2c banner: the same 22 bytes", out)
        self.assertIn("the probe's answer is the reference's 38 bytes (banner + announcement)", out)

    def test_dh_values_and_sockaddr_ports_are_masked(self):
        e = Edit(self, BASIC)
        e.patch(e.rock, "c2s", 21, 0, bytes(range(0x81, 0x91)))            # the client's DH value
        e.patch(e.rock, "s2c", 21, 0, bytes(range(0x41, 0x51)))            # the server's
        e.patch(e.rock, "c2s", 37, 2, b"\x12\x34")                          # the reconnection port
        path = e.write("masked.pcap")
        with open(path, "rb") as a, open(BASIC, "rb") as b:
            self.assertNotEqual(a.read(), b.read())
        out = self.assertEqualCaptures(BASIC, path)
        self.assertIn("names a socket (10.201.0.1:4660)", out)

    # -- different ---------------------------------------------------------------------------------

    def test_an_application_byte(self):
        e = Edit(self, BASIC)
        i = e.segment(e.rock, "c2s", 77 + 1448)
        payload = bytearray(e.pcap.payload(i))
        payload[10] ^= 0xFF
        e.pcap.set_payload(i, payload)
        out = self.assertDifferent(BASIC, e.write("app.pcap"), "c2s app: the reference's 150528 application bytes")
        self.assertIn("first difference at stream offset %d" % (76 + 1448 + 10), out)
        # The same copy compared for the server's bytes only is equal.
        self.assertEqualCaptures(BASIC, e.write("app.pcap"), side="server")

    def test_a_buffer_size(self):
        e = Edit(self, BASIC)
        e.patch(e.rock, "s2c", 53, 0, b"\x00\x00\x80\x00")
        self.assertDifferent(BASIC, e.write("sndbuf.pcap"), "s2c sndbuf: 00 01 00 00 as the reference", side="server")

    def test_sockaddr_padding(self):
        e = Edit(self, BASIC)
        e.patch(e.rock, "c2s", 61, 8, b"\x01")
        self.assertDifferent(BASIC, e.write("padding.pcap"), "c2s hb-addr: 8 zero bytes of padding", side="client")

    def test_sockaddr_family(self):
        e = Edit(self, BASIC)
        e.patch(e.rock, "c2s", 37, 0, b"\x00\x02")
        self.assertDifferent(BASIC, e.write("family.pcap"), "c2s rec-addr: family 02 00", side="client")

    def test_announcement_sharing_a_segment(self):
        e = Edit(self, BASIC)
        ann = e.segment(e.rock, "c2s", 1)
        dh_len = e.segment(e.rock, "c2s", 17)
        e.pcap.set_payload(ann, e.pcap.payload(ann) + e.pcap.payload(dh_len))
        del e.pcap.records[dh_len]
        self.assertDifferent(BASIC, e.write("merged.pcap"), "c2s announcement: a segment of its own", side="client")

    def test_a_banner_sharing_the_announcements_segment(self):
        e = Edit(self, BANNER)
        banner = e.segment(e.rock, "s2c", 1)
        ann = e.segment(e.rock, "s2c", 23)
        e.pcap.set_payload(banner, e.pcap.payload(banner) + e.pcap.payload(ann))
        del e.pcap.records[ann]
        self.assertDifferent(BANNER, e.write("banner-merged.pcap"), "s2c announcement: a segment of its own", side="server")
        self.assertEqualCaptures(BANNER, e.write("banner-merged.pcap"), side="client")

    def test_the_dh_length_field(self):
        e = Edit(self, BASIC)
        e.patch(e.rock, "c2s", 17, 0, b"\x00\x00\x00\x0f")
        out = self.assertDifferent(BASIC, e.write("dhlen.pcap"), "c2s dh-key", side="client")
        self.assertIn("FAIL", out)

    def test_a_byte_on_the_probe(self):
        e = Edit(self, BASIC)
        fin = e.pcap.find(lambda f: f[0] == "tcp" and f[2] == e.probe.client[1] and f[6] & rtc.FIN)[0]
        e.pcap.set_payload(fin, b"Z")
        self.assertDifferent(BASIC, e.write("probe-data.pcap"), "the run's connections are the reference's: probe rock")

    def test_the_probe_answer(self):
        e = Edit(self, BASIC)
        e.patch(e.probe, "s2c", 1, 15, b"!")
        self.assertDifferent(BASIC, e.write("answer.pcap"), "the probe's answer is the reference's 16 bytes", side="server")
        self.assertEqualCaptures(BASIC, e.write("answer.pcap"), side="client")

    def test_a_heartbeat_payload(self):
        e = Edit(self, BASIC)
        hb = e.pcap.find(lambda f: f[0] == "udp")[1]
        e.pcap.set_payload(hb, b"y")
        self.assertDifferent(BASIC, e.write("hb.pcap"), "run: every UDP datagram between the hosts is b\"x\"")

    def test_a_heartbeat_to_the_wrong_socket(self):
        e = Edit(self, BASIC)
        src = ip(e.rock.client[0])
        hb = e.pcap.find(lambda f: f[0] == "udp" and f[1] == src)[0]
        frame = e.pcap.records[hb][2]
        l4 = 14 + (frame[14] & 15) * 4
        frame[l4 + 2:l4 + 4] = b"\x27\x0f"                                  # destination port 9999
        self.assertDifferent(BASIC, e.write("hb-port.pcap"), "run: the client's heartbeats go from its advertised",
                             side="client")

    def test_a_missing_probe(self):
        e = Edit(self, BASIC)
        port = e.probe.client[1]
        e.pcap.records = [r for r in e.pcap.records
                          if (Pcap.fields(r[2]) or ("",))[0] != "tcp" or port not in Pcap.fields(r[2])[2:5:2]]
        self.assertDifferent(BASIC, e.write("noprobe.pcap"), "the run's connections are the reference's")

    # -- heartbeats and errors -----------------------------------------------------------------------

    def test_heartbeats(self):
        rc, out = run("heartbeats", BASIC, "--min-span", "1.5")
        self.assertEqual(rc, 0, out)
        rc, out = run("heartbeats", BASIC)                                 # 2 s of heartbeats, not 5
        self.assertEqual(rc, 1, out)
        self.assertIn("heartbeats over at least 5.0 s", out)
        e = Edit(self, BASIC)
        src = ip(e.rock.client[0])
        hb = e.pcap.find(lambda f: f[0] == "udp" and f[1] == src)[1]
        e.pcap.records[hb][1] += 400000                                     # 0.4 s late
        rc, out = run("heartbeats", e.write("late.pcap"), "--min-span", "1.5")
        self.assertEqual(rc, 1, out)
        self.assertIn("FAIL client -> server: longest interval 1.400 s", out)

    def test_unreadable(self):
        path = os.path.join(self.tmp, "junk.pcap")
        with open(path, "wb") as f:
            f.write(b"not a capture at all, not even close")
        rc, out = run("compare", BASIC, path, "--side", "client")
        self.assertEqual(rc, 2, out)
        self.assertIn("not a pcap file", out)

    def test_truncated_packets_are_refused(self):
        p = Pcap(BASIC)
        with open(os.path.join(self.tmp, "cut.pcap"), "wb") as f:
            f.write(p.header[:16] + struct.pack(p.endian + "I", 96) + p.header[20:])
            for sec, frac, frame in p.records:
                f.write(struct.pack(p.endian + "IIII", sec, frac, min(len(frame), 96), len(frame)))
                f.write(frame[:96])
        rc, out = run("compare", BASIC, os.path.join(self.tmp, "cut.pcap"), "--side", "client")
        self.assertEqual(rc, 2, out)
        self.assertIn("cut by the snap length", out)


if __name__ == "__main__":
    unittest.main()
