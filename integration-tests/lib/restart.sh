# shellcheck shell=bash
# integration-tests/lib/restart.sh: rackd restarted (killed, or stopped and started) under a managed
# connection, which must carry on (docs/restarts.md). Source it after testbed/netns.sh and lib/racks.sh.

# restart_rackd HOST SIGNAL: stop rackd HOST (a or b) with SIGNAL and start it again with the same arguments
# (tb_restart_rackd); its table must have stayed, and the new rackd takes the connection back.
restart_rackd() {
    local host=$1 signal=$2 ns
    if [[ $host == a ]]; then ns=$TB_A; else ns=$TB_B; fi
    tb_assert "rackd-$host stops and starts again (SIG$signal)" tb_restart_rackd "$ns" "$host" "$signal" --log-level debug
    tb_assert "rackd-$host's table inet rackd outlived it (the new one replaced it)" \
        grep -q "replaced a table left by an earlier rackd" "$TB_DIR/rackd-$host.log"
    tb_assert "rackd-$host took the connection back" racks_wait_count "$host" "connections taken back" 1 5
}

# restart_test SCENARIO HOST SIGNAL: a bidirectional transfer (30 MiB each way, rate-limited so that it
# spans the faults), then
#   suspended  a black hole suspends the connection; rackd HOST is stopped with SIGNAL and started again;
#              the path returns and the connection resumes;
#   moved      A moves to another network mid-transfer; once moved, rackd HOST is stopped with SIGNAL and
#              started again; the moved connection keeps its mapping;
# and both streams must arrive intact (SHA-256).
restart_test() {
    local scenario=$1 host=$2 signal=$3 ms
    racks_setup
    tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 30M 30M --rate 2500K -- --rate 2500K
    racks_wait_managed
    sleep 2
    case $scenario in
    suspended)
        tb_blackhole_on
        racks_assert_suspended_both 1
        restart_rackd "$host" "$signal"
        tb_assert "the restarted rackd-$host still holds the connection suspended" \
            bash -c "'$(tb_rackctl_bin)' status --json --socket '$TB_DIR/rackd-$host.sock' | grep -q '\"state\" *: *\"suspended\"'"
        sleep 2
        racks_assert_held_both_ways 5001
        tb_blackhole_off
        ms=$(racks_resume_time_ms 1)
        echo "resumed ${ms} ms after the path returned"
        tb_assert "resumption completes within 1 s of the path's return (${ms} ms)" test "$ms" -le 1000
        ;;
    moved)
        tb_move_a 3
        tb_assert "the connection moved on A" roam_wait_moved a 1 10
        tb_assert "the connection moved on B" roam_wait_moved b 1 10
        sleep 2
        restart_rackd "$host" "$signal"
        tb_assert "the restarted rackd-$host still maps the moved connection" \
            bash -c "ip netns exec $([[ $host == a ]] && echo "$TB_A" || echo "$TB_B") nft list table inet rackd | grep -q '10\\.3\\.0\\.2'"
        ;;
    esac
    tb_assert "30 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
    tb_assert "no resumption was rejected on A" test "$(racks_count a 'resumption rejected')" = 0
    tb_assert "no resumption was rejected on B" test "$(racks_count b 'resumption rejected')" = 0
    tb_assert "A's managed sets empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_A" 10
    tb_assert "B's managed sets empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_B" 10
}
