#!/usr/bin/env bash
# test_state_refused.sh: state files rackd cannot trust are refused at start, each with a log line that names
# the file and the reason, and deleted; rackd starts clean and works (docs/restarts.md, "Never torn"). A real
# record is first kept by a rackd stopped with a managed connection, then damaged in three ways: cut short, a
# byte changed, replaced by another program's file; a leftover .tmp of an unfinished write is removed silently.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
tb_require_rackd

racks_setup
tb_xfer_start slow "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 4M 4M --rate 200K -- --rate 200K
racks_wait_managed
tb_stop_rackd "$TB_A" a TERM
state=$TB_DIR/state-a
tb_assert "the stop kept the connection's record" test -f "$state/connection-1"
tb_assert "the state directory is root's alone (0700)" test "$(stat -c %a "$state")" = 700
tb_assert "the record is root's alone (0600)" test "$(stat -c %a "$state/connection-1")" = 600
tb_assert "the record starts with its header" grep -q '^rackd-state 1$' "$state/connection-1"
good=$(cat "$state/connection-1")
head -c 300 <<<"$good" >"$state/connection-2"                       # cut short
sed 's/"id":1/"id":2/' <<<"$good" >"$state/connection-3"             # contents changed under the checksum
sed -i 's/"id":2/"id":3/' "$state/connection-3"
echo '{"this": "is not rackd'"'"'s"}' >"$state/connection-4"         # another program's file
cp "$state/connection-1" "$state/connection-5.tmp"                  # an unfinished write
rm "$state/connection-1"

mv "$TB_DIR/rackd-a.log" "$TB_DIR/rackd-a.log.1"
tb_assert "rackd starts despite the damaged files" tb_start_rackd "$TB_A" a --log-level debug
log=$TB_DIR/rackd-a.log
tb_assert "the file cut short is refused, with the reason" \
    grep -q "state file refused.*damaged or cut short.*state.file=$state/connection-2" "$log"
tb_assert "the changed file is refused: its checksum does not match" \
    grep -q "state file refused.*checksum does not match.*state.file=$state/connection-3" "$log"
tb_assert "the other program's file is refused" grep -q "state file refused.*not a rackd state file.*state.file=$state/connection-4" "$log"
tb_assert "three files refused in all" test "$(grep -c 'state file refused' "$log")" = 3
tb_assert "the refused files and the leftover .tmp are gone" \
    test -z "$(ls "$state" | grep -v '^lock$\|^rackd$' || true)"
tb_assert_fails "nothing was taken back" grep -q "connections taken back" "$log"
tb_assert "rackd answers rackctl" tb_rackctl a status
tb_xfer_start fresh "$TB_A" "$TB_B" "$TB_B_ADDR4" 5002 1M 1M
tb_assert "and manages a new connection" racks_wait_count a "connection managed" 1 10
tb_assert "whose bytes arrive intact" tb_xfer_finish fresh 60
