#!/usr/bin/env python3
"""rocks_trace_compare.py: compare what one host sent toward a rock in two captures. Python 3 stdlib only.

    rocks_trace_compare.py compare REFERENCE.pcap RUN.pcap --side client|server|both [--port P]
    rocks_trace_compare.py heartbeats CAPTURE.pcap [--port P] [--min-span S] [--period S] [--tolerance S]
    rocks_trace_compare.py summary CAPTURE.pcap [--port P]

The question it answers (issue 11, "What it must show"): is every byte rackd put on the wire toward a rock
what a rocks 2.4 library would have put there? REFERENCE is a capture of the scenario played by rocks
itself (tools/rockspeer.py on both hosts: rock to rock), RUN the same scenario with rackd and an ordinary
application in place of one rock. Both captures must hold the same application bytes (rockspeer's
--send-bytes N --seed S, or the same files) over IPv4, as tcpdump writes them (classic pcap; Ethernet,
Linux cooked v1/v2 or raw IP; either byte order, us or ns timestamps).

`compare` takes the TCP connections to the server port (--port, default: the port of the first SYN) in
the order of their SYNs and classifies each: a probe (the client sends no byte, and a FIN), a rock (the
client's stream starts with the announcement), or plain. Both captures must hold the same sequence of
kinds (if they do not, the connections before the first that differs are still compared, to show why). --side names the side whose bytes are compared (the side that rackd played in RUN): for each
connection, every TCP payload byte that side sent must be equal, at the same position relative to its ISN,
to the reference's, with these exceptions:
  * the DH public value (random): its length field must equal its length, it must be minimal (no leading
    zero byte) and at most 16 bytes (a 128-bit group); its length must equal the reference's, unless one of
    them is shorter than 16 bytes (a value with a leading zero byte is minimal and shorter, probability
    1/256), in which case what follows is compared shifted by the difference, which is reported;
  * the port and address inside the two raw sockaddr_in (reconnection and heartbeat address): they name
    other sockets. The family bytes 02 00 and the 8 zero bytes must match; port and address must not be
    zero, and the address must be the sender's own address in that connection.
Segmentation is compared where rocks fixes it: the announcement is a segment of its own, and so is each of
the six init messages (DH length, DH value, reconnection address, SO_SNDBUF, SO_RCVBUF, heartbeat address),
in the same order and of the same lengths; bytes before the announcement (a banner) never share its segment.
Application bytes are compared as a stream (their segmentation is the kernel's). The FIN must be at the
same stream position when the reference has one.

A probe is compared by shape: its client sends a SYN, the handshake's ACK and a FIN with no data (never a
byte), with the TCP option kinds of the reference's SYN; its server sends [banner +] the announcement, the
announcement in a segment of its own, then its FIN. The connection after a probe opens (its SYN) only after
the probe's server FIN. Whether either side reset the probe must be as in the reference.

UDP: every datagram between the two hosts must be exactly b"x" (a heartbeat), sent from the heartbeat
sockaddr its sender advertised at init to the one its receiver advertised. If the reference has heartbeats
in a direction, the run must have some too.

`heartbeats` checks one capture's heartbeats over time: for each direction between the rock connection's
advertised heartbeat sockaddrs, datagrams spanning at least --min-span seconds (5; at least --min-span /
--period intervals, and the first to the last at least --min-span - --tolerance apart), every payload b"x",
the median interval within --period (1.0) +- 0.1 s, and no interval longer than --period + --tolerance
(0.25). `summary` prints what the parser sees (connections, their layout, datagrams).

Exit status: 0 equal (or heartbeats as required), 1 a difference (each printed with the position and the
bytes on both sides), 2 the captures could not be read or hold no such scenario.
"""

import argparse
import os
import socket
import statistics
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcap  # noqa: E402  (tools/pcap.py: the classic pcap reader)

ANN = b"IROCKYOUROCKMAN\x00"
HEARTBEAT = b"x"
INIT_LABELS = ("dh-len", "dh-key", "rec-addr", "sndbuf", "rcvbuf", "hb-addr")
MAX_DH_LEN = 16                      # docs/rocks.md §3.4: a 128-bit prime

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


