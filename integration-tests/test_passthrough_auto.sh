#!/usr/bin/env bash
# test_passthrough_auto.sh: 100 MiB each way through rackd's queue, rule variant chosen automatically.
# On a kernel without nft_queue, auto must fall back to the compat target and say so.
# timeout: 600
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/passthrough.sh
source "$here/lib/passthrough.sh"
tb_require_rackd

passthrough_transfer auto
log=$TB_DIR/rackd-a.log
variant=$(grep -o 'nft.queue-variant=[a-z]*' "$log" | head -n 1 | cut -d= -f2)
echo "rule variant chosen: $variant"
tb_assert "the chosen variant is logged" test -n "$variant"
if [[ $variant == compat ]]; then
    tb_assert "the fallback from the native queue statement is logged" \
        grep -q "native queue statement unavailable; falling back" "$log"
fi
