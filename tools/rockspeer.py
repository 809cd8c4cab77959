#!/usr/bin/env python3
"""rockspeer.py: a stand-in for a real rocks 2.4 ("reliable sockets") application. Python 3 stdlib only.

Written only from docs/rocks.md (section numbers below refer to it) and checked byte for
byte against the real captures in Tests/RackEngineTests/Fixtures/ by tools/rockspeer_test.py. It is the
other end rackd will talk to when its peer is a rock; no rocks code was used.

Roles

    rockspeer.py serve   --listen ADDR:PORT [--banner TEXT] [app options] [common options]
    rockspeer.py connect ADDR:PORT                          [app options] [common options]

serve behaves as a rocks 2.4 server application (§2.3): every accepted connection starts in the EDP
state; application writes made then (the --banner) go straight to the socket, uncounted. The
application's first read makes the library read min(app_len, 16) bytes itself:
  * EOF: a probe. Write the 16-byte announcement, return EOF; the application closes (FIN).
  * the announcement: write it back (its own write, after any banner), run init (§3), then read.
  * a strict prefix of it: read the rest (blocking, no timeout); a mismatch is a read error.
  * anything else: fallback to plain TCP; the bytes read are the application's first data.
connect behaves as a rocks 2.4 client application (§2.2): probe connection #1 (connect,
shutdown(SHUT_WR), read with a 500 ms select timeout per chunk keeping the last 16 bytes; EOF or
ECONNRESET with the announcement as the last 16 bytes means a rock), then connection #2 (a new
socket): if a rock, write the announcement, scan for the reply in 16-byte reads through a 16-byte
window (what each read pushes out is spilled and handed to the application first, uncounted; the
reply is found only when a read ends where it ends), then init. Not a rock: plain TCP on #2.

Init (§3), on both sides, each message "write then read": TCP_NODELAY=1 during init (each write its
own segment); DH public key (u32be length, then the unpadded big-endian value, two writes; 128-bit
prime, g=2, 127-bit private with the top bit set); the reconnection sockaddr (a raw x86 struct
sockaddr_in of a TCP socket bound to the data connection's local IP, port 0, NOT listening);
SO_SNDBUF then SO_RCVBUF as two u32be writes (both forced to 32768 first, so Linux reports 65536);
the heartbeat sockaddr (a UDP socket bound to the local IP, port 0). Then TCP_NODELAY=0 and
SO_LINGER {1,0} (reset on close; --no-reset-on-close leaves it off, as unmodified rocks does on a
non-2.4 kernel, §10.3). The DH shared secret and the Blowfish key (first 16 bytes of the unpadded
secret, zero-padded on the right) are kept for the reconnection work and logged at debug level.

Heartbeats (§4): a process-wide 1 s tick (phase: process start, like rocks' setitimer). On each tick,
for each established rock: receive at most one datagram (missed = 0), missed += 1, sendto one byte
'x' to the peer's heartbeat address; a sendto or recv error, or missed >= 15, suspends the rock.
Suspension is only logged and reported for now (trace event, stats): heartbeats stop, and the
application goes on using the old socket while it works (see "Later work" below).

Application options (both roles)
    --echo                   write back every byte read (read size --read-size, default 65536)
    --send-file F            send the bytes of F          --send-bytes N --seed S: N pseudo-random bytes
    --source N               the same as --send-bytes N   --chunk N: bytes per write (default 65536)
    --interval S             pause S seconds between writes (e.g. 0.02 to replay the captures' app)
    --receive-file F         store every byte the application reads (pre-EDP spill included)
    --receive-bytes M        stop reading after M bytes (spill included); default: read until EOF
    --sink                   read until EOF and discard (the default when nothing else is asked)
    --hold S                 keep the connection open (idle, heartbeating) S seconds before closing
    --banner TEXT            (serve) written right after accept, before the first read (pre-EDP)
    --read-first             (serve --plain) an ordinary server that sends only once its client's first
                             bytes are read: a client that closes without a byte (a rocks probe, as an
                             ordinary server sees it) is closed at once, not counted, and reported in the
                             stats as "empty_connections"
The application closes the socket (FIN) once it has sent everything and finished reading. A rock
application never half-closes (rocks aborts on shutdown()), so a bulk transfer in both directions
needs --receive-bytes on the side that should close first.
At the end each application connection prints one JSON line on stdout: role, peer_is_rock, sizes
and SHA-256 of the bytes sent and received, seconds (from the application's start on the connection
to the end of its transfer, before --hold), error.

Common options
    --no-edp                 RS_NOINTEROP (§7, §9.11): no probe, no announcement; init right away
    --no-auth --no-hb --no-flight   the other wire-changing rocks options (§8); both ends must match
    --plain                  behave as an ordinary (non-rock) application: no EDP, no init, plain TCP
    --trace FILE             JSON Lines: every TCP payload write and UDP datagram sent, in order
                             (plus connect/shutdown/close/edp/init/suspend events), see Trace
    --stats FILE             JSON counters when the process ends (see Stats)
    --log FILE, -v           log (debug with -v: includes the DH secret and Blowfish key)
    --count N                (serve) exit after N application connections (probes do not count,
                             except with --plain, which cannot tell a probe from a connection, unless
                             --read-first is given: then connections closed without a byte do not count)
    --timeout S              give up (exit 3) after S seconds
    --dh-private HEX         use this DH private key instead of a random one (tests only)
    --hb-period S --hb-misses N   heartbeat period and miss limit (rocks: 1 s and 15)
    --init-pace S            (serve) after EDP, wait up to S s (0.5) for the client's DH before writing
                             ours: the order of the captures, where the real server spends ~1 ms on its
                             key; without it a fast server's init can join the announcement in the
                             client's scan, which then never finds it (0: no wait)

Trace: one JSON object per line, in the order things happened:
    {"t": 0.0123, "role": "client", "conn": 2, "proto": "tcp", "event": "write", "dir": "c2s",
     "label": "dh-len", "len": 4, "hex": "00000010"}
conn is the connection number in this process (client: 1 = the probe, 2 = the data connection, or
1 alone with --no-edp or --plain; server: the accept count). Labels: banner (pre-EDP application bytes), announcement, dh-len, dh-key,
rec-addr, sndbuf, rcvbuf, hb-addr, app (application bytes), plus for UDP "heartbeat" (event
"sendto", with "src" and "dst"). Other events: connect, accept, shutdown-wr, close (how: fin), edp
(result: rock, not-rock, probe, fallback), init-done, suspend.

Stats (--stats FILE, JSON): role, peer_is_rock, edp, app_bytes_sent / app_bytes_received (rocks'
counting: from the end of init, so the announcement, init and pre-EDP bytes are not counted; on a
fallback or plain connection, all bytes), pre_edp_bytes_sent / pre_edp_bytes_received (banner or
spill), heartbeats_sent / heartbeats_received, suspensions (with reasons), stream offsets (bytes of
the TCP stream before application byte 0 in each direction; TCP relative seq = offset + 1), sndseq,
rcvseq, buffer sizes, DH values, SHA-256s. A server writes the last application connection at the
top level, all connections under "connections", and the number of probes answered.

Later work (§5), not implemented yet: on suspension rocks closes the data socket with a RST, listens
on the reconnection socket, runs 1of2 (active connect to the peer's reconnection address + passive
accept, the original server writes one byte), the Blowfish-ECB challenge-response (§5.3) with
self.bf_key, then the recovery exchange (§5.4: heartbeat sockaddr, reconnection sockaddr, rcvseq,
sizes, go-back-N from self.ring). Rock keeps everything these need: rec_sock (bound, not listening),
peer_rec_addr, dh_secret/bf_key, the in-flight ring (maxsnd bytes), sndseq/rcvseq, the sizes.
"""

