#!/usr/bin/env bash
# test_racks_blackhole_300s.sh: a 300 s black hole in R under a bidirectional transfer, rackd in A and B.
# 300 s is longer than the 240 s (2 x TCP_RTO_MAX) after which Linux aborts a socket with unacknowledged
# data that hears nothing back: only rackd's zero-window answers keep it alive.
# timeout: 600
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd
racks_outage_test 300 blackhole
