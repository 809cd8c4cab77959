#!/usr/bin/env bash
# tools/rockspeer-smoke.sh: two-namespace smoke test of the rocks test peer (tools/rockspeer.py). Root.
#
#     tools/rockspeer-smoke.sh [SIZE]        (SIZE per direction, default 20M)
#
# Creates two network namespaces joined by one veth (A 10.203.0.1/24 -- B 10.203.0.2/24; the names
# carry a per-run id), runs `rockspeer.py serve` in B and `rockspeer.py connect` in A, and moves SIZE
# bytes each way at once over a rock (EDP probe, init, heartbeats). The client then holds the
# idle connection for HOLD seconds (default 3) so that heartbeats flow, and closes. Checks:
#   * both ends detected a rock, EDP and init went through (stream offsets 76 each way, less for a DH value
#     with a leading zero byte);
#   * SHA-256 of what each end sent equals SHA-256 of what the other end received, sizes equal;
#   * heartbeats were received both ways (>= 2 each), no suspension;
#   * the advertised heartbeat and reconnection sockaddrs are in the namespaces' subnet.
# Nothing runs in the root network namespace; the namespaces (and every process in them) are
# deleted on exit by a trap, on failure too. KEEP=1 keeps the scratch directory (logs, stats).
set -euo pipefail

here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
peer=$here/rockspeer.py
size=${1:-20M}
hold=${HOLD:-3}

if [[ $(id -u) -ne 0 ]]; then
    echo "rockspeer-smoke: needs root (ip netns)" >&2
    exit 77
fi

# shellcheck source=tools/two-namespaces.sh
source "$here/two-namespaces.sh"
port=5000
two_namespaces rockspeer-smoke rsp 10.203.0.1 10.203.0.2

echo "== rockspeer smoke: $size each way between $ns_a ($addr_a) and $ns_b ($addr_b)"
ip netns exec "$ns_b" python3 "$peer" serve --listen "$addr_b:$port" --count 1 --timeout 120 \
    --send-bytes "$size" --seed 2 --ready-file "$dir/ready" \
    --stats "$dir/server.json" --trace "$dir/server.trace.jsonl" --trace-max-hex 32 --log "$dir/server.log" \
    >"$dir/server.out" &
pids+=($!)
for _ in $(seq 100); do [[ -s $dir/ready ]] && break; sleep 0.05; done
[[ -s $dir/ready ]] || { echo "rockspeer-smoke: the server did not start" >&2; exit 1; }

start=$(date +%s.%N)
client_rc=0
ip netns exec "$ns_a" python3 "$peer" connect "$addr_b:$port" --timeout 120 \
    --send-bytes "$size" --seed 1 --receive-bytes "$size" --hold "$hold" \
    --stats "$dir/client.json" --trace "$dir/client.trace.jsonl" --trace-max-hex 32 --log "$dir/client.log" \
    >"$dir/client.out" || client_rc=$?
server_rc=0
wait "${pids[0]}" || server_rc=$?
pids=()
end=$(date +%s.%N)
echo "client: $(cat "$dir/client.out")"
echo "server: $(cat "$dir/server.out")"
if ((client_rc != 0 || server_rc != 0)); then
    echo "rockspeer-smoke: FAIL (client exit $client_rc, server exit $server_rc)" >&2
    exit 1
fi

python3 - "$dir/client.json" "$dir/server.json" "$size" "$start" "$end" "$hold" <<'PY'
import json, sys
c, s = (json.load(open(p)) for p in sys.argv[1:3])
units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
size_text = sys.argv[3]
size = int(size_text[:-1]) * units[size_text[-1].upper()] if size_text[-1].upper() in units else int(size_text)
seconds = float(sys.argv[5]) - float(sys.argv[4])
failures = []
def check(what, ok):
    print("  %-62s %s" % (what, "ok" if ok else "FAIL"))
    if not ok:
        failures.append(what)
check("both ends detected a rock", c["peer_is_rock"] is True and s["peer_is_rock"] is True)
check("server answered exactly one probe", s["probes"] == 1)
# 16 + 60 with a 16-byte DH value; one byte less per leading zero byte of a side's value (about 1 in 256).
check("stream offsets: announcement + init (76 with a 16-byte DH value), each side's as the other reads it",
      c["stream_offset_sent"] == s["stream_offset_received"] and s["stream_offset_sent"] == c["stream_offset_received"]
      and all(61 <= v <= 76 for v in (c["stream_offset_sent"], s["stream_offset_sent"])))
check("client -> server: %d bytes, SHA-256 equal" % size,
      c["sent_bytes"] == s["recv_bytes"] == size and c["sent_sha256"] == s["recv_sha256"])
check("server -> client: %d bytes, SHA-256 equal" % size,
      s["sent_bytes"] == c["recv_bytes"] == size and s["sent_sha256"] == c["recv_sha256"])
check("rocks counting: app bytes = sndseq/rcvseq = size",
      c["app_bytes_sent"] == c["app_bytes_received"] == s["app_bytes_sent"] == s["app_bytes_received"] == size)
check("heartbeats client -> server received (%d sent, %d received)" % (c["heartbeats_sent"], s["heartbeats_received"]),
      s["heartbeats_received"] >= 2)
check("heartbeats server -> client received (%d sent, %d received)" % (s["heartbeats_sent"], c["heartbeats_received"]),
      c["heartbeats_received"] >= 2)
check("no suspension", c["suspensions"] == 0 and s["suspensions"] == 0)
check("sockaddrs advertised in 10.203.0.0/24",
      all(x.startswith("10.203.0.") for x in (c["local_hb_addr"], c["local_rec_addr"], s["local_hb_addr"], s["local_rec_addr"])))
check("same DH secret on both ends", c["dh_secret"] == s["dh_secret"] and len(c["bf_key"]) == 32)
print("  %.1f s in all, including the %s s hold" % (seconds, sys.argv[6]))
sys.exit(1 if failures else 0)
PY
echo "rockspeer-smoke: PASS"
