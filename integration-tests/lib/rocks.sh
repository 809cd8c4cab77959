# shellcheck shell=bash
# integration-tests/lib/rocks.sh: helpers shared by the rocks integration tests (test_rocks_*.sh) and bench/rocks.
# Source it after testbed/netns.sh (and lib/control.sh for rocks_status_*).
#
# The rock is tools/rockspeer.py (docs/rocks.md, tools/README.md); "the app" is an ordinary application:
# tools/xfer.py, or rockspeer.py --plain (no EDP, no init: plain TCP, with rockspeer's deterministic bytes, so
# that a run with rackd carries the same application bytes as a rock-to-rock reference run). Captures are
# taken with tcpdump inside the namespaces and read by tools/rocks_trace_compare.py.
#
#   peers      rocks_serve NAME NS ADDR:PORT [ARG...] | rocks_connect NAME NS ADDR:PORT [ARG...] | rocks_wait NAME [TIMEOUT_S]
#              rocks_result NAME | rocks_field NAME EXPR | rocks_stats_field NAME EXPR | rocks_check_pair CLIENT SERVER [C2S S2C]
#   captures   rocks_capture_start NAME NS IF [FILTER] | rocks_capture_stop NAME
#              rocks_count_probes PCAP PORT [FROM_ADDR] | rocks_count_connections PCAP PORT | rocks_compare REF RUN SIDE [PORT]
#              rocks_hb_addr PCAP PORT SIDE | rocks_count_datagrams PCAP SRC_ADDR DST_ADDR:PORT
#   rackd      rocks_config FILE [LINE...] | rocks_start_rackd NS NAME [LINE...] | rocks_status_conns NAME KIND
#              rocks_wait_conn NAME KIND TIMEOUT_S | rocks_conn_state NAME ENDPOINT | rocks_queue_counter NAME KEY
#              rocks_count_arrivals NS MATCH... | rocks_arrivals NS | rocks_unqueued NS [CHAIN]
#              rocks_after_close NAME ENDPOINT PCAP PORT ROCK_SIDE
#   scenarios  rocks_scenario_client LABEL MODE SIZE PORT [SERVE_ARG...] [-- CONNECT_ARG...]
#              rocks_scenario_server LABEL MODE SIZE PORT [SERVE_ARG...] [-- CONNECT_ARG...]
#              rocks_scenario_finish LABEL [BANNER_LEN]
#   outages    rocks_outage SIDE MODE LABEL FAULT SECONDS PORT | rocks_conn_field NAME ENDPOINT EXPR
#              rocks_trace_bytes NAME LABEL | rocks_trace_has NAME EVENT [TEXT] | rocks_reconnection_progress NAME
#              rocks_outage_diagnose LABEL ROCK MODE ENDPOINT
#   ordinary   rocks_ordinary_server NAME NS ADDR PORT MODE [ARG...] | rocks_xfer_client NAME NS ADDR PORT BYTES [ARG...]
#              rocks_check_ordinary CLIENT SERVER [C2S S2C] | rocks_count_empty SERVER | rocks_expected_bytes SIZE SEED FILE

ROCKS_PEER=$TB_TOOLS/rockspeer.py
ROCKS_COMPARE=$TB_TOOLS/rocks_trace_compare.py
ROCKS_TIMEOUT=${ROCKS_TIMEOUT:-120}   # every rockspeer gives up (exit 3) after this many seconds

# ---------------------------------------------------------------------------------------------------
# The rock and the application (tools/rockspeer.py)

# rocks_serve NAME NS ADDR:PORT [ARG...]: start `rockspeer.py serve` in NS (process NAME; its JSON lines in
# $TB_DIR/NAME.log, its log in NAME.rlog, its stats in NAME.stats.json) and wait until it listens.
rocks_serve() {
    local name=$1 ns=$2 addr=$3
    shift 3
    rm -f "$TB_DIR/$name.ready"
    tb_bg "$ns" "$name" python3 "$ROCKS_PEER" serve --listen "$addr" --ready-file "$TB_DIR/$name.ready" \
        --stats "$TB_DIR/$name.stats.json" --log "$TB_DIR/$name.rlog" --timeout "$ROCKS_TIMEOUT" "$@" || return 1
    if ! tb_wait_for "test -s '$TB_DIR/$name.ready' || ! tb__alive $TB_LAST_PID" 10 0.05 || [[ ! -s $TB_DIR/$name.ready ]]; then
        echo "rocks_serve: $name did not start listening on $addr: $(tail -n 3 "$TB_DIR/$name.rlog" 2>/dev/null)" >&2
        return 1
    fi
}

# rocks_connect NAME NS ADDR:PORT [ARG...]: start `rockspeer.py connect` in NS in the background (process NAME,
# files as rocks_serve's).
rocks_connect() {
    local name=$1 ns=$2 addr=$3
    shift 3
    tb_bg "$ns" "$name" python3 "$ROCKS_PEER" connect "$addr" --stats "$TB_DIR/$name.stats.json" \
        --log "$TB_DIR/$name.rlog" --timeout "$ROCKS_TIMEOUT" "$@"
}

# rocks_wait NAME [TIMEOUT_S]: wait for rockspeer NAME to exit (default: ROCKS_TIMEOUT + 10 s); on a failure
# print its log's tail.
rocks_wait() {
    local rc=0
    tb_wait_bg "$1" "${2:-$((ROCKS_TIMEOUT + 10))}" || rc=$?
    if ((rc != 0)); then
        echo "rocks_wait: $1 exited with status $rc; its log ends:" >&2
        tail -n 8 "$TB_DIR/$1.rlog" "$TB_DIR/$1.log" 2>/dev/null | sed 's/^/    /' >&2
    fi
    return "$rc"
}

