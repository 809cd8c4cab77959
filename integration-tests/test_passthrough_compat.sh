#!/usr/bin/env bash
# test_passthrough_compat.sh: 100 MiB each way through rackd's queue, with the xtables-compat NFQUEUE
# target forced (rules = compat).
# timeout: 600
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/passthrough.sh
source "$here/lib/passthrough.sh"
tb_require_rackd

passthrough_transfer compat
tb_assert "the compat target was used" grep -q 'nft.queue-variant=compat' "$TB_DIR/rackd-a.log"
tb_assert_fails "and the native statement was not tried" \
    grep -q "falling back" "$TB_DIR/rackd-a.log"
