#!/usr/bin/env bash
# test_rockspeer_outage.sh: the rocks 2.4 test peer (tools/rockspeer.py) survives what rocks survives, rock to rock:
# tools/rockspeer-outage.sh in two namespaces joined by a veth, 20 MB each way, A's link down for 10 s, then a
# 25 s black hole (nftables drop on both sides), then A's address change; each end suspends for rocks' reason,
# reconnects (1of2, Blowfish challenge-response, recovery with go-back-N) and the SHA-256 of both directions
# match. rackd is not involved: this checks the peer that rackd's rocks failure tests will talk to.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
cd "$TB_REPO"

command -v python3 >/dev/null || tb_skip "python3 is missing (scripts/install-deps)"
command -v nft >/dev/null || tb_skip "nft is missing (scripts/install-deps)"

echo "== tools/rockspeer-outage.sh 20M"
tools/rockspeer-outage.sh 20M
