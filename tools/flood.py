#!/usr/bin/env python3
"""flood.py: send many forged TCP SYNs carrying rackd's roam option, from random sources, as an attacker would.

    flood.py --dst ADDR:PORT [--count N] [--sources PREFIX,...] [--rate PPS] [--garbage-fraction F] [--ipv6]
             [--seed S]

Each SYN comes from a random address inside one of the --sources prefixes (a prefix picked at random, then
an address inside it) and a random port, with a random ISN, and carries rackd's roam option (the option of
a resumption SYN from a new address, docs/protocol.md, "The option"), with random contents:

    kind 253, length 33, ExID 0x5241, type 6, connection id (8), nonce (16), ISN (4)

padded with end-of-list bytes to a multiple of 4. With --garbage-fraction F, a fraction F of the SYNs
instead carry random bytes of random length after the ExID, with a length byte that is right half of the
time and random (malformed: too short, too long, past the option area) otherwise. IP and TCP checksums are
correct. --rate paces the SYNs (default: as fast as the socket takes them). An IPv6 --dst (written [ADDR]:PORT
or ADDR:PORT) sends IPv6; --ipv6 insists on it. Prints one JSON line: {"sent": N, "seconds": S, ...}.

Needs a raw socket (root, or CAP_NET_RAW), in a namespace that routes to --dst; the tests run it in host R.
Standard library only.
"""
import argparse
import errno
import ipaddress
import json
import random
import socket
import struct
import sys
import time

OPTION_KIND = 253
EXID = b"\x52\x41"
ROAM_TYPE = 6
ROAM_LENGTH = 33  # 1 kind + 1 length + 2 ExID + 1 type + 8 id + 16 nonce + 4 ISN
MAX_OPTIONS = 40


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return (~total) & 0xFFFF


def endpoint(text):
    host, _, port = text.rpartition(":")
    if not host:
        raise argparse.ArgumentTypeError(f"'{text}' is not ADDR:PORT")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
        port = int(port)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"'{text}': {error}") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"'{text}': port out of range")
    return address, port


def prefixes(text):
    try:
        return [ipaddress.ip_network(p.strip(), strict=False) for p in text.split(",") if p.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def fraction(text):
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def random_source(rng, networks):
    net = rng.choice(networks)
    if net.num_addresses <= 2:
        return net.network_address
    # Avoid the network's first and last address (network, broadcast) where there is room.
    return net.network_address + rng.randrange(1, net.num_addresses - 1)


def roam_option(rng):
    body = rng.randbytes(8 + 16 + 4)  # connection id, nonce, ISN
    return bytes([OPTION_KIND, ROAM_LENGTH]) + EXID + bytes([ROAM_TYPE]) + body


def garbage_option(rng):
    """kind 253 + ExID, then random bytes of random length; the length byte is often wrong."""
    extra = rng.randrange(0, MAX_OPTIONS - 4 + 1)
    true_length = 4 + extra
    choice = rng.random()
    if choice < 0.5:
        length = true_length
    elif choice < 0.6:
        length = rng.choice((0, 1, 2, 3))  # shorter than the ExID, or impossible
    elif choice < 0.8:
        length = rng.randrange(true_length + 1, 256)  # runs past the option area
    else:
        length = rng.randrange(0, 256)
    return bytes([OPTION_KIND, length]) + EXID + rng.randbytes(extra)


def pad(options):
    return options + b"\0" * (-len(options) % 4)  # end-of-list


def tcp_syn(sport, dport, isn, options, pseudo_header):
    options = pad(options)
    offset = (20 + len(options)) // 4
    window = 64240
    tcp = struct.pack("!HHIIBBHHH", sport, dport, isn, 0, offset << 4, 0x02, window, 0, 0) + options
    csum = checksum(pseudo_header(len(tcp)) + tcp)
    return tcp[:16] + struct.pack("!H", csum) + tcp[18:]


def packet_v4(src, dst, sport, dport, isn, options, rng):
    s, d = src.packed, dst.packed
    tcp = tcp_syn(sport, dport, isn, options, lambda n: s + d + struct.pack("!BBH", 0, 6, n))
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.getrandbits(16), 0x4000, 64, 6, 0, s, d)
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp


def packet_v6(src, dst, sport, dport, isn, options, rng):
    s, d = src.packed, dst.packed
    tcp = tcp_syn(sport, dport, isn, options, lambda n: s + d + struct.pack("!IxxxB", n, 6))
    flow = rng.getrandbits(20)
    ip = struct.pack("!IHBB16s16s", (6 << 28) | flow, len(tcp), 6, 64, s, d)
    return ip + tcp


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dst", type=endpoint, required=True, help="target ADDR:PORT ([ADDR]:PORT for IPv6)")
    parser.add_argument("--count", "-n", type=int, default=10000, help="SYNs to send (default 10000)")
    parser.add_argument("--sources", type=prefixes,
                        help="source prefixes, comma-separated (default 10.200.0.0/16,172.16.0.0/12, "
                             "or fd00:200::/32,fd00:c8::/48 for IPv6)")
    parser.add_argument("--rate", type=float, default=0, help="SYNs per second (default: as fast as possible)")
    parser.add_argument("--garbage-fraction", type=fraction, default=0.0,
                        help="fraction of SYNs with random, often malformed, option bytes after the ExID")
    parser.add_argument("--ipv6", action="store_true", help="the target is IPv6 (also inferred from --dst)")
    parser.add_argument("--seed", type=int, help="seed the generator (repeatable floods)")
    args = parser.parse_args()

    dst, dport = args.dst
    v6 = dst.version == 6
    if args.ipv6 and not v6:
        parser.error("--ipv6 needs an IPv6 --dst")
    sources = args.sources or prefixes("fd00:200::/32,fd00:c8::/48" if v6 else "10.200.0.0/16,172.16.0.0/12")
    wrong = [str(n) for n in sources if n.version != dst.version]
    if wrong:
        parser.error(f"source prefixes of the wrong family for {dst}: {', '.join(wrong)}")
    if args.count < 0:
        parser.error("--count must not be negative")

    rng = random.Random(args.seed)
    if v6:
        # IPPROTO_RAW on an IPv6 socket implies IPV6_HDRINCL: we write the whole header, source included.
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        build, target = packet_v6, (str(dst), 0)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # implies IP_HDRINCL
        build, target = packet_v4, (str(dst), 0)

    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    sent = garbage = errors = 0
    start = time.monotonic()
    for i in range(args.count):
        if interval:
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if args.garbage_fraction and rng.random() < args.garbage_fraction:
            options = garbage_option(rng)
            garbage += 1
        else:
            options = roam_option(rng)
        packet = build(random_source(rng, sources), dst, rng.randrange(1024, 65536), dport,
                       rng.getrandbits(32), options, rng)
        while True:
            try:
                sock.sendto(packet, target)
                sent += 1
                break
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as error:  # ENOBUFS under load: wait a moment and retry once, then count it
                if error.errno == errno.ENOBUFS:
                    time.sleep(0.001)
                    try:
                        sock.sendto(packet, target)
                        sent += 1
                    except OSError:
                        errors += 1
                else:
                    errors += 1
                break
    seconds = time.monotonic() - start
    summary = {"sent": sent, "seconds": round(seconds, 3), "garbage": garbage, "errors": errors,
               "target": f"[{dst}]:{dport}" if v6 else f"{dst}:{dport}"}
    print(json.dumps(summary), flush=True)
    return 0 if errors == 0 else 1


if __name__ == "__main__":  # importable: tools/rocks_attack.py uses its packet builder
    sys.exit(main())