# The capture cannot be read (pcap.py raises it), or does not hold the expected scenario (exit status 2).
CaptureError = pcap.PcapError


# ---------------------------------------------------------------------------------------------------
# packets (tools/pcap.py reads the file)

class Packet:
    __slots__ = ("index", "ts", "proto", "src", "sport", "dst", "dport", "seq", "ack", "flags", "options",
                 "payload")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    def flag_text(self):
        return "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."))
                       if self.flags & bit) or "-"


def read_pcap(path):
    """IPv4 TCP and UDP packets of a classic pcap file, in capture order."""
    cap = pcap.read(path)
    packets = []
    for rec in cap.records():
        ip = cap.ipv4(rec.frame)
        if ip is None:
            continue
        pkt = packet(ip, rec, path)
        if pkt is not None:
            packets.append(pkt)
    return packets


def packet(ip, rec, path):
    """The Packet of a TCP or UDP record (pcap.IPv4 ip), None for other protocols. A TCP or UDP packet cut by the
    snap length is refused: every payload byte is compared."""
    if ip.truncated or rec.truncated:
        if ip.proto in (pcap.PROTO_TCP, pcap.PROTO_UDP):
            raise CaptureError("%s: packet %d was cut by the snap length (capture with -s 0)" % (path, rec.index))
        return None
    l4 = ip.payload
    if ip.proto == pcap.PROTO_TCP:
        tcp = pcap.parse_tcp(l4)
        if tcp is not None:
            return Packet(index=rec.index, ts=rec.ts, proto="tcp", src=ip.src, sport=tcp.sport, dst=ip.dst,
                          dport=tcp.dport, seq=tcp.seq, ack=tcp.ack, flags=tcp.flags,
                          options=pcap.tcp_option_kinds(tcp.options), payload=bytes(tcp.payload))
    if ip.proto == pcap.PROTO_UDP:
        udp = pcap.parse_udp(l4)
        if udp is not None:
            return Packet(index=rec.index, ts=rec.ts, proto="udp", src=ip.src, sport=udp.sport, dst=ip.dst,
                          dport=udp.dport, payload=bytes(udp.payload))
    return None


# ---------------------------------------------------------------------------------------------------
# TCP connections

class Conn:
    """One TCP connection. The client sent the SYN. Per direction ("c2s", "s2c"): the data segments in
    sequence order, first transmissions only (a retransmission of bytes already seen is dropped), the
    relative sequence number of the FIN, resets, and every packet with its direction."""

    def __init__(self, syn):
        self.client = (syn.src, syn.sport)
        self.server = (syn.dst, syn.dport)
        self.t_syn = syn.ts
        self.isn = {"c2s": syn.seq, "s2c": None}
        self.syn_options = {"c2s": syn.options, "s2c": None}
        self.segments = {"c2s": [], "s2c": []}
        self.covered = {"c2s": [], "s2c": []}
        self.fin = {"c2s": None, "s2c": None}
        self.fin_ts = {"c2s": None, "s2c": None}
        self.rst = {"c2s": False, "s2c": False}
        self.packets = [("c2s", syn)]
        self.kind = None
        self.layout = {}

    def add(self, pkt, d):
        self.packets.append((d, pkt))
        if pkt.flags & SYN:
            self.isn[d] = pkt.seq
            self.syn_options[d] = pkt.options
            return
        if pkt.flags & RST:
            self.rst[d] = True
        isn = self.isn[d]
        if isn is None:
            return
        rel = (pkt.seq - isn) & 0xFFFFFFFF
        if pkt.payload:
            end = rel + len(pkt.payload)
            if not any(a <= rel and end <= b for a, b in self.covered[d]):
                self.segments[d].append((rel, pkt.payload, pkt.ts))
                self.covered[d].append((rel, end))
        if pkt.flags & FIN and self.fin[d] is None:
            self.fin[d] = rel + len(pkt.payload)
            self.fin_ts[d] = pkt.ts

    def ordered(self, d):
        return sorted(self.segments[d], key=lambda s: (s[0], -len(s[1])))

    def stream(self, d):
        """The bytes sent in direction d, from relative sequence 1. A hole raises CaptureError."""
        out, pos = bytearray(), 1
        for rel, payload, _ in self.ordered(d):
            if rel + len(payload) <= pos:
                continue
            if rel > pos:
                raise CaptureError("%s: hole in the captured %s stream at relative seq %d (%d bytes missing): "
                                   "the capture dropped packets" % (self.name(), d, pos, rel - pos))
            out += payload[pos - rel:]
            pos = rel + len(payload)
        return bytes(out)

    def segment_at(self, d, start):
        """The first transmission starting at stream offset `start` (relative seq start + 1), or None."""
        for rel, payload, _ in self.segments[d]:          # in capture order: the first transmission
            if rel == start + 1:
                return payload
        return None

    def sender(self, d):
        return self.client if d == "c2s" else self.server

    def name(self):
        return "%s:%d -> %s:%d" % (self.client + self.server)