# rocks_result NAME: print the last JSON line NAME wrote on stdout (one per application connection) and keep
# it in $TB_DIR/NAME.json.
rocks_result() {
    local line
    line=$(grep '^{' "$TB_DIR/$1.log" | tail -n 1) || {
        echo "rocks_result: $1 printed no JSON line" >&2
        return 1
    }
    printf '%s\n' "$line" >"$TB_DIR/$1.json"
    printf '%s\n' "$line"
}

# rocks_field NAME EXPR: evaluate EXPR over NAME's last JSON line (bound to `r`), e.g. rocks_field srv 'r["peer_is_rock"]'.
rocks_field() {
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$(rocks_result "$1")" "$2"
}

# rocks_stats_field NAME EXPR: evaluate EXPR over NAME's --stats file (bound to `s`).
rocks_stats_field() {
    python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$TB_DIR/$1.stats.json" "$2"
}

# rocks_report_file NAME: a report tools/check_xfer.py reads: $TB_DIR/NAME.json (rockspeer's last JSON line) if
# NAME is a rockspeer, else $TB_DIR/NAME.json as xfer.py wrote it (tb_xfer_start's NAME-client/NAME-server).
rocks_report_file() {
    if [[ -f $TB_DIR/$1.rlog ]]; then
        rocks_result "$1" >/dev/null || return 1
    fi
    echo "$TB_DIR/$1.json"
}

# rocks_check_pair CLIENT SERVER [C2S S2C]: compare what CLIENT sent with what SERVER received and back (bytes and
# SHA-256, tools/check_xfer.py); each is a rockspeer name or an xfer.py report name (e.g. bulk-client).
rocks_check_pair() {
    local c s
    c=$(rocks_report_file "$1") && s=$(rocks_report_file "$2") || return 1
    tb_check_xfer "$c" "$s" "${3:-}" "${4:-}"
}

# ---------------------------------------------------------------------------------------------------
# Captures

# rocks_capture_start NAME NS IF [FILTER]: capture whole packets on IF in NS into $TB_DIR/NAME.pcap (default
# filter: IPv4 TCP and UDP); returns once tcpdump says it is listening. ROCKS_CAPTURE_SNAPLEN=N keeps only the first
# N bytes of each packet (default 0: whole packets).
rocks_capture_start() {
    local name=$1 ns=$2 ifc=$3 filter=${4:-ip and (tcp or udp)}
    # --immediate-mode: each packet reaches tcpdump at once (not when a ring block fills or times out), so
    # that stopping it right after the last packet loses nothing.
    tb_bg "$ns" "$name" tcpdump -i "$ifc" -s "${ROCKS_CAPTURE_SNAPLEN:-0}" -B 16384 --immediate-mode -U -n \
        -w "$TB_DIR/$name.pcap" "$filter" ||
        return 1
    if ! tb_wait_for "grep -q 'listening on' '$TB_DIR/$name.log' || ! tb__alive $TB_LAST_PID" 10 0.05 ||
        ! grep -q 'listening on' "$TB_DIR/$name.log"; then
        echo "rocks_capture_start: tcpdump $name did not start: $(cat "$TB_DIR/$name.log")" >&2
        return 1
    fi
}

# rocks_capture_stop NAME: stop capture NAME (SIGINT) and fail if it lost a packet: dropped by the kernel, or
# matched by the filter but never written. Up to 2 matched and unwritten are allowed: packets that arrive while
# tcpdump stops (a rock's heartbeats run on, one a second each way) are counted by the kernel's filter after
# tcpdump's last read; a packet lost earlier would show as more.
rocks_capture_stop() {
    local pid dropped captured matched
    pid=$(tb_pid "$1") || return 1
    kill -INT "$pid" 2>/dev/null || true
    tb_wait_bg "$1" 10 || true
    captured=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$TB_DIR/$1.log")
    matched=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$TB_DIR/$1.log")
    dropped=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$TB_DIR/$1.log")
    if [[ ${dropped:-x} != 0 || -z $captured || -z $matched ]] || ((matched - captured > 2)); then
        echo "rocks_capture_stop: capture $1 lost packets: $(tr '\n' ' ' <"$TB_DIR/$1.log")" >&2
        return 1
    fi
}

# rocks_count_probes PCAP PORT [FROM_ADDR]: print how many connections to PORT in PCAP (from FROM_ADDR, if given)
# were rocks probes: the client sent a FIN and no byte.
rocks_count_probes() {
    python3 - "$ROCKS_COMPARE" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("rtc", sys.argv[1])
rtc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtc)
path, port = sys.argv[2], int(sys.argv[3])
source = sys.argv[4] if len(sys.argv) > 4 else None
conns = rtc.tcp_connections(rtc.read_pcap(path), port)
print(sum(1 for c in conns if c.kind == "probe" and (source is None or c.client[0] == source)))
PY
}

# rocks_count_connections PCAP PORT: print the kinds of the connections to PORT in PCAP, in SYN order
# (e.g. "probe plain plain").
rocks_count_connections() {
    python3 - "$ROCKS_COMPARE" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("rtc", sys.argv[1])
rtc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtc)
print(" ".join(c.kind for c in rtc.tcp_connections(rtc.read_pcap(sys.argv[2]), int(sys.argv[3]))))
PY
}

