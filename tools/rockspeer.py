#!/usr/bin/env python3
"""rockspeer.py: a stand-in for a real rocks 2.4 ("reliable sockets") application. Python 3 stdlib only.

Written from docs/rocks.md (section numbers below refer to it; it follows ../shared/ROCKS-PROTOCOL.md)
and checked byte for byte against the real captures in Tests/RackEngineTests/Fixtures/ by
tools/rockspeer_test.py. It is the other end rackd will talk to when its peer is a rock. No rocks code
was used; where the protocol file is silent about reconnection, facts were read in rocks' source (see
"Suspension and reconnection" below).

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
'x' to the peer's heartbeat address; a sendto or recv error, or missed >= 15, suspends the rock
(after §6 actuallyclosed(): if the peer's FIN is there, the rock is closed, not failed).

Suspension and reconnection (§5, §6; facts the protocol file leaves out were read in rocks' source,
reconnect.c, 1of2.c, flight.c, hb.c, util.c, crypt-openssl.c, never copied):
  * suspension (§5.1): 15 missed heartbeats, a heartbeat sendto/recv error, an application read or write
    error (a RST from the peer is one). The data socket is closed with SO_LINGER {1,0}: a RST. The
    heartbeat socket is closed, the deadline set (3 days, --reconnect-deadline), and a reconnection
    thread (rocks' reconnection process) starts; the application's reads and writes block meanwhile.
  * 1of2 (§5.2, class OneOfTwo): listen(1) on the reconnection socket bound at init (it listens only
    now, as rocks'), non-blocking connects to the peer's reconnection address from unbound sockets (a
    refused one is retried at once: the SYN storm; a pending one after 1 s on a new socket); the
    original server writes one byte on the first connection established (its active one first) and
    closes the other, the original client waits for that byte (active first, then passive).
  * authentication (§5.3): u32be 40 + Blowfish-ECB (tools/blowfish.py) of 32 random bytes + 8 bytes of
    08, keyed by the 16-byte DH key; read the peer's (1 s per read); u32be length + the peer's decrypted
    plaintext; read the peer's; only 32 bytes equal to ours pass. Lengths are checked (1..128) before
    anything is read. A failure closes that connection and goes back to 1of2 (a retry in the same
    thread keys Blowfish with the secret's own length, as OpenSSL 0.9.6 makes rocks do).
  * recovery (§5.4) at the next heartbeat tick (up to 1 s after authentication, as rocks finishes it in
    its SIGALRM handler): new heartbeat address, new reconnection address (each write ours, read the
    peer's; both bound to the new connection's local address, so a host that moved advertises its new
    address), linger {1,0}, u32be rcvseq, u32be SO_SNDBUF and SO_RCVBUF (forced to 32768 again; changed
    sizes abort, as rocks' assert does), then go-back-N: every byte of the in-flight ring (maxsnd bytes of
    what the application wrote) from the peer's rcvseq on, in one write. TCP_NODELAY stays off. The same
    tick then beats on the new heartbeat socket. A failure there closes the new connection and goes
    back to 1of2 with the same deadline. A rcvseq outside the ring aborts the process (rocks asserts).
  * the deadline passing makes the rock HUNGUP: the application's reads and writes fail.

Application options (both roles)
    --echo                   write back every byte read (read size --read-size, default 65536)
    --send-file F            send the bytes of F          --send-bytes N --seed S: N pseudo-random bytes
    --source N               the same as --send-bytes N   --chunk N: bytes per write (default 65536)
    --interval S             pause S seconds between writes (e.g. 0.02 to replay the captures' app)
    --receive-file F         store every byte the application reads (pre-EDP spill included)
    --receive-bytes M        stop reading after M bytes (spill included); default: read until EOF
    --sink                   read until EOF and discard (the default when nothing else is asked)
    --hold S                 keep the connection open (idle, heartbeating) S seconds before closing
    --read-interval S        pause S seconds after each read (a slow reader)
    --read-pause N:S         once N bytes are read, stop reading for S seconds (once; trace events read-pause
                             and read-resume): the kernel then holds bytes it acknowledged and the application
                             has not read, which die with the socket if the rock suspends meanwhile (§5.4)
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
    --trace-reads            also every application read that returned bytes: event "read" with len,
                             total (bytes read so far) and wall (time.time(), to compare across
                             processes and namespaces; bench/rocks times resumption with it)
    --stats FILE             JSON counters when the process ends (see Stats)
    --log FILE, -v           log (debug with -v: includes the DH secret and Blowfish key)
    --count N                (serve) exit after N application connections (probes do not count,
                             except with --plain, which cannot tell a probe from a connection, unless
                             --read-first is given: then connections closed without a byte do not count)
    --timeout S              give up (exit 3) after S seconds
    --dh-private HEX         use this DH private key instead of a random one (tests only)
    --hb-period S --hb-misses N   heartbeat period and miss limit (rocks: 1 s and 15)
    --reconnect-deadline S   give up reconnecting after S s: the rock hangs up (rocks: 3 days)
    --reconnect-from ADDR    bind active reconnection sockets to ADDR (tests: a host that moved there)
    --recovery-timeout S     give up a recovery whose peer is silent S s (0, the default: wait, as rocks)
    --fail-recovery STAGE    tests, not rocks behaviour: the rock's first recovery fails on purpose at STAGE
                             (start: before any recovery message; hb-addr, rec-addr, rcvseq: once that exchange
                             is through), takes rocks' failure path (the new connection closed, 1of2 again) and
                             is counted in the stats as recoveries_broken
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
(result: rock, not-rock, probe, fallback), init-done, suspend, and with --trace-reads read (the
application's, with len, total and wall).

Stats (--stats FILE, JSON): role, peer_is_rock, edp, app_bytes_sent / app_bytes_received (rocks'
counting: from the end of init, so the announcement, init and pre-EDP bytes are not counted; on a
fallback or plain connection, all bytes), pre_edp_bytes_sent / pre_edp_bytes_received (banner or
spill), heartbeats_sent / heartbeats_received, suspensions (with reasons), stream offsets (bytes of
the TCP stream before application byte 0 in each direction; TCP relative seq = offset + 1), sndseq,
rcvseq, buffer sizes, DH values, SHA-256s. A server writes the last application connection at the
top level, all connections under "connections", and the number of probes answered.

Reconnection in the trace: every write on a reconnection connection carries "rec": the number of the
connection 1of2 picked (1, 2, ...; application writes carry the number of the connection they went on,
0 being the original), with the labels 1of2-ack (server), challenge-len, challenge, response-len,
response, hb-addr, rec-addr, rcvseq, sndbuf, rcvbuf and resend (go-back-N); events suspend, close (how:
rst), 1of2 (pick: active or passive, the counts of connect attempts, refusals, timeouts), auth,
recovered (peer_rcvseq, resent_from, resent_bytes, the new addresses), recovery-failed, hungup,
not-connected. The 1of2 record counts connect attempts, refusals, timeouts, "accepted" (the peer's connections
taken on our listener) and "connected" (our own connections that got through): both are 1 when both ends
reconnected at once. The stats have the same under "reconnections".
"""

