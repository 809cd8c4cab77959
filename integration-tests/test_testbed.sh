#!/usr/bin/env bash
# test_testbed.sh: self-test of the test bed (testbed/netns.sh) and tools/ (xfer.py, check_xfer.py, ping.py).
# Needs root, no rackd: reachability over v4 and v6, bulk transfers checked by hash, each fault of the bed
# (black hole, link down/up, address change, a move to another subnet), the rackd helpers against a stand-in
# daemon, and cleanup on normal exit, on failure, on SIGINT and SIGTERM, and with two beds at once.
# timeout: 300
set -euo pipefail

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
bed=$here/../testbed/netns.sh
# shellcheck source-path=SCRIPTDIR/.. source=testbed/netns.sh
source "$bed"

# section TITLE...: print a section header.
section() { printf '\n== %s\n' "$*"; }

# has_prefix STRING PREFIX: true if STRING starts with PREFIX.
has_prefix() { [[ $1 == "$2"* ]]; }

# a_has_addr ADDR: true if A's interface carries ADDR.
a_has_addr() { [[ $(tb_exec "$TB_A" ip -o addr show dev "$TB_A_IF") == *" $1/"* ]]; }

section "setup"
tb_setup
tb_assert "namespaces A, R, B exist" tb_ns_exists "$TB_A"
tb_assert "R exists" tb_ns_exists "$TB_R"
tb_assert "B exists" tb_ns_exists "$TB_B"
tb_assert "work dir exists" test -d "$TB_DIR"
tb_assert "IPv4 forwarding is on in R" test "$(tb_exec "$TB_R" cat /proc/sys/net/ipv4/ip_forward)" = 1
tb_assert "IPv6 forwarding is on in R" test "$(tb_exec "$TB_R" cat /proc/sys/net/ipv6/conf/all/forwarding)" = 1
tb_assert "and off in A" test "$(tb_exec "$TB_A" cat /proc/sys/net/ipv4/ip_forward)" = 0
tb_assert "root namespace has no table inet rackd" tb_assert_root_clean

section "reachability"
tb_assert "A pings B over IPv4" tb_ping "$TB_A" "$TB_B_ADDR4"
tb_assert "A pings B over IPv6" tb_ping "$TB_A" "$TB_B_ADDR6"
tb_assert "B pings A over IPv4" tb_ping "$TB_B" "$TB_A_ADDR4"
tb_assert "B pings A over IPv6" tb_ping "$TB_B" "$TB_A_ADDR6"
tb_assert_fails "nothing answers at an unused address" tb_ping "$TB_A" 10.2.0.99 1 0.5

section "bulk transfers, 20 MiB each way"
tb_assert "A<->B over IPv4, hashes match" tb_xfer bulk4 "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 20M 20M
tb_assert "A<->B over IPv6, hashes match" tb_xfer bulk6 "$TB_A" "$TB_B" "$TB_B_ADDR6" 5002 20M 20M
tb_assert "one-way transfer B->A (client sends nothing)" tb_xfer oneway "$TB_A" "$TB_B" "$TB_B_ADDR4" 5003 0 3M
sed 's/"recv_sha256": "[0-9a-f]\{8\}/"recv_sha256": "00000000/' "$TB_DIR/bulk4-server.json" >"$TB_DIR/bad-server.json"
tb_assert_fails "check_xfer catches a changed hash" tb_check_xfer "$TB_DIR/bulk4-client.json" "$TB_DIR/bad-server.json"
tb_assert_fails "check_xfer catches a wrong byte count" \
    tb_check_xfer "$TB_DIR/bulk4-client.json" "$TB_DIR/bulk4-server.json" 20M 21M
rc=0
tb_exec "$TB_A" "$TB_TOOLS/xfer.py" client --connect "$TB_B_ADDR4" --port 5999 --bytes 1K \
    --report "$TB_DIR/refused.json" --connect-timeout 2 || rc=$?
tb_assert "xfer.py exits 1 when nobody listens" test "$rc" = 1
tb_assert "and reports the error" test "$(tb_json "$TB_DIR/refused.json" error)" != null

# A transfer whose server is killed reports the error and exits 1 on the client side.
tb_xfer_start reset "$TB_A" "$TB_B" "$TB_B_ADDR4" 5009 8M 8M --rate 1M
sleep 1
kill -TERM "$(tb_pid reset-server)" # (not KILL: bash would print a "Killed" job report)
rc=0
tb_wait_bg reset-client 30 || rc=$?
tb_assert "xfer.py client exits 1 when the server dies mid-transfer" test "$rc" = 1
tb_assert "and reports the socket error" test "$(tb_json "$TB_DIR/reset-client.json" error)" != null

