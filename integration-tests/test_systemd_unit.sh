#!/usr/bin/env bash
# test_systemd_unit.sh: packaging/systemd/rackd.service is a valid unit and a hardened one, and the sleep
# hook never holds up or fails a sleep.
#   - `systemd-analyze verify` prints nothing and succeeds. It checks that ExecStart=/ExecStopPost= name
#     executables and that the Documentation= man pages exist, so it runs against a throwaway root
#     (--root): the host's own units (for the targets the unit names), the unit, an empty placeholder
#     /usr/sbin/rackd (nothing runs it), and MANPATH pointing at packaging/man.
#   - `systemd-analyze security --offline=yes` rates it OK or better: exposure below 5.0 (the ratings:
#     0.0 PERFECT, below 1.0 SAFE, below 5.0 OK, then MEDIUM, EXPOSED, UNSAFE, DANGEROUS).
#   - packaging/systemd/rackd-sleep, run with stand-in rackctl binaries (RACKCTL=), calls
#     `suspend --all` before and `resume --all` after sleep, passes RACKD_SOCKET through, and exits 0
#     when rackd is not running (69), when rackctl fails, hangs (time limit) or is missing.
# Needs systemd-analyze (package systemd; scripts/install-deps installs it), else it is skipped. Needs no
# namespace, no root and no build; runs nothing of rackd's.
# timeout: 120
set -euo pipefail
export LC_ALL=C
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
repo=$TB_REPO
unit=$repo/packaging/systemd/rackd.service
hook=$repo/packaging/systemd/rackd-sleep
ok_below=5.0 # the lowest exposure systemd-analyze rates MEDIUM

command -v systemd-analyze >/dev/null || tb_skip "systemd-analyze is missing (apt-get install systemd, or scripts/install-deps)"
[[ -d /lib/systemd/system ]] || tb_skip "no /lib/systemd/system to verify against"

tmp=$(mktemp -d /tmp/rackd-unit-test.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT

# make_root DIR: a root for `verify --root`: the host's units, our unit and a placeholder daemon.
make_root() {
    local root=$1
    mkdir -p "$root/lib/systemd" "$root/usr/sbin" "$root/etc/rackd"
    cp -a /lib/systemd/system "$root/lib/systemd/"
    cp "$unit" "$root/lib/systemd/system/rackd.service"
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/sbin/rackd"
    chmod 0755 "$root/usr/sbin/rackd"
    : >"$root/etc/rackd/rackd.conf"
}

# make_manpath DIR: the package's man pages laid out as a man hierarchy, for verify's Documentation= check.
make_manpath() {
    mkdir -p "$1/man8" "$1/man5"
    cp "$repo/packaging/man/rackd.8" "$repo/packaging/man/rackctl.8" "$1/man8/"
    cp "$repo/packaging/man/rackd.conf.5" "$1/man5/"
}

# verify_clean: systemd-analyze verify on the unit, which must succeed and print nothing.
verify_clean() {
    local out rc=0
    out=$(MANPATH=$tmp/man systemd-analyze verify --root="$tmp/root" rackd.service 2>&1) || rc=$?
    [[ -z $out ]] || printf 'systemd-analyze verify said:\n%s\n' "$out"
    ((rc == 0)) && [[ -z $out ]]
}

# exposure: print the overall exposure score systemd-analyze gives the unit (e.g. 2.2), and its rating
# with the full table on stderr.
exposure() {
    local out line
    out=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1) || true
    line=$(grep -m1 'Overall exposure level for rackd.service:' <<<"$out") || {
        printf '%s\n' "$out" >&2
        return 1
    }
    grep -E '^(- |✗ )' <<<"$out" >&2 || true # the findings that cost exposure (ASCII '-' under LC_ALL=C)
    echo "$line" >&2
    sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/' <<<"$line"
}

# below LIMIT VALUE: true if VALUE < LIMIT (decimals).
below() { awk -v l="$1" -v v="$2" 'BEGIN { exit !(v + 0 < l + 0) }'; }

