#!/usr/bin/env bash
# test_rocks_acks_lost.sh: a rocks reconnection after an outage that lost the rock's acknowledgements, so that the
# rock has read bytes the local socket still counts as unacknowledged (issue 12; docs/rocks.md §5.4, §15). The rock
# is tools/rockspeer.py in B; each role has its own rackd in A (rocks client: probe = listed; rocks server:
# serve-ports), with fixed ports (reconnection 7000, heartbeats 7001). For each role, on a connection of its own with
# 20 MiB each way at once, paced (about 16 s):
#   - once the rock has written 2.5 MiB, R drops everything from B to A (tb_blackhole_on b2a) for 17 s: the rock
#     keeps receiving A's bytes and reading them, but its acknowledgements (and heartbeats, and bytes) are lost;
#     rackd suspends after 15 s without a heartbeat and resets the old connection, which reaches the rock: the rock
#     suspends on that reset, its position (rcvseq) ahead of the local socket's snd_una;
#   - after the hole the rock reconnects and recovers within 15 s; rackd's log: "reconnected on ...", with nothing
#     to resend from its ring (the rock has more than the socket had acknowledged); rackd shows the connection healthy
#     again, resumptions >= 1;
#   - both ends finish, SHA-256 of each direction equal on both ends; the rock counted one suspension, one recovery.
# This is what happens, less reliably, whenever an outage (an address change, a black hole) swallows the rock's last
# acknowledgements: test_rocks_roam_local.sh, test_rocks_roam_peer.sh and test_rocks_1of2.sh meet it now and then.
# Knobs: RC_SCENARIOS="kc ks" picks scenarios; RC_CAPTURE=1 captures B's link (lib/rocks_reconnect.sh).
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

# acks_lost SIDE LABEL PORT: one transfer in rackd's role SIDE through a black hole from B to A.
acks_lost() {
    local side=$1 label=$2 port=$3 t0 left
    echo "== $label: rackd as the rocks $side; a black hole from B to A only: the rock's acknowledgements are lost"
    rc_rackd_start "$label" || return 1
    rc_start "$side" "$label" "$port" || return 1
    rc_established 2621440 || return 1
    t0=$(date +%s%N)
    tb_blackhole_on b2a || return 1
    tb_assert "$label: rackd suspends within 20 s (no rocks heartbeat)" \
        tb_wait_for "[[ \$(rc_conn 'c and c[\"state\"]') == suspended ]]" 20 || return 1
    echo "   rackd suspended after $((($(date +%s%N) - t0) / 1000000)) ms: $(rc_suspended_reason)"
    tb_assert "$label: the rock suspends on rackd's reset" \
        tb_wait_for "rocks_trace_has $RC_ROCK suspend 'reset by peer'" 3 || return 1
    echo "   the rock: $(rc_event "$RC_ROCK" suspend '"%s at sndseq %d, rcvseq %d" % (e["reason"], e["sndseq"], e["rcvseq"])')"
    left=$(((t0 + 17000000000 - $(date +%s%N)) / 1000000))
    ((left <= 0)) || sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))" # the rest of the 17 s
    tb_blackhole_off || return 1
    echo "-- $label: black hole off after $((($(date +%s%N) - t0) / 1000000)) ms"
    if ! tb_assert "$label: the rock reconnects and recovers within 15 s" \
        tb_wait_for "rocks_trace_has $RC_ROCK recovered" 15; then
        rc_diagnose
        return 1
    fi
    echo "   the rock: $(rc_event "$RC_ROCK" recovered '"recovered on %s connection %s -> %s, rackd reported rcvseq %s, resent %s bytes" % (e["pick"], e["local"], e["peer"], e["peer_rcvseq"], e["resent_bytes"])')"
    if ! tb_assert "$label: rackd's log: reconnected" tb_wait_for "[[ -n \$(rc_log_lines 'reconnected on') ]]" 5; then
        rc_diagnose
        return 1
    fi
    echo "   rackd: $(rc_log_lines 'reconnected on' 1 | sed 's/.*detail=//')"
    tb_assert "$label: rackd shows the connection healthy again, resumptions >= 1" \
        tb_wait_for "[[ \$(rc_conn 'bool(c and c[\"state\"] == \"healthy\" and c[\"resumptions\"] >= 1)') == True ]]" 5 ||
        return 1
    rc_finish || return 1
    tb_assert "$label: the rock counted one suspension and one recovery" \
        test "$(rc_stats "$RC_ROCK" '(s["suspensions"], s["recoveries"])')" = "(1, 1)" || return 1
    rc_rackd_stop
}

failed=()
! rc_want kc || acks_lost client kc 5000 || { failed+=(client) && rc_stop_role; }
! rc_want ks || acks_lost server ks 5001 || { failed+=(server) && rc_stop_role; }
if ((${#failed[@]})); then
    echo "FAILED roles: ${failed[*]}"
    exit 1
fi
