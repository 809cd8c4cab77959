#!/usr/bin/env python3
"""rockspeer_test.py: fidelity test of tools/rockspeer.py against the real rocks 2.4 captures.

    python3 -m unittest tools/rockspeer_test.py      (or: python3 tools/rockspeer_test.py -v)

No root needed; it runs the peers over 127.0.0.1 only and takes a few seconds (the scenarios run
in parallel; the longest replays the 3 s of rocks-basic.pcap). The captures are the repository's
fixtures, Tests/RackEngineTests/Fixtures/rocks-*.pcap ($ROCKS_CAPTURES_DIR overrides).

What it does (tools/README.md has the full account):
  * reads the pcaps with the small reader below (classic pcap, either byte order, us or ns
    timestamps; Ethernet with VLAN tags, Linux cooked v1/v2 and raw IPv4 link types; IPv4 TCP and
    UDP), reassembles each TCP connection per direction (retransmissions dropped), and labels each
    captured segment by parsing the rocks byte stream (banner, announcement, dh-len, dh-key,
    rec-addr, sndbuf, rcvbuf, hb-addr, app);
  * runs rockspeer in both roles against each other, and each role against a scripted replay of the
    other side taken from the capture (same bytes, same order, same timing; the replay swaps in its
    own loopback sockaddrs so nothing leaves 127.0.0.1), with the capture's banner and application
    bytes;
  * compares rockspeer's trace (every write() and sendto() it made) with the capture's segments:
    the same segments in the same order, byte for byte, except the DH public value (random: its
    length and the length field must match) and the port and address inside the sockaddrs (their
    family bytes 02 00 and the 8 zero bytes must match, and the port and address must be the
    socket rockspeer really bound); the application bytes as streams; the heartbeat datagrams
    (payload, source and destination sockets, 1 s period, count).
  * As root (and with unshare(1)), it also runs both roles in a private network namespace, captures
    the loopback traffic itself (AF_PACKET, written as a Linux cooked pcap and read back with the
    same reader) and compares the segments on the wire: the init messages must be separate segments
    there too. Without root that test is skipped.
"""

import json
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PEER = os.path.join(HERE, "rockspeer.py")
sys.path.insert(0, HERE)
import rockspeer  # noqa: E402  (the peer's constants and DH helpers)
import blowfish  # noqa: E402  (tools/blowfish.py, for the replays' challenge-response)

ANN = rockspeer.ANNOUNCEMENT
DH_P = rockspeer.DH_P


def find_captures():
    candidates = [os.environ.get("ROCKS_CAPTURES_DIR"),
                  os.path.join(REPO, "Tests", "RackEngineTests", "Fixtures")]
    for c in candidates:
        if c and os.path.isfile(os.path.join(c, "rocks-basic.pcap")):
            return c
    return None


CAPTURES = find_captures()


# ---------------------------------------------------------------------------------------------------
# A small pcap reader

class Packet:
    __slots__ = ("ts", "proto", "src", "sport", "dst", "dport", "seq", "ack", "flags", "payload")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276


def read_pcap(path):
    """Packets of a classic pcap file: IPv4 TCP and UDP only (others are skipped)."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("%s: not a classic pcap file (magic %s)" % (path, magic.hex()))
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0x0FFFFFFF
    packets = []
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _origlen = struct.unpack(endian + "IIII", data[off:off + 16])
        off += 16
        frame = data[off:off + caplen]
        off += caplen
        ts = sec + frac / (1e9 if nanos else 1e6)
        ip = link_payload(frame, linktype)
        if ip is not None:
            pkt = parse_ipv4(ip, ts)
            if pkt is not None:
                packets.append(pkt)
    return packets


def link_payload(frame, linktype):
    """The IPv4 packet inside one frame, or None."""
    if linktype == LINKTYPE_ETHERNET:
        etype, off = struct.unpack(">H", frame[12:14])[0], 14
        while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:      # VLAN tags
            etype, off = struct.unpack(">H", frame[off + 2:off + 4])[0], off + 4
    elif linktype == LINKTYPE_LINUX_SLL:
        etype, off = struct.unpack(">H", frame[14:16])[0], 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        etype, off = struct.unpack(">H", frame[0:2])[0], 20
    elif linktype == LINKTYPE_RAW:
        etype, off = 0x0800, 0
    else:
        raise ValueError("unsupported pcap link type %d" % linktype)
    return frame[off:] if etype == 0x0800 else None


def parse_ipv4(ip, ts):
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    proto = ip[9]
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    l4 = ip[ihl:total]
    if proto == 6 and len(l4) >= 20:
        sport, dport, seq, ack, offx, flags = struct.unpack(">HHIIBB", l4[:14])
        return Packet(ts=ts, proto="tcp", src=src, sport=sport, dst=dst, dport=dport, seq=seq, ack=ack,
                      flags=flags, payload=bytes(l4[(offx >> 4) * 4:]))
    if proto == 17 and len(l4) >= 8:
        sport, dport, length = struct.unpack(">HHH", l4[:6])
        return Packet(ts=ts, proto="udp", src=src, sport=sport, dst=dst, dport=dport,
                      payload=bytes(l4[8:length]))
    return None


# ---------------------------------------------------------------------------------------------------
# TCP connections, per direction, and the rocks labels of their segments

class Segment:
    def __init__(self, ts, rel, payload):
        self.ts, self.rel, self.payload = ts, rel, payload
        self.label = None

    def __repr__(self):
        return "Segment(%s, rel=%d, %d bytes)" % (self.label, self.rel, len(self.payload))


class TcpConn:
    """One TCP connection: client = the SYN's sender. Per direction ("c2s", "s2c"): the data segments
    in sequence order (first transmission only), the relative seq of the FIN, the byte stream."""

    def __init__(self, syn):
        self.client = (syn.src, syn.sport)
        self.server = (syn.dst, syn.dport)
        self.t0 = syn.ts
        self.isn = {"c2s": syn.seq, "s2c": None}
        self.segments = {"c2s": [], "s2c": []}
        self.fin = {"c2s": None, "s2c": None}
        self.fin_ts = {"c2s": None, "s2c": None}
        self.rst = False
        self.kind = None

    def add(self, pkt, direction):
        if pkt.flags & Packet.SYN:
            self.isn[direction] = pkt.seq
            return
        if pkt.flags & Packet.RST:
            self.rst = True
        isn = self.isn[direction]
        if isn is None:
            return
        rel = (pkt.seq - isn) & 0xFFFFFFFF
        if pkt.payload and all(s.rel != rel for s in self.segments[direction]):
            self.segments[direction].append(Segment(pkt.ts, rel, pkt.payload))
        if pkt.flags & Packet.FIN and self.fin[direction] is None:
            self.fin[direction] = rel + len(pkt.payload)
            self.fin_ts[direction] = pkt.ts

    def stream(self, direction):
        segs = sorted(self.segments[direction], key=lambda s: s.rel)
        out, pos = bytearray(), 1
        for s in segs:
            if s.rel + len(s.payload) <= pos:
                continue
            if s.rel > pos:
                raise AssertionError("hole in the captured stream at rel seq %d" % pos)
            out += s.payload[pos - s.rel:]
            pos = s.rel + len(s.payload)
        return bytes(out)

    def ordered(self, direction):
        return sorted(self.segments[direction], key=lambda s: s.rel)


def tcp_connections(packets):
    conns, by_key = [], {}
    for p in packets:
        if p.proto != "tcp":
            continue
        key = (p.src, p.sport, p.dst, p.dport)
        rkey = (p.dst, p.dport, p.src, p.sport)
        if p.flags & Packet.SYN and not p.flags & Packet.ACK:
            if key in by_key and by_key[key].segments["c2s"]:
                continue                              # a retransmitted SYN of a live connection
            conn = TcpConn(p)
            conns.append(conn)
            by_key[key] = conn
            continue
        if key in by_key:
            by_key[key].add(p, "c2s")
        elif rkey in by_key:
            by_key[rkey].add(p, "s2c")
    return conns


INIT_LABELS = ["dh-len", "dh-key", "rec-addr", "sndbuf", "rcvbuf", "hb-addr"]


def rock_messages(stream, start):
    """(label, start, end) of the init messages from `start` (all rocks options on, §3)."""
    out, pos = [], start
    dh_len = struct.unpack(">I", stream[pos:pos + 4])[0]
    for label, size in (("dh-len", 4), ("dh-key", dh_len), ("rec-addr", 16), ("sndbuf", 4),
                        ("rcvbuf", 4), ("hb-addr", 16)):
        out.append((label, pos, pos + size))
        pos += size
    return out, pos


def label_connection(conn):
    """Classify a captured connection (probe, rock, plain) and label every segment."""
    c2s, s2c = conn.stream("c2s"), conn.stream("s2c")
    boundaries = {}
    if not c2s and conn.fin["c2s"] == 1:
        conn.kind = "probe"
        for d in ("c2s", "s2c"):
            for s in conn.ordered(d):
                s.label = "banner"
        if s2c.endswith(ANN):
            conn.ordered("s2c")[-1].label = "announcement"
        conn.app_start = {"c2s": len(c2s), "s2c": len(s2c)}
        return conn
    if c2s.startswith(ANN):
        conn.kind = "rock"
        ann_at = s2c.find(ANN)
        c_msgs, c_end = rock_messages(c2s, 16)
        s_msgs, s_end = rock_messages(s2c, ann_at + 16)
        boundaries["c2s"] = [("announcement", 0, 16)] + c_msgs
        boundaries["s2c"] = ([("banner", 0, ann_at)] if ann_at else []) + [("announcement", ann_at, ann_at + 16)] + s_msgs
        conn.app_start = {"c2s": c_end, "s2c": s_end}
        conn.banner = s2c[:ann_at]
    else:
        conn.kind = "plain"
        boundaries = {"c2s": [], "s2c": []}
        conn.app_start = {"c2s": 0, "s2c": 0}
    for d in ("c2s", "s2c"):
        for s in conn.ordered(d):
            off = s.rel - 1
            s.label = "app"
            for label, a, b in boundaries[d]:
                if a <= off < b:
                    s.label = label
                    if (off, off + len(s.payload)) != (a, b) and label != "banner":
                        s.label += "!split"         # a message not in a segment of its own
    return conn


class Capture:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(CAPTURES, name)
        self.packets = read_pcap(self.path)
        self.conns = [label_connection(c) for c in tcp_connections(self.packets)]
        self.udp = [p for p in self.packets if p.proto == "udp"]

    def pre_app(self, conn, d):
        """The captured segments before application data: [(label, bytes)]."""
        return [(s.label, s.payload) for s in conn.ordered(d) if s.label != "app"]

    def app(self, conn, d):
        return conn.stream(d)[conn.app_start[d]:]

    def hb_addr(self, conn, d):
        raw = [p for label, p in self.pre_app(conn, d) if label == "hb-addr"][0]
        return rockspeer.parse_sockaddr_in(raw)[:2]

    def datagrams(self, conn, d):
        """The captured heartbeats sent by the d side (source = its advertised heartbeat socket)."""
        src = self.hb_addr(conn, d)
        return [p for p in self.udp if (p.src, p.sport) == src]


# ---------------------------------------------------------------------------------------------------
# Running the peer

def fixed_privates():
    """Two DH private keys whose public values and shared secret are 16 bytes (no leading zero),
    so lengths compare equal to the capture's; the random path is tested on its own."""
    rng = random.Random(2002)
    while True:
        a = rng.getrandbits(126) | 1 << 126
        b = rng.getrandbits(126) | 1 << 126
        pa, pb = pow(2, a, DH_P), pow(2, b, DH_P)
        if min(pa.bit_length(), pb.bit_length(), pow(pb, a, DH_P).bit_length()) > 120:
            return a, b


CLIENT_PRIV, SERVER_PRIV = fixed_privates()


