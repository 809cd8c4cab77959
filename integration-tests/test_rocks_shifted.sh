#!/usr/bin/env bash
# test_rocks_shifted.sh: a rocks server's connection leaves the queue (Core/KernelShift.swift). rackd in A plays the
# rocks server for an ordinary application (tools/rockspeer.py serve --plain); the rock is rockspeer.py connect in
# B. Once both inits are through, the splice leaves 76 bytes each way for the connection's life; rackd makes a
# conntrack entry with that shift (seqadj, over ctnetlink) and screens the flow as a rocks client's: the socket's
# segments still pass rackd (the send ring), unchanged; of the rock's only SYN, FIN and RST, and any the kernel
# would not shift.
#   1. 20 MiB each way at once: while it runs, flows_in4 sends the connection to the chain `shifted`, A's conntrack
#      has the entry, rackctl status says `screened`; of the rock's packets that reached A (counted by a table of
#      the test's own, before rackd's) at most 50 were queued; SHA-256 each way on both ends; the rock never
#      suspended; the entry is gone once the connection closed.
#   2. conntrack -F in A three times during a 300 MiB each-way transfer (the entry lost, as to a flush or a
#      timeout): rackd maps the packets the kernel no longer shifts, makes the entry again (logged; the kernel
#      passes the rock's packets again), and every byte arrives (SHA-256), the rock never suspending.
#   3. rackd restarted (SIGTERM) during a 20 MiB each-way transfer: the new rackd takes the connection back, shifts
#      it again (its entry, its elements), and every byte arrives (SHA-256), the rock never suspending.
#   4. rackd restarted with `[rocks] conntrack = no` during a transfer: the new rackd deletes the entry the last
#      one made, queues the connection, and every byte arrives (SHA-256), the rock never suspending.
# timeout: 360
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd
command -v conntrack >/dev/null || tb_skip "the conntrack tool is missing (scripts/install-deps)"

# shifted PORT: true when A's flows_in4 sends the connection on A's PORT to the chain `shifted`.
shifted() { tb_exec "$TB_A" nft list map inet rackd flows_in4 | tb_grep -E "$TB_A_ADDR4 \. $1 \. [0-9.]+ \. [0-9]+ : goto shifted"; }
# entry PORT: true when A's conntrack has an entry for the connection on A's PORT, made by rackd (its original
# direction is the socket's: from A's PORT).
entry() { tb_exec "$TB_A" conntrack -L -p tcp --orig-src "$TB_A_ADDR4" --orig-port-src "$1" 2>/dev/null | tb_grep -q ESTABLISHED; }

# start_pair NAME PORT SEED [SIZE]: SIZE (20M) each way at once between the rock in B (NAME-client) and the
# ordinary application on A's PORT (NAME-server).
start_pair() {
    local size=${4:-20M}
    rocks_serve "$1-server" "$TB_A" "$TB_A_ADDR4:$2" --plain --read-first --count 1 --send-bytes "$size" --seed "$3"
    rocks_connect "$1-client" "$TB_B" "$TB_A_ADDR4:$2" --send-bytes "$size" --seed "$(($3 + 100))" --receive-bytes "$size"
}
# finish_pair NAME WHEN [SIZE]: both ends of pair NAME are done, every byte arrived each way (SHA-256) and the rock
# never suspended; WHEN says after what, for the assertion.
finish_pair() {
    local size=${3:-20M}
    tb_assert "the rock ends cleanly" rocks_wait "$1-client" 180
    tb_assert "the application ends cleanly" rocks_wait "$1-server" 30
    tb_assert "$size each way intact $2 (SHA-256 on both ends)" rocks_check_pair "$1-client" "$1-server" "$size" "$size"
    tb_assert "the rock did not suspend" test "$(rocks_field "$1-client" 'r["suspensions"]')" = 0
}

tb_setup
echo "== rackd in A: serve-ports = 5002-5005"
rocks_start_rackd "$TB_A" a "serve-ports = 5002-5005"
tb_assert "rackd found it can shift in the kernel" \
    tb_wait_for "grep -q 'conntrack carries' '$TB_DIR/rackd-a.log'" 5
rocks_count_arrivals "$TB_A" ip saddr $TB_B_ADDR4 tcp dport 5002

