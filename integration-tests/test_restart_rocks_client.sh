#!/usr/bin/env bash
# test_restart_rocks_client.sh: rackd in A plays the rocks client (as in test_rocks_outage_client.sh); during a blackhole it is stopped
# with SIGKILL and started again (docs/restarts.md). The new rackd takes the suspended rocks connection back
# (keys, splice, ring), binds the rocks ports it announced before, and reconnects and recovers with the rock
# when the path returns: 20 MiB each way arrive intact (SHA-256 on both ends).
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd

tb_setup
rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4"
ROCKS_OUTAGE_FAULTS=blackhole ROCKS_OUTAGE_RESTART=KILL rocks_outage_faults client app
