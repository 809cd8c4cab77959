#!/usr/bin/env bash
# test_restart_suspended_a_kill.sh: rackd on A stopped with SIGKILL and started again while the connection is suspended (docs/restarts.md).
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
# shellcheck source=integration-tests/lib/restart.sh
source "$here/lib/restart.sh"
tb_require_rackd
restart_test suspended a KILL
