#!/usr/bin/env bash
# test_restart_rocks_healthy.sh: rackd in A plays the rocks client of a healthy connection mid-transfer (every
# one of its packets passes rackd: its offsets last its life) and is restarted twice, with SIGTERM and then
# SIGKILL (docs/restarts.md). The rock must not notice: no suspension, no reconnection; the new rackd keeps the
# splice, the heartbeats (on the same port) and the ring; 20 MiB each way arrive intact (SHA-256 on both ends).
# timeout: 180
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd

tb_setup
rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4"
pace=(--chunk 64K --interval 0.05 --trace-max-hex 32)
rocks_serve server "$TB_B" "$TB_B_ADDR4:5010" --count 1 --send-bytes 20M --seed 2 --trace "$TB_DIR/server.trace" "${pace[@]}"
rocks_connect client "$TB_A" "$TB_B_ADDR4:5010" --send-bytes 20M --seed 1 --receive-bytes 20M \
    --trace "$TB_DIR/client.trace" "${pace[@]}" --plain
tb_assert "rackd-a shows the rocks connection healthy" \
    tb_wait_for "[[ \$(rocks_conn_field a $TB_B_ADDR4:5010 'c and c[\"state\"]' 2>/dev/null) == healthy ]]" 15
tb_assert "the transfer is under way (the rock wrote 2.5 MiB)" tb_wait_for "(( \$(rocks_trace_bytes server app) >= 2621440 ))" 20
for signal in TERM KILL; do
    before=$(rocks_trace_bytes server app)
    rocks_restart_rackd a "$signal"
    tb_assert "after SIG$signal the restarted rackd shows the connection healthy" \
        test "$(rocks_conn_field a "$TB_B_ADDR4:5010" 'c and c["state"]')" = healthy
    tb_assert "after SIG$signal data flows again (the rock wrote 1 MiB more)" \
        tb_wait_for "(( \$(rocks_trace_bytes server app) >= $before + 1048576 ))" 20
    sleep 3
done
tb_assert "the client ends cleanly" rocks_wait client 120
tb_assert "the server ends cleanly" rocks_wait server 30
tb_assert "20 MiB each way intact (SHA-256 on both ends)" rocks_check_pair client server 20M 20M
echo "rock: $(rocks_stats_field server '"suspensions %s, recoveries %s, auth failures %s" % (s["suspension_events"], s["recoveries"], s["auth_failures"])')"
tb_assert "the rock never suspended (it did not notice the restarts)" \
    test "$(rocks_stats_field server '(s["suspensions"], s["recoveries"], s["auth_failures"])')" = "(0, 0, 0)"