import argparse
import enum
import errno
import faulthandler
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blowfish  # noqa: E402  (tools/blowfish.py: Blowfish-ECB, which the stdlib lacks)

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

REC_DEADLINE = 3 * 24 * 3600                     # §5.1: rs->lim, 3 days
ONEOF2_POLL = 1.0                                # §5.2: select timeout; a pending connect is then retried
AUTH_MSGLEN = 32                                 # §5.3: random plaintext bytes of a challenge
AUTH_BUFLEN = 128                                # §5.3: the largest length rocks accepts
AUTH_READ_TIMEOUT = 1.0                          # §5.3: rs_opt_auth_timeout, per read

AF_INET_WIRE = struct.pack("<H", socket.AF_INET)  # §3.1: sin_family in x86 host order: 02 00

log = logging.getLogger("rockspeer")
PROCESS_START = time.monotonic()


class RockError(Exception):
    """A protocol failure on a rock (short read, bad EDP, init failure)."""


class RockSuspended(RockError):
    """Kept for callers of earlier versions: a suspended rock now blocks the application until recovery."""


class RockHungUp(RockError):
    """Application I/O on a rock whose reconnection deadline passed (§5.2: HUNGUP)."""


ABORT_HOOKS = []          # called with the reason before fatal() ends the process (stats, trace)


def fatal(reason):
    """What a failed assert() does in rocks: the process aborts; the kernel closes its sockets (a RST
    where linger {1,0} is set). The stats and trace are written first."""
    log.critical("%s: aborting, as rocks does", reason)
    for hook in ABORT_HOOKS:
        try:
            hook(reason)
        except Exception:
            pass
    os._exit(134)


TCP_STATE_CLOSE = 7                              # tcp_info.tcpi_state after a RST (a FIN gives CLOSE_WAIT)


def reset_seen(sock):
    """True if the connection was reset. A read returns EOF, not ECONNRESET, once another call has
    taken the socket's error: the TCP state tells a RST from the peer's FIN."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_STATE_CLOSE
    except OSError:
        return False


def read_exact_timeout(sock, n, timeout, what):
    """rs_xread with a timeout: each read waits at most `timeout` seconds for data."""
    buf = bytearray()
    while len(buf) < n:
        readable, _, _ = select.select([sock], [], [], timeout)
        if not readable:
            raise RockError("timeout reading %s (%d of %d bytes)" % (what, len(buf), n))
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RockError("EOF while reading %s (%d of %d bytes)" % (what, len(buf), n))
        buf += chunk
    return bytes(buf)


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

    def discard_to(self, seq):
        """rs_set_ring_seq: forget what the peer's application has read (everything before seq)."""
        if not self.seq <= seq <= self.seq + len(self.buf):
            raise RockError("rcvseq %d outside the ring [%d, %d]" % (seq, self.seq, self.seq + len(self.buf)))
        del self.buf[:seq - self.seq]
        self.seq = seq

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
                 dh_private=None, hb_period=HB_PERIOD, hb_misses=HB_MAX_MISSES, init_pace=0.5,
                 reconnect_deadline=REC_DEADLINE, reconnect_from=None, recovery_timeout=0.0,
                 fail_recovery=None):
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
        self.reconnect_deadline = reconnect_deadline
        self.reconnect_from = reconnect_from        # tests: the address a moved host connects from
        self.recovery_timeout = recovery_timeout    # 0: recovery reads wait for ever, as rocks'
        self.fail_recovery = fail_recovery          # tests: break off the first recovery at this stage


