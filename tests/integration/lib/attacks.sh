# shellcheck shell=bash
# tests/integration/lib/attacks.sh: an attacker on host R (on the path between A and B, so it can forge any
# source address) for the security tests. Source after testbed/netns.sh and lib/racks.sh.

# attack_inject ARG...: tools/inject.py run in R.
attack_inject() { tb_exec "$TB_R" "$TB_TOOLS/inject.py" "$@"; }

# attack_client_port PORT: A's local port of its connection to B's PORT.
attack_client_port() {
    tb_exec "$TB_A" ss -tnH state established "( dport = :$1 )" | awk '{print $3; exit}' | sed 's/.*://'
}

# attack_random_hex BYTES: that many random bytes, as hex.
attack_random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# attack_setup_suspended: rackd in A and B, a 50 MiB transfer each way running, then a black hole in R
# that both rackds detect. Sets ATTACK_PORT (A's client port).
attack_setup_suspended() {
    racks_setup
    tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 50M 50M --rate 2500K -- --rate 2500K
    racks_wait_managed
    sleep 3
    ATTACK_PORT=$(attack_client_port 5001)
    tb_blackhole_on
    racks_assert_suspended_both 1
}

# attack_finish_and_check: the path returns; the real resumption succeeds and both streams are intact.
attack_finish_and_check() {
    local ms
    tb_blackhole_off
    ms=$(racks_resume_time_ms "${1:-1}")
    echo "the genuine resumption took ${ms} ms after the path returned"
    tb_assert "the genuine resumption completes within 1 s (${ms} ms)" test "$ms" -le 1000
    tb_assert "50 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 600
}