def tcp_connections(packets, port):
    conns, live = [], {}
    for p in packets:
        if p.proto != "tcp" or port not in (p.sport, p.dport):
            continue
        key, rkey = (p.src, p.sport, p.dst, p.dport), (p.dst, p.dport, p.src, p.sport)
        if p.flags & SYN and not p.flags & ACK and p.dport == port:
            old = live.get(key)
            if old is not None and old.isn["c2s"] == p.seq:
                old.packets.append(("c2s", p))      # a retransmitted SYN
                continue
            conn = Conn(p)
            conns.append(conn)
            live[key] = conn
            continue
        if key in live:
            live[key].add(p, "c2s")
        elif rkey in live:
            live[rkey].add(p, "s2c")
    for c in conns:
        classify(c)
    return conns


def first_port(packets):
    for p in packets:
        if p.proto == "tcp" and p.flags & SYN and not p.flags & ACK:
            return p.dport
    raise CaptureError("the capture holds no TCP SYN")


# ---------------------------------------------------------------------------------------------------
# The rocks layout of a connection (docs/rocks.md §2, §3)

def parse_sockaddr_in(raw):
    """(family bytes, port, address, padding) of a raw x86 struct sockaddr_in."""
    return raw[0:2], struct.unpack(">H", raw[2:4])[0], socket.inet_ntoa(raw[4:8]), raw[8:16]


def init_fields(stream, start):
    """[(label, start, end)] of the six init messages from `start`, or raise CaptureError."""
    out, pos = [], start
    if len(stream) < pos + 4:
        raise CaptureError("the stream ends inside the DH length (%d bytes after the announcement)" % (len(stream) - start))
    dh_len = struct.unpack(">I", stream[pos:pos + 4])[0]
    if dh_len > 1024:
        raise CaptureError("DH length field %d at stream offset %d is not a rocks DH length" % (dh_len, pos))
    for label, size in (("dh-len", 4), ("dh-key", dh_len), ("rec-addr", 16), ("sndbuf", 4), ("rcvbuf", 4),
                        ("hb-addr", 16)):
        if len(stream) < pos + size:
            raise CaptureError("the stream ends inside the init message %s (offset %d)" % (label, pos))
        out.append((label, pos, pos + size))
        pos += size
    return out, pos


def classify(conn):
    """Set conn.kind (probe, rock, plain) and, for a rock, conn.layout[d] = [(label, start, end)] with
    stream offsets (0 = relative seq 1), ending with ("app", start, len(stream))."""
    try:
        c2s = conn.stream("c2s")
    except CaptureError:
        c2s = None
    if c2s == b"" and conn.fin["c2s"] == 1:
        conn.kind = "probe"
        return
    if c2s is not None and c2s.startswith(ANN):
        conn.kind = "rock"
        return
    conn.kind = "plain"


