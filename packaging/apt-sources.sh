# shellcheck shell=bash
# packaging/apt-sources.sh: which Debian mirror the package tests use, read from this machine's own apt
# sources, so that they work wherever apt works (behind a local mirror, a proxy-only network, a cloud's
# own mirror) without a host name written into the scripts. Sourced by packaging/test-deb-chroot and
# packaging/test-deb-boot; checked on fixture files by integration-tests/test_apt_mirror.sh.
#
#   apt_source_entries [APT_DIR]        print every enabled `deb` entry, one line per suite:
#                                       URI<TAB>SUITE<TAB>COMPONENTS<TAB>SIGNED-BY (may be empty)
#   apt_mirror_for SUITE [APT_DIR]      print the URI of the Debian archive entry for SUITE; status 1 if none
#   apt_debian_mirror [APT_DIR]         the mirror to debootstrap bookworm from (see below); status 1 if none
#   apt_security_mirror [APT_DIR]       the URI serving bookworm-security, if the machine has one (with
#                                       RACKD_CHROOT_MIRROR set: RACKD_CHROOT_SECURITY_MIRROR, else none)
#
# APT_DIR defaults to /etc/apt. What is read, as apt reads it: APT_DIR/sources.list and
# APT_DIR/sources.list.d/*.list (one-line format: `deb [options] URI SUITE COMPONENT...`), and
# APT_DIR/sources.list.d/*.sources (deb822: paragraphs with `Types:`, `URIs:`, `Suites:`, `Components:`,
# `Signed-By:`, `Enabled:`). Files with any other name (foo.list.disabled, foo.sources.save) are skipped,
# as apt skips them, and so are commented-out lines, deb822 paragraphs with `Enabled: no`, `deb-src`
# entries, and URIs debootstrap cannot fetch from (cdrom:, mirror+..., tor+...).
#
# The Debian archive entry for a suite: an entry listing that suite with the component `main`. When
# several do (a third-party repository can also call its suite "bookworm"), the first that looks like
# Debian's wins: its URI ends in /debian or it is signed by debian-archive-keyring; failing that, the
# first in apt's order (sources.list, then sources.list.d/ by name).
#
# apt_debian_mirror tries SUITE bookworm (the chroot's release), then the machine's own release
# (VERSION_CODENAME in /etc/os-release, or APT_OS_RELEASE), since a Debian mirror that serves one
# release serves the others. RACKD_CHROOT_MIRROR, when set, overrides all of it.

# apt__deb822 FILE: print the deb entries of a deb822 .sources file (format of apt_source_entries).
apt__deb822() {
    awk '
        function flush(   i, j, nt, nu, ns, t, u, s, isdeb) {
            if (!seen) return
            seen = 0
            if (tolower(f["enabled"]) == "no") { delete f; return }
            nt = split(f["types"], t, /[ \t]+/)
            isdeb = 0
            for (i = 1; i <= nt; i++) if (t[i] == "deb") isdeb = 1
            if (!isdeb) { delete f; return }
            nu = split(f["uris"], u, /[ \t]+/)
            ns = split(f["suites"], s, /[ \t]+/)
            for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                if (u[i] != "" && s[j] != "") printf "%s\t%s\t%s\t%s\n", u[i], s[j], f["components"], f["signed-by"]
            delete f
        }
        /^#/ { next }
        /^[ \t]*$/ { flush(); next }
        /^[ \t]/ {
            # A continuation line (Signed-By: can hold a whole key): part of the last field.
            if (key != "") { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v); if (key != "signed-by") f[key] = f[key] " " v }
            next
        }
        /^[A-Za-z0-9-]+:/ {
            seen = 1
            key = tolower(substr($0, 1, index($0, ":") - 1))
            v = substr($0, index($0, ":") + 1)
            gsub(/^[ \t]+|[ \t]+$/, "", v)
            f[key] = v
            next
        }
        END { flush() }
    ' "$1"
}