import argparse
import enum
import hashlib
import json
import logging
import os
import random
import secrets
import select
import signal
import socket
import struct
import sys
import threading
import time

# ---------------------------------------------------------------------------------------------------
# Wire constants (docs/rocks.md)

ANNOUNCEMENT = b"IROCKYOUROCKMAN\x00"          # §2.1: fixed, 16 bytes, ends in NUL
assert len(ANNOUNCEMENT) == 16

DH_P = 0xDC04EB6EB146437F17F6422B78DE6F7B        # §3.4: 128-bit safe prime
DH_G = 2
DH_PRIVATE_BITS = 127                            # BN_rand(bits(p) - 1, top=0): top bit set
DH_MAX_PEER_LEN = 1024                           # a peer length above this is refused
BF_KEY_LEN = 16                                  # §5.3: first 16 bytes of the zero-padded secret

RS_SOCKBUF = 32768                               # §3.3: forced SO_SNDBUF = SO_RCVBUF
NOFLIGHT_MAXSND = 1_000_000                      # §8: maxsnd when flight is off

EDP_PROBE_TIMEOUT = 0.5                          # §2.2: per select, reset by every chunk
HB_PERIOD = 1.0                                  # §4: rs_opt_alarm_period
HB_MAX_MISSES = 15                               # §4: rs_opt_max_alarm_misses
HB_PAYLOAD = b"x"

AF_INET_WIRE = struct.pack("<H", socket.AF_INET)  # §3.1: sin_family in x86 host order: 02 00

log = logging.getLogger("rockspeer")
PROCESS_START = time.monotonic()


class RockError(Exception):
    """A protocol failure on a rock (short read, bad EDP, init failure)."""


class RockSuspended(RockError):
    """Application I/O on a rock that is suspended (reconnection is not implemented yet)."""


# ---------------------------------------------------------------------------------------------------
# Raw struct sockaddr_in (§3.1)

def sockaddr_in_bytes(ip, port):
    """The 16-byte x86 struct sockaddr_in: family 02 00 (little-endian), port and address big-endian,
    then 8 zero bytes (sin_zero)."""
    return AF_INET_WIRE + struct.pack(">H", port) + socket.inet_aton(ip) + bytes(8)


def parse_sockaddr_in(raw):
    """(ip, port, family_ok) from a raw sockaddr_in. rocks does not check it; neither do we, but the
    caller learns whether the family bytes are 02 00."""
    if len(raw) != 16:
        raise RockError("sockaddr_in is %d bytes, not 16" % len(raw))
    port = struct.unpack(">H", raw[2:4])[0]
    return socket.inet_ntoa(raw[4:8]), port, raw[0:2] == AF_INET_WIRE


# ---------------------------------------------------------------------------------------------------
# DH (§3.4)

def bn2bin(value):
    """OpenSSL BN_bn2bin: minimal big-endian bytes, no padding (0 gives no bytes)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


class DiffieHellman:
    """One DH exchange: a new 127-bit private key (top bit set) for every exchange."""

    def __init__(self, private=None):
        if private is None:
            private = secrets.randbits(DH_PRIVATE_BITS - 1) | (1 << (DH_PRIVATE_BITS - 1))
        self.private = private
        self.public = pow(DH_G, private, DH_P)

    @property
    def public_bytes(self):
        return bn2bin(self.public)

    def shared_secret(self, peer_public_bytes):
        """peer^priv mod p, unpadded big-endian (no checks on the peer value, as rocks)."""
        peer = int.from_bytes(peer_public_bytes, "big")
        return bn2bin(pow(peer, self.private, DH_P))


def blowfish_key(secret):
    """§5.3/§9.6: the first 16 bytes of the secret, zero-padded on the right."""
    return (secret + bytes(BF_KEY_LEN))[:BF_KEY_LEN]


# ---------------------------------------------------------------------------------------------------
# Trace and stats

class Trace:
    """JSON Lines record of what this process sends, in order. Thread-safe; a no-op without a file."""

    def __init__(self, path, role, max_hex=None):
        self.role = role
        self.max_hex = max_hex
        self.lock = threading.Lock()
        self.file = open(path, "w", buffering=1) if path else None

    def record(self, conn, event, **fields):
        if self.file is None:
            return
        data = fields.pop("data", None)
        item = {"t": round(time.monotonic() - PROCESS_START, 6), "role": self.role, "conn": conn,
                "event": event}
        item.update(fields)
        if data is not None:
            item["len"] = len(data)
            shown = data if self.max_hex is None else data[:self.max_hex]
            item["hex"] = bytes(shown).hex()
            if len(shown) < len(data):
                item["hex_truncated"] = True
        line = json.dumps(item)
        with self.lock:
            self.file.write(line + "\n")

    def close(self):
        if self.file is not None:
            with self.lock:
                self.file.close()
                self.file = None


class InflightRing:
    """§3.3: the most recent `capacity` bytes the application wrote (those the kernel accepted).
    seq is the stream offset (sndseq) of the first byte kept. Go-back-N (§5.4) resends from here."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.buf = bytearray()
        self.seq = 0

    def append(self, data):
        self.buf += data
        excess = len(self.buf) - self.capacity
        if excess > 0:
            del self.buf[:excess]
            self.seq += excess

    def since(self, seq):
        """The bytes from stream offset seq on (for go-back-N). rocks asserts seq is inside the ring."""
        if not self.seq <= seq <= self.seq + len(self.buf):
            raise RockError("rcvseq %d outside the ring [%d, %d]" % (seq, self.seq, self.seq + len(self.buf)))
        return bytes(self.buf[seq - self.seq:])


