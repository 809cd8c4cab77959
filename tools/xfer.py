#!/usr/bin/env python3
"""xfer.py: the "real application" of the rackd test bed (docs/architecture.md, "Tests"). Python 3 stdlib only.

Bulk mode. Once connected, both ends send N bytes of random data and receive at the same time,
hash what they send and what they receive (SHA-256), half-close after sending, and read until EOF:

    xfer.py server --listen ADDR --port P [--bytes N] [--report FILE] [--count K]
    xfer.py client --connect ADDR --port P --bytes N [--report FILE] [--rate BYTES_PER_S] [--chunk N]

--start-delay SECONDS (either end) holds the connection idle for SECONDS once it is established, before that
end starts sending and receiving; its clock ("seconds", "send_seconds", "recv_seconds") starts after the
delay. Give the same delay to both ends to have something happen to an open, idle connection (bench/racks
moves host A) before the bulk transfer is timed.

Each end writes one JSON report per connection (to --report, else stdout):

    {"role": "client", "local": "10.1.0.2:40000", "peer": "10.2.0.2:5000",
     "sent_bytes": N, "sent_sha256": "...", "recv_bytes": M, "recv_sha256": "...",
     "seconds": 1.2, "send_seconds": 1.1, "recv_seconds": 1.2, "error": null}

and exits 0 only if every byte was sent and the stream ended cleanly; a socket error goes into
"error" and the exit status is 1. tools/check_xfer.py compares a client and a server report.

Ping-pong mode (1-byte round trips, TCP_NODELAY), for latency:

    xfer.py pingpong-server --listen ADDR --port P
    xfer.py pingpong-client --connect ADDR --port P --count N

The client prints {"p50_us", "p99_us", "mean_us", ...} as JSON.

Sizes take binary suffixes: 64K = 65536, 100M = 100 MiB, 1G = 1 GiB (K, M, G, T; "KiB"/"MB" also read
as binary). IPv6 addresses work everywhere an address is taken.
"""

import argparse
import hashlib
import json
import os
import re
import socket
import statistics
import sys
import threading
import time

_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    """Parse a byte count such as 4096, 64K, 100M, 1G, 1GiB or 20MB (binary units)."""
    match = _SIZE.match(str(text).strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r}")
    number, unit = match.groups()
    scale = _UNITS[unit.upper()]
    return int(float(number) * scale) if "." in number else int(number) * scale


def format_endpoint(sockaddr):
    """Render a socket address as addr:port, with brackets around IPv6 addresses."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def resolve(host, port, passive=False):
    """Return (family, sockaddr) for a numeric or named address."""
    flags = socket.AI_PASSIVE if passive else 0
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, flags)
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def listen(addr, port, ready_file=None):
    """Open a listening socket on addr:port and, if asked, create ready_file once listening."""
    family, sockaddr = resolve(addr, port, passive=True)
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(sockaddr)
    lsock.listen(16)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write(f"{format_endpoint(lsock.getsockname())}\n")
    return lsock


def connect(addr, port, bind=None, timeout=None):
    """Connect to addr:port, optionally from the local address bind."""
    family, sockaddr = resolve(addr, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if bind:
            sock.bind(resolve(bind, 0, passive=True)[1])
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock


class DataSource:
    """Produces the bytes to send: fresh os.urandom chunks, or (fast) one random block over and over."""

    def __init__(self, chunk, fast):
        self.chunk = chunk
        self.block = memoryview(os.urandom(max(chunk, 1 << 20))) if fast else None

    def take(self, offset, size):
        if self.block is None:
            return os.urandom(size)
        start = offset % (len(self.block) - self.chunk + 1)
        return self.block[start : start + size]


class Transfer:
    """One connection's bidirectional transfer: a sender thread and a receiver (the calling thread)."""

    def __init__(self, sock, role, nbytes, chunk, rate, fast):
        self.sock = sock
        self.role = role
        self.nbytes = nbytes
        self.chunk = chunk
        self.rate = rate
        self.hash = not fast
        self.source = DataSource(chunk, fast)
        self.errors = []
        self.sent = 0
        self.received = 0
        self.sent_hash = hashlib.sha256()
        self.recv_hash = hashlib.sha256()
        self.send_seconds = None
        self.recv_seconds = None

    def _fail(self, where, exc):
        self.errors.append(f"{where}: {type(exc).__name__}: {exc}")
        try:  # unblock the other direction
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, t0):
        try:
            while self.sent < self.nbytes:
                size = min(self.chunk, self.nbytes - self.sent)
                if self.rate:
                    due = t0 + self.sent / self.rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                data = self.source.take(self.sent, size)
                self.sock.sendall(data)
                if self.hash:
                    self.sent_hash.update(data)
                self.sent += size
            self.sock.shutdown(socket.SHUT_WR)
            self.send_seconds = time.monotonic() - t0
        except Exception as exc:  # noqa: BLE001 - every failure goes into the report
            self._fail("send", exc)

    def _receive(self, t0):
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            while True:
                n = self.sock.recv_into(buf)
                if n == 0:
                    break
                if self.hash:
                    self.recv_hash.update(view[:n])
                self.received += n
            self.recv_seconds = time.monotonic() - t0
        except Exception as exc:  # noqa: BLE001
            self._fail("recv", exc)

    def run(self):
        """Send and receive concurrently; return the report dict."""
        local = peer = None
        try:
            local, peer = format_endpoint(self.sock.getsockname()), format_endpoint(self.sock.getpeername())
        except OSError as exc:
            self.errors.append(f"getpeername: {exc}")
        t0 = time.monotonic()
        sender = threading.Thread(target=self._send, args=(t0,), daemon=True)
        sender.start()
        self._receive(t0)
        sender.join()
        seconds = time.monotonic() - t0
        self.sock.close()
        if not self.errors and self.sent != self.nbytes:
            self.errors.append(f"sent {self.sent} of {self.nbytes} bytes")
        return {
            "role": self.role,
            "local": local,
            "peer": peer,
            "sent_bytes": self.sent,
            "sent_sha256": self.sent_hash.hexdigest() if self.hash else None,
            "recv_bytes": self.received,
            "recv_sha256": self.recv_hash.hexdigest() if self.hash else None,
            "seconds": round(seconds, 6),
            "send_seconds": None if self.send_seconds is None else round(self.send_seconds, 6),
            "recv_seconds": None if self.recv_seconds is None else round(self.recv_seconds, 6),
            "error": "; ".join(self.errors) if self.errors else None,
        }


