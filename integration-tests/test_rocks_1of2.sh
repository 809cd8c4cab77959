#!/usr/bin/env bash
# test_rocks_1of2.sh: rackd and a rock reconnect at the same time, each with its own connection to the other, and
# 1of2 keeps one (issue 12; docs/rocks.md §5.2, §5.5, §15). rackd in A plays the rocks client (probe = listed), then
# the rocks server (serve-ports), with fixed ports (reconnection 7000, heartbeats 7001); the rock is
# tools/rockspeer.py in B. For each role, on a connection of its own with 20 MiB each way at once, paced (about 16 s):
#   - a black hole in R, both directions, once the rock has written 2.5 MiB: both ends detect it by missed heartbeats
#     at about the same time (rackd within 20 s: reason "no rocks heartbeat"; the rock after 15 missed beats), and
#     both keep connecting to the other's reconnection address (rackd's SYNs every second, the rock's connects);
#   - so that both connections are up before either end can pick one, the rock's process is stopped (SIGSTOP) while
#     the hole is lifted: its kernel completes both handshakes meanwhile (rackd's SYN to its listener, its own
#     pending connect to rackd's reconnection port). Asserted from `ss` in B: two established connections with
#     A:7000 at once. Then the rock continues (SIGCONT) and finds both ready;
#   - the rock's trace: its 1of2 record counts one accepted connection (rackd's active link) and one connected
#     (its own, rackd's passive link), and it picked one; rackd's log: the rock's link adopted ("the rock connected
#     from B:port") and "reconnected on A:7000-B:port" on the link the rock picked (the rock picks its active one,
#     rackd's passive; when the rock is the server that is "its active one if both are");
#   - the rock recovers, rackd shows the connection healthy again (resumptions >= 1);
#   - both ends finish, SHA-256 of each direction equal on both ends; the rock counted one suspension, one
#     recovery, no authentication failure.
# Knobs: RC_SCENARIOS="bc bs" picks scenarios; RC_CAPTURE=1 captures B's link (lib/rocks_reconnect.sh).
# timeout: 150
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
# shellcheck source=integration-tests/lib/rocks_reconnect.sh
source "$here/lib/rocks_reconnect.sh"
tb_require_rackd

tb_setup

# both_reconnect SIDE LABEL PORT: one transfer in rackd's role SIDE through a black hole both ends detect.
both_reconnect() {
    local side=$1 label=$2 port=$3 t0 pid pick rackd_pick link
    echo "== $label: rackd as the rocks $side; a black hole both ends detect, then both reconnect at once"
    rc_rackd_start "$label" || return 1
    rc_start "$side" "$label" "$port" || return 1
    rc_established 2621440 || return 1
    pid=$(tb_pid "$RC_ROCK") || return 1

    t0=$(date +%s%N)
    tb_blackhole_on || return 1
    tb_assert "$label: rackd suspends within 20 s (no rocks heartbeat)" \
        tb_wait_for "[[ \$(rc_conn 'c and c[\"state\"]') == suspended ]]" 20 || return 1
    echo "   rackd suspended after $((($(date +%s%N) - t0) / 1000000)) ms"
    tb_assert "$label: rackd's log gives the reason (no rocks heartbeat)" \
        grep -q "conn\.state=suspended .*reason=no rocks heartbeat" "$TB_DIR/rackd-$RC_RACKD.log" || return 1
    tb_assert "$label: the rock suspends too, after 15 missed heartbeats" \
        tb_wait_for "rocks_trace_has $RC_ROCK suspend '15 missed heartbeats'" 5 || return 1
    echo "   the rock suspended after $((($(date +%s%N) - t0) / 1000000)) ms"
    sleep 1.5 # both ends are reconnecting into the black hole now
    kill -STOP "$pid"
    tb_blackhole_off || { kill -CONT "$pid"; return 1; }
    echo "-- $label: the rock stopped, black hole off after $((($(date +%s%N) - t0) / 1000000)) ms"
    if ! tb_assert "$label: both connections come up while the rock is stopped (two established with A:$RC_REC_PORT in B)" \
        tb_wait_for "(( \$(rc_established_to $TB_B $TB_A_ADDR4:$RC_REC_PORT) >= 2 ))" 8; then
        ip netns exec "$TB_B" ss -tan | grep ":$RC_REC_PORT" | sed 's/^/   | /'
        kill -CONT "$pid"
        return 1
    fi
    ip netns exec "$TB_B" ss -Htn state established dst "$TB_A_ADDR4:$RC_REC_PORT" | sed 's/^/   | ss: /'
    kill -CONT "$pid"

    if ! tb_assert "$label: the rock recovers within 15 s" tb_wait_for "rocks_trace_has $RC_ROCK recovered" 15; then
        rc_diagnose
        return 1
    fi
    echo "   the rock's 1of2: $(rc_event "$RC_ROCK" 1of2 '"picked its %s connection %s -> %s; accepted %d, connected %d, attempts %d" % (e["pick"], e["local"], e["peer"], e["accepted"], e["connected"], e["attempts"])')"
    tb_assert "$label: the rock had both connections: one accepted (rackd's active link), one connected (rackd's passive)" \
        test "$(rc_event "$RC_ROCK" 1of2 '(e["accepted"], e["connected"])')" = "(1, 1)" || return 1
    pick=$(rc_event "$RC_ROCK" 1of2 'e["pick"]')
    link=$(rc_event "$RC_ROCK" 1of2 'e["peer"] + "-" + e["local"]') # as rackd names it: A's end first
    rackd_pick=$([[ $pick == active ]] && echo passive || echo active)
    tb_assert "$label: the rock picked its active connection (rackd's passive link)" test "$pick" = active || return 1
    tb_assert "$label: rackd's log: the rock's link adopted (the rock connected from ${link#*-})" \
        test "$(rc_log_count "the rock connected from ${link#*-}")" -ge 1 || return 1
    if ! tb_assert "$label: rackd's log: reconnected on $link ($rackd_pick), the link the rock picked" \
        tb_wait_for "[[ -n \$(rc_log_lines 'reconnected on $link \\($rackd_pick\\)') ]]" 5; then
        rc_diagnose
        return 1
    fi
    echo "   rackd: $(rc_log_lines 'reconnected on' 1 | sed 's/.*detail=//')"
    rc_log_lines "link [0-9.:]+-$TB_B_ADDR4:[0-9]+ dropped" | sed 's/.*detail=/   rackd: /'
    tb_assert "$label: rackd shows the connection healthy again, resumptions >= 1" \
        tb_wait_for "[[ \$(rc_conn 'bool(c and c[\"state\"] == \"healthy\" and c[\"resumptions\"] >= 1)') == True ]]" 5 ||
        return 1

    rc_finish || return 1
    tb_assert "$label: the rock counted one suspension, one recovery, no authentication failure" \
        test "$(rc_stats "$RC_ROCK" '(s["suspensions"], s["recoveries"], s["auth_failures"])')" = "(1, 1, 0)" || return 1
    rc_rackd_stop
}

failed=()
! rc_want bc || both_reconnect client bc 5000 || { failed+=(client) && rc_stop_role; }
! rc_want bs || both_reconnect server bs 5001 || { failed+=(server) && rc_stop_role; }
if ((${#failed[@]})); then
    echo "FAILED roles: ${failed[*]}"
    exit 1
fi
