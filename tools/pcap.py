"""pcap.py: the classic pcap reader shared by the tools of this directory. Python 3 stdlib only.

What it reads: classic libpcap files (what `tcpdump -w` writes), in either byte order, with microsecond or
nanosecond timestamps (magic a1b2c3d4 or a1b23c4d); link types Ethernet (1; 802.1Q and 802.1ad VLAN tags
skipped), Linux cooked v1 (113) and v2 (276), raw IP (101) and raw IPv4 (228); in each frame the IPv4 header,
and the TCP header (option kinds too) or UDP header that follows it.

What it does not read: pcapng (magic 0a0d0d0a; refused with a message saying so: write classic pcap with
`tcpdump -w`, or convert with `editcap -F pcap`), other link types (refused when a record is read), IPv6 or
anything else that is not IPv4 (skipped: `Capture.ipv4` returns None), IP fragments (not reassembled).
It decides nothing that is a caller's: a record cut by the snap length (`Record.truncated`: caplen < origlen;
`IPv4.truncated`: the IP total length goes past the bytes captured) is handed over as captured; whether that is
an error, or whether lengths are taken from the IP header, is up to the tool.

    cap = pcap.read(path)                          # PcapError if it cannot be read
    for rec in cap.records():                      # Record: index (from 1), ts, frame, raw, caplen, origlen
        ip = cap.ipv4(rec.frame)                   # IPv4 or None; PcapError on an unsupported link type
        if ip is not None and ip.proto == pcap.PROTO_TCP:
            tcp = pcap.parse_tcp(ip.payload)       # TCP or None (shorter than 20 bytes)

Used by trim-capture.py, rocks_trace_compare.py and rocks_resume_time.py (which import it with their own
directory put first on sys.path, so that they run from any directory and load with importlib).
"""

import socket
import struct

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
MAGICS = {                                   # magic as read -> (struct byte order, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": ("<", False),
    b"\x4d\x3c\xb2\xa1": ("<", True),
    b"\xa1\xb2\xc3\xd4": (">", False),
    b"\xa1\xb2\x3c\x4d": (">", True),
}
HEADER_LEN, RECORD_HEADER_LEN = 24, 16

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL2 = 1, 101, 113, 228, 276
ETHERTYPE_IPV4 = 0x0800
VLAN_ETHERTYPES = (0x8100, 0x88A8)
PROTO_TCP, PROTO_UDP = 6, 17


class PcapError(Exception):
    """The file cannot be read as a classic pcap file (or a record's link type is not one of those above)."""


class Record:
    """One record: index (1 for the first record of the file), ts (seconds, float), header (its 16 bytes),
    frame (the bytes captured), caplen and origlen as the record header gives them."""
    __slots__ = ("index", "ts", "header", "frame", "caplen", "origlen")

    def __init__(self, index, ts, header, frame, caplen, origlen):
        self.index, self.ts, self.header, self.frame, self.caplen, self.origlen = \
            index, ts, header, frame, caplen, origlen

    @property
    def raw(self):
        """The record as it is in the file (record header and frame), to write it back unchanged."""
        return self.header + self.frame

    @property
    def truncated(self):
        """The snap length cut the frame."""
        return self.caplen < self.origlen


