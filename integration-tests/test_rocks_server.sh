#!/usr/bin/env bash
# test_rocks_server.sh: rackd in A plays the rocks server for an ordinary server application; the rock is
# tools/rockspeer.py connect in B (issue 11, "What it must show"). rackd: [rocks] legacy-auth = yes,
# serve-ports = the application's ports. The application is rockspeer.py serve --plain --read-first: an ordinary
# server that reads before it writes (what it sees of a rocks probe is a client that connected and closed).
#   - the rock's probe gets the announcement and a FIN; the application sees a client that closed at once;
#   - trace: the same scenario (1 MiB each way, then 7 s idle) captured on B's link rock to rock (rockspeer serve
#     in A, no rackd), then with rackd and the ordinary server: every byte A sent toward the rock is the rock
#     server's at the same stream position (the probe's answer, the announcement and the six init segments with
#     the DH value and the sockaddrs' ports and addresses masked, the application's bytes); heartbeats b"x"
#     each way, 1 s apart over more than 5 s;
#   - rackctl status --json shows the connection: peer_kind rocks, role server, key_suite legacy-dh128-bf;
#     once both ends closed it, it is closing or gone within 5 s, and rackd sends no more heartbeats to the
#     rock's closed socket;
#   - a server application that writes a banner first: rackd's announcement follows it (trace as a rock
#     server with that banner);
#   - 20 MiB each way at once, SHA-256 on both ends.
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
rocks_scenario_server ref rock "$size" 5000
tb_assert "reference: intact, both ends rocks" rocks_scenario_finish ref
# The client announces 0.3 s after connecting, so the server application has accepted and written its banner
# by then: rackd's announcement goes after what the application already wrote (docs/rocks.md §14).
ROCKS_HOLD=2 ROCKS_RECEIVE=$with_banner rocks_scenario_server refban rock "$size" 5001 --banner "$banner" -- \
    --announce-after 0.3
tb_assert "banner reference: intact" rocks_scenario_finish refban ${#banner}

echo "== rackd in A: serve-ports = 5000-5002"
rocks_start_rackd "$TB_A" a "serve-ports = 5000-5002"

rocks_scenario_server run app "$size" 5000
tb_assert "rackd's status lists a rocks connection" rocks_wait_conn a rocks 15
status=$(rocks_status_conns a rocks)
echo "status: $status"
tb_assert "it is rackd's server connection from B, suite legacy-dh128-bf" \
    grep -Eq "^server [a-z-]+ legacy-dh128-bf $TB_A_ADDR4:5000 $TB_B_ADDR4:[0-9]+\$" <<<"$status"
tb_assert "it is healthy while the rock holds it open" \
    tb_wait_for "[[ \$(rocks_status_conns a rocks) == 'server healthy '* ]]" 5
tb_assert "the rock and the application exchange 1 MiB each way intact" rocks_scenario_finish run
tb_assert "the rock's probe found a rock in A" test "$(rocks_stats_field run-client 's["edp"]')" = rock
tb_assert "the rock's data connection is a rock" test "$(rocks_field run-client 'r["peer_is_rock"]')" = True
tb_assert "the application saw the probe as a client that connected and closed" \
    test "$(rocks_stats_field run-server 's["empty_connections"]')" = 1
tb_assert "the application itself found no rock (it is plain TCP)" \
    test "$(rocks_field run-server 'r["peer_is_rock"]')" = False
tb_assert "the rock's stream offsets are 76 each way" \
    test "$(rocks_stats_field run-client '(s["stream_offset_sent"], s["stream_offset_received"])')" = "(76, 76)"
tb_assert "the rock's DH secret was agreed with rackd (its init completed)" \
    test "$(rocks_stats_field run-client 'len(s["bf_key"] or "")')" = 32
tb_assert "every byte rackd sent toward the rock is the rock server's (probe answer, announcement, init, data)" \
    rocks_compare ref run server
tb_assert "heartbeats each way, b\"x\", 1 s apart, over more than 5 s" "$ROCKS_COMPARE" heartbeats "$TB_DIR/run.pcap"
tb_assert "the rock counted rackd's heartbeats (at least 5)" \
    test "$(rocks_field run-client 'r["heartbeats_received"]')" -ge 5
tb_assert "the rock did not suspend" test "$(rocks_field run-client 'r["suspensions"]')" = 0
tb_assert "once both ends closed, rackd lets the connection go and stops heartbeating the closed rock" \
    rocks_after_close a "$TB_A_ADDR4:5000" "$TB_DIR/run.pcap" 5000 client

echo "== a server application that writes a banner first"
ROCKS_HOLD=2 ROCKS_RECEIVE=$with_banner rocks_scenario_server runban app "$size" 5001 --banner "$banner" -- \
    --announce-after 0.3 --receive-file "$TB_DIR/runban.received"
tb_assert "banner run: the bytes arrive (count)" rocks_scenario_finish runban ${#banner}
tb_assert "banner run: every byte rackd and the application sent matches the rock server's" \
    rocks_compare refban runban server
rocks_expected_bytes "$size" 2 "$TB_DIR/runban.s2c"
{ printf '%s' "$banner" && cat "$TB_DIR/runban.s2c"; } >"$TB_DIR/runban.expected"
tb_assert "the rock read the banner first, then the application's 1 MiB intact" \
    cmp "$TB_DIR/runban.expected" "$TB_DIR/runban.received"
tb_assert "banner run: the rock's data connection is a rock" test "$(rocks_field runban-client 'r["peer_is_rock"]')" = True

echo "== 20 MiB each way at once"
rocks_serve big-server "$TB_A" "$TB_A_ADDR4:5002" --plain --read-first --count 1 --send-bytes 20M --seed 4
rocks_connect big-client "$TB_B" "$TB_A_ADDR4:5002" --send-bytes 20M --seed 3 --receive-bytes 20M
tb_assert "the rock ends cleanly" rocks_wait big-client 120
tb_assert "the application ends cleanly" rocks_wait big-server 30
tb_assert "20 MiB each way intact (SHA-256 on both ends)" rocks_check_pair big-client big-server 20M 20M
tb_assert "it was a rocks connection on the rock's side" test "$(rocks_field big-client 'r["peer_is_rock"]')" = True

tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a TERM
