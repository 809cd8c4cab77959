#!/usr/bin/env python3
"""rocks_resume_time.py: how long a rocks connection takes to carry data again once the path is back,
read from a capture. Python 3 stdlib only.

    tools/rocks_resume_time.py CAPTURE.pcap... [--server ADDR] [--lift EPOCH_S] [--json] [-v]

For each capture of one rocks connection through one outage (a black hole or a link down; the real rocks 2.4
captures of ../shared/rocks-captures/, their trimmed fixtures Tests/RackEngineTests/Fixtures/rocks-*-reconnect.pcap,
or bench/rocks' own), it finds:

  the path's return: the first packet after the outage that demonstrably got through, because the far end
      answered it: a SYN answered by a SYN-ACK or a RST acknowledging it (ack = its seq + 1), or a segment answered
      by a bare RST (no ACK flag) whose seq is the segment's ack: a kernel's answer for a connection it no longer has
      (rocks-linkdown: the server's retransmission, queued while the link was down, reset at link-up). Once both
      rocks have suspended, each end tries 1of2 SYNs (once a second, or a storm of refused ones), so such a packet
      always comes soon after the path is back; in a black hole the last SYN that drew no answer before it bounds
      the return from below ("back between" in the text).
      The outage is the longest stretch of the capture with no such evidence of a working path: no SYN or segment
      answered as above, and no acknowledgement that advanced (an ACK for bytes not acknowledged before).
  the reconnection that won 1of2: the first TCP connection after the return that carries payload; its stream from
      the original server (the address that accepted the data connection, --server) starts with the 1of2 byte.
  the recovery messages (docs/rocks.md §5.3, §5.4): per direction [1of2 byte,] u32be 40 + challenge, u32be 32 +
      response, heartbeat sockaddr (16), reconnection sockaddr (16), rcvseq (4), SO_SNDBUF and SO_RCVBUF (4 + 4):
      125 bytes from the server, 124 from the client; the lengths are read from the capture.
  data flowing again: per direction, the first packet that carries a byte after those messages (go-back-N or new
      application bytes: both are bytes the receiving application has not read).

It prints, relative to the path's return, when the winning connection's SYN, the end of authentication, the
first recovery message and the first data each way were seen, and "both": the later of the two data times.
Times are capture times: on the interface captured (the real captures: the server's veth; bench/rocks: B's), so
data toward the server is seen as it arrives there, data toward the client as it leaves. --lift EPOCH_S (the
wall-clock time the outage was lifted, when the caller knows it) adds the same times from the lift, and the
lift to the return.

The capture may be cut by a snap length (bench/rocks captures 256 bytes a packet): lengths come from the IP
header, and only the recovery messages' own bytes need to be present (the first 125 of the winning
connection's stream each way).

--json prints one JSON object a capture (times in seconds, null where absent). Exit status 0, 1 if a capture
has no outage, no return or no data after it, 2 if it cannot be read.
"""

import argparse
import json
import os
import struct
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcap  # noqa: E402  (tools/pcap.py: the classic pcap reader)

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
MOD = 1 << 32


# The capture cannot be read (pcap.py raises it), or does not hold what is looked for.
CaptureError = pcap.PcapError


class Packet:
    __slots__ = ("index", "ts", "src", "sport", "dst", "dport", "seq", "ack", "flags", "length", "payload")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def key(self):
        return (self.src, self.sport, self.dst, self.dport)

    @property
    def reverse(self):
        return (self.dst, self.dport, self.src, self.sport)

    def describe(self):
        flags = "".join(c for bit, c in ((SYN, "S"), (FIN, "F"), (RST, "R"), (ACK, ".")) if self.flags & bit)
        return "%s:%d > %s:%d [%s] len %d" % (self.src, self.sport, self.dst, self.dport, flags or "-", self.length)


