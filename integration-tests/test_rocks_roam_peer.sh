#!/usr/bin/env bash
# test_rocks_roam_peer.sh: the rock's host (B) changes its address mid-transfer, and rackd's reconnection port takes
# the rock's reconnection from the new address (issue 12; docs/rocks.md §5, §15). rackd in A plays the rocks client
# (probe = listed) and then the rocks server (serve-ports), with fixed ports (reconnection 7000, heartbeats 7001);
# the rock is tools/rockspeer.py in B with --reconnect-from NEW (its reconnection connects from the new address, as a
# moved host's would). For each role, on a connection of its own with 20 MiB each way at once, paced (about 16 s):
#   - B gets a second address NEW before the transfer; once the rock has written 2.5 MiB, B's address OLD is deleted:
#     the rock suspends at once (its heartbeat sendto fails) and reconnects from NEW;
#   - rackd's log: "the rock connected from NEW:port", then "reconnected on A:7000-NEW:port (passive)";
#   - the rock's trace: one 1of2 pick, its active connection from NEW to rackd's reconnection address, then its
#     recovery; its new heartbeat and reconnection sockaddrs are on NEW; rackd's recovery messages named A's address
#     and ports 7001 (heartbeat) and 7000 (reconnection);
#   - rackctl status --json: the connection healthy again, resumptions >= 1, its wire peer on NEW;
#   - heartbeats afterwards (capture on B): at least 3 from A:7001 to the rock's new heartbeat socket on NEW, and the
#     rock's own after its recovery all go from NEW to A:7001;
#   - both ends finish, SHA-256 of each direction equal on both ends; the rock counted one suspension, one recovery.
# B keeps NEW afterwards (the server role then moves from NEW to a third address).
# Knobs: RC_SCENARIOS="pc ps" picks scenarios; RC_CAPTURE=1 captures B's link (lib/rocks_reconnect.sh).
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
command -v tcpdump >/dev/null || tb_skip "tcpdump is missing (scripts/install-deps)"

tb_setup

