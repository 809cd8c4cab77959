#!/usr/bin/env bash
# test_rocks_trace_compare.sh: tools/rocks_trace_compare.py, the judge of the rocks trace tests, without rackd.
#   - its unit test on the real captures (tools/rocks_trace_compare_test.py: equal to itself, DH values and
#     sockaddr ports masked, one-byte alterations found);
#   - on captures made here, between namespaces A and B (veth, through R): two rock-to-rock runs of the same
#     scenario (tools/rockspeer.py on both hosts, the same application bytes) are equal, in both roles and with
#     a banner, and their heartbeats are 1 s apart each way over 5 s;
#   - the same scenario with an ordinary application in A (rockspeer --plain) in place of the rock, and no rackd
#     to make it one, is different: the judge tells a rock from a non-rock on real captures.
# The rocks tests with rackd (test_rocks_client.sh, test_rocks_server.sh) compare their runs with such
# references.
# timeout: 180
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
command -v tcpdump >/dev/null || tb_skip "tcpdump is missing (scripts/install-deps)"

echo "== tools/rocks_trace_compare_test.py"
tb_assert "the unit test of the trace comparison passes" python3 -m unittest "$TB_TOOLS/rocks_trace_compare_test.py"

tb_setup
size=1M

echo "== client role: rock (A) to rock (B)"
rocks_scenario_client ref1 rock "$size" 5000
tb_assert "reference 1: both ends are rocks and the bytes arrive intact" rocks_scenario_finish ref1
tb_assert "reference 1: the client found a rock" test "$(rocks_field ref1-client 'r["peer_is_rock"]')" = True
tb_assert "reference 1: heartbeats each way, 1 s apart, over 5 s" "$ROCKS_COMPARE" heartbeats "$TB_DIR/ref1.pcap"
ROCKS_HOLD=2 rocks_scenario_client ref2 rock "$size" 5000
tb_assert "reference 2: intact" rocks_scenario_finish ref2
tb_assert "two rock clients wrote the same bytes at the same positions" rocks_compare ref1 ref2 client
tb_assert "and so did the two rock servers" rocks_compare ref1 ref2 server

echo "== client role: an ordinary application in A, no rackd"
ROCKS_HOLD=2 rocks_scenario_client plain1 app "$size" 5000
tb_assert "the ordinary client and the rock server still exchange their bytes (the rock falls back)" rocks_scenario_finish plain1
tb_assert "the rock server saw no rock" test "$(rocks_field plain1-server 'r["peer_is_rock"]')" = False
tb_assert_fails "the judge finds the ordinary client different from a rock client" rocks_compare ref1 plain1 client
tb_assert "because it saw no probe and no rock" grep -q "run: plain" "$TB_DIR/compare-plain1-client.txt"

echo "== client role with a banner-first server"
banner=$'SSH-2.0-test\r\n'
ROCKS_HOLD=2 ROCKS_RECEIVE=$((1048576 + ${#banner})) rocks_scenario_client ban1 rock "$size" 5000 --banner "$banner"
tb_assert "banner reference 1: intact" rocks_scenario_finish ban1 ${#banner}
ROCKS_HOLD=2 ROCKS_RECEIVE=$((1048576 + ${#banner})) rocks_scenario_client ban2 rock "$size" 5000 --banner "$banner"
tb_assert "banner reference 2: intact" rocks_scenario_finish ban2 ${#banner}
tb_assert "two banner runs: the client's bytes are equal" rocks_compare ban1 ban2 client
tb_assert "two banner runs: the server's bytes, banner included, are equal" rocks_compare ban1 ban2 server
tb_assert_fails "a banner run is not the plain reference's server side" rocks_compare ref1 ban1 server

echo "== server role: rock (B) to rock (A)"
rocks_scenario_server sref1 rock "$size" 5000
tb_assert "server reference 1: intact" rocks_scenario_finish sref1
tb_assert "server reference 1: the server answered one probe" test "$(rocks_stats_field sref1-server 's["probes"]')" = 1
ROCKS_HOLD=2 rocks_scenario_server sref2 rock "$size" 5000
tb_assert "server reference 2: intact" rocks_scenario_finish sref2
tb_assert "two rock servers wrote the same bytes at the same positions" rocks_compare sref1 sref2 server

echo "== server role: an ordinary server in A, no rackd"
ROCKS_HOLD=2 rocks_scenario_server splain1 app "$size" 5000
tb_assert "the rock client and the ordinary server still exchange their bytes" rocks_scenario_finish splain1
tb_assert "the ordinary server saw the probe as a client that closed at once" \
    test "$(rocks_stats_field splain1-server 's["empty_connections"]')" = 1
tb_assert_fails "the judge finds the ordinary server different from a rock server" rocks_compare sref1 splain1 server
