#!/usr/bin/env bash
# test_rocks_daemon_adapters.sh: the daemon side of rocks support (Sources/RackDaemon/Rocks/, DataPlane.swift,
# Queue/HeldPackets.swift) in a real rackd, on the test bed (testbed/netns.sh), rackd in A with [rocks] enabled:
#   - the heartbeat and reconnection sockets are bound at the configured ports, or at free ones for 0 (the
#     log names them); rackctl's JSON has daemon.queue.held;
#   - a configured port that is taken stops rackd at start with an error naming the port and its
#     rackd.conf key, before any rule is installed (no table inet rackd is left);
#   - a SYN held while rackd probes its destination is let through when rackd stops: the application's
#     connection opens at once, without waiting for its own SYN retransmission, and the stop line counts it;
#   - a probed destination's SYN is held once, and the second connection to it (negatively cached) is not
#     held (the queue's held counter).
# Needs root, a Swift toolchain and python3; touches nothing outside its own namespaces.
# timeout: 300
set -euo pipefail
export LC_ALL=C

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"

if ((EUID != 0)); then
    tb_skip "needs root (network namespaces)"
fi
if ! command -v swift >/dev/null || ! command -v python3 >/dev/null; then
    tb_skip "needs swift and python3"
fi

failures=0
section() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok   %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$*"
    failures=$((failures + 1))
}

section "build"
(cd "$TB_REPO" && swift build --product rackd && swift build --product rackctl) >/dev/null 2>&1 || {
    fail "rackd builds"
    exit 1
}
tb_require_rackd

section "test bed"
tb_setup
A=$TB_A
B=$TB_B
work=$TB_DIR

# config FILE [KEY=VALUE...]: a configuration with rocks enabled (probing port 7106 and 7103), plus KEYs.
config() {
    local file=$1
    shift
    printf '[rocks]\nlegacy-auth = yes\nprobe = listed\nprobe-ports = 7103, 7106\n' >"$file"
    local pair
    for pair in "$@"; do printf '%s = %s\n' "${pair%%=*}" "${pair#*=}" >>"$file"; done
}

# queue_field NAME KEY: a field of rackd NAME's daemon.queue in `rackctl status --json`.
queue_field() {
    tb_rackctl "$1" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["daemon"]["queue"].get(sys.argv[1], "absent"))' "$2"
}

section "configured ports"
config "$work/fixed.conf" heartbeat-port=7301 reconnection-port=7302
tb_start_rackd "$A" fixed --config "$work/fixed.conf"
if grep -q "rocks sockets bound rocks.heartbeat-port=7301 rocks.reconnection-port=7302" "$work/rackd-fixed.log"; then
    pass "the log names the bound ports"
else
    fail "no 'rocks sockets bound' line with 7301 and 7302: $(grep -i rocks "$work/rackd-fixed.log" | head -3)"
fi
if tb_exec "$A" ss -Hlunp "sport = :7301" | tb_grep rackd; then pass "rackd holds UDP 7301"; else fail "no UDP 7301 of rackd"; fi
if tb_exec "$A" ss -Htanp | tb_grep ":7302 .*rackd"; then pass "rackd holds TCP 7302 (bound, not listening)"; else
    # ss lists a bound socket that never listened or connected only with -a in some versions: ask the kernel
    if tb_exec "$A" python3 -c 'import socket
s = socket.socket(); s.bind(("0.0.0.0", 7302))' 2>/dev/null; then
        fail "TCP 7302 is free: rackd did not bind it"
    else
        pass "TCP 7302 is taken (bound, not listening)"
    fi
fi
held=$(queue_field fixed held)
if [[ $held =~ ^[0-9]+$ ]]; then pass "rackctl status --json has daemon.queue.held ($held)"; else fail "daemon.queue.held: $held"; fi
tb_stop_rackd "$A" fixed

section "port 0: free ports"
config "$work/any.conf"
tb_start_rackd "$A" any --config "$work/any.conf"
line=$(grep "rocks sockets bound" "$work/rackd-any.log" || true)
port=$(sed -n 's/.*rocks.heartbeat-port=\([0-9]*\).*/\1/p' <<<"$line")
if [[ $port =~ ^[0-9]+$ ]] && ((port > 0)) && tb_exec "$A" ss -Hlunp "sport = :$port" | tb_grep rackd; then
    pass "free ports: $line"