class State(enum.Enum):
    EDP = "edp"                  # server side, before the application's first read (§2.3)
    INIT = "init"                # running rs_init_connection (§3)
    ESTABLISHED = "established"  # a rock, heartbeating
    SUSPENDED = "suspended"      # §5.1: reconnecting (1of2, authentication), then recovery at a tick
    HUNGUP = "hungup"            # §5.2: the reconnection deadline passed
    NOTCONNECTED = "not-connected"   # §6: a heartbeat failure found the peer had closed
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
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
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
        # §5: suspension and reconnection
        self.io_users = 0                     # application threads inside a system call on self.sock
        self.wake_r = self.wake_w = None      # wakes them out of select() when the rock suspends
        self.generation = 0                   # which data socket: 0 the original, +1 per recovery
        self.rec_index = 0                    # connections picked by 1of2 so far (trace field "rec")
        self.deadline = None
        self.worker = None
        self.rec_ready = None                 # authenticated socket waiting for the next tick
        self.reconnections = []
        self.auth_failures = 0
        self.recoveries_broken = 0            # --fail-recovery: recoveries broken off on purpose
        self.close_spill = bytearray()        # NOTCONNECTED: bytes before the peer's FIN
        self.ciphers = {}                     # Blowfish key schedules by key (§5.3)

    # -- raw stream I/O (the library's own reads and writes, traced) -------------------------------

    def _write(self, data, label, sock=None, rec=None):
        """One write() of the library or the application: all of `data`, traced as one write. With sock:
        on a reconnection connection (rec: its number), not counted in the data connection's stream."""
        (sock or self.sock).sendall(data)
        if sock is None:
            self.stream_sent += len(data)
        extra = {} if rec is None else {"rec": rec}
        self.trace.record(self.conn, "write", proto="tcp", dir=self.dir, label=label, data=data, **extra)

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
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        sock.setblocking(False)
        HEARTBEAT.register(self)              # heartbeats (if on) and the recovery tick (§5.4)
        if self.bf_key is not None:
            threading.Thread(target=self._cipher, args=(self.bf_key,), name="bf-key", daemon=True).start()

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
    #
    # After init the data socket is non-blocking and every application read and write waits in select()
    # together with the rock's wake-up pipe. A suspension (from any thread) first marks the rock
    # SUSPENDED, wakes the application's I/O out of select() and waits until none is inside a system call
    # on the socket, and only then closes it: the close that sends the RST (§5.1) is never held back by a
    # thread still blocked on the socket. While the rock is suspended the application's reads and writes
    # block, as rocks' do (rs_wait_reconnect), and continue on the new connection after recovery.

    def _io_begin(self):
        """Wait until the rock is usable; returns (socket, generation) with the caller counted as a user,
        or None for NOTCONNECTED. Raises on HUNGUP and CLOSED."""
        with self.cond:
            while self.state is State.SUSPENDED:
                self.cond.wait()
            if self.state is State.NOTCONNECTED:
                return None
            if self.state is State.HUNGUP:
                raise RockHungUp("the reconnection deadline passed (HUNGUP)")
            if self.state is not State.ESTABLISHED:
                raise RockError("I/O in state %s" % self.state.value)
            self.io_users += 1
            return self.sock, self.generation

    def _io_end(self):
        with self.cond:
            self.io_users -= 1
            self.cond.notify_all()

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
        piece = bytes(data[:self.maxsnd])
        while True:
            got = self._io_begin()
            if got is None:
                raise RockError("write on a rock whose peer has closed")
            sock, gen = got
            sent, error = None, None
            try:
                _, writable, _ = select.select([self.wake_r], [sock], [])
                if writable:
                    try:
                        sent = sock.send(piece)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        error = e
                if sent:
                    # Counted before another thread can suspend: what the kernel accepted is in the ring.
                    self.stream_sent += sent
                    self.trace.record(self.conn, "write", proto="tcp", dir=self.dir, label="app",
                                      data=piece[:sent], rec=self.rec_index)
                    self.ring.append(piece[:sent])
                    self.sndseq += sent
            finally:
                self._io_end()
            if error is not None:
                self.suspend("write error: %s" % error, gen)      # §5.1: not EINTR/EAGAIN/EFAULT
                continue
            if sent:
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
        while True:
            got = self._io_begin()
            if got is None:
                # NOTCONNECTED (§6 actuallyclosed): what was read before the peer's FIN, then EOF.
                out = bytes(self.close_spill[:app_len])
                del self.close_spill[:len(out)]
                self.rcvseq += len(out)
                if not out:
                    self.closed_by_peer_seen = True
                return out
            sock, gen = got
            data, error = None, None
            try:
                readable, _, _ = select.select([sock, self.wake_r], [], [])
                if sock in readable:
                    try:
                        data = sock.recv(app_len)
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as e:
                        error = e
                    if data == b"" and reset_seen(sock):
                        # The RST's error was taken by another call (the writer's): not the peer's FIN.
                        data, error = None, ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
                if data is not None:
                    self.stream_received += len(data)
                    self.rcvseq += len(data)
            finally:
                self._io_end()
            if error is not None:
                self.suspend("read error: %s" % error, gen)       # §5.1: e.g. ECONNRESET, ETIMEDOUT
                continue
            if data is None:
                continue
            if not data:
                self.closed_by_peer_seen = True
            return data

    def close(self):
        """The application's close(): linger off first, then close, so the peer sees a FIN (§6). Closing a
        suspended rock sends nothing: its reconnection thread goes on, orphaned, as rocks' reconnection
        process does (it drops whatever connection it makes)."""
        with self.cond:
            if self.state is State.CLOSED:
                return
            was = self.state
            self.state = State.CLOSED
            self.cond.notify_all()
        HEARTBEAT.unregister(self)
        if was in (State.SUSPENDED, State.HUNGUP):
            self.trace.record(self.conn, "close", proto="tcp", how="none (suspended)", state=was.value)
            log.info("conn %d: closed while %s: nothing sent; the reconnection thread is orphaned",
                     self.conn, was.value)
            return
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 0))
        except OSError:
            pass
        self.trace.record(self.conn, "close", proto="tcp", how="fin", state=was.value)
        self.sock.close()
        for s in (self.hb_sock, self.rec_sock):
            if s is not None:
                s.close()
        for fd in (self.wake_r, self.wake_w):
            if fd is not None:
                os.close(fd)
        self.wake_r = self.wake_w = None

    # -- §4: heartbeat ---------------------------------------------------------------------------

    def heartbeat_tick(self):
        """One SIGALRM tick for this rock. Suspended with an authenticated connection waiting: finish the
        reconnection (§5.4) now, then beat on the new heartbeat socket. Established: chkrecv (one
        datagram at most), missed++, sendto 'x', then the miss limit."""
        with self.cond:
            recovered = False
            if self.state is State.SUSPENDED and self.rec_ready is not None:
                if not self._complete_reconnection():
                    return
                recovered = True
            if self.state is not State.ESTABLISHED or self.hb_sock is None:
                return
            if not recovered:                 # in that tick, chkrecv looked at the reconnection instead
                try:
                    readable, _, _ = select.select([self.hb_sock], [], [], 0)
                    if readable:
                        self.hb_sock.recv(64)     # from any source, unchecked (§4)
                        self.hb_received += 1
                        self.missed = 0
                except OSError as e:
                    self._suspend_locked("heartbeat recv error: %s" % e, self.generation, check_closed=True)
                    return
            self.missed += 1
            try:
                self.hb_sock.sendto(HB_PAYLOAD, self.peer_hb_addr)
            except OSError as e:
                self._suspend_locked("heartbeat sendto error: %s" % e, self.generation, check_closed=True)
                return
            self.hb_sent += 1
            self.trace.record(self.conn, "sendto", proto="udp", label="heartbeat",
                              src="%s:%d" % self.local_hb_addr, dst="%s:%d" % self.peer_hb_addr,
                              data=HB_PAYLOAD)
            if self.missed >= self.opts.hb_misses:
                self._suspend_locked("%d missed heartbeats" % self.missed, self.generation, check_closed=True)

    def _actually_closed(self):
        """§6 actuallyclosed(), before a suspension the heartbeat decided on: read what is there without
        blocking. EOF after it: the peer closed (not a failure); its bytes go to the application, then
        EOF. Nothing, an error, or bytes without EOF: a failure; bytes read are dropped, as rocks drops
        them (they are not counted in rcvseq, so the peer resends them)."""
        buf = bytearray()
        while True:
            try:
                chunk = self.sock.recv(65536, socket.MSG_DONTWAIT)
            except OSError:
                return False
            if not chunk:
                if reset_seen(self.sock):
                    return False
                self.close_spill += buf
                return True
            buf += chunk

    # -- §5.1: suspension ----------------------------------------------------------------------------

    def suspend(self, reason, generation=None):
        with self.cond:
            self._suspend_locked(reason, self.generation if generation is None else generation)

    def _suspend_locked(self, reason, generation, check_closed=False):
        """rs_reconnect: the first failure seen on this connection suspends it (a later report about the
        same connection, from another thread, is ignored)."""
        if self.state is not State.ESTABLISHED or generation != self.generation:
            return
        self.state = State.SUSPENDED
        os.write(self.wake_w, b"!")
        while self.io_users:
            self.cond.wait(0.5)
        try:
            while os.read(self.wake_r, 64):
                pass
        except BlockingIOError:
            pass
        if check_closed and self._actually_closed():
            # The peer closed and the application has not read the EOF yet: not a failure.
            self.state = State.NOTCONNECTED
            self.trace.record(self.conn, "not-connected", reason=reason, spill=len(self.close_spill))
            log.info("conn %d: %s, but the peer has closed (%d bytes before its FIN)", self.conn, reason,
                     len(self.close_spill))
            self._close_quietly(self.hb_sock)
            self.hb_sock = None
            HEARTBEAT.unregister(self)
            self.cond.notify_all()
            return
        self.deadline = time.monotonic() + self.opts.reconnect_deadline
        event = {"t": round(time.monotonic() - PROCESS_START, 3), "reason": reason,
                 "sndseq": self.sndseq, "rcvseq": self.rcvseq}
        self.suspensions.append(event)
        self.trace.record(self.conn, "suspend", reason=reason, sndseq=self.sndseq, rcvseq=self.rcvseq,
                          rec=self.rec_index, linger=self.opts.reset_on_close)
        log.warning("conn %d: SUSPEND (%s) at sndseq %d rcvseq %d", self.conn, reason, self.sndseq, self.rcvseq)
        self._reconnect0()

    def _reconnect0(self):
        """reconnect0: close the data socket (a RST with linger {1,0}, §5.1 and §10.3), close the heartbeat
        socket, and start the reconnection thread (1of2, authentication). The application's reads and
        writes wait."""
        self.state = State.SUSPENDED
        self.trace.record(self.conn, "close", proto="tcp", rec=self.rec_index,
                          how="rst" if self._linger_set(self.sock) else "fin", state="suspended")
        self._close_quietly(self.sock)
        self._close_quietly(self.hb_sock)
        self.hb_sock = None
        listener, self.rec_sock = self.rec_sock, None
        self.worker = threading.Thread(target=self._reconnect_worker, args=(listener,),
                                       name="reconnect-%d" % self.conn, daemon=True)
        self.worker.start()
        self.cond.notify_all()

    @staticmethod
    def _linger_set(sock):
        try:
            onoff, linger = struct.unpack("ii", sock.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
            return onoff == 1 and linger == 0
        except OSError:
            return False

    @staticmethod
    def _close_quietly(sock):
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # -- §5.2 and §5.3: the reconnection thread (rocks' reconnection process) --------------------------

    def _reconnect_worker(self, listener):
        """1of2 until a connection is picked, then authentication; a failure goes back to 1of2 with a new
        listener on the same address. The first authentication uses the 16-byte key, later ones in the
        same thread the secret's own length (§5.3: what OpenSSL 0.9.6's global key length does). The
        picked, authenticated socket waits in rec_ready for the next heartbeat tick (§5.1: the
        application process finishes the reconnection on its next SIGALRM)."""
        attempt = 0
        while True:
            attempt_1of2 = OneOfTwo(self, listener)
            result = attempt_1of2.run()
            listener = None                   # closed by 1of2; a retry binds a new one (xbind)
            if result is None:
                with self.cond:
                    if self.state is State.SUSPENDED:
                        self.state = State.HUNGUP
                        self.trace.record(self.conn, "hungup", **attempt_1of2.counts)
                        log.error("conn %d: reconnection deadline passed: HUNGUP (%s)", self.conn,
                                  attempt_1of2.counts)
                        self.cond.notify_all()
                return
            sock, record = result
            with self.cond:
                self.rec_index += 1
                index = self.rec_index
            record["rec"] = index
            self.trace.record(self.conn, "1of2", **record)
            if record.get("ack") is not None:
                self.trace.record(self.conn, "write", proto="tcp", dir=self.dir, label="1of2-ack",
                                  data=bytes([record.pop("ack")]), rec=index)
            if self.opts.auth:
                attempt += 1
                key = self.bf_key if attempt == 1 or not self.dh_secret else self.dh_secret[:BF_KEY_LEN]
                ok, why = self._authenticate(sock, key, index)
                record["auth"] = "ok" if ok else why
                self.trace.record(self.conn, "auth", rec=index, result="ok" if ok else "failed", why=why)
                if not ok:
                    log.warning("conn %d: authentication failed (%s): back to 1of2", self.conn, why)
                    self.auth_failures += 1
                    self._close_quietly(sock)
                    continue
            with self.cond:
                if self.state is not State.SUSPENDED:
                    # Closed meanwhile: rocks' orphaned reconnection process cannot hand the socket over.
                    self._close_quietly(sock)
                    return
                record["authenticated_at"] = round(time.monotonic() - PROCESS_START, 6)
                self.reconnections.append(record)
                self.rec_ready = sock
            log.info("conn %d: reconnected (%s connection %s -> %s), waiting for the next tick", self.conn,
                     record["pick"], record["local"], record["peer"])
            return

    def _authenticate(self, sock, key, index):
        """rs_mutual_auth (§5.3), both sides alike: write u32be 40 and Blowfish-ECB(32 random bytes +
        padding); read the peer's (each read waits at most 1 s); write u32be length and the peer's
        decrypted challenge; read the peer's reply; accept only 32 bytes equal to ours. Lengths are
        checked before anything is read (0 < length <= 128; rocks' signed check lets a negative one
        overflow its stack, and a zero one trips an assert)."""
        cipher = self._cipher(key)
        mine = secrets.token_bytes(AUTH_MSGLEN)
        challenge = blowfish.ecb_encrypt(cipher, mine)
        try:
            self._write(struct.pack(">I", len(challenge)), "challenge-len", sock, index)
            self._write(challenge, "challenge", sock, index)
            n = self._auth_length(sock, "challenge")
            peer_challenge = read_exact_timeout(sock, n, AUTH_READ_TIMEOUT, "the peer's challenge")
            try:
                answer = blowfish.ecb_decrypt(cipher, peer_challenge)
            except ValueError as e:
                return False, "the peer's challenge does not decrypt: %s" % e
            self._write(struct.pack(">I", len(answer)), "response-len", sock, index)
            self._write(answer, "response", sock, index)
            n = self._auth_length(sock, "response")
            reply = read_exact_timeout(sock, n, AUTH_READ_TIMEOUT, "the peer's response")
        except (OSError, RockError) as e:
            return False, str(e)
        if reply != mine:
            return False, "wrong response (%d bytes)" % len(reply)
        return True, None

    def _cipher(self, key):
        """The Blowfish key schedule for key, cached (in Python it takes tens of milliseconds; rocks, in C,
        writes its challenge within a millisecond of 1of2)."""
        cipher = self.ciphers.get(key)
        if cipher is None:
            cipher = self.ciphers[key] = blowfish.Blowfish(key)
        return cipher

    @staticmethod
    def _auth_length(sock, what):
        n = struct.unpack(">i", read_exact_timeout(sock, 4, AUTH_READ_TIMEOUT, "the %s length" % what))[0]
        if not 0 < n <= AUTH_BUFLEN:
            raise RockError("%s length %d outside 1..%d" % (what, n, AUTH_BUFLEN))
        return n

    # -- §5.4: recovery, in the heartbeat tick ---------------------------------------------------------

    def _complete_reconnection(self):
        """rs_rec_complete, with the lock held (the application waits): the new heartbeat address, the new
        reconnection address (each: write ours, read the peer's), linger {1,0} on the new socket, then
        rcvseq, the buffer sizes and go-back-N (rs_inflight_recover). A failure closes the new socket and
        goes back to 1of2 (the deadline is not renewed); a peer rcvseq outside the ring or changed sizes
        abort the process, as rocks' assert()s do."""
        sock, self.rec_ready = self.rec_ready, None
        index = self.rec_index
        record = self.reconnections[-1]
        new_hb = new_rec = peer_rec = None
        rec_sent = False
        timeout = self.opts.recovery_timeout or None
        try:
            sock.settimeout(timeout)
            local_ip = sock.getsockname()[0]
            self._maybe_break_recovery("start")
            if self.opts.hb:
                new_hb = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                new_hb.bind((local_ip, 0))
                self._write(sockaddr_in_bytes(*new_hb.getsockname()), "hb-addr", sock, index)
                peer_hb = parse_sockaddr_in(self._recv_exact(sock, 16, "the heartbeat address"))[:2]
                self._maybe_break_recovery("hb-addr")
            new_rec = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            new_rec.setblocking(False)
            new_rec.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            new_rec.bind((local_ip, 0))
            self._write(sockaddr_in_bytes(*new_rec.getsockname()), "rec-addr", sock, index)
            rec_sent = True
            peer_rec = parse_sockaddr_in(self._recv_exact(sock, 16, "the reconnection address"))[:2]
            self._maybe_break_recovery("rec-addr")
            if self.opts.reset_on_close:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            resend = b""
            if self.opts.flight:
                self._write(struct.pack(">I", self.rcvseq & 0xFFFFFFFF), "rcvseq", sock, index)
                wire_rseq = struct.unpack(">I", self._recv_exact(sock, 4, "the peer's rcvseq"))[0]
                peer_rcvseq = self.sndseq - ((self.sndseq - wire_rseq) & 0xFFFFFFFF)
                if not self.ring.seq <= peer_rcvseq <= self.ring.seq + len(self.ring.buf):
                    fatal("conn %d: the peer's rcvseq %d is outside the ring [%d, %d] (rocks asserts)"
                          % (self.conn, peer_rcvseq, self.ring.seq, self.ring.seq + len(self.ring.buf)))
                self.ring.discard_to(peer_rcvseq)
                self._maybe_break_recovery("rcvseq")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, RS_SOCKBUF)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RS_SOCKBUF)
                sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                self._write(struct.pack(">I", sndbuf), "sndbuf", sock, index)
                self._write(struct.pack(">I", rcvbuf), "rcvbuf", sock, index)
                peer_snd, peer_rcv = struct.unpack(">II", self._recv_exact(sock, 8, "the buffer sizes"))
                if (sndbuf + peer_rcv, rcvbuf + peer_snd) != (self.maxsnd, self.maxrcv):
                    fatal("conn %d: buffer sizes changed at reconnection (maxsnd %d -> %d, maxrcv %d -> %d; "
                          "rocks asserts)" % (self.conn, self.maxsnd, sndbuf + peer_rcv, self.maxrcv,
                                              rcvbuf + peer_snd))
                resend = self.ring.since(peer_rcvseq)
                if resend:
                    self._write(resend, "resend", sock, index)       # one blocking write (go-back-N)
                record.update({"rcvseq_sent": self.rcvseq, "peer_rcvseq": peer_rcvseq,
                               "resent_from": peer_rcvseq, "resent_bytes": len(resend), "sndseq": self.sndseq})
        except (OSError, RockError) as e:
            log.warning("conn %d: reconnection completion failed (%s): back to 1of2", self.conn, e)
            record["recovery"] = "failed: %s" % e
            self.trace.record(self.conn, "recovery-failed", rec=index, reason=str(e))
            self._close_quietly(new_hb)
            # rs_addr_exchange updates the addresses as it goes: once ours was sent, the peer may
            # reconnect to it, so the next 1of2 listens there; what the peer sent is where we connect.
            if rec_sent:
                self._close_quietly(self.rec_sock)
                self.rec_sock, self.local_rec_addr = new_rec, new_rec.getsockname()
            else:
                self._close_quietly(new_rec)
            if peer_rec is not None:
                self.peer_rec_addr = peer_rec
            self.sock = sock
            self._reconnect0()
            return False
        sock.settimeout(None)
        sock.setblocking(False)
        self._close_quietly(self.rec_sock)
        self.sock = sock
        self.rec_sock, self.local_rec_addr, self.peer_rec_addr = new_rec, new_rec.getsockname(), peer_rec
        if self.opts.hb:
            self.hb_sock, self.local_hb_addr, self.peer_hb_addr = new_hb, new_hb.getsockname(), peer_hb
        self.generation += 1
        self.missed = 0
        self.state = State.ESTABLISHED
        record.update({"recovery": "ok", "recovered_at": round(time.monotonic() - PROCESS_START, 6),
                       "local_rec_addr": "%s:%d" % self.local_rec_addr, "peer_rec_addr": "%s:%d" % peer_rec,
                       "local_hb_addr": ("%s:%d" % self.local_hb_addr) if self.opts.hb else None,
                       "peer_hb_addr": ("%s:%d" % self.peer_hb_addr) if self.opts.hb else None})
        self.trace.record(self.conn, "recovered", **{k: v for k, v in record.items() if k != "auth"})
        log.info("conn %d: RECOVERED on %s -> %s (sent rcvseq %d; peer rcvseq %s; resent %s bytes)", self.conn,
                 record["local"], record["peer"], self.rcvseq, record.get("peer_rcvseq"),
                 record.get("resent_bytes"))
        self.cond.notify_all()
        return True

    def _maybe_break_recovery(self, stage):
        """--fail-recovery STAGE (a test knob, not rocks behaviour): the first recovery of this rock fails at
        STAGE as if the peer had gone away there (a read error), and takes the failure path rocks takes: the
        new connection is closed and 1of2 starts again with the same deadline."""
        if self.opts.fail_recovery == stage and self.recoveries_broken == 0:
            self.recoveries_broken += 1
            raise RockError("--fail-recovery %s: recovery broken off on purpose" % stage)

    def _recv_exact(self, sock, n, what):
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise RockError("EOF while reading %s (%d of %d bytes)" % (what, len(buf), n))
            buf += chunk
        return bytes(buf)

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
            "reconnections": self.reconnections,
            "recoveries": sum(1 for r in self.reconnections if r.get("recovery") == "ok"),
            "auth_failures": self.auth_failures,
            "recoveries_broken": self.recoveries_broken,
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
# §5.2: one connection out of two attempts ("1of2")