# rocks_hb_addr PCAP PORT SIDE: print the heartbeat address (ADDR:PORT) the SIDE (client or server) of the last rock
# connection to PORT in PCAP advertised at init.
rocks_hb_addr() {
    python3 - "$ROCKS_COMPARE" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("rtc", sys.argv[1])
rtc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtc)
rock = [c for c in rtc.tcp_connections(rtc.read_pcap(sys.argv[2]), int(sys.argv[3])) if c.kind == "rock"][-1]
print("%s:%d" % rtc.advertised_hb(rock, "c2s" if sys.argv[4] == "client" else "s2c"))
PY
}

# rocks_count_datagrams PCAP SRC_ADDR DST_ADDR:PORT: print how many UDP datagrams from SRC_ADDR to DST_ADDR:PORT
# PCAP holds.
rocks_count_datagrams() {
    python3 - "$ROCKS_COMPARE" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("rtc", sys.argv[1])
rtc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtc)
addr, port = sys.argv[4].rsplit(":", 1)
print(sum(1 for p in rtc.read_pcap(sys.argv[2])
          if p.proto == "udp" and p.src == sys.argv[3] and (p.dst, p.dport) == (addr, int(port))))
PY
}

# rocks_compare REF RUN SIDE [PORT]: tools/rocks_trace_compare.py compare on $TB_DIR/REF.pcap and $TB_DIR/RUN.pcap;
# its whole output goes to $TB_DIR/compare-RUN-SIDE.txt, its failures, notes and verdict to stdout.
rocks_compare() {
    local rc=0 out=$TB_DIR/compare-$2-$3.txt
    "$ROCKS_COMPARE" compare "$TB_DIR/$1.pcap" "$TB_DIR/$2.pcap" --side "$3" ${4:+--port "$4"} >"$out" 2>&1 || rc=$?
    grep -v '^  ok ' "$out" | sed 's/^/    /'
    return "$rc"
}

# ---------------------------------------------------------------------------------------------------
# rackd with a [rocks] section

# rocks_config FILE [LINE...]: write a rackd.conf with `[rocks]`, `legacy-auth = yes` and the given lines.
rocks_config() {
    local file=$1
    shift
    {
        echo "[rocks]"
        echo "legacy-auth = yes"
        printf '%s\n' "$@"
    } >"$file"
}

# rocks_start_rackd NS NAME [LINE...]: start rackd NAME in NS (debug log, its own control socket) with a
# [rocks] section made of LINE... ($TB_DIR/rackd-NAME.conf).
rocks_start_rackd() {
    local ns=$1 name=$2
    shift 2
    rocks_config "$TB_DIR/rackd-$name.conf" "$@"
    tb_start_rackd "$ns" "$name" --log-level debug --config "$TB_DIR/rackd-$name.conf"
}

# rocks_restart_rackd NAME SIGNAL: stop rackd NAME (started by rocks_start_rackd) with SIGNAL and start it
# again with the same configuration; its first log is kept as rackd-NAME.log.N (docs/restarts.md).
rocks_restart_rackd() {
    local name=$1 signal=$2 ns
    ns=$(ip netns identify "$(tb_rackd_pid "$name")")
    tb_assert "rackd-$name stops and starts again (SIG$signal)" \
        tb_restart_rackd "$ns" "$name" "$signal" --log-level debug --config "$TB_DIR/rackd-$name.conf"
    tb_assert "rackd-$name's table inet rackd outlived it (the new one replaced it)" \
        grep -q "replaced a table left by an earlier rackd" "$TB_DIR/rackd-$name.log"
    tb_assert "rackd-$name took its connections back" tb_wait_for "grep -q 'connections taken back' '$TB_DIR/rackd-$name.log'" 5
    local previous
    previous=$(ls -t "$TB_DIR/rackd-$name.log."* | head -1)
    tb_assert "rackd-$name bound the rocks ports it announced before" \
        test "$(grep -o 'rocks.heartbeat-port=[0-9]*' "$TB_DIR/rackd-$name.log" | head -1)" = \
        "$(grep -o 'rocks.heartbeat-port=[0-9]*' "$previous" | head -1)"
}

# rocks_status_conns NAME KIND: print, one per line, the connections of KIND (rocks, rackd) in rackd NAME's
# `rackctl status --json` as "role state key_suite local peer".
rocks_status_conns() {
    local json
    json=$(tb_rackctl "$1" status --json) || return 1
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])
for c in s["connections"]:
    if c.get("peer_kind") == sys.argv[2]:
        print(c.get("role"), c.get("state"), c.get("key_suite"), c.get("local"), c.get("peer"))' "$json" "$2"
}

# rocks_conn_state NAME ENDPOINT: the state of rackd NAME's rocks connection whose local or peer endpoint is
# ENDPOINT (ADDR:PORT), "none" without one.
rocks_conn_state() {
    local line
    line=$(rocks_status_conns "$1" rocks | awk -v e="$2" '$4 == e || $5 == e {print $2; exit}') || return 1
    echo "${line:-none}"
}