def read_trace(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def writes(trace, conn):
    return [e for e in trace if e["conn"] == conn and e["event"] == "write"]


class PeerProcess:
    """rockspeer.py in a subprocess, with its trace, stats and log in a scratch directory."""

    def __init__(self, workdir, name, argv):
        self.name = name
        self.trace_path = os.path.join(workdir, name + ".trace.jsonl")
        self.stats_path = os.path.join(workdir, name + ".stats.json")
        self.log_path = os.path.join(workdir, name + ".log")
        self.ready = os.path.join(workdir, name + ".ready")
        self.argv = [sys.executable, PEER] + argv + ["--trace", self.trace_path, "--stats", self.stats_path,
                                                     "--log", self.log_path, "-v", "--timeout", "30"]
        if argv[0] == "serve":
            self.argv += ["--ready-file", self.ready]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def address(self, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = read_text(self.ready)
            if text.endswith("\n"):
                return text.strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("%s did not start listening: %s" % (self.name, self.output()))

    def wait(self, timeout=40):
        try:
            self.out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, _ = self.proc.communicate()
        self.rc = self.proc.returncode
        self.trace = read_trace(self.trace_path) if os.path.exists(self.trace_path) else []
        self.stats = json.loads(read_text(self.stats_path) or "{}")
        return self

    def output(self):
        log = read_text(self.log_path)
        return "rc=%s\n%s\n%s" % (self.proc.returncode, getattr(self, "out", b"").decode(errors="replace"), log[-3000:])


def app_args(capture, conn, d, workdir, name):
    """Client application options replaying the capture's application: its bytes, in writes of the
    capture's chunk size, with the capture's average pause; it waits for the whole echo, then closes."""
    data = capture.app(conn, d)
    path = os.path.join(workdir, name + ".send.bin")
    with open(path, "wb") as f:
        f.write(data)
    segs = [s for s in conn.ordered(d) if s.label == "app"]
    sizes = [len(s.payload) for s in segs]
    chunk = max(set(sizes), key=sizes.count)
    span = segs[-1].ts - segs[0].ts
    interval = round(span / max(1, len(data) // chunk - 1), 3)
    back = len(capture.app(conn, "s2c" if d == "c2s" else "c2s"))
    return ["--send-file", path, "--chunk", str(chunk), "--interval", str(interval),
            "--receive-bytes", str(back + len(getattr(conn, "banner", b""))),
            "--receive-file", os.path.join(workdir, name + ".recv.bin")]


# ---------------------------------------------------------------------------------------------------
# Scripted replay of one side of a capture

class Replay(threading.Thread):
    """Plays the `side` ("client" or "server") of the captured connections against rockspeer over
    loopback: the side's segments are written as captured (TCP_NODELAY, one send each, not before
    their captured time from the connection's start), the other side's are read as byte counts in
    captured order, FINs are replayed, and so are the side's heartbeat datagrams (to rockspeer's
    advertised heartbeat address). The replay's sockaddrs are its own loopback sockets."""

    def __init__(self, capture, side, conns, target=None):
        super().__init__(daemon=True)
        self.capture, self.side, self.conns, self.target = capture, side, conns, target
        self.mine = "c2s" if side == "client" else "s2c"
        self.theirs = "s2c" if side == "client" else "c2s"
        self.received = []            # per connection: bytes read from rockspeer
        self.eof_extra = []           # per connection: bytes after the captured end, before EOF
        self.datagrams = []           # (time, payload, src) received on the replay's heartbeat socket
        self.hb_sent = []
        self.rec_probe = []           # what a connect() to rockspeer's reconnection address gave
        self.error = None
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.hb_address = "%s:%d" % self.udp.getsockname()
        self.rec = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.rec.bind(("127.0.0.1", 0))            # bound, not listening, as rocks
        self.peer_hb = None
        if side == "server":
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen(4)
            self.address = "%s:%d" % self.listener.getsockname()
        self.stop = threading.Event()

    def substitute(self, label, payload):
        if label == "rec-addr":
            return rockspeer.sockaddr_in_bytes(*self.rec.getsockname())
        if label == "hb-addr":
            return rockspeer.sockaddr_in_bytes(*self.udp.getsockname())
        return payload

    def run(self):
        rx = threading.Thread(target=self.receive_datagrams, daemon=True)
        rx.start()
        try:
            for conn in self.conns:
                self.play(conn)
        except Exception as e:          # reported by the test
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            time.sleep(0.05)
            self.stop.set()

    def receive_datagrams(self):
        while not self.stop.is_set():
            try:
                r, _, _ = select.select([self.udp], [], [], 0.05)
                if r:
                    data, src = self.udp.recvfrom(64)
                    self.datagrams.append((time.monotonic(), data, src))
            except (OSError, ValueError):           # closed by close()
                return

    def play(self, conn):
        if self.side == "server":
            self.listener.settimeout(15)
            sock, _ = self.listener.accept()
        else:
            host, port = self.target.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=15)
        sock.settimeout(15)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.monotonic()
        events = [(s.ts, d, "data", s) for d in ("c2s", "s2c") for s in conn.segments[d]]
        events += [(conn.fin_ts[d], d, "fin", None) for d in ("c2s", "s2c") if conn.fin_ts[d] is not None]
        events.sort(key=lambda e: e[0])
        got = bytearray()
        extra = b""
        hb_thread = None
        for ts, d, kind, seg in events:
            if d == self.mine:
                delay = (ts - conn.t0) - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
                if kind == "data":
                    sock.sendall(self.substitute(seg.label, seg.payload))
                else:
                    sock.shutdown(socket.SHUT_WR)
            elif kind == "data":
                want = len(seg.payload)
                piece = recv_exact(sock, want)
                got += piece
                if seg.label == "rec-addr":
                    self.rec_probe.append(probe_connect(rockspeer.parse_sockaddr_in(piece)[:2]))
                if seg.label == "hb-addr":
                    self.peer_hb = rockspeer.parse_sockaddr_in(piece)[:2]
                    hb_thread = threading.Thread(target=self.send_heartbeats, args=(conn, start), daemon=True)
                    hb_thread.start()
            else:
                extra = recv_until_eof(sock)
        sock.close()
        self.received.append(bytes(got))
        self.eof_extra.append(extra)

    def send_heartbeats(self, conn, start):
        mine = self.capture.hb_addr(conn, self.mine)
        for p in self.capture.udp:
            if (p.src, p.sport) != mine:
                continue
            delay = (p.ts - conn.t0) - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            self.udp.sendto(p.payload, self.peer_hb)
            self.hb_sent.append(time.monotonic())

    def close(self):
        self.stop.set()
        for s in (self.udp, self.rec, getattr(self, "listener", None)):
            if s is not None:
                s.close()


def probe_connect(addr):
    """Connect to a loopback address once: "refused" is what a bound, non-listening socket gives."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(addr)
        return "accepted"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error: %s" % e
    finally:
        s.close()


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise AssertionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_until_eof(sock):
    buf = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


# ---------------------------------------------------------------------------------------------------
# The failure captures (rocks-*-reconnect.pcap, made by tools/trim-capture.py): suspension, 1of2,
# authentication, recovery

RECOVERY_LABELS = ["hb-addr", "rec-addr", "rcvseq", "sndbuf", "rcvbuf"]


def runs(conn, d):
    """The captured byte runs of one direction: [(stream offset, bytes)], in order. A trimmed data
    connection has two (its init, then its tail)."""
    out = []
    for s in conn.ordered(d):
        off = s.rel - 1
        if out and out[-1][0] + len(out[-1][1]) >= off:
            start, data = out[-1]
            if off + len(s.payload) > start + len(data):
                out[-1] = (start, data + s.payload[start + len(data) - off:])
        else:
            out.append((off, s.payload))
    return out


class FailureCapture:
    """A trimmed failure capture. The data connection gives each side's counts when it suspended
    (sndseq: the last application byte it sent; the rocks offset is 76 each way), the winning
    reconnection connection the messages of each side (by rocks role, "client" and "server"), in order,
    with the time of the segment that carried their first byte."""

    def __init__(self, name):
        self.name = name
        self.path = os.path.join(CAPTURES, name)
        self.packets = read_pcap(self.path)
        self.t0 = self.packets[0].ts
        conns = tcp_connections(self.packets)
        self.probe, self.data = conns[0], conns[1]
        others = conns[2:]
        winners = [c for c in others if c.segments["c2s"] or c.segments["s2c"]]
        assert len(winners) == 1, "%s: %d reconnection connections with data" % (name, len(winners))
        self.rec = winners[0]
        self.attempts = [c for c in others if c is not self.rec]
        self.udp = [p for p in self.packets if p.proto == "udp"]
        # Which direction of the reconnection connection each rocks role sends on.
        server_ip = self.data.server[0]
        self.rec_dir = {"server": "c2s" if self.rec.client[0] == server_ip else "s2c"}
        self.rec_dir["client"] = "s2c" if self.rec_dir["server"] == "c2s" else "c2s"
        self.connector = "server" if self.rec_dir["server"] == "c2s" else "client"
        # The old data connection: its init (offset 76 each way) and tail.
        self.data_runs = {d: runs(self.data, d) for d in ("c2s", "s2c")}
        self.sndseq = {"client": self.stream_end("c2s") - 76, "server": self.stream_end("s2c") - 76}
        # The reconnection messages, each side.
        self.streams = {role: self.rec.stream(self.rec_dir[role]) for role in ("client", "server")}
        self.messages = {}
        self.app_start = {}
        self.rcvseq = {}
        for role in ("client", "server"):
            msgs, _ = self.parse_side(role, None)
            self.rcvseq[role] = struct.unpack(">I", [m for l, m, _ in msgs if l == "rcvseq"][0])[0]
        for role in ("client", "server"):
            other = "server" if role == "client" else "client"
            resend = self.sndseq[role] - self.rcvseq[other]
            self.messages[role], self.app_start[role] = self.parse_side(role, resend)

    def stream_end(self, d):
        start, data = self.data_runs[d][-1]
        return start + len(data)

    def old_app_bytes(self, role, a, b):
        """Application bytes [a, b) the side sent on the old data connection (from its tail run)."""
        d = "c2s" if role == "client" else "s2c"
        start, data = self.data_runs[d][-1]
        a, b = a + 76, b + 76
        assert start <= a <= b <= start + len(data), "%s: bytes %d-%d not captured" % (self.name, a, b)
        return data[a - start:b - start]

    def tail_app_offset(self, role):
        """The first application byte offset of the captured tail of the side's data stream."""
        d = "c2s" if role == "client" else "s2c"
        return self.data_runs[d][-1][0] - 76

    def parse_side(self, role, resend):
        """[(label, bytes, time of its first byte's segment)] of the side's reconnection messages."""
        stream = self.streams[role]
        segs = self.rec.ordered(self.rec_dir[role])

        def ts_at(off):
            for s in segs:
                if s.rel - 1 <= off < s.rel - 1 + len(s.payload):
                    return s.ts - self.t0
            return None

        out, pos = [], 0

        def take(label, n):
            nonlocal pos
            out.append((label, stream[pos:pos + n], ts_at(pos)))
            pos += n

        if role == "server":
            take("1of2-ack", 1)
        for what in ("challenge", "response"):
            n = struct.unpack(">I", stream[pos:pos + 4])[0]
            take(what + "-len", 4)
            take(what, n)
        for label, n in (("hb-addr", 16), ("rec-addr", 16), ("rcvseq", 4), ("sndbuf", 4), ("rcvbuf", 4)):
            take(label, n)
        if resend:
            take("resend", resend)
        return out, pos

    def message(self, role, label):
        return [m for l, m, _ in self.messages[role] if l == label][0]

    def time_of(self, role, label):
        return [t for l, _, t in self.messages[role] if l == label][0]

    def segments(self, role):
        """The reconnection segments the side sent, up to the end of its recovery messages."""
        end = sum(len(m) for l, m, _ in self.messages[role] if l != "resend")
        return [s for s in self.rec.ordered(self.rec_dir[role]) if s.rel - 1 < end]


def sockaddr_text(raw):
    ip, port, _ = rockspeer.parse_sockaddr_in(raw)
    return "%s:%d" % (ip, port)


class FailureReplay(threading.Thread):
    """Plays one rocks role ("server" or "client") of a failure capture against rockspeer in the other
    role, over loopback, so that rockspeer meets the capture's situation exactly:

      * EDP and init as rocks does them (its own DH value and sockaddrs);
      * the application: an echo, with the capture's counts at the moment of the failure. The client's
        application bytes are `app` (the test makes them the capture's own, so that resent bytes can be
        compared with the capture's byte for byte). As server it reads the capture's server rcvseq of
        them and echoes only the client's rcvseq back on the old connection (the rest of its echo
        "died in flight"); as client it sends only the server's rcvseq of them and reads only the
        client's rcvseq of the echo. Heartbeats each way, `hb_period` apart;
      * the failure: "rst" (link down: the side closes with a RST, as the capture's client kernel
        answered the server's retransmission) or "silence" (black hole: heartbeats and data stop, and
        the replay waits for rockspeer's suspension RST);
      * 1of2 as captured: the capture's connecting role connects (the replay, or rockspeer), the server
        writes the one byte (the capture's value when the replay is the server); `bad_key_first`
        makes the replay's first authentication use a wrong key;
      * authentication (§5.3) and recovery (§5.4) in the protocol's order: its rcvseq is the capture's,
        and its go-back-N is its ring from rockspeer's rcvseq on;
      * then the echo goes on: the client's application writes what is left of `app` (the bytes after
        the capture's sndseq: the capture's applications went on too) and closes once everything came
        back. `move_to` makes the replay's reconnection come from another loopback address (the
        capture's address change)."""

    def __init__(self, cap, side, trigger, app, hb_period=1.0, bad_key_first=False, move_to=None,
                 dh_private=None):
        super().__init__(daemon=True)
        self.cap, self.side, self.trigger, self.app = cap, side, trigger, app
        self.hb_period, self.bad_key_first, self.move_to = hb_period, bad_key_first, move_to
        self.dh = rockspeer.DiffieHellman(dh_private)
        self.peer_side = "client" if side == "server" else "server"
        self.c_snd, self.s_snd = cap.sndseq["client"], cap.sndseq["server"]
        self.c_rcv, self.s_rcv = cap.rcvseq["client"], cap.rcvseq["server"]
        self.my_rcvseq = cap.rcvseq[side]
        self.my_sndseq = cap.sndseq[side]
        self.extra = app[self.c_snd:]                   # written after the recovery
        # What the side's application wrote: the client's bytes, or the server's echo of them.
        self.ring = app[:self.my_sndseq]
        self.error = None
        self.log = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.rec = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.rec.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.rec.bind(("127.0.0.1", 0))                 # bound, not listening, as rocks
        self.peer_hb = self.peer_rec = None
        self.beating = threading.Event()
        self.datagrams = []
        self.stop = threading.Event()
        self.received_old = b""
        self.received_new = b""
        self.auth = []                                  # per attempt: dict
        self.recovery = {}
        self.suspended_at = None
        if side == "server":
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen(4)
            self.address = "%s:%d" % self.listener.getsockname()
        self.target = None

    # -- the thread --------------------------------------------------------------------------------

    def run(self):
        threading.Thread(target=self.heartbeats, daemon=True).start()
        try:
            old = self.edp_and_init()
            self.application(old)
            self.fail(old)
            sock = self.reconnect()
            self.recover(sock)
            self.finish(sock)
        except Exception as e:          # reported by the test
            import traceback
            self.error = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())
        finally:
            self.stop.set()

    def note(self, what, **kw):
        kw.update({"t": time.monotonic(), "what": what})
        self.log.append(kw)

    def heartbeats(self):
        next_beat = time.monotonic()
        while not self.stop.is_set():
            udp = self.udp
            try:
                r, _, _ = select.select([udp], [], [], 0.02)
                if r:
                    data, src = udp.recvfrom(64)
                    self.datagrams.append((time.monotonic(), data, "%s:%d" % src, "%s:%d" % udp.getsockname()))
            except (OSError, ValueError):             # swapped for the new one at recovery
                continue
            if self.beating.is_set() and self.peer_hb and time.monotonic() >= next_beat:
                try:
                    self.udp.sendto(b"x", self.peer_hb)
                except OSError:
                    pass
                next_beat = time.monotonic() + self.hb_period

    # -- the original connection ---------------------------------------------------------------------

    def edp_and_init(self):
        if self.side == "server":
            self.listener.settimeout(15)
            probe, _ = self.listener.accept()
            probe.settimeout(15)
            assert recv_until_eof(probe) == b"", "the probe carried data"
            probe.sendall(ANN)
            probe.close()
            sock, _ = self.listener.accept()
            sock.settimeout(15)
            assert recv_exact(sock, 16) == ANN
            sock.sendall(ANN)
        else:
            host, port = self.target.rsplit(":", 1)
            probe = socket.create_connection((host, int(port)), timeout=15)
            probe.shutdown(socket.SHUT_WR)
            assert recv_until_eof(probe) == ANN
            probe.close()
            sock = socket.create_connection((host, int(port)), timeout=15)
            sock.sendall(ANN)
            assert recv_exact(sock, 16) == ANN
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        public = self.dh.public_bytes
        sock.sendall(struct.pack(">I", len(public)))
        sock.sendall(public)
        n = struct.unpack(">I", recv_exact(sock, 4))[0]
        self.secret = self.dh.shared_secret(recv_exact(sock, n))
        self.key = rockspeer.blowfish_key(self.secret)
        sock.sendall(rockspeer.sockaddr_in_bytes(*self.rec.getsockname()))
        self.peer_rec = rockspeer.parse_sockaddr_in(recv_exact(sock, 16))[:2]
        sock.sendall(b"\x00\x01\x00\x00")
        sock.sendall(b"\x00\x01\x00\x00")
        assert recv_exact(sock, 8) == b"\x00\x01\x00\x00" * 2
        sock.sendall(rockspeer.sockaddr_in_bytes(*self.udp.getsockname()))
        self.peer_hb = rockspeer.parse_sockaddr_in(recv_exact(sock, 16))[:2]
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        self.beating.set()
        self.note("init-done")
        return sock

    def application(self, sock):
        """Bring both sides to the capture's counts at the failure."""
        if self.side == "server":
            got = bytearray()
            echoed = 0
            while len(got) < self.s_rcv:
                got += sock.recv(min(65536, self.s_rcv - len(got)))
                if len(got) > echoed and echoed < self.c_rcv:
                    n = min(len(got), self.c_rcv) - echoed
                    sock.sendall(got[echoed:echoed + n])
                    echoed += n
            self.received_old = bytes(got)
            assert self.received_old == self.app[:self.s_rcv], "rockspeer's application bytes differ"
            unread = self.c_snd - self.s_rcv          # rockspeer's last writes, which stay unread
        else:
            sender = threading.Thread(target=sock.sendall, args=(self.app[:self.s_rcv],), daemon=True)
            sender.start()
            got = recv_exact(sock, self.c_rcv)
            sender.join(15)
            self.received_old = got
            assert self.received_old == self.app[:self.c_rcv], "rockspeer's echo differs"
            unread = self.s_snd - self.c_rcv          # rockspeer's echo that stays unread
        # Wait until rockspeer's kernel has handed everything over: its sndseq is then the capture's.
        end = time.monotonic() + 15
        while unread and queued_bytes(sock) < unread:
            assert time.monotonic() < end, "rockspeer did not send its last %d bytes" % unread
            time.sleep(0.01)
        self.note("counts-reached", unread=queued_bytes(sock))

    def fail(self, sock):
        if self.trigger == "rst":
            self.beating.clear()
            end = time.monotonic() + 15                 # an abortive close drops what is not sent yet
            while unsent_bytes(sock):
                assert time.monotonic() < end, "rockspeer does not take its last bytes"
                time.sleep(0.005)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            self.suspended_at = time.monotonic()
            self.note("rst-sent")
            return
        # A black hole: silence, until rockspeer's suspension resets the old connection.
        self.beating.clear()
        self.note("silence")
        queued = queued_bytes(sock)
        end = time.monotonic() + 60
        while tcp_state(sock) != TCP_CLOSE:             # the RST, not a FIN (CLOSE_WAIT)
            assert tcp_state(sock) != TCP_CLOSE_WAIT, "rockspeer closed the old connection with a FIN"
            assert time.monotonic() < end, "rockspeer never reset the old connection"
            time.sleep(0.01)
        assert queued_bytes(sock) == queued, "data from rockspeer during the black hole"
        self.suspended_at = time.monotonic()
        self.note("rst-received")
        sock.close()

    # -- 1of2 and authentication --------------------------------------------------------------------

    def reconnect(self):
        attempt = 0
        while True:
            attempt += 1
            sock = self.one_of_two()
            wrong = self.bad_key_first and attempt == 1
            ok = self.authenticate(sock, bytes(16) if wrong else self.key, wrong)
            if ok:
                return sock
            assert wrong, "authentication failed with the right key: %s" % self.auth[-1]
            sock.close()

    def one_of_two(self):
        """The capture's connecting role connects to the other's reconnection address; the server
        writes the byte, the client reads it."""
        ack = self.cap.message("server", "1of2-ack")
        if self.cap.connector == self.side:
            end = time.monotonic() + 30
            refused = 0
            while True:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if self.move_to:
                    s.bind((self.move_to, 0))
                s.settimeout(5)
                try:
                    s.connect(self.peer_rec)
                    break
                except ConnectionRefusedError:
                    s.close()
                    refused += 1
                    assert time.monotonic() < end, "rockspeer's reconnection port never listened"
                    time.sleep(0.005)
            self.note("connected", refused=refused)
        else:
            self.rec.listen(1)
            self.rec.settimeout(30)
            s, _ = self.rec.accept()
            self.rec.close()
            rebound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # for a retry: same address
            rebound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            rebound.bind(s.getsockname())
            self.rec = rebound
            self.note("accepted")
        s.settimeout(15)
        if self.side == "server":
            s.sendall(ack)
        else:
            byte = recv_exact(s, 1)
            self.note("ack-received", byte=byte.hex())
        return s

    def authenticate(self, sock, key, wrong):
        cipher = blowfish.Blowfish(key)
        mine = os.urandom(32)
        challenge = blowfish.ecb_encrypt(cipher, mine)
        record = {"wrong_key": wrong, "challenge": challenge, "plain": mine}
        self.auth.append(record)
        sock.sendall(struct.pack(">I", len(challenge)))
        sock.sendall(challenge)
        n = struct.unpack(">I", recv_exact(sock, 4))[0]
        theirs = recv_exact(sock, n)
        record["peer_challenge"] = theirs
        try:
            answer = blowfish.ecb_decrypt(cipher, theirs)
        except ValueError:
            record["result"] = "undecryptable"
            return False
        record["answer"] = answer
        sock.sendall(struct.pack(">I", len(answer)))
        sock.sendall(answer)
        try:
            m = struct.unpack(">I", recv_exact(sock, 4))[0]
            reply = recv_exact(sock, m)
        except (AssertionError, OSError) as e:
            record["result"] = "closed: %s" % e
            return False
        record["peer_reply"] = reply
        record["result"] = "ok" if reply == mine else "mismatch"
        self.note("authenticated" if reply == mine else "auth-failed")
        return reply == mine

    # -- recovery and after --------------------------------------------------------------------------

    def recover(self, sock):
        hb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        hb.bind((sock.getsockname()[0], 0))
        rec = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        rec.bind((sock.getsockname()[0], 0))
        r = self.recovery
        sock.sendall(rockspeer.sockaddr_in_bytes(*hb.getsockname()))
        r["peer_hb_addr"] = recv_exact(sock, 16)
        r["peer_hb_at"] = time.monotonic()
        sock.sendall(rockspeer.sockaddr_in_bytes(*rec.getsockname()))
        r["peer_rec_addr"] = recv_exact(sock, 16)
        sock.sendall(struct.pack(">I", self.my_rcvseq))
        r["peer_rcvseq"] = struct.unpack(">I", recv_exact(sock, 4))[0]
        sock.sendall(b"\x00\x01\x00\x00\x00\x01\x00\x00")
        r["peer_sizes"] = recv_exact(sock, 8)
        resend = self.ring[r["peer_rcvseq"]:]
        r["resent"] = len(resend)
        if resend:
            sock.sendall(resend)
        rec.close()                                     # rockspeer never reconnects to it here
        old_udp, self.udp = self.udp, hb
        old_udp.close()
        r["my_hb_addr"] = "%s:%d" % hb.getsockname()
        self.peer_hb = rockspeer.parse_sockaddr_in(r["peer_hb_addr"])[:2]
        self.beating.set()
        self.note("recovered")

    def finish(self, sock):
        """The echo goes on: everything rockspeer's side still owes arrives, from its rcvseq on."""
        sock.settimeout(15)
        if self.side == "server":
            # rockspeer's go-back-N (its ring from our rcvseq on), then the rest of its application's
            # bytes, all echoed; then its EOF.
            want = len(self.app) - self.s_rcv
            got = bytearray()
            while len(got) < want:
                chunk = sock.recv(min(65536, want - len(got)))
                assert chunk, "EOF after %d of %d bytes" % (len(got), want)
                got += chunk
                sock.sendall(chunk)
            self.received_new = bytes(got)
            self.eof_extra = recv_until_eof(sock)
        else:
            # rockspeer's go-back-N of its echo, the echo of our go-back-N and of the rest; then we close.
            threading.Thread(target=sock.sendall, args=(self.extra,), daemon=True).start()
            self.received_new = recv_exact(sock, len(self.app) - self.c_rcv)
            time.sleep(1.5 * self.hb_period)        # heartbeats on the new addresses
        self.note("done")
        sock.close()

    def close(self):
        self.stop.set()
        for s in (self.udp, self.rec, getattr(self, "listener", None)):
            if s is not None:
                s.close()


TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def unsent_bytes(sock):
    """Bytes in the socket's send queue, not yet acknowledged (SIOCOUTQ)."""
    import fcntl
    import termios
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]


def queued_bytes(sock):
    """Bytes in the socket's receive queue (SIOCINQ)."""
    import fcntl
    import termios
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


# ---------------------------------------------------------------------------------------------------
# Comparisons

class Compare:
    """Counts what was compared, for the summary printed at the end."""
    counts = {}
    lock = threading.Lock()

    @classmethod
    def add(cls, capture, what, n):
        with cls.lock:
            key = (capture, what)
            cls.counts[key] = cls.counts.get(key, 0) + n


def assert_segments_match(tc, capture_name, expected, trace_writes, own_addrs, what):
    """expected: [(label, bytes)] from the capture; trace_writes: rockspeer's writes (same conn and
    direction) before its first application write. Same labels, lengths, bytes in order, with the
    random DH value and the sockaddr port/address masked (but checked against own_addrs)."""
    ours = [(w["label"], bytes.fromhex(w["hex"])) for w in trace_writes]
    tc.assertEqual([l for l, _ in ours], [l for l, _ in expected],
                   "%s: %s: the sequence of writes differs from the capture's segments" % (capture_name, what))
    dh_len = None
    for (label, mine), (_, theirs) in zip(ours, expected):
        tc.assertEqual(len(mine), len(theirs), "%s: %s: %s length" % (capture_name, what, label))
        if label == "dh-len":
            dh_len = struct.unpack(">I", mine)[0]
            tc.assertEqual(mine, theirs, "%s: %s: dh-len" % (capture_name, what))
        elif label == "dh-key":
            tc.assertEqual(len(mine), dh_len, "%s: %s: dh-key length vs its length field" % (capture_name, what))
            tc.assertLess(int.from_bytes(mine, "big"), DH_P)
        elif label in ("rec-addr", "hb-addr"):
            tc.assertEqual(mine[0:2], theirs[0:2], "%s: %s: %s family bytes" % (capture_name, what, label))
            tc.assertEqual(mine[0:2], b"\x02\x00")
            tc.assertEqual(mine[8:16], theirs[8:16], "%s: %s: %s sin_zero" % (capture_name, what, label))
            ip, port, _ = rockspeer.parse_sockaddr_in(mine)
            tc.assertEqual("%s:%d" % (ip, port), own_addrs[label], "%s: %s: %s is not the bound socket"
                           % (capture_name, what, label))
        else:
            tc.assertEqual(mine.hex(), theirs.hex(), "%s: %s: %s bytes" % (capture_name, what, label))
    Compare.add(capture_name, "tcp segments (probe, announcement, banner, init) byte for byte", len(ours))


def pre_app_writes(trace, conn):
    out = []
    for w in writes(trace, conn):
        if w["label"] == "app":
            break
        out.append(w)
    return out


def app_stream(trace, conn):
    return b"".join(bytes.fromhex(w["hex"]) for w in writes(trace, conn) if w["label"] == "app")


def init_done(trace, conn):
    return [e for e in trace if e["conn"] == conn and e["event"] == "init-done"][0]


def own_addrs(trace, conn):
    e = init_done(trace, conn)
    return {"rec-addr": e["local_rec_addr"], "hb-addr": e["local_hb_addr"]}


def heartbeats(trace):
    return [e for e in trace if e["event"] == "sendto"]


# ---------------------------------------------------------------------------------------------------
# The scenarios, all started at once (setUpModule) and checked by the test classes

SCENARIOS = {}
WORKDIR = None


class Scenario:
    def __init__(self, name):
        self.name = name
        self.procs = {}
        self.replay = None

    def finish(self):
        for p in self.procs.values():
            p.wait()
        if self.replay is not None:
            self.replay.join(timeout=30)
            self.replay.close()


def start_scenarios():
    """Start every loopback scenario in parallel; returns when all have finished."""
    w = WORKDIR
    basic = Capture("rocks-basic.pcap")
    banner = Capture("rocks-edp-banner.pcap")
    fallback = Capture("rocks-edp-fallback.pcap")
    caps = {"basic": basic, "banner": banner, "fallback": fallback}
    dh_c = ["--dh-private", "%x" % CLIENT_PRIV]
    dh_s = ["--dh-private", "%x" % SERVER_PRIV]

    for key in ("basic", "banner"):
        cap = caps[key]
        probe, data = cap.conns[0], cap.conns[1]
        banner_args = ["--banner", data.banner.decode()] if data.banner else []
        # Both roles against each other.
        sc = Scenario(key + "-peers")
        sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                                  "--echo"] + banner_args + dh_s)
        addr = sc.procs["server"].address()
        sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", addr] + dh_c
                                         + app_args(cap, data, "c2s", w, sc.name))
        SCENARIOS[sc.name] = sc
        # rockspeer client against the captured server.
        sc = Scenario(key + "-client-vs-replay")
        sc.replay = Replay(cap, "server", [probe, data])
        sc.replay.start()
        sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.replay.address] + dh_c
                                         + app_args(cap, data, "c2s", w, sc.name))
        SCENARIOS[sc.name] = sc
        # rockspeer server against the captured client.
        sc = Scenario(key + "-server-vs-replay")
        sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                                  "--echo"] + banner_args + dh_s)
        sc.replay = Replay(cap, "client", [probe, data], target=sc.procs["server"].address())
        sc.replay.start()
        SCENARIOS[sc.name] = sc

    # Fallback, first half: a rock client against a plain server (the capture's, replayed; and
    # rockspeer --plain). Second half: a plain client (replayed; and rockspeer --plain) against a
    # rock server.
    plain_probe, plain_data, rock_server_conn = fallback.conns[0], fallback.conns[1], fallback.conns[2]
    sc = Scenario("fallback-client-vs-replay")
    sc.replay = Replay(fallback, "server", [plain_probe, plain_data])
    sc.replay.start()
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.replay.address]
                                     + app_args(fallback, plain_data, "c2s", w, sc.name))
    SCENARIOS[sc.name] = sc
    sc = Scenario("fallback-client-vs-plain")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "2",
                                                              "--echo", "--plain"])
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address()]
                                     + app_args(fallback, plain_data, "c2s", w, sc.name))
    SCENARIOS[sc.name] = sc
    sc = Scenario("fallback-server-vs-replay")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--echo"])
    sc.replay = Replay(fallback, "client", [rock_server_conn], target=sc.procs["server"].address())
    sc.replay.start()
    SCENARIOS[sc.name] = sc
    sc = Scenario("fallback-server-vs-plain")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--echo"])
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address(), "--plain"]
                                     + app_args(fallback, rock_server_conn, "c2s", w, sc.name))
    SCENARIOS[sc.name] = sc

    # RS_NOINTEROP (§7, §9.11) on both ends, random DH keys: no probe, init at once.
    sc = Scenario("noedp-peers")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--echo", "--no-edp"])
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address(), "--no-edp",
                                                              "--send-bytes", "10000", "--chunk", "1000",
                                                              "--receive-bytes", "10000"])
    SCENARIOS[sc.name] = sc

    # Heartbeat loss: the server process is stopped (SIGSTOP) for a while; faster clock (0.2 s,
    # 3 misses) so that this takes 2 s instead of 15.
    sc = Scenario("suspend")
    fast = ["--hb-period", "0.2", "--hb-misses", "3"]
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--echo"] + fast)
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address(),
                                                              "--send-bytes", "1000", "--receive-bytes", "1000",
                                                              "--hold", "3.5"] + fast)
    sc.stopper = threading.Thread(target=stop_for_a_while, args=(sc.procs["server"], sc.procs["client"], 1.2),
                                  daemon=True)
    sc.stopper.start()
    SCENARIOS[sc.name] = sc

    # §6: the peer closes while the application is not reading: the missed heartbeats find its FIN
    # (actuallyclosed), which is a close, not a failure.
    sc = Scenario("peer-closed")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--send-bytes", "1000", "--receive-bytes", "1000"]
                                     + fast)
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address(),
                                                              "--send-bytes", "1000", "--receive-bytes", "1000",
                                                              "--hold", "2"] + fast)
    SCENARIOS[sc.name] = sc

    # §5.2: the peer dies (SIGKILL: its kernel resets the connection); 1of2 meets a closed port until the
    # reconnection deadline (2 s here, 3 days in rocks) and the rock hangs up.
    sc = Scenario("hungup")
    sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                              "--echo"] + fast)
    sc.procs["client"] = PeerProcess(w, sc.name + "-client", ["connect", sc.procs["server"].address(),
                                                              "--send-bytes", "1000", "--receive-bytes", "2000",
                                                              "--reconnect-deadline", "2"] + fast)
    sc.stopper = threading.Thread(target=kill_when_established, args=(sc.procs["server"], sc.procs["client"]),
                                  daemon=True)
    sc.stopper.start()
    SCENARIOS[sc.name] = sc

    # Failure captures: rockspeer in each role against a replay of the other role (FailureReplay), at
    # the real 1 s heartbeat period; silence suspends after 3 missed beats instead of 15.
    for key, name in FAILURE_CAPTURES.items():
        FAILURE_CAPS[key] = FailureCapture(name)
    plans = [("linkdown", "rst", None, None), ("blackhole", "silence", None, None),
             ("ipchange", "silence", "127.0.0.3", None), ("linkdown", "rst", None, "badkey")]
    for key, trigger, moved_to, variant in plans:
        cap = FAILURE_CAPS[key]
        app = failure_app_bytes(cap)
        hb = ["--hb-period", "1", "--hb-misses", "3" if trigger == "silence" else "15"]
        suffix = "-" + variant if variant else ""
        if variant is None:
            sc = Scenario("%s-client-vs-replay%s" % (key, suffix))
            path = os.path.join(w, sc.name + ".send.bin")
            with open(path, "wb") as f:
                f.write(app)
            sc.replay = FailureReplay(cap, "server", trigger, app, dh_private=SERVER_PRIV)
            sc.replay.start()
            move = ["--reconnect-from", moved_to] if moved_to else []
            # The capture's bytes in one write, the rest once the failure is sure to have happened
            # (a write while suspended waits for the recovery).
            pause = "6" if trigger == "silence" else "1.5"
            sc.procs["client"] = PeerProcess(w, sc.name + "-client", [
                "connect", sc.replay.address, "--send-file", path, "--chunk", str(cap.sndseq["client"]),
                "--interval", pause, "--receive-bytes", str(len(app)), "--hold", "1.5",
                "--receive-file", os.path.join(w, sc.name + ".recv.bin")] + dh_c + hb + move)
            SCENARIOS[sc.name] = sc
        sc = Scenario("%s-server-vs-replay%s" % (key, suffix))
        sc.procs["server"] = PeerProcess(w, sc.name + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1",
                                                                  "--echo"] + dh_s + hb)
        sc.replay = FailureReplay(cap, "client", trigger, app, dh_private=CLIENT_PRIV, move_to=moved_to,
                                  bad_key_first=variant == "badkey")
        sc.replay.target = sc.procs["server"].address()
        sc.replay.start()
        SCENARIOS[sc.name] = sc

    # As root: both roles in a private network namespace, with the loopback traffic captured.
    if wire_capture_possible():
        sc = Scenario("wire")
        sc.wire_dir = os.path.join(w, "wire")
        os.mkdir(sc.wire_dir)
        sc.procs["netns"] = WireRun(sc.wire_dir)
        SCENARIOS[sc.name] = sc

    for sc in SCENARIOS.values():
        sc.finish()
    return caps


