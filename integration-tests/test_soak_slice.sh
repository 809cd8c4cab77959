#!/usr/bin/env bash
# test_soak_slice.sh: a slice of the randomized fault soak (integration-tests/soak/run) for every CI run:
# SOAK_RUNS runs (default 3) from seed SOAK_SEED (default: drawn from the clock, so that CI covers new seeds
# over time; the seeds are printed, and `integration-tests/soak/run --seed S --runs 1` replays a failing one).
# timeout: 900
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
tb_require_rackd
runs=${SOAK_RUNS:-3} base=${SOAK_SEED:-$(($(date +%s) % 1000000))} failed=0
echo "soak slice: $runs runs from seed $base"
for ((i = 0; i < runs; i++)); do
    seed=$((base + i))
    if bash "$here/soak/run-one" "$seed" >"${TMPDIR:-/tmp}/soak-slice-$$-$seed.log" 2>&1; then
        grep '^soak: seed' "${TMPDIR:-/tmp}/soak-slice-$$-$seed.log"
    else
        failed=$((failed + 1))
        echo "not ok - soak seed $seed failed; replay: integration-tests/soak/run --seed $seed --runs 1"
        tail -n 40 "${TMPDIR:-/tmp}/soak-slice-$$-$seed.log"
    fi
    rm -f "${TMPDIR:-/tmp}/soak-slice-$$-$seed.log"
done
tb_assert "every soak run of the slice passed ($failed of $runs failed)" test "$failed" = 0