section "ping-pong"
tb_bg "$TB_B" pp-server "$TB_TOOLS/xfer.py" pingpong-server --listen "$TB_B_ADDR6" --port 5004
tb_wait_port "$TB_B" 5004
tb_exec "$TB_A" "$TB_TOOLS/xfer.py" pingpong-client --connect "$TB_B_ADDR6" --port 5004 --count 2000 \
    >"$TB_DIR/pp.json"
cat "$TB_DIR/pp.json"
tb_assert "ping-pong server exited cleanly" tb_wait_bg pp-server 10
tb_assert "ping-pong reports a p99 at or above its p50" \
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(not (0 < r["p50_us"] <= r["p99_us"]))' \
    "$TB_DIR/pp.json"

section "black hole in R"
tb_blackhole_on
tb_assert_fails "no IPv4 ping through the black hole" tb_ping "$TB_A" "$TB_B_ADDR4" 2 0.5
tb_assert_fails "no IPv6 ping through the black hole" tb_ping "$TB_A" "$TB_B_ADDR6" 2 0.5
tb_assert "R itself still answers A" tb_ping "$TB_A" "$TB_R_A_ADDR4"
tb_assert "blackhole_on twice is fine" tb_blackhole_on
tb_blackhole_off
tb_assert "IPv4 works after blackhole_off" tb_ping "$TB_A" "$TB_B_ADDR4"
tb_assert "IPv6 works after blackhole_off" tb_ping "$TB_A" "$TB_B_ADDR6"
tb_assert "blackhole_off twice is fine" tb_blackhole_off
tb_blackhole_on b2a
tb_assert_fails "one-way black hole (b2a) stops the echo replies" tb_ping "$TB_A" "$TB_B_ADDR4" 2 0.5
tb_blackhole_off
# A throttled transfer survives a 2 s black hole in the middle: plain TCP retransmits.
tb_xfer_start held "$TB_A" "$TB_B" "$TB_B_ADDR4" 5005 4M 4M --rate 1M -- --rate 1M
sleep 1
tb_blackhole_on
sleep 2
tb_blackhole_off
tb_assert "a transfer across a 2 s black hole completes intact" tb_xfer_finish held 60
tb_assert "the server's --rate was applied (>= 3.5 s for 4 MiB at 1 MiB/s)" \
    python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["send_seconds"] < 3.5)' "$TB_DIR/held-server.json"

section "link down and up on A"
tb_link_down_a
tb_assert_fails "no IPv4 ping while A's link is down" tb_ping "$TB_A" "$TB_B_ADDR4" 1 0.5
tb_assert_fails "no IPv6 ping while A's link is down" tb_ping "$TB_A" "$TB_B_ADDR6" 1 0.5
tb_link_up_a
tb_assert "IPv4 works after link up" tb_ping "$TB_A" "$TB_B_ADDR4"
tb_assert "IPv6 works after link up" tb_ping "$TB_A" "$TB_B_ADDR6"
tb_assert "a transfer works after link up" tb_xfer afterup "$TB_A" "$TB_B" "$TB_B_ADDR6" 5006 2M 2M

section "address change on A"
tb_replace_addr_a 10.1.0.3 fd00:1::3
tb_assert "TB_A_ADDR4 updated" test "$TB_A_ADDR4" = 10.1.0.3
tb_assert "TB_A_ADDR6 updated" test "$TB_A_ADDR6" = fd00:1::3
tb_assert_fails "old IPv4 address gone" a_has_addr 10.1.0.2
tb_assert_fails "old IPv6 address gone" a_has_addr fd00:1::2
tb_assert "new IPv4 address present" a_has_addr 10.1.0.3
tb_assert "transfer from the new IPv4 address" tb_xfer newaddr4 "$TB_A" "$TB_B" "$TB_B_ADDR4" 5007 2M 2M
tb_assert "B saw the new IPv4 source" has_prefix "$(tb_json "$TB_DIR/newaddr4-server.json" peer)" "10.1.0.3:"
tb_assert "transfer from the new IPv6 address" tb_xfer newaddr6 "$TB_A" "$TB_B" "$TB_B_ADDR6" 5008 2M 2M
tb_assert "B saw the new IPv6 source" has_prefix "$(tb_json "$TB_DIR/newaddr6-server.json" peer)" "[fd00:1::3]:"
tb_assert_fails "an address outside A's subnet is refused" tb_replace_addr_a 10.2.0.7
tb_replace_addr_a 10.1.0.2 fd00:1::2
tb_assert "back to the first address" tb_ping "$TB_A" "$TB_B_ADDR4"

