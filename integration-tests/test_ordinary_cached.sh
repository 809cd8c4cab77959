#!/usr/bin/env bash
# test_ordinary_cached.sh: rackd in A only; B is an ordinary host. The first connection to B:5001 is
# queued (its SYN and SYN-ACK), and makes B:5001 an ordinary destination in the kernel's set `ordinary4`;
# the next connections to it are not queued at all. Connections to a destination the configuration
# excludes (port 5002, B's IPv6 prefix, ports outside manage-ports) are never queued. The default log level records no line per
# connection left to plain TCP; `rackctl status` counts the destination. A restored table keeps the cache, and so
# does the next rackd after a crash; a clean stop does not; an expired element makes the next connection first
# contact again.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd

tb_setup
conf=$TB_DIR/rackd.conf
cat >"$conf" <<CONF
[policy]
exclude-ports = 5002
exclude-addresses = fd00:2::/64, 192.0.2.0/24
ordinary-cache = 5m
CONF
tb_start_rackd "$TB_A" a --config "$conf"
tb_bg "$TB_B" server4 "$TB_TOOLS/short_connects.py" serve --listen 0.0.0.0 --port 5001,5002,5003 --ready-file "$TB_DIR/ready4"
tb_bg "$TB_B" server6 "$TB_TOOLS/short_connects.py" serve --listen :: --port 5004 --ready-file "$TB_DIR/ready6"
tb_wait_for "test -f '$TB_DIR/ready4' && test -f '$TB_DIR/ready6'" 10

# shellcheck disable=SC2016 # awk's $1 and $8
# queued: the id counter of rackd's queue in A (the kernel numbers every packet it queues).
queued() { ip netns exec "$TB_A" awk '$1 == 3939 {print $8}' /proc/net/netfilter/nfnetlink_queue; }
# connections ADDR PORT N: N connections from A, one after another.
connections() { tb_exec "$TB_A" "$TB_TOOLS/short_connects.py" connect --address "$1" --port "$2" --count "$3" >/dev/null; }
# cached ADDR PORT: whether A's ordinary4 set holds the destination.
cached() { ip netns exec "$TB_A" nft list set inet rackd ordinary4 | tb_grep "$1 \. $2 "; }

before=$(queued)
connections "$TB_B_ADDR4" 5001 1
first=$(queued)
echo "first connection to B:5001: $((first - before)) packets queued"
tb_assert "the first connection to an ordinary peer is queued (SYN and SYN-ACK)" test "$((first - before))" = 2
tb_assert "B:5001 is cached in the kernel as an ordinary destination" tb_wait_for "cached $TB_B_ADDR4 5001" 5
ip netns exec "$TB_A" nft list set inet rackd ordinary4
tb_assert "the element carries a timeout" bash -c "ip netns exec '$TB_A' nft list set inet rackd ordinary4 | grep -q 'expires'"

connections "$TB_B_ADDR4" 5001 20
second=$(queued)
echo "20 more connections to B:5001: $((second - first)) packets queued"
tb_assert "later connections to the cached destination are not queued" test "$second" = "$first"

connections "$TB_B_ADDR4" 5003 10
third=$(queued)
echo "10 back-to-back connections to B:5003: $((third - second)) packets queued"
tb_assert "another port of the same host is a destination of its own: its first connection is queued" \
    test "$((third - second))" -ge 2
tb_assert "the element is in before the SYN-ACK passes: the next connection, at once, is not queued" \
    test "$((third - second))" = 2

connections "$TB_B_ADDR4" 5002 5
connections "$TB_B_ADDR6" 5004 5
excluded=$(queued)
echo "connections to excluded destinations: $((excluded - third)) packets queued"
tb_assert "connections to an excluded port and an excluded prefix are never queued" test "$excluded" = "$third"

status=$(tb_rackctl a status --json)
echo "$status"
tb_assert "status counts the cached destinations" grep -Eq '"ordinary_destinations" *: *2' <<<"$status"
tb_assert "status counts the connections left to plain TCP" grep -Eq '"fallbacks" *: *2' <<<"$status"
tb_assert_fails "no per-connection line at the default log level" grep -q "connection left to plain TCP" "$TB_DIR/rackd-a.log"

# A table put back after someone deleted it keeps the cached destinations (docs/rules-restore.md).
ip netns exec "$TB_A" nft delete table inet rackd
tb_assert "the table is restored with the cached destinations" tb_wait_for "cached $TB_B_ADDR4 5001" 10
restored=$(queued)
connections "$TB_B_ADDR4" 5001 5
tb_assert "after the restore, the cached destination is still not queued" test "$(queued)" = "$restored"

# A crash leaves the table (docs/restarts.md); the next rackd takes the cached destinations back.
tb_stop_rackd "$TB_A" a KILL || true
tb_start_rackd "$TB_A" b --config "$conf"
tb_assert "the next rackd took the cached destinations back" \
    grep -q "ordinary destinations taken back from the last rackd.*nft.elements=2" "$TB_DIR/rackd-b.log"
kept=$(queued)
connections "$TB_B_ADDR4" 5001 5
connections "$TB_B_ADDR4" 5003 5
tb_assert "connections to them are still not queued" test "$(queued)" = "$kept"
status=$(tb_rackctl b status --json)
tb_assert "its status counts them" grep -Eq '"ordinary_destinations" *: *2' <<<"$status"
tb_stop_rackd "$TB_A" b TERM

# manage-ports narrows what is queued to its server ports, in the kernel too.
printf '[policy]\nmanage-ports = 5003, 6000-6100\n' >"$TB_DIR/narrow.conf"
tb_start_rackd "$TB_A" narrow --config "$TB_DIR/narrow.conf"
start=$(queued)
connections "$TB_B_ADDR4" 5001 3
connections "$TB_B_ADDR6" 5004 3
tb_assert "connections to server ports outside manage-ports are never queued" test "$(queued)" = "$start"
connections "$TB_B_ADDR4" 5003 3
tb_assert "a listed server port's first connection is queued, the next ones not" test "$(($(queued) - start))" = 2
tb_stop_rackd "$TB_A" narrow TERM

# An element that expires goes quietly: the destination's next connection is first contact again, and the
# kernel's removal of the element is no "rules taken away" (no restore).
printf '[policy]\nordinary-cache = 2s\n' >"$TB_DIR/short.conf"
tb_start_rackd "$TB_A" short --config "$TB_DIR/short.conf"
start=$(queued)
connections "$TB_B_ADDR4" 5001 1
tb_assert "first contact again after a clean stop (it removed the table and its cache)" test "$(($(queued) - start))" = 2
tb_assert "cached for 2 s" tb_wait_for "cached $TB_B_ADDR4 5001" 5
tb_assert "the element expires" tb_wait_for "! cached $TB_B_ADDR4 5001" 10
# The kernel collects expired elements on its own schedule; its collection must not look like a deletion.
tb_assert "the engine's copy expires too" \
    tb_wait_for "tb_rackctl short status --json | tb_grep -E '\"ordinary_destinations\" *: *0'" 10
expired=$(queued)
connections "$TB_B_ADDR4" 5001 1
tb_assert "after expiry the next connection is queued (first contact)" test "$(($(queued) - expired))" = 2
tb_assert "cached again" tb_wait_for "cached $TB_B_ADDR4 5001" 5
tb_assert "the kernel's own expiry never made rackd restore its table" tb_wait_for "! cached $TB_B_ADDR4 5001" 10
tb_assert_fails "no restore was logged" grep -q "rules restored" "$TB_DIR/rackd-short.log"
tb_stop_rackd "$TB_A" short TERM