def rock_layout(conn, d):
    """The layout of direction d of a rock connection (computed on demand: it needs the whole stream)."""
    if d in conn.layout:
        return conn.layout[d]
    stream = conn.stream(d)
    at = stream.find(ANN)
    if at < 0:
        raise CaptureError("%s: no announcement in the %s stream" % (conn.name(), d))
    fields = [("banner", 0, at)] if at else []
    fields.append(("announcement", at, at + 16))
    msgs, end = init_fields(stream, at + 16)
    fields += msgs
    fields.append(("app", end, len(stream)))
    conn.layout[d] = (fields, stream)
    return conn.layout[d]


# ---------------------------------------------------------------------------------------------------
# Reporting

def hexdump(data, base, around, width=16):
    """The bytes of `data` around index `around`, which is at stream offset base + around."""
    a = max(0, around - width)
    return data[a:around + width].hex(" ") + "  (from stream offset %d)" % (base + a)


class Report:
    def __init__(self, verbose=True):
        self.failures = []
        self.notes = []
        self.checks = 0
        self.verbose = verbose

    def check(self, ok, what, detail=""):
        self.checks += 1
        if ok:
            if self.verbose:
                print("  ok   %s" % what)
        else:
            print("  FAIL %s%s" % (what, (": " + detail) if detail else ""))
            self.failures.append(what)
        return ok

    def note(self, text):
        print("  note %s" % text)
        self.notes.append(text)


# ---------------------------------------------------------------------------------------------------
# compare

def other(d):
    return "s2c" if d == "c2s" else "c2s"


def compare_probe(rep, name, ref, run, d):
    """Compare the probe connection's packets from the side d (c2s: the prober; s2c: the answer)."""
    if d == "c2s":
        rep.check(run.stream("c2s") == b"" and not any(p.payload for dd, p in run.packets if dd == "c2s"),
                  "%s: the prober sends no payload byte" % name)
        rep.check(run.fin["c2s"] == 1, "%s: the prober sends a FIN with no data (relative seq 1)" % name,
                  "its FIN is at %s" % run.fin["c2s"])
        fin_first = run.fin_ts["c2s"] is not None and (run.fin_ts["s2c"] is None or run.fin_ts["c2s"] <= run.fin_ts["s2c"])
        rep.check(fin_first, "%s: the prober's FIN comes before the server's" % name)
        rep.check(run.syn_options["c2s"] == ref.syn_options["c2s"],
                  "%s: the prober's SYN has the reference's TCP options" % name,
                  "kinds %s, reference %s" % (run.syn_options["c2s"], ref.syn_options["c2s"]))
        # Before its FIN the prober sends only its SYN and bare ACKs: the handshake's, and one of a banner that
        # arrived before the shutdown if the kernel acknowledged it at once (quick ACKs at a connection's start).
        shape = []
        for dd, p in run.packets:
            if dd == "c2s":
                shape.append(p.flag_text())
                if p.flags & FIN:
                    break
        rep.check(len(shape) >= 3 and shape[0] == "S" and set(shape[1:-1]) == {"."} and "F" in shape[-1],
                  "%s: the prober sends SYN, the handshake's ACK, then its FIN (bare ACKs only between)" % name,
                  "it sends %s" % " ".join(shape))
        rep.check(run.rst["c2s"] == ref.rst["c2s"], "%s: the prober resets the probe as the reference does (%s)"
                  % (name, ref.rst["c2s"]), "run %s" % run.rst["c2s"])
    else:
        want, got = ref.stream("s2c"), run.stream("s2c")
        rep.check(got == want, "%s: the probe's answer is the reference's %d bytes (%s)"
                  % (name, len(want), "banner + announcement" if len(want) > 16 else "the announcement"),
                  diff_text(want, got, 0))
        if got.endswith(ANN):
            seg = run.segment_at("s2c", len(got) - 16)
            rep.check(seg == ANN, "%s: the announcement is a segment of its own" % name,
                      "the segment at its offset holds %s" % (seg.hex(" ") if seg else "nothing"))
        rep.check(run.fin["s2c"] == len(got) + 1 and ref.fin["s2c"] == len(want) + 1,
                  "%s: the answer ends with a FIN right after the announcement" % name,
                  "FIN at relative seq %s, stream %d bytes" % (run.fin["s2c"], len(got)))
        rep.check(run.rst["s2c"] == ref.rst["s2c"], "%s: the answering side resets the probe as the reference "
                  "does (%s)" % (name, ref.rst["s2c"]), "run %s" % run.rst["s2c"])


