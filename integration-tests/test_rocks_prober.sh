#!/usr/bin/env bash
# test_rocks_prober.sh: RocksProber (Sources/RackDaemon/Rocks/RocksProber.swift and its judge
# RocksProbeJudge.swift), the rocks EDP probe rackd runs before it releases an application's SYN (docs/rocks.md
# §2.2), against real servers, through `rackd-kernel-probe rocks-probe`. On the test bed (testbed/netns.sh),
# the probe runs in A against servers in B:
#   (a) tools/rockspeer.py serve: a rock; the probe's packets, captured on B's link, are a rock's probe:
#       SYN, ACK, FIN and ACKs, not a byte of data, no reset; up to the FIN the same flags and lengths as the
#       real rocks client's probe in Tests/RackEngineTests/Fixtures/rocks-basic.pcap;
#   (b) rockspeer serve with a banner ("SSH-2.0-x\r\n") before the announcement: a rock;
#   (c) an ordinary server that closes at EOF: not a rock (EOF after 0 bytes);
#   (d) one that answers with data, then closes: not a rock (EOF after 6 bytes);
#   (e) one that resets (SO_LINGER 0): not a rock (reset);
#   (f) one that never reads nor closes: not a rock after the 500 ms read timeout;
#   (g) a closed port: not a rock (connection refused);
#   (h) the announcement, then a reset: a rock, as rocks takes a reset like EOF;
#   (i) a black hole in R: not a rock once the 3 s connect timeout passes;
#   (j) an IPv6 server that closes at EOF, probed from a given --source: not a rock, from that address;
#   (k) every server outlived its probe;
#   (l) with only the unit's capabilities (CAP_NET_ADMIN, CAP_NET_RAW: packaging/systemd/rackd.service) the
#       probe still sets its mark and binds;
#   (m) the rocks heartbeat and reconnection sockets (Rocks/RocksHeartbeatSocket.swift,
#       RocksReconnectionSocket.swift), through `rackd-kernel-probe rocks-sockets`: port 0 gets free ports;
#       a datagram from B arrives with its source and is answered; the reconnection port is bound but not
#       listening (a SYN draws a RST); a port already taken, or below 1024 without CAP_NET_BIND_SERVICE,
#       fails with an error that names the port and the rackd.conf key.
# Needs root, a Swift toolchain, python3 and tcpdump; touches nothing outside its own namespaces.
# timeout: 600
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
if ! command -v swift >/dev/null || ! command -v python3 >/dev/null || ! command -v tcpdump >/dev/null; then
    tb_skip "needs swift, python3 and tcpdump"
fi

failures=0
section() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok   %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$*"
    failures=$((failures + 1))
}

# MARK: test bed, probe and servers

section "test bed"
tb_setup
A=$TB_A
B=$TB_B
work=$TB_DIR

section "build the probe"
probe_build 'Rocks/[A-Za-z]*|System/SocketAddress|Queue/HeldPackets'
H=$PROBE

