# shellcheck shell=bash
# integration-tests/lib/racks.sh: helpers shared by the racks integration tests (rackd in A and in B).
# Source it after testbed/netns.sh.

# racks_setup [RACKD_ARG...]: a fresh bed with rackd running in A and in B.
racks_setup() {
    tb_setup
    tb_start_rackd "$TB_A" a --log-level debug "$@"
    tb_start_rackd "$TB_B" b --log-level debug "$@"
}

# racks_count HOST PATTERN: how many lines of rackd-HOST's log match PATTERN.
racks_count() { grep -c -- "$2" "$TB_DIR/rackd-$1.log" || true; }

# racks_wait_count HOST PATTERN N TIMEOUT_S: wait until rackd-HOST's log has at least N lines matching PATTERN.
racks_wait_count() {
    tb_wait_for "test \$(racks_count $1 '$2') -ge $3" "$4" 0.05
}

# racks_wait_managed: wait until both rackds manage the connection.
racks_wait_managed() {
    tb_assert "A manages the connection" racks_wait_count a "connection managed" 1 10
    tb_assert "B manages the connection" racks_wait_count b "connection managed" 1 10
}

# racks_managed_sets_empty NS: true when rackd's flow maps in NS have no element: nothing is queued beyond
# handshakes and rackd's own messages, and nothing is rewritten (Firewall/RackdMaps.swift).
# (The listing is read whole first: with pipefail, `nft … | grep -q` can fail when grep exits early and nft
# dies of SIGPIPE, and the negation would then report "empty" wrongly.)
racks_managed_sets_empty() {
    local listing="" map
    for map in flows_out4 flows_in4 flows_out6 flows_in6 wire_of4 socket_of4 wire_of6 socket_of6; do
        listing+=$(tb_exec "$1" nft list map inet rackd "$map" 2>/dev/null) || return 1
    done
    [[ $listing != *elements* ]]
}

# racks_assert_nothing_queued: while the connection is healthy, neither rackd queues any of its packets.
racks_assert_nothing_queued() {
    tb_assert "healthy: nothing is in A's managed sets" racks_managed_sets_empty "$TB_A"
    tb_assert "healthy: nothing is in B's managed sets" racks_managed_sets_empty "$TB_B"
}

# racks_unacked NS PORT: the Send-Q (bytes not yet acknowledged or not yet sent) of the connection on PORT.
racks_unacked() {
    tb_exec "$1" ss -tnH state established "( sport = :$2 or dport = :$2 )" | awk '{print $2; exit}'
}

# racks_assert_held_both_ways PORT: both sockets have data queued that the peer has not acknowledged.
racks_assert_held_both_ways() {
    local a b
    a=$(racks_unacked "$TB_A" "$1")
    b=$(racks_unacked "$TB_B" "$1")
    echo "unacknowledged during the outage: A ${a:-none} bytes, B ${b:-none} bytes"
    tb_assert "A holds unacknowledged data during the outage" test "${a:-0}" -gt 0
    tb_assert "B holds unacknowledged data during the outage" test "${b:-0}" -gt 0
}

# racks_assert_suspended_both N: both rackds have reported at least N suspensions.
racks_assert_suspended_both() {
    tb_assert "A suspended the connection" racks_wait_count a "state changed.*conn.state=suspended" "$1" 10
    tb_assert "B suspended the connection" racks_wait_count b "state changed.*conn.state=suspended" "$1" 10
}

# racks_both_logged_ms PATTERN N: wait until both rackds have logged PATTERN at least N times; print how
# long that took from now, in ms. Fails after 30 s.
racks_both_logged_ms() {
    local start end
    start=$(date +%s%N)
    racks_wait_count a "$1" "$2" 30 || return 1
    racks_wait_count b "$1" "$2" 30 || return 1
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

# racks_resume_time_ms N: after the path returns, the time until the Nth "connection resumed" on both hosts
# (the outage tests require it to be at most 1 s, as README.md promises).
racks_resume_time_ms() { racks_both_logged_ms "connection resumed" "$1"; }

# racks_outage_test SECONDS FAULT [ADDRESS]: a bidirectional transfer of 50 MiB each way, rate-limited so that it is
# still running when FAULT (blackhole | linkdown) starts 4 s in; the fault lasts SECONDS; afterwards both
# streams must match by SHA-256, rackd must have suspended and resumed on both ends, and the resumption
# must complete within 1 s of the path's return.
racks_outage_test() {
    local seconds=$1 fault=$2 ms
    racks_setup
    local address=${3:-$TB_B_ADDR4}
    # 50 MiB at 2.5 MiB/s: about 20 s of sending each way, so data is in flight when the path fails.
    tb_xfer_start bulk "$TB_A" "$TB_B" "$address" 5001 50M 50M --rate 2500K -- --rate 2500K
    racks_wait_managed
    sleep 4
    racks_assert_nothing_queued
    case $fault in
    blackhole) tb_blackhole_on ;;
    linkdown) tb_link_down_a ;;
    esac
    echo "fault: $fault for ${seconds}s"
    racks_assert_suspended_both 1
    sleep 3
    racks_assert_held_both_ways 5001
    sleep $((seconds > 3 ? seconds - 3 : 0))
    case $fault in
    blackhole) tb_blackhole_off ;;
    linkdown) tb_link_up_a ;;
    esac
    ms=$(racks_resume_time_ms 1)
    echo "resumed ${ms} ms after the path returned"
    tb_assert "resumption completes within 1 s of the path's return (${ms} ms)" test "$ms" -le 1000
    tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
    tb_assert "no resumption was rejected" test "$(racks_count a 'resumption rejected')" = 0
}
