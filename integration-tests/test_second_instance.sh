#!/usr/bin/env bash
# test_second_instance.sh: a second rackd started while one runs in the same network namespace refuses, says
# why, and leaves the first untouched (docs/restarts.md, "Taking them back"):
#   - with the same state directory: the state lock ("another rackd (pid N) already runs with state directory");
#   - with a state directory of its own: the queue ("queue N is already taken in this network namespace"),
#     not the misleading "needs CAP_NET_ADMIN" the kernel's EPERM suggests.
# Afterwards the first still serves rackctl, its table is intact, and it still manages a new connection.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd

racks_setup
rackd=$(tb_rackd_bin)
table_before=$(tb_exec "$TB_A" nft list table inet rackd)
first=$(tb_rackd_pid a)

set +e
out=$(tb_exec "$TB_A" "$rackd" --config /dev/null --control-socket "$TB_DIR/second.sock" \
    --state-directory "$TB_DIR/state-a" 2>&1)
rc=$?
set -e
echo "$out" | tail -n 3
tb_assert "the second rackd (same state directory) exits non-zero" test "$rc" -ne 0
tb_assert "it names the running rackd and the state directory" \
    grep -q "another rackd (pid $first) already runs with state directory $TB_DIR/state-a" <<<"$out"

set +e
out=$(tb_exec "$TB_A" "$rackd" --config /dev/null --control-socket "$TB_DIR/third.sock" \
    --state-directory "$TB_DIR/state-third" 2>&1)
rc=$?
set -e
echo "$out" | tail -n 3
tb_assert "the second rackd (its own state directory) exits non-zero" test "$rc" -ne 0
tb_assert "it says the queue is taken in this network namespace" grep -q "is already taken in this network namespace" <<<"$out"
tb_assert_fails "it does not blame missing capabilities" grep -q "rackd needs CAP_NET_ADMIN" <<<"$out"

tb_assert "the first rackd still runs" kill -0 "$first"
tb_assert "the first rackd still answers rackctl" tb_rackctl a status
tb_assert "its table is as it was" test "$(tb_exec "$TB_A" nft list table inet rackd)" = "$table_before"
tb_assert "its control socket is still there" test -S "$TB_DIR/rackd-a.sock"
tb_xfer_start check "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 1M 1M
tb_assert "it still manages a new connection" racks_wait_count a "connection managed" 1 10
tb_assert "the connection's bytes arrive intact" tb_xfer_finish check 60