# ---------------------------------------------------------------------------------------------------
# The rock

class RockOptions:
    """The four wire-changing rocks options (§8) plus this tool's knobs. Both ends must agree."""

    def __init__(self, auth=True, interop=True, hb=True, flight=True, reset_on_close=True,
                 dh_private=None, hb_period=HB_PERIOD, hb_misses=HB_MAX_MISSES, init_pace=0.5):
        self.auth = auth
        self.interop = interop
        self.hb = hb
        self.flight = flight
        self.reset_on_close = reset_on_close
        self.dh_private = dh_private
        self.hb_period = hb_period
        self.hb_misses = hb_misses
        self.init_pace = init_pace
        self.announce_after = 0.0


class State(enum.Enum):
    EDP = "edp"                  # server side, before the application's first read (§2.3)
    INIT = "init"                # running rs_init_connection (§3)
    ESTABLISHED = "established"  # a rock, heartbeating
    SUSPENDED = "suspended"      # §5.1; reconnection (1of2, auth, recovery) comes later
    PLAIN = "plain"              # not a rock (fallback or --plain): ordinary TCP
    CLOSED = "closed"


class Rock:
    """One connection as a rocks 2.4 library instance sees it. The application talks to it only with
    app_read / app_write / close. All counting follows rocks: sndseq and rcvseq count application
    bytes from the end of init."""

    def __init__(self, sock, role, conn, opts, trace, state):
        self.sock = sock
        self.role = role                      # "client" or "server": the original role, kept for good
        self.conn = conn
        self.opts = opts
        self.trace = trace
        self.state = state
        self.dir = "c2s" if role == "client" else "s2c"
        self.lock = threading.Lock()
        self.peer_is_rock = None
        self.edp_result = None
        self.spill = bytearray()              # pre-EDP bytes for the application, uncounted (§2.2)
        self.pending = bytearray()            # fallback bytes already read by the library (§2.3)
        self.pre_edp_sent = 0
        self.pre_edp_received = 0
        self.stream_sent = 0                  # every TCP payload byte written on the data connection
        self.stream_received = 0              # every TCP payload byte read on the data connection
        self.offset_sent = None               # stream bytes before application byte 0, each way
        self.offset_received = None
        self.sndseq = 0                       # §5.4: application bytes the kernel accepted
        self.rcvseq = 0                       # §5.4: application bytes the application read
        self.plain_sent = 0
        self.plain_received = 0
        self.dh = None
        self.peer_dh_public = None
        self.dh_secret = None
        self.bf_key = None
        self.rec_sock = None                  # bound to the local IP, port 0, not listening (§3.2)
        self.local_rec_addr = None
        self.peer_rec_addr = None
        self.hb_sock = None
        self.local_hb_addr = None
        self.peer_hb_addr = None
        self.peer_hb_family_ok = None
        self.sndbuf = self.rcvbuf = None
        self.peer_sndbuf = self.peer_rcvbuf = None
        self.maxsnd = NOFLIGHT_MAXSND
        self.maxrcv = None
        self.ring = None
        self.missed = 0
        self.hb_sent = 0
        self.hb_received = 0
        self.suspensions = []
        self.closed_by_peer_seen = False

    # -- raw stream I/O (the library's own reads and writes, traced) -------------------------------

    def _write(self, data, label):
        """One write() of the library or the application: all of `data`, traced as one write."""
        self.sock.sendall(data)
        self.stream_sent += len(data)
        self.trace.record(self.conn, "write", proto="tcp", dir=self.dir, label=label, data=data)

    def _read_exact(self, n, what):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RockError("EOF while reading %s (%d of %d bytes)" % (what, len(buf), n))
            buf += chunk
        self.stream_received += n
        return bytes(buf)

    # -- §2.3: server EDP, driven by the application's first read -----------------------------------

    def _edp_first_read(self, app_len):
        want = min(app_len, len(ANNOUNCEMENT))
        first = self.sock.recv(want)
        self.stream_received += len(first)
        if not first:
            # A probe: answer with the announcement and return EOF; the application closes.
            self.edp_result = "probe"
            self.trace.record(self.conn, "edp", result="probe")
            self._write(ANNOUNCEMENT, "announcement")
            return b""
        if ANNOUNCEMENT.startswith(first):
            got = first
            if len(got) < len(ANNOUNCEMENT):
                # Blocking, no timeout, as rocks (a non-rock client sending "IR" and waiting hangs here).
                got += self._read_exact(len(ANNOUNCEMENT) - len(got), "the rest of the announcement")
            if got != ANNOUNCEMENT:
                self.edp_result = "partial-mismatch"
                self.trace.record(self.conn, "edp", result="partial-mismatch")
                raise RockError("EDP: the announcement prefix was not followed by the rest")
            self.edp_result = "rock"
            self.trace.record(self.conn, "edp", result="rock")
            self._write(ANNOUNCEMENT, "announcement")
            self.peer_is_rock = True
            self._init_connection()
            return None
        # Anything else: fall back; the bytes already read are the application's first data.
        self.edp_result = "fallback"
        self.trace.record(self.conn, "edp", result="fallback")
        self.peer_is_rock = False
        self.state = State.PLAIN
        self.pending += first
        self.plain_received += len(first)
        return None

    def resolve_edp(self, app_len=65536):
        """Run the EDP part of the application's first read (server). Returns b"" for a probe."""
        if self.state is State.EDP:
            return self._edp_first_read(app_len)
        return None

    # -- §2.2: client side ------------------------------------------------------------------------

    def client_scan_for_reply(self):
        """Write the announcement on connection #2, then scan for the reply (§2.2 step 5): read() in
        16-byte chunks into a 16-byte stage window; whatever each read pushes out of the window goes to
        the spill buffer; stop when the window holds exactly the announcement. So the reply is found
        only when a read ends exactly where it ends: in practice when it is the last thing the server
        has sent (its init comes later) or when the bytes before it total a multiple of 16. There is
        no timeout; EOF or an error fails the connect."""
        self._write(ANNOUNCEMENT, "announcement")
        stage = b""
        while True:
            chunk = self.sock.recv(16)
            if not chunk:
                raise RockError("EOF while scanning for the announcement reply")
            self.stream_received += len(chunk)
            log.debug("conn %d: scan read %d bytes: %s", self.conn, len(chunk), chunk.hex())
            window = stage + chunk
            self.spill += window[:-16]
            stage = window[-16:]
            if stage == ANNOUNCEMENT:
                break
        self.pre_edp_received = len(self.spill)
        log.debug("conn %d: announcement reply after %d spilled bytes", self.conn, len(self.spill))

    # -- §3: rs_init_connection ------------------------------------------------------------------

    def _init_connection(self):
        self.state = State.INIT
        sock = self.sock
        self.pre_edp_sent = self.stream_sent - (len(ANNOUNCEMENT) if self.opts.interop else 0)
        before_sent, before_received = self.stream_sent, self.stream_received
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local_ip = sock.getsockname()[0]

        if self.opts.auth:
            self.dh = DiffieHellman(self.opts.dh_private)
        self._pace_first_init_write()
        if self.opts.auth:
            public = self.dh.public_bytes
            self._write(struct.pack(">I", len(public)), "dh-len")
            self._write(public, "dh-key")
            peer_len = struct.unpack(">I", self._read_exact(4, "the DH length"))[0]
            if peer_len > DH_MAX_PEER_LEN:
                raise RockError("peer DH public key length %d > %d" % (peer_len, DH_MAX_PEER_LEN))
            self.peer_dh_public = self._read_exact(peer_len, "the DH public key")
            self.dh_secret = self.dh.shared_secret(self.peer_dh_public)
            self.bf_key = blowfish_key(self.dh_secret)
            log.debug("conn %d: DH public=%s peer=%s secret=%s bf_key=%s", self.conn, public.hex(),
                      self.peer_dh_public.hex(), self.dh_secret.hex(), self.bf_key.hex())

        # The reconnection address: bound to the data connection's local IP, port 0, not listening.
        self.rec_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.rec_sock.setblocking(False)
        self.rec_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.rec_sock.bind((local_ip, 0))
        self.local_rec_addr = self.rec_sock.getsockname()
        self._write(sockaddr_in_bytes(*self.local_rec_addr), "rec-addr")
        ip, port, _ = parse_sockaddr_in(self._read_exact(16, "the reconnection address"))
        self.peer_rec_addr = (ip, port)

        if self.opts.flight:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RS_SOCKBUF)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RS_SOCKBUF)
            self.sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._write(struct.pack(">I", self.sndbuf), "sndbuf")
            self._write(struct.pack(">I", self.rcvbuf), "rcvbuf")
            self.peer_sndbuf, self.peer_rcvbuf = struct.unpack(">II", self._read_exact(8, "the buffer sizes"))
            self.maxsnd = self.sndbuf + self.peer_rcvbuf
            self.maxrcv = self.rcvbuf + self.peer_sndbuf
        self.ring = InflightRing(self.maxsnd)

        if self.opts.hb:
            self.hb_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.hb_sock.bind((local_ip, 0))
            self.local_hb_addr = self.hb_sock.getsockname()
            self._write(sockaddr_in_bytes(*self.local_hb_addr), "hb-addr")
            ip, port, family_ok = parse_sockaddr_in(self._read_exact(16, "the heartbeat address"))
            self.peer_hb_addr = (ip, port)
            self.peer_hb_family_ok = family_ok
            if not family_ok:
                log.warning("conn %d: the peer's heartbeat sockaddr family is not 02 00", self.conn)

        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        if self.opts.reset_on_close:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.offset_sent = self.stream_sent
        self.offset_received = self.stream_received
        init_sent = self.stream_sent - before_sent
        init_received = self.stream_received - before_received
        self.state = State.ESTABLISHED
        self.trace.record(self.conn, "init-done", local_rec_addr="%s:%d" % self.local_rec_addr,
                          peer_rec_addr="%s:%d" % self.peer_rec_addr,
                          local_hb_addr=("%s:%d" % self.local_hb_addr) if self.hb_sock else None,
                          peer_hb_addr=("%s:%d" % self.peer_hb_addr) if self.peer_hb_addr else None,
                          init_bytes_sent=init_sent, init_bytes_received=init_received,
                          offset_sent=self.offset_sent, offset_received=self.offset_received,
                          dh_secret=self.dh_secret.hex() if self.dh_secret is not None else None)
        log.info("conn %d: rock established (init %d/%d bytes, app byte 0 at stream offset %d sent, %d received)",
                 self.conn, init_sent, init_received, self.offset_sent, self.offset_received)
        if self.opts.hb:
            HEARTBEAT.register(self)

    def _pace_first_init_write(self):
        """Server after EDP only: wait (at most opts.init_pace seconds) until the client's first init
        bytes are readable before writing ours. The real rocks server spends about 1 ms generating its
        DH key here, so in the captures the client's DH key always arrives first, and the client's
        scan (which cannot find the announcement once init bytes follow it in the same read) has
        finished. This keeps that order on the wire whatever the timing; it is a wait, not a read."""
        if self.role != "server" or not self.opts.interop or self.opts.init_pace <= 0:
            return
        readable, _, _ = select.select([self.sock], [], [], self.opts.init_pace)
        if not readable:
            log.debug("conn %d: no client init bytes within %.3f s; writing ours", self.conn, self.opts.init_pace)

    def run_init(self):
        """Client side (and --no-edp server): run init on this connection now."""
        self.peer_is_rock = True
        self._init_connection()

    # -- application I/O ---------------------------------------------------------------------------

    def app_write(self, data):
        """One application write(). Returns the bytes accepted (capped at maxsnd per call, §3.3)."""
        if self.state is State.EDP:
            # §2.3: straight to the socket, uncounted.
            self._write(bytes(data), "banner")
            return len(data)
        if self.state is State.PLAIN:
            self._write(bytes(data), "app")
            self.plain_sent += len(data)
            return len(data)
        if self.state not in (State.ESTABLISHED, State.SUSPENDED):
            raise RockError("write in state %s" % self.state.value)
        # SUSPENDED: until reconnection exists (§5), suspension is only reported and the application
        # keeps using the old socket while it works; rocks would block it until recovery.
        piece = bytes(data[:self.maxsnd])
        try:
            sent = self.sock.send(piece)
        except (InterruptedError, BlockingIOError):
            raise
        except OSError as e:
            self.suspend("write error: %s" % e)          # §5.1: an I/O error other than EINTR/EAGAIN
            raise RockSuspended("write failed: %s" % e) from e
        piece = piece[:sent]
        self.stream_sent += sent
        self.trace.record(self.conn, "write", proto="tcp", dir=self.dir, label="app", data=piece)
        self.ring.append(piece)
        self.sndseq += sent
        return sent

    def app_read(self, app_len):
        """One application read(): b"" on EOF."""
        if self.state is State.EDP:
            r = self._edp_first_read(app_len)
            if r is not None:
                return r
        if self.spill:
            out = bytes(self.spill[:app_len])
            del self.spill[:len(out)]
            return out
        if self.pending:
            out = bytes(self.pending[:app_len])
            del self.pending[:len(out)]
            return out
        if self.state is State.PLAIN:
            data = self.sock.recv(app_len)
            self.stream_received += len(data)
            self.plain_received += len(data)
            return data
        if self.state not in (State.ESTABLISHED, State.SUSPENDED):
            raise RockError("read in state %s" % self.state.value)
        try:
            data = self.sock.recv(app_len)
        except (InterruptedError, BlockingIOError):
            raise
        except OSError as e:
            self.suspend("read error: %s" % e)           # §5.1: e.g. ECONNRESET, ETIMEDOUT
            raise RockSuspended("read failed: %s" % e) from e
        self.stream_received += len(data)
        self.rcvseq += len(data)
        if not data:
            self.closed_by_peer_seen = True
        return data

    def close(self):
        """The application's close(): linger off first, then close, so the peer sees a FIN (§6)."""
        with self.lock:
            if self.state is State.CLOSED:
                return
            was = self.state
            self.state = State.CLOSED
        HEARTBEAT.unregister(self)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
        except OSError:
            pass
        self.trace.record(self.conn, "close", proto="tcp", how="fin", state=was.value)
        self.sock.close()
        for s in (self.hb_sock, self.rec_sock):
            if s is not None:
                s.close()

    # -- §4: heartbeat ---------------------------------------------------------------------------

    def heartbeat_tick(self):
        """One SIGALRM tick for this rock: chkrecv (one datagram at most), missed++, sendto 'x',
        then the miss limit."""
        with self.lock:
            if self.state is not State.ESTABLISHED or self.hb_sock is None:
                return
            try:
                readable, _, _ = select.select([self.hb_sock], [], [], 0)
                if readable:
                    self.hb_sock.recv(64)     # from any source, unchecked (§4)
                    self.hb_received += 1
                    self.missed = 0
            except OSError as e:
                self._suspend_locked("heartbeat recv error: %s" % e)
                return
            self.missed += 1
            try:
                self.hb_sock.sendto(HB_PAYLOAD, self.peer_hb_addr)
            except OSError as e:
                self._suspend_locked("heartbeat sendto error: %s" % e)
                return
            self.hb_sent += 1
            self.trace.record(self.conn, "sendto", proto="udp", label="heartbeat",
                              src="%s:%d" % self.local_hb_addr, dst="%s:%d" % self.peer_hb_addr,
                              data=HB_PAYLOAD)
            if self.missed >= self.opts.hb_misses:
                if self._actually_closed():
                    log.info("conn %d: %d missed heartbeats but the peer has closed", self.conn, self.missed)
                    return
                self._suspend_locked("%d missed heartbeats" % self.missed)

    def _actually_closed(self):
        """§6 actuallyclosed(): a non-blocking read (here a peek) returning >= 0 means closed, not failed."""
        try:
            self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return True
        except BlockingIOError:
            return False
        except OSError:
            return False

    # -- §5: suspension (reconnection comes later) ----------------------------------------------------

    def suspend(self, reason):
        with self.lock:
            self._suspend_locked(reason)

    def _suspend_locked(self, reason):
        if self.state is not State.ESTABLISHED:
            return
        self.state = State.SUSPENDED
        event = {"t": round(time.monotonic() - PROCESS_START, 3), "reason": reason,
                 "sndseq": self.sndseq, "rcvseq": self.rcvseq}
        self.suspensions.append(event)
        self.trace.record(self.conn, "suspend", reason=reason, sndseq=self.sndseq, rcvseq=self.rcvseq)
        log.warning("conn %d: SUSPEND (%s); reconnection is not implemented yet: heartbeats stop, the "
                    "application goes on with the old socket while it works", self.conn, reason)
        # Next (§5.1-§5.4): close the data socket with a RST (linger {1,0}), listen on rec_sock,
        # run 1of2 against peer_rec_addr, authenticate with bf_key, then recover (new hb and rec
        # sockaddrs, rcvseq, sizes, go-back-N from self.ring.since(peer_rcvseq)).

    # -- reporting ---------------------------------------------------------------------------------

    def stats(self):
        rock = self.peer_is_rock is True
        return {
            "conn": self.conn,
            "role": self.role,
            "state": self.state.value,
            "edp": self.edp_result,
            "peer_is_rock": self.peer_is_rock,
            "app_bytes_sent": self.sndseq if rock else self.plain_sent,
            "app_bytes_received": self.rcvseq if rock else self.plain_received,
            "pre_edp_bytes_sent": self.pre_edp_sent,
            "pre_edp_bytes_received": self.pre_edp_received,
            "stream_bytes_sent": self.stream_sent,
            "stream_bytes_received": self.stream_received,
            "stream_offset_sent": self.offset_sent if rock else 0,
            "stream_offset_received": self.offset_received if rock else 0,
            "sndseq": self.sndseq,
            "rcvseq": self.rcvseq,
            "heartbeats_sent": self.hb_sent,
            "heartbeats_received": self.hb_received,
            "heartbeat_missed": self.missed,
            "suspensions": len(self.suspensions),
            "suspension_events": self.suspensions,
            "sndbuf": self.sndbuf, "rcvbuf": self.rcvbuf,
            "peer_sndbuf": self.peer_sndbuf, "peer_rcvbuf": self.peer_rcvbuf,
            "maxsnd": self.maxsnd if rock else None, "maxrcv": self.maxrcv,
            "local_rec_addr": "%s:%d" % self.local_rec_addr if self.local_rec_addr else None,
            "peer_rec_addr": "%s:%d" % self.peer_rec_addr if self.peer_rec_addr else None,
            "local_hb_addr": "%s:%d" % self.local_hb_addr if self.local_hb_addr else None,
            "peer_hb_addr": "%s:%d" % self.peer_hb_addr if self.peer_hb_addr else None,
            "dh_public": self.dh.public_bytes.hex() if self.dh else None,
            "dh_peer_public": self.peer_dh_public.hex() if self.peer_dh_public is not None else None,
            "dh_secret": self.dh_secret.hex() if self.dh_secret is not None else None,
            "bf_key": self.bf_key.hex() if self.bf_key is not None else None,
        }