section "A moves to another subnet (tb_move_a)"
# lo_has ADDR: true if A's lo carries ADDR (a rackd in A may keep A's old address there; tb_move_a leaves it).
lo_has() { [[ $(tb_exec "$TB_A" ip -o addr show dev lo) == *" $1/"* ]]; }
# r_has_addr ADDR: true if R's side of the A link carries ADDR.
r_has_addr() { [[ $(tb_exec "$TB_R" ip -o addr show dev "$TB_R_A_IF") == *" $1/"* ]]; }
tb_exec "$TB_A" ip addr add 10.1.0.2/32 dev lo
tb_exec "$TB_A" ip -6 addr add fd00:1::2/128 dev lo nodad
tb_move_a 7
tb_assert "TB_A_ADDR4 is 10.7.0.2" test "$TB_A_ADDR4" = 10.7.0.2
tb_assert "TB_A_ADDR6 is fd00:7::2" test "$TB_A_ADDR6" = fd00:7::2
tb_assert "TB_R_A_ADDR4 is 10.7.0.1" test "$TB_R_A_ADDR4" = 10.7.0.1
tb_assert "TB_R_A_ADDR6 is fd00:7::1" test "$TB_R_A_ADDR6" = fd00:7::1
tb_assert "A carries 10.7.0.2" a_has_addr 10.7.0.2
tb_assert "A carries fd00:7::2" a_has_addr fd00:7::2
tb_assert_fails "A's link no longer carries 10.1.0.2" a_has_addr 10.1.0.2
tb_assert_fails "A's link no longer carries fd00:1::2" a_has_addr fd00:1::2
tb_assert_fails "R no longer carries 10.1.0.1" r_has_addr 10.1.0.1
tb_assert_fails "R no longer carries fd00:1::1" r_has_addr fd00:1::1
tb_assert "A's lo still holds the old IPv4 address" lo_has 10.1.0.2
tb_assert "A's lo still holds the old IPv6 address" lo_has fd00:1::2
tb_assert "B pings A's new IPv4 address" tb_ping "$TB_B" 10.7.0.2
tb_assert "B pings A's new IPv6 address" tb_ping "$TB_B" fd00:7::2
tb_assert_fails "B cannot reach A's old IPv4 address" tb_ping "$TB_B" 10.1.0.2 2 0.5
tb_assert_fails "B cannot reach A's old IPv6 address" tb_ping "$TB_B" fd00:1::2 2 0.5
tb_assert "A reaches B from its new network (IPv4)" tb_ping "$TB_A" "$TB_B_ADDR4"
tb_assert "A reaches B from its new network (IPv6)" tb_ping "$TB_A" "$TB_B_ADDR6"
tb_assert "A's IPv4 default route goes via 10.7.0.1" \
    grep -q "via 10.7.0.1 " <<<"$(tb_exec "$TB_A" ip -4 route show default)"
tb_assert "A's IPv6 default route goes via fd00:7::1" \
    grep -q "via fd00:7::1 " <<<"$(tb_exec "$TB_A" ip -6 route show default)"
