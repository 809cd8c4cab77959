#!/usr/bin/env bash
# test_racks_blackhole_10s.sh: a 10 s black hole in R under a bidirectional transfer, rackd in A and B.
# timeout: 310
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd
racks_outage_test 10 blackhole