# peer_moves SIDE LABEL PORT NEW: one transfer in rackd's role SIDE during which B moves from its address to NEW.
peer_moves() {
    local side=$1 label=$2 port=$3 new=$4 old=$TB_B_ADDR4 t0 since hb_new hb_rock n
    echo "== $label: rackd as the rocks $side; B moves from $old to $new mid-transfer"
    rc_rackd_start "$label" || return 1
    tb_assert "$label: B gets a second address $new" rc_b_add_addr "$new" || return 1
    rc_start "$side" "$label" "$port" -- --reconnect-from "$new" || return 1
    rc_established 2621440 || return 1
    rocks_capture_start "$label-udp" "$TB_B" "$TB_B_IF" "udp" || return 1

    t0=$(date +%s%N)
    tb_assert "$label: B's address $old deleted" rc_b_del_addr "$old" || return 1
    TB_B_ADDR4=$new
    tb_assert "$label: the rock suspends at once (its heartbeat sendto fails)" \
        tb_wait_for "rocks_trace_has $RC_ROCK suspend" 3 || return 1
    echo "   the rock: $(rc_event "$RC_ROCK" suspend 'e["reason"]')"
    if ! tb_assert "$label: the rock reconnects from $new and recovers within 15 s" \
        tb_wait_for "rocks_trace_has $RC_ROCK recovered" 15; then
        rc_diagnose
        return 1
    fi
    echo "   recovered $((($(date +%s%N) - t0) / 1000000)) ms after the move"
    since=$(date +%s.%N)
    echo "   the rock: $(rc_event "$RC_ROCK" recovered '"%s connection %s -> %s; ours hb %s rec %s; rackd hb %s rec %s; resent %s" % (e["pick"], e["local"], e["peer"], e["local_hb_addr"], e["local_rec_addr"], e["peer_hb_addr"], e["peer_rec_addr"], e["resent_bytes"])')"
    tb_assert "$label: the rock's reconnection was its active connection from $new to rackd's reconnection address" \
        test "$(rc_event "$RC_ROCK" recovered '(e["pick"], e["local"].split(":")[0], e["peer"])')" = \
        "('active', '$new', '$TB_A_ADDR4:$RC_REC_PORT')" || return 1
    tb_assert "$label: the rock's new heartbeat and reconnection sockaddrs are on $new" \
        test "$(rc_event "$RC_ROCK" recovered '(e["local_hb_addr"].split(":")[0], e["local_rec_addr"].split(":")[0])')" = \
        "('$new', '$new')" || return 1
    tb_assert "$label: rackd's recovery messages named $TB_A_ADDR4:$RC_HB_PORT (heartbeat) and :$RC_REC_PORT (reconnection)" \
        test "$(rc_event "$RC_ROCK" recovered '(e["peer_hb_addr"], e["peer_rec_addr"])')" = \
        "('$TB_A_ADDR4:$RC_HB_PORT', '$TB_A_ADDR4:$RC_REC_PORT')" || return 1
    tb_assert "$label: rackd's log: the rock connected from $new" \
        test "$(rc_log_count "the rock connected from $new:")" -ge 1 || return 1
    if ! tb_assert "$label: rackd's log: reconnected on $TB_A_ADDR4:$RC_REC_PORT-$new (passive)" \
        tb_wait_for "[[ -n \$(rc_log_lines 'reconnected on $TB_A_ADDR4:$RC_REC_PORT-$new:[0-9]+ \\(passive\\)') ]]" 5; then
        rc_diagnose
        return 1
    fi
    echo "   rackd: $(rc_log_lines 'reconnected on' 1 | sed 's/.*detail=//')"
    tb_assert "$label: rackd shows the connection healthy again, resumptions >= 1, its wire peer on $new" \
        tb_wait_for "[[ \$(rc_conn 'bool(c and c[\"state\"] == \"healthy\" and c[\"resumptions\"] >= 1 and (c.get(\"wire_peer\") or \"\").startswith(\"$new:\"))') == True ]]" 5 ||
        return 1

    sleep 3.5 # heartbeats on the new path
    rocks_capture_stop "$label-udp" || return 1
    hb_rock=$(rc_event "$RC_ROCK" recovered 'e["local_hb_addr"]')
    n=$(rc_datagrams "$TB_DIR/$label-udp.pcap" "$TB_A_ADDR4:$RC_HB_PORT" "$hb_rock" "$since")
    tb_assert "$label: rackd heartbeats the rock's new socket $hb_rock from $TB_A_ADDR4:$RC_HB_PORT ($n in 3.5 s)" \
        test "$n" -ge 3 || return 1
    hb_new=$(rc_events "$RC_ROCK" sendto "sorted(set((e['src'], e['dst']) for e in es if e['t'] > $(rc_event "$RC_ROCK" recovered 'e["recovered_at"]')))")
    tb_assert "$label: the rock's heartbeats since its recovery all go from $hb_rock to $TB_A_ADDR4:$RC_HB_PORT" \
        test "$hb_new" = "[('$hb_rock', '$TB_A_ADDR4:$RC_HB_PORT')]" || return 1

    rc_finish || return 1
    tb_assert "$label: the rock counted one suspension and one recovery" \
        test "$(rc_stats "$RC_ROCK" '(s["suspensions"], s["recoveries"])')" = "(1, 1)" || return 1
    rc_rackd_stop
}

failed=()
! rc_want pc || peer_moves client pc 5000 10.2.0.3 || { failed+=(client) && rc_stop_role; }
! rc_want ps || peer_moves server ps 5001 10.2.0.4 || { failed+=(server) && rc_stop_role; }
if ((${#failed[@]})); then
    echo "FAILED roles: ${failed[*]}"
    exit 1
fi
