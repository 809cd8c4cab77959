#!/usr/bin/env bash
# test_rackctl_status.sh: `rackctl status --json` follows a managed connection through a black hole:
# healthy -> suspended -> resuming -> healthy, as B's rackd sees it, with a bidirectional transfer intact.
#
# "resuming" lasts one round trip in a plain outage, too short to poll, so the path returns in two
# steps: first A -> B only, so A's challenge reaches B and B answers (B is then resuming, waiting for
# A's confirm, which cannot come back yet), then both ways. The human table is checked too.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/racks.sh
source "$here/lib/racks.sh"
# shellcheck source=integration-tests/lib/control.sh
source "$here/lib/control.sh"
tb_require_rackd

racks_setup
# (After the bed's setup: its traps must stay, and this runs with them on every exit.)
tb_on_exit control_watch_stop
tb_xfer_start bulk "$TB_A" "$TB_B" "$TB_B_ADDR4" 5001 60M 60M --rate 2500K -- --rate 2500K
racks_wait_managed
tb_assert "A's status shows the connection healthy" control_wait_state a healthy 5
tb_assert "B's status shows the connection healthy" control_wait_state b healthy 5
control_watch b "$TB_DIR/states-b"

tb_rackctl a status | tee "$TB_DIR/table-a"
tb_assert "the table names the peer, its kind and where its packets go (the kernel: none queued)" grep -Eq "^1 +$TB_A_ADDR4:[0-9]+ +$TB_B_ADDR4:5001 +rackd +healthy +kernel " "$TB_DIR/table-a"
tb_assert "the table has the suite" grep -q "x25519-hkdf-sha256/hmac-sha256-128" "$TB_DIR/table-a"
tb_assert "the summary names the rules variant" grep -Eq "rules (native|compat) " "$TB_DIR/table-a"
tb_assert "the summary has the queue counters" grep -Eq "^queue 3939: [0-9]+ received, [0-9]+ accepted" "$TB_DIR/table-a"
json=$(tb_rackctl a status --json)
echo "$json"
tb_assert "JSON: format 1, peer kind, role, suite" python3 - "$json" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
c = s["connections"][0]
assert s["format"] == 1, s["format"]
assert c["peer_kind"] == "rackd" and c["role"] == "client", c
assert c["key_suite"] == "x25519-hkdf-sha256/hmac-sha256-128", c
assert c["resumptions"] == 0 and "suspended_since" not in c, c
assert c["packets"] == "kernel", c
assert s["daemon"]["rules"] in ("native", "compat") and s["daemon"]["queue"]["number"] == 3939, s["daemon"]
PY

sleep 2
tb_blackhole_on
tb_assert "B's status shows the connection suspended" control_wait_state b suspended 10
json=$(tb_rackctl b status --json)
tb_assert "while suspended: suspended_since is set, bytes are held, every packet is queued" python3 - "$json" <<'PY'
import datetime, json, re, sys
c = json.loads(sys.argv[1])["connections"][0]
assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["suspended_since"]), c
since = datetime.datetime.strptime(c["suspended_since"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
ago = (datetime.datetime.now(datetime.timezone.utc) - since).total_seconds()
assert 0 <= c["suspended_seconds"] < 30 and abs(ago - c["suspended_seconds"]) < 3, (c, ago)
assert c["bytes_held"] > 0, c
assert c["packets"] == "queued", c
PY
sleep 3
tb_blackhole_on b2a   # A -> B works again; B -> A still does not
tb_assert "B's status shows the connection resuming" control_wait_state b resuming 10
tb_blackhole_off
tb_assert "B's status shows the connection healthy again" control_wait_state b healthy 10
tb_wait_for "[[ \$(tail -n 1 '$TB_DIR/states-b') == healthy ]]" 5 0.05 || true  # the watcher's own poll
control_watch_stop
echo "states B reported: $(paste -sd' ' "$TB_DIR/states-b")"
# "suspect" (quiet, probes outstanding) may come between healthy and suspended.
tb_assert "B went healthy -> suspended -> resuming -> healthy" \
    grep -Eqx "healthy (suspect )?suspended resuming healthy" <<<"$(paste -sd' ' "$TB_DIR/states-b")"
# (The daemon's count: the transfer catches up at full speed after the outage and may have closed the
# connection by now.)
tb_assert "status counts one resumption" test "$(control_field b 's["daemon"]["resumptions"]')" = 1
tb_assert "60 MiB each way arrive intact (SHA-256)" tb_xfer_finish bulk 300
