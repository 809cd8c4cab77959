#!/usr/bin/env bash
# test_sockdiag_adapter.sh: SocketDiagnostics (Sources/RackDaemon/Kernel/SocketDiagnostics.swift and the
# decoder Sources/RackDaemon/Decoding/InetDiagMessage.swift) against the kernel, through rackd-kernel-probe.
# On the test bed (testbed/netns.sh: A and B, routed through R): IPv4, IPv6 and IPv4-on-a-dual-stack-listener
# connections with data both ways; checks every snapshot field against `ss -tin` (endpoints, state,
# bytes_acked, bytes_received, unacked, lastack, lastrcv); filtering by flow; a black-holed flow (unacked
# segments, growing lastack); FIN_WAIT2/CLOSE_WAIT; no LISTEN sockets.
# Needs root and a Swift toolchain; touches nothing outside its own namespaces.
# timeout: 900
set -euo pipefail
export LC_ALL=C

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/probe.sh
source "$here/lib/probe.sh"

if ((EUID != 0)); then
    tb_skip "needs root (network namespaces)"
fi
if ! command -v swift >/dev/null || ! command -v python3 >/dev/null || ! command -v ss >/dev/null; then
    tb_skip "needs swift, python3 and ss"
fi

failures=0
section() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok   %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$*"
    failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# MARK: test bed and probe

section "test bed"
tb_setup
A=$TB_A
B=$TB_B
work=$TB_DIR
A4=$TB_A_ADDR4 A6=$TB_A_ADDR6 B4=$TB_B_ADDR4 B6=$TB_B_ADDR6
tb_wait_for "tb_ping '$A' '$B6' 1 1 >/dev/null" 10

section "build the probe"
probe_build 'Kernel/SocketDiagnostics|Decoding/InetDiagMessage|Decoding/Netlink[A-Za-z]*|System/NetlinkSocket[+A-Za-z]*'
H=$PROBE

# Servers in B: each accepts, sends REPLY bytes once it has READ bytes, then holds the socket. A 7003 is a
# dual-stack IPv6 listener, so its IPv4 connection is a v4-mapped IPv6 socket.
cat >"$work/server.py" <<'EOF'
import socket, sys, threading, time
family, host, port, read, reply = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_INET if family == "4" else socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if family == "6dual":
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind((host, port))
s.listen(16)
def serve(c):
    got = 0
    while got < read:
        data = c.recv(65536)
        if not data: break
        got += len(data)
    c.sendall(b"r" * reply)
    time.sleep(600)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
# Client in A: connects, sends SEND bytes, reads REPLY bytes, optionally half-closes, then holds the socket.
cat >"$work/client.py" <<'EOF'
import socket, sys, time
host, port, send, reply, half = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
c = socket.create_connection((host, port))
c.sendall(b"s" * send)
got = 0
while got < reply:
    got += len(c.recv(65536))
if half:
    c.shutdown(socket.SHUT_WR)
print("ready", flush=True)
time.sleep(600)
EOF
tb_bg "$B" s1 python3 "$work/server.py" 4 "$B4" 7001 3000 5000
tb_bg "$B" s2 python3 "$work/server.py" 6 "$B6" 7002 4000 777
tb_bg "$B" s3 python3 "$work/server.py" 6dual :: 7003 1234 4321
tb_bg "$B" s4 python3 "$work/server.py" 6 "$B6" 7004 999 12345
tb_bg "$B" s5 python3 "$work/server.py" 4 "$B4" 7005 10 10
for port in 7001 7002 7003 7004 7005; do tb_wait_port "$B" "$port"; done
tb_bg "$A" c1 python3 "$work/client.py" "$B4" 7001 3000 5000 0
tb_bg "$A" c2 python3 "$work/client.py" "$B6" 7002 4000 777 0
tb_bg "$A" c3 python3 "$work/client.py" "$B4" 7003 1234 4321 0
tb_bg "$A" c4 python3 "$work/client.py" "$B6" 7004 999 12345 1
tb_bg "$A" c5 python3 "$work/client.py" "$B4" 7005 10 10 0
for c in c1 c2 c3 c4 c5; do tb_wait_for "grep -q ready '$work/$c.log'" 10; done
sleep 1