def read_pcap(path):
    """IPv4 TCP packets of a classic pcap file (tools/pcap.py: either byte order, us or ns; Ethernet, Linux cooked
    v1/v2, raw IP), in capture order. Payload lengths come from the IP header; payload bytes as far as captured
    (a header cut by the snap length is read as far as its flags)."""
    cap = pcap.read(path)
    packets = []
    for rec in cap.records():
        ip = cap.ipv4(rec.frame)
        if ip is None or ip.proto != pcap.PROTO_TCP:
            continue
        tcp = pcap.parse_tcp(ip.data[ip.ihl:], min_len=14)
        if tcp is None:
            continue
        packets.append(Packet(index=rec.index, ts=rec.ts, src=ip.src, sport=tcp.sport, dst=ip.dst, dport=tcp.dport,
                              seq=tcp.seq, ack=tcp.ack, flags=tcp.flags, length=max(0, ip.total - ip.ihl - tcp.hlen),
                              payload=bytes(tcp.data[tcp.hlen:ip.total - ip.ihl])))
    return packets


def after(a, b):
    """a > b in 32-bit sequence space."""
    return 0 < (a - b) % MOD < MOD // 2


# ---------------------------------------------------------------------------------------------------
# Evidence that the path works

def evidence(packets):
    """[(time, packet that got through, how)]: every moment the capture proves the path worked."""
    found = []
    last_syn = {}            # (key, seq) -> the latest SYN with that seq (a retransmission answers as the original)
    last_seen = {}           # key -> the latest packet on that 4-tuple
    best_ack = {}            # key -> the highest ack sent on that 4-tuple
    for p in packets:
        if p.flags & SYN and not p.flags & ACK:
            last_syn[(p.key, p.seq)] = p
        elif p.flags & SYN and p.flags & ACK:
            syn = last_syn.get((p.reverse, (p.ack - 1) % MOD))
            if syn is not None and p.ts - syn.ts < 2.0:
                found.append((syn.ts, syn, "SYN answered by a SYN-ACK"))
        elif p.flags & RST:
            syn = last_syn.get((p.reverse, (p.ack - 1) % MOD)) if p.flags & ACK else None
            prev = last_seen.get(p.reverse)
            if syn is not None and p.ts - syn.ts < 2.0:
                found.append((syn.ts, syn, "SYN answered by a RST"))
            elif (not p.flags & ACK and prev is not None and prev.flags & ACK and p.seq == prev.ack
                  and p.ts - prev.ts < 0.5):
                found.append((prev.ts, prev, "segment answered by a bare RST"))
        if p.flags & ACK and not p.flags & (SYN | RST):
            best = best_ack.get(p.key)
            if best is not None and after(p.ack, best):
                found.append((p.ts, p, "acknowledgement of new bytes"))
            if best is None or after(p.ack, best):
                best_ack[p.key] = p.ack
        last_seen[p.key] = p
    found.sort(key=lambda e: e[0])
    return found


def unanswered_syns(packets, lo, hi):
    """SYNs sent in (lo, hi) that drew neither a SYN-ACK nor a RST."""
    answered = set()
    for p in packets:
        if p.flags & (SYN | RST) and p.flags & ACK:
            answered.add((p.reverse, (p.ack - 1) % MOD))
    return [p for p in packets if lo < p.ts < hi and p.flags & SYN and not p.flags & ACK
            and (p.key, p.seq) not in answered]


# ---------------------------------------------------------------------------------------------------
# Connections

class Conn:
    def __init__(self, syn):
        self.syn = syn
        self.last_syn = syn               # the latest transmission of the SYN (the kernel retransmits it after 1 s)
        self.client = syn.key[:2]
        self.server = syn.key[2:]
        self.isn = {"c2s": syn.seq, "s2c": None}
        self.packets = []
        self.sent = {"c2s": 0, "s2c": 0}

    def direction(self, p):
        return "c2s" if p.key[:2] == self.client else "s2c"


def connections(packets):
    conns, by_key = [], {}
    for p in packets:
        if p.flags & SYN and not p.flags & ACK and (p.key not in by_key or by_key[p.key].syn.seq != p.seq):
            c = Conn(p)
            conns.append(c)
            by_key[p.key] = by_key[p.reverse] = c
        c = by_key.get(p.key)
        if c is None:
            continue
        if p.flags & SYN and not p.flags & ACK:
            c.last_syn = p
        c.packets.append(p)
        d = c.direction(p)
        if d == "s2c" and p.flags & SYN and c.isn["s2c"] is None:
            c.isn["s2c"] = p.seq
        c.sent[d] += p.length
    return conns