CAPS = {}
FAILURE_CAPS = {}


def kill_when_established(victim, watcher):
    """SIGKILL `victim` 0.3 s after `watcher`'s rock is established."""
    import signal
    end = time.monotonic() + 10
    while time.monotonic() < end and '"init-done"' not in read_text(watcher.trace_path):
        time.sleep(0.01)
    time.sleep(0.3)
    victim.proc.send_signal(signal.SIGKILL)


def stop_for_a_while(victim, watcher, seconds):
    """SIGSTOP `victim` once `watcher`'s rock is established, SIGCONT it `seconds` later."""
    import signal
    end = time.monotonic() + 10
    while time.monotonic() < end and '"init-done"' not in read_text(watcher.trace_path):
        time.sleep(0.01)
    victim.proc.send_signal(signal.SIGSTOP)
    victim.stopped_at = time.monotonic()
    time.sleep(seconds)
    victim.proc.send_signal(signal.SIGCONT)


# ---------------------------------------------------------------------------------------------------
# Wire capture in a private network namespace (root only)

def wire_capture_possible():
    if os.environ.get("ROCKSPEER_NO_NETNS"):
        return False
    return os.geteuid() == 0 and shutil.which("unshare") is not None and hasattr(socket, "AF_PACKET")


class WireRun:
    """`unshare --net` a copy of this file in --wire-run mode (see wire_run_main)."""

    def __init__(self, outdir):
        self.name = "wire"
        self.outdir = outdir
        self.proc = subprocess.Popen(["unshare", "--net", "--", sys.executable, os.path.abspath(__file__),
                                      "--wire-run", outdir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def wait(self, timeout=60):
        try:
            self.out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, _ = self.proc.communicate()
        self.rc = self.proc.returncode
        return self

    def output(self):
        return "rc=%s\n%s" % (self.rc, self.out.decode(errors="replace"))


def bring_up_loopback():
    import fcntl
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, ifr))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    finally:
        s.close()