def diff_text(want, got, base):
    n = min(len(want), len(got))
    for i in range(n):
        if want[i] != got[i]:
            return ("first difference at stream offset %d (relative seq %d): reference %s | run %s"
                    % (base + i, base + i + 1, hexdump(want, base, i), hexdump(got, base, i)))
    if len(want) != len(got):
        return "lengths differ: reference %d bytes, run %d bytes (equal for the first %d)" % (len(want), len(got), n)
    return ""


def compare_rock(rep, name, ref, run, d):
    ref_fields, ref_stream = rock_layout(ref, d)
    run_fields, run_stream = rock_layout(run, d)
    ref_labels = [f[0] for f in ref_fields]
    run_labels = [f[0] for f in run_fields]
    if not rep.check(run_labels == ref_labels, "%s %s: the messages are the reference's: %s" % (name, d, " ".join(ref_labels)),
                     "run: %s" % " ".join(run_labels)):
        return
    sender_addr = run.sender(d)[0]
    shift = 0
    for (label, a, b), (_, ra, rb) in zip(run_fields, ref_fields):
        got, want = run_stream[a:b], ref_stream[ra:rb]
        where = "%s %s %s" % (name, d, label)
        if label != "app" and not (label == "dh-key" and shift):
            rep.check(a == ra + shift, "%s at stream offset %d (relative seq %d)" % (where, ra + shift, ra + shift + 1),
                      "it is at %d" % a)
        if label == "banner":
            rep.check(got == want, "%s: the same %d bytes" % (where, len(want)), diff_text(want, got, a))
        elif label == "announcement":
            rep.check(got == ANN, "%s: IROCKYOUROCKMAN\\0" % where, got.hex(" "))
        elif label == "dh-len":
            pass                                   # checked with the value
        elif label == "dh-key":
            field = struct.unpack(">I", run_stream[a - 4:a])[0]
            rep.check(field == len(got), "%s: its length field says %d, it has %d bytes" % (where, field, len(got)))
            rep.check(0 < len(got) <= MAX_DH_LEN and got[0] != 0,
                      "%s: minimal big-endian, 1 to %d bytes (%d, first byte %02x)" % (where, MAX_DH_LEN, len(got),
                                                                                  got[0] if got else 0))
            if len(got) != len(want):
                if len(got) < MAX_DH_LEN or len(want) < MAX_DH_LEN:
                    rep.note("%s: %d bytes, the reference's %d (a value with leading zero bytes is shorter); "
                             "what follows is compared shifted by %d" % (where, len(got), len(want), len(got) - len(want)))
                    shift = len(got) - len(want)
                else:
                    rep.check(False, "%s: the reference's length %d" % (where, len(want)), "run %d" % len(got))
                    return
            else:
                rep.check(True, "%s: %d bytes like the reference's (value masked: random)" % (where, len(got)))
        elif label in ("rec-addr", "hb-addr"):
            fam, port, addr, pad = parse_sockaddr_in(got)
            rfam, _, _, rpad = parse_sockaddr_in(want)
            rep.check(fam == rfam == b"\x02\x00", "%s: family 02 00 (AF_INET, little-endian)" % where, fam.hex(" "))
            rep.check(pad == rpad == bytes(8), "%s: 8 zero bytes of padding" % where, pad.hex(" "))
            rep.check(port != 0 and addr != "0.0.0.0", "%s: names a socket (%s:%d)" % (where, addr, port))
            rep.check(addr == sender_addr, "%s: the sender's own address %s" % (where, sender_addr), addr)
        elif label in ("sndbuf", "rcvbuf"):
            rep.check(got == want, "%s: %s as the reference" % (where, want.hex(" ")), got.hex(" "))
        elif label == "app":
            rep.check(a == ra + shift, "%s: application byte 0 at stream offset %d (relative seq %d)"
                      % (where, ra + shift, ra + shift + 1), "it is at %d" % a)
            rep.check(got == want, "%s: the reference's %d application bytes, byte for byte" % (where, len(want)),
                      diff_text(want, got, a))
        if label not in ("banner", "app"):
            seg = run.segment_at(d, a)
            rep.check(seg == got, "%s: a segment of its own (%d bytes)" % (where, b - a),
                      "the segment at its offset holds %s" % ("%d bytes: %s" % (len(seg), seg[:32].hex(" ")) if seg else "nothing"))
    if ref.fin[d] is not None:
        rep.check(run.fin[d] == len(run_stream) + 1, "%s %s: the FIN follows the last byte" % (name, d),
                  "FIN at %s, stream %d bytes" % (run.fin[d], len(run_stream)))
    if run.rst[d] != ref.rst[d]:
        rep.note("%s %s: reset %s in the run, %s in the reference" % (name, d, run.rst[d], ref.rst[d]))


