#!/usr/bin/env bash
# test_racks_ssh_session.sh: an interactive ssh session (openssh-server in B, ssh with a terminal in A,
# driven by a script) prints a counter every 100 ms through a 60 s black hole. Afterwards the counter
# continues with no gap and no repeat, and ssh exits 0 having printed no error.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/ssh.sh
source "$here/lib/ssh.sh"
tb_require_rackd
ssh_require

racks_setup
ssh_start_server "$TB_B" "$TB_B_ADDR4"

# 900 lines at 100 ms: about 90 s of output; the black hole covers 60 s of it.
count=900
script="i=0; while [ \$i -lt $count ]; do i=\$((i+1)); echo C\$i; sleep 0.1; done; exit"
ssh_start_session session "$TB_A" "$TB_B_ADDR4" "$script"
tb_assert "the counter is running" tb_wait_for "grep -q '^C20' '$TB_DIR/session.out'" 20 0.1
racks_wait_managed
tb_blackhole_on
sleep 60
before=$(grep -c '^C' "$TB_DIR/session.out" || true)
tb_blackhole_off
ms=$(racks_resume_time_ms 1)
echo "counter lines before the path returned: $before; resumed ${ms} ms after the path returned"
tb_assert "ssh exits 0" tb_wait_bg session 120
ssh_check_counter "$TB_DIR/session.out" "$count"
tb_assert "ssh printed no error" test ! -s "$TB_DIR/session.err"
tb_assert "both rackds suspended during the black hole" test "$(racks_count a 'state changed.*conn.state=suspended')" -ge 1
