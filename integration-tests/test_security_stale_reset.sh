#!/usr/bin/env bash
# test_security_stale_reset.sh: while A's connection is suspended, an attacker forges B's RST and FIN for
# the old 4-tuple at exactly the position A's socket expects. rackd holds the socket: nothing from the
# peer's side reaches it unauthenticated, so it is neither reset nor closed, and the transfer completes
# intact once the path returns. Without that defence the RST would reset A's socket and the transfer
# would fail.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd

racks_setup
pcap=$TB_DIR/toward-a.pcap
tb_assert "the capture on R's A-side interface runs" attack_capture_start capture "$TB_R_A_IF" "$pcap" "tcp port 5001" 96
attack_transfer_start
attack_suspend 1
attack_capture_stop capture
read -r seq ack < <("$here/lib/last_position.py" "$pcap" "$TB_B_ADDR4" "$TB_A_ADDR4")
echo "A's socket expects B's byte $seq; forging RST and FIN there"
attack_inject --src "$ATTACK_B" --dst "$ATTACK_A" --seq "$seq" --flags R --count 3
attack_inject --src "$ATTACK_B" --dst "$ATTACK_A" --seq "$seq" --ack "$ack" --flags FA --count 3
sleep 1
tb_assert "A's socket is still established" test "$(attack_client_port 5001)" = "$ATTACK_PORT"
attack_finish_and_check
