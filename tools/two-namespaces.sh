# tools/two-namespaces.sh: sourced by tools/rockspeer-smoke.sh and tools/rockspeer-outage.sh. Two network
# namespaces, A and B, joined by a veth (va in A, vb in B) with one /24 address each, and everything removed
# on exit, on failure too: the processes in $pids and in the namespaces, the namespaces, and $dir (kept with
# KEEP=1; its *.log files are shown when the script fails). Nothing touches the root namespace but the veth
# creation, which puts both ends straight into the new namespaces.

# two_namespaces NAME DEFAULT_PREFIX ADDR_A ADDR_B: sets run_id, ns_a, ns_b, addr_a, addr_b, dir, created
# and pids, installs the cleanup trap, and brings the link up. TB_NS_PREFIX overrides DEFAULT_PREFIX.
two_namespaces() {
    two_namespaces_name=$1
    run_id="${TB_NS_PREFIX:-$2}$$"
    ns_a="$run_id-a"
    ns_b="$run_id-b"
    addr_a=$3
    addr_b=$4
    dir=$(mktemp -d "/tmp/$two_namespaces_name.XXXXXX")
    created=()
    pids=()
    trap two_namespaces_cleanup EXIT INT TERM HUP
    ip netns add "$ns_a"; created+=("$ns_a")
    ip netns add "$ns_b"; created+=("$ns_b")
    ip -n "$ns_a" link add va type veth peer name vb netns "$ns_b"
    ip -n "$ns_a" addr add "$addr_a/24" dev va
    ip -n "$ns_b" addr add "$addr_b/24" dev vb
    local ns
    for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
    ip -n "$ns_a" link set va up
    ip -n "$ns_b" link set vb up
}

two_namespaces_cleanup() {
    local status=$? ns p f
    trap - EXIT INT TERM HUP
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in "${created[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || echo "$two_namespaces_name: could not delete namespace $ns" >&2
    done
    if ((status != 0)); then
        for f in "$dir"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }; done
    fi
    if [[ ${KEEP:-0} == 1 ]]; then echo "$two_namespaces_name: kept $dir" >&2; else rm -rf "$dir"; fi
    exit "$status"
}