# rocks_after_close NAME ENDPOINT PCAP PORT ROCK_SIDE: once the rock and the application have closed rocks connection
# ENDPOINT (its last capture PCAP, the server port PORT), rackd NAME lets it go (closing, or gone, within 5 s) and
# sends nothing more to the closed rock's heartbeat socket: a capture on B over the 3 s after that must hold
# no datagram from A to it. ROCK_SIDE: the rock's role (client or server).
rocks_after_close() {
    local name=$1 endpoint=$2 pcap=$3 port=$4 side=$5 hb state
    hb=$(rocks_hb_addr "$pcap" "$port" "$side") || return 1
    rocks_capture_start "after-$name-$port" "$TB_B" "$TB_B_IF" "udp" || return 1
    if ! tb_wait_for "[[ \$(rocks_conn_state $name $endpoint) =~ ^(closing|none)\$ ]]" 5; then
        state=$(rocks_conn_state "$name" "$endpoint")
        rocks_capture_stop "after-$name-$port" || true
        echo "rocks_after_close: rackd-$name still shows the connection $endpoint $state 5 s after both ends closed" >&2
        return 1
    fi
    sleep 3 # the observation window: nothing may come in it
    rocks_capture_stop "after-$name-$port" || return 1
    local n
    n=$(rocks_count_datagrams "$TB_DIR/after-$name-$port.pcap" "$TB_A_ADDR4" "$hb")
    if ((n != 0)); then
        echo "rocks_after_close: $n heartbeats from A to the closed rock's heartbeat socket $hb in the 3 s after" \
            "rackd-$name let the connection go ($(rocks_conn_state "$name" "$endpoint"))" >&2
        return 1
    fi
}

# rocks_wait_conn NAME KIND TIMEOUT_S: wait until rackd NAME's status lists a connection of KIND.
rocks_wait_conn() {
    tb_wait_for "[[ -n \$(rocks_status_conns $1 $2 2>/dev/null) ]]" "$3" 0.1
}

# rocks_count_arrivals NS MATCH...: count the packets matching the nft MATCH (e.g. ip saddr B tcp sport 5002) as
# they reach NS, before rackd's input chain (priority mangle, -150) sees them: a table of the test's own.
rocks_count_arrivals() {
    local ns=$1
    shift
    tb_exec "$ns" nft -f - <<EOF
table inet itest {
    chain in {
        type filter hook input priority -200; policy accept;
        $* counter
    }
}
EOF
}

# rocks_arrivals NS: the packets rocks_count_arrivals counted in NS. rocks_unqueued NS [CHAIN]: the packets of screened (or
# shifted: CHAIN shifted_screen) rocks connections that reached the socket in NS without rackd (the chain's counter).
rocks_arrivals() { rocks__first_counter "$1" chain inet itest in; }
rocks_unqueued() { rocks__first_counter "$1" chain inet rackd "${2:-screened}"; }
rocks__first_counter() {
    local ns=$1
    shift
    tb_exec "$ns" nft list "$@" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -1
}

# rocks_queue_counter NAME KEY: print daemon.queue.KEY from rackd NAME's `rackctl status --json`. `held` is
# optional in the format (docs/control.md): absent, it is 0.
rocks_queue_counter() {
    local json
    json=$(tb_rackctl "$1" status --json) || return 1
    python3 -c 'import json,sys; q=json.loads(sys.argv[1])["daemon"]["queue"]; print(q[sys.argv[2]] if sys.argv[2] != "held" else q.get("held", 0))' \
        "$json" "$2"
}

# ---------------------------------------------------------------------------------------------------
# The scenarios compared with tools/rocks_trace_compare.py. Each captures on B's interface into
# $TB_DIR/LABEL.pcap and moves SIZE bytes each way (rockspeer --send-bytes, seed 1 from the client, seed 2 from
# the server), then the client holds the idle connection ROCKS_HOLD seconds (default 7: heartbeats over more
# than 5 s) and closes.
#   MODE rock   both ends are rocks (rockspeer): the reference;
#   MODE app    A runs an ordinary application (rockspeer --plain) in the role rackd plays; the test has
#               started rackd in A or not.
# Processes: LABEL-server, LABEL-client, LABEL (the capture, $TB_DIR/LABEL.pcap).