class Sniffer(threading.Thread):
    """AF_PACKET on lo: every frame once (the incoming copy), with its time."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.bind(("lo", 0))
        self.frames = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            r, _, _ = select.select([self.sock], [], [], 0.05)
            if not r:
                continue
            frame, addr = self.sock.recvfrom(262144)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            self.frames.append((time.time(), addr, frame))

    def write_pcap(self, path):
        """Linux cooked (SLL) link type, so the reader's cooked path is exercised too."""
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, LINKTYPE_LINUX_SLL))
            for ts, addr, frame in self.frames:
                _ifname, proto, pkttype, hatype, hwaddr = addr
                payload = frame[14:]                       # lo frames carry a zero Ethernet header
                sll = struct.pack(">HHH8sH", pkttype, hatype, len(hwaddr), hwaddr.ljust(8, b"\0")[:8], proto)
                rec = sll + payload
                f.write(struct.pack("<IIII", int(ts), int((ts % 1) * 1e6), len(rec), len(rec)) + rec)


def wire_run_main(outdir):
    """Inside a fresh network namespace: lo up, sniff, run server and client for rocks-basic and
    rocks-edp-banner at once (the captures' banner and application), write wire.pcap."""
    bring_up_loopback()
    sniffer = Sniffer()
    sniffer.start()
    procs = []
    for key, name in (("basic", "rocks-basic.pcap"), ("banner", "rocks-edp-banner.pcap")):
        cap = Capture(name)
        data = cap.conns[1]
        banner_args = ["--banner", data.banner.decode()] if data.banner else []
        server = PeerProcess(outdir, key + "-server", ["serve", "--listen", "127.0.0.1:0", "--count", "1", "--echo"]
                             + banner_args)
        client = PeerProcess(outdir, key + "-client", ["connect", server.address()]
                             + app_args(cap, data, "c2s", outdir, key))
        procs += [server, client]
    failed = 0
    for p in procs:
        p.wait()
        if p.rc != 0:
            failed += 1
            print(p.output())
    time.sleep(0.1)
    sniffer.stop.set()
    sniffer.join()
    sniffer.write_pcap(os.path.join(outdir, "wire.pcap"))
    print("captured %d frames" % len(sniffer.frames))
    return 1 if failed else 0


