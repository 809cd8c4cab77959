#!/usr/bin/env python3
"""Loads rackd's control socket the way a hostile local user could (integration-tests/test_rackctl_load.sh).

    control_load.py hold SOCKET --idle N --trickle M [--byte-every S]
        Keeps N connections open that send nothing and M that send a status request one byte every S
        seconds (0.25: never done within rackd's 3 s), reconnecting each one rackd closes, until SIGTERM
        or SIGINT. Prints "ready: N idle, M trickling" once N + M connections were made, then on exit
        "connects=C closed_by_rackd=K farewells=F max_open=X".

    control_load.py refused SOCKET
        Connects, sends nothing, and waits (2 s at most) for rackd's answer. Prints
        "refused in T s: LINE" and exits 0 when rackd sent a refusal (denied: true) and closed without
        anything sent; otherwise prints what happened and exits 1.
"""
import argparse
import json
import selectors
import signal
import socket
import sys
import time

REQUEST = b'{"command":"status"}\n'


class Client:
    def __init__(self, kind, sock):
        self.kind = kind
        self.sock = sock
        self.sent = 0
        self.next_byte_at = time.monotonic()


def hold(args):
    stop = False

    def on_signal(_signum, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    selector = selectors.DefaultSelector()
    clients = {}
    wanted = {"idle": args.idle, "trickle": args.trickle}
    connects = closed = farewells = max_open = 0
    ready = False

    def open_one(kind):
        nonlocal connects
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(args.socket)
        except (BlockingIOError, InterruptedError):
            sock.close()  # the listen backlog is full: try again next round
            return False
        except OSError as error:
            sock.close()
            print(f"connect failed: {error}", flush=True)
            return False
        connects += 1
        client = Client(kind, sock)
        clients[sock] = client
        selector.register(sock, selectors.EVENT_READ, client)
        return True

    def drop(client):
        selector.unregister(client.sock)
        del clients[client.sock]
        client.sock.close()

    while not stop:
        # Top up to the wanted numbers; a limited round, so that this tool does not spin when rackd
        # gives a place away for each newcomer.
        for kind, count in wanted.items():
            have = sum(1 for c in clients.values() if c.kind == kind)
            for _ in range(count - have):
                if not open_one(kind):
                    break
        max_open = max(max_open, len(clients))
        if not ready and connects >= args.idle + args.trickle:
            ready = True
            print(f"ready: {args.idle} idle, {args.trickle} trickling", flush=True)
        now = time.monotonic()
        for client in list(clients.values()):
            if client.kind == "trickle" and now >= client.next_byte_at and client.sent < len(REQUEST):
                try:
                    client.sock.send(REQUEST[client.sent:client.sent + 1])
                    client.sent += 1
                except OSError:
                    pass  # rackd closed it: the read below sees that
                client.next_byte_at = now + args.byte_every
        for key, _ in selector.select(timeout=0.1):
            client = key.data
            try:
                data = client.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                farewells += 1  # a farewell line; the close follows
                continue
            closed += 1
            drop(client)
    print(f"connects={connects} closed_by_rackd={closed} farewells={farewells} max_open={max_open}", flush=True)
    return 0


def refused(args):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    start = time.monotonic()
    sock.connect(args.socket)
    sock.settimeout(2)
    data = b""
    try:
        while b"\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        rest = sock.recv(65536)  # then the end of the stream: rackd closed at once
    except socket.timeout:
        print(f"no refusal and no close within 2 s; got {data!r}")
        return 1
    took = time.monotonic() - start
    line = data.split(b"\n")[0].decode(errors="replace")
    try:
        answer = json.loads(line)
    except ValueError:
        print(f"not a JSON line after {took:.3f} s: {data!r}")
        return 1
    if answer.get("denied") is not True or answer.get("ok") is not False or rest:
        print(f"not a refusal followed by the end of the stream after {took:.3f} s: {line} then {rest!r}")
        return 1
    print(f"refused in {took:.3f} s: {line}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    hold_parser = sub.add_parser("hold")
    hold_parser.add_argument("socket")
    hold_parser.add_argument("--idle", type=int, default=100)
    hold_parser.add_argument("--trickle", type=int, default=20)
    hold_parser.add_argument("--byte-every", type=float, default=0.25)
    refused_parser = sub.add_parser("refused")
    refused_parser.add_argument("socket")
    args = parser.parse_args()
    return hold(args) if args.mode == "hold" else refused(args)


if __name__ == "__main__":
    sys.exit(main())