# The ordinary servers, one behaviour each, serving every connection in turn.
cat >"$work/server.py" <<'EOF'
import socket, struct, sys, time
mode, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
family = socket.AF_INET6 if ":" in address else socket.AF_INET
listener = socket.socket(family, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((address, port))
listener.listen(16)
def until_eof(c):
    while c.recv(4096):
        pass
while True:
    c, _ = listener.accept()
    if mode == "eof":            # an ordinary server: the client's FIN ends the session
        until_eof(c)
    elif mode == "data":         # answers with data, then closes
        until_eof(c)
        c.sendall(b"hello\n")
    elif mode in ("reset", "rock-reset"):
        until_eof(c)
        if mode == "rock-reset":  # the announcement first, given time to leave before the reset
            c.sendall(b"IROCKYOUROCKMAN\0")
            time.sleep(0.2)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif mode == "silent":       # never reads, never closes
        time.sleep(60)
    c.close()
EOF

section "servers in $B"
tb_bg "$B" rock python3 "$TB_TOOLS/rockspeer.py" serve --listen "$TB_B_ADDR4:7101"
tb_bg "$B" banner python3 "$TB_TOOLS/rockspeer.py" serve --listen "$TB_B_ADDR4:7102" --banner $'SSH-2.0-x\r\n'
tb_bg "$B" eof python3 "$work/server.py" eof "$TB_B_ADDR4" 7103
tb_bg "$B" data python3 "$work/server.py" data "$TB_B_ADDR4" 7104
tb_bg "$B" reset python3 "$work/server.py" reset "$TB_B_ADDR4" 7105
tb_bg "$B" silent python3 "$work/server.py" silent "$TB_B_ADDR4" 7106
tb_bg "$B" rock-reset python3 "$work/server.py" rock-reset "$TB_B_ADDR4" 7108
tb_bg "$B" eof6 python3 "$work/server.py" eof "$TB_B_ADDR6" 7110
for port in 7101 7102 7103 7104 7105 7106 7108 7110; do
    tb_wait_port "$B" "$port" 10 || fail "a server listens on $port"
done

# MARK: the probes

# probe NAME ARG...: run the probe in A; its JSON line goes to $work/NAME.json and into `result`.
probe() {
    local name=$1
    shift
    tb_exec "$A" "$H" rocks-probe "$@" >"$work/$name.json" 2>&1 || true
    result=$(cat "$work/$name.json")
    echo "   $name: $result"
}

# field NAME KEY: the value of KEY in the probe's JSON line (strings unquoted; "" if absent).
field() {
    python3 -c 'import json, sys
try:
    value = json.loads(open(sys.argv[1]).read()).get(sys.argv[2], "")
except ValueError:
    value = "(no JSON)"
print(value)' "$work/$1.json" "$2"
}

# expect NAME DESCRIPTION OUTCOME [REASON [MIN_MS MAX_MS]]: the outcome, the exact reason, and the time.
expect() {
    local name=$1 what=$2 outcome=$3 reason=${4:-} min=${5:-0} max=${6:-2000} got elapsed
    got=$(field "$name" outcome)
    if [[ $got == "$outcome" ]]; then pass "$what: $outcome"; else fail "$what: outcome '$got', expected '$outcome'"; fi
    if [[ -n $reason ]]; then
        got=$(field "$name" reason)
        if [[ $got == "$reason" ]]; then pass "$what: '$reason'"; else fail "$what: reason '$got', expected '$reason'"; fi
    fi
    elapsed=$(field "$name" elapsed_ms)
    if [[ $elapsed =~ ^[0-9]+$ ]] && ((elapsed >= min && elapsed <= max)); then
        pass "$what: took $elapsed ms (expected $min to $max)"
    else
        fail "$what: took '$elapsed' ms, expected $min to $max"
    fi
}

section "(a) a rock, and what the probe puts on the wire"
pcap=$work/rock.pcap
tb_bg "$B" capture tcpdump --immediate-mode -i "$TB_B_IF" -s 200 -U -w "$pcap" "tcp port 7101"
sleep 1
probe rock "$TB_B_ADDR4:7101"
sleep 0.5
kill -INT "$(tb_pid capture)"
tb_wait_bg capture 5 || true
expect rock "rockspeer" rock "" 0 1000
if [[ $(field rock bytes_received) == 16 ]]; then pass "16 bytes: the announcement alone"; else
    fail "bytes received: $(field rock bytes_received), expected 16"
fi
# The probe's packets, as "FLAGS LENGTH" lines, in order.
tcpdump -nn -r "$pcap" "src host $TB_A_ADDR4 and tcp dst port 7101" 2>/dev/null |
    sed -n 's/.*Flags \[\([^]]*\)\].* length \([0-9]*\).*/\1 \2/p' >"$work/rock.flags"
sed 's/^/     /' "$work/rock.flags"
first=$(head -n 3 "$work/rock.flags" | cut -d' ' -f1 | paste -sd' ')
if [[ $first == "S . F." ]]; then pass "the probe opens with SYN, ACK, FIN"; else fail "the probe's first packets: '$first', expected 'S . F.'"; fi
if ! cut -d' ' -f2 "$work/rock.flags" | grep -qv '^0$'; then pass "no packet of the probe carries data"; else
    fail "the probe sent data"
fi
# The real rocks 2.4 client's probe in the capture (docs/rocks.md §13): its first connection, client side.
fixture=$TB_REPO/Tests/RackEngineTests/Fixtures/rocks-basic.pcap
first_port=$(tcpdump -nn -c 1 -r "$fixture" "src host 10.201.0.1" 2>/dev/null | awk '{print $3}' | sed 's/.*\.//')
tcpdump -nn -r "$fixture" "src host 10.201.0.1 and src port $first_port" 2>/dev/null |
    sed -n 's/.*Flags \[\([^]]*\)\].* length \([0-9]*\).*/\1 \2/p' >"$work/real.flags"
# Up to the FIN, packet for packet (how many ACKs follow depends on how the server's answer is segmented).
if [[ -s $work/real.flags ]] && [[ $(head -n 3 "$work/real.flags") == "$(head -n 3 "$work/rock.flags")" ]]; then
    pass "up to the FIN, the same packets as real rocks' probe in rocks-basic.pcap ($(head -n 3 "$work/real.flags" | paste -sd,))"
else
    fail "rocks' probe was '$(paste -sd, "$work/real.flags")', ours '$(paste -sd, "$work/rock.flags")'"
fi
if grep -q R "$work/rock.flags"; then fail "the probe reset the connection"; else pass "no reset"; fi
rest=$(tail -n +4 "$work/rock.flags" | cut -d' ' -f1 | sort -u | paste -sd' ')
if [[ -z $rest || $rest == "." ]]; then pass "after the FIN only ACKs"; else fail "after the FIN: '$rest'"; fi
src_ports=$(tcpdump -nn -r "$pcap" "src host $TB_A_ADDR4" 2>/dev/null | awk '{print $3}' | sort -u | wc -l)
if ((src_ports == 1)); then pass "one connection, from one ephemeral port"; else fail "$src_ports source ports"; fi
local_port=$(field rock local)
local_port=${local_port##*:}
if [[ $local_port =~ ^[0-9]+$ ]] && ((local_port >= 1024)) &&
    tcpdump -nn -r "$pcap" 2>/dev/null | tb_grep "$TB_A_ADDR4.$local_port >"; then
    pass "the reported local endpoint ($(field rock local)) is the one on the wire"
else
    fail "local endpoint '$(field rock local)' not seen on the wire"
fi

section "(b) a rock with a banner"
probe banner "$TB_B_ADDR4:7102"
expect banner "rockspeer --banner 'SSH-2.0-x\\r\\n'" rock "" 0 1000
if [[ $(field banner bytes_received) == 27 ]]; then pass "27 bytes: the banner and the announcement"; else
    fail "bytes received: $(field banner bytes_received), expected 27"
fi

section "(c) to (g): ordinary servers"
probe eof "$TB_B_ADDR4:7103"
expect eof "a server that closes at EOF" not-rock "EOF after 0 bytes without the announcement" 0 1000
probe data "$TB_B_ADDR4:7104"
expect data "a server that answers with data" not-rock "EOF after 6 bytes without the announcement" 0 1000
probe reset "$TB_B_ADDR4:7105"
expect reset "a server that resets" not-rock "reset after 0 bytes without the announcement" 0 1000
probe silent "$TB_B_ADDR4:7106"
expect silent "a server that never reads" not-rock "no data for 500 ms" 450 1500
probe refused "$TB_B_ADDR4:7107"
expect refused "a closed port" not-rock "connection refused" 0 1000

section "(h) the announcement, then a reset"
probe rock-reset "$TB_B_ADDR4:7108"
expect rock-reset "a reset after the announcement" rock "" 0 1500

section "(i) a black hole"
tb_blackhole_on
probe blackhole "$TB_B_ADDR4:7103"
tb_blackhole_off
expect blackhole "nothing answers" not-rock "connect timed out after 3 s" 2900 4000

section "(j) IPv6, from a given source"
probe eof6 --source "$TB_A_ADDR6" "[$TB_B_ADDR6]:7110"
expect eof6 "an IPv6 server that closes at EOF" not-rock "EOF after 0 bytes without the announcement" 0 1000
if [[ $(field eof6 local) == "[$TB_A_ADDR6]:"* ]]; then pass "the probe came from $TB_A_ADDR6"; else
    fail "the probe came from '$(field eof6 local)'"
fi

section "(k) the servers outlived their probes"
for name in rock banner eof data reset silent rock-reset eof6; do
    if kill -0 "$(tb_pid "$name")" 2>/dev/null; then pass "$name still runs"; else fail "$name exited: $(tail -n 3 "$work/$name.log")"; fi
done

section "(l) with only the unit's capabilities"
unit_caps=(setpriv --bounding-set=-all,+net_admin,+net_raw --inh-caps=-all,+net_admin,+net_raw)
tb_exec "$A" "${unit_caps[@]}" "$H" rocks-probe "$TB_B_ADDR4:7101" >"$work/capped.json" 2>&1 || true
echo "   capped: $(cat "$work/capped.json")"
expect capped "CAP_NET_ADMIN and CAP_NET_RAW only" rock "" 0 1000
tb_exec "$A" "${unit_caps[@]}" "$H" rocks-probe --mark 0x1 "$TB_B_ADDR4:7101" >"$work/capped-mark.json" 2>&1 || true
if [[ $(field capped-mark outcome) == rock ]]; then pass "any mark can be set"; else fail "mark 0x1: $(cat "$work/capped-mark.json")"; fi
# SO_MARK needs CAP_NET_ADMIN (or, since Linux 5.17, CAP_NET_RAW): with neither the probe cannot start.
tb_exec "$A" setpriv --bounding-set=-all --inh-caps=-all "$H" rocks-probe "$TB_B_ADDR4:7101" >"$work/no-caps.json" 2>&1 || true
if [[ $(field no-caps reason) == *"SO_MARK"*"CAP_NET_ADMIN"* ]]; then
    pass "without capabilities the probe fails at SO_MARK, and says what it needs: $(field no-caps reason)"
else
    fail "without capabilities: $(cat "$work/no-caps.json")"
fi

section "(m) the rocks heartbeat and reconnection sockets"
tb_bg "$A" sockets "$H" rocks-sockets 0 0 "$work/stop-sockets"
tb_wait_for "grep -q BOUND '$work/sockets.log'" 10 || true
bound=$(grep BOUND "$work/sockets.log" || true)
heartbeat_port=$(sed -n 's/.*heartbeat=\([0-9]*\).*/\1/p' <<<"$bound")
reconnection_port=$(sed -n 's/.*reconnection=\([0-9]*\).*/\1/p' <<<"$bound")
if [[ -n $heartbeat_port && -n $reconnection_port ]] && ((heartbeat_port >= 1024 && reconnection_port >= 1024)); then
    pass "port 0 gets free ports: $bound"
else
    fail "bound: '$bound'"
fi
if tb_exec "$A" ss -Hlun "sport = :$heartbeat_port" | tb_grep "0.0.0.0:$heartbeat_port"; then
    pass "the heartbeat socket is UDP on 0.0.0.0:$heartbeat_port"
else
    fail "no UDP socket on 0.0.0.0:$heartbeat_port"
fi
answer=$(tb_exec "$B" python3 -c 'import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7200))
s.settimeout(3)
s.sendto(b"x", (sys.argv[2], int(sys.argv[3])))
data, source = s.recvfrom(100)
print(data.decode(), "%s:%d" % source)' "$TB_B_ADDR4" "$TB_A_ADDR4" "$heartbeat_port" 2>&1 || true)
if [[ $answer == "x $TB_A_ADDR4:$heartbeat_port" ]]; then pass "B's heartbeat is answered from $TB_A_ADDR4:$heartbeat_port"; else
    fail "B's heartbeat: '$answer'"
fi
if grep -qx "DATAGRAM $TB_B_ADDR4:7200 78" "$work/sockets.log" && grep -qx "SENT $TB_B_ADDR4:7200" "$work/sockets.log"; then
    pass "the datagram arrived with its source, and the answer went out"
else
    fail "datagram log: $(grep -E 'DATAGRAM|SENT' "$work/sockets.log" | paste -sd' ')"
fi
syn=$(tb_exec "$B" python3 -c 'import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print("connected")
except OSError as error:
    print(type(error).__name__)' "$TB_A_ADDR4" "$reconnection_port")
if [[ $syn == ConnectionRefusedError ]]; then pass "the reconnection port is bound, not listening: a SYN draws a RST"; else
    fail "a SYN to the reconnection port: $syn"
fi
# Ports already taken: the error names the port and the key.
tb_bg "$A" taker python3 -c 'import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7301))
t = socket.socket(); t.bind(("0.0.0.0", 7302)); t.listen()
time.sleep(60)'
tb_wait_port "$A" 7302 10 || true
tb_exec "$A" "$H" rocks-sockets 7301 0 "$work/stop-sockets" >"$work/taken-heartbeat.log" 2>&1 || true
if grep -q "ERROR .*UDP 0.0.0.0:7301.*another socket holds port 7301; set 'heartbeat-port' in \[rocks\]" "$work/taken-heartbeat.log"; then
    pass "a taken heartbeat port: $(cat "$work/taken-heartbeat.log")"
else
    fail "a taken heartbeat port: $(cat "$work/taken-heartbeat.log")"
fi
tb_exec "$A" "$H" rocks-sockets 0 7302 "$work/stop-sockets" >"$work/taken-reconnection.log" 2>&1 || true
if grep -q "ERROR .*TCP 0.0.0.0:7302.*set 'reconnection-port' in \[rocks\]" "$work/taken-reconnection.log"; then
    pass "a taken reconnection port: $(cat "$work/taken-reconnection.log")"
else
    fail "a taken reconnection port: $(cat "$work/taken-reconnection.log")"
fi
tb_exec "$A" "${unit_caps[@]}" "$H" rocks-sockets 0 80 "$work/stop-sockets" >"$work/low-port.log" 2>&1 || true
if grep -q "ERROR .*TCP 0.0.0.0:80.*below 1024 need CAP_NET_BIND_SERVICE.*'reconnection-port'" "$work/low-port.log"; then
    pass "port 80 with the unit's capabilities: $(cat "$work/low-port.log")"
else
    fail "port 80 with the unit's capabilities: $(cat "$work/low-port.log")"
fi
touch "$work/stop-sockets"
tb_wait_bg sockets 10 || fail "rocks-sockets exits cleanly"

section "result"
if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
