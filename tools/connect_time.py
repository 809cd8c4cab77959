#!/usr/bin/env python3
"""connect_time.py: how long an application waits to connect, and for its first answer. Python 3 stdlib only.

    connect_time.py --connect ADDR --ports 5000[,5001|5300-5399] --count N [--warmup K] [--timeout S]

N connections, one after another, each to the next port of --ports in turn: connect() (blocking), then one
byte written and its echo awaited (the server must echo: tools/rockspeer.py serve --echo, ordinary_server.py
--echo), then close(). For each it times connect() (SYN to SYN-ACK as the application sees it; with rackd
holding the SYN while it probes, the probe is in it) and the time until the echo arrived (first byte: with a
rock, rackd's init is in it). --warmup K connections first, not counted. Prints one JSON object:
{"count", "errors", "connect_us": {"p50", "p99", "mean", "min", "max"}, "first_byte_us": {...}, "samples_us": [...]}
Exit status 1 if any connection failed or echoed something else.
"""

import argparse
import json
import socket
import statistics
import sys
import time


def ports(text):
    out = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += range(int(a), int(b) + 1)
        else:
            out.append(int(part))
    return out


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q * (len(xs) - 1)))))]


def summary(xs):
    if not xs:
        return None
    return {"p50": round(percentile(xs, 0.5), 1), "p99": round(percentile(xs, 0.99), 1),
            "mean": round(statistics.fmean(xs), 1), "min": round(min(xs), 1), "max": round(max(xs), 1)}


def one(addr, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        t0 = time.perf_counter()
        s.connect((addr, port))
        t1 = time.perf_counter()
        s.sendall(b"?")
        got = s.recv(1)
        t2 = time.perf_counter()
        if got != b"?":
            raise OSError("echo was %r" % got)
        return (t1 - t0) * 1e6, (t2 - t0) * 1e6
    finally:
        s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connect", required=True)
    p.add_argument("--ports", type=ports, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    connect, first, errors = [], [], []
    for i in range(args.warmup + args.count):
        port = args.ports[i % len(args.ports)]
        try:
            c, f = one(args.connect, port, args.timeout)
        except OSError as e:
            errors.append("port %d: %s" % (port, e))
            continue
        if i >= args.warmup:
            connect.append(c)
            first.append(f)
    print(json.dumps({"count": len(connect), "errors": len(errors), "first_errors": errors[:3],
                      "connect_us": summary(connect), "first_byte_us": summary(first),
                      "samples_us": [round(x) for x in connect]}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
