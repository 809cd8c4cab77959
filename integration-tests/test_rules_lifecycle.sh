#!/usr/bin/env bash
# test_rules_lifecycle.sh: rackd's table exists exactly while rackd runs. `nft list table inet rackd` in A
# shows the rules while rackd runs; SIGTERM removes the table; after SIGKILL it stays (on purpose: flows
# rackd manages must freeze, not pass unrewritten) and `rackd cleanup` removes it, also when it is already
# gone. The root namespace never has the table.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd
rackd=$(tb_rackd_bin)

tb_assert "the root namespace has no inet rackd table before" tb_assert_root_clean
tb_setup
tb_start_rackd "$TB_A" a
listing=$(tb_exec "$TB_A" nft list table inet rackd 2>/dev/null)
echo "$listing"
tb_assert "output chain hooks output" grep -q "type filter hook output priority mangle" <<<"$listing"
tb_assert "input chain hooks input" grep -q "type filter hook input priority mangle" <<<"$listing"
tb_assert "rackd-marked packets are accepted first" grep -q "meta mark & 0x10000000 == 0x10000000 accept" <<<"$listing"
tb_assert "TCP SYNs go to the SYN chains" grep -q "tcp flags syn jump syn-output" <<<"$listing"
tb_assert "TCP SYNs coming in too" grep -q "tcp flags syn jump syn-input" <<<"$listing"
tb_assert "there, what rackd could enhance is queued, with bypass" \
    grep -q 'queue num 3939 bypass comment "rackd: every other SYN and SYN-ACK: detection"' <<<"$listing"
tb_assert "ordinary destinations skip the queue" grep -q "th dport @ordinary4 return" <<<"$listing"
tb_assert "managed IPv4 flows are queued" grep -q "@managed4 queue num 3939" <<<"$listing"
tb_assert "managed IPv6 flows are queued" grep -q "@managed6 queue num 3939" <<<"$listing"
tb_assert "the marked-packet rule comes before the SYN rule" \
    test "$(grep -n 'meta mark' <<<"$listing" | head -1 | cut -d: -f1)" -lt "$(grep -n 'tcp flags syn' <<<"$listing" | head -1 | cut -d: -f1)"
tb_assert "the root namespace still has no table while rackd runs" tb_assert_root_clean

tb_assert "SIGTERM: rackd exits 0" tb_stop_rackd "$TB_A" a TERM
tb_assert_fails "SIGTERM: the table is gone" tb_has_rackd_table "$TB_A"

tb_start_rackd "$TB_A" a2
tb_stop_rackd "$TB_A" a2 KILL || true
tb_assert "SIGKILL: the table stays" tb_has_rackd_table "$TB_A"
out=$(tb_exec "$TB_A" "$rackd" cleanup --state-directory "$TB_DIR/state-a2")
echo "$out"
tb_assert "rackd cleanup removes it" test "$out" = "removed table inet rackd"
tb_assert_fails "and it is gone" tb_has_rackd_table "$TB_A"
out=$(tb_exec "$TB_A" "$rackd" cleanup --state-directory "$TB_DIR/state-a2")
tb_assert "rackd cleanup succeeds when the table is already gone" test "$out" = "no table inet rackd; nothing to do"

tb_start_rackd "$TB_A" a3
tb_assert "SIGINT also removes the table" tb_stop_rackd "$TB_A" a3 INT
tb_assert_fails "gone" tb_has_rackd_table "$TB_A"
tb_assert "the root namespace has no inet rackd table after" tb_assert_root_clean
