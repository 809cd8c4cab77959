# shellcheck shell=bash
# integration-tests/lib/passthrough.sh: the pass-through transfer check shared by the auto and compat
# tests. Source it after testbed/netns.sh.

# passthrough_transfer RULES: start rackd in A in pass-through mode with `rules = RULES`, move 100 MiB each
# way between A and B over IPv4 with every packet through rackd's queue, and check both hashes, that the
# packets really went through the queue, and that nothing was dropped or changed.
passthrough_transfer() {
    local rules=$1 config log received dropped modified
    tb_setup
    config=$TB_DIR/rackd.conf
    printf '[daemon]\nmode = passthrough\nrules = %s\n' "$rules" >"$config"
    tb_start_rackd "$TB_A" a --config "$config"
    log=$TB_DIR/rackd-a.log

    tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 100M 100M
    # While the transfer runs, its flow is in the managed set, so every packet is queued.
    tb_assert "the flow is in rackd's managed set during the transfer" \
        tb_wait_for "tb_exec '$TB_A' nft list map inet rackd flows_out4 2>/dev/null | tb_grep '$TB_B_ADDR4 . 5001'" 10 0.05
    tb_assert "100 MiB each way arrive with matching SHA-256" tb_xfer_finish bulk 300

    tb_assert "rackd stops cleanly on SIGTERM" tb_stop_rackd "$TB_A" a TERM
    received=$(grep -o 'nfq.received=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
    dropped=$(grep -o 'nfq.dropped=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
    modified=$(grep -o 'nfq.modified=[0-9]*' "$log" | tail -n 1 | cut -d= -f2)
    echo "queue: received=$received dropped=$dropped modified=$modified"
    # 200 MiB in GSO super-packets of up to 64 KiB is at least 3200 packets, plus the ACKs.
    tb_assert "the transfer's packets went through the queue (received=$received)" test "${received:-0}" -gt 3200
    tb_assert "none was dropped" test "${dropped:-1}" = 0
    tb_assert "none was changed" test "${modified:-1}" = 0
    tb_assert_fails "the table is gone after SIGTERM" tb_has_rackd_table "$TB_A"
}
