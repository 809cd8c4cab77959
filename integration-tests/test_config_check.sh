#!/usr/bin/env bash
# test_config_check.sh: `rackd --check-config` rejects every file in integration-tests/config/broken, each with the line
# and the message its first line expects ("# expect: line N: MESSAGE") and exit status 1; it accepts the
# shipped default (packaging/rackd.conf) and the example in docs/configuration.md. rackd itself refuses to
# start on a broken file, inside a test namespace, before it touches the network.
# timeout: 60
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -P -- "$here/.." && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd
rackd=$(tb_rackd_bin)
tb_setup

count=0
for file in "$repo"/integration-tests/config/broken/*.conf; do
    expected=$(sed -n '1s/^# expect: //p' "$file")
    rc=0
    got=$("$rackd" --check-config --config "$file" 2>&1) || rc=$?
    tb_assert "$(basename "$file"): exit 1 and '$expected'" test "$rc:$got" = "1:$file: $expected"
    count=$((count + 1))
done
echo "$count broken files rejected"
tb_assert "at least 15 broken files were checked" test "$count" -ge 15

tb_assert "the shipped default configuration is valid" \
    test "$("$rackd" --check-config --config "$repo/packaging/rackd.conf")" = "$repo/packaging/rackd.conf: OK"
sed -n '/^```ini$/,/^```$/p' "$repo/docs/configuration.md" | sed '1d;$d' >"$TB_DIR/documented.conf"
tb_assert "the documented example is valid" "$rackd" --check-config --config "$TB_DIR/documented.conf"

rc=0
tb_exec "$TB_A" "$rackd" --config "$repo/integration-tests/config/broken/unknown-key.conf" --control-socket "$TB_DIR/a.sock" \
    >"$TB_DIR/start.out" 2>&1 || rc=$?
cat "$TB_DIR/start.out"
tb_assert "rackd refuses to start on a broken file (exit 1)" test "$rc" = 1
tb_assert "it names the line and the reason" grep -q "unknown-key.conf: line 3: unknown key 'colour'" "$TB_DIR/start.out"
tb_assert "it installed no rules" bash -c "! ip netns exec $TB_A nft list table inet rackd >/dev/null 2>&1"
tb_assert "it made no control socket" test ! -e "$TB_DIR/a.sock"
