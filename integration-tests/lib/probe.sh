# shellcheck shell=bash
# integration-tests/lib/probe.sh: builds rackd-kernel-probe (Sources/rackd-kernel-probe), the package's
# executable that runs one kernel adapter of RackDaemon alone, for the adapter tests.

# probe_build FILES_REGEX: build the probe with the package's normal `swift build` (log in $TB_DIR/build.log),
# report through the caller's pass/fail whether this build warned about the files FILES_REGEX matches (paths
# under Sources/RackDaemon, without .swift; files compiled earlier are not compiled again), and set PROBE to
# the binary. Exits the test if the build fails.
probe_build() {
    local files=$1 log=$TB_DIR/build.log
    (cd "$TB_REPO" && swift build --product rackd-kernel-probe) >"$log" 2>&1 ||
        { tail -n 40 "$log"; fail "the probe builds"; exit 1; }
    if grep -E "Sources/RackDaemon/($files)\.swift:[0-9]+:[0-9]+: warning" "$log"; then
        fail "the adapter builds without warnings"
    else
        pass "the adapter builds without warnings"
    fi
    PROBE=$(cd "$TB_REPO" && swift build --show-bin-path)/rackd-kernel-probe
}