# rocks_scenario_client LABEL MODE SIZE PORT [SERVE_ARG...] [-- CONNECT_ARG...]: the client role: the rock
# server in B, the client in A (a rock, or the app).
rocks_scenario_client() {
    local label=$1 mode=$2 size=$3 port=$4 serve_args=() connect_args=()
    shift 4
    while (($#)) && [[ $1 != -- ]]; do serve_args+=("$1") && shift; done
    (($# == 0)) || shift
    connect_args=("$@")
    [[ $mode == app ]] && connect_args+=(--plain)
    rocks_capture_start "$label" "$TB_B" "$TB_B_IF" || return 1
    rocks_serve "$label-server" "$TB_B" "$TB_B_ADDR4:$port" --count 1 --send-bytes "$size" --seed 2 \
        --trace "$TB_DIR/$label-server.trace" "${serve_args[@]}" || return 1
    rocks_connect "$label-client" "$TB_A" "$TB_B_ADDR4:$port" --send-bytes "$size" --seed 1 \
        --receive-bytes "${ROCKS_RECEIVE:-$size}" --hold "${ROCKS_HOLD:-7}" --trace "$TB_DIR/$label-client.trace" \
        "${connect_args[@]}"
}

# rocks_scenario_server LABEL MODE SIZE PORT [SERVE_ARG...] [-- CONNECT_ARG...]: the server role: the server in A
# (a rock, or the app: rockspeer --plain --read-first, an ordinary server that answers once its client spoke),
# the rock client in B.
rocks_scenario_server() {
    local label=$1 mode=$2 size=$3 port=$4 serve_args=() connect_args=()
    shift 4
    while (($#)) && [[ $1 != -- ]]; do serve_args+=("$1") && shift; done
    (($# == 0)) || shift
    connect_args=("$@")
    [[ $mode == app ]] && serve_args+=(--plain --read-first)
    rocks_capture_start "$label" "$TB_B" "$TB_B_IF" || return 1
    rocks_serve "$label-server" "$TB_A" "$TB_A_ADDR4:$port" --count 1 --send-bytes "$size" --seed 2 \
        --trace "$TB_DIR/$label-server.trace" "${serve_args[@]}" || return 1
    rocks_connect "$label-client" "$TB_B" "$TB_A_ADDR4:$port" --send-bytes "$size" --seed 1 \
        --receive-bytes "${ROCKS_RECEIVE:-$size}" --hold "${ROCKS_HOLD:-7}" --trace "$TB_DIR/$label-client.trace" \
        "${connect_args[@]}"
}

# rocks_scenario_finish LABEL [BANNER_LEN]: wait for both ends of scenario LABEL, stop its capture, check the
# bytes both ways (SHA-256; with BANNER_LEN, the client's received bytes begin with a banner that long, and only
# their count is checked that way: test the content with --receive-file).
rocks_scenario_finish() {
    local label=$1 banner=${2:-0} rc=0
    rocks_wait "$label-client" || rc=1
    rocks_wait "$label-server" || rc=1
    rocks_capture_stop "$label" || rc=1
    ((rc == 0)) || return 1
    python3 - "$TB_DIR/$label-client.log" "$TB_DIR/$label-server.log" "$banner" <<'PY'
import json, sys
def last(path):
    return json.loads([l for l in open(path) if l.startswith("{")][-1])
c, s, banner = last(sys.argv[1]), last(sys.argv[2]), int(sys.argv[3])
problems = [who + ": " + r["error"] for who, r in (("client", c), ("server", s)) if r.get("error")]
if (c["sent_bytes"], c["sent_sha256"]) != (s["recv_bytes"], s["recv_sha256"]):
    problems.append("client -> server: sent %d %s, received %d %s" % (c["sent_bytes"], c["sent_sha256"][:12],
                                                                    s["recv_bytes"], s["recv_sha256"][:12]))
if banner == 0 and (s["sent_bytes"], s["sent_sha256"]) != (c["recv_bytes"], c["recv_sha256"]):
    problems.append("server -> client: sent %d %s, received %d %s" % (s["sent_bytes"], s["sent_sha256"][:12],
                                                                    c["recv_bytes"], c["recv_sha256"][:12]))
if banner and c["recv_bytes"] != s["sent_bytes"] + banner:
    problems.append("server -> client: sent %d + a %d-byte banner, received %d" % (s["sent_bytes"], banner, c["recv_bytes"]))
print("  %s: client sent %d, server sent %d; peer_is_rock client %s, server %s; heartbeats client %d/%d, server %d/%d"
      % (sys.argv[1].rsplit("/", 1)[-1][:-11], c["sent_bytes"], s["sent_bytes"], c["peer_is_rock"], s["peer_is_rock"],
         c["heartbeats_sent"], c["heartbeats_received"], s["heartbeats_sent"], s["heartbeats_received"]))
for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
}

# ---------------------------------------------------------------------------------------------------
# Ordinary servers and clients (the fallback tests)

# rocks_ordinary_server NAME NS ADDR PORT MODE [ARG...]: start integration-tests/lib/ordinary_server.py (what a
# probe gets: eof, data, rst or silent) in NS and wait until it listens; one JSON line per connection in NAME.log.
rocks_ordinary_server() {
    local name=$1 ns=$2 addr=$3 port=$4 mode=$5
    shift 5
    rm -f "$TB_DIR/$name.ready"
    tb_bg "$ns" "$name" python3 "$TB_REPO/integration-tests/lib/ordinary_server.py" --listen "$addr" --port "$port" \
        --probe "$mode" --ready-file "$TB_DIR/$name.ready" "$@" || return 1
    tb_wait_for "test -s '$TB_DIR/$name.ready'" 10 0.05 || {
        echo "rocks_ordinary_server: $name did not start: $(cat "$TB_DIR/$name.log")" >&2
        return 1
    }
}

# rocks_xfer_client NAME NS ADDR PORT BYTES [ARG...]: one tools/xfer.py client transfer (BYTES sent; it receives
# until EOF), waited for; report in $TB_DIR/NAME.json.
rocks_xfer_client() {
    local name=$1 ns=$2 addr=$3 port=$4 bytes=$5
    shift 5
    tb_bg "$ns" "$name" "$TB_TOOLS/xfer.py" client --connect "$addr" --port "$port" --bytes "$bytes" \
        --report "$TB_DIR/$name.json" "$@" || return 1
    tb_wait_bg "$name" 120
}

# rocks_check_ordinary CLIENT SERVER [C2S S2C]: compare xfer.py client report CLIENT with the line ordinary server
# SERVER printed for the same connection (found by the client's local address).
rocks_check_ordinary() {
    local client=$1 server=$2
    python3 - "$TB_DIR/$client.json" "$TB_DIR/$server.log" "$TB_DIR/$client-server.json" <<'PY' || return 1
import json, sys
local = json.load(open(sys.argv[1]))["local"]
lines = [json.loads(l) for l in open(sys.argv[2]) if l.startswith("{")]
mine = [l for l in lines if l.get("peer") == local and not l.get("empty")]
if len(mine) != 1:
    sys.exit("the server printed %d reports for the connection from %s" % (len(mine), local))
json.dump(mine[0], open(sys.argv[3], "w"))
PY
    tb_check_xfer "$TB_DIR/$client.json" "$TB_DIR/$client-server.json" "${3:-}" "${4:-}"
}

# rocks_count_empty SERVER: how many connections ordinary server SERVER (ordinary_server.py) saw
# closed without a byte: what an ordinary server sees of a rocks probe.
rocks_count_empty() { grep -c '"empty": true' "$TB_DIR/$1.log" || true; }

# rocks_expected_bytes SIZE SEED FILE: write the SIZE bytes rockspeer.py --send-bytes SIZE --seed SEED sends.
rocks_expected_bytes() {
    python3 - "$TB_TOOLS" "$@" <<'PY'
import argparse, sys
sys.path.insert(0, sys.argv[1])
import rockspeer
args = argparse.Namespace(send_file=None, send_bytes=rockspeer.parse_size(sys.argv[2]), seed=int(sys.argv[3]))
with open(sys.argv[4], "wb") as f:
    for block in rockspeer.App(args, "server").payload_chunks():
        f.write(block)
PY
}

# ---------------------------------------------------------------------------------------------------
# Outages (issue 12, "Survive failures with rocks peers"; docs/rocks.md §5, §15): test_rocks_outage_client.sh and
# test_rocks_outage_server.sh.
#
# rocks_outage SIDE MODE LABEL FAULT SECONDS PORT: one connection through one fault. ROCKS_OUTAGE_SIZE (default 20M)
# goes each way at once, paced on both ends (64 KiB every 50 ms: about 16 s of sending each way, so that the
# transfer spans the fault), between A and the rock in B (rockspeer seed 1 from the client, 2 from the server).
# Once the rock has written 2.5 MiB, FAULT lasts SECONDS:
#   blackhole  tb_blackhole_on: R drops everything between A and B, both directions; found by missed heartbeats
#              (rackd: 15 s without one; a rock: 15 missed beats);
#   linkdown   tb_link_down_a: A's interface down (rackd sees its address go at once, by rtnetlink).
#   SIDE client  A connects, the rock serves in B;   SIDE server  A serves (port PORT), the rock connects from B.
#   MODE app     an ordinary application in A (rockspeer --plain; --read-first when it serves) and rackd NAME
#                ROCKS_OUTAGE_RACKD (default a), which the test started with the matching [rocks] configuration,
#                playing the rock; rackd's status is checked too;
#   MODE rock    a rock in A too and no rackd: the rock-to-rock reference; what is asserted of the rock in B
#                is asserted of both.
# Asserted (app: all; rock: those about the rocks): the connection is healthy, then suspended during the fault
# (rackd within ROCKS_OUTAGE_DETECT_S: 20 for a black hole, 3 for a link down, for the reason it must have), still
# held when the path returns; the rock suspends after 15 missed heartbeats in a black hole; after the path's
# return the rock has reconnected and recovered (1of2, authentication, recovery) within ROCKS_OUTAGE_RECOVER_S
# (20) and rackd shows the connection healthy again, with resumptions >= 1; both ends finish, SIZE each way
# intact (SHA-256 on both ends); the rock counted exactly one suspension and one recovery, no authentication
# failure; rackd counts a resumption in all, and lets the connection go once both ends closed it.
# Processes LABEL-client and LABEL-server (traces $TB_DIR/LABEL-{client,server}.trace).
rocks_outage() {
    local side=$1 mode=$2 label=$3 fault=$4 seconds=$5 port=$6
    local size=${ROCKS_OUTAGE_SIZE:-20M} rackd=${ROCKS_OUTAGE_RACKD:-a} recover=${ROCKS_OUTAGE_RECOVER_S:-20}
    local pace=(--chunk 64K --interval 0.05 --trace-max-hex 32) a_args=() rock endpoint detect why
    local rocks=() r t0 t1 left
    case $fault in
        blackhole) detect=20 why="reason=no rocks heartbeat" ;;
        linkdown) detect=3 why="reason=local address $TB_A_ADDR4 lost" ;;
        *)
            echo "rocks_outage: FAULT must be blackhole or linkdown, not '$fault'" >&2
            return 1
            ;;
    esac
    detect=${ROCKS_OUTAGE_DETECT_S:-$detect}
    if [[ $mode == app ]]; then
        echo "== $label: rackd in A as the rocks $side, $size each way, $fault for ${seconds}s"
    else
        echo "== $label: rock to rock (a rock in A as the $side, no rackd), $size each way, $fault for ${seconds}s"
    fi
    if [[ $side == client ]]; then
        rock=$label-server endpoint=$TB_B_ADDR4:$port
        [[ $mode == app ]] && a_args=(--plain)
        rocks_serve "$label-server" "$TB_B" "$TB_B_ADDR4:$port" --count 1 --send-bytes "$size" --seed 2 \
            --trace "$TB_DIR/$label-server.trace" "${pace[@]}" || return 1
        rocks_connect "$label-client" "$TB_A" "$TB_B_ADDR4:$port" --send-bytes "$size" --seed 1 --receive-bytes "$size" \
            --trace "$TB_DIR/$label-client.trace" "${pace[@]}" "${a_args[@]}" || return 1
        rocks=("$rock")
        [[ $mode == rock ]] && rocks+=("$label-client")
    else
        rock=$label-client endpoint=$TB_A_ADDR4:$port
        [[ $mode == app ]] && a_args=(--plain --read-first)
        rocks_serve "$label-server" "$TB_A" "$TB_A_ADDR4:$port" --count 1 --send-bytes "$size" --seed 2 \
            --trace "$TB_DIR/$label-server.trace" "${pace[@]}" "${a_args[@]}" || return 1
        rocks_connect "$label-client" "$TB_B" "$TB_A_ADDR4:$port" --send-bytes "$size" --seed 1 --receive-bytes "$size" \
            --trace "$TB_DIR/$label-client.trace" "${pace[@]}" || return 1
        rocks=("$rock")
        [[ $mode == rock ]] && rocks+=("$label-server")
    fi

    if [[ $mode == app ]]; then
        tb_assert "$label: rackd-$rackd shows the rocks connection ($endpoint) healthy" \
            tb_wait_for "[[ \$(rocks_conn_field $rackd $endpoint 'c and c[\"state\"]' 2>/dev/null) == healthy ]]" 15
        tb_assert "$label: it is rackd's $side connection" \
            test "$(rocks_conn_field "$rackd" "$endpoint" 'c["role"]')" = "$side"
    fi
    tb_assert "$label: the transfer is under way (the rock wrote 2.5 MiB)" \
        tb_wait_for "(( \$(rocks_trace_bytes $rock app) >= 2621440 ))" 20

    t0=$(date +%s%N)
    case $fault in
        blackhole) tb_blackhole_on ;;
        linkdown) tb_link_down_a ;;
    esac
    echo "-- $label: $fault on"
    if [[ $mode == app ]]; then
        tb_assert "$label: rackd shows the connection suspended within ${detect}s" \
            tb_wait_for "[[ \$(rocks_conn_field $rackd $endpoint 'c and c[\"state\"]') == suspended ]]" "$detect"
        echo "   suspended by rackd after $((($(date +%s%N) - t0) / 1000000)) ms"
        tb_assert "$label: rackd's log gives the reason ($why)" \
            grep -q "conn\.state=suspended .*$why" "$TB_DIR/rackd-$rackd.log"
        if [[ -n ${ROCKS_OUTAGE_RESTART:-} ]]; then
            rocks_restart_rackd "$rackd" "$ROCKS_OUTAGE_RESTART"
            tb_assert "$label: the restarted rackd-$rackd holds the connection suspended" \
                test "$(rocks_conn_field "$rackd" "$endpoint" 'c and c["state"]')" = suspended
        fi
    fi
    case $fault in
        blackhole)
            for r in "${rocks[@]}"; do
                tb_assert "$label: the rock $r suspends after 15 missed heartbeats during the black hole" \
                    tb_wait_for "rocks_trace_has $r suspend '15 missed heartbeats'" $((seconds - 3))
            done
            ;;
        linkdown)
            # A rock in A suspends at once: its heartbeat sendto fails (no route). The rock in B cannot tell
            # until the link is back.
            [[ $mode == app ]] || tb_assert "$label: the rock in A suspends at once (its heartbeat sendto fails)" \
                tb_wait_for "rocks_trace_has ${rocks[1]} suspend sendto" 3
            ;;
    esac
    left=$(((t0 + seconds * 1000000000 - $(date +%s%N)) / 1000000))
    ((left <= 0)) || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))" # the rest of the outage
    if [[ $mode == app ]]; then
        tb_assert "$label: rackd still holds the connection suspended when the path returns" \
            test "$(rocks_conn_field "$rackd" "$endpoint" 'c and c["state"]')" = suspended
    fi
    case $fault in
        blackhole) tb_blackhole_off ;;
        linkdown) tb_link_up_a ;;
    esac
    t1=$(date +%s%N)
    echo "-- $label: $fault off after $(((t1 - t0) / 1000000)) ms"

    for r in "${rocks[@]}"; do
        if ! tb_assert "$label: the rock $r reconnects and recovers (1of2, authentication, recovery) within ${recover}s of the path's return" \
            tb_wait_for "rocks_trace_has $r recovered" "$recover"; then
            rocks_outage_diagnose "$label" "$r" "$mode" "$endpoint"
            return 1
        fi
    done
    echo "   recovered $((($(date +%s%N) - t1) / 1000000)) ms after the path returned"
    if [[ $mode == app ]]; then
        if ! tb_assert "$label: rackd shows the connection healthy again, resumptions >= 1" \
            tb_wait_for "[[ \$(rocks_conn_field $rackd $endpoint 'bool(c and c[\"state\"] == \"healthy\" and c[\"resumptions\"] >= 1)') == True ]]" 10; then
            rocks_outage_diagnose "$label" "$rock" "$mode" "$endpoint"
            return 1
        fi
        echo "   rackd: $(rocks_conn_field "$rackd" "$endpoint" 'c')"
    fi

    tb_assert "$label: the client ends cleanly" rocks_wait "$label-client" 90
    tb_assert "$label: the server ends cleanly" rocks_wait "$label-server" 30
    tb_assert "$label: $size each way intact (SHA-256 on both ends)" \
        rocks_check_pair "$label-client" "$label-server" "$size" "$size"
    for r in "${rocks[@]}"; do
        echo "   $r: $(rocks_stats_field "$r" '"suspensions %s, recoveries %s, auth failures %s" % (s["suspension_events"], s["recoveries"], s["auth_failures"])')"
        tb_assert "$label: the rock $r counted one suspension, one recovery, no authentication failure" \
            test "$(rocks_stats_field "$r" '(s["suspensions"], s["recoveries"], s["auth_failures"])')" = "(1, 1, 0)"
    done
    if [[ $mode == app ]]; then
        tb_assert "$label: rackd counts the resumption (daemon.resumptions >= 1)" \
            test "$(rocks_conn_field "$rackd" - 's["daemon"]["resumptions"]')" -ge 1
        tb_assert "$label: once both ends closed, rackd lets the connection go (closing or gone within 10 s)" \
            tb_wait_for "[[ \$(rocks_conn_field $rackd $endpoint 'c[\"state\"] if c else \"none\"') =~ ^(closing|none)\$ ]]" 10
    fi
}