tb_exec "$TB_A" ip addr del 10.1.0.2/32 dev lo
tb_exec "$TB_A" ip -6 addr del fd00:1::2/128 dev lo
tb_assert "a transfer from the new network, IPv4" tb_xfer moved4 "$TB_A" "$TB_B" "$TB_B_ADDR4" 5010 2M 2M
tb_assert "B saw the moved IPv4 source" has_prefix "$(tb_json "$TB_DIR/moved4-server.json" peer)" "10.7.0.2:"
tb_assert "a transfer from the new network, IPv6" tb_xfer moved6 "$TB_A" "$TB_B" "$TB_B_ADDR6" 5011 2M 2M
tb_assert "B saw the moved IPv6 source" has_prefix "$(tb_json "$TB_DIR/moved6-server.json" peer)" "[fd00:7::2]:"
tb_move_a --make-before-break 250
tb_assert "make-before-break: B pings A at 10.250.0.2" tb_ping "$TB_B" 10.250.0.2
tb_assert "make-before-break: B pings A at fd00:250::2" tb_ping "$TB_B" fd00:250::2
tb_assert_fails "make-before-break: 10.7.0.2 is gone" tb_ping "$TB_B" 10.7.0.2 2 0.5
tb_assert_fails "make-before-break: fd00:7::2 is gone" tb_ping "$TB_B" fd00:7::2 2 0.5
tb_assert_fails "A's link no longer carries 10.7.0.2" a_has_addr 10.7.0.2
tb_assert_fails "tb_move_a refuses B's network (2)" tb_move_a 2
tb_assert_fails "tb_move_a refuses 251" tb_move_a 251
tb_assert_fails "tb_move_a refuses a non-number" tb_move_a x
tb_assert "a refused move changed nothing" test "$TB_A_ADDR4" = 10.250.0.2
tb_move_a 1
tb_assert "back on the original network: TB_A_ADDR4 is 10.1.0.2" test "$TB_A_ADDR4" = 10.1.0.2
tb_assert "and TB_R_A_ADDR6 is fd00:1::1" test "$TB_R_A_ADDR6" = fd00:1::1
tb_assert "B pings A at 10.1.0.2 again" tb_ping "$TB_B" 10.1.0.2
tb_assert "B pings A at fd00:1::2 again" tb_ping "$TB_B" fd00:1::2
tb_assert_fails "10.250.0.2 is gone" tb_ping "$TB_B" 10.250.0.2 2 0.5
tb_assert_fails "fd00:250::2 is gone" tb_ping "$TB_B" fd00:250::2 2 0.5
tb_assert "moving to the current network keeps it working" tb_move_a 1
tb_assert "B still pings A at 10.1.0.2" tb_ping "$TB_B" 10.1.0.2
tb_assert "a transfer after moving back" tb_xfer movedback "$TB_A" "$TB_B" "$TB_B_ADDR6" 5012 2M 2M

section "rackd helpers, with a stand-in daemon (integration-tests/fake-rackd)"
export RACKD_BIN=$here/fake-rackd
tb_assert "tb_start_rackd waits for the table" tb_start_rackd "$TB_A" a --config /dev/null
tb_assert "table inet rackd exists in A" tb_has_rackd_table "$TB_A"
tb_assert_fails "and not in B" tb_has_rackd_table "$TB_B"
tb_assert "root namespace still clean" tb_assert_root_clean
tb_assert "tb_rackd_pid names a live process" kill -0 "$(tb_rackd_pid a)"
tb_assert "rackd got its arguments" grep -q -- "--config /dev/null" "$TB_DIR/rackd-a.log"
tb_assert "tb_stop_rackd returns exit status 0" tb_stop_rackd "$TB_A" a
tb_assert_fails "table gone after stop" tb_has_rackd_table "$TB_A"
FAKE_RACKD_EXIT=5 tb_start_rackd "$TB_B" b
rc=0
tb_stop_rackd "$TB_B" b INT || rc=$?
tb_assert "tb_stop_rackd passes on the exit status (5) after SIGINT" test "$rc" = 5
rc=0
FAKE_RACKD_MODE=die tb_start_rackd "$TB_A" died || rc=$?
tb_assert "tb_start_rackd fails when rackd dies at startup" test "$rc" = 1
tb_assert "the failed start left its log" grep -q "failing at startup" "$TB_DIR/rackd-died.log"
rc=0
FAKE_RACKD_MODE=notable TB_RACKD_START_TIMEOUT=1 tb_start_rackd "$TB_A" notable || rc=$?
tb_assert "tb_start_rackd fails when no table appears in time" test "$rc" = 1
tb_assert_fails "and stops the daemon" kill -0 "$(tb_rackd_pid notable)" 2>/dev/null
unset RACKD_BIN

section "small helpers"
printf 'abc' >"$TB_DIR/abc"
tb_assert "tb_sha256" test "$(tb_sha256 "$TB_DIR/abc")" = \
    ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
tb_assert "tb_wait_for succeeds once the condition holds" tb_wait_for "test -e '$TB_DIR/abc'" 1
tb_assert_fails "tb_wait_for times out" tb_wait_for false 0.3

section "cleanup"
# A child bed in its own bash process; MODE: exit (normal), fail (set -e failure), wait (until signalled).
cat >"$TB_DIR/child.sh" <<'EOF'
set -euo pipefail
source "$1"
out=$2
tb_setup
echo "$TB_A $TB_R $TB_B" >"$out.names"
echo "$TB_DIR" >"$out.dir"
tb_bg "$TB_B" sleeper sh -c 'echo sleeper started; exec sleep 600'
echo "$TB_LAST_PID" >"$out.pid"
tb_ping "$TB_A" "$TB_B_ADDR4" >/dev/null
case $3 in
    exit) exit 0 ;;
    fail) false ;;
    wait) touch "$out.ready"; wait ;;
