#!/usr/bin/env python3
"""inject.py: send one hand-made TCP/IPv4 segment from a raw socket, as an attacker would.

    inject.py --src A:P --dst B:Q --seq N [--ack N] [--flags SAFRP] [--window W] [--option HEX] [--payload N] [--count K]
    inject.py --replay PCAP [--from ADDR] [--with-option KIND]
                                               resend the IPv4 TCP packets of a capture (only those from ADDR,
                                               only those carrying option KIND)

--option adds raw option bytes (hex, padded with end-of-list to a multiple of 4), e.g. rackd's challenge
"fd15524103" + 16 nonce bytes. Checksums are computed. Used by the security tests from host R, which is
on the path and can forge any source address. IPv4 only; stdlib only.
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


def has_option(ip, kind):
    tcp = ip[(ip[0] & 15) * 4:]
    area, i = tcp[20:(tcp[12] >> 4) * 4], 0
    while i < len(area) and area[i] != 0:
        if area[i] == 1:
            i += 1
            continue
        if i + 1 >= len(area) or area[i + 1] < 2:
            return False
        if area[i] == kind:
            return True
        i += area[i + 1]
    return False


def replay(path, only_from, option_kind=None):
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
    args = parser.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sent = 0
    if args.replay:
        for ip in replay(args.replay, args.only_from, args.with_option):
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
