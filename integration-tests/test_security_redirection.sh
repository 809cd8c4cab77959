#!/usr/bin/env bash
# test_security_redirection.sh: a resumption pointing the connection at a third address that does not answer
# the path validation is never granted the data (IPv4).
#
# Under a bidirectional 50 MiB transfer, A moves to 10.3.0.0/24 and roams; the attacker in R records A's
# genuine roam SYN (a valid connection id). Once both rackds moved the connection to A's new address, the
# attacker replays that SYN toward B with its source rewritten to C = 10.77.0.9, where no host answers (R
# black-holes C, so B's SYN-ACKs toward it die in R): 5 times with A's source port, 5 times with random ones,
# 200 ms apart. B's rackd answers each (a SYN-ACK toward C: the attack reached it), but since nobody at C
# holds the key and receives B's nonce, no confirm ever comes back, and B must grant C nothing: a capture on
# R's B-side interface, during the attack and 5 s after it, sees no TCP segment with payload toward C; B
# never logs a move to C; its offers for C leave the managed set once they expire (5 s); the transfer
# completes intact over A's genuine path; no "connection moved" beyond the genuine one.
#
# Were B to grant the path on the SYN alone (no path validation), this test fails on:
#   - "B never moved the connection to C": B would log "connection moved to a new path" with conn.wire=C, and
#     "B moved the connection exactly once" would count 2 or more;
#   - "B sent no data toward C": the transfer is still sending B->A during the attack (the control check "B
#     sent data to A's new address while the capture ran" proves the payload filter counts such segments),
#     so B's data, rewritten onto the granted tuple, would be seen leaving toward C in R;
#   - "B's managed set no longer lists C": a granted path stays in the set (offers expire, paths do not);
#   - and, most likely, the SHA-256 check, as B's stream would vanish into R's black hole.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/roaming.sh
source "$here/lib/roaming.sh"
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd
command -v tcpdump >/dev/null || tb_skip "tcpdump is not installed"

