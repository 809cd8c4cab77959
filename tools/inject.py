#!/usr/bin/env python3
"""inject.py: send one hand-made TCP/IPv4 segment from a raw socket, as an attacker would.

    inject.py --src A:P --dst B:Q --seq N [--ack N] [--flags SAFRP] [--window W] [--option HEX] [--payload N] [--count K]
    inject.py --replay PCAP [--from ADDR] [--with-option KIND] [--option-prefix HEX] [--limit N]
              [--rewrite-source ADDR] [--rewrite-sport PORT]
                                               resend the IPv4 TCP packets of a capture (only those from ADDR,
                                               only those carrying option KIND, only those with an option
                                               whose bytes begin with HEX, at most N of them), optionally
                                               with another source address and/or source port

--option adds raw option bytes (hex, padded with end-of-list to a multiple of 4), e.g. rackd's challenge
"fd15524103" + 16 nonce bytes. Checksums are computed. Used by the security tests from host R, which is
on the path and can forge any source address. --option-prefix "fd21524106" picks rackd's roam SYNs (kind 253,
length 33, ExID 5241, type 6). --rewrite-source/--rewrite-sport send a recorded packet as if it came from
elsewhere (e.g. a genuine roam SYN redirected to a third address); the IP and TCP checksums are recomputed,
and a packet the capture truncated (snap length) is refused rather than sent mangled. IPv4 only; stdlib only.
"""
import argparse
import socket
import struct


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return (~total) & 0xFFFF


def endpoint(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def segment(src, dst, seq, ack, flags, window, options, payload):
    options += b"\0" * (-len(options) % 4)
    offset = (20 + len(options)) // 4
    bits = sum({"F": 1, "S": 2, "R": 4, "P": 8, "A": 16}[f] for f in flags)
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, offset << 4, bits,
                      window, 0, 0) + options + payload
    pseudo = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    return ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:] + tcp


def options(ip):
    """The TCP options of an IPv4 packet, as a list of byte strings (kind, length and body); stops at a
    malformed one."""
    tcp = ip[(ip[0] & 15) * 4:]
    area, i, found = tcp[20:(tcp[12] >> 4) * 4], 0, []
    while i < len(area) and area[i] != 0:
        if area[i] == 1:
            i += 1
            continue
        if i + 1 >= len(area) or area[i + 1] < 2:
            break
        found.append(bytes(area[i:i + area[i + 1]]))
        i += area[i + 1]
    return found


def has_option(ip, kind):
    return any(option[0] == kind for option in options(ip))


def has_option_prefix(ip, prefix):
    return any(option.startswith(prefix) for option in options(ip))


def rewrite(ip, source=None, sport=None):
    """The packet with another source address and/or TCP source port, both checksums recomputed."""
    length = struct.unpack("!H", ip[2:4])[0]
    if len(ip) < length:
        raise SystemExit(f"inject.py: a packet of {length} bytes was captured truncated to {len(ip)}; "
                         "capture with a larger snap length")
    ip = bytearray(ip[:length])  # without any link-layer padding
    header = (ip[0] & 15) * 4
    if source is not None:
        ip[12:16] = socket.inet_aton(source)
    if sport is not None:
        ip[header:header + 2] = struct.pack("!H", sport)
    ip[10:12] = b"\0\0"
    ip[10:12] = struct.pack("!H", checksum(bytes(ip[:header])))
    tcp = ip[header:]
    tcp[16:18] = b"\0\0"
    pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, 6, len(tcp))
    ip[header + 16:header + 18] = struct.pack("!H", checksum(pseudo + bytes(tcp)))
    return bytes(ip)


def replay(path, only_from, option_kind=None, option_prefix=None):
    with open(path, "rb") as f:
        header = f.read(24)
        endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        skip = {1: 14, 113: 16, 276: 20}.get(linktype, 0)
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            frame = f.read(struct.unpack(endian + "I", record[8:12])[0])
            ip = frame[skip:]
            if len(ip) < 40 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue
            if only_from and socket.inet_ntoa(ip[12:16]) != only_from:
                continue
            if option_kind is not None and not has_option(ip, option_kind):
                continue
            if option_prefix is not None and not has_option_prefix(ip, option_prefix):
                continue
            yield ip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=endpoint)
    parser.add_argument("--dst", type=endpoint)
    parser.add_argument("--seq", type=lambda s: int(s, 0), default=0)
    parser.add_argument("--ack", type=lambda s: int(s, 0), default=0)
    parser.add_argument("--flags", default="A")
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--option", default="")
    parser.add_argument("--payload", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--replay")
    parser.add_argument("--from", dest="only_from")
    parser.add_argument("--with-option", type=int, help="replay only packets carrying this TCP option kind")
    parser.add_argument("--option-prefix", type=bytes.fromhex,
                        help="replay only packets with a TCP option whose bytes begin with these (hex)")
    parser.add_argument("--limit", type=int, help="replay at most this many packets")
    parser.add_argument("--rewrite-source", help="replay with this IPv4 source address")
    parser.add_argument("--rewrite-sport", type=int, help="replay with this TCP source port")
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    if args.replay:
        for ip in replay(args.replay, args.only_from, args.with_option, args.option_prefix):
            if args.limit is not None and sent >= args.limit:
                break
            if args.rewrite_source is not None or args.rewrite_sport is not None:
                ip = rewrite(ip, args.rewrite_source, args.rewrite_sport)
            sock.sendto(ip, (socket.inet_ntoa(ip[16:20]), 0))
            sent += 1
    else:
        packet = segment(args.src, args.dst, args.seq, args.ack, args.flags, args.window,
                         bytes.fromhex(args.option), b"x" * args.payload)
        for _ in range(args.count):
            sock.sendto(packet, (args.dst[0], 0))
            sent += 1
    print(f"sent {sent} packet(s)")


main()