esac
EOF

# The child command, plus OUT and MODE. TB_KEEP is unset: the checks below expect its work dir gone. (An array,
# not a function: `"${child[@]}" ... &` must make $! the child bash itself, so that signals reach it.)
child=(env -u TB_KEEP bash "$TB_DIR/child.sh" "$bed")

# child_left_nothing OUT: the child's namespaces, sleeper process and work dir are all gone.
child_left_nothing() {
    local out=$1 names ns
    read -r -a names <"$out.names" || return 1
    for ns in "${names[@]}"; do
        if tb_ns_exists "$ns"; then
            echo "namespace $ns still exists"
            return 1
        fi
    done
    if tb__alive "$(cat "$out.pid")"; then
        echo "the child's background process $(cat "$out.pid") survived"
        return 1
    fi
    if [[ -e $(cat "$out.dir") ]]; then
        echo "the child's work dir $(cat "$out.dir") survived"
        return 1
    fi
}

# child_run MODE EXPECTED_STATUS [SIGNAL]: run a child bed, signal it if asked, check its status and leftovers.
child_run() {
    local mode=$1 expected=$2 sig=${3:-} out=$TB_DIR/child-$1${3:+-$3} pid rc=0
    if [[ -n $sig ]]; then
        set -m # give the child default SIGINT handling (background jobs of a non-interactive shell ignore it)
        "${child[@]}" "$out" wait >"$out.log" 2>&1 &
        pid=$!
        set +m
        if ! tb_wait_for "test -e '$out.ready'" 20; then
            kill -TERM "$pid"
            return 1
        fi
        kill -s "$sig" "$pid"
        wait "$pid" || rc=$?
    else
        "${child[@]}" "$out" "$mode" >"$out.log" 2>&1 || rc=$?
    fi
    if [[ $rc != "$expected" ]]; then
        echo "child exited with status $rc, expected $expected"
        cat "$out.log"
        return 1
    fi
    child_left_nothing "$out"
}

tb_assert "normal exit removes everything" child_run exit 0
tb_assert "a set -e failure removes everything" child_run fail 1
tb_assert "SIGINT removes everything" child_run wait 130 INT
tb_assert "SIGTERM removes everything" child_run wait 143 TERM
tb_assert "the failure printed the child's log tails" grep -q "lines of sleeper.log" "$TB_DIR/child-fail.log"

# Two beds at once must not collide.
"${child[@]}" "$TB_DIR/par1" exit >"$TB_DIR/par1.log" 2>&1 &
p1=$!
"${child[@]}" "$TB_DIR/par2" exit >"$TB_DIR/par2.log" 2>&1 &
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
tb_assert "two concurrent beds both work" test "$rc1$rc2" = 00
tb_assert "with different namespace names" test "$(cat "$TB_DIR/par1.names")" != "$(cat "$TB_DIR/par2.names")"
tb_assert "and both leave nothing behind" child_left_nothing "$TB_DIR/par1"
tb_assert "(second one too)" child_left_nothing "$TB_DIR/par2"

# A bed whose shell was SIGKILLed cannot clean up; tb_sweep_stale removes it, and only it.
"${child[@]}" "$TB_DIR/killed" wait >"$TB_DIR/killed.log" 2>&1 &
pid=$!
tb_assert "a third child bed is up" tb_wait_for "test -e '$TB_DIR/killed.ready'" 20
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
read -r -a names <"$TB_DIR/killed.names"
tb_assert "a SIGKILLed bed leaves its namespaces" tb_ns_exists "${names[0]}"
swept=$(tb_sweep_stale)
for ns in "${names[@]}"; do
    tb_assert "tb_sweep_stale reports $ns" grep -qxF -- "$ns" <<<"$swept"
    tb_assert_fails "and removes it" tb_ns_exists "$ns"
done
tb_assert "and leaves this live bed alone" tb_ns_exists "$TB_A"
tb_assert_fails "and kills what ran inside" tb__alive "$(cat "$TB_DIR/killed.pid")"
rm -rf -- "$(cat "$TB_DIR/killed.dir")" # the killed bed's work dir (tb_sweep_stale removes namespaces only)

section "own cleanup"
names=("$TB_A" "$TB_R" "$TB_B")
tb_cleanup
for ns in "${names[@]}"; do
    tb_assert_fails "tb_cleanup deleted $ns" tb_ns_exists "$ns"
done
tb_assert "tb_cleanup is idempotent" tb_cleanup
echo
echo "test_testbed: all checks passed"
