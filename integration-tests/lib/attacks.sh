# shellcheck shell=bash
# integration-tests/lib/attacks.sh: an attacker on host R (on the path between A and B, so it can forge any
# source address) for the security tests. Source it after testbed/netns.sh; it brings lib/racks.sh with it.

# shellcheck source=integration-tests/lib/racks.sh
source "$(dirname -- "${BASH_SOURCE[0]}")/racks.sh"

# attack_inject ARG...: tools/inject.py run in R.
attack_inject() { tb_exec "$TB_R" "$TB_TOOLS/inject.py" "$@"; }

# attack_client_port PORT: A's local port of its connection to B's PORT.
attack_client_port() {
    tb_exec "$TB_A" ss -tnH state established "( dport = :$1 )" | awk '{print $3; exit}' | sed 's/.*://'
}

# attack_random_hex BYTES: that many random bytes, as hex.
attack_random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# attack_transfer_start [RATE [SETTLE_S]]: the connection under attack, after racks_setup: a transfer of 50 MiB
# each way from A to B's port 5001, rate-limited to RATE per second each way (default 2500K: about 20 s of
# sending, so it runs through the attack). Returns once both rackds manage it and it has run for SETTLE_S
# (default 3 s). Sets ATTACK_PORT (A's client port), and ATTACK_A and ATTACK_B (the connection's ends as
# ADDRESS:PORT, for attack_inject and tools/flood.py).
attack_transfer_start() {
    local rate=${1:-2500K}
    tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 50M 50M --rate "$rate" -- --rate "$rate"
    racks_wait_managed
    sleep "${2:-3}"
    ATTACK_PORT=$(attack_client_port 5001)
    tb_assert "A's client port is known ($ATTACK_PORT)" test -n "$ATTACK_PORT"
    ATTACK_A=$TB_A_ADDR4:$ATTACK_PORT
    ATTACK_B=$TB_B_ADDR4:5001
}

# attack_suspend N: a black hole in R, until both rackds have reported their Nth suspension.
attack_suspend() {
    tb_blackhole_on
    racks_assert_suspended_both "$1"
}

# attack_setup_suspended: rackd in A and B, the connection under attack (attack_transfer_start), then a black
# hole in R that both rackds detect.
attack_setup_suspended() {
    racks_setup
    attack_transfer_start
    attack_suspend 1
}

# attack_finish_and_check [N]: the path returns; the real resumption (both rackds' Nth, default 1) completes
# within 1 s, and both streams are intact.
attack_finish_and_check() {
    local ms
    tb_blackhole_off
    ms=$(racks_resume_time_ms "${1:-1}")
    echo "the genuine resumption took ${ms} ms after the path returned"
    tb_assert "the genuine resumption completes within 1 s (${ms} ms)" test "$ms" -le 1000
    tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
}

# attack_capture_start NAME IF FILE FILTER [SNAPLEN]: tcpdump in R on interface IF into FILE (the first SNAPLEN
# bytes of each packet, default 256), as background process NAME; returns once tcpdump listens (or fails after 5 s).
# --immediate-mode: without it libpcap hands packets over in blocks, up to a second late, and a capture stopped
# soon after its packet (a move now completes within milliseconds) would write nothing.
attack_capture_start() {
    tb_bg "$TB_R" "$1" tcpdump -i "$2" -n -U --immediate-mode -s "${5:-256}" -w "$3" "$4"
    tb_wait_for "grep -q 'listening on' '$TB_DIR/$1.log'" 5 0.05
}

# attack_capture_stop NAME: stop capture NAME (SIGINT, so tcpdump flushes its file) and wait for it.
attack_capture_stop() {
    kill -INT "$(tb_pid "$1")"
    tb_wait_bg "$1" 5
}

# attack_pcap_count FILE FILTER: how many packets of capture FILE match the pcap FILTER.
attack_pcap_count() { tcpdump -n -r "$1" "$2" 2>/dev/null | wc -l; }

# attack_pcap_payload: a pcap filter for IPv4 TCP segments that carry payload.
attack_pcap_payload() { echo '(ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) != 0'; }