def emit(report, path):
    """Append one JSON report line to path, or print it on stdout."""
    line = json.dumps(report, sort_keys=False)
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")
    else:
        print(line, flush=True)


def error_report(role, exc, nbytes_fields=True):
    """A report for a connection that never got going (resolve, bind, connect, accept failures)."""
    report = {"role": role, "local": None, "peer": None}
    if nbytes_fields:
        report.update(sent_bytes=0, sent_sha256=None, recv_bytes=0, recv_sha256=None,
                      seconds=0.0, send_seconds=None, recv_seconds=None)
    report["error"] = f"{type(exc).__name__}: {exc}"
    return report


def fresh_report_file(path):
    """Truncate the report file so a rerun never leaves an old report behind."""
    if path:
        open(path, "w").close()


def cmd_server(args):
    fresh_report_file(args.report)
    try:
        lsock = listen(args.listen, args.port, args.ready_file)
    except OSError as exc:
        emit(error_report("server", exc), args.report)
        return 1
    ok = True
    with lsock:
        for _ in range(args.count):
            try:
                sock, _ = lsock.accept()
            except OSError as exc:
                emit(error_report("server", exc), args.report)
                return 1
            if args.start_delay:
                time.sleep(args.start_delay)
            report = Transfer(sock, "server", args.bytes, args.chunk, args.rate, args.fast).run()
            emit(report, args.report)
            ok = ok and report["error"] is None
    return 0 if ok else 1


def cmd_client(args):
    fresh_report_file(args.report)
    try:
        sock = connect(args.connect, args.port, args.bind, args.connect_timeout)
    except OSError as exc:
        emit(error_report("client", exc), args.report)
        return 1
    if args.start_delay:
        time.sleep(args.start_delay)
    report = Transfer(sock, "client", args.bytes, args.chunk, args.rate, args.fast).run()
    emit(report, args.report)
    return 0 if report["error"] is None else 1


def recv_exact(sock, n):
    """Read exactly n bytes, or raise ConnectionError on EOF."""
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise ConnectionError("peer closed the connection")
        data += part
    return data


def echo_bytes(sock):
    """Send back whatever SOCK receives until it closes; an error is printed as a report."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with sock:
        try:
            while True:
                data = sock.recv(4096)
                if not data:
                    return True
                sock.sendall(data)
        except OSError as exc:
            print(json.dumps(error_report("pingpong-server", exc, False)), flush=True)
            return False


def cmd_pingpong_server(args):
    try:
        lsock = listen(args.listen, args.port, args.ready_file)
    except OSError as exc:
        print(json.dumps(error_report("pingpong-server", exc, False)), flush=True)
        return 1
    # Connections are served side by side, so that a client measuring in phases (--phase-dir) can keep one
    # open while another is measured.
    results, threads = [], []
    with lsock:
        for _ in range(args.count_conns):
            sock, _ = lsock.accept()
            t = threading.Thread(target=lambda s=sock: results.append(echo_bytes(s)))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    return 0 if all(results) else 1


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * p // 100))  # ceil
    return sorted_values[int(rank) - 1]


def round_trips(sock, count):
    """COUNT 1-byte round trips over SOCK: their times in ns, ascending."""
    rtts = []
    clock = time.perf_counter_ns
    for _ in range(count):
        t = clock()
        sock.sendall(b"x")
        recv_exact(sock, 1)
        rtts.append(clock() - t)
    rtts.sort()
    return rtts


def rtt_summary(rtts):
    """Percentiles of ascending round-trip times in ns, as a report's fields in microseconds."""
    us = 1000.0
    return dict(
        p50_us=round(percentile(rtts, 50) / us, 2),
        p99_us=round(percentile(rtts, 99) / us, 2),
        mean_us=round(statistics.fmean(rtts) / us, 2),
        min_us=round(rtts[0] / us, 2),
        max_us=round(rtts[-1] / us, 2),
    )