echo "== 1. 20 MiB each way at once"
rocks_serve one-server "$TB_A" "$TB_A_ADDR4:5002" --plain --read-first --count 1 --send-bytes 20M --seed 4
(
    while true; do
        shifted 5002 && touch "$TB_DIR/shifted-5002"
        entry 5002 && touch "$TB_DIR/entry-5002"
        tb_rackctl a status --json 2>/dev/null | tb_grep '"packets" *: *"screened"' && touch "$TB_DIR/status-5002"
        sleep 0.1
    done
) &
watcher=$!
rocks_connect one-client "$TB_B" "$TB_A_ADDR4:5002" --send-bytes 20M --seed 3 --receive-bytes 20M
tb_assert "the rock ends cleanly" rocks_wait one-client 120
tb_assert "the application ends cleanly" rocks_wait one-server 30
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true
tb_assert "20 MiB each way intact (SHA-256 on both ends)" rocks_check_pair one-client one-server 20M 20M
tb_assert "it was a rocks connection on the rock's side" test "$(rocks_field one-client 'r["peer_is_rock"]')" = True
tb_assert "the rock did not suspend" test "$(rocks_field one-client 'r["suspensions"]')" = 0
tb_assert "flows_in4 sent the connection to the chain shifted" test -e "$TB_DIR/shifted-5002"
tb_assert "A's conntrack had rackd's entry for it" test -e "$TB_DIR/entry-5002"
tb_assert "rackctl status said screened" test -e "$TB_DIR/status-5002"
inbound=$(rocks_arrivals "$TB_A")
unqueued=$(rocks_unqueued "$TB_A" shifted_screen)
echo "   the rock's packets at A: $inbound, of them unqueued: $unqueued"
tb_assert "the rock sent A more than 100 packets" test "${inbound:-0}" -gt 100
tb_assert "at most 50 of the rock's packets were queued ($((inbound - unqueued)))" test "$((inbound - unqueued))" -le 50
tb_assert "the flow leaves the chain shifted once closed" tb_wait_for "! shifted 5002" 10
tb_assert "and rackd deletes its entry" tb_wait_for "! entry 5002" 10

echo "== 2. conntrack -F three times during a transfer"
# Long enough (300 MiB each way) that the entry is made again while it runs: rackd asks a second after the first
# packet it sees without the shift.
start_pair two 5003 6 300M
tb_assert "the connection is shifted" tb_wait_for "shifted 5003 && entry 5003" 20 0.05
for _ in 1 2 3; do
    tb_exec "$TB_A" conntrack -F >/dev/null 2>&1 || true
    sleep 0.3
done
flushed=$(rocks_unqueued "$TB_A" shifted_screen)
tb_assert "rackd saw the entry lost and made it again" \
    tb_wait_for "grep -q \"conntrack lost a shifted connection's entry\" '$TB_DIR/rackd-a.log'" 10
tb_assert "the kernel shifts the rock's packets again (the chain shifted_screen counts more than $flushed)" \
    tb_wait_for "test \"\$(rocks_unqueued \"$TB_A\" shifted_screen)\" -gt $flushed" 10 0.05
finish_pair two "after the flushes" 300M

echo "== 3. rackd restarted during a transfer"
start_pair three 5004 8
tb_assert "the connection is shifted" tb_wait_for "shifted 5004 && entry 5004" 20 0.05
rocks_restart_rackd a TERM
tb_assert "the new rackd shifts it again" tb_wait_for "shifted 5004 && entry 5004" 10 0.05
finish_pair three "across the restart"

echo "== 4. rackd restarted with [rocks] conntrack = no during a transfer"
start_pair four 5005 10
tb_assert "the connection is shifted" tb_wait_for "shifted 5005 && entry 5005" 20 0.05
echo "conntrack = no" >>"$TB_DIR/rackd-a.conf"
rocks_restart_rackd a TERM
tb_assert "the new rackd deleted the last one's entry" \
    grep -q "deleted the conntrack entries of connections taken back unshifted" "$TB_DIR/rackd-a.log"
tb_assert "and queues the connection" tb_wait_for "! shifted 5005 && ! entry 5005" 10 0.05
finish_pair four "across the restart"

tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a TERM