def stream_of(conn, d):
    """(first-seen packets in capture order as (packet, offset), known bytes {offset: byte}) of one direction."""
    isn = conn.isn[d]
    out, known = [], {}
    if isn is None:
        return out, known
    for p in conn.packets:
        if conn.direction(p) != d or not p.length:
            continue
        off = (p.seq - isn - 1) % MOD
        out.append((p, off))
        for i, b in enumerate(p.payload):
            known.setdefault(off + i, b)
    return out, known


def recovery_layout(known, with_byte):
    """The end offset of the recovery messages in one direction, and their (name, start, end) parts."""
    parts, off = [], 0
    if with_byte:
        parts.append(("1of2", 0, 1))
        off = 1
    for name in ("challenge", "response"):
        if any(known.get(off + i) is None for i in range(4)):
            raise CaptureError("the %s length at stream offset %d is not in the capture (snap length?)" % (name, off))
        n = struct.unpack(">I", bytes(known[off + i] for i in range(4)))[0]
        if not 1 <= n <= 128:
            raise CaptureError("the %s length at stream offset %d is %d, not a rocks length" % (name, off, n))
        parts.append((name, off, off + 4 + n))
        off += 4 + n
    for name, n in (("hb-addr", 16), ("rec-addr", 16), ("rcvseq", 4), ("sizes", 8)):
        parts.append((name, off, off + n))
        off += n
    return off, parts


def first_reaching(stream, offset):
    """The first packet (capture order) carrying a byte at or beyond offset."""
    for p, off in stream:
        if off + p.length > offset:
            return p
    return None


def first_past(stream, offset):
    """The first packet carrying the byte just before offset, i.e. completing what ends there."""
    for p, off in stream:
        if off < offset <= off + p.length:
            return p
    return None


# ---------------------------------------------------------------------------------------------------

def analyse(path, server=None, lift=None):
    packets = read_pcap(path)
    if not packets:
        raise CaptureError("%s: no TCP packets" % path)
    conns = connections(packets)
    data = [c for c in conns if c.sent["c2s"] and c.sent["s2c"]]
    if not data:
        raise CaptureError("%s: no connection carries data both ways" % path)
    original = data[0] if server is None else next(
        (c for c in data if c.server[0] == server), None)
    if original is None:
        raise CaptureError("%s: no connection to %s carries data both ways" % (path, server))
    server_addr = original.server[0]
    result = {"capture": os.path.basename(path), "server": "%s:%d" % original.server,
              "client": "%s:%d" % original.client}

    # The outage: the longest stretch without evidence of a working path, after the data connection began.
    ev = [e for e in evidence(packets) if e[0] >= original.syn.ts]
    if len(ev) < 2:
        raise CaptureError("%s: no outage: the path never shows working twice" % path)
    gap_i = max(range(1, len(ev)), key=lambda i: ev[i][0] - ev[i - 1][0])
    last_ok, (back_t, back_p, back_how) = ev[gap_i - 1][0], ev[gap_i]
    result.update({"outage_start": last_ok, "return": back_t, "return_packet": back_p.describe(),
                   "return_how": back_how, "outage_s": back_t - last_ok})
    silent = unanswered_syns(packets, last_ok, back_t)
    result["last_unanswered_syn"] = silent[-1].ts if silent else None
    result["unanswered_syns"] = len(silent)

    # The winning reconnection: the first connection after the return carrying payload. Its SYN got through, so it
    # was sent (its last transmission: a SYN sent in the outage may be retransmitted after it) at the return or later.
    winner = next((c for c in conns if c is not original and c.last_syn.ts >= back_t - 1e-6
                   and (c.sent["c2s"] or c.sent["s2c"])), None)
    if winner is None:
        raise CaptureError("%s: no reconnection carries payload after the path's return" % path)
    result["reconnection"] = "%s:%d > %s:%d" % (winner.client + winner.server)
    result["reconnection_syn"] = winner.last_syn.ts
    milestones = {}
    for d in ("c2s", "s2c"):
        sender = winner.client if d == "c2s" else winner.server
        from_server = sender[0] == server_addr
        stream, known = stream_of(winner, d)
        end, parts = recovery_layout(known, with_byte=from_server)
        who = "to_client" if from_server else "to_server"
        auth_end = dict((n, e) for n, _, e in parts)["response"]
        milestones[who] = {
            "recovery_bytes": end,
            "auth_done": getattr(first_past(stream, auth_end), "ts", None),
            "recovery_start": getattr(first_reaching(stream, auth_end), "ts", None),
            "data": getattr(first_reaching(stream, end), "ts", None),
        }
        if milestones[who]["data"] is None:
            raise CaptureError("%s: no application byte after the recovery messages toward the %s" %
                               (path, "client" if from_server else "server"))
    result["directions"] = milestones
    rel = lambda t: None if t is None else t - back_t
    result["from_return"] = {
        "reconnection_syn": rel(winner.last_syn.ts),
        "to_server": rel(milestones["to_server"]["data"]),
        "to_client": rel(milestones["to_client"]["data"]),
        "both": rel(max(milestones["to_server"]["data"], milestones["to_client"]["data"])),
    }
    if lift is not None:
        result["lift"] = lift
        result["from_lift"] = {k: (None if v is None else v + back_t - lift) for k, v in result["from_return"].items()}
        result["from_lift"]["return"] = back_t - lift
    return result


