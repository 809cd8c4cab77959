# shellcheck shell=bash
# integration-tests/lib/rocks_reconnect.sh: helpers of the rocks reconnection tests (issue 12: test_rocks_roam.sh,
# test_rocks_1of2.sh, test_rocks_recovery.sh; docs/rocks.md §5, §15). Source it after testbed/netns.sh and
# lib/rocks.sh.
#
# One connection per scenario between an ordinary application in A behind rackd (rockspeer.py --plain) and the
# rock tools/rockspeer.py in B, with RC_SIZE (20M) each way at once, SHA-256 checked on both ends.
#
#   scenarios  rc_want LABEL | rc_rackd_start LABEL | rc_rackd_stop | rc_stop_role
#   transfer   rc_start SIDE LABEL PORT [APP_ARG...] [-- ROCK_ARG...] | rc_established MIN_BYTES | rc_finish
#   rock       rc_event NAME EVENT EXPR [INDEX] | rc_events NAME EVENT EXPR | rc_stats NAME EXPR
#   rackd      rc_log_count PATTERN | rc_log_lines PATTERN [N] | rc_resent | rc_conn EXPR | rc_suspended_reason
#   wire       rc_datagrams PCAP SRC DST [AFTER] | rc_established_to NS ADDR:PORT
#   B's address  rc_b_add_addr ADDR | rc_b_del_addr ADDR
#   diagnosis  rc_diagnose
#
# Each scenario has a rackd of its own (rc_rackd_start LABEL: rackd NAME = LABEL, log $TB_DIR/rackd-LABEL.log), so
# that a connection a failed scenario left suspended cannot meet the next one at the reconnection port. It plays both
# roles (probe = listed for B's subnet, serve-ports = 5000-5099) with fixed rocks ports (RC_REC_PORT, RC_HB_PORT), so
# that its sockaddrs can be asserted.

RC_SIZE=${RC_SIZE:-20M}
RC_REC_PORT=${RC_REC_PORT:-7000}
RC_HB_PORT=${RC_HB_PORT:-7001}
RC_PACE=${RC_PACE:---chunk 64K --interval 0.05}   # 64 KiB every 50 ms: about 16 s of sending each way
RC_RACKD=""                                          # the current scenario's rackd (rc_rackd_start)

# rc_rackd_start LABEL: start the scenario's rackd in A (name LABEL): [rocks] legacy-auth, probe = listed with
# probe-addresses = 10.2.0.0/24 (B's subnet, wherever B moves in it), serve-ports = 5000-5099, reconnection-port
# RC_REC_PORT, heartbeat-port RC_HB_PORT. Sets RC_RACKD.
rc_rackd_start() {
    RC_RACKD=$1
    rocks_start_rackd "$TB_A" "$RC_RACKD" "probe = listed" "probe-addresses = 10.2.0.0/24" "serve-ports = 5000-5099" \
        "reconnection-port = $RC_REC_PORT" "heartbeat-port = $RC_HB_PORT"
}

# rc_rackd_stop: stop the scenario's rackd (SIGTERM) and assert it exits cleanly.
rc_rackd_stop() { tb_assert "$RC_LABEL: rackd stops cleanly" tb_stop_rackd "$TB_A" "$RC_RACKD" TERM; }

# rc_want LABEL: true unless RC_SCENARIOS (a space-separated list of scenario labels) is set and does not name LABEL.
rc_want() { [[ -z ${RC_SCENARIOS:-} || " $RC_SCENARIOS " == *" $1 "* ]]; }

