#!/usr/bin/env python3
"""last_position.py PCAP SRC DST: from a capture, the sequence position just after the last byte SRC sent
to DST (seq + length, + 1 for a FIN) and that packet's acknowledgement number: what the receiving socket
expects next, so an attacker's RST or FIN at that position is exactly in window. Prints "SEQ ACK"."""
import socket
import struct
import sys

path, src, dst = sys.argv[1], sys.argv[2], sys.argv[3]
with open(path, "rb") as f:
    header = f.read(24)
    endian = "<" if header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    skip = {1: 14, 113: 16, 276: 20}.get(struct.unpack(endian + "I", header[20:24])[0], 0)
    best = None
    while True:
        record = f.read(16)
        if len(record) < 16:
            break
        caplen, length = struct.unpack(endian + "II", record[8:16])
        ip = f.read(caplen)[skip:]
        if len(ip) < 40 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        if socket.inet_ntoa(ip[12:16]) != src or socket.inet_ntoa(ip[16:20]) != dst:
            continue
        ihl = (ip[0] & 15) * 4
        tcp = ip[ihl:]
        total = struct.unpack("!H", ip[2:4])[0]
        payload = total - ihl - (tcp[12] >> 4) * 4
        seq, ack = struct.unpack("!II", tcp[4:12])
        end = (seq + payload + (1 if tcp[13] & 1 else 0)) & 0xFFFFFFFF
        if best is None or ((end - best[0]) & 0xFFFFFFFF) < 0x80000000:
            best = (end, ack)
print(*best)
