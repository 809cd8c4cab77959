#!/usr/bin/env bash
# test_packaging_files.sh: the files the Debian package ships stay true to the code and the docs.
#   - the man pages (packaging/man) pass lintian's manual-page check: man --warnings prints nothing;
#   - packaging/rackd.conf (the shipped /etc/rackd/rackd.conf) names every key of docs/configuration.md,
#     commented out, with the same value, and nothing else;
#   - rackd --check-config accepts it as shipped, and with every section and key uncommented (so each
#     documented default really is a valid value);
#   - rackd.conf(5) describes every key.
# The rackd parts are skipped when rackd is not built (RACKD_BIN, default .build/debug/rackd). Needs no
# namespace and no root; runs rackd only with --check-config.
# timeout: 60
set -euo pipefail
export LC_ALL=C.UTF-8
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
repo=$TB_REPO
conf=$repo/packaging/rackd.conf
docs=$repo/docs/configuration.md

command -v man >/dev/null || tb_skip "man is missing (apt-get install man-db, or scripts/install-deps)"
tmp=$(mktemp -d /tmp/rackd-packaging-test.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT

# man_clean PAGE: lintian's check of a manual page: formatting it prints no warning.
man_clean() {
    local out
    out=$(MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$1" 2>&1 >/dev/null)
    [[ -z $out ]] || printf '%s\n' "$out"
    [[ -z $out ]]
}

# doc_settings: print "section.key = value" for every key of the example in docs/configuration.md.
doc_settings() {
    # shellcheck disable=SC2016 # the backquotes are markdown's
    sed -n '/^```ini$/,/^```$/p' "$docs" | awk '
        /^\[/ { gsub(/[][]/, ""); section = $0; next }
        /^[a-z-]+ *=/ { line = $0; sub(/ +#.*/, "", line); split(line, kv, / *= */); print section "." kv[1] " = " kv[2] }'
}

# conf_settings: the same for the commented-out lines of packaging/rackd.conf ("#[section]", "#key = value").
conf_settings() {
    awk '
        /^#\[[a-z]+\]$/ { s = $0; gsub(/[#][[]|[]]/, "", s); section = s; next }
        /^#[a-z-]+ = / { line = substr($0, 2); split(line, kv, / = /); print section "." kv[1] " = " kv[2] }' "$conf"
}

# only_comments: true if every line of packaging/rackd.conf is a comment or empty.
only_comments() { ! grep -Evq '^(#.*)?$' "$conf"; }

# check_config FILE: rackd --check-config accepts FILE.
check_config() {
    local out
    out=$("$rackd" --check-config --config "$1" 2>&1) || {
        printf '%s\n' "$out"
        return 1
    }
    [[ $out == "$1: OK" ]]
}

# described_in_man KEY: rackd.conf(5) has an entry for KEY.
described_in_man() { grep -Eq "^\.B[IR] ${1//-/\\\\-} " "$repo/packaging/man/rackd.conf.5"; }

for page in "$repo"/packaging/man/*.[0-9]; do
    tb_assert "$(basename "$page") formats without warnings" man_clean "$page"
done

tb_assert "rackd.conf is comments only (as shipped it changes nothing)" only_comments
doc_settings | sort >"$tmp/docs"
conf_settings | sort >"$tmp/conf"
diff "$tmp/docs" "$tmp/conf" || true
tb_assert "rackd.conf lists every key of docs/configuration.md with the same value, and no other" \
    cmp -s "$tmp/docs" "$tmp/conf"
tb_assert "docs/configuration.md has keys at all (the parse above worked)" test "$(wc -l <"$tmp/docs")" -ge 15

while read -r setting; do
    key=${setting%% = *}
    key=${key#*.}
    tb_assert "rackd.conf(5) describes $key" described_in_man "$key"
done <"$tmp/docs"

rackd=$(tb_rackd_bin)
if [[ ! -x $rackd ]]; then
    echo "SKIP: rackd is not built ($rackd); the --check-config checks did not run"
    exit 0
fi
if ! "$rackd" run --help 2>&1 | grep -q -- --check-config; then
    echo "SKIP: this rackd has no --check-config; those checks did not run"
    exit 0
fi
tb_assert "rackd --check-config accepts rackd.conf as shipped" check_config "$conf"
sed -E 's/^#(\[[a-z]+\])$/\1/; s/^#([a-z-]+ = )/\1/' "$conf" >"$tmp/rackd.conf"
grep -Ev '^(#|$)' "$tmp/rackd.conf"
tb_assert "and with every section and key uncommented" check_config "$tmp/rackd.conf"
