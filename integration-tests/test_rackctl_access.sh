#!/usr/bin/env bash
# test_rackctl_access.sh: who may talk to rackd. Root may do everything; a member of [control]
# status-group may read status and nothing else; anyone else is refused: by rackd's own SO_PEERCRED check
# when a status group opens the socket file (0666), by the file's mode (0600) when none does. rackctl
# without a daemon says so and exits 69. The socket is removed when rackd stops.
# timeout: 120
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd

tb_setup
# Other users must reach the binary and the socket: a world-searchable directory of the test's own.
chmod 711 "$TB_DIR"
pub=$TB_DIR/pub
mkdir -m 755 "$pub"
cp "$(tb_rackctl_bin)" "$pub/rackctl"
socket=$pub/rackd.sock
printf '[control]\nstatus-group = nogroup\n' >"$TB_DIR/rackd.conf"
tb_start_rackd "$TB_A" a --config "$TB_DIR/rackd.conf" --control-socket "$socket"

# as UID GID [GROUP...] -- ARG...: run rackctl as that user, with those supplementary groups.
as() {
    local uid=$1 gid=$2 groups=()
    shift 2
    while [[ $1 != -- ]]; do groups+=("$1"); shift; done
    shift
    local group_opt=(--clear-groups)
    ((${#groups[@]})) && group_opt=(--groups "$(IFS=,; echo "${groups[*]}")")
    setpriv --reuid="$uid" --regid="$gid" "${group_opt[@]}" "$pub/rackctl" "$@" --socket "$socket"
}

# expect_exit CODE DESCRIPTION CMD...: CMD exits with CODE; its stderr is kept in $TB_DIR/last.err.
expect_exit() {
    local code=$1 what=$2 rc=0
    shift 2
    "$@" >"$TB_DIR/last.out" 2>"$TB_DIR/last.err" || rc=$?
    echo "  exit $rc: $(cat "$TB_DIR/last.err")"
    tb_assert "$what (exit $code)" test "$rc" = "$code"
}

nogroup=$(getent group nogroup | cut -d: -f3)
tb_assert "with a status group the socket is 0666 (rackd checks each client)" test "$(stat -c '%a %U' "$socket")" = "666 root"
tb_assert "root reads status" "$pub/rackctl" status --socket "$socket"
expect_exit 0 "a member of the status group (supplementary) reads status" as 4242 4242 "$nogroup" -- status
expect_exit 0 "a member of the status group (primary) reads status as JSON" as 4242 "$nogroup" -- status --json
expect_exit 77 "a member of the status group may not suspend" as 4242 4242 "$nogroup" -- suspend --all
tb_assert "rackd says suspend needs root" grep -q "needs root" "$TB_DIR/last.err"
expect_exit 77 "a member of the status group may not resume" as 4242 4242 "$nogroup" -- resume --all
expect_exit 77 "a stranger is refused status by SO_PEERCRED" as 4243 4243 -- status
tb_assert "the refusal comes from rackd" grep -q "^rackd: status needs root" "$TB_DIR/last.err"
expect_exit 77 "a stranger is refused suspend by SO_PEERCRED" as 4243 4243 -- suspend --all
tb_assert "rackd logged the refusals with the client's uid" grep -q "control request refused.*client.uid=4243" "$TB_DIR/rackd-a.log"
tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a

# Without a status group the file itself keeps everyone but root out.
tb_start_rackd "$TB_A" a2 --config /dev/null --control-socket "$socket"
tb_assert "without a status group the socket is 0600" test "$(stat -c '%a %U' "$socket")" = "600 root"
tb_assert "root reads status" "$pub/rackctl" status --socket "$socket"
expect_exit 77 "a stranger is refused by the socket's mode" as 4243 4243 -- status
tb_assert "rackctl says permission denied" grep -q "permission denied" "$TB_DIR/last.err"
expect_exit 77 "so is a member of nogroup" as 4242 4242 "$nogroup" -- status
tb_assert "rackd stops cleanly" tb_stop_rackd "$TB_A" a2
tb_assert "the socket is gone after rackd stopped" test ! -e "$socket"
expect_exit 69 "rackctl without rackd" "$pub/rackctl" status --socket "$socket"
tb_assert "it says rackd is not running and how to start it" grep -q "rackd is not running.*systemctl start rackd" "$TB_DIR/last.err"
