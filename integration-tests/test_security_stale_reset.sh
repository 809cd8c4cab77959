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
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd

racks_setup
pcap=$TB_DIR/toward-a.pcap
tb_bg "$TB_R" capture tcpdump -i "$TB_R_A_IF" -U -s 96 -w "$pcap" "tcp port 5001"
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 50M 50M --rate 2500K -- --rate 2500K
racks_wait_managed
sleep 3
port=$(attack_client_port 5001)
tb_blackhole_on
racks_assert_suspended_both 1
kill -INT "$(tb_pid capture)"
sleep 0.5
read -r seq ack < <("$here/lib/last_position.py" "$pcap" "$TB_B_ADDR4" "$TB_A_ADDR4")
echo "A's socket expects B's byte $seq; forging RST and FIN there"
a="$TB_A_ADDR4:$port"
b="$TB_B_ADDR4:5001"
attack_inject --src "$b" --dst "$a" --seq "$seq" --flags R --count 3
attack_inject --src "$b" --dst "$a" --seq "$seq" --ack "$ack" --flags FA --count 3
sleep 1
tb_assert "A's socket is still established" test "$(attack_client_port 5001)" = "$port"
attack_finish_and_check
