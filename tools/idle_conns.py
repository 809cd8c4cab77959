#!/usr/bin/env python3
"""idle_conns.py: many idle TCP connections, for bench/scale. Python 3 stdlib only (selectors).

    idle_conns.py server --listen ADDR --port P
    idle_conns.py client --connect ADDR --port P --count N --control FIFO --report FILE
                         [--rate CONN_PER_S] [--in-flight K]

The server accepts every connection and echoes whatever arrives on it, for ever.

The client opens --count connections at no more than --rate new connections a second (default 500), with at
most --in-flight connects pending at once (default 200): every SYN crosses rackd's queue on both hosts, so
opening them all at once would only measure the queue's backlog. It then writes its report (JSON: "connected",
"failed", "seconds", "connect_ms_p50", "connect_ms_p99", "connect_ms_max") to --report, renamed into place, and
keeps the connections open and idle. It reads commands, one a line, from the FIFO --control:

    check K TIMEOUT_S   send 16 bytes on K connections spread over all (K = 0: all of them) and wait up to
                        TIMEOUT_S for each echo; writes {"seq", "checked", "ok", "mismatched", "closed",
                        "timed_out", "seconds", "open"} to --report.check (renamed into place)
    quit                close everything and exit 0

A connection that the peer closes or resets meanwhile is counted as closed ("open" says how many are left).
Both ends raise RLIMIT_NOFILE to what they need (root may raise the hard limit).
"""

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    want = max(needed, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def family_of(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
    os.replace(tmp, path)


def serve(args):
    raise_nofile(1_100_000)
    sel = selectors.DefaultSelector()
    listener = socket.socket(family_of(args.listen), socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, args.port))
    listener.listen(4096)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
            except (ConnectionError, OSError):
                data = b""
            if not data:
                sel.unregister(conn)
                conn.close()
                continue
            try:
                conn.sendall(data)  # a few bytes at a time: never blocks for long
            except (ConnectionError, OSError):
                sel.unregister(conn)
                conn.close()


class Client:
    def __init__(self, args):
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.conns = {}  # fd -> socket, connected
        self.pending = {}  # fd -> (socket, started)
        self.connect_ms = []
        self.failed = 0
        self.checks = {}  # fd -> expected bytes still to come
        self.check_result = None

    def open_all(self):
        args = self.args
        start = time.monotonic()
        opened = 0
        while opened < args.count or self.pending:
            now = time.monotonic()
            allowed = min(args.count, int((now - start) * args.rate) + 1)
            while opened < allowed and len(self.pending) < args.in_flight:
                s = socket.socket(family_of(args.connect), socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((args.connect, args.port))
                if err not in (0, errno.EINPROGRESS):
                    self.failed += 1
                    s.close()
                else:
                    self.pending[s.fileno()] = (s, time.monotonic())
                    self.sel.register(s, selectors.EVENT_WRITE, "connect")
                opened += 1
            for key, _ in self.sel.select(0.01):
                s, started = self.pending.pop(key.fd)
                self.sel.unregister(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    self.failed += 1
                    s.close()
                    continue
                self.connect_ms.append((time.monotonic() - started) * 1000)
                self.conns[key.fd] = s
                self.sel.register(s, selectors.EVENT_READ, "conn")
            for fd, (s, started) in list(self.pending.items()):
                if time.monotonic() - started > 30:
                    del self.pending[fd]
                    self.sel.unregister(s)
                    s.close()
                    self.failed += 1
        ms = sorted(self.connect_ms) or [0.0]
        write_json(args.report, {
            "connected": len(self.conns), "failed": self.failed, "seconds": round(time.monotonic() - start, 3),
            "connect_ms_p50": round(ms[len(ms) // 2], 2), "connect_ms_p99": round(ms[min(len(ms) - 1, len(ms) * 99 // 100)], 2),
            "connect_ms_max": round(ms[-1], 2),
        })

    def drop(self, fd):
        s = self.conns.pop(fd, None)
        if s is not None:
            self.sel.unregister(s)
            s.close()
        if fd in self.checks:
            del self.checks[fd]
            self.check_result["closed"] += 1

    def on_readable(self, fd):
        s = self.conns[fd]
        try:
            data = s.recv(65536)
        except (ConnectionError, OSError):
            data = b""
        if not data:
            self.drop(fd)
            return
        want = self.checks.get(fd)
        if want is None:
            return  # nothing asked: ignore
        if want.startswith(data):
            want = want[len(data):]
            if want:
                self.checks[fd] = want
            else:
                del self.checks[fd]
                self.check_result["ok"] += 1
        else:
            del self.checks[fd]
            self.check_result["mismatched"] += 1

    def start_check(self, seq, count, timeout):
        fds = sorted(self.conns)
        if count <= 0 or count >= len(fds):
            chosen = fds
        else:
            step = len(fds) / count
            chosen = [fds[int(i * step)] for i in range(count)]
        self.check_result = {"seq": seq, "checked": len(chosen), "ok": 0, "mismatched": 0, "closed": 0,
                             "timed_out": 0, "seconds": 0.0, "open": 0}
        self.check_started = time.monotonic()
        self.check_deadline = self.check_started + timeout
        for fd in chosen:
            payload = b"%08d%08d" % (seq % 10**8, fd % 10**8)
            try:
                self.conns[fd].send(payload)
                self.checks[fd] = payload
            except (ConnectionError, OSError):
                self.check_result["closed"] += 1
                self.drop(fd)

    def finish_check(self):
        r = self.check_result
        r["timed_out"] = len(self.checks)
        self.checks.clear()
        r["seconds"] = round(time.monotonic() - self.check_started, 3)
        r["open"] = len(self.conns)
        write_json(self.args.report + ".check", r)
        self.check_result = None

    def run(self):
        control = os.open(self.args.control, os.O_RDWR | os.O_NONBLOCK)
        self.sel.register(control, selectors.EVENT_READ, "control")
        self.open_all()
        buffered = b""
        seq = 0
        while True:
            timeout = None
            if self.check_result is not None:
                timeout = max(0.0, self.check_deadline - time.monotonic())
            for key, _ in self.sel.select(timeout):
                if key.data == "conn":
                    if key.fd in self.conns:
                        self.on_readable(key.fd)
                elif key.data == "control":
                    try:
                        buffered += os.read(control, 4096)
                    except BlockingIOError:
                        pass
                    while b"\n" in buffered:
                        line, buffered = buffered.split(b"\n", 1)
                        words = line.decode().split()
                        if not words:
                            continue
                        if words[0] == "quit":
                            for fd in list(self.conns):
                                self.drop(fd)
                            return 0
                        if words[0] == "check" and self.check_result is None:
                            seq += 1
                            self.start_check(seq, int(words[1]), float(words[2]))
            if self.check_result is not None and (not self.checks or time.monotonic() >= self.check_deadline):
                self.finish_check()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    server = sub.add_parser("server")
    server.add_argument("--listen", required=True)
    server.add_argument("--port", type=int, required=True)
    client = sub.add_parser("client")
    client.add_argument("--connect", required=True)
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--count", type=int, required=True)
    client.add_argument("--control", required=True)
    client.add_argument("--report", required=True)
    client.add_argument("--rate", type=float, default=500)
    client.add_argument("--in-flight", type=int, default=200)
    args = parser.parse_args()
    if args.mode == "server":
        serve(args)
        return 0
    raise_nofile(args.count + 1000)
    return Client(args).run()


if __name__ == "__main__":
    sys.exit(main())