# rc_start SIDE LABEL PORT [APP_ARG...] [-- ROCK_ARG...]: start one transfer, RC_SIZE each way at once (seed 1 from the
# client, 2 from the server), both ends paced by RC_PACE and traced (--trace-max-hex 32):
#   SIDE client  the rock serves in B on B:PORT, the application connects from A (rackd plays the rocks client);
#   SIDE server  the application serves in A on A:PORT (--read-first), the rock connects from B.
# Processes LABEL-rock and LABEL-app (traces $TB_DIR/NAME.trace). Sets RC_LABEL, RC_SIDE, RC_ROCK, RC_APP, RC_CLIENT,
# RC_SERVER, and RC_ENDPOINT: the socket's endpoint rackd's status names the connection by (B:PORT or A:PORT).
# RC_CAPTURE=1 also captures the reconnection port, UDP and resets on B's link into $TB_DIR/LABEL-cap.pcap.
rc_start() {
    local side=$1 label=$2 port=$3 app_args=() rock_args=() pace
    shift 3
    while (($#)) && [[ $1 != -- ]]; do
        app_args+=("$1")
        shift
    done
    (($# == 0)) || shift
    rock_args=("$@")
    read -r -a pace <<<"$RC_PACE"
    if [[ ${RC_CAPTURE:-0} == 1 ]]; then
        # For diagnosis: the reconnection links, heartbeats and resets on B's link (headers only).
        tb_bg "$TB_B" "$label-cap" tcpdump -i "$TB_B_IF" -s 200 -U -n -w "$TB_DIR/$label-cap.pcap" \
            "tcp port $RC_REC_PORT or udp or tcp[tcpflags] & tcp-rst != 0" || return 1
        sleep 0.5
    fi
    pace+=(--trace-max-hex 32)
    RC_LABEL=$label RC_SIDE=$side RC_ROCK=$label-rock RC_APP=$label-app
    if [[ $side == client ]]; then
        RC_CLIENT=$RC_APP RC_SERVER=$RC_ROCK RC_ENDPOINT=$TB_B_ADDR4:$port
        rocks_serve "$RC_ROCK" "$TB_B" "$TB_B_ADDR4:$port" --count 1 --send-bytes "$RC_SIZE" --seed 2 \
            --trace "$TB_DIR/$RC_ROCK.trace" "${pace[@]}" "${rock_args[@]}" || return 1
        rocks_connect "$RC_APP" "$TB_A" "$TB_B_ADDR4:$port" --plain --send-bytes "$RC_SIZE" --seed 1 \
            --receive-bytes "$RC_SIZE" --trace "$TB_DIR/$RC_APP.trace" "${pace[@]}" "${app_args[@]}" || return 1
    else
        RC_CLIENT=$RC_ROCK RC_SERVER=$RC_APP RC_ENDPOINT=$TB_A_ADDR4:$port
        rocks_serve "$RC_APP" "$TB_A" "$TB_A_ADDR4:$port" --plain --read-first --count 1 --send-bytes "$RC_SIZE" \
            --seed 2 --trace "$TB_DIR/$RC_APP.trace" "${pace[@]}" "${app_args[@]}" || return 1
        rocks_connect "$RC_ROCK" "$TB_B" "$TB_A_ADDR4:$port" --send-bytes "$RC_SIZE" --seed 1 \
            --receive-bytes "$RC_SIZE" --trace "$TB_DIR/$RC_ROCK.trace" "${pace[@]}" "${rock_args[@]}" || return 1
    fi
}

# rc_established MIN_BYTES: assert that the scenario's rackd shows the connection healthy in its role, and wait until
# the rock has written MIN_BYTES of application data (the transfer is under way).
rc_established() {
    local rackd=$RC_RACKD min=$1
    tb_assert "$RC_LABEL: rackd-$rackd shows the rocks connection ($RC_ENDPOINT) healthy" \
        tb_wait_for "[[ \$(rocks_conn_field $rackd $RC_ENDPOINT 'c and c[\"state\"]' 2>/dev/null) == healthy ]]" 15 || return 1
    tb_assert "$RC_LABEL: it is rackd's $RC_SIDE connection" \
        test "$(rocks_conn_field "$rackd" "$RC_ENDPOINT" 'c["role"]')" = "$RC_SIDE" || return 1
    tb_assert "$RC_LABEL: the transfer is under way (the rock wrote $min bytes)" \
        tb_wait_for "(( \$(rocks_trace_bytes $RC_ROCK app) >= $min ))" 20
}

# rc_finish: both ends of the current transfer end cleanly and RC_SIZE went each way intact (SHA-256 on both ends);
# prints the rock's counters.
rc_finish() {
    tb_assert "$RC_LABEL: the client ends cleanly" rocks_wait "$RC_CLIENT" 90 || return 1
    tb_assert "$RC_LABEL: the server ends cleanly" rocks_wait "$RC_SERVER" 30 || return 1
    tb_assert "$RC_LABEL: $RC_SIZE each way intact (SHA-256 on both ends)" \
        rocks_check_pair "$RC_CLIENT" "$RC_SERVER" "$RC_SIZE" "$RC_SIZE" || return 1
    echo "   $RC_ROCK: $(rc_stats "$RC_ROCK" '"suspensions %s, recoveries %s, auth failures %s, broken recoveries %s" % (s["suspensions"], s["recoveries"], s["auth_failures"], s.get("recoveries_broken"))')"
}

# ---------------------------------------------------------------------------------------------------
# The rock's trace and stats

# rc_event NAME EVENT EXPR [INDEX]: evaluate EXPR over rockspeer NAME's EVENT record number INDEX (default -1: the
# last; bound to `e`) and print it; fails if there is no such record.
rc_event() {
    python3 - "$TB_DIR/$1.trace" "$2" "$3" "${4:--1}" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if '"event": "%s"' % sys.argv[2] in l]
events = [e for e in events if e["event"] == sys.argv[2]]
if not events:
    sys.exit("no %s record in %s" % (sys.argv[2], sys.argv[1]))
e = events[int(sys.argv[4])]
print(eval(sys.argv[3]))
PY
}

# rc_events NAME EVENT EXPR: evaluate EXPR over the list of rockspeer NAME's EVENT records (bound to `es`), e.g.
# the heartbeats after a time: rc_events NAME sendto '[e["dst"] for e in es if e["t"] > 12.3]'.
rc_events() {
    python3 - "$TB_DIR/$1.trace" "$2" "$3" <<'PY'
import json, sys
es = [json.loads(l) for l in open(sys.argv[1]) if '"event": "%s"' % sys.argv[2] in l]
es = [e for e in es if e["event"] == sys.argv[2]]
print(eval(sys.argv[3]))
PY
}

# rc_stats NAME EXPR: rocks_stats_field (EXPR over NAME's --stats file, bound to `s`).
rc_stats() { rocks_stats_field "$@"; }

# ---------------------------------------------------------------------------------------------------
# rackd's log

# rc_log_lines PATTERN [N]: the last N (default all) "rocks reconnection" lines of the scenario's rackd's log that
# match the extended regex PATTERN.
rc_log_lines() {
    local lines
    lines=$(grep 'rocks reconnection' "$TB_DIR/rackd-$RC_RACKD.log" | grep -E -- "$1") || return 0
    if [[ -n ${2:-} ]]; then tail -n "$2" <<<"$lines"; else printf '%s\n' "$lines"; fi
}

# rc_log_count PATTERN: how many "rocks reconnection" lines of the scenario's rackd's log match PATTERN.
rc_log_count() {
    { grep 'rocks reconnection' "$TB_DIR/rackd-$RC_RACKD.log" || true; } | { grep -cE -- "$1" || true; }
}

# rc_resent: N from the scenario's rackd's last "reconnected on ... rackd resent N bytes from its ring" line (empty if
# none).
rc_resent() {
    rc_log_lines 'reconnected on' 1 | sed -n 's/.*rackd resent \([0-9]*\) bytes from its ring.*/\1/p'
}

# rc_suspended_reason: the reason of the scenario's rackd's last suspension, from its log.
rc_suspended_reason() {
    grep 'state changed.*conn\.state=suspended' "$TB_DIR/rackd-$RC_RACKD.log" | tail -n 1 | sed -n 's/.*reason=//p'
}

# rc_conn EXPR: rocks_conn_field of the scenario's rackd for the current transfer's connection (EXPR over `c`, `s`).
rc_conn() { rocks_conn_field "$RC_RACKD" "$RC_ENDPOINT" "$1"; }

# ---------------------------------------------------------------------------------------------------
# The wire

# rc_datagrams PCAP SRC DST [AFTER]: how many UDP datagrams from SRC (ADDR:PORT) to DST (ADDR:PORT) PCAP holds (those
# after the wall-clock time AFTER, seconds since the epoch, if given).
rc_datagrams() {
    python3 - "$ROCKS_COMPARE" "$@" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("rtc", sys.argv[1])
rtc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rtc)
after = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
print(sum(1 for p in rtc.read_pcap(sys.argv[2])
          if p.proto == "udp" and "%s:%d" % (p.src, p.sport) == sys.argv[3]
          and "%s:%d" % (p.dst, p.dport) == sys.argv[4] and p.ts > after))
PY
}

# rc_established_to NS ADDR:PORT: how many established TCP connections in NS have the remote end ADDR:PORT.
rc_established_to() {
    ip netns exec "$1" ss -Htn state established dst "$2" 2>/dev/null | grep -c . || true
}

# rc_stop_role: after a failed scenario, stop what is left of it (its two processes and its rackd, by pid), so that the
# next scenario starts clean.
rc_stop_role() {
    local name pid
    for name in "$RC_ROCK" "$RC_APP" "rackd-$RC_RACKD"; do
        pid=$(tb_pid "$name" 2>/dev/null) || continue
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    sleep 1
}

# ---------------------------------------------------------------------------------------------------
# B's address (the test bed moves only A: tb_move_a, tb_replace_addr_a)

# rc_b_add_addr ADDR: add ADDR/24 to B's link (a secondary address in B's subnet, which R already routes to B);
# deleting B's original address later promotes it instead of removing it with the primary.
rc_b_add_addr() {
    ip netns exec "$TB_B" sh -c "echo 1 >/proc/sys/net/ipv4/conf/$TB_B_IF/promote_secondaries" || return 1
    ip -n "$TB_B" addr add "$1/24" dev "$TB_B_IF"
}

# rc_b_del_addr ADDR: delete ADDR/24 from B's link and restore B's default route (a host that lost its old address).
rc_b_del_addr() {
    ip -n "$TB_B" addr del "$1/24" dev "$TB_B_IF" || return 1
    ip -n "$TB_B" route replace default via "$TB_R_B_ADDR4" dev "$TB_B_IF"
}

# ---------------------------------------------------------------------------------------------------
# Diagnosis

# rc_diagnose: print briefly how far the rock's reconnection went, rackd's view of the connection, and the last
# reconnection lines of rackd's log (the runner shows a failed test's last 40 lines).
rc_diagnose() {
    echo "   --- $RC_LABEL: the rock: $(rocks_reconnection_progress "$RC_ROCK")"
    tail -n 3 "$TB_DIR/$RC_ROCK.rlog" 2>/dev/null | cut -c1-220 | sed 's/^/   | /'
    echo "   --- $RC_LABEL: rackd-$RC_RACKD: $(rc_conn \
        '"state %s, resumptions %s, wire %s-%s" % (c["state"], c["resumptions"], c.get("wire_local"), c.get("wire_peer")) if c else "no such connection"' 2>&1)"
    grep -E "conn\.state=|rocks reconnection" "$TB_DIR/rackd-$RC_RACKD.log" | tail -n 4 | cut -c1-260 | sed 's/^/   | /'
}
