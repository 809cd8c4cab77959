#!/usr/bin/env python3
"""option_report.py PCAP SOURCE_ADDR: count, among TCP packets from SOURCE_ADDR in a tcpdump capture,
the SYNs that carry rackd's option (kind 253, ExID 0x5241) and the other packets that carry any option
253. Prints one "name count" line each. Handles Ethernet and Linux-cooked captures, IPv4 and IPv6."""
import ipaddress
import struct
import sys


def packets(path):
    with open(path, "rb") as f:
        header = f.read(24)
        magic = header[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            caplen = struct.unpack(endian + "I", record[8:12])[0]
            frame = f.read(caplen)
            if linktype == 1:
                yield frame[14:]
            elif linktype == 113:
                yield frame[16:]
            elif linktype == 276:
                yield frame[20:]
            else:
                yield frame


def tcp_of(ip):
    version = ip[0] >> 4
    if version == 4 and ip[9] == 6:
        return ipaddress.ip_address(ip[12:16]), ip[(ip[0] & 15) * 4:]
    if version == 6 and ip[6] == 6:
        return ipaddress.ip_address(ip[8:24]), ip[40:]
    return None, None


def options(tcp):
    data_offset = (tcp[12] >> 4) * 4
    area, i = tcp[20:data_offset], 0
    while i < len(area):
        kind = area[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(area) or area[i + 1] < 2:
            break
        yield kind, area[i + 2:i + area[i + 1]]
        i += area[i + 1]


def main():
    path, source = sys.argv[1], ipaddress.ip_address(sys.argv[2])
    counts = {"packets-from-a": 0, "syn-with-rackd-option": 0, "others-with-option-253": 0}
    for ip in packets(path):
        src, tcp = tcp_of(ip)
        if src != source or tcp is None or len(tcp) < 20:
            continue
        counts["packets-from-a"] += 1
        is_syn = tcp[13] & 0x02 and not tcp[13] & 0x10
        exp = [data for kind, data in options(tcp) if kind == 253]
        if is_syn and any(d[:2] == b"\x52\x41" for d in exp):
            counts["syn-with-rackd-option"] += 1
        elif exp:
            counts["others-with-option-253"] += 1
    for name, count in counts.items():
        print(name, count)


main()
