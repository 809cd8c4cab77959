#!/usr/bin/env bash
# test_ordinary_clients.sh: rackd in B only, as the server's host (issue 14, point 2: ordinary peers cost
# nothing). A client without rackd connects to B: its SYN carries no rackd option, so B's SYN chain accepts it and
# the SYN-ACK back, and nothing of the connection is queued, over IPv4 and IPv6, from the first connection on.
# What rackd still needs stays queued: a SYN to a rocks serve port (a rocks client shows itself only by its first
# bytes) and the reconnection port are in the kernel's set `rocks-ports`, and a SYN there is queued. Then rackd in A
# too: a rackd client's SYN carries the option, its flow is queued from that SYN until the client's first key
# message, and the SYN-ACK gets the hello: the connection is managed on both ends, a transfer over it arrives
# intact, and B queued only its handshake and the key exchange of it (not the transfer's first round trip).
# timeout: 90
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd

tb_setup
conf=$TB_DIR/rackd-b.conf
printf '[rocks]\nlegacy-auth = yes\nserve-ports = 5005\n' >"$conf"
tb_start_rackd "$TB_B" b --config "$conf"
tb_bg "$TB_B" server4 "$TB_TOOLS/short_connects.py" serve --listen 0.0.0.0 --port 5001,5005 --ready-file "$TB_DIR/ready4"
tb_bg "$TB_B" server6 "$TB_TOOLS/short_connects.py" serve --listen :: --port 5004 --ready-file "$TB_DIR/ready6"
tb_wait_for "test -f '$TB_DIR/ready4' && test -f '$TB_DIR/ready6'" 10

# shellcheck disable=SC2016 # awk's $1 and $8
# queued: the id counter of rackd's queue in B (the kernel numbers every packet it queues).
queued() { ip netns exec "$TB_B" awk '$1 == 3939 {print $8}' /proc/net/netfilter/nfnetlink_queue; }
# connections ADDR PORT N: N connections from A, one after another.
connections() { tb_exec "$TB_A" "$TB_TOOLS/short_connects.py" connect --address "$1" --port "$2" --count "$3" >/dev/null; }

start=$(queued)
connections "$TB_B_ADDR4" 5001 20
connections "$TB_B_ADDR6" 5004 20
ordinary=$(queued)
echo "40 connections from an ordinary client to B (IPv4 and IPv6): $((ordinary - start)) packets queued in B"
tb_assert "an ordinary client's connections to rackd's host are not queued, not even the first" \
    test "$ordinary" = "$start"

reconnection_port=$(grep -o 'rocks.reconnection-port=[0-9]*' "$TB_DIR/rackd-b.log" | head -1 | cut -d= -f2)
ports=$(ip netns exec "$TB_B" nft list set inet rackd rocks-ports)
echo "$ports"
tb_assert "the rocks serve port is in rocks-ports" grep -Eq "elements = \{.*\b5005\b" <<<"$ports"
tb_assert "so is the reconnection port ($reconnection_port)" grep -Eq "elements = \{.*\b$reconnection_port\b" <<<"$ports"
connections "$TB_B_ADDR4" 5005 1
rocks=$(queued)
echo "a connection to the rocks serve port: $((rocks - ordinary)) packets queued in B"
tb_assert "a connection to a rocks serve port is queued (its first bytes say whether it is a rock)" \
    test "$rocks" -gt "$ordinary"

tb_start_rackd "$TB_A" a
before=$(queued)
tb_xfer_start t "$TB_A" "$TB_B" "$TB_B_ADDR4" 5006 2M 2M
tb_assert "a rackd client's connection is managed by both rackds (B's SYN-ACK carried the hello)" \
    racks_wait_count a "connection managed" 1 10
racks_wait_count b "connection managed" 1 10
status=$(tb_rackctl b status --json)
tb_assert "B manages it as the server" grep -Eq '"role" *: *"server"' <<<"$status"
tb_assert "the transfer arrives intact both ways (SHA-256)" tb_xfer_finish t 30
managed=$(($(queued) - before))
echo "a rackd client's connection, 2 MiB each way: $managed packets queued in B"
# The SYN, the SYN-ACK, the client's key messages (option 253: always queued), and what the client sent
# before B's rules let the flow go at its first key message: its handshake's ACK, maybe first data (measured:
# 5-8; 14-16 when the flow was let go at the end of the key exchange). Of the transfer's 1,500-odd
# segments, none later. (RackdScenarioTests pins when the flow is let go.)
tb_assert "B queued at most 12 packets of it ($managed)" test "$managed" -le 12
tb_assert "the root namespace has no rackd table" tb_assert_root_clean
