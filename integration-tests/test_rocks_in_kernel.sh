#!/usr/bin/env bash
# test_rocks_in_kernel.sh: once rackd (the rocks client in A) and the rock in B are through their inits, the
# connection's splice leaves no sequence offset (its SYN went out 76 lower, the rock's SYN-ACK reached the socket
# 76 higher: docs/rocks.md §14, "In the kernel"), so the flow is screened: the socket's segments are still queued
# (rackd's send ring is filled from them), of the rock's only SYN, FIN and RST; the rest reach the socket without
# rackd. rackd: [rocks] legacy-auth = yes, probe = listed, probe-addresses = B. An ordinary application in A
# (tools/xfer.py) and the rock tools/rockspeer.py serve in B.
#   1. 20 MiB each way at once: while it runs, flows_in4 sends the connection to the chain `screened`
#      (flows_out4 still to `queued`); of the rock's packets that reached A (counted by a table of the test's own,
#      before rackd's), at most 50 were queued (the handshake, the init, a FIN); SHA-256 each way on both ends;
#   2. A's link down for 10 s mid-transfer on a new connection (lib/rocks.sh, rocks_outage): screened before the
#      outage; rackd suspends, the rock reconnects and recovers (go-back-N from rackd's ring), 20 MiB each way
#      intact; once reconnected, the connection is shifted on the link's tuple (its offsets are arbitrary:
#      conntrack carries them, nftables rewrites the tuple; Core/KernelShift.swift).
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd

# queued_packets: how many packets queue 3939 has handed out in A (its last packet id).
queued_packets() { tb_exec "$TB_A" awk '$1 == 3939 { print $8 }' /proc/net/netfilter/nfnetlink_queue; }
# screened PORT: true when A's flows_in4 sends the connection to the rock's PORT to the chain `screened`.
screened() { tb_exec "$TB_A" nft list map inet rackd flows_in4 | tb_grep -E "\. $1 : goto screened"; }
# outbound_queued PORT: true when A's flows_out4 queues the connection to the rock's PORT.
outbound_queued() { tb_exec "$TB_A" nft list map inet rackd flows_out4 | tb_grep -E "\. $1 : goto queued"; }

tb_setup
echo "== rackd in A: probe = listed, probe-addresses = $TB_B_ADDR4"
rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4"
rocks_count_arrivals "$TB_A" ip saddr $TB_B_ADDR4 tcp sport 5002

echo "== 1. 20 MiB each way at once"
rocks_serve bulk-server "$TB_B" "$TB_B_ADDR4:5002" --count 1 --send-bytes 20M --seed 3
q0=$(queued_packets)
t0=$(date +%s%N)
tb_bg "$TB_A" bulk-client "$TB_TOOLS/xfer.py" client --connect "$TB_B_ADDR4" --port 5002 --bytes 20M \
    --report "$TB_DIR/bulk-client.json"
tb_assert "the connection is screened: the rock's packets go to the chain screened" tb_wait_for "screened 5002" 20 0.05
tb_assert "the socket's packets are still queued (the send ring)" outbound_queued 5002
tb_assert "xfer.py's transfer ends cleanly" tb_wait_bg bulk-client 120
t1=$(date +%s%N)
tb_assert "the rock ends cleanly" rocks_wait bulk-server 60
tb_assert "20 MiB each way intact (SHA-256 on both ends)" rocks_check_pair bulk-client bulk-server 20M 20M
tb_assert "it was a rocks connection on the rock's side" test "$(rocks_field bulk-server 'r["peer_is_rock"]')" = True
queued=$(($(queued_packets) - q0))
inbound=$(rocks_arrivals "$TB_A")
unqueued=$(rocks_unqueued "$TB_A")
echo "   $((t1 - t0 > 0 ? 41943040 * 8 / ((t1 - t0) / 1000) : 0)) Mbit/s both ways together;" \
    "the rock's packets at A: $inbound, of them unqueued (chain screened): $unqueued;" \
    "packets rackd's queue saw, both ways: $queued"
tb_assert "the rock sent A more than 100 packets" test "${inbound:-0}" -gt 100
tb_assert "at most 50 of the rock's packets were queued ($((inbound - unqueued)))" \
    test "$((inbound - unqueued))" -le 50
tb_assert "the connection is no longer screened once closed" tb_wait_for "! screened 5002" 10

echo "== 2. A's link down for 10 s on a screened connection"
# Watch A's map from before the connection starts: the new connection (port 5010) must be screened before the
# outage (rocks_outage starts its fault once the rock has sent 1 MiB).
(
    while true; do
        inbound=$(tb_exec "$TB_A" nft list map inet rackd flows_in4) || true
        tb_grep -E "\\. 5010 : goto (screened|shifted)([ ,}]|\$)" <<<"$inbound" &&
            touch "$TB_DIR/screened-5010"
        # After the reconnection: the link's tuple (rackd's reconnection port, the rock's new port).
        [[ -e $TB_DIR/queued-again-5010 ]] && tb_grep "goto shifted_rewrite_in4" <<<"$inbound" &&
            touch "$TB_DIR/shifted-link-5010"
        tb_rackctl a status --json 2>/dev/null | tb_grep '"packets" *: *"screened"' && touch "$TB_DIR/status-screened-5010"
        outbound_queued 5010 && ! screened 5010 && [[ -e $TB_DIR/screened-5010 ]] && touch "$TB_DIR/queued-again-5010"
        grep -o "[^,{]*goto [a-z_0-9]*" <<<"$inbound" >>"$TB_DIR/flows-in4.seen" || true
        sleep 0.1
    done
) &
watcher=$!
ROCKS_OUTAGE_FAULTS=linkdown rocks_outage_faults client app
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
# An init of another length (1 connection in 128) leaves an offset of one: conntrack carries it (`shifted`).
if ! tb_assert "the connection was screened (or shifted) before the outage" test -e "$TB_DIR/screened-5010"; then
    # What rackd said of the connection and what A's map held, for the next look.
    grep -E ":5010 |:5010$" "$TB_DIR/rackd-a.log" | head -n 30 | sed 's/^/    rackd-a: /'
    sort -u "$TB_DIR/flows-in4.seen" 2>/dev/null | head -n 20 | sed 's/^/    flows_in4: /'
    false
fi
tb_assert "rackctl status showed it screened" test -e "$TB_DIR/status-screened-5010"
tb_assert "it was queued whole again from the suspension on" test -e "$TB_DIR/queued-again-5010"
tb_assert "once reconnected, the kernel carried it on the link's tuple (goto shifted_rewrite_in4: conntrack's shift)" \
    test -e "$TB_DIR/shifted-link-5010"
