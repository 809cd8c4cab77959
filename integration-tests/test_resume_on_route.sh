#!/usr/bin/env bash
# test_resume_on_route.sh: A moves to another network under a bidirectional transfer (IPv4), break before make as
# tb_move_a does it: the old address goes, the new one comes, and only then its default route. The roam rackd
# sends when the address comes finds no route (ENETUNREACH); the route's notification (RTM_NEWROUTE) makes it try
# again at once, so both rackds report the move, by their log timestamps, within 100 ms of the last IPv4 route
# event before it (the default route) and within 300 ms of the new address (the test bed runs two `ip` commands
# between the address and the route, slow on a loaded machine), instead of at the next scheduled attempt (500 ms
# after the address). Both byte streams arrive intact (SHA-256).
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

bound_ms=100
# shellcheck disable=SC2119 # racks_setup takes rackd arguments; none here
racks_setup
# 20 MiB each way at 2.5 MiB/s: about 8 s of sending, so data is in flight across the move.
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 20M 20M --rate 2500K -- --rate 2500K
racks_wait_managed
sleep 2
racks_assert_nothing_queued
skip_a=$(wc -l <"$TB_DIR/rackd-a.log")
skip_b=$(wc -l <"$TB_DIR/rackd-b.log")
tb_move_a 3
tb_assert "A moved the connection to the new path" roam_wait_moved a 1 10
tb_assert "B moved the connection to the new path" roam_wait_moved b 1 10

new_address='addressesAvailable.*10\.3\.0\.2'
address=$(roam_log_time a "$skip_a" "link event.*$new_address")
# The first IPv4 route event after the address is its subnet's; the last before the move is the default route's.
first_route=$(roam_log_time a "$skip_a" "link event.*routesAdded.*ipv4" "link event.*$new_address")
route=$(roam_log_time a "$skip_a" "link event.*routesAdded.*ipv4" "link event.*$new_address" "connection moved")
moved_a=$(roam_log_time a "$skip_a" "connection moved to a new path")
moved_b=$(roam_log_time b "$skip_b" "connection moved to a new path")
last=$moved_a
[[ $(roam_gap_ms "$moved_a" "$moved_b") -le 0 ]] || last=$moved_b
from_route=$(roam_gap_ms "$route" "$last")
from_address=$(roam_gap_ms "$address" "$last")
echo "moved on both hosts ${from_route} ms after A's last IPv4 route event before it" \
    "($(roam_gap_ms "$first_route" "$last") ms after its first), ${from_address} ms after its new address" \
    "(A $(roam_gap_ms "$route" "$moved_a") ms, B $(roam_gap_ms "$route" "$moved_b") ms after the route)"
if [[ $(racks_count a 'injection failed') -gt 0 ]]; then
    echo "A's rackd: $(racks_count a 'injection failed') injection(s) failed (the attempt before the route)"
fi
tb_assert "the route event came after the new address" test "$(roam_gap_ms "$address" "$first_route")" -ge 0
tb_assert "both hosts moved within ${bound_ms} ms of the route (${from_route} ms)" test "$from_route" -le "$bound_ms"
tb_assert "both hosts moved within 300 ms of the new address (${from_address} ms)" test "$from_address" -le 300
tb_assert "20 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
tb_assert "no resumption was rejected on A" test "$(racks_count a 'resumption rejected')" = 0
tb_assert "no resumption was rejected on B" test "$(racks_count b 'resumption rejected')" = 0
