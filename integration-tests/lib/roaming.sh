# shellcheck shell=bash
# integration-tests/lib/roaming.sh: the roaming scenarios of docs/roaming.md (A moves to another network under a
# bidirectional transfer). Source it after testbed/netns.sh and lib/racks.sh.

# roam_wait_moved HOST N TIMEOUT_S: wait for rackd-HOST's Nth "connection moved to a new path".
roam_wait_moved() { racks_wait_count "$1" "connection moved to a new path" "$2" "$3"; }

# roam_moved_time_ms N: wait for the Nth move on both hosts; print the ms it took from now.
roam_moved_time_ms() { racks_both_logged_ms "connection moved to a new path" "$1"; }

# roam_lo_has NS ADDRESS: ADDRESS is on NS's lo (rackd keeps a departed address there).
roam_lo_has() { tb_exec "$1" ip -o addr show dev lo | tb_grep -w -- "$2"; }

# roam_test SCENARIO FAMILY: one roaming scenario, under a bidirectional transfer of 50 MiB each way
# (rate-limited, so it runs across the move), checked by SHA-256 on both ends.
#   suspended  a black hole suspends the connection, then A moves to another network, then the path returns
#   healthy    A moves while the connection is healthy (rtnetlink tells rackd at once)
#   twice      A moves; B's answers are black-holed; A moves again during that resumption; the path returns
#   back       A moves, resumes, then moves back to its first network and resumes there
#   server     the transfer's client is B (A accepted the connection), and A moves while healthy
# FAMILY is 4 or 6.
roam_test() {
    local scenario=$1 family=$2 ms old_a client server address port=5001
    racks_setup
    if [[ $family == 6 ]]; then old_a=$TB_A_ADDR6; else old_a=$TB_A_ADDR4; fi
    if [[ $scenario == server ]]; then
        client=$TB_B server=$TB_A
        if [[ $family == 6 ]]; then address=$TB_A_ADDR6; else address=$TB_A_ADDR4; fi
    else
        client=$TB_A server=$TB_B
        if [[ $family == 6 ]]; then address=$TB_B_ADDR6; else address=$TB_B_ADDR4; fi
    fi
    tb_xfer_start bulk "$client" "$server" "$address" "$port" 50M 50M --rate 2500K -- --rate 2500K
    racks_wait_managed
    sleep 3
    racks_assert_nothing_queued
    case $scenario in
    suspended)
        tb_blackhole_on
        racks_assert_suspended_both 1
        sleep 2
        racks_assert_held_both_ways "$port"
        tb_move_a 3
        # rackd adds it when rtnetlink reports the loss, a few ms after the move: wait for it.
        tb_assert "A keeps its departed address $old_a on lo" tb_wait_for "roam_lo_has $TB_A $old_a" 5
        sleep 2
        tb_blackhole_off
        ;;
    healthy | server)
        tb_move_a 3
        ;;
    twice)
        tb_blackhole_on b2a
        tb_move_a 3
        sleep 1
        tb_move_a 4
        tb_blackhole_off
        ;;
    back)
        tb_move_a 3
        tb_assert "the connection moved to A's new address" roam_wait_moved b 1 10
        sleep 3
        tb_move_a 1
        ;;
    esac
    local n=1
    [[ $scenario == back ]] && n=2
    ms=$(roam_moved_time_ms "$n")
    echo "scenario $scenario (IPv$family): moved to the new path on both hosts ${ms} ms after the last change"
    tb_assert "both hosts moved the connection within 3 s (${ms} ms)" test "$ms" -le 3000
    if [[ $scenario != back ]]; then
        tb_assert "B's managed set carries A's new address ($TB_A_ADDR4 / $TB_A_ADDR6)" \
            bash -c "ip netns exec $TB_B nft list table inet rackd | grep -qE '${TB_A_ADDR4//./\\.}|${TB_A_ADDR6}'"
    fi
    if [[ $scenario == back ]]; then
        sleep 1
        racks_assert_nothing_queued
    fi
    tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
    tb_assert "no resumption was rejected on A" test "$(racks_count a 'resumption rejected')" = 0
    tb_assert "no resumption was rejected on B" test "$(racks_count b 'resumption rejected')" = 0
    # Once the connection is gone, nothing of it stays behind.
    tb_assert "A's managed sets empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_A" 10
    tb_assert "B's managed sets empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_B" 10
    tb_assert "A's old address left lo once no connection used it" tb_wait_for "! roam_lo_has $TB_A $old_a" 10
}

# roam_log_time HOST SKIP PATTERN [AFTER [BEFORE]]: when rackd-HOST logged its first line matching PATTERN after
# its first SKIP lines (and after its first line matching AFTER, if given and not empty; with BEFORE, the last such
# line before its first line matching BEFORE), in seconds since the epoch with ms; fails if there is none
# (lib/log_time.py; the patterns are Python regular expressions).
roam_log_time() {
    python3 "$TB_REPO/integration-tests/lib/log_time.py" "$TB_DIR/rackd-$1.log" "$2" "${@:3}"
}

# roam_gap_ms FROM TO: TO − FROM (seconds since the epoch, as roam_log_time prints them), in whole ms.
roam_gap_ms() { python3 -c 'import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))' "$1" "$2"; }