def clock(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S.%f")


def text(r, verbose):
    ms = lambda s: "-" if s is None else "%+.1f ms" % (s * 1000)
    f = r["from_return"]
    lines = ["%s: data connection %s > %s" % (r["capture"], r["client"], r["server"]),
             "  outage %.2f s: the path worked last at %s, is back at %s (%s: %s)" % (
                 r["outage_s"], clock(r["outage_start"]), clock(r["return"]), r["return_how"], r["return_packet"])]
    if r["last_unanswered_syn"] is not None:
        lines.append("  back between %s (the last of %d SYNs that drew no answer) and %s: up to %.1f ms earlier" % (
            clock(r["last_unanswered_syn"]), r["unanswered_syns"], clock(r["return"]),
            (r["return"] - r["last_unanswered_syn"]) * 1000))
    lines.append("  from the return: 1of2 winner %s SYN %s; data to the server %s, to the client %s, both %s" % (
        r["reconnection"], ms(f["reconnection_syn"]), ms(f["to_server"]), ms(f["to_client"]), ms(f["both"])))
    if verbose:
        for who, m in sorted(r["directions"].items()):
            lines.append("    %s: %d recovery bytes; authentication done %s, recovery from %s, data %s" % (
                who, m["recovery_bytes"], ms(m["auth_done"] and m["auth_done"] - r["return"]),
                ms(m["recovery_start"] and m["recovery_start"] - r["return"]), ms(m["data"] - r["return"])))
    if "from_lift" in r:
        g = r["from_lift"]
        lines.append("  from the lift: return %s; data to the server %s, to the client %s, both %s" % (
            ms(g["return"]), ms(g["to_server"]), ms(g["to_client"]), ms(g["both"])))
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="rocks_resume_time.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("captures", nargs="+", metavar="CAPTURE.pcap")
    p.add_argument("--server", metavar="ADDR", help="the original server's address (default: the first connection "
                   "that carries data both ways)")
    p.add_argument("--lift", type=float, metavar="EPOCH_S", help="when the outage was lifted (wall clock)")
    p.add_argument("--json", action="store_true", help="one JSON object per capture")
    p.add_argument("-v", "--verbose", action="store_true", help="milestones per direction")
    args = p.parse_args(argv)
    status = 0
    for path in args.captures:
        try:
            r = analyse(path, args.server, args.lift)
        except CaptureError as e:
            print("rocks_resume_time.py: %s" % e, file=sys.stderr)
            if args.json:
                print(json.dumps({"capture": os.path.basename(path), "error": str(e)}))
            status = max(status, 1 if os.path.exists(path) else 2)
            continue
        print(json.dumps(r) if args.json else text(r, args.verbose), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