# ---------------------------------------------------------------------------------------------------
# The process-wide heartbeat clock (§4: setitimer, 1 s, phase = process start)

class HeartbeatClock:
    def __init__(self):
        self.rocks = []
        self.lock = threading.Lock()
        self.thread = None
        self.period = HB_PERIOD

    def register(self, rock):
        with self.lock:
            self.period = rock.opts.hb_period
            self.rocks.append(rock)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
                self.thread.start()

    def unregister(self, rock):
        with self.lock:
            if rock in self.rocks:
                self.rocks.remove(rock)

    def _run(self):
        tick = int((time.monotonic() - PROCESS_START) / self.period) + 1
        while True:
            due = PROCESS_START + tick * self.period
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # Late (the process was stopped, or busy): one tick now, then back on the phase, as a
            # pending SIGALRM is delivered once however many periods went by.
            tick = max(tick + 1, int((time.monotonic() - PROCESS_START) / self.period) + 1)
            with self.lock:
                rocks = list(self.rocks)
            for rock in rocks:
                try:
                    rock.heartbeat_tick()
                except Exception:          # never let one rock stop the clock
                    log.exception("heartbeat tick failed")


HEARTBEAT = HeartbeatClock()


# ---------------------------------------------------------------------------------------------------
# Connection setup

