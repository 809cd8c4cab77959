#!/usr/bin/env bash
# test_rules_batch.sh: NftablesInstaller.apply (Sources/RackDaemon/Firewall/NftablesInstaller.swift), which
# commits each input's rule changes in one nftables transaction, against the kernel through
# rackd-kernel-probe: a batch of additions lands whole; a batch whose delete names an element already gone
# (which fails the whole transaction with ENOENT) still lands every other change, one by one, and reports no
# failure; IPv4 and IPv6 flows go to their own sets. Runs in host A of the test bed only.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/probe.sh
source "$here/lib/probe.sh"
((EUID == 0)) || tb_skip "needs root (network namespaces)"
command -v swift >/dev/null || tb_skip "needs swift"

failures=0
pass() { printf 'ok - %s\n' "$*"; }
fail() {
    printf 'not ok - %s\n' "$*"
    failures=$((failures + 1))
}

tb_setup
probe_build 'Firewall/[A-Za-z]*|System/NetlinkSocket[+A-Za-z]*'

# elements SET: the set's elements, one per line, as "a . p . b . q".
elements() {
    tb_exec "$TB_A" nft -j list set inet rackd "$1" | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    for element in item.get("set", {}).get("elem", []):
        print(" . ".join(str(part) for part in element["concat"]))' | sort
}

f1="10.1.0.2:40001,10.2.0.2:22" f2="10.1.0.2:40002,10.2.0.2:22" f3="10.1.0.2:40003,10.2.0.2:5001"
f6="[fd00:1::2]:40006,[fd00:2::2]:22"
out=$(tb_exec "$TB_A" "$PROBE" rules --install "+$f1" "+$f2" "+$f6")
echo "$out"
tb_assert "a batch of additions reports no failure" test "$out" = "APPLIED 3"
tb_assert "both IPv4 flows are in managed4" test "$(elements managed4)" = $'10.1.0.2 . 40001 . 10.2.0.2 . 22\n10.1.0.2 . 40002 . 10.2.0.2 . 22'
tb_assert "the IPv6 flow is in managed6" test "$(elements managed6)" = "fd00:1::2 . 40006 . fd00:2::2 . 22"

# A release of a flow that is not in the set fails the transaction whole; the rest must still land.
out=$(tb_exec "$TB_A" "$PROBE" rules "-$f1" "-10.1.0.2:49999,10.2.0.2:22" "+$f3")
echo "$out"
tb_assert "a batch with a stale release reports no failure" test "$out" = "APPLIED 3"
tb_assert "its other changes landed one by one" test "$(elements managed4)" = $'10.1.0.2 . 40002 . 10.2.0.2 . 22\n10.1.0.2 . 40003 . 10.2.0.2 . 5001'

# Adding what is already there and releasing what is there, in one batch.
out=$(tb_exec "$TB_A" "$PROBE" rules "+$f2" "-$f3" "-$f6")
echo "$out"
tb_assert "re-adding and releasing in one batch reports no failure" test "$out" = "APPLIED 3"
tb_assert "managed4 holds exactly the flow still managed" test "$(elements managed4)" = "10.1.0.2 . 40002 . 10.2.0.2 . 22"
tb_assert "managed6 is empty" test -z "$(elements managed6)"

tb_exec "$TB_A" "$(tb_rackd_bin)" cleanup --state-directory "$TB_DIR/state-cleanup" >/dev/null 2>&1 || true
((failures == 0))
