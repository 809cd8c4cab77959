#!/usr/bin/env bash
# test_rackctl_suspend_resume.sh: `rackctl suspend --all` holds a connection under a bidirectional transfer
# while the path works (B sees an outage and suspends too; A answers none of its challenges), and
# `rackctl resume --all` brings both ends back within 1 s. Then the same through the system-sleep hook
# (packaging/systemd/rackd-sleep pre / post), as systemd-sleep runs it around a sleep. Both streams
# must arrive intact (SHA-256).
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -P -- "$here/.." && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/control.sh
source "$here/lib/control.sh"
tb_require_rackd

# hold_command HOW VERB OUT: suspend (VERB=suspend) or resume (VERB=resume) every connection of A through HOW
# (rackctl, or the sleep hook's pre / post), its output in OUT.
hold_command() {
    local how=$1 verb=$2 out=$3 phase=pre
    [[ $verb == resume ]] && phase=post
    case $how in
    rackctl) tb_rackctl a "$verb" --all | tee "$out" ;;
    hook) RACKCTL=$(tb_rackctl_bin) RACKD_SOCKET=$TB_DIR/rackd-a.sock "$repo/packaging/systemd/rackd-sleep" "$phase" suspend \
        2>&1 | tee "$out" ;;
    esac
}

# held_round N HOW: one suspend/resume round, HOW = rackctl | hook.
held_round() {
    local round=$1 how=$2 ms sent_before sent_after
    echo "round $round: suspend through $how"
    hold_command "$how" suspend "$TB_DIR/suspend-$round.out"
    tb_assert "round $round: the suspend named connection 1" grep -q "suspended 1 connection: 1" "$TB_DIR/suspend-$round.out"
    tb_assert "round $round: A's status: suspended and held" control_wait_state a "suspended+held" 2
    tb_assert "round $round: B sees an outage and suspends" racks_wait_count b "state changed.*conn.state=suspended" "$round" 10
    sleep 4   # B challenges A all the while over a working path
    tb_assert "round $round: A still holds the connection" test "$(control_state a)" = "suspended+held"
    tb_assert "round $round: A answered none of B's challenges" test "$(racks_count a 'challenge answered')" = 0
    sent_before=$(racks_unacked "$TB_A" 5001)
    sleep 1
    sent_after=$(racks_unacked "$TB_A" 5001)
    echo "round $round: A's unacknowledged bytes ${sent_before} then ${sent_after}"
    tb_assert "round $round: nothing of A's is acknowledged while held" test "$sent_before" = "$sent_after"
    tb_assert "round $round: status reports the held bytes" test "$(control_field a 's["connections"][0]["bytes_held"]')" -gt 0
    hold_command "$how" resume "$TB_DIR/resume-$round.out"
    tb_assert "round $round: the resume named connection 1" grep -q "resuming 1 connection: 1" "$TB_DIR/resume-$round.out"
    ms=$(racks_resume_time_ms "$round")
    echo "round $round: both ends resumed ${ms} ms after the resume"
    tb_assert "round $round: both ends resume within 1 s of the resume (${ms} ms)" test "$ms" -le 1000
    tb_assert "round $round: A's status: healthy" control_wait_state a healthy 5
}

racks_setup
# 120 MiB at 2.5 MiB/s: about 48 s each way, longer than both rounds.
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 120M 120M --rate 2500K -- --rate 2500K
racks_wait_managed
sleep 2
held_round 1 rackctl
sleep 2
held_round 2 hook
tb_assert "status counts two resumptions" test "$(control_field a 's["connections"][0]["resumptions"]')" = 2
tb_assert "resuming a healthy connection changes nothing" bash -c "$(tb_rackctl_bin) resume 1 --socket $TB_DIR/rackd-a.sock | grep -q 'resuming 0 connections'"
tb_assert_fails "an unknown id is refused" tb_rackctl a suspend 99
tb_assert "the refusal says why" bash -c "$(tb_rackctl_bin) suspend 99 --socket $TB_DIR/rackd-a.sock 2>&1 | grep -q 'no managed connection has id 99'"
tb_assert "120 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
tb_assert "no resumption was rejected" test "$(racks_count a 'resumption rejected')" = 0
