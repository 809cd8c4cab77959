#!/usr/bin/env bash
# test_moved_in_kernel.sh: once a moved connection is confirmed, the kernel rewrites its packets and the
# queue sees none of its bulk data (Core/KernelRewrite.swift, docs/architecture.md "Moved flows in the
# kernel"). A moves to another network under a bidirectional transfer; then, on both hosts: the rewrite is
# in rackd's maps (wire_of4, socket_of4), `rackctl status` says "mapped by kernel", and while the transfer
# runs for 3 s the queue's packet counter (/proc/net/netfilter/nfnetlink_queue) grows by at most a handful
# of packets (rackd's messages). The mapping must survive losing the rules (`nft flush ruleset` in B: rackd
# puts the rewrite back) and restarts (rackd on A stopped with SIGTERM, on B killed with SIGKILL, each
# started again: the rules outlive rackd, so data keeps moving while it is away). SHA-256 of both byte
# streams at the end; once the connection closes, nothing of it stays in the maps.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
tb_require_rackd

# queued_packets NS: how many packets queue 3939 has handed out in NS (its last packet id).
queued_packets() { tb_exec "$1" awk '$1 == 3939 { print $8 }' /proc/net/netfilter/nfnetlink_queue; }

# rewritten NS: true when NS's rackd has the kernel rewrite the moved connection (A's new address 10.3.0.2).
rewritten() {
    local listing
    listing=$(tb_exec "$1" nft list map inet rackd wire_of4 2>/dev/null; tb_exec "$1" nft list map inet rackd socket_of4 2>/dev/null) || return 1
    [[ $listing == *10.3.0.2* ]]
}

# received NS PORT: bytes the socket on PORT in NS has received (tcp_info bytes_received).
received() {
    tb_exec "$1" ss -tniH state established "( sport = :$2 or dport = :$2 )" | grep -oE 'bytes_received:[0-9]+' | head -n 1 | cut -d: -f2
}

# assert_bulk_not_queued LABEL: over 3 s of transfer, neither host's queue counter grows by more than 20
# packets while each socket receives at least 1 MB.
assert_bulk_not_queued() {
    local label=$1 qa qb ra rb
    tb_assert "$label: A has the kernel rewrite the connection" tb_wait_for "rewritten $TB_A" 10 0.05
    tb_assert "$label: B has the kernel rewrite the connection" tb_wait_for "rewritten $TB_B" 10 0.05
    tb_assert "$label: rackctl status on A says the kernel maps it" tb_wait_for "tb_rackctl a status | tb_grep 'mapped by kernel'" 5 0.1
    tb_assert "$label: rackctl status on B says the kernel maps it" tb_wait_for "tb_rackctl b status | tb_grep 'mapped by kernel'" 5 0.1
    qa=$(queued_packets "$TB_A") qb=$(queued_packets "$TB_B") ra=$(received "$TB_A" 5001) rb=$(received "$TB_B" 5001)
    sleep 3
    qa=$(($(queued_packets "$TB_A") - qa)) qb=$(($(queued_packets "$TB_B") - qb))
    ra=$(($(received "$TB_A" 5001) - ra)) rb=$(($(received "$TB_B" 5001) - rb))
    echo "$label: in 3 s A received $ra bytes and queued $qa packets; B received $rb bytes and queued $qb packets"
    tb_assert "$label: data moved both ways (A $ra, B $rb bytes)" test "$ra" -ge 1000000 -a "$rb" -ge 1000000
    tb_assert "$label: A queued at most 20 packets ($qa)" test "$qa" -le 20
    tb_assert "$label: B queued at most 20 packets ($qb)" test "$qb" -le 20
}

racks_setup
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 60M 60M --rate 2500K -- --rate 2500K
racks_wait_managed
tb_move_a 3
tb_assert "the connection moved on A" roam_wait_moved a 1 10
tb_assert "the connection moved on B" roam_wait_moved b 1 10
assert_bulk_not_queued "moved"

before=$(racks_count b "rules restored")
tb_exec "$TB_B" nft flush ruleset
tb_assert "rules lost on B: rackd put them back" racks_wait_count b "rules restored" $((before + 1)) 5
assert_bulk_not_queued "after B's rules were restored"

tb_assert "rackd-a stops (SIGTERM) and starts again" tb_restart_rackd "$TB_A" a TERM --log-level debug
assert_bulk_not_queued "after A's rackd restarted"
tb_assert "rackd-b is killed (SIGKILL) and starts again" tb_restart_rackd "$TB_B" b KILL --log-level debug
assert_bulk_not_queued "after B's rackd restarted"

tb_assert "60 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
tb_assert "no resumption was rejected on A" test "$(racks_count a 'resumption rejected')" = 0
tb_assert "no resumption was rejected on B" test "$(racks_count b 'resumption rejected')" = 0
tb_assert "A's maps are empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_A" 10
tb_assert "B's maps are empty after the connection closed" tb_wait_for "racks_managed_sets_empty $TB_B" 10
