#!/usr/bin/env bash
# test_rocks_fallback.sh: rackd with [rocks] on never breaks a connection to or from a host that is no rock
# (issue 11, "What it must show": fallback tests). tools/xfer.py moves 1 MiB each way over every connection,
# SHA-256 on both ends; a capture on B's link counts the probes (connections whose client sent a FIN and no
# byte). integration-tests/lib/ordinary_server.py is the ordinary server: it reads before it writes, and answers
# a client that closes without a byte in one of four ways.
#   1. probe = listed naming B: an ordinary server whose probe gets EOF, data then EOF, a reset, or silence past
#      rocks' 500 ms read: each is probed once, on its first connection (its SYN held: queue.held grows), and
#      its second connection is neither probed nor held (queue.held unchanged, only its SYN and SYN-ACK
#      queued); every connection works;
#   2. serve-ports: an ordinary client (xfer.py in B) of a server on a serve port of A works, and rackd changes
#      and drops none of its packets;
#   3. probe = everywhere: an ordinary server is probed once, on its second connection (its first answered no
#      rackd SYN option), and never again;
#   4. probe = everywhere with rackd in B too: the rackd peer answers the SYN option, is managed as a rackd peer,
#      and is never probed.
# timeout: 180
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/rocks.sh
source "$here/lib/rocks.sh"
tb_require_rackd
command -v tcpdump >/dev/null || tb_skip "tcpdump is missing (scripts/install-deps)"

size=1M
tb_setup
rocks_capture_start cap "$TB_B" "$TB_B_IF"
declare -A port_of=([eof]=7001 [data]=7002 [rst]=7003 [silent]=7004)
for mode in eof data rst silent; do
    rocks_ordinary_server "srv-$mode" "$TB_B" "$TB_B_ADDR4" "${port_of[$mode]}" "$mode" --bytes "$size"
done

echo "== 1. probe = listed, probe-addresses = $TB_B_ADDR4; serve-ports = 7100"
rocks_start_rackd "$TB_A" a "probe = listed" "probe-addresses = $TB_B_ADDR4" "serve-ports = 7100"
for mode in eof data rst silent; do
    port=${port_of[$mode]} s2c=$size
    [[ $mode != data ]] || s2c=$((1048576 + 20)) # the data server's greeting, "220 ordinary ready\r\n", comes first
    held0=$(rocks_queue_counter a held)
    tb_assert "$mode: the first connection works" rocks_xfer_client "$mode-1" "$TB_A" "$TB_B_ADDR4" "$port" "$size"
    tb_assert "$mode: 1 MiB each way intact" rocks_check_ordinary "$mode-1" "srv-$mode" "$size" "$s2c"
    held1=$(rocks_queue_counter a held) received1=$(rocks_queue_counter a received)
    tb_assert "$mode: its SYN was held while rackd probed (queue.held $held0 -> $held1)" \
        test "$held1" -gt "$held0"
    tb_assert "$mode: the second connection works" rocks_xfer_client "$mode-2" "$TB_A" "$TB_B_ADDR4" "$port" "$size"
    tb_assert "$mode: 1 MiB each way intact" rocks_check_ordinary "$mode-2" "srv-$mode" "$size" "$s2c"
    held2=$(rocks_queue_counter a held) received2=$(rocks_queue_counter a received)
    tb_assert "$mode: the second connection's SYN was not held (queue.held stays $held1)" test "$held2" = "$held1"
    tb_assert "$mode: only its SYN and SYN-ACK were queued ($((received2 - received1)))" \
        test $((received2 - received1)) -le 2
    # (the silent server reports its probe once its 3 s of silence are over)
    tb_assert "$mode: the server saw one connection closed without a byte (the probe)" \
        tb_wait_for "test \$(rocks_count_empty srv-$mode) -ge 1" 5
    tb_assert "$mode: and only one" test "$(rocks_count_empty "srv-$mode")" = 1
done
tb_assert "no rocks connection was made" test -z "$(rocks_status_conns a rocks)"

echo "== 2. an ordinary client of a serve port of A"
modified0=$(rocks_queue_counter a modified) dropped0=$(rocks_queue_counter a dropped)
tb_assert "xfer.py from B to A's serve port 7100: 1 MiB each way intact" \
    tb_xfer serve "$TB_B" "$TB_A" "$TB_A_ADDR4" 7100 "$size" "$size"
tb_assert "rackd changed none of its packets" test "$(rocks_queue_counter a modified)" = "$modified0"
tb_assert "and dropped none" test "$(rocks_queue_counter a dropped)" = "$dropped0"
tb_assert "no rocks connection was made" test -z "$(rocks_status_conns a rocks)"
tb_assert "rackd (listed) stops cleanly" tb_stop_rackd "$TB_A" a TERM

echo "== 3. probe = everywhere, an ordinary server"
rocks_ordinary_server srv-every "$TB_B" "$TB_B_ADDR4" 7006 eof --bytes "$size"
rocks_start_rackd "$TB_A" a2 "probe = everywhere"
for i in 1 2 3; do
    tb_assert "connection $i works, intact" rocks_xfer_client "every-$i" "$TB_A" "$TB_B_ADDR4" 7006 "$size"
    tb_assert "connection $i: 1 MiB each way intact" rocks_check_ordinary "every-$i" srv-every "$size" "$size"
done
tb_assert "the ordinary server saw one probe in three connections" \
    tb_wait_for "test \$(rocks_count_empty srv-every) -ge 1" 5
tb_assert "and only one" test "$(rocks_count_empty srv-every)" = 1

echo "== 4. probe = everywhere, a rackd peer in B"
tb_start_rackd "$TB_B" b --log-level debug
held0=$(rocks_queue_counter a2 held)
for i in 1 2; do
    tb_assert "connection $i to the rackd peer: 1 MiB each way intact" \
        tb_xfer "peer-$i" "$TB_A" "$TB_B" "$TB_B_ADDR4" $((7010 + i)) "$size" "$size"
done
tb_assert "rackd in A managed both as rackd peers" \
    test "$(grep 'connection managed' "$TB_DIR/rackd-a2.log" | grep 'conn.peer-kind=rackd' | grep -cE ":(7011|7012)([^0-9]|\$)")" = 2
tb_assert "no SYN was held for them (queue.held stays $held0)" test "$(rocks_queue_counter a2 held)" = "$held0"
tb_assert "rackd (everywhere) stops cleanly" tb_stop_rackd "$TB_A" a2 TERM
tb_stop_rackd "$TB_B" b TERM || true
tb_assert "the capture is complete" rocks_capture_stop cap

echo "== probes in the capture"
for port in 7001 7002 7003 7004 7006 7011 7012 7100; do
    echo "  port $port: $(rocks_count_connections "$TB_DIR/cap.pcap" "$port")"
done
for mode in eof data rst silent; do
    tb_assert "$mode: exactly one probe, on the first connection" \
        test "$(rocks_count_connections "$TB_DIR/cap.pcap" "${port_of[$mode]}")" = "probe plain plain"
done
tb_assert "everywhere: one probe, before the second connection" \
    test "$(rocks_count_connections "$TB_DIR/cap.pcap" 7006)" = "plain probe plain plain"
tb_assert "the rackd peer was never probed" test "$(rocks_count_probes "$TB_DIR/cap.pcap" 7011)$(rocks_count_probes "$TB_DIR/cap.pcap" 7012)" = 00
tb_assert "the serve port's client was not taken for a probe" test "$(rocks_count_connections "$TB_DIR/cap.pcap" 7100)" = plain
