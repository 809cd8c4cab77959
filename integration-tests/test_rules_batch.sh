#!/usr/bin/env bash
# test_rules_batch.sh: NftablesInstaller.apply (Sources/RackDaemon/Firewall/NftablesInstaller.swift), which
# commits each input's rule changes in one nftables transaction, against the kernel through
# rackd-kernel-probe: a batch of additions lands whole; a batch whose delete names an element already gone
# (which fails the whole transaction with ENOENT) still lands every other change, one by one, and reports no
# failure; IPv4 and IPv6 flows go to their own maps; a kernel rewrite adds its five elements and its stop
# takes them away. Runs in host A of the test bed only.
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

# elements MAP: the map's elements, one per line, as "a . p . b . q: VALUE" (VALUE the verdict's chain, "drop",
# or the flow the key maps to).
elements() {
    tb_exec "$TB_A" nft -j list map inet rackd "$1" | python3 -c '
import json, sys
for item in json.load(sys.stdin)["nftables"]:
    for key, value in item.get("map", {}).get("elem", []):
        if "concat" in value: value = " . ".join(str(part) for part in value["concat"])
        elif "goto" in value: value = value["goto"]["target"]
        else: value = next(iter(value))
        print(" . ".join(str(part) for part in key["concat"]) + ": " + value)' | sort
}

f1="10.1.0.2:40001,10.2.0.2:22" f2="10.1.0.2:40002,10.2.0.2:22" f3="10.1.0.2:40003,10.2.0.2:5001"
f6="[fd00:1::2]:40006,[fd00:2::2]:22"
out=$(tb_exec "$TB_A" "$PROBE" rules --install "+$f1" "+$f2" "+$f6")
echo "$out"
tb_assert "a batch of additions reports no failure" test "$out" = "APPLIED 3"
tb_assert "both IPv4 flows are queued outbound" test "$(elements flows_out4)" = $'10.1.0.2 . 40001 . 10.2.0.2 . 22: queued\n10.1.0.2 . 40002 . 10.2.0.2 . 22: queued'
tb_assert "both IPv4 flows are queued inbound" test "$(elements flows_in4)" = "$(elements flows_out4)"
tb_assert "the IPv6 flow is in flows_out6" test "$(elements flows_out6)" = "fd00:1::2 . 40006 . fd00:2::2 . 22: queued"

# A release of a flow that is not in the set fails the transaction whole; the rest must still land.
out=$(tb_exec "$TB_A" "$PROBE" rules "-$f1" "-10.1.0.2:49999,10.2.0.2:22" "+$f3")
echo "$out"
tb_assert "a batch with a stale release reports no failure" test "$out" = "APPLIED 3"
tb_assert "its other changes landed one by one" test "$(elements flows_out4)" = $'10.1.0.2 . 40002 . 10.2.0.2 . 22: queued\n10.1.0.2 . 40003 . 10.2.0.2 . 5001: queued'

# Adding what is already there and releasing what is there, in one batch.
out=$(tb_exec "$TB_A" "$PROBE" rules "+$f2" "-$f3" "-$f6")
echo "$out"
tb_assert "re-adding and releasing in one batch reports no failure" test "$out" = "APPLIED 3"
tb_assert "flows_out4 holds exactly the flow still managed" test "$(elements flows_out4)" = "10.1.0.2 . 40002 . 10.2.0.2 . 22: queued"
tb_assert "flows_out6 is empty" test -z "$(elements flows_out6)"

# A moved connection whose mapping the kernel carries: its queued tuples go and five elements come, in
# one batch; then it is queued again (a suspension): the five go, the tuples come back.
socket="10.1.0.2:40010,10.2.0.2:5001" wire="10.3.0.2:40010,10.2.0.2:5001"
out=$(tb_exec "$TB_A" "$PROBE" rules "+$socket" "+$wire")
out=$(tb_exec "$TB_A" "$PROBE" rules "-$socket" "-$wire" ">$socket=$wire")
echo "$out"
tb_assert "queued to rewritten reports no failure" test "$out" = "APPLIED 3"
tb_assert "outbound, the socket's tuple is rewritten" \
    bash -c "grep -qx '10.1.0.2 . 40010 . 10.2.0.2 . 5001: rewrite_out4' <<<'$(elements flows_out4)'"
tb_assert "the wire's tuple of the socket's" test "$(elements wire_of4)" = "10.1.0.2 . 40010 . 10.2.0.2 . 5001: 10.3.0.2 . 40010 . 10.2.0.2 . 5001"
tb_assert "the socket's tuple of the wire's" test "$(elements socket_of4)" = "10.3.0.2 . 40010 . 10.2.0.2 . 5001: 10.1.0.2 . 40010 . 10.2.0.2 . 5001"
tb_assert "inbound, the wire's tuple is rewritten and the old path dropped" test "$(elements flows_in4)" = \
    $'10.1.0.2 . 40002 . 10.2.0.2 . 22: queued\n10.1.0.2 . 40010 . 10.2.0.2 . 5001: drop\n10.3.0.2 . 40010 . 10.2.0.2 . 5001: rewrite_in4'
out=$(tb_exec "$TB_A" "$PROBE" rules "<$socket=$wire" "+$socket" "+$wire")
tb_assert "rewritten to queued reports no failure" test "$out" = "APPLIED 3"
tb_assert "the rewrite is gone" test -z "$(elements wire_of4)$(elements socket_of4)"
tb_assert "both tuples are queued again" test "$(elements flows_in4)" = \
    $'10.1.0.2 . 40002 . 10.2.0.2 . 22: queued\n10.1.0.2 . 40010 . 10.2.0.2 . 5001: queued\n10.3.0.2 . 40010 . 10.2.0.2 . 5001: queued'

tb_exec "$TB_A" "$(tb_rackd_bin)" cleanup --state-directory "$TB_DIR/state-cleanup" >/dev/null 2>&1 || true
((failures == 0))
