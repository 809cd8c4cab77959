#!/usr/bin/env bash
# test_link_monitor_adapter.sh: LinkMonitor (Sources/RackDaemon/Kernel/LinkMonitor.swift and the decoder
# Sources/RackDaemon/Decoding/InterfaceTable.swift) against the kernel, through rackd-kernel-probe. On the
# test bed (testbed/netns.sh), with a veth of its own from A to B, it runs the monitor in A and, step by
# step, checks the events against the expected ones and the monitor's view against `ip addr`: the initial
# dump; a no-op link change; link down, down again, up; address removal and addition; an IPv6 address
# through DAD (tentative first); carrier loss and return; loopback and link-local addresses and a lifetime
# change (no events); routes added and replaced (ROUTES lines, no address events); down/up with
# keep_addr_on_down; link deletion; lost notifications (ENOBUFS) and the re-dump. The bed's own link in A (a-r) is never touched, so its addresses stay usable throughout.
# Needs root and a Swift toolchain; touches nothing outside its own namespaces.
# timeout: 900
set -euo pipefail
export LC_ALL=C

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/probe.sh
source "$here/lib/probe.sh"

if ((EUID != 0)); then
    tb_skip "needs root (network namespaces)"
fi
if ! command -v swift >/dev/null || ! command -v python3 >/dev/null; then
    tb_skip "needs swift and python3"
fi

failures=0
section() { printf '\n== %s\n' "$*"; }
pass() { printf 'ok   %s\n' "$*"; }
fail() {
    printf 'FAIL %s\n' "$*"
    failures=$((failures + 1))
}

# MARK: test bed and probe

section "test bed"
tb_setup
A=$TB_A
B=$TB_B
work=$TB_DIR

section "build the probe"
probe_build 'Kernel/LinkMonitor|Decoding/Interface[A-Za-z]*|Decoding/Netlink[A-Za-z]*|Decoding/RouteMessage|System/NetlinkSocket[+A-Za-z]*'
H=$PROBE

# MARK: topology

section "a link of its own in $A"
ip -n "$A" link add va type veth peer name vb netns "$B"
ip -n "$A" addr add 10.78.0.1/24 dev va
ip -n "$A" addr add fd00:78::1/64 dev va nodad
ip -n "$A" addr add fd00:78::11/64 dev va
ip -n "$A" link set va up
ip -n "$B" link set vb up
# a second link, down from the start (its peer, in A too, is up): its address is not usable yet
ip -n "$A" link add d0 type veth peer name d1
ip -n "$A" link set d1 up
ip -n "$A" addr add 10.79.0.1/24 dev d0
# the bed's own addresses in A, usable throughout
bed="$TB_A_ADDR4 $TB_A_ADDR6"

# kernel_state: the usable addresses as the kernel has them: global scope, not tentative or dadfailed,
# on links that are UP and RUNNING (operstate up or unknown), loopback excepted. Sorted, one line.
kernel_state() {
    tb_exec "$A" python3 - <<'EOF'
import json, subprocess
links = json.loads(subprocess.check_output(["ip", "-j", "addr", "show"]))
out = []
for link in links:
    flags = link.get("flags", [])
    if "UP" not in flags or "LOOPBACK" in flags or link.get("operstate") not in ("UP", "UNKNOWN"):
        continue
    for a in link.get("addr_info", []):
        if a.get("scope") != "global" or a.get("tentative") or a.get("dadfailed"):
            continue
        out.append(a["local"])
print(" ".join(sorted(out)))
EOF
}

# wait for DAD of fd00:78::11, so that the initial dump sees it usable
for _ in $(seq 100); do
    [[ $(kernel_state) == *fd00:78::11* ]] && break
    sleep 0.1
done

# monitor_state: the monitor's last STATE (or INITIAL) line, sorted.
monitor_state() {
    grep -E '^(INITIAL|STATE)' "$events" | tail -n 1 | cut -d' ' -f2- | tr ' ' '\n' | sed '/^$/d' | sort |
        paste -sd' '
}

