#!/usr/bin/env bash
# test_systemd_notify.sh: rackd under a stand-in for systemd (Type=notify, WatchdogSec, the journal):
# - READY=1 comes once the queue is bound, the rules are installed and the control socket answers
#   (checked by the listener the moment READY=1 arrives);
# - WATCHDOG=1 comes from the packet loop at half the watchdog interval; STATUS= lines say what rackd
#   manages; STOPPING=1 comes on SIGTERM;
# - with JOURNAL_STREAM naming its stderr and no journald to take entries (sd_journal_sendv fails here),
#   every log line starts with a syslog priority "<N>", and every line about a connection carries its id,
#   state and peer kind;
# - the fd store (docs/systemd.md): with [rocks] enabled rackd stores the heartbeat socket (UDP) as
#   FDNAME=rocks-heartbeat and the reconnection socket (TCP) as FDNAME=rocks-reconnection, each with its
#   descriptor (SCM_RIGHTS); while rackd is down the stored heartbeat port refuses nothing (a port nobody
#   holds does); started again with the stored descriptors (LISTEN_FDS, as systemd does), rackd adopts
#   both with their ports and stores nothing new; with another heartbeat port configured it drops the
#   stored one (FDSTOREREMOVE=1) and stores the new; with rocks disabled it drops both.
# timeout: 180
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
tb_assert "lines about a managed connection name its peer kind" grep -q "^<5>connection state changed .*conn.peer-kind=rackd" "$log"
tb_assert "B's log (a terminal, not the journal) has timestamps" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TB_DIR/rackd-b.log"

# --- The fd store: the rocks sockets.
rocks_conf=$TB_DIR/rocks.conf
printf '[rocks]\nlegacy-auth = yes\nprobe = listed\nprobe-ports = 7103\n' >"$rocks_conf"
NOTIFY_SOCKET=$notify tb_start_rackd "$TB_A" rocks1 --config "$rocks_conf"
line=$(grep "rocks sockets bound" "$TB_DIR/rackd-rocks1.log" || true)
heartbeat=$(sed -n 's/.*rocks.heartbeat-port=\([0-9]*\).*/\1/p' <<<"$line")
reconnection=$(sed -n 's/.*rocks.reconnection-port=\([0-9]*\).*/\1/p' <<<"$line")
echo "rocks ports: heartbeat $heartbeat, reconnection $reconnection"
tb_assert "rackd bound both rocks ports" test -n "$heartbeat" -a -n "$reconnection"
tb_assert "READY=1 arrived for the rocks run" tb_wait_for "test \$(grep -c ' READY=1$' '$events') -ge 2" 5 0.05
tb_assert "FDSTORE=1 with FDNAME=rocks-heartbeat carried the UDP socket on port $heartbeat" \
    tb_wait_for "grep -q ' FDSTORE-FDS name=rocks-heartbeat udp:$heartbeat$' '$events'" 5 0.05
tb_assert "FDSTORE=1 with FDNAME=rocks-reconnection carried the TCP socket on port $reconnection" \
    grep -q " FDSTORE-FDS name=rocks-reconnection tcp:$reconnection$" "$events"
tb_assert "nothing else was stored" test "$(grep -c ' FDSTORE-FDS ' "$events")" -eq 2
# systemd drops a stored descriptor that polls EPOLLHUP; the reconnection socket (bound, never listening)
# does, so every store must ask systemd not to poll (packaging/test-deb-boot checks it under systemd 252).
tb_assert "every FDSTORE=1 came with FDPOLL=0" \
    test "$(grep -c ' FDPOLL=0$' "$events")" -eq "$(grep -c ' FDSTORE=1$' "$events")"
tb_assert "rackd stops" tb_stop_rackd "$TB_A" rocks1

# udp_refused PORT: from B, two datagrams to A's PORT on a connected socket; true if A refused them (ICMP
# port unreachable, seen as ECONNREFUSED).
udp_refused() {
    tb_exec "$TB_B" python3 - "$TB_A_ADDR4" "$1" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], int(sys.argv[2])))