# compare NS HARNESS_OUTPUT SS_OUTPUT: every non-LISTEN, non-TIME-WAIT socket ss shows has a snapshot
# with the same endpoints (v4-mapped shown as IPv4), state and counters; there are no other snapshots.
cat >"$work/compare.py" <<'EOF'
import re, sys
states = {"ESTAB": "established", "SYN-SENT": "synSent", "SYN-RECV": "synReceived", "FIN-WAIT-1": "finWait1",
          "FIN-WAIT-2": "finWait2", "CLOSE-WAIT": "closeWait", "LAST-ACK": "lastAck", "CLOSING": "closing"}
def norm(ep):
    return re.sub(r"^\[::ffff:([0-9.]+)\]", r"\1", ep)
def field(info, name):
    m = re.search(r"(?:^|\s)" + name + r":(\d+)", info)
    return int(m.group(1)) if m else 0
harness = {}
for line in open(sys.argv[1]):
    p = line.split()
    harness[(p[0], p[1])] = p
lines = open(sys.argv[2]).read().splitlines()
ok = True
seen = set()
i = 0
while i < len(lines):
    head = lines[i].split()
    info = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith(("\t", " ")) else ""
    i += 2 if info else 1
    if head[0] in ("LISTEN", "TIME-WAIT", "UNCONN"):
        continue
    key = (norm(head[3]), norm(head[4]))
    seen.add(key)
    h = harness.get(key)
    if h is None:
        print("  missing snapshot for", key); ok = False; continue
    want = {"state": states[head[0]], "acked": field(info, "bytes_acked"), "received": field(info, "bytes_received"),
            "unacked": field(info, "unacked"), "lastack": field(info, "lastack"), "lastrcv": field(info, "lastrcv")}
    got = {"state": h[2], "acked": int(h[3]), "received": int(h[4]), "unacked": int(h[5]),
           "lastack": int(h[6]), "lastrcv": int(h[7])}
    bad = [k for k in ("state", "acked", "received", "unacked") if want[k] != got[k]]
    # ss runs after the harness: its times are a little larger.
    bad += [k for k in ("lastack", "lastrcv") if not (0 <= want[k] - got[k] <= 500)]
    print("  %-44s %s" % (" ".join(key), " ".join("%s=%s" % (k, got[k]) for k in got)) + ("" if not bad else
          "   MISMATCH %s, ss says %s" % (bad, {k: want[k] for k in bad})))
    ok = ok and not bad
for key in harness:
    if key not in seen:
        print("  extra snapshot", key); ok = False
sys.exit(0 if ok else 1)
EOF

# compare_ns NS: run the harness and ss in NS and compare.
compare_ns() {
    tb_exec "$1" "$H" sockets >"$work/h.$1"
    tb_exec "$1" ss -Htain >"$work/ss.$1"
    python3 "$work/compare.py" "$work/h.$1" "$work/ss.$1"
}

# MARK: tests

section "snapshots match ss -tin"
check "A (client side): 5 sockets, all fields match ss" compare_ns "$A"
check "B (server side): 5 sockets, all fields match ss" compare_ns "$B"
check "A reports 5 sockets" test "$(wc -l <"$work/h.$A")" = 5
check "B reports no LISTEN socket (5 listeners, 5 connections)" test "$(wc -l <"$work/h.$B")" = 5