# take_events: sets `got` to the LOST/AVAILABLE lines since the last call, as "KIND addr" items, sorted and
# comma-separated (empty for none).
seen=0
got=""
take_events() {
    local total
    total=$(wc -l <"$events")
    got=$(sed -n "$((seen + 1)),${total}p" "$events" | grep -E '^(LOST|AVAILABLE)' |
        awk '{for (i = 2; i <= NF; i++) print $1, $i}' | sort | paste -sd',' || true)
    seen=$total
}

# step NAME EXPECTED WAIT COMMAND...: run COMMAND in A, wait WAIT seconds, check that the events since the
# last step are EXPECTED ("KIND addr" items, comma-separated, sorted; empty for none) and that the monitor's
# addresses equal the kernel's.
step() {
    local name=$1 expected=$2 wait=$3 mine theirs
    shift 3
    "$@"
    sleep "$wait"
    take_events
    if [[ $got == "$expected" ]]; then pass "$name: events [$got]"; else fail "$name: events [$got], expected [$expected]"; fi
    mine=$(monitor_state)
    theirs=$(kernel_state)
    if [[ $mine == "$theirs" ]]; then pass "$name: monitor state = kernel state [$mine]"; else
        fail "$name: monitor state [$mine], kernel state [$theirs]"
    fi
}

inA() { ip -n "$A" "$@"; }
inB() { ip -n "$B" "$@"; }
nothing() { :; }

# MARK: tests

section "initial dump"
events=$work/monitor.log
tb_bg "$A" monitor "$H" links "$work/stop"
tb_wait_for "grep -q INITIAL '$events'" 10 || true
initial=$(monitor_state)
expected=$(tr ' ' '\n' <<<"$bed 10.78.0.1 fd00:78::1 fd00:78::11" | sort | paste -sd' ')
if [[ $initial == "$expected" ]]; then pass "initial addresses [$initial]"; else
    fail "initial addresses [$initial], expected [$expected]"
fi
seen=$(wc -l <"$events")

section "link changes"
step "mtu change (no-op NEWLINK)" "" 1 inA link set va mtu 1400
step "link down" "LOST 10.78.0.1,LOST fd00:78::1,LOST fd00:78::11" 1 inA link set va down
step "link down again" "" 1 inA link set va down
# IPv6 addresses go with the link (keep_addr_on_down=0, the default); the IPv4 one comes back.
step "link up" "AVAILABLE 10.78.0.1" 2 inA link set va up
step "second link up (comes up with its address)" "AVAILABLE 10.79.0.1" 2 inA link set d0 up
step "second link down" "LOST 10.79.0.1" 1 inA link set d0 down

section "address changes"
step "IPv4 address removed" "LOST 10.78.0.1" 1 inA addr del 10.78.0.1/24 dev va
step "IPv4 address added" "AVAILABLE 10.78.0.5" 1 inA addr add 10.78.0.5/24 dev va
inA addr add fd00:78::5/64 dev va
if inA -6 addr show dev va tentative | tb_grep fd00:78::5; then
    pass "fd00:78::5 starts tentative (DAD)"
else
    fail "fd00:78::5 starts tentative (DAD)"
fi
sleep 0.2
take_events
if [[ -z $got ]]; then pass "tentative address: no event yet"; else fail "tentative address: events [$got]"; fi
step "the same address after DAD" "AVAILABLE fd00:78::5" 3 nothing
step "lifetime change (no-op NEWADDR)" "" 1 inA addr change 10.78.0.5/24 dev va valid_lft 1000 preferred_lft 500
step "loopback address" "" 1 inA addr add 127.0.0.2/8 dev lo
step "IPv6 link-local address" "" 1 inA addr add fe80::1234/64 dev va
step "address on a down link" "" 1 inA addr add 10.79.0.2/24 dev d0

