#!/usr/bin/env python3
"""ordinary_server.py: an ordinary (non-rocks) TCP server for the rocks fallback tests. Python 3 stdlib only.

    ordinary_server.py --listen ADDR --port P[-Q] --probe eof|data|rst|silent [--bytes N] [--seed S]
                       [--silence S] [--ready-file F] [--echo]

It knows nothing of rocks. It reads before it writes, like most request-response servers, so what it does
with a client that sends a FIN before any byte (a rocks probe, as an ordinary server sees it) is the point:
  eof     close at once: the client reads EOF;
  data    write a greeting on accept (a banner, "220 ordinary ready\\r\\n"), then close on the FIN: the client
          reads data, then EOF;
  rst     close with SO_LINGER {1, 0}: the client gets a reset;
  silent  say nothing and keep the connection open --silence seconds (3), then close: past rocks' 500 ms.
A client that sends bytes gets a bulk exchange, as tools/xfer.py's server does: the server sends --bytes
pseudo-random bytes (seed --seed; after the greeting in data mode) while it reads until EOF, then half-closes,
and prints one JSON report per connection on stdout, in xfer.py's format (tools/check_xfer.py compares it
with the client's): {"role": "server", "local", "peer", "sent_bytes", "sent_sha256", "recv_bytes",
"recv_sha256", "seconds", "error"}; the greeting counts as sent. --echo writes back what it reads instead.
A connection closed without a byte is reported as {"role": "server", "peer", "empty": true, "probe_answer": MODE}.
It serves until killed; --port P-Q listens on every port from P to Q.
"""

import argparse
import hashlib
import json
import random
import select
import socket
import struct
import sys
import threading
import time

GREETING = b"220 ordinary ready\r\n"
lock = threading.Lock()


def report(doc):
    with lock:
        print(json.dumps(doc), flush=True)


def endpoint(sockaddr):
    return "%s:%d" % sockaddr[:2]


def serve(conn, peer, args):
    start = time.monotonic()
    sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
    totals = {"sent": 0, "received": 0}
    doc = {"role": "server", "local": endpoint(conn.getsockname()), "peer": endpoint(peer), "error": None}

    def send(data):
        conn.sendall(data)
        sent_hash.update(data)
        totals["sent"] += len(data)

    try:
        if args.probe == "data":
            send(GREETING)
        first = conn.recv(65536)
        if not first:
            if args.probe == "rst":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif args.probe == "silent":
                time.sleep(args.silence)
            conn.close()
            report({"role": "server", "peer": endpoint(peer), "empty": True, "probe_answer": args.probe,
                    "sent_bytes": totals["sent"]})
            return
        errors = []

        def writer():
            try:
                rng = random.Random(args.seed)
                left = args.bytes
                while left > 0:
                    n = min(65536, left)
                    send(rng.randbytes(n))
                    left -= n
                conn.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append("send: %s" % e)

        thread = None
        if not args.echo:
            thread = threading.Thread(target=writer, daemon=True)
            thread.start()
        data = first
        while data:
            recv_hash.update(data)
            totals["received"] += len(data)
            if args.echo:
                send(data)
            data = conn.recv(65536)
        if args.echo:
            conn.shutdown(socket.SHUT_WR)
        if thread is not None:
            thread.join()
        if errors:
            doc["error"] = "; ".join(errors)
    except OSError as e:
        doc["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        conn.close()
    doc.update({"sent_bytes": totals["sent"], "sent_sha256": sent_hash.hexdigest(),
                "recv_bytes": totals["received"], "recv_sha256": recv_hash.hexdigest(),
                "seconds": round(time.monotonic() - start, 3)})
    report(doc)


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = str(text).strip()
    if text and text[-1].upper() in units:
        return int(text[:-1]) * units[text[-1].upper()]
    return int(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True)
    p.add_argument("--port", required=True, help="a port, or a range P-Q")
    p.add_argument("--probe", choices=("eof", "data", "rst", "silent"), required=True,
                   help="what a client that sends a FIN before any byte gets")
    p.add_argument("--bytes", type=parse_size, default=1 << 20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--silence", type=float, default=3.0)
    p.add_argument("--echo", action="store_true")
    p.add_argument("--ready-file")
    args = p.parse_args()
    first, _, last = args.port.partition("-")
    listeners = []
    for port in range(int(first), int(last or first) + 1):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.listen, port))
        listener.listen(64)
        listeners.append(listener)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%s:%s\n" % (args.listen, args.port))
    while True:
        readable, _, _ = select.select(listeners, [], [])
        for listener in readable:
            conn, peer = listener.accept()
            threading.Thread(target=serve, args=(conn, peer, args), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
