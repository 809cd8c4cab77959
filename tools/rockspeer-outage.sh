#!/usr/bin/env bash
# tools/rockspeer-outage.sh: rockspeer to rockspeer through real outages, in two network namespaces. Root.
#
#     tools/rockspeer-outage.sh [SIZE]        (SIZE per direction, default 20M)
#
# Two network namespaces joined by one veth (A 10.204.0.1/24 -- B 10.204.0.2/24; the names carry a
# per-run id). `rockspeer.py serve` runs in B, `rockspeer.py connect` in A, at rocks' own timing (1 s
# heartbeats, 15 misses), and SIZE bytes go each way at once, paced (64 KiB every 50 ms) so that the
# transfer spans the failures:
#   1. A's link goes down for LINKDOWN seconds (10; `ip link set va down` in A): A suspends at once
#      (its heartbeat sendto fails), B when its retransmission meets A's RST or after 15 missed beats;
#   2. once both recovered and data flowed for SETTLE seconds (3): a black hole for BLACKHOLE seconds
#      (25; nftables drops everything arriving on the veth, in both namespaces): both suspend after 15
#      missed heartbeats, their RSTs and 1of2 SYNs are lost until it lifts;
#   3. then (IPCHANGE=1, the default; 0 skips it) A's address changes from 10.204.0.1 to 10.204.0.3:
#      A suspends at once, B after 15 missed beats; A reconnects from its new address.
# Checks: each end suspended and recovered once per failure, for the reason rocks would; SHA-256 of
# what each end sent equals SHA-256 of what the other received, sizes equal; heartbeats stopped while
# suspended; after the address change A's new heartbeat and reconnection addresses carry 10.204.0.3.
# Prints the time from each path's return to both ends recovered. rackd is not involved.
# Nothing runs in the root network namespace (only `ip netns add/del`; everything else is `ip -n` or
# `ip netns exec`); the namespaces and their processes are deleted on exit by a trap, on failure too.
# KEEP=1 keeps the scratch directory (logs, traces, stats).
set -euo pipefail

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
peer=$here/rockspeer.py
size=${1:-20M}
linkdown=${LINKDOWN:-10}
blackhole=${BLACKHOLE:-25}
settle=${SETTLE:-3}
ipchange=${IPCHANGE:-1}

if [[ $(id -u) -ne 0 ]]; then
    echo "rockspeer-outage: needs root (ip netns)" >&2
    exit 77
fi
command -v nft >/dev/null || { echo "rockspeer-outage: needs nft" >&2; exit 77; }

# shellcheck source=tools/two-namespaces.sh
source "$here/two-namespaces.sh"
addr_a2=10.204.0.3
port=5000
two_namespaces rockspeer-outage rso 10.204.0.1 10.204.0.2

now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
# recovered FILE: how many recoveries FILE (a trace) records so far
recovered() { grep -c '"event": "recovered"' "$1" 2>/dev/null || true; }
# wait_recovered N LIMIT: until both ends recorded N recoveries, at most LIMIT seconds
wait_recovered() {
    local n=$1 limit=$2 end
    end=$(($(date +%s) + limit))
    while (($(date +%s) < end)); do
        if (($(recovered "$dir/client.trace.jsonl") >= n && $(recovered "$dir/server.trace.jsonl") >= n)); then
            return 0
        fi
        sleep 0.1
    done
    echo "rockspeer-outage: no recovery number $n within $limit s" >&2
    return 1
}
black_hole() {   # on | off
    local ns dev
    for ns in "$ns_a" "$ns_b"; do
        dev=va; [[ $ns == "$ns_b" ]] && dev=vb
        if [[ $1 == on ]]; then
            ip netns exec "$ns" nft -f - <<EOF
table inet rso_fault {
    chain input { type filter hook input priority filter - 10; policy accept; iifname "$dev" drop; }
}
EOF
        else
            ip netns exec "$ns" nft delete table inet rso_fault
        fi
    done
}

echo "== rockspeer outage: $size each way between $ns_a ($addr_a) and $ns_b ($addr_b)"
pace=(--chunk 64K --interval 0.05)
ip netns exec "$ns_b" python3 "$peer" serve --listen "$addr_b:$port" --count 1 --timeout 400 \
    --send-bytes "$size" --seed 2 "${pace[@]}" --ready-file "$dir/ready" \
    --stats "$dir/server.json" --trace "$dir/server.trace.jsonl" --trace-max-hex 32 --log "$dir/server.log" \
    >"$dir/server.out" &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/ready ]] && break; sleep 0.05; done
[[ -s $dir/ready ]] || { echo "rockspeer-outage: the server did not start" >&2; exit 1; }

start=$(now)
ip netns exec "$ns_a" python3 "$peer" connect "$addr_b:$port" --timeout 400 \
    --send-bytes "$size" --seed 1 "${pace[@]}" --receive-bytes "$size" --hold 2 \
    --stats "$dir/client.json" --trace "$dir/client.trace.jsonl" --trace-max-hex 32 --log "$dir/client.log" \
    >"$dir/client.out" &
pids+=($!)
client_pid=$!
timings=()

