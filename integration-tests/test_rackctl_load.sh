#!/usr/bin/env bash
# test_rackctl_load.sh: the control socket under load (issue 13, "The control plane under load"). With a
# status group the socket is open to every local user; while 100 connections that send nothing and 20 that
# send a byte every 250 ms keep coming back (lib/control_load.py), from a member of the group and then from
# root, `rackctl status` and `rackctl suspend --all` (root) and a member's `rackctl status` each answer
# within 1 s, rackd holds no more clients than its places (64 for members, 16 for root: docs/control.md),
# its RSS stays within 8 MiB of what it was, and a stranger is refused at once without sending anything.
# timeout: 180
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/resources.sh
source "$here/lib/resources.sh"
tb_require_rackd

tb_setup
# Other users must reach the binaries and the socket: a world-searchable directory of the test's own.
chmod 711 "$TB_DIR"
pub=$TB_DIR/pub
mkdir -m 755 "$pub"
cp "$(tb_rackctl_bin)" "$pub/rackctl"
cp "$here/lib/control_load.py" "$pub/control_load.py"
socket=$pub/rackd.sock
printf '[control]\nstatus-group = nogroup\n' >"$TB_DIR/rackd.conf"
tb_start_rackd "$TB_A" a --config "$TB_DIR/rackd.conf" --control-socket "$socket"
pid=$(tb_rackd_pid a)
nogroup=$(getent group nogroup | cut -d: -f3)
# Other users run the load tool too: the system's python, which they can reach (root's may be a shim they cannot).
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3)

# open_fds: how many descriptors rackd has open.
open_fds() { find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }

# timed LABEL CMD...: run CMD (its output in $TB_DIR/last.out), print how long it took; fail if it failed
# or took 1 s or more.
timed() {
    local label=$1 start end ms rc=0
    shift
    start=${EPOCHREALTIME/[.,]/}
    "$@" >"$TB_DIR/last.out" 2>&1 || rc=$?
    end=${EPOCHREALTIME/[.,]/}
    ms=$(((end - start) / 1000))
    echo "  $label: exit $rc in $ms ms"
    ((rc == 0)) || { cat "$TB_DIR/last.out"; return 1; }
    ((ms < 1000))
}

as_member() { setpriv --reuid=4242 --regid=4242 --groups "$nogroup" "$pub/rackctl" "$@" --socket "$socket"; }

# Once without load, so that what the first answer allocates counts in the baseline.
tb_assert "status answers without load" timed "status (idle)" "$pub/rackctl" status --socket "$socket"
tb_assert "suspend --all answers without load" timed "suspend --all (idle)" "$pub/rackctl" suspend --all --socket "$socket"
fds_before=$(open_fds)
rss_before=$(proc_rss_kb "$pid")
echo "before the load: $fds_before descriptors, VmRSS $rss_before KiB"

# load_phase WHO: the load from WHO (member: a status-group member, uid 4242; root), with rackctl as root and as
# a member timed against it, a stranger refused during it, and rackd's descriptors and RSS watched.
load_phase() {
    local who=$1 as=() max_fds=0 fds round out stats rss_peak rss_after
    [[ $who == member ]] && as=(setpriv --reuid=4242 --regid=4242 --groups "$nogroup")
    echo "== load from $who: 100 idle clients, 20 sending a byte every 250 ms"
    proc_reset_peak_rss "$pid"
    tb_bg "$TB_A" "load-$who" "${as[@]}" "$python" "$pub/control_load.py" hold "$socket" --idle 100 --trickle 20 --byte-every 0.25
    tb_assert "$who: the load is on" tb_wait_for "grep -q '^ready' '$TB_DIR/load-$who.log'" 20
    # Root's pool has 16 places, the members' 64 (docs/control.md).
    local places=64
    [[ $who == root ]] && places=16
    tb_assert "$who: rackd's places fill up ($places clients held)" tb_wait_for "(( \$(open_fds) >= $fds_before + $places - 4 ))" 10
    for round in 1 2 3 4 5; do
        tb_assert "$who, round $round: rackctl status answers within 1 s" timed "status" "$pub/rackctl" status --socket "$socket"
        tb_assert "$who, round $round: ... with rackd's status" grep -q "^rackd .*, pid $pid," "$TB_DIR/last.out"
        tb_assert "$who, round $round: rackctl suspend --all answers within 1 s" timed "suspend --all" "$pub/rackctl" suspend --all --socket "$socket"
        tb_assert "$who, round $round: ... with what it suspended" grep -q "^suspended 0 connections" "$TB_DIR/last.out"
        tb_assert "$who, round $round: a status-group member's status answers within 1 s" timed "status (member)" as_member status --json
        tb_assert "$who, round $round: ... with rackd's status" grep -q "\"pid\" : $pid\|\"pid\": $pid" "$TB_DIR/last.out"
        fds=$(open_fds)
        ((fds > max_fds)) && max_fds=$fds
        sleep 0.5 # spread the rounds over the clients' deadlines (3 s), so that some meet a fresh wave
    done
    # A stranger: refused at once, before it sends anything, while every place is taken.
    out=$(setpriv --reuid=4243 --regid=4243 --clear-groups "$python" "$pub/control_load.py" refused "$socket") || true
    echo "  stranger: $out"
    tb_assert "$who: a stranger is refused without sending anything, within 1 s" \
        python3 -c 'import sys; w = sys.argv[1].split(); sys.exit(0 if w[0] == "refused" and float(w[2]) < 1 else 1)' "$out"
    # Descriptors while loaded: the members' 64 places and root's 16 at most, plus the 8 a loop turn may accept
    # before it closes the clients that gave way, plus rackctl's own.
    echo "  descriptors while loaded: up to $max_fds (before: $fds_before)"
    tb_assert "$who: rackd held no more clients than its places" test "$max_fds" -le $((fds_before + places + 8 + 1))
    rss_peak=$(proc_peak_rss_kb "$pid")
    kill -TERM "$(tb_pid "load-$who")"
    tb_wait_bg "load-$who" 10 || true
    stats=$(tail -n 1 "$TB_DIR/load-$who.log")
    echo "  load: $stats"
    tb_assert "$who: rackd closed clients that took too long or gave way" grep -Eq "closed_by_rackd=[1-9]" <<<"$stats"
    tb_assert "$who: rackd lets go of every client once the load is gone" tb_wait_for "(( \$(open_fds) <= $fds_before ))" 10
    rss_after=$(proc_rss_kb "$pid")
    echo "  VmRSS: before $rss_before KiB, peak while loaded $rss_peak KiB, after $rss_after KiB"
    tb_assert "$who: the peak RSS stayed within 8 MiB of the baseline" test $((rss_peak - rss_before)) -lt 8192
    tb_assert "$who: the RSS after the load is within 8 MiB of the baseline" test $((rss_after - rss_before)) -lt 8192
}

load_phase member
load_phase root
tb_assert "rackd logged the strangers' refusals with their uid" grep -q "control request refused.*client.uid=4243" "$TB_DIR/rackd-a.log"
tb_assert "status answers after the load" timed "status (after)" "$pub/rackctl" status --socket "$socket"
tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a