# apt__one_line FILE: print the deb entries of a one-line-format .list file (format of apt_source_entries).
apt__one_line() {
    awk '
        { sub(/#.*/, "") }
        $1 != "deb" { next }
        {
            line = $0
            sub(/^[ \t]*deb[ \t]+/, "", line)
            signed = ""
            if (line ~ /^\[/) {
                opts = substr(line, 2, index(line, "]") - 2)
                line = substr(line, index(line, "]") + 1)
                n = split(opts, o, /[ \t]+/)
                for (i = 1; i <= n; i++) if (o[i] ~ /^signed-by=/) signed = substr(o[i], 11)
            }
            n = split(line, w, /[ \t]+/)
            k = 0
            for (i = 1; i <= n; i++) if (w[i] != "") ww[++k] = w[i]
            if (k < 2) next
            comps = ""
            for (i = 3; i <= k; i++) comps = comps (comps == "" ? "" : " ") ww[i]
            printf "%s\t%s\t%s\t%s\n", ww[1], ww[2], comps, signed
            delete ww
        }
    ' "$1"
}

apt_source_entries() {
    local dir=${1:-/etc/apt} file
    [[ ! -f $dir/sources.list ]] || apt__one_line "$dir/sources.list"
    # apt reads sources.list.d/ in name order, and only *.list and *.sources.
    for file in "$dir"/sources.list.d/*; do
        [[ -f $file ]] || continue
        case $file in
            *.list) apt__one_line "$file" ;;
            *.sources) apt__deb822 "$file" ;;
        esac
    done | awk -F '\t' '$1 ~ /^(https?|ftp|file):/'
}

apt_mirror_for() {
    local suite=${1:?apt_mirror_for: which suite?} dir=${2:-/etc/apt}
    apt_source_entries "$dir" | awk -F '\t' -v suite="$suite" '
        $2 != suite || (" " $3 " ") !~ / main / { next }
        { uri = $1; sub(/\/+$/, "", uri) }
        first == "" { first = uri }
        debianish == "" && (uri ~ /\/debian$/ || uri ~ /\/debian-security$/ || $4 ~ /debian-archive-keyring/) { debianish = uri }
        END {
            if (debianish != "") print debianish
            else if (first != "") print first
            else exit 1
        }'
}

# apt__release: the machine's release codename (APT_OS_RELEASE overrides, for tests).
apt__release() {
    if [[ -n ${APT_OS_RELEASE:-} ]]; then
        echo "$APT_OS_RELEASE"
    elif [[ -r /etc/os-release ]]; then
        sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"'
    fi
}

apt_debian_mirror() {
    local dir=${1:-/etc/apt} release
    if [[ -n ${RACKD_CHROOT_MIRROR:-} ]]; then
        echo "$RACKD_CHROOT_MIRROR"
        return 0
    fi
    apt_mirror_for bookworm "$dir" && return 0
    release=$(apt__release)
    [[ -n $release && $release != bookworm ]] && apt_mirror_for "$release" "$dir"
}

apt_security_mirror() {
    local dir=${1:-/etc/apt}
    # An overridden mirror is often the only one reachable: then only the security mirror named with it.
    if [[ -n ${RACKD_CHROOT_MIRROR:-} ]]; then
        [[ -n ${RACKD_CHROOT_SECURITY_MIRROR:-} ]] || return 1
        echo "$RACKD_CHROOT_SECURITY_MIRROR"
        return 0
    fi
    apt_mirror_for bookworm-security "$dir"
}

# apt_write_chroot_sources ROOT MIRROR [SECURITY]: the chroot's /etc/apt/sources.list: bookworm and
# bookworm-updates from MIRROR, bookworm-security from SECURITY when given. Any sources.list.d/ of the
# chroot (debootstrap makes none; a copied tarball might hold one) is emptied so it cannot add others.
apt_write_chroot_sources() {
    local root=$1 mirror=$2 security=${3:-}
    {
        printf 'deb %s bookworm main\n' "$mirror"
        printf 'deb %s bookworm-updates main\n' "$mirror"
        [[ -z $security ]] || printf 'deb %s bookworm-security main\n' "$security"
    } >"$root/etc/apt/sources.list"
    rm -f "$root"/etc/apt/sources.list.d/*.list "$root"/etc/apt/sources.list.d/*.sources
}