def compare_plain(rep, name, ref, run, d):
    want, got = ref.stream(d), run.stream(d)
    rep.check(got == want, "%s %s: the reference's %d bytes" % (name, d, len(want)), diff_text(want, got, 0))


def advertised_hb(conn, d):
    fields, stream = rock_layout(conn, d)
    for label, a, b in fields:
        if label == "hb-addr":
            _, port, addr, _ = parse_sockaddr_in(stream[a:b])
            return addr, port
    return None


def datagrams(packets, hosts):
    return [p for p in packets if p.proto == "udp" and {p.src, p.dst} == hosts]


def compare_heartbeats(rep, ref_packets, run_packets, ref_rock, run_rock, sides):
    for label, packets, rock in (("reference", ref_packets, ref_rock), ("run", run_packets, run_rock)):
        hosts = {rock.client[0], rock.server[0]}
        dgrams = datagrams(packets, hosts)
        bad = [p for p in dgrams if p.payload != HEARTBEAT]
        rep.check(not bad, "%s: every UDP datagram between the hosts is b\"x\" (%d datagrams)" % (label, len(dgrams)),
                  "%d are not, e.g. packet %d: %s" % (len(bad), bad[0].index, bad[0].payload[:32].hex(" ")) if bad else "")
    for d in sides:
        ref_src, ref_dst = advertised_hb(ref_rock, d), advertised_hb(ref_rock, other(d))
        run_src, run_dst = advertised_hb(run_rock, d), advertised_hb(run_rock, other(d))
        ref_n = sum(1 for p in ref_packets if p.proto == "udp" and (p.src, p.sport) == ref_src and (p.dst, p.dport) == ref_dst)
        run_all = [p for p in run_packets if p.proto == "udp" and p.src == run_rock.sender(d)[0]]
        run_ok = [p for p in run_all if (p.src, p.sport) == run_src and (p.dst, p.dport) == run_dst]
        who = "client" if d == "c2s" else "server"
        rep.check(len(run_ok) == len(run_all), "run: the %s's heartbeats go from its advertised %s:%d to the peer's %s:%d"
                  % (who, run_src[0], run_src[1], run_dst[0], run_dst[1]),
                  "%d of %d do not, e.g. %s:%d -> %s:%d" % ((len(run_all) - len(run_ok),  len(run_all))
                                                            + next(((p.src, p.sport, p.dst, p.dport) for p in run_all
                                                                    if p not in run_ok), ("?", 0, "?", 0))))
        if ref_n:
            rep.check(run_ok, "run: the %s sends heartbeats (reference %d, run %d)" % (who, ref_n, len(run_ok)))