s.settimeout(0.5)
try:
    s.send(b"\0")
    time.sleep(0.3)
    s.send(b"\0")
    s.recv(16)
except ConnectionRefusedError:
    sys.exit(0)
except socket.timeout:
    pass
sys.exit(1)
PY
}
tb_assert_fails "while rackd is down, a datagram to the stored heartbeat port is not refused" udp_refused "$heartbeat"
tb_assert "(the check sees refusals: a port nobody holds refuses)" udp_refused 9

# Started as systemd starts a unit whose store holds descriptors.
launcher=$TB_DIR/rackd-fdstore
printf '#!/bin/sh\nexec python3 %q %q %q "$@"\n' "$here/lib/fdstore_exec.py" "$notify" "$(tb_rackd_bin)" >"$launcher"
chmod +x "$launcher"
stored_before=$(grep -c ' FDSTORE-FDS ' "$events")
NOTIFY_SOCKET=$notify RACKD_BIN=$launcher tb_start_rackd "$TB_A" rocks2 --config "$rocks_conf"
tb_assert "the listener handed both descriptors over" grep -q " FDSTORE-HANDED count=2$" "$events"
tb_assert "rackd took the heartbeat socket back" \
    grep -q "rocks socket taken back from systemd's fd store fdstore.name=rocks-heartbeat rocks.port=$heartbeat$" "$TB_DIR/rackd-rocks2.log"
tb_assert "rackd took the reconnection socket back" \
    grep -q "rocks socket taken back from systemd's fd store fdstore.name=rocks-reconnection rocks.port=$reconnection$" "$TB_DIR/rackd-rocks2.log"
tb_assert "the rocks ports are the same as before the restart" \
    grep -q "rocks sockets bound rocks.heartbeat-port=$heartbeat rocks.reconnection-port=$reconnection$" "$TB_DIR/rackd-rocks2.log"
tb_assert "adopted sockets stay stored: nothing stored again" test "$(grep -c ' FDSTORE-FDS ' "$events")" -eq "$stored_before"
tb_assert "the adopted heartbeat socket is rackd's" bash -c "ip netns exec $TB_A ss -Hlunp 'sport = :$heartbeat' | grep -q rackd"
tb_assert "rackd stops" tb_stop_rackd "$TB_A" rocks2

# Another heartbeat port configured: the stored one goes, the new one is stored; the reconnection socket stays.
printf 'heartbeat-port = 7311\n' >>"$rocks_conf"
NOTIFY_SOCKET=$notify RACKD_BIN=$launcher tb_start_rackd "$TB_A" rocks3 --config "$rocks_conf"
tb_assert "the stored heartbeat socket on the old port was removed" grep -q " FDSTORE-REMOVED name=rocks-heartbeat count=1$" "$events"
tb_assert "the new heartbeat socket was stored" grep -q " FDSTORE-FDS name=rocks-heartbeat udp:7311$" "$events"
tb_assert "the reconnection socket was taken back" \
    grep -q "rocks socket taken back from systemd's fd store fdstore.name=rocks-reconnection rocks.port=$reconnection$" "$TB_DIR/rackd-rocks3.log"
tb_assert "rackd stops" tb_stop_rackd "$TB_A" rocks3

# rocks disabled: both names go from the store.
NOTIFY_SOCKET=$notify RACKD_BIN=$launcher tb_start_rackd "$TB_A" plain
tb_assert "the heartbeat name was removed from the store" test "$(grep -c ' FDSTORE-REMOVED name=rocks-heartbeat ' "$events")" -eq 2
tb_assert "the reconnection name was removed from the store" grep -q " FDSTORE-REMOVED name=rocks-reconnection count=1$" "$events"
tb_assert "the old heartbeat port is free again" bash -c "! ip netns exec $TB_A ss -Hlun 'sport = :7311' | grep -q ."
tb_assert "rackd stops" tb_stop_rackd "$TB_A" plain
