#!/usr/bin/env bash
# test_sockdiag_adapter.sh: SocketDiagnostics (Sources/rackd/Kernel/SocketDiagnostics.swift) against the kernel.
# Builds a throwaway harness package (the adapter, SystemError and the few RackEngine types it needs, copied
# into a temporary directory that is deleted on exit), then in two network namespaces joined by a veth:
# IPv4, IPv6 and IPv4-on-a-dual-stack-listener connections with data both ways; checks every snapshot field
# against `ss -tin` (endpoints, state, bytes_acked, bytes_received, unacked, lastack, lastrcv); filtering by
# flow; a black-holed flow (unacked segments, growing lastack); FIN_WAIT2/CLOSE_WAIT; no LISTEN sockets.
# Needs root and a Swift toolchain; touches nothing outside its own namespaces.
# timeout: 900
set -euo pipefail
export LC_ALL=C

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -P -- "$here/.." && pwd)

if ((EUID != 0)); then
    echo "SKIP: needs root (network namespaces)"
    exit 77
fi
if ! command -v swift >/dev/null || ! command -v python3 >/dev/null || ! command -v ss >/dev/null; then
    echo "SKIP: needs swift, python3 and ss"
    exit 77
fi

prefix=${TB_NS_PREFIX:-rk}sd$$
A=${prefix}a
B=${prefix}b
work=$(mktemp -d /tmp/rackd-sockdiag.XXXXXX)
failures=0