# rocks_conn_field NAME ENDPOINT EXPR: evaluate EXPR over rackd NAME's `rackctl status --json` (bound to `s`) and its
# rocks connection whose local or peer endpoint is ENDPOINT (bound to `c`; None without one), and print it.
rocks_conn_field() {
    local json
    json=$(tb_rackctl "$1" status --json) || return 1
    python3 -c '
import json, sys
s = json.loads(sys.argv[1])
c = next((c for c in s["connections"] if c.get("peer_kind") == "rocks" and sys.argv[2] in (c.get("local"), c.get("peer"))), None)
print(eval(sys.argv[3]))' "$json" "$2" "$3"
}

# rocks_trace_bytes NAME LABEL: how many bytes rockspeer NAME's writes labelled LABEL (app: the application's) carried
# so far, by its trace ($TB_DIR/NAME.trace).
rocks_trace_bytes() {
    { grep -- "\"event\": \"write\".*\"label\": \"$2\"" "$TB_DIR/$1.trace" 2>/dev/null || true; } |
        sed -n 's/.*"len": \([0-9]*\).*/\1/p' | awk '{n += $1} END {print n + 0}'
}

# rocks_trace_has NAME EVENT [TEXT]: true if rockspeer NAME's trace holds an EVENT record (containing TEXT).
rocks_trace_has() {
    grep -- "\"event\": \"$2\"" "$TB_DIR/$1.trace" 2>/dev/null | tb_grep -F -- "${3:-}"
}