def parse_addr(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected ADDR:PORT, got %r" % text)
    try:
        socket.inet_aton(host)
    except OSError:
        host = socket.gethostbyname(host)
    return host, int(port)


def rock_connect(addr, opts, trace, plain=False):
    """A rocks client's connect() (§2.2). Returns a Rock (a rock, or PLAIN after fallback)."""
    if plain:
        sock = socket.create_connection(addr)
        trace.record(1, "connect", proto="tcp", local="%s:%d" % sock.getsockname(), peer="%s:%d" % addr)
        rock = Rock(sock, "client", 1, opts, trace, State.PLAIN)
        rock.peer_is_rock = False
        rock.edp_result = "plain"
        return rock
    if not opts.interop:
        sock = socket.create_connection(addr)
        trace.record(1, "connect", proto="tcp", local="%s:%d" % sock.getsockname(), peer="%s:%d" % addr)
        rock = Rock(sock, "client", 1, opts, trace, State.INIT)
        rock.edp_result = "noninterop"
        rock.run_init()
        return rock

    # Connection #1: the probe.
    probe = socket.create_connection(addr)
    trace.record(1, "connect", proto="tcp", local="%s:%d" % probe.getsockname(), peer="%s:%d" % addr)
    probe.shutdown(socket.SHUT_WR)
    trace.record(1, "shutdown-wr", proto="tcp")
    last16 = b""
    received = 0
    is_rock = False
    while True:
        try:
            readable, _, _ = select.select([probe], [], [], EDP_PROBE_TIMEOUT)
        except OSError:
            break
        if not readable:
            log.info("probe: no EOF within %.1f s: not a rock", EDP_PROBE_TIMEOUT)
            break
        try:
            chunk = probe.recv(2048)
        except ConnectionResetError:
            chunk = b""
        except OSError:
            break
        if not chunk:
            is_rock = received >= 16 and last16 == ANNOUNCEMENT
            break
        received += len(chunk)
        last16 = (last16 + chunk)[-16:]
    probe.close()
    trace.record(1, "close", proto="tcp", how="fin")
    trace.record(1, "edp", result="rock" if is_rock else "not-rock", probe_bytes=received)
    log.info("probe: %d bytes, %s", received, "a rock" if is_rock else "not a rock")

    # Connection #2: a new socket, blocking connect to the same address.
    sock = socket.create_connection(addr)
    trace.record(2, "connect", proto="tcp", local="%s:%d" % sock.getsockname(), peer="%s:%d" % addr)
    if not is_rock:
        rock = Rock(sock, "client", 2, opts, trace, State.PLAIN)
        rock.peer_is_rock = False
        rock.edp_result = "not-rock"
        return rock
    rock = Rock(sock, "client", 2, opts, trace, State.INIT)
    rock.edp_result = "rock"
    if opts.announce_after:
        # A slow client (a test convenience, not rocks behaviour): the server's application may write
        # first, as it would when it accepts before the announcement arrives.
        time.sleep(opts.announce_after)
    rock.client_scan_for_reply()
    rock.run_init()
    return rock


# ---------------------------------------------------------------------------------------------------
# The application

class App:
    """The test application on top of one Rock: echo, or send and/or receive, then close."""

    def __init__(self, args, role):
        self.args = args
        self.role = role

    def payload_chunks(self):
        a = self.args
        if a.send_file:
            with open(a.send_file, "rb") as f:
                while True:
                    block = f.read(1 << 20)
                    if not block:
                        return
                    yield block
        elif a.send_bytes:
            rng = random.Random(a.seed)
            left = a.send_bytes
            while left > 0:
                n = min(65536, left)
                yield rng.randbytes(n)
                left -= n

    def run(self, rock):
        a = self.args
        started = time.monotonic()
        result = {"role": self.role, "conn": rock.conn, "error": None}
        sent_hash, recv_hash = hashlib.sha256(), hashlib.sha256()
        totals = {"sent": 0, "received": 0}
        out = open(a.receive_file, "wb") if a.receive_file else None
        errors = []

        def writer():
            try:
                pending = bytearray()
                first = True
                for block in self.payload_chunks():
                    pending += block
                    while len(pending) >= a.chunk:
                        if not first and a.interval:
                            time.sleep(a.interval)
                        first = False
                        self._write_all(rock, pending[:a.chunk], sent_hash, totals)
                        del pending[:a.chunk]
                if pending:
                    if not first and a.interval:
                        time.sleep(a.interval)
                    self._write_all(rock, pending, sent_hash, totals)
            except Exception as e:     # reported, not raised: the reader decides when to close
                errors.append("send: %s" % e)

        try:
            if self.role == "server" and a.banner is not None:
                rock.app_write(a.banner.encode())
            send_thread = None
            if a.echo:
                pass
            elif a.send_file or a.send_bytes:
                # A server must let its first read run EDP before writing, or its data would go out
                # pre-EDP (uncounted, and onto the probe connection).
                if rock.state is State.EDP:
                    if rock.resolve_edp(a.read_size) == b"":
                        result["edp"] = "probe"
                        rock.close()
                        return result, rock
                elif a.read_first and rock.state is State.PLAIN:
                    # --read-first: an ordinary server that answers once its client has spoken. A client
                    # that closes without a byte (what such a server sees of a rocks probe) is closed
                    # at once and not counted; the first read's bytes are the read loop's first.
                    want = a.read_size if a.receive_bytes is None else min(a.read_size, a.receive_bytes)
                    first = rock.app_read(want)
                    if not first:
                        rock.edp_result = result["edp"] = "empty"
                        rock.close()
                        return result, rock
                    rock.pending[:0] = first
                send_thread = threading.Thread(target=writer, name="writer", daemon=True)
                send_thread.start()
            limit = a.receive_bytes
            while limit is None or totals["received"] < limit:
                want = a.read_size if limit is None else min(a.read_size, limit - totals["received"])
                data = rock.app_read(want)
                if not data:
                    break
                totals["received"] += len(data)
                recv_hash.update(data)
                if out:
                    out.write(data)
                if a.echo:
                    self._write_all(rock, data, sent_hash, totals)
            if send_thread is not None:
                send_thread.join()
            result["seconds"] = round(time.monotonic() - started, 6)
            if a.hold:
                time.sleep(a.hold)             # idle, heartbeating, before the close
        except Exception as e:
            errors.append("%s: %s" % (type(e).__name__, e))
        finally:
            if out:
                out.close()
        if rock.edp_result in ("probe", "empty"):
            result["edp"] = rock.edp_result
        rock.close()
        result.update({
            "peer_is_rock": rock.peer_is_rock,
            "sent_bytes": totals["sent"], "sent_sha256": sent_hash.hexdigest(),
            "recv_bytes": totals["received"], "recv_sha256": recv_hash.hexdigest(),
            "heartbeats_sent": rock.hb_sent, "heartbeats_received": rock.hb_received,
            "suspensions": len(rock.suspensions),
        })
        if errors:
            result["error"] = "; ".join(errors)
        return result, rock

    @staticmethod
    def _write_all(rock, data, sent_hash, totals):
        view = memoryview(bytes(data))
        while view:
            n = rock.app_write(view)
            sent_hash.update(view[:n])
            totals["sent"] += n
            view = view[n:]


# ---------------------------------------------------------------------------------------------------
# Commands

def make_opts(args):
    opts = RockOptions(auth=not args.no_auth, interop=not args.no_edp, hb=not args.no_hb,
                       flight=not args.no_flight, reset_on_close=not args.no_reset_on_close,
                       dh_private=int(args.dh_private, 16) if args.dh_private else None,
                       hb_period=args.hb_period, hb_misses=args.hb_misses, init_pace=args.init_pace)
    opts.announce_after = getattr(args, "announce_after", 0.0)
    return opts


class Report:
    """Collects per-connection stats and writes --stats."""

    def __init__(self, path, role):
        self.path = path
        self.role = role
        self.connections = []
        self.probes = 0
        self.empty = 0
        self.lock = threading.Lock()

    def add(self, stats):
        with self.lock:
            if stats.get("edp") == "probe":
                self.probes += 1
            if stats.get("edp") == "empty":
                self.empty += 1
            self.connections.append(stats)
            self.write()

    def write(self):
        if not self.path:
            return
        apps = [c for c in self.connections if c.get("edp") not in ("probe", "empty")]
        doc = dict(apps[-1]) if apps else {}
        doc.update({"role": self.role, "probes": self.probes, "empty_connections": self.empty,
                    "connections": self.connections})
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.path)


