#!/usr/bin/env bash
# test_rocks_client.sh: rackd in A plays the rocks client for ordinary applications; the rock is
# tools/rockspeer.py serve in B (issue 11, "What it must show"). rackd: [rocks] legacy-auth = yes, probe =
# listed, probe-addresses = B.
#   - trace: the same scenario (1 MiB each way, then 7 s idle) is captured on B's link first rock to rock (rockspeer
#     connect in A, no rackd), then with rackd and an ordinary application in A (rockspeer --plain: plain TCP,
#     the same bytes). tools/rocks_trace_compare.py must find every byte A sent toward the rock the same, at the
#     same stream position: the probe (SYN, ACK, FIN, no data), the announcement and the six init segments
#     (DH value and sockaddr ports and addresses masked, their layout kept), then the application's bytes; the
#     heartbeats are b"x" between the advertised sockaddrs, each way, 1 s apart over more than 5 s;
#   - rackctl status --json shows the connection: peer_kind rocks, role client, key_suite legacy-dh128-bf;
#     once both ends closed it, it is closing or gone within 5 s, and rackd sends no more heartbeats to the
#     rock's closed socket;
#   - the same with a banner-first rock server: the application reads the banner first, then the server's
#     bytes intact, and the trace again matches the rock-to-rock one;
#   - 20 MiB each way at once between tools/xfer.py in A and the rock, SHA-256 on both ends.
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd
command -v tcpdump >/dev/null || tb_skip "tcpdump is missing (scripts/install-deps)"

size=1M
banner=$'SSH-2.0-test\r\n'
with_banner=$((1048576 + ${#banner}))
tb_setup

echo "== references, rock to rock, before rackd starts"
rocks_scenario_client ref rock "$size" 5000
tb_assert "reference: intact, both ends rocks" rocks_scenario_finish ref
ROCKS_HOLD=2 ROCKS_RECEIVE=$with_banner rocks_scenario_client refban rock "$size" 5001 --banner "$banner"
tb_assert "banner reference: intact" rocks_scenario_finish refban ${#banner}

echo "== rackd in A: probe = listed, probe-addresses = $TB_B_ADDR4"
rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4"

rocks_scenario_client run app "$size" 5000
tb_assert "rackd's status lists a rocks connection" rocks_wait_conn a rocks 15
status=$(rocks_status_conns a rocks)
echo "status: $status"
tb_assert "it is rackd's client connection to B, suite legacy-dh128-bf" \
    grep -Eq "^client [a-z-]+ legacy-dh128-bf $TB_A_ADDR4:[0-9]+ $TB_B_ADDR4:5000\$" <<<"$status"
tb_assert "it is healthy while the application holds it open" \
    tb_wait_for "[[ \$(rocks_status_conns a rocks) == 'client healthy '* ]]" 5
tb_assert "the application and the rock exchange 1 MiB each way intact" rocks_scenario_finish run
tb_assert "the application (plain TCP) found no rock itself" test "$(rocks_field run-client 'r["peer_is_rock"]')" = False
tb_assert "the rock found a rock in A: rackd" test "$(rocks_field run-server 'r["peer_is_rock"]')" = True
tb_assert "the rock answered one probe: rackd's" test "$(rocks_stats_field run-server 's["probes"]')" = 1
tb_assert "the rock's stream offsets are 76 each way" \
    test "$(rocks_stats_field run-server '(s["stream_offset_sent"], s["stream_offset_received"])')" = "(76, 76)"
tb_assert "the rock's DH secret was agreed with rackd (its init completed)" \
    test "$(rocks_stats_field run-server 'len(s["bf_key"] or "")')" = 32
tb_assert "every byte rackd sent toward the rock is the rock client's (probe, announcement, init, data)" \
    rocks_compare ref run client
tb_assert "heartbeats each way, b\"x\", 1 s apart, over more than 5 s" "$ROCKS_COMPARE" heartbeats "$TB_DIR/run.pcap"
tb_assert "the rock counted rackd's heartbeats (at least 5)" \
    test "$(rocks_field run-server 'r["heartbeats_received"]')" -ge 5
tb_assert "the rock did not suspend" test "$(rocks_field run-server 'r["suspensions"]')" = 0
tb_assert "once both ends closed, rackd lets the connection go and stops heartbeating the closed rock" \
    rocks_after_close a "$TB_B_ADDR4:5000" "$TB_DIR/run.pcap" 5000 server

echo "== a banner-first rock server"
ROCKS_HOLD=2 ROCKS_RECEIVE=$with_banner rocks_scenario_client runban app "$size" 5001 --banner "$banner" -- \
    --receive-file "$TB_DIR/runban.received"
tb_assert "banner run: the bytes arrive (count)" rocks_scenario_finish runban ${#banner}
tb_assert "banner run: every byte rackd sent matches the rock client's" rocks_compare refban runban client
rocks_expected_bytes "$size" 2 "$TB_DIR/runban.s2c"
{ printf '%s' "$banner" && cat "$TB_DIR/runban.s2c"; } >"$TB_DIR/runban.expected"
tb_assert "the application read the banner first, then the rock's 1 MiB intact" \
    cmp "$TB_DIR/runban.expected" "$TB_DIR/runban.received"
tb_assert "the rock received the application's bytes intact" \
    test "$(rocks_field runban-server 'r["recv_sha256"]')" = "$(rocks_field runban-client 'r["sent_sha256"]')"
tb_assert "banner run: the rock found a rock in A" test "$(rocks_field runban-server 'r["peer_is_rock"]')" = True

echo "== 20 MiB each way at once: tools/xfer.py in A, the rock in B"
rocks_serve big-server "$TB_B" "$TB_B_ADDR4:5002" --count 1 --send-bytes 20M --seed 3
tb_assert "xfer.py's transfer ends cleanly" rocks_xfer_client big-client "$TB_A" "$TB_B_ADDR4" 5002 20M
tb_assert "the rock ends cleanly" rocks_wait big-server 60
tb_assert "20 MiB each way intact (SHA-256 on both ends)" rocks_check_pair big-client big-server 20M 20M
tb_assert "it was a rocks connection on the rock's side" test "$(rocks_field big-server 'r["peer_is_rock"]')" = True

tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a TERM
