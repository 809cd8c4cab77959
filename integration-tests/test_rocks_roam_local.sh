#!/usr/bin/env bash
# test_rocks_roam_local.sh: A (rackd's host) moves to another network mid-transfer, and rackd reconnects to the rock
# from its new address (issue 12; docs/rocks.md §5, §15; docs/roaming.md). rackd in A plays the rocks client (probe
# = listed) and the rocks server (serve-ports), with fixed ports (reconnection 7000, heartbeats 7001); the rock is
# tools/rockspeer.py in B. Three scenarios, each on a connection of its own with 20 MiB each way at once, paced
# (about 16 s); once the rock has written 2.5 MiB, A moves (tb_move_a) from OLD to NEW:
#   1. rackd as the client, break before make (OLD removed, then NEW added);
#   2. rackd as the server, break before make;
#   3. rackd as the client, make before break (NEW added, then OLD removed).
# For each:
#   - the rock's init named OLD:7000 and OLD:7001; rackd suspends at once (reason: local address OLD lost);
#   - the rock reconnects and recovers within 30 s (it hears of the failure from rackd's reset, or after 15 missed
#     heartbeats when that reset could not leave A);
#   - rackd's log: "reconnected on NEW:7000-B:port"; the rock's trace: the reconnection's A end is NEW:7000, and
#     rackd's recovery messages carried NEW: heartbeat sockaddr NEW:7001, reconnection sockaddr NEW:7000;
#   - rackctl status --json: healthy again, resumptions >= 1, wire local NEW:7000;
#   - heartbeats afterwards (capture on B): at least 3 from NEW:7001 to the rock's new heartbeat socket, none from A
#     to the rock's old one; the rock's own since its recovery all go to NEW:7001;
#   - both ends finish, SHA-256 of each direction equal on both ends; the rock counted one suspension, one recovery.
# Knobs: RC_SCENARIOS="lc ls lm" picks scenarios; RC_CAPTURE=1 captures B's link (lib/rocks_reconnect.sh).
# timeout: 170
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
# shellcheck source=integration-tests/lib/rocks_reconnect.sh
source "$here/lib/rocks_reconnect.sh"
tb_require_rackd
command -v tcpdump >/dev/null || tb_skip "tcpdump is missing (scripts/install-deps)"

tb_setup

