#!/usr/bin/env bash
# test_roam_healthy_ipv4.sh: A moves to another network while the connection is healthy (IPv4), under a bidirectional 50 MiB transfer.
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
roam_test healthy 4
