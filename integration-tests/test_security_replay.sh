#!/usr/bin/env bash
# test_security_replay.sh: an attacker on the path records a genuine resumption, and replays it during a
# second outage, to both hosts. Fresh nonces make every recorded response and confirm worthless: neither
# rackd resumes until the path really returns. Without the nonces A would resume on the replayed
# response, and this test would fail.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd

racks_setup
pcap_a=$TB_DIR/toward-a.pcap
pcap_b=$TB_DIR/toward-b.pcap
tb_bg "$TB_R" capture-a tcpdump -i "$TB_R_A_IF" -U -s 128 -w "$pcap_a" "tcp port 5001"
tb_bg "$TB_R" capture-b tcpdump -i "$TB_R_B_IF" -U -s 128 -w "$pcap_b" "tcp port 5001"
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 50M 50M --rate 2500K -- --rate 2500K
racks_wait_managed
sleep 3
echo "first outage: a genuine resumption, recorded by the attacker"
tb_blackhole_on
racks_assert_suspended_both 1
tb_blackhole_off
tb_assert "the first resumption happens" racks_wait_count a "connection resumed" 1 10
sleep 1
kill -INT "$(tb_pid capture-a)" "$(tb_pid capture-b)"
sleep 0.5
echo "second outage: the attacker replays every rackd message it recorded"
tb_blackhole_on
racks_assert_suspended_both 2
rejected_before=$(racks_count a "resumption rejected")
attack_inject --replay "$pcap_a" --from "$TB_B_ADDR4" --with-option 253
attack_inject --replay "$pcap_b" --from "$TB_A_ADDR4" --with-option 253
sleep 2
tb_assert "A rejected the replayed response" test "$(racks_count a 'resumption rejected')" -gt "$rejected_before"
tb_assert "A did not resume on the replay" test "$(racks_count a 'connection resumed')" = 1
tb_assert "B did not resume on the replay" test "$(racks_count b 'connection resumed')" = 1
attack_finish_and_check 2
