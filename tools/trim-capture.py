#!/usr/bin/env python3
"""trim-capture.py: cut a rocks 2.4 failure capture down to what the tests need. Python 3 stdlib only.

    tools/trim-capture.py IN.pcap OUT.pcap [--tail-bytes N] [--reconnect-bytes N]

The failure captures of ../shared/rocks-captures/ (rocks-linkdown.pcap, rocks-blackhole.pcap,
rocks-ipchange.pcap: docs/rocks.md §13) are 4-5 MB each, nearly all of it application bytes echoed
before and after the failure. This keeps, record for record and byte for byte (the records kept are
copied unchanged, so times, sequence numbers and checksums are the capture's):

  * the probe connection (the first TCP connection), whole;
  * the data connection (the second connection to the same server address and port): its handshake,
    announcement and init (every packet up to the last one that carries an init byte, in either
    direction), then nothing until the window around the suspension, then everything to its end. The
    window starts with the first transmission of the packet that carries stream byte
    (length - N) of either direction, N = --tail-bytes (32768): the last N bytes each way, their
    acknowledgements, the retransmissions, the RSTs of the suspension. Every byte rocks resends after
    the reconnection (go-back-N, §5.4) is in there as long as N exceeds what was in flight;
  * every reconnection attempt (every other TCP connection that carries no payload: the 1of2 SYNs and the
    RSTs that refused them, the SYN storms), whole;
  * the reconnection connection that won (the other TCP connection that carries payload): in each
    direction, every packet up to and including the first one that reaches stream byte N =
    --reconnect-bytes (32768): the 1of2 byte, authentication, recovery messages, the go-back-N and the
    first application bytes after it (a prefix in time per direction, so the kept stream has no hole);
  * everything that is not TCP (the UDP heartbeats, ICMP, ARP), whole.

It prints what it kept. The relative sequence numbers of the data connection jump over the cut: a
reader that reassembles it must take the stream in two parts (the init, then the tail).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcap  # noqa: E402  (tools/pcap.py: the classic pcap reader)

ANNOUNCEMENT = b"IROCKYOUROCKMAN\x00"
SYN, RST, ACK = 0x02, 0x04, 0x10


class Record:
    __slots__ = ("raw", "ts", "tcp", "key", "seq", "flags", "payload_len", "payload")

    def __init__(self, raw, ts):
        self.raw, self.ts = raw, ts
        self.tcp = False
        self.key = None
        self.payload = b""


def read_records(path):
    """(global header bytes, [Record]) of a classic pcap file (tools/pcap.py: either byte order, us or ns)."""
    try:
        cap = pcap.read(path)
        records = []
        for r in cap.records():
            rec = Record(r.raw, r.ts)
            ip = cap.ipv4(r.frame)
            if ip is not None and ip.proto == pcap.PROTO_TCP:
                parse_tcp(rec, ip)
            records.append(rec)
    except pcap.PcapError as e:
        raise SystemExit(str(e)) from e
    return cap.header, records


def parse_tcp(rec, ip):
    """Fill rec from its IPv4 TCP packet (pcap.IPv4 ip); left not TCP if the segment is shorter than a header."""
    tcp = pcap.parse_tcp(ip.payload)
    if tcp is None:
        return
    rec.tcp = True
    rec.key = (ip.src, tcp.sport, ip.dst, tcp.dport)
    rec.seq, rec.flags = tcp.seq, tcp.flags
    rec.payload = bytes(tcp.payload)
    rec.payload_len = len(rec.payload)


class Conn:
    def __init__(self, syn):
        self.client = syn.key[:2]
        self.server = syn.key[2:]
        self.isn = {"c2s": syn.seq, "s2c": None}
        self.records = []                 # (record, direction)
        self.payload = False

    def direction(self, rec):
        return "c2s" if rec.key[:2] == self.client else "s2c"

    def rel(self, rec, d):
        return (rec.seq - self.isn[d]) & 0xFFFFFFFF

    def stream_ends(self):
        """Per direction: (stream length, [(first transmission time, start, end)] in seq order)."""
        out = {}
        for d in ("c2s", "s2c"):
            segs, seen = [], set()
            for rec, rd in self.records:
                if rd != d or not rec.payload_len or self.isn[d] is None:
                    continue
                rel = self.rel(rec, d)
                if rel in seen:
                    continue
                seen.add(rel)
                segs.append((rec.ts, rel - 1, rel - 1 + rec.payload_len))
            segs.sort(key=lambda s: s[1])
            out[d] = (max((s[2] for s in segs), default=0), segs)
        return out

    def stream_prefix(self, d, n):
        """The first n bytes of direction d (the start of the connection has no hole)."""
        buf = bytearray()
        for _ts, a, b, payload in sorted(((r.ts, self.rel(r, rd) - 1, 0, r.payload) for r, rd in self.records
                                          if rd == d and r.payload_len and self.isn[d] is not None),
                                         key=lambda s: s[1]):
            if a <= len(buf) < a + len(payload):
                buf += payload[len(buf) - a:]
            if len(buf) >= n:
                break
        return bytes(buf[:n])


def connections(records):
    conns, by_key = [], {}
    for rec in records:
        if not rec.tcp:
            continue
        rkey = rec.key[2:] + rec.key[:2]
        if rec.flags & SYN and not rec.flags & ACK and rec.key not in by_key:
            conn = Conn(rec)
            conns.append(conn)
            by_key[rec.key] = conn
        conn = by_key.get(rec.key) or by_key.get(rkey)
        if conn is None:
            continue
        d = conn.direction(rec)
        if rec.flags & SYN and d == "s2c":
            conn.isn["s2c"] = rec.seq
        conn.records.append((rec, d))
        if rec.payload_len:
            conn.payload = True
    return conns


def init_end(conn):
    """Stream offsets where application bytes start, each way (EDP + 60 init bytes; a banner before the
    server's announcement counts too). Without an announcement: no EDP, 60 bytes each way."""
    c2s = conn.stream_prefix("c2s", 16)
    if c2s != ANNOUNCEMENT:
        return {"c2s": 60, "s2c": 60}
    s2c = conn.stream_prefix("s2c", 4096)
    at = s2c.find(ANNOUNCEMENT)
    if at < 0:
        raise SystemExit("the data connection has no announcement from the server")
    return {"c2s": 76, "s2c": at + 76}


def trim(records, tail_bytes, reconnect_bytes):
    conns = connections(records)
    if len(conns) < 2:
        raise SystemExit("expected a probe connection and a data connection")
    probe = conns[0]
    data = next((c for c in conns[1:] if c.server == probe.server), None)
    if data is None:
        raise SystemExit("no data connection to %s:%d" % probe.server)
    others = [c for c in conns if c is not probe and c is not data]
    winners = [c for c in others if c.payload]
    if len(winners) != 1:
        raise SystemExit("expected one reconnection connection with payload, found %d" % len(winners))
    winner = winners[0]
    drop = set()
    report = []

    # The data connection: head (up to the last init byte), then the tail window.
    start = init_end(data)
    ends = data.stream_ends()
    head_until = max(ts for d in ("c2s", "s2c") for ts, a, _b in ends[d][1] if a < start[d])
    window_from = min(next(ts for ts, a, b in ends[d][1] if b > max(0, ends[d][0] - tail_bytes))
                      for d in ("c2s", "s2c") if ends[d][1])
    kept = 0
    for rec, _d in data.records:
        if head_until < rec.ts < window_from:
            drop.add(id(rec))
        else:
            kept += 1
    report.append("data connection %s:%d -> %s:%d: %d of %d records (init up to %.3f s, window from %.3f s; "
                  "stream %d/%d bytes, app from %d/%d)"
                  % (data.client + data.server + (kept, len(data.records), head_until - records[0].ts,
                                                  window_from - records[0].ts, ends["c2s"][0], ends["s2c"][0],
                                                  start["c2s"], start["s2c"])))

    # The winning reconnection connection: a prefix in time, per direction.
    wends = winner.stream_ends()
    cut = {}
    for d in ("c2s", "s2c"):
        reach = [ts for ts, _a, b in sorted(wends[d][1], key=lambda s: s[0]) if b >= reconnect_bytes]
        cut[d] = reach[0] if reach else float("inf")
    kept = 0
    for rec, d in winner.records:
        if rec.ts > cut[d]:
            drop.add(id(rec))
        else:
            kept += 1
    report.append("reconnection %s:%d -> %s:%d: %d of %d records (the first %d bytes each way; streams %d/%d)"
                  % (winner.client + winner.server + (kept, len(winner.records), reconnect_bytes,
                                                      wends["c2s"][0], wends["s2c"][0])))
    report.append("probe connection: %d records; reconnection attempts: %d connections, %d records"
                  % (len(probe.records), len(others) - 1, sum(len(c.records) for c in others if c is not winner)))
    report.append("not TCP (heartbeats, ICMP, ARP): %d records" % sum(1 for r in records if not r.tcp))
    return [r for r in records if id(r) not in drop], report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--tail-bytes", type=int, default=32768,
                   help="bytes of the data connection kept before its end, each way (32768)")
    p.add_argument("--reconnect-bytes", type=int, default=32768,
                   help="bytes of the winning reconnection connection kept from its start, each way (32768)")
    args = p.parse_args(argv)
    header, records = read_records(args.input)
    kept, report = trim(records, args.tail_bytes, args.reconnect_bytes)
    with open(args.output, "wb") as f:
        f.write(header)
        for rec in kept:
            f.write(rec.raw)
    size = len(header) + sum(len(r.raw) for r in kept)
    for line in report:
        print("  " + line)
    print("%s: %d of %d records, %d bytes" % (args.output, len(kept), len(records), size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