section "routes"
# A route added is reported per family (RTM_NEWROUTE): held connections try again at once on it.
# route_step NAME FAMILY COMMAND...: run COMMAND in A; a "ROUTES" line naming FAMILY must follow within 2 s.
route_step() {
    local name=$1 family=$2 before
    shift 2
    before=$(grep -c "^ROUTES.*$family" "$events" || true)
    "$@"
    if tb_wait_for "test \$(grep -c '^ROUTES.*$family' '$events') -gt $before" 2 0.05; then
        pass "$name: ROUTES $family"
    else
        fail "$name: no ROUTES $family line"
    fi
}
route_step "IPv4 route added" ipv4 inA route add 198.51.100.0/24 via 10.78.0.2 dev va
route_step "IPv6 route added" ipv6 inA -6 route add 2001:db8:1::/48 via fd00:78::2 dev va
route_step "IPv4 route replaced" ipv4 inA route replace 198.51.100.0/24 via 10.78.0.3 dev va
inA route del 198.51.100.0/24
inA -6 route del 2001:db8:1::/48
take_events
if [[ -z $got ]]; then pass "routes: no address events"; else fail "routes: address events [$got]"; fi

section "carrier"
step "carrier lost (peer down)" "LOST 10.78.0.5,LOST fd00:78::5" 1 inB link set vb down
step "carrier back" "AVAILABLE 10.78.0.5,AVAILABLE fd00:78::5" 3 inB link set vb up

section "keep_addr_on_down"
# The kernel keeps the IPv6 addresses, marks them tentative without a notification, and runs DAD again on
# up: the monitor must not report them before DAD is done.
tb_exec "$A" sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.va.keep_addr_on_down=1
step "link down, IPv6 address kept" "LOST 10.78.0.5,LOST fd00:78::5" 1 inA link set va down
inA link set va up
ahead=""
for _ in $(seq 40); do
    mine=$(monitor_state)
    theirs=" $(kernel_state) "
    for address in $mine; do [[ $theirs == *" $address "* ]] || ahead+=" $address"; done
    sleep 0.1
done
if [[ -z $ahead ]]; then pass "link up: no address reported before the kernel has it usable"; else
    fail "link up: reported before usable:$ahead"
fi
step "link up, then DAD done" "AVAILABLE 10.78.0.5,AVAILABLE fd00:78::5" 1 nothing

section "link deleted"
inA addr add 10.80.0.1/24 dev va
sleep 1
take_events
step "veth deleted" "LOST 10.78.0.5,LOST 10.80.0.1,LOST fd00:78::5" 1 inA link del va

touch "$work/stop"
tb_wait_bg monitor 10 || fail "the monitor exits cleanly"
if grep -q '^RESYNCS 0$' "$events"; then pass "no ENOBUFS in the normal run"; else fail "unexpected resyncs"; fi
if grep -q ERROR "$events"; then fail "monitor error: $(grep ERROR "$events")"; fi

section "lost notifications (ENOBUFS)"
ip -n "$A" link add va type veth peer name vb netns "$B"
inA addr add 10.78.0.1/24 dev va
inA link set va up
inB link set vb up
sleep 2
rm -f "$work/stop"
# A minimal receive buffer and a 3 s pause before the first read: 250 notifications overflow it.
events=$work/monitor2.log
tb_bg "$A" monitor2 "$H" links "$work/stop" 1 3
tb_wait_for "grep -q INITIAL '$events'" 10 || true
seen=$(wc -l <"$events")
for i in $(seq 1 250); do echo "addr add 10.81.$((i / 200)).$((i % 200 + 1))/32 dev va"; done >"$work/batch"
inA -batch "$work/batch"
inA addr del 10.78.0.1/24 dev va
sleep 5
take_events
lost=$(tr ',' '\n' <<<"$got" | grep -c '^LOST' || true)
available=$(tr ',' '\n' <<<"$got" | grep -c '^AVAILABLE' || true)
if [[ $lost == 1 && $available == 250 ]]; then pass "after the overflow: 1 lost, 250 available"; else
    fail "after the overflow: $lost lost, $available available"
fi
touch "$work/stop"
tb_wait_bg monitor2 10 || fail "the monitor exits cleanly"
if grep -Eq '^RESYNCS [1-9]' "$events"; then pass "the monitor re-dumped ($(grep RESYNCS "$events"))"; else
    fail "the overflow did not cause a re-dump ($(grep RESYNCS "$events"))"
fi
mine=$(monitor_state)
theirs=$(kernel_state)
if [[ $mine == "$theirs" ]]; then pass "monitor state = kernel state (251 addresses and the bed's own)"; else
    fail "monitor state differs from the kernel's after the re-dump"
fi

section "result"
if ((failures)); then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all checks passed"
