#!/usr/bin/env python3
"""short_connects.py: time many short TCP connections, no data (bench/connect, test_ordinary_cached). Python 3
stdlib only; tools/connect_time.py also times a first byte and needs an echo server.

    short_connects.py serve --listen ADDR --port P[,Q...] [--ready-file F]
    short_connects.py connect --address ADDR --port P [--count N] [--timeout S]

serve: accepts on every listed port and closes each connection at once; serves until killed. Writes
--ready-file once every port listens.
connect: opens --count connections one after another, each timed from connect() to its return (the
handshake as the client sees it), then closed. Prints one JSON line: {"count", "failed", "p50_us",
"p99_us", "mean_us", "max_us"}. Exit status 1 if any connection failed.
"""

import argparse
import json
import select
import socket
import sys
import time


def serve(args):
    listeners = []
    for port in args.port.split(","):
        family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((args.listen, int(port)))
        s.listen(1024)
        listeners.append(s)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("ready\n")
    while True:
        ready, _, _ = select.select(listeners, [], [])
        for s in ready:
            try:
                conn, _ = s.accept()
                conn.close()
            except OSError:
                pass


def percentile(sorted_values, fraction):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, int(round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def connect(args):
    family = socket.AF_INET6 if ":" in args.address else socket.AF_INET
    times = []
    failed = 0
    for _ in range(args.count):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        try:
            start = time.perf_counter_ns()
            s.connect((args.address, args.port))
            times.append((time.perf_counter_ns() - start) / 1000.0)
        except OSError:
            failed += 1
        finally:
            s.close()
    times.sort()
    report = {
        "count": len(times),
        "failed": failed,
        "p50_us": percentile(times, 0.50),
        "p99_us": percentile(times, 0.99),
        "mean_us": sum(times) / len(times) if times else None,
        "max_us": times[-1] if times else None,
    }
    print(json.dumps(report))
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    s.add_argument("--port", required=True)
    s.add_argument("--ready-file")
    c = sub.add_parser("connect")
    c.add_argument("--address", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--count", type=int, default=1)
    c.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    return serve(args) if args.mode == "serve" else connect(args)


if __name__ == "__main__":
    sys.exit(main())
