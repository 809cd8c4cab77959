#!/usr/bin/env python3
"""ping.py: ICMP/ICMPv6 echo over raw sockets (needs root), for the rackd test bed.

    ping.py [-c COUNT] [-W TIMEOUT_S] [-i INTERVAL_S] [--first] [-q] ADDR

Sends COUNT echo requests (default 3), waiting up to TIMEOUT_S (default 1) for each reply. With
--first it stops at the first reply. Exit status: 0 if any reply came back, 1 if none, 2 on error.
Python stdlib only, so the bed does not depend on iputils-ping being installed.
"""

import argparse
import os
import select
import socket
import struct
import sys
import time

ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}


def checksum(data):
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(family, ident, seq):
    """An echo request; the kernel fills in the ICMPv6 checksum itself."""
    payload = struct.pack("!d", time.monotonic()) + b"rackd-testbed"
    header = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, 0, ident, seq)
    if family == socket.AF_INET:
        header = struct.pack("!BBHHH", ECHO_REQUEST[family], 0, checksum(header + payload), ident, seq)
    return header + payload


def parse_reply(family, packet):
    """Return (type, ident, seq) of an ICMP message; IPv4 raw sockets include the IP header."""
    if family == socket.AF_INET:
        packet = packet[(packet[0] & 0x0F) * 4 :]
    if len(packet) < 8:
        return None
    kind, _, _, ident, seq = struct.unpack("!BBHHH", packet[:8])
    return kind, ident, seq


def ping_once(sock, family, addr, ident, seq, timeout):
    """Send one echo request; return the RTT in ms, or None on timeout."""
    sent = time.monotonic()
    sock.sendto(echo_request(family, ident, seq), (addr, 0))
    deadline = sent + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        packet, source = sock.recvfrom(65535)
        reply = parse_reply(family, packet)
        if reply == (ECHO_REPLY[family], ident, seq) and source[0] == addr:
            return (time.monotonic() - sent) * 1000.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--count", type=int, default=3)
    parser.add_argument("-W", "--timeout", type=float, default=1.0, help="seconds to wait per reply")
    parser.add_argument("-i", "--interval", type=float, default=0.2, help="seconds between requests")
    parser.add_argument("--first", action="store_true", help="stop at the first reply")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("addr")
    args = parser.parse_args(argv)

    try:
        info = socket.getaddrinfo(args.addr, None, socket.AF_UNSPEC, socket.SOCK_RAW)[0]
        family, addr = info[0], info[4][0]
        proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
        sock = socket.socket(family, socket.SOCK_RAW, proto)
    except OSError as exc:
        print(f"ping.py: {args.addr}: {exc}", file=sys.stderr)
        return 2

    ident = os.getpid() & 0xFFFF
    replies = 0
    with sock:
        for seq in range(1, args.count + 1):
            started = time.monotonic()
            try:
                rtt = ping_once(sock, family, addr, ident, seq, args.timeout)
            except OSError as exc:  # e.g. ENETUNREACH while a link is down
                rtt = None
                if not args.quiet:
                    print(f"seq={seq} {addr}: {exc}")
            if rtt is not None:
                replies += 1
                if not args.quiet:
                    print(f"reply from {addr}: seq={seq} time={rtt:.3f} ms")
                if args.first:
                    break
            elif not args.quiet:
                print(f"no reply from {addr}: seq={seq}")
            if seq < args.count:
                time.sleep(max(0.0, args.interval - (time.monotonic() - started)))
    print(f"{addr}: {args.count if not args.first else seq} sent, {replies} replies")
    return 0 if replies else 1


if __name__ == "__main__":
    sys.exit(main())