def wait_for_file(path, stop_path):
    """Wait until PATH exists; False when STOP_PATH appears first."""
    while not os.path.exists(path):
        if os.path.exists(stop_path):
            return False
        time.sleep(0.005)
    return True


def run_phases(sock, directory):
    """Measure in phases another process starts: phase K begins when DIRECTORY/go-K appears (its content: the
    round trips), and its summary is written to DIRECTORY/result-K (atomically); DIRECTORY/stop ends. Phases on
    several connections can so be interleaved with each other and with changes to the host between them."""
    k = 0
    while wait_for_file(os.path.join(directory, f"go-{k}"), os.path.join(directory, "stop")):
        with open(os.path.join(directory, f"go-{k}")) as f:
            count = int(f.read().strip() or "1000")
        summary = rtt_summary(round_trips(sock, count))
        summary["count"] = count
        tmp = os.path.join(directory, f"result-{k}.tmp")
        with open(tmp, "w") as f:
            json.dump(summary, f)
        os.rename(tmp, os.path.join(directory, f"result-{k}"))
        k += 1
    return k


def cmd_pingpong_client(args):
    report = {"role": "pingpong-client", "peer": None, "count": args.count}
    try:
        sock = connect(args.connect, args.port, args.bind, args.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        report["peer"] = format_endpoint(sock.getpeername())
        if args.phase_dir:
            open(os.path.join(args.phase_dir, "connected"), "w").close()
        with sock:
            round_trips(sock, args.warmup)
            if args.phase_dir:
                report["phases"] = run_phases(sock, args.phase_dir)
                report["error"] = None
                print(json.dumps(report), flush=True)
                return 0
            rtts = round_trips(sock, args.count)
    except OSError as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        print(json.dumps(report), flush=True)
        return 1
    report.update(rtt_summary(rtts), error=None)
    print(json.dumps(report), flush=True)
    return 0


def positive_size(text):
    value = parse_size(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def non_negative_seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0: {text!r}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)

    def common(p, server):
        if server:
            p.add_argument("--listen", required=True, help="address to listen on (v4 or v6)")
            p.add_argument("--ready-file", help="create this file once listening")
        else:
            p.add_argument("--connect", required=True, help="server address (v4 or v6)")
            p.add_argument("--bind", help="local source address")
            p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds (default 10)")
        p.add_argument("--port", type=int, required=True)

    def bulk(p, default_bytes):
        p.add_argument("--bytes", type=parse_size, default=default_bytes,
                       help="bytes to send, e.g. 100M, 1G (default %(default)s)")
        p.add_argument("--report", help="write the JSON report here (default: stdout)")
        p.add_argument("--rate", type=positive_size, help="send at most this many bytes per second")
        p.add_argument("--chunk", type=positive_size, default=64 << 10, help="send size (default 64K)")
        p.add_argument("--fast", action="store_true",
                       help="send one random block repeatedly and hash nothing (benchmarks)")
        p.add_argument("--start-delay", type=non_negative_seconds, default=0.0, metavar="SECONDS",
                       help="once connected, wait SECONDS before sending and receiving; the clock starts "
                            "after the wait (default 0)")

    p = sub.add_parser("server", help="serve bulk transfers")
    common(p, True)
    bulk(p, 0)
    p.add_argument("--count", type=int, default=1, help="connections to serve in turn (default 1)")
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("client", help="run one bulk transfer")
    common(p, False)
    bulk(p, None)
    p.set_defaults(func=cmd_client)

    p = sub.add_parser("pingpong-server", help="echo 1-byte round trips")
    common(p, True)
    p.add_argument("--count", dest="count_conns", type=int, default=1,
                   help="connections to serve in turn (default 1)")
    p.set_defaults(func=cmd_pingpong_server)

    p = sub.add_parser("pingpong-client", help="measure 1-byte round trips")
    common(p, False)
    p.add_argument("--count", type=positive_size, default=10000, help="round trips (default 10000)")
    p.add_argument("--warmup", type=int, default=100, help="unmeasured round trips first (default 100)")
    p.add_argument("--phase-dir", help="measure in phases another process starts through files in this directory "
                   "(go-K holds phase K's round trips; result-K gets its summary; stop ends; connected is created "
                   "once connected); --count is then unused")
    p.set_defaults(func=cmd_pingpong_client)

    args = parser.parse_args(argv)
    if args.mode == "client" and args.bytes is None:
        parser.error("client: --bytes is required")
    return args.func(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