def setUpModule():
    global WORKDIR
    if CAPTURES is None:
        return
    WORKDIR = tempfile.mkdtemp(prefix="rockspeer-test.")
    CAPS.update(start_scenarios())


def tearDownModule():
    if WORKDIR and not os.environ.get("ROCKSPEER_KEEP"):
        shutil.rmtree(WORKDIR, ignore_errors=True)
    if Compare.counts:
        print("\nrockspeer fidelity: what was compared with the captures", file=sys.stderr)
        for (cap, what), n in sorted(Compare.counts.items()):
            print("  %-24s %4d %s" % (cap, n, what), file=sys.stderr)


def needs_captures(cls):
    return unittest.skipIf(CAPTURES is None, "no rocks captures (set ROCKS_CAPTURES_DIR)")(cls)


# ---------------------------------------------------------------------------------------------------
# Unit tests of the building blocks (no sockets)

class WireBasicsTest(unittest.TestCase):
    def test_announcement(self):
        self.assertEqual(ANN.hex(), "49524f434b594f55524f434b4d414e00")

    def test_sockaddr_layout(self):
        raw = rockspeer.sockaddr_in_bytes("10.201.0.1", 37267)
        self.assertEqual(raw.hex(), "020091930ac900010000000000000000")     # §3.1's captured example
        self.assertEqual(rockspeer.parse_sockaddr_in(raw), ("10.201.0.1", 37267, True))

    def test_dh_group(self):
        self.assertEqual(DH_P.bit_length(), 128)
        q = (DH_P - 1) // 2
        self.assertEqual(pow(2, q, DH_P), DH_P - 1)       # 2 is not a quadratic residue: full group
        for _ in range(20):                                # random keys: 127 bits, top bit set
            dh = rockspeer.DiffieHellman()
            self.assertEqual(dh.private.bit_length(), 127)
            self.assertLessEqual(len(dh.public_bytes), 16)
        a, b = rockspeer.DiffieHellman(CLIENT_PRIV), rockspeer.DiffieHellman(SERVER_PRIV)
        self.assertEqual(a.shared_secret(b.public_bytes), b.shared_secret(a.public_bytes))

    def test_unpadded_values_and_key(self):
        self.assertEqual(rockspeer.bn2bin(0), b"")
        self.assertEqual(rockspeer.bn2bin(0x01FF), b"\x01\xff")
        self.assertEqual(rockspeer.blowfish_key(b"\x01" * 15), b"\x01" * 15 + b"\x00")   # right-padded
        self.assertEqual(rockspeer.blowfish_key(bytes(range(16))), bytes(range(16)))

    def test_inflight_ring(self):
        ring = rockspeer.InflightRing(10)
        ring.append(b"0123456789abc")
        self.assertEqual((ring.seq, bytes(ring.buf)), (3, b"3456789abc"))
        self.assertEqual(ring.since(8), b"89abc")
        with self.assertRaises(rockspeer.RockError):
            ring.since(2)


@needs_captures
class PcapReaderTest(unittest.TestCase):
    def test_link_types(self):
        ip = bytes.fromhex("4500001c000040004011000001020304050607080001000200080000")
        self.assertEqual(link_payload(b"\x00" * 12 + b"\x08\x00" + ip, LINKTYPE_ETHERNET), ip)
        self.assertEqual(link_payload(b"\x00" * 12 + b"\x81\x00\x00\x05\x08\x00" + ip, LINKTYPE_ETHERNET), ip)
        self.assertEqual(link_payload(b"\x00" * 14 + b"\x08\x00" + ip, LINKTYPE_LINUX_SLL), ip)
        self.assertEqual(link_payload(b"\x08\x00" + b"\x00" * 18 + ip, LINKTYPE_LINUX_SLL2), ip)
        p = parse_ipv4(ip, 0.0)
        self.assertEqual((p.proto, p.src, p.sport, p.dst, p.dport, p.payload), ("udp", "1.2.3.4", 1, "5.6.7.8", 2, b""))

    def test_captures_as_the_protocol_file_describes_them(self):
        """§13: the probe, then conn #2 with the announcement at rel seq 1-16, init at 17-76, each
        init message its own segment, application data from 77 (+ banner on the server side)."""
        for name, banner in (("rocks-basic.pcap", b""), ("rocks-edp-banner.pcap", b"SSH-2.0-Fake_1.0 hello")):
            cap = Capture(name)
            self.assertEqual([c.kind for c in cap.conns], ["probe", "rock"], name)
            probe, data = cap.conns
            self.assertEqual(cap.pre_app(probe, "c2s"), [])
            self.assertEqual(probe.fin["c2s"], 1)                                # FIN with no data
            self.assertEqual(probe.stream("s2c"), banner + ANN)
            self.assertEqual(data.banner, banner)
            for d in ("c2s", "s2c"):
                labels = [l for l, _ in cap.pre_app(data, d)]
                self.assertEqual(labels, (["banner"] if banner and d == "s2c" else []) + ["announcement"] + INIT_LABELS,
                                 "%s %s: each message must be a segment of its own" % (name, d))
            self.assertEqual(data.app_start["c2s"], 76)
            self.assertEqual(data.app_start["s2c"], 76 + len(banner))
            self.assertEqual(cap.app(data, "c2s"), cap.app(data, "s2c"))        # an echo
            for d in ("c2s", "s2c"):
                dgrams = cap.datagrams(data, d)
                self.assertGreaterEqual(len(dgrams), 2)
                self.assertTrue(all(p.payload == b"x" for p in dgrams))
                gaps = [b.ts - a.ts for a, b in zip(dgrams, dgrams[1:])]
                self.assertTrue(all(abs(g - 1.0) < 0.01 for g in gaps), gaps)
        cap = Capture("rocks-edp-fallback.pcap")
        self.assertEqual([c.kind for c in cap.conns], ["probe", "plain", "plain"])
        self.assertEqual(cap.conns[0].stream("s2c"), b"")
        self.assertEqual([len(s.payload) for s in cap.conns[2].ordered("s2c")][:3], [16, 1008, 1024])


# ---------------------------------------------------------------------------------------------------
# Rock captures: basic and banner

