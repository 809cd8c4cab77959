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
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd

racks_setup
pcap_a=$TB_DIR/toward-a.pcap
pcap_b=$TB_DIR/toward-b.pcap
# The attacker records everything of the connection from its first packet on, key exchange included.
tb_assert "the capture on R's A-side interface runs" attack_capture_start capture-a "$TB_R_A_IF" "$pcap_a" "tcp port 5001" 128
tb_assert "the capture on R's B-side interface runs" attack_capture_start capture-b "$TB_R_B_IF" "$pcap_b" "tcp port 5001" 128
attack_transfer_start
echo "first outage: a genuine resumption, recorded by the attacker"
attack_suspend 1
tb_blackhole_off
tb_assert "the first resumption happens" racks_wait_count a "connection resumed" 1 10
sleep 1
attack_capture_stop capture-a
attack_capture_stop capture-b
echo "second outage: the attacker replays every rackd message it recorded"
attack_suspend 2
rejected_before=$(racks_count a "resumption rejected")
attack_inject --replay "$pcap_a" --from "$TB_B_ADDR4" --with-option 253
attack_inject --replay "$pcap_b" --from "$TB_A_ADDR4" --with-option 253
sleep 2
tb_assert "A rejected the replayed response" test "$(racks_count a 'resumption rejected')" -gt "$rejected_before"
tb_assert "A did not resume on the replay" test "$(racks_count a 'connection resumed')" = 1
tb_assert "B did not resume on the replay" test "$(racks_count b 'connection resumed')" = 1
attack_finish_and_check 2
