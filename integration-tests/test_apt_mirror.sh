#!/usr/bin/env bash
# test_apt_mirror.sh: packaging/apt-sources.sh, which picks the Debian mirror the package tests
# (packaging/test-deb-chroot, test-deb-boot) debootstrap and install from, reads apt's sources as apt does.
# Fixture /etc/apt directories in a temporary directory:
#   - deb822 .sources (the Debian 12 default) with a security paragraph, a commented-out URI, a disabled
#     paragraph and a deb-src one; one-line sources.list with [options]; a mix of both;
#   - files apt skips (*.disabled, *.save) and a third-party repository that also names its suite bookworm;
#   - a machine on another release (trixie) with no bookworm entry: its mirror is used;
#   - no usable entry at all: status 1; RACKD_CHROOT_MIRROR overrides everything (and then the security
#     mirror is RACKD_CHROOT_SECURITY_MIRROR or none).
# And the real machine's: test-deb-chroot --print-mirror prints a URI. No root, no namespace.
# timeout: 60
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd -P -- "$here/.." && pwd)
# shellcheck source=packaging/apt-sources.sh
source "$repo/packaging/apt-sources.sh"
unset RACKD_CHROOT_MIRROR
export APT_OS_RELEASE=bookworm
tmp=$(mktemp -d /tmp/rackd-apt-mirror-test.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
passed=0 failed=0

# expect DESCRIPTION EXPECTED CMD...: CMD prints EXPECTED (and succeeds), or "<fail>" when EXPECTED is.
expect() {
    local what=$1 want=$2 got rc=0
    shift 2
    got=$("$@" 2>&1) || rc=$?
    ((rc == 0)) || got="<fail>"
    if [[ $got == "$want" ]]; then
        echo "PASS $what"
        passed=$((passed + 1))
    else
        echo "FAIL $what: expected '$want', got '$got'"
        failed=$((failed + 1))
    fi
}

# fixture NAME: a fresh APT_DIR named NAME; prints its path.
fixture() {
    mkdir -p "$tmp/$1/sources.list.d"
    echo "$tmp/$1"
}

# 1. Debian 12's default: deb822, with security, and comments in between (a snapshot URI commented out).
d=$(fixture deb822)
cat >"$d/sources.list.d/debian.sources" <<'EOF'
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.net/debian/
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example.net/debian
Suites: bookworm
Components: main

Types: deb
URIs: http://mirror.example.net/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
expect "deb822: the bookworm mirror (trailing slash dropped)" http://mirror.example.net/debian apt_debian_mirror "$d"
expect "deb822: the security mirror" http://mirror.example.net/debian-security apt_security_mirror "$d"

# 2. A disabled paragraph (Enabled: no) and a skipped file name come first: neither counts.
d=$(fixture disabled)
cat >"$d/sources.list.d/a-old.sources.save" <<'EOF'
Types: deb
URIs: http://saved.example.net/debian
Suites: bookworm
Components: main
EOF
cat >"$d/sources.list.d/b.list.disabled-by-farm" <<'EOF'
deb http://farm.example.net/debian bookworm main
EOF
cat >"$d/sources.list.d/c.sources" <<'EOF'
Enabled: no
Types: deb
URIs: http://off.example.net/debian
Suites: bookworm
Components: main

Types: deb
URIs: https://on.example.net/debian
Suites: bookworm
Components: main
EOF
expect "skips Enabled: no and files apt does not read" https://on.example.net/debian apt_debian_mirror "$d"
expect "no security entry: status 1" "<fail>" apt_security_mirror "$d"

# 3. One-line sources.list with options and comments; a third-party repository that also says
#    "bookworm" comes first (in sources.list.d/a-vendor.list, read after sources.list but listed first here
#    by putting it in sources.list).
d=$(fixture oneline)
cat >"$d/sources.list" <<'EOF'
# deb http://commented.example.net/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/vendor.gpg] https://apt.vendor.example.com bookworm main
deb-src http://src.example.net/debian bookworm main
deb [ arch=amd64 ] http://ftp.example.org/pub/linux/debian bookworm main non-free-firmware   # the archive
deb http://security.example.org/debian-security bookworm-security main
EOF
expect "one-line: Debian's entry wins over a vendor's bookworm" http://ftp.example.org/pub/linux/debian apt_debian_mirror "$d"
expect "one-line: the security mirror" http://security.example.org/debian-security apt_security_mirror "$d"

# 4. Only a vendor's entry that is not main (docker: "bookworm stable"), and a cdrom: entry: nothing usable.
d=$(fixture nothing)
cat >"$d/sources.list" <<'EOF'
deb cdrom:[Debian GNU/Linux 12.5.0 _Bookworm_]/ bookworm main
deb [signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/debian bookworm stable
EOF
expect "no usable entry: status 1" "<fail>" apt_debian_mirror "$d"
expect "RACKD_CHROOT_MIRROR overrides" http://override.example.net/debian \
    env RACKD_CHROOT_MIRROR=http://override.example.net/debian bash -c "source '$repo/packaging/apt-sources.sh'; apt_debian_mirror '$d'"

expect "RACKD_CHROOT_MIRROR alone: no security mirror" "<fail>" \
    env RACKD_CHROOT_MIRROR=http://override.example.net/debian bash -c "source '$repo/packaging/apt-sources.sh'; apt_security_mirror '$tmp/deb822'"
expect "RACKD_CHROOT_SECURITY_MIRROR with it" http://override.example.net/debian-security \
    env RACKD_CHROOT_MIRROR=http://override.example.net/debian RACKD_CHROOT_SECURITY_MIRROR=http://override.example.net/debian-security \
    bash -c "source '$repo/packaging/apt-sources.sh'; apt_security_mirror '$tmp/deb822'"

# 5. A trixie machine (deb822 in .sources, sources.list empty): no bookworm entry, so its trixie mirror.
d=$(fixture trixie)
: >"$d/sources.list"
cat >"$d/sources.list.d/debian.sources" <<'EOF'
Types: deb deb-src
URIs: http://trixie.example.net/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
expect "another release: its mirror, when it has no bookworm entry" http://trixie.example.net/debian \
    env APT_OS_RELEASE=trixie bash -c "source '$repo/packaging/apt-sources.sh'; apt_debian_mirror '$d'"

# 6. Both formats at once: sources.list is read before sources.list.d/.
d=$(fixture mixed)
echo "deb http://first.example.net/debian bookworm main" >"$d/sources.list"
printf 'Types: deb\nURIs: http://second.example.net/debian\nSuites: bookworm\nComponents: main\n' >"$d/sources.list.d/debian.sources"
expect "sources.list before sources.list.d/" http://first.example.net/debian apt_debian_mirror "$d"

# 7. The chroot's sources.list written from them.
mkdir -p "$tmp/root/etc/apt/sources.list.d"
echo "deb http://stale.example.net/debian bookworm main" >"$tmp/root/etc/apt/sources.list.d/stale.list"
apt_write_chroot_sources "$tmp/root" http://m.example.net/debian http://m.example.net/debian-security
expect "the chroot's sources: bookworm, -updates, -security and nothing else" \
    "deb http://m.example.net/debian bookworm main|deb http://m.example.net/debian bookworm-updates main|deb http://m.example.net/debian-security bookworm-security main|" \
    bash -c "tr '\n' '|' <'$tmp/root/etc/apt/sources.list'; ls '$tmp/root/etc/apt/sources.list.d'"

# 8. This machine's own sources, through the script's self-test mode.
if [[ -d /etc/apt ]]; then
    out=$(RACKD_CHROOT_MIRROR='' "$repo/packaging/test-deb-chroot" --print-mirror 2>&1) || true
    printf "    %s\n" "${out//$'\n'/$'\n'    }"
    expect "test-deb-chroot --print-mirror names an http(s) mirror for this machine" ok \
        bash -c "grep -Eq '^mirror (https?|ftp|file):' <<<'$out' && echo ok"
fi

echo "$passed passed, $failed failed"
((failed == 0))
