#!/usr/bin/env bash
# test_racks_blackhole_20min.sh: a 20 minute black hole, longer than tcp_retries2 (about 15 min), under a
# bidirectional transfer. Slow, so it runs only with RACKD_LONG_TESTS=1 (CI leaves it off).
# timeout: 1800
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
[[ ${RACKD_LONG_TESTS:-0} == 1 ]] || tb_skip "20 minute outage: set RACKD_LONG_TESTS=1 to run it"
tb_require_rackd
racks_outage_test 1200 blackhole