# fake_rackctl NAME STATUS [SLEEP_S]: a stand-in rackctl that records its arguments and RACKD_SOCKET in
# $tmp/NAME.calls, optionally sleeps ignoring SIGTERM, and exits STATUS. Prints its path.
fake_rackctl() {
    local path=$tmp/$1
    cat >"$path" <<EOF
#!/bin/bash
echo "\$* socket=\${RACKD_SOCKET:-unset}" >>"$tmp/$1.calls"
${3:+trap '' TERM; sleep $3}
exit $2
EOF
    chmod 0755 "$path"
    echo "$path"
}

# hook RACKCTL PHASE: run the sleep hook with RACKCTL and a test socket; print its output, then a line
# "hook exit status: N".
hook() {
    local rc=0
    RACKCTL=$1 RACKD_SOCKET=$tmp/rackd.sock RACKD_SLEEP_TIMEOUT=1 "$hook" "$2" suspend 2>&1 || rc=$?
    echo "hook exit status: $rc"
}

# hook_ok OUTPUT: true if the hook run that printed OUTPUT exited 0.
hook_ok() { grep -qx "hook exit status: 0" <<<"$1"; }

make_root "$tmp/root"
make_manpath "$tmp/man"
tb_assert "systemd-analyze verify is clean" verify_clean

score=$(exposure)
echo "exposure: $score (OK means below $ok_below)"
tb_assert "systemd-analyze security rates the unit OK or better" below "$ok_below" "$score"

# The unit's non-negotiables, so a "fix" of a verify or security finding cannot silently drop them.
for line in Type=notify NotifyAccess=main WatchdogSec=5s 'ExecStart=/usr/sbin/rackd --config /etc/rackd/rackd.conf' \
    Restart=on-failure RuntimeDirectory=rackd RuntimeDirectoryPreserve=yes \
    'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW' 'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6' \
    ProtectSystem=strict; do
    tb_assert "the unit has $line" grep -qxF "$line" "$unit"
done
# A stop is half of a restart: cleaning up after it would throw away the connections kept for the next rackd.
tb_assert_fails "the unit has no ExecStopPost= (rackd cleanup would drop the kept connections)" grep -q "^ExecStopPost=" "$unit"
for option in PrivateNetwork PrivateUsers IPAddressDeny; do
    tb_assert_fails "the unit does not set $option= (it would cut rackd off the host's network)" grep -q "^$option=" "$unit"
done

ok=$(fake_rackctl ok 0)
out=$(hook "$ok" pre)
echo "$out"
tb_assert "pre: the hook exits 0" hook_ok "$out"
tb_assert "pre: the hook runs rackctl suspend --all with RACKD_SOCKET" grep -qxF "suspend --all socket=$tmp/rackd.sock" "$tmp/ok.calls"
out=$(hook "$ok" post)
echo "$out"
tb_assert "post: the hook exits 0" hook_ok "$out"
tb_assert "post: the hook runs rackctl resume --all" grep -qxF "resume --all socket=$tmp/rackd.sock" "$tmp/ok.calls"

down=$(fake_rackctl down 69)
out=$(hook "$down" pre)
echo "$out"
tb_assert "exit status 0" hook_ok "$out"
tb_assert "rackd not running (69): the hook exits 0 and says so" grep -q "rackd is not running" <<<"$out"

failing=$(fake_rackctl failing 1)
out=$(hook "$failing" post)
echo "$out"
tb_assert "exit status 0" hook_ok "$out"
tb_assert "rackctl failing: the hook exits 0 and logs the status" grep -q "exit status 1" <<<"$out"

hung=$(fake_rackctl hung 0 30)
start=$SECONDS
out=$(hook "$hung" pre)
echo "$out"
tb_assert "exit status 0" hook_ok "$out"
tb_assert "a hanging rackctl is given up after the time limit" grep -q "did not finish within 1s" <<<"$out"
tb_assert "and the sleep waited at most a few seconds" test $((SECONDS - start)) -le 4

out=$(hook "$tmp/no-such-rackctl" pre)
echo "$out"
tb_assert "exit status 0" hook_ok "$out"
tb_assert "a missing rackctl: the hook exits 0 and says so" grep -q "is missing" <<<"$out"
