#!/usr/bin/env bash
# test_roam_ssh_session.sh: an interactive ssh session (openssh-server in B, ssh with a terminal in A) prints
# a counter every 100 ms. A black hole suspends the connection; while it is suspended A moves to another
# network (new address, old one unreachable); then the path returns. The session carries on from A's new
# address: the counter continues with no gap and no repeat, and ssh exits 0 having printed no error.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/ssh.sh
source "$here/lib/ssh.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
tb_require_rackd
ssh_require

racks_setup
ssh_start_server "$TB_B" "$TB_B_ADDR4"

# 600 lines at 100 ms: about 60 s of output; the outage covers 20 s of it.
count=600
script="i=0; while [ \$i -lt $count ]; do i=\$((i+1)); echo C\$i; sleep 0.1; done; exit"
ssh_start_session session "$TB_A" "$TB_B_ADDR4" "$script"
tb_assert "the counter is running" tb_wait_for "grep -q '^C20' '$TB_DIR/session.out'" 20 0.1
racks_wait_managed
tb_blackhole_on
racks_assert_suspended_both 1
sleep 5
tb_move_a 3
echo "A moved to $TB_A_ADDR4 while suspended"
sleep 15
before=$(grep -c '^C' "$TB_DIR/session.out" || true)
tb_blackhole_off
ms=$(roam_moved_time_ms 1)
echo "counter lines before the path returned: $before; moved to the new path ${ms} ms after the path returned"
tb_assert "the session moved to A's new address within 3 s (${ms} ms)" test "$ms" -le 3000
tb_assert "ssh exits 0" tb_wait_bg session 120
ssh_check_counter "$TB_DIR/session.out" "$count"
tb_assert "ssh printed no error" test ! -s "$TB_DIR/session.err"
tb_assert "B's rackd moved the session to A's new address" grep -q "conn.wire=10.2.0.2:22-10.3.0.2:" "$TB_DIR/rackd-b.log"
