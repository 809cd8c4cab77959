#!/usr/bin/env bash
# test_systemd_notify.sh: rackd under a stand-in for systemd (Type=notify, WatchdogSec, the journal):
# - READY=1 comes once the queue is bound, the rules are installed and the control socket answers
#   (checked by the listener the moment READY=1 arrives);
# - WATCHDOG=1 comes from the packet loop at half the watchdog interval; STATUS= lines say what rackd
#   manages; STOPPING=1 comes on SIGTERM;
# - with JOURNAL_STREAM naming its stderr, every log line starts with a syslog priority "<N>", and every
#   line about a connection carries its id and state.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd

tb_setup
notify=$TB_DIR/notify.sock
events=$TB_DIR/notify.events
ready_check="ip netns exec $TB_A nft list table inet rackd && $(tb_rackctl_bin) status --socket $TB_DIR/rackd-a.sock"
tb_bg "$TB_R" notify-listener python3 "$here/lib/notify_listener.py" "$notify" "$events" "$ready_check"
tb_wait_for "grep -q LISTENING '$events'" 5 0.05

# systemd gives the service these; JOURNAL_STREAM is "device:inode" of the stream stderr is connected to.
: >"$TB_DIR/rackd-a.log"
journal_stream="$(stat -c '%d:%i' "$TB_DIR/rackd-a.log")"
NOTIFY_SOCKET=$notify WATCHDOG_USEC=1000000 JOURNAL_STREAM=$journal_stream tb_start_rackd "$TB_A" a
tb_start_rackd "$TB_B" b
tb_assert "READY=1 arrived" tb_wait_for "grep -q ' READY=1$' '$events'" 5 0.05
tb_assert "at READY=1 the rules were installed and rackctl was answered" grep -q "READY-CHECK 0$" "$events"

tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 10M 10M --rate 2500K -- --rate 2500K
racks_wait_managed
tb_assert "STATUS says a connection is managed" tb_wait_for "grep -q 'STATUS=1 connections managed, 0 suspended' '$events'" 5 0.1
tb_blackhole_on
tb_assert "STATUS says it is suspended" tb_wait_for "grep -q 'STATUS=1 connections managed, 1 suspended' '$events'" 10 0.1
tb_blackhole_off
tb_assert "STATUS says it is healthy again" tb_wait_for \
    "test \$(grep -c 'STATUS=1 connections managed, 0 suspended' '$events') -ge 2" 10 0.1
tb_assert "10 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 120

beats=$(grep -c ' WATCHDOG=1$' "$events" || true)
first=$(grep ' WATCHDOG=1$' "$events" | head -n 1 | cut -d' ' -f1)
last=$(grep ' WATCHDOG=1$' "$events" | tail -n 1 | cut -d' ' -f1)
echo "$beats watchdog notifications between ${first}s and ${last}s"
tb_assert "WATCHDOG=1 at least every 0.6 s (WATCHDOG_USEC=1 s)" python3 - "$events" <<'PY'
import sys
stamps = [float(l.split()[0]) for l in open(sys.argv[1]) if l.rstrip().endswith(" WATCHDOG=1")]
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
print(f"{len(stamps)} beats, largest gap {max(gaps):.3f} s")
assert len(stamps) >= 6 and max(gaps) <= 0.6, gaps
PY
tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a
tb_assert "STOPPING=1 arrived" grep -q " STOPPING=1$" "$events"

log=$TB_DIR/rackd-a.log
tb_assert "every log line starts with a syslog priority" bash -c "! grep -qv '^<[0-7]>' '$log'"
tb_assert "state changes are logged at notice (<5>)" grep -q "^<5>connection state changed" "$log"
tb_assert "every line with a connection id has its state" bash -c "! grep 'conn.id=' '$log' | grep -qv 'conn.state='"
tb_assert "B's log (a terminal, not the journal) has timestamps" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TB_DIR/rackd-b.log"