class RockCaptureChecks:
    """Shared checks for rocks-basic.pcap and rocks-edp-banner.pcap."""
    key = None
    capture_name = None

    @property
    def cap(self):
        return CAPS[self.key]

    def check_client_trace(self, trace, stats):
        cap = self.cap
        probe, data = cap.conns
        # Conn #1: connect, shutdown(SHUT_WR) and no write, close.
        events = [e["event"] for e in trace if e["conn"] == 1]
        self.assertEqual(events, ["connect", "shutdown-wr", "close", "edp"])
        self.assertEqual(writes(trace, 1), [])
        Compare.add(cap.name, "probe conn: client sends FIN only (no write)", 1)
        # Conn #2: announcement and init, segment for segment.
        assert_segments_match(self, cap.name, cap.pre_app(data, "c2s"), pre_app_writes(trace, 2),
                              own_addrs(trace, 2), "client conn #2")
        # Application bytes as a stream, and rocks' counting.
        self.assertEqual(app_stream(trace, 2), cap.app(data, "c2s"))
        Compare.add(cap.name, "application bytes client->server (stream)", len(cap.app(data, "c2s")))
        self.assertTrue(stats["peer_is_rock"])
        self.assertEqual(stats["stream_offset_sent"] + 1, data.app_start["c2s"] + 1)
        self.assertEqual(stats["stream_offset_received"], data.app_start["s2c"])
        self.assertEqual(stats["pre_edp_bytes_received"], len(data.banner))
        self.assertEqual(stats["app_bytes_sent"], len(cap.app(data, "c2s")))
        self.assertEqual(stats["app_bytes_received"], len(cap.app(data, "s2c")))
        self.assertEqual(stats["sndbuf"], 65536)
        self.assertEqual(stats["maxsnd"], 131072)

    def check_server_trace(self, trace, stats):
        cap = self.cap
        probe, data = cap.conns
        assert_segments_match(self, cap.name, cap.pre_app(probe, "s2c"), writes(trace, 1), {}, "server probe conn")
        closes = [e for e in trace if e["conn"] == 1 and e["event"] == "close"]
        self.assertEqual(len(closes), 1)
        self.assertEqual(closes[0]["how"], "fin")
        Compare.add(cap.name, "probe conn: server FIN after its writes", 1)
        assert_segments_match(self, cap.name, cap.pre_app(data, "s2c"), pre_app_writes(trace, 2),
                              own_addrs(trace, 2), "server conn #2")
        self.assertEqual(app_stream(trace, 2), cap.app(data, "s2c"))
        Compare.add(cap.name, "application bytes server->client (stream)", len(cap.app(data, "s2c")))
        self.assertTrue(stats["peer_is_rock"])
        self.assertEqual(stats["probes"], 1)
        self.assertEqual(stats["stream_offset_sent"], data.app_start["s2c"])
        self.assertEqual(stats["pre_edp_bytes_sent"], len(data.banner))
        self.assertEqual(stats["app_bytes_sent"], len(cap.app(data, "s2c")))

    def check_heartbeats(self, trace, own_dir, peer_hb, capture_dgrams):
        """Our datagrams: 'x', from our advertised heartbeat socket to the peer's, 1 s apart,
        about as many as the capture has for the same duration."""
        ours = heartbeats(trace)
        me = init_done(trace, 2)
        self.assertGreaterEqual(len(ours), 1, "no heartbeat sent")
        for e in ours:
            self.assertEqual(bytes.fromhex(e["hex"]), capture_dgrams[0].payload)
            self.assertEqual(e["src"], me["local_hb_addr"])
            self.assertEqual(e["dst"], peer_hb)
        gaps = [b["t"] - a["t"] for a, b in zip(ours, ours[1:])]
        self.assertTrue(all(abs(g - 1.0) < 0.1 for g in gaps), gaps)
        self.assertLessEqual(ours[0]["t"] - me["t"], 1.1, "first heartbeat more than one period after init")
        self.assertLessEqual(abs(len(ours) - len(capture_dgrams)), 1, "heartbeat count %d vs captured %d"
                             % (len(ours), len(capture_dgrams)))
        Compare.add(self.cap.name, "heartbeat datagrams (payload, sockets, period)", len(ours))

    def test_peers_against_each_other(self):
        sc = SCENARIOS[self.key + "-peers"]
        c, s = sc.procs["client"], sc.procs["server"]
        self.assertEqual((c.rc, s.rc), (0, 0), c.output() + s.output())
        self.check_client_trace(c.trace, c.stats)
        self.check_server_trace(s.trace, s.stats)
        data = self.cap.conns[1]
        cinit, sinit = init_done(c.trace, 2), init_done(s.trace, 2)
        self.assertEqual(cinit["peer_hb_addr"], sinit["local_hb_addr"])
        self.assertEqual(cinit["peer_rec_addr"], sinit["local_rec_addr"])
        self.check_heartbeats(c.trace, "c2s", sinit["local_hb_addr"], self.cap.datagrams(data, "c2s"))
        self.check_heartbeats(s.trace, "s2c", cinit["local_hb_addr"], self.cap.datagrams(data, "s2c"))
        self.assertGreaterEqual(c.stats["heartbeats_received"], 1)
        self.assertGreaterEqual(s.stats["heartbeats_received"], 1)
        self.assertEqual(c.stats["suspensions"] + s.stats["suspensions"], 0)
        # DH: both sides hold the same secret, the one the public values give.
        a, b = rockspeer.DiffieHellman(CLIENT_PRIV), rockspeer.DiffieHellman(SERVER_PRIV)
        self.assertEqual(c.stats["dh_public"], a.public_bytes.hex())
        self.assertEqual(c.stats["dh_secret"], a.shared_secret(b.public_bytes).hex())
        self.assertEqual(c.stats["dh_secret"], s.stats["dh_secret"])
        self.assertEqual(c.stats["bf_key"], s.stats["bf_key"])
        # The client application got the banner first, then the echo.
        recv = read_bytes(os.path.join(WORKDIR, sc.name + ".recv.bin"))
        self.assertEqual(recv, data.banner + self.cap.app(data, "s2c"))

    def test_client_against_captured_server(self):
        sc = SCENARIOS[self.key + "-client-vs-replay"]
        c = sc.procs["client"]
        self.assertIsNone(sc.replay.error, sc.replay.error)
        self.assertEqual(c.rc, 0, c.output())
        self.check_client_trace(c.trace, c.stats)
        probe, data = self.cap.conns
        # What the replay read is what the trace says was written.
        self.assertEqual(sc.replay.received[0], b"")
        self.assertEqual(sc.replay.received[1], b"".join(bytes.fromhex(w["hex"]) for w in writes(c.trace, 2)))
        self.assertEqual(sc.replay.eof_extra, [b"", b""])
        self.assertEqual(sc.replay.rec_probe, ["refused"], "the reconnection socket must be bound, not listening")
        # DH with the captured server's public value.
        server_pub = [p for l, p in self.cap.pre_app(data, "s2c") if l == "dh-key"][0]
        self.assertEqual(c.stats["dh_peer_public"], server_pub.hex())
        self.assertEqual(c.stats["dh_secret"], rockspeer.DiffieHellman(CLIENT_PRIV).shared_secret(server_pub).hex())
        replay_hb = sc.replay.hb_address
        self.check_heartbeats(c.trace, "c2s", replay_hb, self.cap.datagrams(data, "c2s"))
        # One datagram at most is taken per tick, at the receiver's own tick: the last one sent may
        # still be queued when the application closes.
        self.assertIn(c.stats["heartbeats_received"], (len(sc.replay.hb_sent), len(sc.replay.hb_sent) - 1))
        self.assertEqual(len(sc.replay.datagrams), c.stats["heartbeats_sent"])
        recv = read_bytes(os.path.join(WORKDIR, sc.name + ".recv.bin"))
        self.assertEqual(recv, data.banner + self.cap.app(data, "s2c"))

    def test_server_against_captured_client(self):
        sc = SCENARIOS[self.key + "-server-vs-replay"]
        s = sc.procs["server"]
        self.assertIsNone(sc.replay.error, sc.replay.error)
        self.assertEqual(s.rc, 0, s.output())
        self.check_server_trace(s.trace, s.stats)
        probe, data = self.cap.conns
        self.assertEqual(sc.replay.received[0], b"".join(bytes.fromhex(w["hex"]) for w in writes(s.trace, 1)))
        self.assertEqual(sc.replay.received[1], b"".join(bytes.fromhex(w["hex"]) for w in writes(s.trace, 2)))
        self.assertEqual(sc.replay.rec_probe, ["refused"], "the reconnection socket must be bound, not listening")
        client_pub = [p for l, p in self.cap.pre_app(data, "c2s") if l == "dh-key"][0]
        self.assertEqual(s.stats["dh_secret"], rockspeer.DiffieHellman(SERVER_PRIV).shared_secret(client_pub).hex())
        replay_hb = sc.replay.hb_address
        self.check_heartbeats(s.trace, "s2c", replay_hb, self.cap.datagrams(data, "s2c"))
        # One datagram at most is taken per tick, at the receiver's own tick: the last one sent may
        # still be queued when the application closes.
        self.assertIn(s.stats["heartbeats_received"], (len(sc.replay.hb_sent), len(sc.replay.hb_sent) - 1))


@needs_captures
class BasicCaptureTest(RockCaptureChecks, unittest.TestCase):
    """rocks-basic.pcap: probe + conn #2 + init + 147 KiB echoed + heartbeats."""
    key = "basic"


@needs_captures
class BannerCaptureTest(RockCaptureChecks, unittest.TestCase):
    """rocks-edp-banner.pcap: a 22-byte banner before the announcement, on both connections."""
    key = "banner"


# ---------------------------------------------------------------------------------------------------
# Fallback

@needs_captures
class FallbackCaptureTest(unittest.TestCase):
    """rocks-edp-fallback.pcap: a rock client against a plain server (the server sees the probe, then
    a plain connection), and a plain client against a rock server (which falls back on data)."""

    @property
    def cap(self):
        return CAPS["fallback"]

    def check_rock_client_of_plain_server(self, c):
        self.assertEqual(c.rc, 0, c.output())
        cap = self.cap
        plain_data = cap.conns[1]
        self.assertEqual([e["event"] for e in c.trace if e["conn"] == 1], ["connect", "shutdown-wr", "close", "edp"])
        self.assertEqual([e["result"] for e in c.trace if e["event"] == "edp"], ["not-rock"])
        w2 = writes(c.trace, 2)
        self.assertTrue(all(w["label"] == "app" for w in w2), "an announcement or init on a plain connection")
        self.assertEqual(app_stream(c.trace, 2), cap.app(plain_data, "c2s"))
        sizes = [len(s.payload) for s in plain_data.ordered("c2s")]
        self.assertEqual([w["len"] for w in w2], sizes)
        Compare.add(cap.name, "rock client -> plain server: conn #2 segments (all application)", len(sizes))
        self.assertFalse(c.stats["peer_is_rock"])
        self.assertEqual(heartbeats(c.trace), [])
        recv = read_bytes(os.path.join(WORKDIR, c.name[:-len("-client")] + ".recv.bin"))
        self.assertEqual(recv, cap.app(plain_data, "s2c"))

    def test_rock_client_against_captured_plain_server(self):
        sc = SCENARIOS["fallback-client-vs-replay"]
        self.assertIsNone(sc.replay.error, sc.replay.error)
        self.check_rock_client_of_plain_server(sc.procs["client"])
        self.assertEqual(sc.replay.received[0], b"")          # the probe: SYN, FIN, nothing else
        self.assertEqual(sc.replay.received[1], self.cap.app(self.cap.conns[1], "c2s"))
        Compare.add(self.cap.name, "probe conn seen by the plain server: no data, FIN", 1)

    def test_rock_client_against_plain_rockspeer(self):
        sc = SCENARIOS["fallback-client-vs-plain"]
        self.assertEqual(sc.procs["server"].rc, 0, sc.procs["server"].output())
        self.check_rock_client_of_plain_server(sc.procs["client"])
        s = sc.procs["server"]
        self.assertEqual(len(s.stats["connections"]), 2)                # the probe, then the real one
        self.assertEqual(s.stats["connections"][0]["recv_bytes"], 0)

    def check_rock_server_fallback(self, s, expect_sizes=True):
        self.assertEqual(s.rc, 0, s.output())
        cap = self.cap
        conn = cap.conns[2]
        self.assertEqual([e["result"] for e in s.trace if e["event"] == "edp"], ["fallback"])
        w1 = writes(s.trace, 1)
        self.assertTrue(all(w["label"] == "app" for w in w1))
        self.assertEqual(app_stream(s.trace, 1), cap.app(conn, "s2c"))
        if expect_sizes:
            # The library's own 16-byte read is the application's first data: echoed on its own.
            sizes = [len(x.payload) for x in conn.ordered("s2c")]
            self.assertEqual([w["len"] for w in w1], sizes)
            Compare.add(cap.name, "plain client -> rock server: server segments (16, 1008, 1024...)", len(sizes))
        self.assertFalse(s.stats["peer_is_rock"])
        self.assertEqual(heartbeats(s.trace), [])

    def test_rock_server_against_captured_plain_client(self):
        sc = SCENARIOS["fallback-server-vs-replay"]
        self.assertIsNone(sc.replay.error, sc.replay.error)
        self.check_rock_server_fallback(sc.procs["server"])
        self.assertEqual(sc.replay.received[0], self.cap.app(self.cap.conns[2], "s2c"))

    def test_rock_server_against_plain_rockspeer(self):
        sc = SCENARIOS["fallback-server-vs-plain"]
        self.assertEqual(sc.procs["client"].rc, 0, sc.procs["client"].output())
        self.check_rock_server_fallback(sc.procs["server"], expect_sizes=False)


