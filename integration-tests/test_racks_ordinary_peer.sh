#!/usr/bin/env bash
# test_racks_ordinary_peer.sh: rackd in A only; B is an ordinary host. Connections work, nothing of theirs
# is queued after the handshake, and a capture on B shows A's packets unchanged apart from rackd's option
# in the SYN.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd

tb_setup
tb_start_rackd "$TB_A" a --log-level debug
pcap=$TB_DIR/b.pcap
tb_bg "$TB_B" capture tcpdump -i "$TB_B_IF" -s 200 -U -w "$pcap" "tcp port 5001"
sleep 1
tb_assert "a 20 MiB exchange with an ordinary peer works" tb_xfer plain "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 20M 20M
sleep 0.5
kill -INT "$(tb_pid capture)"
tb_wait_bg capture 5 || true
tb_stop_rackd "$TB_A" a TERM
log=$TB_DIR/rackd-a.log
received=$(grep -o 'nfq.received=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
modified=$(grep -o 'nfq.modified=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
echo "rackd's queue saw $received packets and changed $modified"
tb_assert "only the SYN and the SYN-ACK were queued" test "$received" = 2
tb_assert "only the SYN was changed" test "$modified" = 1
tb_assert "rackd left the connection to plain TCP" grep -q "reason=peer does not run rackd" "$log"
report=$("$here/lib/option_report.py" "$pcap" "$TB_A_ADDR4")
echo "$report"
tb_assert "A's SYN carries rackd's option" grep -q "^syn-with-rackd-option 1$" <<<"$report"
tb_assert "no other packet from A carries option 253" grep -q "^others-with-option-253 0$" <<<"$report"
tb_assert "the capture holds the whole exchange" test "$(awk '/^packets-from-a/ {print $2}' <<<"$report")" -gt 100