has() { grep -Eq -- "$2" "$work/h.$1"; }
section "endpoints, families, counters"
# pattern ADDRESS: ADDRESS as an extended regular expression.
pattern() { sed 's/[].[]/\\&/g' <<<"$1"; }
p4a=$(pattern "$A4") p4b=$(pattern "$B4") p6a=$(pattern "[$A6]") p6b=$(pattern "[$B6]")
check "A IPv4: 3000 sent (acked 3001 with the SYN), 5000 received" has "$A" "^$p4a:[0-9]+ $p4b:7001 established 3001 5000 0 "
check "A IPv6: 4000 sent, 777 received" has "$A" "^$p6a:[0-9]+ $p6b:7002 established 4001 777 0 "
check "B v4-mapped socket reported with IPv4 endpoints" has "$B" "^$p4b:7003 $p4a:[0-9]+ established 4321 1234 0 "
check "A FIN_WAIT2 after shutdown(SHUT_WR) (acked counts SYN and FIN)" has "$A" "^$p6a:[0-9]+ $p6b:7004 finWait2 1001 12345 0 "
check "B CLOSE_WAIT (received counts the FIN)" has "$B" "^$p6b:7004 $p6a:[0-9]+ closeWait 12345 1000 0 "
check "uid and inode are filled in" has "$A" ' 0 [1-9][0-9]*$'

section "snapshot(of:)"
v4=$(awk -v r="$B4:7001" '$2 == r {print $1}' "$work/h.$A")
v6=$(awk -v r="[$B6]:7002" '$2 == r {print $1}' "$work/h.$A")
mapped=$(awk -v l="$B4:7003" '$1 == l {print $2}' "$work/h.$B")
tb_exec "$A" "$H" sockets-of "$v4" "$B4:7001" "$v6" "[$B6]:7002" "$A4:1" "$B4:2" "[$A6]:3" "[$B6]:4" >"$work/f.$A"
check "A: the IPv4 and IPv6 flows are found, the two unknown ones are not" test "$(wc -l <"$work/f.$A")" = 2
check "A: found flows are the asked ones" grep -qF "$v4 $B4:7001 " "$work/f.$A"
tb_exec "$B" "$H" sockets-of "$B4:7003" "$mapped" >"$work/f.$B"
check "B: an IPv4 flow on a v4-mapped socket is found by its IPv4 key" grep -qF "$B4:7003 $mapped established" "$work/f.$B"
tb_exec "$B" "$H" sockets-of "$A4:9" "$B4:9" >"$work/f0.$B"
check "B: a flow without a socket has no entry" test ! -s "$work/f0.$B"

section "a black-holed flow"
# A sends 100 bytes, which B acknowledges; then B drops everything for the port and A sends 20000 more.
cat >"$work/sender.py" <<'EOF'
import os, socket, sys, time
c = socket.create_connection((sys.argv[1], 7006))
c.sendall(b"x" * 100)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.05)
c.sendall(b"y" * 20000)
time.sleep(600)
EOF
tb_bg "$B" s6 python3 "$work/server.py" 4 "$B4" 7006 999999 0
tb_wait_port "$B" 7006
tb_bg "$A" sender python3 "$work/sender.py" "$B4" "$work/go"
sleep 1
tb_exec "$B" nft add table inet sdtest
tb_exec "$B" nft add chain inet sdtest input '{ type filter hook input priority 0; policy accept; }'
tb_exec "$B" nft add rule inet sdtest input tcp dport 7006 drop
touch "$work/go"
sleep 3
check "A: the black-holed flow's fields match ss (unacked, lastack)" compare_ns "$A"
check "A: it has unacked segments" awk -v r="$B4:7006" '$2 == r && $6 > 0 {found = 1} END {exit !found}' "$work/h.$A"
first=$(awk -v r="$B4:7006" '$2 == r {print $7}' "$work/h.$A")
sleep 1
tb_exec "$A" "$H" sockets >"$work/h2.$A"
second=$(awk -v r="$B4:7006" '$2 == r {print $7}' "$work/h2.$A")
check "A: its lastAckReceived grows ($first ms, then $second ms)" test "$second" -ge $((first + 900))

section "result"
if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
