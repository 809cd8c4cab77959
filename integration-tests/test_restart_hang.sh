#!/usr/bin/env bash
# test_restart_hang.sh: rackd on A hangs (SIGSTOP) for 10 s with a moved connection mid-transfer, then is
# killed and started again, as systemd's watchdog does (docs/restarts.md, "A hung rackd"; the unit's
# WatchdogSec is 5 s, so a real hang lasts half as long). Nothing is lost (SHA-256 both ways); the moved
# connection, whose mapping the kernel carries (Core/KernelRewrite.swift), keeps moving data through the
# hang and B never suspends it; the test prints how long a new connection started during the hang waited.
# timeout: 240
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
# shellcheck source=integration-tests/lib/restart.sh
source "$here/lib/restart.sh"
tb_require_rackd

# acked_bytes NS PORT: bytes_acked of the established connection to or from PORT in NS.
acked_bytes() {
    tb_exec "$1" ss -tinH state established "( sport = :$2 or dport = :$2 )" | grep -o 'bytes_acked:[0-9]*' | head -1 | cut -d: -f2
}

racks_setup
tb_bg "$TB_B" listener socat TCP-LISTEN:6000,fork,reuseaddr /dev/null
tb_wait_port "$TB_B" 6000
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 60M 60M --rate 2500K -- --rate 2500K
racks_wait_managed
tb_move_a 3
tb_assert "the connection moved on A" roam_wait_moved a 1 10
tb_assert "the connection moved on B" roam_wait_moved b 1 10
sleep 1

tb_assert "A has the kernel map the moved connection" tb_wait_for "tb_rackctl a status | tb_grep 'mapped by kernel'" 10 0.1
pid=$(tb_rackd_pid a)
acked_at_hang=$(acked_bytes "$TB_A" 5001)
kill -STOP "$pid"
hang_start=$(date +%s%N)
# A new connection from A while A's rackd hangs: its SYN waits in the queue rackd no longer reads.
tb_bg "$TB_A" newconn python3 -c "
import socket, time
start = time.monotonic()
s = socket.create_connection(('$TB_B_ADDR4', 6000), timeout=60)
print(int((time.monotonic() - start) * 1000))
"
sleep 10
acked_before=$(acked_bytes "$TB_A" 5001)
echo "the moved connection had $((acked_before - acked_at_hang)) bytes acknowledged during the 10 s hang"
tb_assert "the moved connection kept moving data while rackd hung (>= 10 MB in 10 s at 2.5 MB/s)" \
    test "$((acked_before - acked_at_hang))" -ge 10000000
kill -KILL "$pid"
kill -CONT "$pid" 2>/dev/null || true
tb_wait_bg rackd-a 10 || true
tb_assert "A's table inet rackd outlives the killed rackd" tb_has_rackd_table "$TB_A"
mv "$TB_DIR/rackd-a.log" "$TB_DIR/rackd-a.log.1"
restart=$(date +%s%N)
tb_assert "rackd-a starts again" tb_start_rackd "$TB_A" a --log-level debug
tb_assert "rackd-a took the moved connection back" racks_wait_count a "connections taken back" 1 5
tb_assert "the new connection opened" tb_wait_bg newconn 30
waited=$(cat "$TB_DIR/newconn.log")
echo "a new connection started at the hang's beginning waited ${waited} ms (hang 10 s; restart $(((restart - hang_start) / 1000000)) ms after it began)"
tb_assert "the new connection waited no longer than the hang, the restart and one SYN retransmission (${waited} ms)" \
    test "$waited" -le 20000
tb_assert "the moved connection moves data after the restart" tb_wait_for "test \$(acked_bytes $TB_A 5001) -gt $acked_before" 20 0.05
tb_assert "60 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
# B heard A's data all along: it had no reason to suspend.
tb_assert "B never suspended the connection" test "$(racks_count b 'state changed.*conn.state=suspended')" = 0
