#!/usr/bin/env bash
# test_security_forged_resumption.sh: while A and B are suspended, an attacker on the path sends each of
# them a resumption with the right 4-tuple and the wrong key: a response and a confirm with made-up MACs,
# and a challenge. Neither rackd resumes; both log the rejection; the real connection resumes when the
# path returns, intact. Without the MAC checks A would resume on the forged response before the path
# returned, and this test would fail.
# timeout: 300
set -euo pipefail
here=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=testbed/netns.sh
source "$here/../testbed/netns.sh"
# shellcheck source=integration-tests/lib/attacks.sh
source "$here/lib/attacks.sh"
tb_require_rackd

attack_setup_suspended
# rackd's option: kind 253, length, ExID 5241, type, body (docs/protocol.md).
for _ in 1 2 3; do
    attack_inject --src "$ATTACK_B" --dst "$ATTACK_A" --option "fd25524104$(attack_random_hex 32)"   # response to A
    attack_inject --src "$ATTACK_A" --dst "$ATTACK_B" --option "fd15524105$(attack_random_hex 16)"   # confirm to B
    attack_inject --src "$ATTACK_B" --dst "$ATTACK_A" --option "fd15524103$(attack_random_hex 16)"   # challenge to A
    sleep 0.3
done
sleep 1
tb_assert "A rejected the forged response" racks_wait_count a "resumption rejected" 1 5
tb_assert "B rejected the forged confirm" racks_wait_count b "resumption rejected" 1 5
tb_assert "A did not resume on a forgery" test "$(racks_count a 'connection resumed')" = 0
tb_assert "B did not resume on a forgery" test "$(racks_count b 'connection resumed')" = 0
tb_assert "A is still holding its socket" test -n "$(attack_client_port 5001)"
attack_finish_and_check