# rocks_reconnection_progress NAME: how far rockspeer NAME's last reconnection went, by its trace: the suspension
# and, after it, the 1of2 pick, authentication, recovery (or their failures).
rocks_reconnection_progress() {
    python3 - "$TB_DIR/$1.trace" <<'PY'
import json, sys
try:
    events = [json.loads(l) for l in open(sys.argv[1]) if '"event": "write"' not in l and '"event": "sendto"' not in l]
except (OSError, ValueError) as e:
    sys.exit("no trace: %s" % e)
sus = [i for i, e in enumerate(events) if e["event"] == "suspend"]
if not sus:
    sys.exit(print("never suspended") or 0)
s = events[sus[-1]]
after = events[sus[-1] + 1:]
steps = [("1of2", "a connection picked (1of2)"), ("auth", "authenticated"), ("recovered", "recovered")]
done = [what for event, what in steps
        if any(e["event"] == event and e.get("result", "ok") == "ok" for e in after)]
missing = [what for event, what in steps if what not in done]
fails = ["%s (%s)" % (e["event"], e.get("reason") or e.get("why") or "") for e in after
         if e["event"] in ("recovery-failed", "hungup") or (e["event"] == "auth" and e.get("result") != "ok")]
print("suspended at t=%.1f s (%s)%s%s%s" % (s["t"], s["reason"], "; then " + ", ".join(done) if done else "",
      "; not yet: " + ", ".join(missing) if missing else "", "; " + ", ".join(fails) if fails else ""))
PY
}