sleep 3
echo "-- $(elapsed "$start" "$(now)") s: A's link down for $linkdown s"
ip -n "$ns_a" link set va down
sleep "$linkdown"
ip -n "$ns_a" link set va up
back=$(now)
echo "-- $(elapsed "$start" "$back") s: A's link up"
wait_recovered 1 60
timings+=("link down $linkdown s: $(elapsed "$back" "$(now)") s from link up to both recovered")
echo "-- ${timings[-1]}"

sleep "$settle"
echo "-- $(elapsed "$start" "$(now)") s: black hole for $blackhole s"
black_hole on
sleep "$blackhole"
black_hole off
back=$(now)
echo "-- $(elapsed "$start" "$back") s: black hole lifted"
wait_recovered 2 60
timings+=("black hole $blackhole s: $(elapsed "$back" "$(now)") s from the lift to both recovered")
echo "-- ${timings[-1]}"

phases=2
if [[ $ipchange == 1 ]]; then
    sleep "$settle"
    echo "-- $(elapsed "$start" "$(now)") s: A moves from $addr_a to $addr_a2"
    # Deleting first: deleting a subnet's primary address would take a secondary one with it.
    ip -n "$ns_a" addr del "$addr_a/24" dev va
    ip -n "$ns_a" addr add "$addr_a2/24" dev va
    back=$(now)
    wait_recovered 3 60
    timings+=("address change: $(elapsed "$back" "$(now)") s from the change to both recovered (B needs 15 missed beats)")
    echo "-- ${timings[-1]}"
    phases=3
fi

client_rc=0
wait "$client_pid" || client_rc=$?
server_rc=0
wait "${pids[0]}" || server_rc=$?
pids=()
end=$(now)
echo "client: $(cat "$dir/client.out")"
echo "server: $(cat "$dir/server.out")"
if ((client_rc != 0 || server_rc != 0)); then
    echo "rockspeer-outage: FAIL (client exit $client_rc, server exit $server_rc)" >&2
    exit 1
fi

python3 - "$dir" "$size" "$phases" "$(elapsed "$start" "$end")" "$addr_a2" <<'PY'
import json, os, re, sys
d, size_text, phases, seconds, moved = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
c, s = (json.load(open(os.path.join(d, n))) for n in ("client.json", "server.json"))
traces = {n: [json.loads(l) for l in open(os.path.join(d, n + ".trace.jsonl"))] for n in ("client", "server")}
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
size = int(size_text[:-1]) * units[size_text[-1].upper()] if size_text[-1].upper() in units else int(size_text)
failures = []
def check(what, ok):
    print("  %-78s %s" % (what, "ok" if ok else "FAIL"))
    if not ok:
        failures.append(what)
check("client -> server: %d bytes, SHA-256 equal" % size,
      c["sent_bytes"] == s["recv_bytes"] == size and c["sent_sha256"] == s["recv_sha256"])
check("server -> client: %d bytes, SHA-256 equal" % size,
      s["sent_bytes"] == c["recv_bytes"] == size and s["sent_sha256"] == c["recv_sha256"])
for name, st in (("client", c), ("server", s)):
    check("%s: %d suspensions, %d recoveries, no authentication failure" % (name, phases, phases),
          st["suspensions"] == phases and st["recoveries"] == phases and st["auth_failures"] == 0)
    for ev in st["suspension_events"]:
        print("      %s suspended at %7.1f s: %s" % (name, ev["t"], ev["reason"]))
    for r in st["reconnections"]:
        print("      %s reconnected by its %s connection %s -> %s after %d connect attempts (%d refused, %d timed out),"
              " resent %s bytes from %s" % (name, r["pick"], r["local"], r["peer"], r["attempts"], r["refused"],
                                             r["timeouts"], r.get("resent_bytes"), r.get("resent_from")))
    t = traces[name]
    quiet = True
    for sus in (e for e in t if e["event"] == "suspend"):
        rec = next((e for e in t if e["event"] == "recovered" and e["t"] > sus["t"]), None)
        if rec is None or any(e["event"] == "sendto" and sus["t"] <= e["t"] < rec["t"] for e in t):
            quiet = False
    check("%s: no heartbeat while suspended, heartbeats after each recovery" % name, quiet)
creasons = [e["reason"] for e in c["suspension_events"]]
sreasons = [e["reason"] for e in s["suspension_events"]]
check("link down: A suspends at once (heartbeat sendto fails)", bool(creasons) and "sendto" in creasons[0])
check("black hole: both suspend after 15 missed heartbeats",
      len(creasons) > 1 and creasons[1] == sreasons[1] == "15 missed heartbeats")
if phases == 3:
    check("address change: A suspends at once, B after 15 missed heartbeats",
          "sendto" in creasons[2] and sreasons[2] == "15 missed heartbeats")
    last = c["reconnections"][-1]
    check("address change: A reconnects from %s, its new addresses carry it" % moved,
          all(last[k].startswith(moved + ":") for k in ("local", "local_hb_addr", "local_rec_addr"))
          and s["reconnections"][-1]["peer"].startswith(moved + ":"))
print("  %s s in all" % seconds)
sys.exit(1 if failures else 0)
PY
printf '  %s\n' "${timings[@]}"
echo "rockspeer-outage: PASS"