# a_moves SIDE LABEL PORT NET [--make-before-break]: one transfer in rackd's role SIDE during which A moves to 10.NET.0.2.
a_moves() {
    local side=$1 label=$2 port=$3 net=$4 how=${5:-} old=$TB_A_ADDR4 new=10.$4.0.2 t0 since hb_rock hb_old n
    echo "== $label: rackd as the rocks $side; A moves from $old to $new mid-transfer (${how:-break before make})"
    rc_rackd_start "$label" || return 1
    rc_start "$side" "$label" "$port" || return 1
    rc_established 2621440 || return 1
    tb_assert "$label: the rock's init named rackd's $old:$RC_REC_PORT (reconnection) and $old:$RC_HB_PORT (heartbeat)" \
        test "$(rc_event "$RC_ROCK" init-done '(e["peer_rec_addr"], e["peer_hb_addr"])')" = \
        "('$old:$RC_REC_PORT', '$old:$RC_HB_PORT')" || return 1
    hb_old=$(rc_event "$RC_ROCK" init-done 'e["local_hb_addr"]')
    rocks_capture_start "$label-udp" "$TB_B" "$TB_B_IF" "udp" || return 1

    t0=$(date +%s%N)
    tb_assert "$label: A moves to $new" tb_move_a ${how:+"$how"} "$net" || return 1
    tb_assert "$label: rackd suspends the connection at once (local address $old lost)" \
        tb_wait_for "grep -q 'conn\\.state=suspended .*reason=local address $old lost' '$TB_DIR/rackd-$RC_RACKD.log'" 3 || return 1
    if ! tb_assert "$label: the rock reconnects and recovers within 30 s of the move" \
        tb_wait_for "rocks_trace_has $RC_ROCK recovered" 30; then
        rc_diagnose
        return 1
    fi
    echo "   recovered $((($(date +%s%N) - t0) / 1000000)) ms after the move; the rock suspended: $(rc_event "$RC_ROCK" suspend 'e["reason"]')"
    since=$(date +%s.%N)
    echo "   the rock: $(rc_event "$RC_ROCK" recovered '"%s connection %s -> %s; ours hb %s rec %s; rackd hb %s rec %s; resent %s" % (e["pick"], e["local"], e["peer"], e["local_hb_addr"], e["local_rec_addr"], e["peer_hb_addr"], e["peer_rec_addr"], e["resent_bytes"])')"
    tb_assert "$label: the reconnection's A end is $new:$RC_REC_PORT" \
        test "$(rc_event "$RC_ROCK" recovered 'e["peer"]')" = "$new:$RC_REC_PORT" || return 1
    tb_assert "$label: rackd's recovery messages carried $new: heartbeat $new:$RC_HB_PORT, reconnection $new:$RC_REC_PORT" \
        test "$(rc_event "$RC_ROCK" recovered '(e["peer_hb_addr"], e["peer_rec_addr"])')" = \
        "('$new:$RC_HB_PORT', '$new:$RC_REC_PORT')" || return 1
    if ! tb_assert "$label: rackd's log: reconnected on $new:$RC_REC_PORT-$TB_B_ADDR4" \
        tb_wait_for "[[ -n \$(rc_log_lines 'reconnected on $new:$RC_REC_PORT-$TB_B_ADDR4:') ]]" 5; then
        rc_diagnose
        return 1
    fi
    echo "   rackd: $(rc_log_lines 'reconnected on' 1 | sed 's/.*detail=//')"
    tb_assert "$label: rackd shows the connection healthy again, resumptions >= 1, wire local $new:$RC_REC_PORT" \
        tb_wait_for "[[ \$(rc_conn 'bool(c and c[\"state\"] == \"healthy\" and c[\"resumptions\"] >= 1 and c.get(\"wire_local\") == \"$new:$RC_REC_PORT\")') == True ]]" 5 ||
        return 1

    sleep 3.5 # heartbeats on the new path
    rocks_capture_stop "$label-udp" || return 1
    hb_rock=$(rc_event "$RC_ROCK" recovered 'e["local_hb_addr"]')
    n=$(rc_datagrams "$TB_DIR/$label-udp.pcap" "$new:$RC_HB_PORT" "$hb_rock" "$since")
    tb_assert "$label: rackd heartbeats the rock's new socket $hb_rock from $new:$RC_HB_PORT ($n in 3.5 s)" \
        test "$n" -ge 3 || return 1
    n=$(($(rc_datagrams "$TB_DIR/$label-udp.pcap" "$old:$RC_HB_PORT" "$hb_old" "$since") +
        $(rc_datagrams "$TB_DIR/$label-udp.pcap" "$new:$RC_HB_PORT" "$hb_old" "$since")))
    tb_assert "$label: no heartbeat from A to the rock's old socket $hb_old since the recovery" test "$n" -eq 0 || return 1
    tb_assert "$label: the rock's heartbeats since its recovery all go from $hb_rock to $new:$RC_HB_PORT" \
        test "$(rc_events "$RC_ROCK" sendto "sorted(set((e['src'], e['dst']) for e in es if e['t'] > $(rc_event "$RC_ROCK" recovered 'e["recovered_at"]')))")" = \
        "[('$hb_rock', '$new:$RC_HB_PORT')]" || return 1

    rc_finish || return 1
    tb_assert "$label: the rock counted one suspension and one recovery" \
        test "$(rc_stats "$RC_ROCK" '(s["suspensions"], s["recoveries"])')" = "(1, 1)" || return 1
    rc_rackd_stop
}

failed=()
! rc_want lc || a_moves client lc 5000 3 || { failed+=(client) && rc_stop_role; }
! rc_want ls || a_moves server ls 5001 4 || { failed+=(server) && rc_stop_role; }
! rc_want lm || a_moves client lm 5002 5 --make-before-break || { failed+=("client, make before break") && rc_stop_role; }
if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
