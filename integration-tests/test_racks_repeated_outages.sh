#!/usr/bin/env bash
# test_racks_repeated_outages.sh: the path fails again during resumption, three times in a row, and the
# connection still converges. Each time the path half-returns (A's challenges reach B, B's answers are
# lost, so B is left "resuming"), then fails fully again. Then it returns for good.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd

racks_setup
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 50M 50M --rate 2500K -- --rate 2500K
racks_wait_managed
sleep 3
tb_blackhole_on
racks_assert_suspended_both 1
for round in 1 2 3; do
    tb_blackhole_off
    tb_blackhole_on b2a    # A -> B passes, B -> A is lost: resumption starts and cannot finish
    tb_assert "round $round: B answers A's challenge" racks_wait_count b "challenge answered" "$round" 10
    tb_assert "round $round: B is resuming" grep -q "conn.state=resuming" "$TB_DIR/rackd-b.log"
    tb_blackhole_off
    tb_blackhole_on        # and the path fails again
    sleep 2
    tb_assert "round $round: A is still suspended" test "$(racks_count a 'connection resumed')" = 0
done
tb_blackhole_off
ms=$(racks_resume_time_ms 1)
echo "resumed ${ms} ms after the path returned for good"
tb_assert "resumption completes within 1 s of the path's return (${ms} ms)" test "$ms" -le 1000
tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