else
    fail "free ports: '$line'"
fi
tb_stop_rackd "$A" any

section "a taken port stops rackd at start"
tb_bg "$A" taker python3 -c 'import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7401))
t = socket.socket(); t.bind(("0.0.0.0", 7402)); t.listen()
time.sleep(120)'
tb_wait_port "$A" 7402 10
for case in "heartbeat-port=7401 UDP 0.0.0.0:7401 heartbeat-port" "reconnection-port=7402 TCP 0.0.0.0:7402 reconnection-port"; do
    read -r pair what address key <<<"$case"
    config "$work/taken.conf" "$pair"
    rc=0
    tb_exec "$A" "$(tb_rackd_bin)" --config "$work/taken.conf" --control-socket "$work/taken.sock" >"$work/taken.log" 2>&1 || rc=$?
    if ((rc != 0)) && grep -q "$what $address.*'$key' in \[rocks\]" "$work/taken.log"; then
        pass "$key taken: rackd exits $rc: $(grep -o 'error=.*' "$work/taken.log" | head -n 1)"
    else
        fail "$key taken: exit $rc, log: $(tail -n 3 "$work/taken.log")"
    fi
    if tb_has_rackd_table "$A"; then fail "$key taken: a table inet rackd was left"; else pass "$key taken: no rule was installed"; fi
done
kill "$(tb_pid taker)"

section "a held SYN is let through when rackd stops"
# A server that accepts and never reads nor closes: the probe waits its 500 ms read timeout, and the
# application's SYN waits with it.
tb_bg "$B" silent python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7106)); s.listen(16)
conns = []
while True:
    conns.append(s.accept()[0])'
tb_wait_port "$B" 7106 10
config "$work/stop.conf"
tb_start_rackd "$A" stop --config "$work/stop.conf"
tb_bg "$A" client python3 -c 'import socket, sys, time
start = time.monotonic()
c = socket.create_connection((sys.argv[1], 7106), timeout=10)
print("connected after %d ms" % ((time.monotonic() - start) * 1000))' "$TB_B_ADDR4"
# Stop while the SYN is held (the probe takes 500 ms).
tb_wait_for '[[ $(queue_field stop held) == 1 ]]' 5 0.02 || fail "the application's SYN was held"
tb_stop_rackd "$A" stop
tb_wait_bg client 10 || true
took=$(sed -n 's/connected after \([0-9]*\) ms/\1/p' "$work/client.log")
if [[ $took =~ ^[0-9]+$ ]] && ((took < 900)); then
    pass "the application connected after $took ms, before its first SYN retransmission"
else
    fail "the application: $(cat "$work/client.log")"
fi
if grep -q "rocks probe: .*7106" "$work/rackd-stop.log"; then
    fail "the probe ended before rackd stopped: the stop was not what let the SYN through"
else
    pass "the probe was still running when rackd stopped"
fi
if grep -q "nfq.held=1 " "$work/rackd-stop.log" || grep -q "nfq.held=1$" "$work/rackd-stop.log"; then
    pass "the stop line counts the held SYN: $(grep -o 'nfq.held=[0-9]*' "$work/rackd-stop.log")"
else
    fail "held count at stop: $(grep -o 'nfq.held=[0-9]*' "$work/rackd-stop.log" || echo none)"
fi

section "held once per destination"
tb_bg "$B" eof python3 -c 'import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7103)); s.listen(16)
while True:
    c = s.accept()[0]
    while True:
        d = c.recv(4096)
        if not d: break
        c.sendall(d)
    c.close()'
tb_wait_port "$B" 7103 10
tb_start_rackd "$A" cache --config "$work/stop.conf"
for i in 1 2; do
    answer=$(tb_exec "$A" python3 -c 'import socket, sys
c = socket.create_connection((sys.argv[1], 7103), timeout=10); c.sendall(b"ping"); print(c.recv(10).decode())' "$TB_B_ADDR4" 2>&1 || true)
    if [[ $answer == ping ]]; then pass "connection $i to an ordinary server works"; else fail "connection $i: $answer"; fi
    held=$(queue_field cache held)
    if [[ $held == 1 ]]; then pass "after connection $i: 1 packet held in all"; else fail "after connection $i: held $held, expected 1"; fi
done
tb_stop_rackd "$A" cache

section "result"
if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