cleanup() {
    local ns pid
    trap - EXIT INT TERM
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    sleep 0.2
    for ns in "$A" "$B"; do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf -- "$work"
    # SwiftPM's lock files for the harness build, named after its path
    rm -f -- "${TMPDIR:-/tmp}/$(tr / _ <<<"$work/h/.build")"*.lock
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

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

# MARK: harness

section "build the harness"
# shellcheck source=integration-tests/lib/kernel_harness.sh
source "$here/lib/kernel_harness.sh"
kernel_harness_scaffold "$work/h" "$repo"
cat >"$work/h/Sources/harness/main.swift" <<'EOF'
// diag: every snapshot; flows LOCAL REMOTE...: snapshot(of:). One line per socket.
import Glibc
import RackEngine

func milliseconds(_ d: Duration) -> Int64 { d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000 }

func line(_ s: SocketSnapshot) -> String {
    "\(s.flow.local) \(s.flow.remote) \(s.state) \(s.bytesAcked) \(s.bytesReceived) \(s.unackedSegments) "
        + "\(milliseconds(s.lastAckReceived)) \(milliseconds(s.lastDataReceived)) \(s.uid) \(s.inode)"
}

func endpoint(_ text: String) -> TCPEndpoint {
    let colon = text.lastIndex(of: ":")!
    var host = String(text[..<colon])
    let port = UInt16(text[text.index(after: colon)...])!
    if host.hasPrefix("[") { host = String(host.dropFirst().dropLast()) }
    if host.contains(":") {
        var raw = in6_addr()
        precondition(inet_pton(AF_INET6, host, &raw) == 1)
        let bytes = withUnsafeBytes(of: raw) { Array($0) }
        let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return TCPEndpoint(address: .v6(IPv6Address(high: high, low: low)), port: port)
    }
    let p = host.split(separator: ".").map { UInt8($0)! }
    return TCPEndpoint(address: .v4(IPv4Address(p[0], p[1], p[2], p[3])), port: port)
}

let arguments = CommandLine.arguments
do {
    let diagnostics = try SocketDiagnostics()
    if arguments[1] == "diag" {
        for s in try diagnostics.snapshot() { print(line(s)) }
    } else {
        var flows = Set<FlowKey>()
        for i in stride(from: 2, to: arguments.count - 1, by: 2) {
            flows.insert(FlowKey(local: endpoint(arguments[i]), remote: endpoint(arguments[i + 1])))
        }
        let found = try diagnostics.snapshot(of: flows)
        for (flow, s) in found {
            precondition(flow == s.flow)
            print(line(s))
        }
    }
} catch {
    print("ERROR \(error)")
    exit(1)
}
EOF
kernel_harness_build "$work/h" SocketDiagnostics

# MARK: topology

section "namespaces $A, $B"
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.77.0.1/24 dev va
ip -n "$B" addr add 10.77.0.2/24 dev vb
ip -n "$A" addr add fd00:77::1/64 dev va nodad
ip -n "$B" addr add fd00:77::2/64 dev vb nodad
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
ip -n "$A" link set va up
ip -n "$B" link set vb up
for _ in $(seq 50); do
    ip netns exec "$A" ping -c1 -W1 -q fd00:77::2 >/dev/null 2>&1 && break
    sleep 0.1
done

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
ip netns exec "$B" python3 "$work/server.py" 4 10.77.0.2 7001 3000 5000 &
ip netns exec "$B" python3 "$work/server.py" 6 fd00:77::2 7002 4000 777 &
ip netns exec "$B" python3 "$work/server.py" 6dual :: 7003 1234 4321 &
ip netns exec "$B" python3 "$work/server.py" 6 fd00:77::2 7004 999 12345 &
ip netns exec "$B" python3 "$work/server.py" 4 10.77.0.2 7005 10 10 &
for port in 7001 7002 7003 7004 7005; do
    for _ in $(seq 50); do
        ip netns exec "$B" ss -Hltn "sport = $port" | grep -q . && break
        sleep 0.1
    done
done
ip netns exec "$A" python3 "$work/client.py" 10.77.0.2 7001 3000 5000 0 >"$work/c1" &
ip netns exec "$A" python3 "$work/client.py" fd00:77::2 7002 4000 777 0 >"$work/c2" &
ip netns exec "$A" python3 "$work/client.py" 10.77.0.2 7003 1234 4321 0 >"$work/c3" &
ip netns exec "$A" python3 "$work/client.py" fd00:77::2 7004 999 12345 1 >"$work/c4" &
ip netns exec "$A" python3 "$work/client.py" 10.77.0.2 7005 10 10 0 >"$work/c5" &
for c in c1 c2 c3 c4 c5; do
    for _ in $(seq 100); do
        grep -q ready "$work/$c" 2>/dev/null && break
        sleep 0.1
    done
done
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
    ip netns exec "$1" "$H" diag >"$work/h.$1"
    ip netns exec "$1" ss -Htain >"$work/ss.$1"
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
check "A IPv4: 3000 sent (acked 3001 with the SYN), 5000 received" has "$A" '^10\.77\.0\.1:[0-9]+ 10\.77\.0\.2:7001 established 3001 5000 0 '
check "A IPv6: 4000 sent, 777 received" has "$A" '^\[fd00:77::1\]:[0-9]+ \[fd00:77::2\]:7002 established 4001 777 0 '
check "B v4-mapped socket reported with IPv4 endpoints" has "$B" '^10\.77\.0\.2:7003 10\.77\.0\.1:[0-9]+ established 4321 1234 0 '
check "A FIN_WAIT2 after shutdown(SHUT_WR) (acked counts SYN and FIN)" has "$A" '^\[fd00:77::1\]:[0-9]+ \[fd00:77::2\]:7004 finWait2 1001 12345 0 '
check "B CLOSE_WAIT (received counts the FIN)" has "$B" '^\[fd00:77::2\]:7004 \[fd00:77::1\]:[0-9]+ closeWait 12345 1000 0 '
check "uid and inode are filled in" has "$A" ' 0 [1-9][0-9]*$'

section "snapshot(of:)"
v4=$(awk '$2 == "10.77.0.2:7001" {print $1}' "$work/h.$A")
v6=$(awk '$2 == "[fd00:77::2]:7002" {print $1}' "$work/h.$A")
mapped=$(awk '$1 == "10.77.0.2:7003" {print $2}' "$work/h.$B")
ip netns exec "$A" "$H" flows "$v4" 10.77.0.2:7001 "$v6" "[fd00:77::2]:7002" 10.77.0.1:1 10.77.0.2:2 \
    "[fd00:77::1]:3" "[fd00:77::2]:4" >"$work/f.$A"
check "A: the IPv4 and IPv6 flows are found, the two unknown ones are not" test "$(wc -l <"$work/f.$A")" = 2
check "A: found flows are the asked ones" grep -q "^$v4 10.77.0.2:7001 " "$work/f.$A"
ip netns exec "$B" "$H" flows 10.77.0.2:7003 "$mapped" >"$work/f.$B"
check "B: an IPv4 flow on a v4-mapped socket is found by its IPv4 key" grep -q "^10.77.0.2:7003 $mapped established" "$work/f.$B"
ip netns exec "$B" "$H" flows "10.77.0.1:9" "10.77.0.2:9" >"$work/f0.$B"
check "B: a flow without a socket has no entry" test ! -s "$work/f0.$B"

section "a black-holed flow"
# A sends 100 bytes, which B acknowledges; then B drops everything for the port and A sends 20000 more.
cat >"$work/sender.py" <<'EOF'
import os, socket, sys, time
c = socket.create_connection(("10.77.0.2", 7006))
c.sendall(b"x" * 100)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
c.sendall(b"y" * 20000)
time.sleep(600)
EOF
ip netns exec "$B" python3 "$work/server.py" 4 10.77.0.2 7006 999999 0 &
for _ in $(seq 50); do ip netns exec "$B" ss -Hltn "sport = 7006" | grep -q . && break; sleep 0.1; done
ip netns exec "$A" python3 "$work/sender.py" "$work/go" &
sleep 1
ip netns exec "$B" nft add table inet sdtest
ip netns exec "$B" nft add chain inet sdtest input '{ type filter hook input priority 0; policy accept; }'
ip netns exec "$B" nft add rule inet sdtest input tcp dport 7006 drop
touch "$work/go"
sleep 3
check "A: the black-holed flow's fields match ss (unacked, lastack)" compare_ns "$A"
# shellcheck disable=SC2016 # awk program
check "A: it has unacked segments" awk '$2 == "10.77.0.2:7006" && $6 > 0 {found = 1} END {exit !found}' "$work/h.$A"
first=$(awk '$2 == "10.77.0.2:7006" {print $7}' "$work/h.$A")
sleep 1
ip netns exec "$A" "$H" diag >"$work/h2.$A"
second=$(awk '$2 == "10.77.0.2:7006" {print $7}' "$work/h2.$A")
check "A: its lastAckReceived grows ($first ms, then $second ms)" test "$second" -ge $((first + 900))

section "result"
if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
