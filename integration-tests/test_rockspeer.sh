#!/usr/bin/env bash
# test_rockspeer.sh: the rocks 2.4 test peer (tools/rockspeer.py) is faithful to the real captures and works
# between two hosts.
#   - tools/blowfish_test.py: the Blowfish known-answer vectors (the reconnection challenge-response's cipher);
#   - tools/rockspeer_test.py: the fidelity test against the captures in Tests/RackEngineTests/Fixtures (rocks-basic, rocks-edp-banner,
#     rocks-edp-fallback): probe, announcement, init and heartbeats byte for byte, application streams, and (as
#     root) the segments on a namespaced loopback wire; and against the failure captures (rocks-*-reconnect):
#     suspension, 1of2, authentication, recovery and go-back-N, both roles;
#   - tools/rockspeer-smoke.sh: two namespaces joined by a veth, 20 MB each way over a rock, SHA-256 both ends,
#     heartbeats both ways, no suspension.
# rackd is not involved (yet): this checks the peer that rackd's rocks tests will talk to.
# timeout: 180
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
cd "$TB_REPO"

command -v python3 >/dev/null || tb_skip "python3 is missing (scripts/install-deps)"

echo "== tools/blowfish_test.py"
python3 -m unittest tools/blowfish_test.py

echo "== tools/rockspeer_test.py"
python3 -m unittest tools/rockspeer_test.py

echo "== tools/rockspeer-smoke.sh 20M"
tools/rockspeer-smoke.sh 20M