def run_connection(app, rock, report):
    result, rock = app.run(rock)
    stats = rock.stats()
    stats.update({k: result[k] for k in ("sent_bytes", "sent_sha256", "recv_bytes", "recv_sha256", "error")
                  if k in result})
    report.add(stats)
    if stats.get("edp") not in ("probe", "empty"):
        print(json.dumps(result), flush=True)
    return result


def cmd_connect(args, trace, report):
    opts = make_opts(args)
    rock = rock_connect(args.address, opts, trace, plain=args.plain)
    result = run_connection(App(args, "client"), rock, report)
    return 0 if result.get("error") is None else 1


def cmd_serve(args, trace, report):
    opts = make_opts(args)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(args.listen)
    listener.listen(16)
    log.info("listening on %s:%d", *listener.getsockname())
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%s:%d\n" % listener.getsockname())
    app = App(args, "server")
    done = threading.Semaphore(0)
    status = {"failed": 0}
    accepted = 0

    def handle(rock):
        try:
            result = run_connection(app, rock, report)
            if result.get("edp") in ("probe", "empty"):
                return
            if result.get("error"):
                status["failed"] += 1
            done.release()
        except Exception:
            log.exception("connection %d failed", rock.conn)
            status["failed"] += 1
            done.release()

    threads = []
    finished = 0
    while args.count == 0 or finished < args.count:
        readable, _, _ = select.select([listener], [], [], 0.1)
        while done.acquire(blocking=False):
            finished += 1
        if args.count and finished >= args.count:
            break
        if not readable:
            continue
        sock, peer = listener.accept()
        accepted += 1
        trace.record(accepted, "accept", proto="tcp", local="%s:%d" % sock.getsockname(), peer="%s:%d" % peer)
        if args.plain:
            rock = Rock(sock, "server", accepted, opts, trace, State.PLAIN)
            rock.peer_is_rock = False
            rock.edp_result = "plain"
        elif not opts.interop:
            rock = Rock(sock, "server", accepted, opts, trace, State.INIT)
            rock.edp_result = "noninterop"
            try:
                rock.run_init()              # RS_NOINTEROP: init inside accept()
            except (OSError, RockError) as e:
                log.error("conn %d: init failed: %s", accepted, e)
                sock.close()
                continue
        else:
            rock = Rock(sock, "server", accepted, opts, trace, State.EDP)
        t = threading.Thread(target=handle, args=(rock,), name="conn-%d" % accepted, daemon=True)
        t.start()
        threads.append(t)
    listener.close()
    for t in threads:
        t.join(timeout=5)
    return 1 if status["failed"] else 0


