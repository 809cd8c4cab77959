#!/usr/bin/env bash
# test_racks_blackhole_ipv6.sh: the 10 s black hole of test_racks_blackhole_10s.sh, over IPv6.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd
racks_outage_test 10 blackhole "$TB_B_ADDR6"
tb_assert "the connection was IPv6" grep -q "flow=\[fd00:1::2\]" "$TB_DIR/rackd-a.log"
