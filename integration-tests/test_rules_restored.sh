#!/usr/bin/env bash
# test_rules_restored.sh: rackd puts its table back, managed flows included, within 1 s of someone taking it
# away (docs/rules-restore.md), and the connections it manages survive. rackd in A and B, each scenario under
# a bidirectional transfer of 24 MiB each way checked by SHA-256:
#   (a) a black hole suspends the connection; in A `nft flush ruleset`, then `nft delete table inet rackd`;
#       the black hole is lifted;
#   (b) A moves to another network mid-transfer (the connection is then rewritten); `nft flush ruleset` in A.
# Each time the test measures, from just before the nft command, how long until `nft list set inet rackd
# managed4` in A shows the table back with every element it held before (polled every 10 ms), requires it
# under 1000 ms, requires the chains to be as they were, and requires rackd's "rules restored" log line
# naming nft.
#
# In (b), for the few ms without rules B's segments on the moved connection's new tuple reach A's kernel
# unmapped and it answers with resets; B's rackd holds such a reset back until it is confirmed a second
# later (ConnectionCore.screenBareReset), so the connection survives.
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
tb_require_rackd

# rules_elements NS: the IPv4 flows in NS's maps (keys and, for a moved connection, the tuple each maps to),
# one per line, sorted ("a . p . b . q").
rules_elements() {
    local listing
    listing=$(tb_exec "$1" nft list table inet rackd 2>/dev/null) || return 0
    grep -oE '[0-9.]+ \. [0-9]+ \. [0-9.]+ \. [0-9]+' <<<"$listing" | sort || true
}

# rules_chains NS: NS's chains of inet rackd as nft lists them.
rules_chains() {
    local chain
    for chain in output input queued rewrite_out4 rewrite_in4 rewrite_out6 rewrite_in6; do
        tb_exec "$1" nft list chain inet rackd "$chain" || return 1
    done
}

# rules_restore_ms NS EXPECTED COMMAND...: run COMMAND in NS, then every 10 ms list NS's table until it
# exists and holds every line of EXPECTED; print the ms from just before COMMAND. Fails after 3 s, or if
# COMMAND fails. The loop runs inside the namespace, so a poll costs one nft run.
rules_restore_ms() {
    local ns=$1 expected=$2
    shift 2
    # shellcheck disable=SC2016
    tb_exec "$ns" bash -c '
        expected=$1
        shift
        start=${EPOCHREALTIME/[.,]/}
        "$@" || exit 2
        while :; do
            if listing=$(nft list table inet rackd 2>/dev/null); then
                complete=1
                while IFS= read -r element; do
                    [[ $listing == *"$element"* ]] || complete=0
                done <<<"$expected"
                ((complete)) && break
            fi
            (( ${EPOCHREALTIME/[.,]/} - start > 3000000 )) && exit 1
            sleep 0.01
        done
        echo $(( (${EPOCHREALTIME/[.,]/} - start) / 1000 ))' rules-restore "$expected" "$@"
}

# rules_take_away LABEL COMMAND...: take A's rules away with COMMAND while A manages a flow, and check that
# rackd put them back, elements included, within 1 s, and said so.
rules_take_away() {
    local label=$1 expected chains before ms
    shift
    tb_assert "$label: A's maps hold the flow" tb_wait_for "[[ -n \$(rules_elements $TB_A) ]]" 10 0.05
    expected=$(rules_elements "$TB_A")
    chains=$(rules_chains "$TB_A")
    before=$(racks_count a "rules restored")
    echo "$label: flows before: $(tr '\n' ' ' <<<"$expected")"
    if ms=$(rules_restore_ms "$TB_A" "$expected" "$@"); then
        echo "$label: table inet rackd back with its elements ${ms} ms after '$*'"
        tb_assert "$label: restored within 1 s (${ms} ms)" test "$ms" -lt 1000
    else
        tb_assert "$label: table inet rackd back with its elements within 3 s of '$*'" false
    fi
    tb_assert "$label: the chains are as they were" test "$(rules_chains "$TB_A")" = "$chains"
    tb_assert "$label: rackd logged the restoration" racks_wait_count a "rules restored" $((before + 1)) 5
    grep "rules restored" "$TB_DIR/rackd-a.log" | tail -n 1
    tb_assert "$label: the log names what nft deleted" \
        bash -c "grep 'rules restored' '$TB_DIR/rackd-a.log' | tail -n 1 | grep -q 'deleted by nft'"
}

racks_setup

# (a) Suspended: the table goes, twice, while the connection is held in a black hole.
tb_xfer_start held "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 24M 24M --rate 2500K -- --rate 2500K
racks_wait_managed
tb_blackhole_on
racks_assert_suspended_both 1
rules_take_away "suspended, flush ruleset" nft flush ruleset
rules_take_away "suspended, delete table" nft delete table inet rackd
tb_blackhole_off
tb_assert "suspended: resumed on both hosts after the black hole" racks_wait_count a "connection resumed" 1 10
tb_assert "suspended: 24 MiB each way arrive intact (SHA-256)" tb_xfer_finish held 300

# (b) Moved: the connection is rewritten on a new path when the table goes.
tb_xfer_start moved "$TB_A" "$TB_B" "$TB_B_ADDR4" 5002 24M 24M --rate 2500K -- --rate 2500K
tb_assert "moved: A manages the second connection" racks_wait_count a "connection managed" 2 10
tb_assert "moved: B manages the second connection" racks_wait_count b "connection managed" 2 10
tb_move_a 3
tb_assert "moved: both hosts moved the connection" roam_moved_time_ms 1
rules_take_away "moved, flush ruleset" nft flush ruleset
tb_assert "moved: 24 MiB each way arrive intact (SHA-256)" tb_xfer_finish moved 300
tb_assert "no restoration waited for the rate limit" test "$(racks_count a 'waits for the rate limit')" = 0
tb_assert "no restoration failed" test "$(racks_count a 'could not restore the rules')" = 0