# rocks_outage_diagnose LABEL ROCK MODE ENDPOINT: print, briefly (the runner shows a failed test's last 40 lines),
# how far the rock's reconnection went and the end of its log and, in MODE app, rackd's view of the connection and
# its last state changes.
rocks_outage_diagnose() {
    local label=$1 rock=$2 mode=$3 endpoint=$4 rackd=${ROCKS_OUTAGE_RACKD:-a}
    echo "   --- $label: the rock $rock: $(rocks_reconnection_progress "$rock")"
    tail -n 3 "$TB_DIR/$rock.rlog" 2>/dev/null | cut -c1-200 | sed 's/^/   | /'
    [[ $mode == app ]] || return 0
    echo "   --- $label: rackd-$rackd: $(rocks_conn_field "$rackd" "$endpoint" \
        '"state %s, resumptions %s, suspended for %s s, last heard %s s ago" % (c["state"], c["resumptions"], c.get("suspended_seconds"), c["last_heard_seconds_ago"]) if c else "no such connection"' 2>&1)"
    grep -E "conn\.state=|rocks" "$TB_DIR/rackd-$rackd.log" | tail -n 3 | cut -c1-200 | sed 's/^/   | /'
}

# rocks_outage_faults SIDE MODE: rocks_outage for each fault in $ROCKS_OUTAGE_FAULTS (default: a 25 s black
# hole, then A's link down for 10 s), each on a connection of its own (ports 5010, 5011, ...); with MODE app,
# then checks that rackd counted a resumption per scenario and stops cleanly.
rocks_outage_faults() {
    local side=$1 mode=$2 port=5010 n=0 fault
    for fault in ${ROCKS_OUTAGE_FAULTS:-blackhole linkdown}; do
        case $fault in
            blackhole) rocks_outage "$side" "$mode" bh blackhole 25 "$port" ;;
            linkdown) rocks_outage "$side" "$mode" ld linkdown 10 "$port" ;;
            *) echo "unknown fault in ROCKS_OUTAGE_FAULTS: $fault" >&2 && exit 2 ;;
        esac
        port=$((port + 1)) n=$((n + 1))
    done
    if [[ $mode == app ]]; then
        tb_assert "rackd counted a resumption per scenario (daemon.resumptions >= $n)" \
            test "$(rocks_conn_field a - 's["daemon"]["resumptions"]')" -ge "$n"
        tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a TERM
    fi
}