# ---------------------------------------------------------------------------------------------------
# Heartbeat loss

@needs_captures
class SuspendTest(unittest.TestCase):
    """§4, §5: with the peer silent, `misses` ticks without a datagram suspend the rock and heartbeats
    stop. Here the server process is stopped (SIGSTOP) 1.2 s, with a 0.2 s, 3-miss clock: the client
    suspends on missed heartbeats (its RST reaches the stopped server's kernel); the server, running
    again, suspends on that RST (or on its own misses); 1of2, authentication and recovery follow,
    heartbeats resume, and the transfer completes. Each side's reconnection writes are the messages the
    link-down capture has for its role, in its order and lengths."""

    def test_missed_heartbeats_suspend(self):
        sc = SCENARIOS["suspend"]
        c, s = sc.procs["client"], sc.procs["server"]
        self.assertEqual((c.rc, s.rc), (0, 0), c.output() + s.output())
        self.assertEqual(c.stats["suspension_events"][0]["reason"], "3 missed heartbeats")
        self.assertRegex(s.stats["suspension_events"][0]["reason"], r"reset by peer|3 missed heartbeats")
        cap = FAILURE_CAPS["linkdown"]
        for p, role in ((c, "client"), (s, "server")):
            self.assertEqual((p.stats["suspensions"], p.stats["recoveries"]), (1, 1), p.name)
            sus = [e for e in p.trace if e["event"] == "suspend"][0]["t"]
            rec = [e for e in p.trace if e["event"] == "recovered"][0]
            beats = [e["t"] for e in heartbeats(p.trace)]
            self.assertFalse([t for t in beats if sus <= t < rec["t"]], "%s: a heartbeat while suspended" % p.name)
            self.assertTrue([t for t in beats if t >= rec["t"]], "%s: no heartbeat after the recovery" % p.name)
            ours = [(w["label"], w["len"]) for w in p.trace if w["event"] == "write" and w.get("rec") == rec["rec"]
                    and w["label"] not in ("app", "resend")]
            self.assertEqual(ours, [(l, len(m)) for l, m, _ in cap.messages[role] if l != "resend"], p.name)
            Compare.add(cap.name, "rockspeer to rockspeer: reconnection messages, order and lengths", len(ours))
        self.assertEqual(c.stats["sent_sha256"], s.stats["recv_sha256"])
        self.assertEqual(s.stats["sent_sha256"], c.stats["recv_sha256"])


    def test_peer_closed_is_not_a_failure(self):
        """§6 actuallyclosed(): heartbeats stop when the peer closes; the misses find its FIN unread, so the
        rock is closed, not suspended (no RST, no reconnection)."""
        sc = SCENARIOS["peer-closed"]
        c, s = sc.procs["client"], sc.procs["server"]
        self.assertEqual((c.rc, s.rc), (0, 0), c.output() + s.output())
        events = [e["event"] for e in c.trace]
        self.assertIn("not-connected", events)
        self.assertNotIn("suspend", events)
        self.assertEqual(c.stats["state"], "closed")
        self.assertEqual(c.stats["suspensions"], 0)

    def test_deadline_hangs_up(self):
        """§5.2: with the peer gone for good, 1of2 storms its closed reconnection port (every refused connect
        is retried at once) until the deadline; then the rock is HUNGUP and the application's read fails."""
        sc = SCENARIOS["hungup"]
        c = sc.procs["client"]
        self.assertEqual(c.rc, 1, c.output())
        self.assertEqual(c.stats["suspensions"], 1)
        self.assertRegex(c.stats["suspension_events"][0]["reason"], r"reset by peer|3 missed heartbeats")
        hung = [e for e in c.trace if e["event"] == "hungup"]
        self.assertEqual(len(hung), 1)
        sus = [e for e in c.trace if e["event"] == "suspend"][0]
        self.assertAlmostEqual(hung[0]["t"] - sus["t"], 2.0, delta=1.2)
        self.assertIn("HUNGUP", c.stats["error"])


# ---------------------------------------------------------------------------------------------------
# RS_NOINTEROP and the wire