class OneOfTwo:
    """rs_1of2 for one suspended rock, in its reconnection thread. Both ends do this at once:

      * passive: listen(1) on the reconnection socket bound at init (or, on a retry, a new socket bound
        to the same address); one connection is accepted at most;
      * active: a non-blocking connect to the peer's reconnection address from a new, unbound socket
        (it picks up whatever source address the host has now). A connect that fails at once is
        retried after the next select() (at most 1 s); one refused later (the RST of a bound,
        non-listening port) is retried at once: the SYN storm. A connect still pending when select()
        times out (1 s) is dropped and retried on a new socket ("maybe we have a new IP address"). A
        connection to itself is dropped;
      * the original role decides. SERVER: the first connection established (its active one first if
        both are) gets one byte (any value) and is picked; the other is closed. CLIENT: writes nothing,
        waits until a connection is readable (active first, then passive) and reads one byte: a byte
        picks it and closes the other; EOF or an error closes that one and the wait goes on.

    The listener is closed at the end; the picked socket is made blocking again. run() returns (socket,
    record) or None when the reconnection deadline passes."""

    def __init__(self, rock, listener):
        self.rock = rock
        self.server = rock.role == "server"
        self.ls = listener
        self.ss = self.cs = self.ns = None
        self.counts = {"attempts": 0, "refused": 0, "timeouts": 0, "accepted": 0, "connected": 0,
                       "self_connected": 0, "dropped": 0}
        self.ack = None
        self.which = None

    def run(self):
        rock = self.rock
        start = time.monotonic()
        if self.ls is not None:
            try:
                self.ls.listen(1)
            except OSError:
                Rock._close_quietly(self.ls)
                self.ls = None
        pick = None
        while pick is None:
            if time.monotonic() >= rock.deadline:
                for s in (self.ls, self.ss, self.ns, self.cs):
                    Rock._close_quietly(s)
                return None
            if self.ss is None and self.ls is None:
                self.ls = self._xbind()
            if self.cs is None and self.ns is None:
                self.ns = self._xconnect()
            rl, wl = [], []
            if self.cs is None and self.ns is not None:
                rl.append(self.ns)
                wl.append(self.ns)
            if self.ss is None and self.ls is not None:
                rl.append(self.ls)
            if not self.server:
                rl += [s for s in (self.cs, self.ss) if s is not None]
            readable, writable, _ = select.select(rl, wl, [], ONEOF2_POLL)
            if not readable and not writable:
                if self.cs is None and self.ns is not None:
                    Rock._close_quietly(self.ns)
                    self.ns = None
                    self.counts["timeouts"] += 1
                continue
            if self.ss is None and self.ls is not None and self.ls in readable:
                try:
                    self.ss, _ = self.ls.accept()
                    self.counts["accepted"] += 1
                except OSError:
                    self.ss = None
            if self.cs is None and self.ns is not None and (self.ns in readable or self.ns in writable):
                ns, self.ns = self.ns, None
                try:
                    peer = ns.getpeername()
                except OSError:
                    Rock._close_quietly(ns)           # refused: connect again at once
                    self.counts["refused"] += 1
                else:
                    if ns.getsockname() == peer:
                        Rock._close_quietly(ns)
                        self.counts["self_connected"] += 1
                    else:
                        self.cs = ns
                        self.counts["connected"] += 1
            # Both may have come in the same round: the server then picks its active one (§5.5).
            if self.ss is not None or self.cs is not None:
                pick = self._server_pick() if self.server else self._client_pick()
        Rock._close_quietly(self.ls)
        Rock._close_quietly(self.ns)          # a connect still pending: rocks' reconnection process exits
        pick.setblocking(True)
        record = {"pick": self.which, "local": "%s:%d" % pick.getsockname(), "peer": "%s:%d" % pick.getpeername(),
                  "role": rock.role, "seconds": round(time.monotonic() - start, 6),
                  "picked_at": round(time.monotonic() - PROCESS_START, 6),
                  ("ack" if self.server else "ack_received"): self.ack}
        record.update(self.counts)
        return pick, record

    def _xbind(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(self.rock.local_rec_addr)
            s.setblocking(False)
            s.listen(1)
            return s
        except OSError:
            s.close()
            return None

    def _xconnect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        self.counts["attempts"] += 1
        try:
            if self.rock.opts.reconnect_from:
                s.bind((self.rock.opts.reconnect_from, 0))
            err = s.connect_ex(self.rock.peer_rec_addr)
        except OSError as e:
            err = e.errno
        if err in (0, errno.EINPROGRESS):
            return s
        s.close()
        self.counts["refused"] += 1
        return None

    def _server_pick(self):
        byte = secrets.randbelow(256)         # rocks writes an uninitialised stack byte
        for which in ("active", "passive"):
            sock = self.cs if which == "active" else self.ss
            if sock is None:
                continue
            try:
                sock.setblocking(True)
                sock.sendall(bytes([byte]))
            except OSError:
                Rock._close_quietly(sock)
                self._forget(which)
                continue
            Rock._close_quietly(self.ss if which == "active" else self.cs)
            self.ack, self.which = byte, which
            return sock
        return None

    def _client_pick(self):
        ready = [s for s in (self.cs, self.ss) if s is not None]
        readable, _, _ = select.select(ready, [], [], 0)
        for which in ("active", "passive"):
            sock = self.cs if which == "active" else self.ss
            if sock is None or sock not in readable:
                continue
            try:
                byte = sock.recv(1)
            except OSError:
                byte = b""
            if not byte:
                Rock._close_quietly(sock)
                self._forget(which)
                self.counts["dropped"] += 1
                continue
            Rock._close_quietly(self.ss if which == "active" else self.cs)
            self.ack, self.which = byte[0], which
            return sock
        return None

    def _forget(self, which):
        if which == "active":
            self.cs = None
        else:
            self.ss = None


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
            paused = False
            while limit is None or totals["received"] < limit:
                want = a.read_size if limit is None else min(a.read_size, limit - totals["received"])
                data = rock.app_read(want)
                if not data:
                    break
                totals["received"] += len(data)
                if a.trace_reads:
                    rock.trace.record(rock.conn, "read", proto="tcp", len=len(data), total=totals["received"],
                                      wall=round(time.time(), 6))
                recv_hash.update(data)
                if out:
                    out.write(data)
                if a.echo:
                    self._write_all(rock, data, sent_hash, totals)
                if a.read_interval:
                    time.sleep(a.read_interval)
                if a.read_pause and not paused and totals["received"] >= a.read_pause[0]:
                    paused = True
                    rock.trace.record(rock.conn, "read-pause", received=totals["received"], seconds=a.read_pause[1])
                    log.info("conn %d: the application stops reading for %.1f s after %d bytes", rock.conn,
                             a.read_pause[1], totals["received"])
                    time.sleep(a.read_pause[1])
                    rock.trace.record(rock.conn, "read-resume", received=totals["received"])
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
            "recoveries": sum(1 for r in rock.reconnections if r.get("recovery") == "ok"),
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
                       hb_period=args.hb_period, hb_misses=args.hb_misses, init_pace=args.init_pace,
                       reconnect_deadline=args.reconnect_deadline, reconnect_from=args.reconnect_from,
                       recovery_timeout=args.recovery_timeout, fail_recovery=args.fail_recovery)
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
        g.add_argument("--read-interval", type=float, default=0.0, metavar="S",
                       help="pause S seconds after each application read (a slow reader: its kernel holds "
                            "bytes it acknowledged and the application has not read)")
        g.add_argument("--read-pause", type=parse_pause, default=None, metavar="N:S",
                       help="once the application has read N bytes (K, M suffixes), it stops reading for S seconds "
                            "(once; traced as a read-pause event): its kernel fills with bytes it acknowledged")
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
        r.add_argument("--reconnect-deadline", type=float, default=REC_DEADLINE, metavar="S",
                       help="give up reconnecting after S seconds: the rock hangs up (3 days)")
        r.add_argument("--reconnect-from", metavar="ADDR",
                       help="bind the active reconnection sockets to ADDR (tests: a host that moved)")
        r.add_argument("--recovery-timeout", type=float, default=0.0, metavar="S",
                       help="give up a recovery whose peer is silent S seconds (0: wait, as rocks)")
        r.add_argument("--fail-recovery", choices=("start", "hb-addr", "rec-addr", "rcvseq"), default=None,
                       metavar="STAGE",
                       help="tests, not rocks behaviour: break off the rock's first recovery at STAGE (start: before "
                            "any recovery message; hb-addr, rec-addr, rcvseq: once that exchange is through) as a "
                            "failed read would, then reconnect again")
        o = sp.add_argument_group("output")
        o.add_argument("--trace", metavar="FILE", help="JSON Lines trace of every write and datagram sent")
        o.add_argument("--trace-max-hex", type=int, default=None, metavar="N",
                       help="keep at most N bytes of each traced write (default: all)")
        o.add_argument("--trace-reads", action="store_true",
                       help="also trace every application read that returned bytes, with the wall-clock time")
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


def parse_pause(text):
    """--read-pause N:S: N bytes (K, M, G suffixes), S seconds."""
    size, sep, seconds = str(text).partition(":")
    if not sep:
        raise argparse.ArgumentTypeError("expected N:S (bytes:seconds), got %r" % text)
    return parse_size(size), float(seconds)


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
    faulthandler.register(signal.SIGUSR1, all_threads=True)     # kill -USR1: every thread's stack
    role = "client" if args.command == "connect" else "server"
    trace = Trace(args.trace, role, args.trace_max_hex)
    report = Report(args.stats, role)
    ABORT_HOOKS.append(lambda reason: trace.record(0, "abort", reason=reason))
    ABORT_HOOKS.append(lambda reason: report.write())
    ABORT_HOOKS.append(lambda reason: trace.close())
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
