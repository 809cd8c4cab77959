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
tb_assert "output chain hooks output (route: a rewritten packet is routed again)" grep -q "type route hook output priority mangle" <<<"$listing"
tb_assert "input chain hooks input" grep -q "type filter hook input priority mangle" <<<"$listing"
tb_assert "anything but TCP leaves at the first rule" grep -q "meta l4proto != tcp accept" <<<"$listing"
tb_assert "rackd-marked packets are accepted first" grep -q "meta mark & 0x10000000 == 0x10000000 accept" <<<"$listing"
tb_assert "TCP SYNs go to the SYN chains, loopback aside" \
    grep -q "@th,104,8 & 0x2 != 0x0 meta oiftype != loopback jump syn-output" <<<"$listing"
tb_assert "TCP SYNs coming in too" grep -q "@th,104,8 & 0x2 != 0x0 meta iiftype != loopback jump syn-input" <<<"$listing"
tb_assert "there, what rackd could enhance is queued, with bypass" \
    grep -q 'queue num 3939 bypass comment "rackd: every other SYN and SYN-ACK: detection"' <<<"$listing"
tb_assert "ordinary destinations skip the queue" grep -q "th dport @ordinary4 accept" <<<"$listing"
tb_assert "rackd's messages are looked for in small segments whose first option is rackd's only" \
    grep -q "@th,160,8 0xfd meta length <= 120 meta iiftype != loopback tcp option 253 exists queue num 3939 bypass" <<<"$listing"
tb_assert "managed IPv4 flows: one lookup per packet" grep -q "ip saddr . th sport . ip daddr . th dport vmap @flows_out4" <<<"$listing"
tb_assert "managed IPv6 flows: one lookup per packet" grep -q "ip6 daddr . th dport . ip6 saddr . th sport vmap @flows_in6" <<<"$listing"
queued_chain=$(tb_exec "$TB_A" nft list chain inet rackd queued)
tb_assert "queued flows are queued without bypass" grep -q 'queue num 3939 comment' <<<"$queued_chain"
tb_assert "moved flows are rewritten with their checksums" \
    grep -q "ip saddr . th sport . ip daddr . th dport map @wire_of4" <<<"$listing"
tb_assert "the marked-packet rule comes before the SYN rule" \
    test "$(grep -n 'meta mark' <<<"$listing" | head -1 | cut -d: -f1)" -lt "$(grep -n '@th,104,8 & 0x2' <<<"$listing" | head -1 | cut -d: -f1)"
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