def compare(args):
    ref_packets, run_packets = read_pcap(args.reference), read_pcap(args.run)
    ref_port = args.port or first_port(ref_packets)
    run_port = args.port or first_port(run_packets)
    ref_conns, run_conns = tcp_connections(ref_packets, ref_port), tcp_connections(run_packets, run_port)
    if not ref_conns:
        raise CaptureError("%s: no TCP connection to port %d" % (args.reference, ref_port))
    sides = {"client": ["c2s"], "server": ["s2c"], "both": ["c2s", "s2c"]}[args.side]
    rep = Report(verbose=not args.quiet)
    print("compare %s (reference, port %d) with %s (run, port %d): the bytes %s" % (
        args.reference, ref_port, args.run, run_port,
        {"client": "the client sent", "server": "the server sent", "both": "both sides sent"}[args.side]))
    ref_kinds, run_kinds = [c.kind for c in ref_conns], [c.kind for c in run_conns]
    print("  connections: reference %s, run %s" % (" ".join(ref_kinds), " ".join(run_kinds)))
    same = rep.check(ref_kinds == run_kinds, "the run's connections are the reference's: %s" % " ".join(ref_kinds),
                     "run: %s" % " ".join(run_kinds))
    if not same:
        describe(run_conns, "run")
    for i, (ref, run) in enumerate(zip(ref_conns, run_conns)):
        if not same and ref.kind != run.kind:
            break                         # compared up to the first connection of another kind (why it differs)
        name = "conn %d (%s)" % (i + 1, ref.kind)
        for d in sides:
            if ref.kind == "probe":
                compare_probe(rep, name, ref, run, d)
            elif ref.kind == "rock":
                compare_rock(rep, name, ref, run, d)
            else:
                compare_plain(rep, name, ref, run, d)
        if i > 0 and ref_conns[i - 1].kind == "probe":
            probe = run_conns[i - 1]
            after = probe.fin_ts["s2c"] is not None and run.t_syn >= probe.fin_ts["s2c"]
            rep.check(after, "%s opens after the probe's answer ended (its SYN after the server's FIN)" % name,
                      "SYN at %.6f, the probe's server FIN at %s" % (run.t_syn, probe.fin_ts["s2c"]))
        if ref.kind == "rock" and run.syn_options["c2s"] != ref.syn_options["c2s"]:
            rep.note("%s: the client's SYN has TCP option kinds %s, the reference's %s"
                     % (name, run.syn_options["c2s"], ref.syn_options["c2s"]))
    ref_rocks = [c for c in ref_conns if c.kind == "rock"]
    if ref_rocks and same:
        compare_heartbeats(rep, ref_packets, run_packets, ref_rocks[0],
                           [c for c in run_conns if c.kind == "rock"][0], sides)
    return finish(rep)


def finish(rep):
    if rep.failures:
        print("DIFFERENT: %d of %d checks failed" % (len(rep.failures), rep.checks))
        return 1
    print("EQUAL: %d checks passed%s" % (rep.checks, (", %d note(s)" % len(rep.notes)) if rep.notes else ""))
    return 0


# ---------------------------------------------------------------------------------------------------
# heartbeats, summary