c=10.77.0.9                           # the third address: no host there
c_re=${c//./\\.}
roam_prefix=fd21524106                # rackd's roam option: kind 253, length 33, ExID 5241, type 6
same_port_replays=5 random_port_replays=5

# b_table: B's table inet rackd, listed (nft's stderr dropped: it complains about rackd's NFQUEUE statements).
# Captured before grepping: `nft ... | grep -q` under pipefail fails when grep exits early and nft gets SIGPIPE.
b_table() { tb_exec "$TB_B" nft list table inet rackd 2>/dev/null; }

# b_set_has ADDRESS_RE: B's managed sets list a tuple with ADDRESS_RE. b_set_lacks ADDRESS_RE: the table could be
# listed and lists no such tuple (a listing that fails is neither).
b_set_has() {
    local table
    table=$(b_table) || return 2
    grep -qw -- "$1" <<<"$table"
}
b_set_lacks() {
    local table
    table=$(b_table) || return 2
    ! grep -qw -- "$1" <<<"$table"
}

# b_moves_to ADDRESS_RE: how many of B's "connection moved" lines carry a wire tuple with ADDRESS_RE.
b_moves_to() { grep "connection moved to a new path" "$TB_DIR/rackd-b.log" | grep -c -- "conn.wire=[^ ]*$1" || true; }

racks_setup
# C does not answer: R drops whatever is sent to it, silently (no ICMP back to B).
tb_exec "$TB_R" ip route add blackhole "$c/32"
# About 20 s of transfer, so data is in flight throughout the move and the attack.
attack_transfer_start
racks_assert_nothing_queued

echo "A moves to 10.3.0.0/24; the attacker records its genuine roam SYN"
pcap_roam=$TB_DIR/roam.pcap
tb_assert "the capture on R's A-side interface runs" \
    attack_capture_start capture-roam "$TB_R_A_IF" "$pcap_roam" "tcp port 5001 and tcp[tcpflags] & tcp-syn != 0"
tb_move_a 3
new_a=$TB_A_ADDR4
tb_assert "A moved the connection to its new address" roam_wait_moved a 1 10
tb_assert "B moved the connection to A's new address" roam_wait_moved b 1 10
sleep 0.5
attack_capture_stop capture-roam
roam_syns=$(attack_pcap_count "$pcap_roam" "src host $new_a and dst port 5001 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn")
echo "recorded $roam_syns roam SYN(s) from $new_a"
tb_assert "the attacker recorded A's genuine roam SYN" test "$roam_syns" -ge 1
tb_assert "B's genuine move is to A's new address" test "$(b_moves_to "${new_a//./\\.}")" = 1

echo "the attacker replays the roam SYN toward B from $c, a third address that does not answer"
pcap_c=$TB_DIR/toward-c.pcap
tb_assert "the capture on R's B-side interface runs" attack_capture_start capture-c "$TB_R_B_IF" "$pcap_c" \
    "host $c or (src host $TB_B_ADDR4 and dst host $new_a and tcp port 5001)"
answered_before=$(racks_count b "challenge answered")
rejected_b_before=$(racks_count b "resumption rejected")
replays=0
for ((i = 0; i < same_port_replays + random_port_replays; i++)); do
    sport_args=()
    ((i < same_port_replays)) || sport_args=(--rewrite-sport $((32768 + RANDOM % 28000)))
    out=$(attack_inject --replay "$pcap_roam" --from "$new_a" --option-prefix "$roam_prefix" --limit 1 \
        --rewrite-source "$c" "${sport_args[@]}")
    [[ $out =~ ^sent\ ([0-9]+) ]] && replays=$((replays + BASH_REMATCH[1]))
    last_replay=$(date +%s%N)
    sleep 0.2
done
# While B's offers for C are open, B queues C's tuples (so nothing from C reaches B's kernel); once they expire
# (5 s), nothing of C may remain, whereas a granted path would stay.
tb_assert "right after the attack, B's managed set lists C's tuples (B's open offers)" b_set_has "$c_re"
tb_assert "B's managed set no longer lists C once its offers expired (<= 7 s after the last replay)" \
    tb_wait_for "b_set_lacks '$c_re'" 7
cleared_ms=$((($(date +%s%N) - last_replay) / 1000000))
echo "C left B's managed set ${cleared_ms} ms after the last replay"
# The capture runs on until 5 s after the last replay at least: B must send C nothing afterwards either.
((cleared_ms >= 5000)) || sleep "$(((5000 - cleared_ms) / 1000)).$(printf %03d $(((5000 - cleared_ms) % 1000)))"
tb_assert "B's managed set still carries A's genuine new address $new_a" b_set_has "${new_a//./\\.}"
tb_assert "the transfer was still running throughout the attack" tb__alive "$(tb_pid bulk-client)"
attack_capture_stop capture-c

syns_to_b=$(attack_pcap_count "$pcap_c" "src host $c and dst host $TB_B_ADDR4 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn")
synacks=$(attack_pcap_count "$pcap_c" "src host $TB_B_ADDR4 and dst host $c and tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)")
to_c=$(attack_pcap_count "$pcap_c" "src host $TB_B_ADDR4 and dst host $c")
data_to_c=$(attack_pcap_count "$pcap_c" "src host $TB_B_ADDR4 and dst host $c and tcp and $(attack_pcap_payload)")
data_to_a=$(attack_pcap_count "$pcap_c" "src host $TB_B_ADDR4 and dst host $new_a and tcp and $(attack_pcap_payload)")
answered=$(($(racks_count b "challenge answered") - answered_before))
echo "seen in R toward B: $syns_to_b replayed SYN(s) from $c; from B: $synacks SYN-ACK(s) and $to_c packet(s) in all" \
    "toward $c, $data_to_c with payload; $data_to_a data segment(s) toward A's $new_a; rackd-b logged $answered" \
    "\"challenge answered\""
tb_assert "the attacker sent every replay ($replays of $((same_port_replays + random_port_replays)))" \
    test "$replays" = $((same_port_replays + random_port_replays))
tb_assert "every replay reached B's link ($syns_to_b)" test "$syns_to_b" = "$replays"
tb_assert "B's rackd answered the replays: SYN-ACKs toward C ($synacks)" test "$synacks" -ge 1
tb_assert "control: B sent data to A's new address while the capture ran ($data_to_a segments)" test "$data_to_a" -ge 1
tb_assert "B sent no data toward C ($data_to_c segments with payload)" test "$data_to_c" = 0
tb_assert "B sent C nothing but SYN-ACKs ($to_c packets, $synacks SYN-ACKs)" test "$to_c" = "$synacks"
tb_assert "B never moved the connection to C" test "$(b_moves_to "$c_re")" = 0

tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
tb_assert "A moved the connection exactly once" test "$(racks_count a 'connection moved to a new path')" = 1
tb_assert "B moved the connection exactly once" test "$(racks_count b 'connection moved to a new path')" = 1
tb_assert "B never moved the connection to C (after the transfer)" test "$(b_moves_to "$c_re")" = 0
tb_assert "no resumption was rejected on A" test "$(racks_count a 'resumption rejected')" = 0
echo "resumptions rejected on B during and after the attack: $(($(racks_count b 'resumption rejected') - rejected_b_before))"
echo "redirection: replays=$replays synacks-to-C=$synacks data-to-C=$data_to_c"
