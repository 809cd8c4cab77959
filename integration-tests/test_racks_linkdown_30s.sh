#!/usr/bin/env bash
# test_racks_linkdown_30s.sh: A's interface down for 30 s under a bidirectional transfer. A's rackd
# notices at once from rtnetlink; B's by its heartbeat.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd
racks_outage_test 30 linkdown
tb_assert "A's rackd saw the address go (rtnetlink)" grep -q "reason=local address 10.1.0.2 lost" "$TB_DIR/rackd-a.log"