class Capture:
    """A classic pcap file read whole: path, header (its first 24 bytes, to write it back), endian ("<" or ">"),
    nanos, snaplen, linktype."""

    def __init__(self, path, data):
        self.path, self.data = path, data
        magic = data[:4]
        if magic == PCAPNG_MAGIC:
            raise PcapError("%s: pcapng is not supported (write classic pcap: tcpdump -w)" % path)
        if magic not in MAGICS:
            raise PcapError("%s: not a pcap file (magic %s)" % (path, magic.hex() or "missing: the file is empty"))
        if len(data) < HEADER_LEN:
            raise PcapError("%s: the pcap file header is cut short (%d bytes)" % (path, len(data)))
        self.endian, self.nanos = MAGICS[magic]
        self.header = data[:HEADER_LEN]
        self.snaplen, linktype = struct.unpack(self.endian + "II", data[16:24])
        self.linktype = linktype & 0x0FFFFFFF        # the upper bits are the FCS length and flags

    def records(self):
        """Every record, in file order (a last record cut short by the end of the file as far as it goes)."""
        data, fmt = self.data, self.endian + "IIII"
        divisor = 1e9 if self.nanos else 1e6
        off, index = HEADER_LEN, 0
        while off + RECORD_HEADER_LEN <= len(data):
            header = data[off:off + RECORD_HEADER_LEN]
            sec, frac, caplen, origlen = struct.unpack(fmt, header)
            frame = data[off + RECORD_HEADER_LEN:off + RECORD_HEADER_LEN + caplen]
            off += RECORD_HEADER_LEN + caplen
            index += 1
            yield Record(index, sec + frac / divisor, header, frame, caplen, origlen)

    def link_payload(self, frame):
        """The bytes after the link header if they are IPv4 (by the ethertype; raw IP is taken as IPv4),
        else None."""
        linktype = self.linktype
        if linktype == LINKTYPE_ETHERNET:
            if len(frame) < 14:
                return None
            etype, off = struct.unpack(">H", frame[12:14])[0], 14
            while etype in VLAN_ETHERTYPES and len(frame) >= off + 4:
                etype, off = struct.unpack(">H", frame[off + 2:off + 4])[0], off + 4
        elif linktype == LINKTYPE_LINUX_SLL:
            if len(frame) < 16:
                return None
            etype, off = struct.unpack(">H", frame[14:16])[0], 16
        elif linktype == LINKTYPE_LINUX_SLL2:
            if len(frame) < 20:
                return None
            etype, off = struct.unpack(">H", frame[0:2])[0], 20
        elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
            etype, off = ETHERTYPE_IPV4, 0
        else:
            raise PcapError("%s: unsupported pcap link type %d" % (self.path, linktype))
        return frame[off:] if etype == ETHERTYPE_IPV4 else None

    def ipv4(self, frame):
        """The frame's IPv4 packet (IPv4), or None if it carries none."""
        ip = self.link_payload(frame)
        return None if ip is None else parse_ipv4(ip)


def read(path):
    """The Capture of the file at path; PcapError if it cannot be opened or is not classic pcap."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PcapError("%s: %s" % (path, e)) from e
    return Capture(path, data)


class IPv4:
    """An IPv4 header: src and dst (dotted quads), proto, ihl (header length in bytes), total (the total length
    field), data (the packet from its header on, as captured: it may be shorter than total, or longer, with a link
    layer's padding)."""
    __slots__ = ("src", "dst", "proto", "ihl", "total", "data")

    @property
    def payload(self):
        """The transport header and payload, up to the total length (as far as captured)."""
        return self.data[self.ihl:self.total]

    @property
    def truncated(self):
        """The total length goes past the bytes captured."""
        return self.total > len(self.data)


def parse_ipv4(ip):
    """IPv4 of the bytes from an IPv4 header on, or None if they are not IPv4 or shorter than 20 bytes."""
    if len(ip) < 20 or ip[0] >> 4 != 4:
        return None
    p = IPv4()
    p.ihl = (ip[0] & 0x0F) * 4
    p.total = struct.unpack(">H", ip[2:4])[0]
    p.proto = ip[9]
    p.src, p.dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    p.data = ip
    return p


class TCP:
    """A TCP header: sport, dport, seq, ack, hlen (the data offset, in bytes), flags, data (the segment as given)."""
    __slots__ = ("sport", "dport", "seq", "ack", "hlen", "flags", "data")

    @property
    def options(self):
        """The raw option bytes (as far as given)."""
        return self.data[20:self.hlen]

    @property
    def payload(self):
        """The bytes after the header (as far as given)."""
        return self.data[self.hlen:]


def parse_tcp(seg, min_len=20):
    """TCP of a segment (header first), or None if it is shorter than min_len bytes. min_len 14 (the fields up to
    the flags) reads a header cut by a snap length."""
    if len(seg) < max(14, min_len):
        return None
    t = TCP()
    t.sport, t.dport, t.seq, t.ack, offx, t.flags = struct.unpack(">HHIIBB", seg[:14])
    t.hlen = (offx >> 4) * 4
    t.data = seg
    return t


def tcp_option_kinds(raw):
    """The TCP option kinds in order (NOPs included), e.g. [2, 4, 8, 1, 3]."""
    kinds, i = [], 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        kinds.append(kind)
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        i += raw[i + 1]
    return kinds


class UDP:
    """A UDP header: sport, dport, length (its length field), data (the datagram as given)."""
    __slots__ = ("sport", "dport", "length", "data")

    @property
    def payload(self):
        """The bytes after the header, up to the length field (as far as given)."""
        return self.data[8:self.length]


def parse_udp(dgram):
    """UDP of a datagram (header first), or None if it is shorter than 8 bytes."""
    if len(dgram) < 8:
        return None
    u = UDP()
    u.sport, u.dport, u.length = struct.unpack(">HHH", dgram[:6])
    u.data = dgram
    return u