@needs_captures
class NoInteropTest(unittest.TestCase):
    """--no-edp on both ends (no capture of it): the DH length and key are the first bytes (§7)."""

    def test_init_right_away(self):
        sc = SCENARIOS["noedp-peers"]
        c, s = sc.procs["client"], sc.procs["server"]
        self.assertEqual((c.rc, s.rc), (0, 0), c.output() + s.output())
        for p in (c, s):
            labels = [w["label"] for w in pre_app_writes(p.trace, 1)]
            self.assertEqual(labels, INIT_LABELS)
            self.assertEqual(bytes.fromhex(writes(p.trace, 1)[0]["hex"])[:2], b"\0\0")
            # 60 bytes, or fewer when a random DH value has a leading zero byte (1 in 256)
            self.assertEqual(p.stats["stream_offset_sent"], 44 + len(p.stats["dh_public"]) // 2)
            self.assertEqual(p.stats["stream_offset_received"], 44 + len(p.stats["dh_peer_public"]) // 2)
            self.assertEqual(p.stats["probes"], 0)
        self.assertEqual(c.stats["dh_secret"], s.stats["dh_secret"])
        self.assertEqual(c.stats["sent_sha256"], s.stats["recv_sha256"])


@needs_captures
class WireTest(unittest.TestCase):
    """Root only: the segments rockspeer puts on the (namespaced) loopback wire against the capture's."""

    def setUp(self):
        if "wire" not in SCENARIOS:
            self.skipTest("needs root and unshare(1) (a private network namespace to capture lo in)")

    def test_segments_on_the_wire(self):
        sc = SCENARIOS["wire"]
        run = sc.procs["netns"]
        self.assertEqual(run.rc, 0, run.output())
        wire = read_pcap(os.path.join(sc.wire_dir, "wire.pcap"))
        conns = [label_connection(c) for c in tcp_connections(wire)]
        for key, name in (("basic", "rocks-basic.pcap"), ("banner", "rocks-edp-banner.pcap")):
            cap = CAPS[key]
            server_port = int(read_text(os.path.join(sc.wire_dir, key + "-server.ready")).strip().rsplit(":", 1)[1])
            mine = [c for c in conns if c.server[1] == server_port]
            self.assertEqual([c.kind for c in mine], ["probe", "rock"], name)
            for ours, theirs in zip(mine, cap.conns):
                for d in ("c2s", "s2c"):
                    expected = cap.pre_app(theirs, d)
                    got = cap.pre_app(ours, d)
                    # Same segments in the same order: every init message is a segment of its own.
                    self.assertEqual([l for l, _ in got], [l for l, _ in expected], "%s %s %s" % (name, ours.kind, d))
                    for (label, a), (_, b) in zip(got, expected):
                        self.assertEqual(len(a), len(b), "%s %s %s" % (name, d, label))
                        if label in ("rec-addr", "hb-addr"):
                            self.assertEqual((a[:2], a[8:]), (b[:2], b[8:]))
                        elif label != "dh-key":
                            self.assertEqual(a, b, "%s %s %s" % (name, d, label))
                    Compare.add(name, "segments on the loopback wire (namespaced capture)", len(got))
                    self.assertEqual(ours.fin[d] is not None, theirs.fin[d] is not None)
                self.assertEqual(ours.fin["c2s"] == 1, theirs.fin["c2s"] == 1)        # the probe's bare FIN
            rock = mine[1]
            self.assertEqual(cap.app(rock, "c2s"), cap.app(cap.conns[1], "c2s"))
            self.assertEqual(cap.app(rock, "s2c"), cap.app(cap.conns[1], "s2c"))
            # Heartbeats on the wire: 'x' from each side's advertised socket to the other's.
            for d in ("c2s", "s2c"):
                src = cap.hb_addr(rock, d)
                other = cap.hb_addr(rock, "s2c" if d == "c2s" else "c2s")
                dgrams = [p for p in wire if p.proto == "udp" and (p.src, p.sport) == src]
                self.assertGreaterEqual(len(dgrams), 1, "%s %s: no heartbeat on the wire" % (name, d))
                self.assertTrue(all(p.payload == b"x" and (p.dst, p.dport) == other for p in dgrams))
                Compare.add(name, "heartbeat datagrams on the loopback wire", len(dgrams))


# ---------------------------------------------------------------------------------------------------
# Failure captures: suspension, 1of2, authentication, recovery (§5, §6)

FAILURE_CAPTURES = {"linkdown": "rocks-linkdown-reconnect.pcap", "blackhole": "rocks-blackhole-reconnect.pcap",
                    "ipchange": "rocks-ipchange-reconnect.pcap"}


FAILURE_EXTRA = 65536       # application bytes each way after the recovery


def failure_app_bytes(cap):
    """The client application's bytes for a replay of `cap`: filler where the trimmed capture has none,
    then the capture's own bytes (its last 32 KiB), so that everything resent is the capture's; then
    FAILURE_EXTRA bytes for after the recovery."""
    tail = cap.tail_app_offset("client")
    rng = random.Random(12)
    return (rng.randbytes(tail) + cap.old_app_bytes("client", tail, cap.sndseq["client"])
            + rng.randbytes(FAILURE_EXTRA))


@needs_captures
class FailureCaptureTest(unittest.TestCase):
    """The trimmed failure captures say what §5 says (no processes)."""

    def test_reconnection_as_the_protocol_file_describes_it(self):
        for key, name in FAILURE_CAPTURES.items():
            cap = FAILURE_CAPS[key]
            self.assertEqual(cap.probe.fin["c2s"], 1, name)
            self.assertTrue(cap.data.rst, "%s: the old connection ends with a RST" % name)
            self.assertEqual(cap.data_runs["c2s"][0], (0, ANN + cap.data_runs["c2s"][0][1][16:]))
            for role in ("client", "server"):
                msgs = cap.messages[role]
                labels = [l for l, _, _ in msgs]
                expected = (["1of2-ack"] if role == "server" else []) + \
                    ["challenge-len", "challenge", "response-len", "response"] + RECOVERY_LABELS
                self.assertEqual([l for l in labels if l != "resend"], expected, "%s %s" % (name, role))
                self.assertEqual(cap.message(role, "challenge-len"), b"\x00\x00\x00\x28")
                self.assertEqual(cap.message(role, "response-len"), b"\x00\x00\x00\x20")
                self.assertEqual(cap.message(role, "sndbuf") + cap.message(role, "rcvbuf"), b"\x00\x01\x00\x00" * 2)
                for label in ("hb-addr", "rec-addr"):
                    raw = cap.message(role, label)
                    self.assertEqual((raw[:2], raw[8:]), (b"\x02\x00", bytes(8)), "%s %s %s" % (name, role, label))
                    # bound to the new connection's local address
                    local = cap.rec.client[0] if cap.rec_dir[role] == "c2s" else cap.rec.server[0]
                    self.assertEqual(rockspeer.parse_sockaddr_in(raw)[0], local, "%s %s %s" % (name, role, label))
                # The recovery comes on the side's next tick: at most about 1 s after authentication.
                auth_end = max(cap.time_of("client", "response"), cap.time_of("server", "response"))
                late = cap.time_of(role, "hb-addr") - auth_end
                self.assertTrue(0 < late <= 1.01, "%s %s: hb-addr %.3f s after authentication" % (name, role, late))
            # Both challenges end in the same 8 bytes: the padding block under the shared key.
            self.assertEqual(cap.message("client", "challenge")[32:], cap.message("server", "challenge")[32:])
            # go-back-N: each side resends its old bytes from the peer's rcvseq on, exactly.
            for role, other in (("client", "server"), ("server", "client")):
                n = cap.sndseq[role] - cap.rcvseq[other]
                self.assertGreaterEqual(n, 0)
                got = [m for l, m, _ in cap.messages[role] if l == "resend"]
                self.assertEqual(got, [cap.old_app_bytes(role, cap.rcvseq[other], cap.sndseq[role])] if n else [])
            # The echo: the server's bytes are the client's.
            tail = max(cap.tail_app_offset("client"), cap.tail_app_offset("server"))
            end = min(cap.sndseq["client"], cap.sndseq["server"])
            self.assertEqual(cap.old_app_bytes("client", tail, end), cap.old_app_bytes("server", tail, end))
        ld, bh, ip = (FAILURE_CAPS[k] for k in ("linkdown", "blackhole", "ipchange"))
        self.assertEqual((ld.rcvseq, ld.sndseq), ({"client": 247808, "server": 247808},) * 2)
        self.assertEqual(bh.rcvseq, {"client": 0x3d000, "server": 0x3d400})
        self.assertEqual(bh.sndseq, {"client": 0x3d400 + 9288, "server": 0x3d000 + 1024})
        self.assertEqual((ld.connector, bh.connector, ip.connector), ("server", "server", "client"))
        self.assertEqual((ld.message("server", "1of2-ack"), ip.message("server", "1of2-ack")), (b"\x02", b"\xf7"))
        self.assertEqual(len(ld.attempts), 105)            # the SYN storm against the unready listener
        self.assertTrue(all(a.rst for a in ld.attempts[:50]))
        self.assertEqual(ip.rec.client[0], "10.201.0.3")   # the client moved, and says so
        for label in ("hb-addr", "rec-addr"):
            self.assertEqual(rockspeer.parse_sockaddr_in(ip.message("client", label))[0], "10.201.0.3")
        for key in FAILURE_CAPTURES:
            Compare.add(FAILURE_CAPTURES[key], "capture: reconnection messages parsed and checked (§5)",
                        sum(len(FAILURE_CAPS[key].messages[r]) for r in ("client", "server")))


class ReconnectionChecks:
    """rockspeer in one role against a FailureReplay of the other."""

    def check_reconnection(self, key, role, trigger, expect_pick, hb_period=1.0, moved_to=None):
        cap = FAILURE_CAPS[key]
        sc = SCENARIOS["%s-%s-vs-replay" % (key, role) + ("-" + self.variant if getattr(self, "variant", None) else "")]
        p, replay = sc.procs[role], sc.replay
        other = "server" if role == "client" else "client"
        self.assertIsNone(replay.error, replay.error)
        self.assertEqual(p.rc, 0, p.output())
        trace, name = p.trace, cap.name
        # Suspension: once, for the expected reason, at the capture's counts; the old connection reset.
        sus = [e for e in trace if e["event"] == "suspend"]
        self.assertEqual(len(sus), 1, sus)
        if trigger == "rst":
            self.assertRegex(sus[0]["reason"], r"(read|write) error: .*reset by peer")
        else:
            self.assertEqual(sus[0]["reason"], "3 missed heartbeats")
        self.assertEqual((sus[0]["sndseq"], sus[0]["rcvseq"]), (cap.sndseq[role], cap.rcvseq[role]))
        close = [e for e in trace if e["event"] == "close" and e.get("state") == "suspended"]
        self.assertEqual([c["how"] for c in close], ["rst"])
        Compare.add(name, "suspension: counts (sndseq, rcvseq) equal to the capture's, RST", 1)
        # 1of2: the capture's winner; the server wrote one byte, the client read it.
        picks = [e for e in trace if e["event"] == "1of2"]
        self.assertEqual(picks[-1]["pick"], expect_pick)
        rec = picks[-1]["rec"]
        rec_ev = [e for e in trace if e["event"] == "recovered"]
        self.assertEqual(len(rec_ev), 1)
        rec_ev = rec_ev[0]
        # Heartbeats stop at the suspension and start again at the recovery.
        t_sus, t_rec = sus[0]["t"], rec_ev["t"]
        beats = heartbeats(trace)
        self.assertFalse([b for b in beats if t_sus <= b["t"] < t_rec], "heartbeats while suspended")
        after = [b for b in beats if b["t"] >= t_rec]
        self.assertGreaterEqual(len(after), 1, "no heartbeat after the recovery")
        self.assertLess(after[0]["t"] - t_rec, 0.05, "the first heartbeat is in the recovery's tick")
        self.assertEqual(after[0]["src"], rec_ev["local_hb_addr"])
        self.assertEqual(after[0]["dst"], rec_ev["peer_hb_addr"])
        self.assertEqual(rec_ev["peer_hb_addr"], replay.recovery["my_hb_addr"])
        got_by_replay = [d for d in replay.datagrams if d[3] == rec_ev["peer_hb_addr"]]
        self.assertGreaterEqual(len(got_by_replay), 1)
        self.assertTrue(all(d[1] == b"x" and d[2] == rec_ev["local_hb_addr"] for d in got_by_replay))
        # rockspeer's writes on the reconnection against the capture's messages of the same role.
        ours = [(w["label"], bytes.fromhex(w["hex"]), w["t"]) for w in trace
                if w["event"] == "write" and w.get("rec") == rec and w["label"] != "app"]
        expected = cap.messages[role]
        self.assertEqual([l for l, _, _ in ours], [l for l, _, _ in expected],
                         "%s %s: the reconnection messages differ from the capture's" % (name, role))
        auth = replay.auth[-1]
        key16 = replay.key
        pad_block = blowfish.Blowfish(key16).encrypt_block(b"\x08" * 8)
        for (label, mine, _), (_, theirs, _) in zip(ours, expected):
            self.assertEqual(len(mine), len(theirs), "%s %s %s length" % (name, role, label))
            if label in ("challenge-len", "response-len", "rcvseq", "sndbuf", "rcvbuf", "resend"):
                self.assertEqual(mine, theirs, "%s %s %s" % (name, role, label))
            elif label == "challenge":
                self.assertEqual(mine[32:], auth["challenge"][32:], "both challenges end in the same block")
                self.assertEqual(mine[32:], pad_block)
                self.assertEqual(blowfish.ecb_decrypt(key16, mine), auth["answer"])
                self.assertEqual(len(auth["answer"]), 32)
            elif label == "response":
                self.assertEqual(mine, auth["plain"], "the response is the replay's plaintext")
            elif label in ("hb-addr", "rec-addr"):
                self.assertEqual((mine[:2], mine[8:]), (theirs[:2], theirs[8:]))
                self.assertEqual(sockaddr_text(mine), rec_ev["local_" + label.replace("-", "_")])
        Compare.add(name, "reconnection messages byte for byte (%s; random and key-derived bytes checked apart)"
                    % ", ".join(l for l, _, _ in ours), len(ours))
        # The resent range is the capture's.
        resend = cap.sndseq[role] - cap.rcvseq[other]
        self.assertEqual((rec_ev["resent_from"], rec_ev["resent_bytes"]), (cap.rcvseq[other], resend))
        if resend:
            Compare.add(name, "go-back-N: %s resent [%d, %d) as captured, byte for byte"
                        % (role, cap.rcvseq[other], cap.sndseq[role]), resend)
        # What rockspeer reads from the replay's go-back-N continues its stream exactly.
        self.assertEqual(replay.recovery["peer_rcvseq"], cap.rcvseq[role])
        self.assertEqual(replay.recovery["resent"], cap.sndseq[other] - cap.rcvseq[role])
        # Lateness: the recovery starts at rockspeer's next tick after authentication.
        auth_t = [e["t"] for e in trace if e["event"] == "auth" and e.get("rec") == rec][0]
        hb_t = [t for l, _, t in ours if l == "hb-addr"][0]
        self.assertTrue(0 < hb_t - auth_t <= hb_period + 0.15, "hb-addr %.3f s after authentication" % (hb_t - auth_t))
        # The applications' bytes, whole, in order.
        if role == "client":
            recv = read_bytes(os.path.join(WORKDIR, sc.name + ".recv.bin"))
            self.assertEqual(recv, replay.app, "the client application did not get its echo back whole")
            self.assertEqual(replay.received_new, replay.app[cap.rcvseq["server"]:])
        else:
            self.assertEqual(replay.received_new, replay.app[cap.rcvseq["client"]:])
        Compare.add(name, "application bytes after the failure, whole and in order (%s side)" % role,
                    len(replay.app) - cap.rcvseq[role])
        self.assertEqual(p.stats["recoveries"], 1)
        if moved_to:
            self.assertTrue(rec_ev["peer"].startswith(moved_to + ":") or rec_ev["local"].startswith(moved_to + ":"))
        return p, replay, rec_ev


@needs_captures
class LinkDownReconnectTest(ReconnectionChecks, unittest.TestCase):
    """rocks-linkdown: a RST suspends (as the capture's server), the server's active connection wins."""

    def test_rockspeer_client(self):
        self.check_reconnection("linkdown", "client", "rst", "passive")

    def test_rockspeer_server(self):
        self.check_reconnection("linkdown", "server", "rst", "active")


@needs_captures
class BlackholeReconnectTest(ReconnectionChecks, unittest.TestCase):
    """rocks-blackhole: silence suspends after missed heartbeats (3 here, 15 in rocks), go-back-N resends
    exactly the capture's ranges: the client 9288 bytes from 0x3d400, the server 1024 from 0x3d000."""

    def test_rockspeer_client(self):
        self.check_reconnection("blackhole", "client", "silence", "passive")

    def test_rockspeer_server(self):
        self.check_reconnection("blackhole", "server", "silence", "active")


@needs_captures
class AddressChangeReconnectTest(ReconnectionChecks, unittest.TestCase):
    """rocks-ipchange: the client moved (10.201.0.1 -> .3 in the capture, 127.0.0.1 -> 127.0.0.3 here); its
    active connection from the new address wins and its new sockaddrs carry the new address."""

    def test_rockspeer_client_moves(self):
        p, replay, rec_ev = self.check_reconnection("ipchange", "client", "silence", "active", moved_to="127.0.0.3")
        self.assertTrue(rec_ev["local"].startswith("127.0.0.3:"))
        for label in ("local_hb_addr", "local_rec_addr"):
            self.assertTrue(rec_ev[label].startswith("127.0.0.3:"), rec_ev)

    def test_rockspeer_server_peer_moves(self):
        p, replay, rec_ev = self.check_reconnection("ipchange", "server", "silence", "passive", moved_to="127.0.0.3")
        self.assertTrue(rec_ev["peer"].startswith("127.0.0.3:"))
        self.assertTrue(rec_ev["peer_hb_addr"].startswith("127.0.0.3:"))


@needs_captures
class WrongKeyReconnectTest(ReconnectionChecks, unittest.TestCase):
    """A reconnection that fails authentication (the replay's first attempt uses a wrong key) is closed,
    and rockspeer goes back to 1of2; the next one, with the right key, recovers."""
    variant = "badkey"

    def test_rockspeer_server(self):
        p, replay, _ = self.check_reconnection("linkdown", "server", "rst", "active")
        self.assertEqual(p.stats["auth_failures"], 1)
        auths = [e for e in p.trace if e["event"] == "auth"]
        self.assertEqual([a["result"] for a in auths], ["failed", "ok"])
        self.assertEqual(replay.auth[0]["wrong_key"], True)



if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--wire-run":
        sys.exit(wire_run_main(sys.argv[2]))
    unittest.main()