def heartbeats(args):
    packets = read_pcap(args.capture)
    port = args.port or first_port(packets)
    rocks = [c for c in tcp_connections(packets, port) if c.kind == "rock"]
    if not rocks:
        raise CaptureError("%s: no rock connection to port %d" % (args.capture, port))
    rock = rocks[-1]
    rep = Report()
    print("heartbeats of %s (port %d): span >= %.1f s, period %.2f s +- 0.1 (median), no gap above %.2f s"
          % (rock.name(), port, args.min_span, args.period, args.period + args.tolerance))
    hosts = {rock.client[0], rock.server[0]}
    dgrams = datagrams(packets, hosts)
    bad = [p for p in dgrams if p.payload != HEARTBEAT]
    rep.check(not bad, "every UDP datagram between the hosts is b\"x\" (%d datagrams)" % len(dgrams),
              "%d are not, e.g. %s" % (len(bad), bad[0].payload[:32].hex(" ")) if bad else "")
    for d in ("c2s", "s2c"):
        src, dst = advertised_hb(rock, d), advertised_hb(rock, other(d))
        ts = [p.ts for p in dgrams if (p.src, p.sport) == src and (p.dst, p.dport) == dst]
        who = "client -> server" if d == "c2s" else "server -> client"
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        span = ts[-1] - ts[0] if ts else 0.0
        if gaps:
            print("  %s (%s:%d -> %s:%d): %d datagrams over %.2f s; intervals median %.3f, min %.3f, max %.3f"
                  % ((who,) + src + dst + (len(ts), span, statistics.median(gaps), min(gaps), max(gaps))))
        need = max(1, round(args.min_span / args.period))
        rep.check(len(gaps) >= need and span >= args.min_span - args.tolerance,
                  "%s: heartbeats over at least %.1f s (%d intervals or more)" % (who, args.min_span, need),
                  "%d datagrams over %.2f s" % (len(ts), span))
        if gaps:
            med = statistics.median(gaps)
            rep.check(abs(med - args.period) <= 0.1, "%s: median interval %.3f s" % (who, med))
            rep.check(max(gaps) <= args.period + args.tolerance, "%s: longest interval %.3f s" % (who, max(gaps)))
    return finish(rep)


def describe(conns, label):
    for i, c in enumerate(conns):
        print("  %s conn %d %s %s, SYN %.6f, FIN c2s %s s2c %s, RST c2s %s s2c %s" % (
            label, i + 1, c.kind, c.name(), c.t_syn, c.fin["c2s"], c.fin["s2c"], c.rst["c2s"], c.rst["s2c"]))
        for d in ("c2s", "s2c"):
            segs = c.ordered(d)
            if c.kind == "rock":
                try:
                    fields, _ = rock_layout(c, d)
                    print("    %s: %s" % (d, " ".join("%s@%d+%d" % (l, a + 1, b - a) for l, a, b in fields)))
                except CaptureError as e:
                    print("    %s: %s" % (d, e))
            print("    %s: %d segments, first %s" % (d, len(segs), [(r, len(p)) for r, p, _ in segs[:10]]))


def summary(args):
    packets = read_pcap(args.capture)
    port = args.port or first_port(packets)
    conns = tcp_connections(packets, port)
    print("%s: %d packets, port %d, %d connections" % (args.capture, len(packets), port, len(conns)))
    describe(conns, "")
    udp = [p for p in packets if p.proto == "udp"]
    flows = {}
    for p in udp:
        flows.setdefault((p.src, p.sport, p.dst, p.dport), []).append(p)
    for (s, sp, d, dp), ps in sorted(flows.items()):
        print("  udp %s:%d -> %s:%d: %d datagrams, payloads %s" % (s, sp, d, dp, len(ps),
                                                                   sorted({p.payload[:8].hex() for p in ps})))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="The module docstring (--help-all) describes every check.")
    parser.add_argument("--help-all", action="store_true", help="print the full description and exit")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("compare", help="compare a run with a reference capture")
    p.add_argument("reference")
    p.add_argument("run")
    p.add_argument("--side", choices=("client", "server", "both"), required=True,
                   help="whose bytes are compared: the side rackd played in the run")
    p.add_argument("--port", type=int, help="the server port (default: each capture's first SYN's)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only failures, notes and the verdict")
    p = sub.add_parser("heartbeats", help="check one capture's heartbeats over time")
    p.add_argument("capture")
    p.add_argument("--port", type=int)
    p.add_argument("--min-span", type=float, default=5.0)
    p.add_argument("--period", type=float, default=1.0)
    p.add_argument("--tolerance", type=float, default=0.25)
    p = sub.add_parser("summary", help="print what the parser sees in a capture")
    p.add_argument("capture")
    p.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    if args.help_all:
        print(__doc__)
        return 0
    if not args.command:
        parser.error("a command is needed: compare, heartbeats or summary")
    try:
        return {"compare": compare, "heartbeats": heartbeats, "summary": summary}[args.command](args)
    except CaptureError as e:
        print("rocks_trace_compare: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
