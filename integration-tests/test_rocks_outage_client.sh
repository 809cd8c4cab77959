#!/usr/bin/env bash
# test_rocks_outage_client.sh: rackd in A plays the rocks client through network failures (issue 12, "Survive
# failures with rocks peers"; docs/rocks.md §5, §15). An ordinary application in A (rockspeer.py connect --plain)
# talks to the rock tools/rockspeer.py serve in B; rackd: [rocks] legacy-auth = yes, probe = listed,
# probe-addresses = B. Two scenarios, each on a connection of its own with 20 MiB each way at once, paced on both
# ends (about 16 s of sending) so that the fault comes mid-transfer (lib/rocks.sh, rocks_outage):
#   1. a 25 s black hole in R, both directions: rackd suspends after 15 s without a heartbeat, the rock after 15
#      missed beats;
#   2. A's link down for 10 s: rackd suspends at once (its local address went, rtnetlink).
# For each:
#   - rackctl status --json shows the rocks connection (role client) healthy, then suspended during the outage
#     (the reason in rackd's log), still held when the path returns, and healthy again after it, with the
#     connection's resumptions >= 1;
#   - the rock reconnects and recovers (1of2, authentication, recovery) within 20 s of the path's return;
#   - both ends finish, and the SHA-256 of each direction is equal on both ends;
#   - the rock counted exactly one suspension and one recovery, and no authentication failure;
#   - daemon.resumptions >= 1; once both ends closed the connection, rackd lets it go within 10 s.
# Knobs: ROCKS_OUTAGE_FAULTS (default "blackhole linkdown") picks the scenarios; ROCKS_OUTAGE_MODE=rock runs them
# rock to rock (a rock in A, no rackd; the rock assertions for both rocks): the scenario itself is survivable.
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
mode=${ROCKS_OUTAGE_MODE:-app}
[[ $mode == rock ]] || tb_require_rackd

tb_setup
if [[ $mode == app ]]; then
    echo "== rackd in A: probe = listed, probe-addresses = $TB_B_ADDR4"
    rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4"
fi

rocks_outage_faults client "$mode"