def build_parser():
    p = argparse.ArgumentParser(
        prog="rockspeer.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__, epilog="'rockspeer.py serve --help' and 'rockspeer.py connect --help' list every option.")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp):
        g = sp.add_argument_group("application")
        g.add_argument("--echo", action="store_true", help="write back every byte read")
        g.add_argument("--send-file", metavar="F", help="send the bytes of F")
        g.add_argument("--send-bytes", "--source", metavar="N", type=parse_size, default=0,
                       help="send N pseudo-random bytes (K, M, G suffixes)")
        g.add_argument("--seed", type=int, default=1, help="seed of --send-bytes (default 1)")
        g.add_argument("--chunk", type=parse_size, default=65536, help="bytes per application write")
        g.add_argument("--interval", type=float, default=0.0, help="seconds between writes")
        g.add_argument("--receive-file", metavar="F", help="store the bytes the application reads")
        g.add_argument("--receive-bytes", metavar="M", type=parse_size, default=None,
                       help="stop reading after M bytes (default: at EOF)")
        g.add_argument("--sink", action="store_true", help="read until EOF and discard (default)")
        g.add_argument("--hold", type=float, default=0.0, metavar="S",
                       help="keep the connection open S seconds after the transfer, then close")
        g.add_argument("--read-size", type=parse_size, default=65536, help="bytes per application read")
        r = sp.add_argument_group("rocks options (both ends must match)")
        r.add_argument("--no-edp", action="store_true", help="RS_NOINTEROP: no EDP, init right away")
        r.add_argument("--no-auth", action="store_true", help="RS_NOAUTH: no DH key at init")
        r.add_argument("--no-hb", action="store_true", help="RS_NOHB: no heartbeat address, no heartbeats")
        r.add_argument("--no-flight", action="store_true", help="RS_NOFLIGHT: no buffer sizes")
        r.add_argument("--no-reset-on-close", action="store_true",
                       help="no SO_LINGER {1,0} after init (unmodified rocks on a non-2.4 kernel)")
        r.add_argument("--plain", action="store_true", help="be an ordinary, non-rock application")
        r.add_argument("--dh-private", metavar="HEX", help="fixed DH private key (tests only)")
        r.add_argument("--init-pace", type=float, default=0.5, metavar="S",
                       help="server: wait up to S s for the client's DH before writing ours (0: off)")
        r.add_argument("--hb-period", type=float, default=HB_PERIOD, help="heartbeat period (1 s)")
        r.add_argument("--hb-misses", type=int, default=HB_MAX_MISSES, help="misses before suspend (15)")
        o = sp.add_argument_group("output")
        o.add_argument("--trace", metavar="FILE", help="JSON Lines trace of every write and datagram sent")
        o.add_argument("--trace-max-hex", type=int, default=None, metavar="N",
                       help="keep at most N bytes of each traced write (default: all)")
        o.add_argument("--stats", metavar="FILE", help="JSON counters")
        o.add_argument("--log", metavar="FILE", help="log file (default: stderr)")
        o.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v: debug)")
        o.add_argument("--timeout", type=float, default=0, help="exit 3 after this many seconds")

    s = sub.add_parser("serve", help="accept connections as a rocks server application",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--listen", required=True, type=parse_addr, metavar="ADDR:PORT")
    s.add_argument("--banner", metavar="TEXT", help="written right after accept (pre-EDP, uncounted)")
    s.add_argument("--count", type=int, default=0, help="exit after N application connections (0: never)")
    s.add_argument("--ready-file", metavar="F", help="write the listening ADDR:PORT here once listening")
    s.add_argument("--read-first", action="store_true",
                   help="with --plain and --send-*: start sending only once the client's first bytes are read; "
                        "a client that closes without sending is closed at once and not counted")
    common(s)
    c = sub.add_parser("connect", help="connect as a rocks client application",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("address", type=parse_addr, metavar="ADDR:PORT")
    c.add_argument("--announce-after", type=float, default=0.0, metavar="S",
                   help="wait S seconds between the data connection's connect and its announcement (a slow "
                        "client, so that a server application's banner goes first; not rocks behaviour)")
    common(c)
    c.set_defaults(banner=None, read_first=False)
    return p


def parse_size(text):
    text = str(text).strip()
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    mult = 1
    if text and text[-1].upper() in units:
        mult = units[text[-1].upper()]
        text = text[:-1]
    return int(float(text) * mult)


def main(argv=None):
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    handler = logging.FileHandler(args.log) if args.log else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s rockspeer[" + args.command + "] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    if args.timeout:
        def expire():
            log.error("timeout after %.1f s", args.timeout)
            os._exit(3)
        timer = threading.Timer(args.timeout, expire)
        timer.daemon = True
        timer.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(2))
    role = "client" if args.command == "connect" else "server"
    trace = Trace(args.trace, role, args.trace_max_hex)
    report = Report(args.stats, role)
    try:
        if args.command == "connect":
            return cmd_connect(args, trace, report)
        return cmd_serve(args, trace, report)
    except (OSError, RockError) as e:
        log.error("%s: %s", type(e).__name__, e)
        return 1
    finally:
        report.write()
        trace.close()


if __name__ == "__main__":
    sys.exit(main())
