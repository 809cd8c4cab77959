# shellcheck shell=bash disable=SC2119,SC2120
# testbed/netns.sh: the network-namespace test bed for rackd (docs/architecture.md, "Tests"). Source it from
# bash; don't run it.
#
#     source "$REPO/testbed/netns.sh"
#     tb_setup                  # namespaces A, R, B; cleanup trap installed
#     tb_xfer t1 "$TB_A" "$TB_B" "$TB_B_ADDR4" 5000 20M 20M
#
# Topology (one run; every name carries a per-run id, so concurrent runs never collide):
#
#     A ($TB_A)                      R ($TB_R, forwarding)                        B ($TB_B)
#     a-r 10.1.0.2/24 fd00:1::2/64 -- r-a 10.1.0.1 fd00:1::1 | r-b 10.2.0.1 fd00:2::1 -- b-r 10.2.0.2/24 fd00:2::2/64
#
# tb_move_a N renumbers the A-R link to 10.N.0.0/24 and fd00:N::/64 (A .2/::2, R .1/::1): A joins another network.
#
# Safety: nothing here writes to the root network namespace. Namespaces are created with `ip netns add`,
# veth pairs are created inside them (`ip -n NS link add ... peer ... netns OTHER`), and addresses,
# routes, sysctls and nftables rules are only ever set inside them. The only root-namespace access is
# the read-only tb_assert_root_clean.
#
# Cleanup: tb_setup installs traps on EXIT, INT, TERM and HUP that run tb_cleanup (kill the bed's
# processes, delete the namespaces, remove $TB_DIR). Callers must not replace these traps; register
# extra cleanup with tb_on_exit instead. On a non-zero exit the tails of $TB_DIR/*.log go to stderr.
#
# Environment knobs:
#   TB_KEEP=1          keep $TB_DIR after cleanup (namespaces are always deleted)
#   TB_NS_PREFIX=rk    first letters of every namespace name (the test runner sets one per test)
#   TB_LOG_TAIL=20     log lines shown per file when a run fails (0: none)
#   RACKD_BIN          the rackd binary (default: <repo>/.build/debug/rackd)
#   TB_RACKD_START_TIMEOUT=10  seconds tb_start_rackd waits for rackd's table
#
# Conventions: every function prints its errors to stderr prefixed "testbed:" and returns non-zero;
# functions whose names start with tb__ are internal.
#
# Functions (each is documented where it is defined):
#   bed        tb_setup [--delay MS] | tb_cleanup [STATUS] | tb_on_exit CMD... | tb_sweep PREFIX | tb_sweep_stale
#              tb_ns_exists NS
#   processes  tb_exec NS CMD... | tb_bg NS NAME CMD... | tb_pid NAME | tb_wait_bg NAME [TIMEOUT_S]
#              tb_wait_for CONDITION TIMEOUT_S [INTERVAL_S] | tb_wait_port NS PORT [TIMEOUT_S]
#   traffic    tb_ping NS ADDR [COUNT] [TIMEOUT_S] | tb_xfer NAME CLIENT_NS SERVER_NS ADDR PORT C2S S2C [OPT...] [-- OPT...]
#              tb_xfer_start (same arguments) | tb_xfer_finish NAME [TIMEOUT_S]
#              tb_check_xfer CLIENT_JSON SERVER_JSON [C2S S2C] | tb_json FILE KEY | tb_sha256 FILE
#   faults     tb_blackhole_on [both|a2b|b2a] | tb_blackhole_off | tb_link_down_a | tb_link_up_a
#              tb_replace_addr_a NEW4 [NEW6] | tb_move_a [--make-before-break] NET4_INDEX
#   rackd      tb_rackd_bin [--prefer-release] | tb_require_rackd | tb_start_rackd NS NAME [ARG...] | tb_rackctl NAME ARG...
#              tb_stop_rackd NS NAME [SIGNAL] | tb_rackd_pid NAME | tb_has_rackd_table NS | tb_assert_root_clean
#   tests      tb_assert DESCRIPTION CMD... | tb_assert_fails DESCRIPTION CMD... | tb_skip MESSAGE...

if [[ -z ${BASH_VERSION:-} ]]; then
    echo "testbed/netns.sh: needs bash" >&2
    # shellcheck disable=SC2317
    return 1 2>/dev/null || exit 1
fi

# The repository root: the directory that holds testbed/ (symlinks resolved).
TB_REPO=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
TB_TOOLS=$TB_REPO/tools
export TB_REPO TB_TOOLS

# Fixed per-namespace names and addresses; only the namespace names are unique per run.
TB_A_IF=a-r
TB_R_A_IF=r-a
TB_R_B_IF=r-b
TB_B_IF=b-r
TB_R_A_ADDR4=10.1.0.1
TB_R_A_ADDR6=fd00:1::1
TB_R_B_ADDR4=10.2.0.1
TB_R_B_ADDR6=fd00:2::1
TB_A_ADDR4=10.1.0.2
TB_A_ADDR6=fd00:1::2
TB_B_ADDR4=10.2.0.2
TB_B_ADDR6=fd00:2::2
export TB_A_IF TB_R_A_IF TB_R_B_IF TB_B_IF TB_R_A_ADDR4 TB_R_A_ADDR6 TB_R_B_ADDR4 TB_R_B_ADDR6
export TB_A_ADDR4 TB_A_ADDR6 TB_B_ADDR4 TB_B_ADDR6

# Per-shell state (deliberately not exported).
tb__state=""        # "up" once tb_setup ran in this shell, "down" after tb_cleanup
tb__owner=""        # $BASHPID of the shell that ran tb_setup (subshells must not clean up)
tb__namespaces=()   # namespaces this run created, in creation order
tb__pids=()         # pids started by tb_bg in this shell
tb__exit_cmds=()    # commands registered with tb_on_exit

# ---------------------------------------------------------------------------------------------------
# Messages and small helpers

# tb__err MSG...: print an error to stderr.
tb__err() { printf 'testbed: error: %s\n' "$*" >&2; }

# tb__note MSG...: print a progress note to stderr.
tb__note() { printf 'testbed: %s\n' "$*" >&2; }

# tb__run CMD...: run CMD quietly; on failure print it with its output and return its status.
tb__run() {
    local out rc=0
    out=$("$@" 2>&1) || rc=$?
    if ((rc != 0)); then
        tb__err "'$*' failed (status $rc)${out:+: $out}"
        return "$rc"
    fi
}

# tb__need_ns NS FUNC: fail unless NS names an existing namespace.
tb__need_ns() {
    if [[ -z ${1:-} ]]; then
        tb__err "$2: missing namespace argument"
        return 1
    fi
    if ! tb_ns_exists "$1"; then
        tb__err "$2: no network namespace named '$1'"
        return 1
    fi
}

# tb__ns_list: print the names of all named network namespaces, one per line.
tb__ns_list() { ip netns list 2>/dev/null | awk '{print $1}'; }

# tb_ns_exists NS: true if the named network namespace exists.
tb_ns_exists() {
    local names
    names=$(tb__ns_list)
    grep -qxF -- "$1" <<<"$names"
}

# tb__now_us: print the wall clock in microseconds.
tb__now_us() { local t=${EPOCHREALTIME//[.,]/}; echo "$((10#$t))"; }

# tb__secs_to_us SECONDS: print SECONDS (may be fractional, e.g. 2.5) in microseconds.
tb__secs_to_us() {
    local whole=${1%%.*} frac=""
    [[ $1 == *.* ]] && frac=${1#*.}
    frac=${frac}000000
    echo "$((10#${whole:-0} * 1000000 + 10#${frac:0:6}))"
}

# tb__alive PID: true if PID exists and is not a zombie.
tb__alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# tb__ppid PID: print the parent pid of PID (fails if PID is gone).
tb__ppid() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    stat=${stat#* }
    echo "${stat%% *}"
}

# tb__terminate PID...: SIGTERM the pids, SIGKILL what is left after 3 s, wait up to 2 s more.
tb__terminate() {
    (($#)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    if tb_wait_for "tb__none_alive $*" 3 0.05; then
        return 0
    fi
    kill -KILL "$@" 2>/dev/null || true
    if ! tb_wait_for "tb__none_alive $*" 2 0.05; then
        tb__err "processes survived SIGKILL: $*"
        return 1
    fi
}

# tb__none_alive PID...: true if none of the pids is alive.
tb__none_alive() {
    local p
    for p; do tb__alive "$p" && return 1; done
    return 0
}

# tb__teardown NS...: kill every process inside the namespaces, then delete them. Missing ones are skipped.
tb__teardown() {
    local ns p pids=() existing=() rc=0
    for ns; do
        tb_ns_exists "$ns" || continue
        existing+=("$ns")
        while read -r p; do [[ -n $p ]] && pids+=("$p"); done < <(ip netns pids "$ns" 2>/dev/null)
    done
    tb__terminate "${pids[@]}" || rc=1
    for ns in "${existing[@]}"; do
        tb__run ip netns del "$ns" || rc=1
    done
    return "$rc"
}

# ---------------------------------------------------------------------------------------------------
# Setup and cleanup

# tb_setup [--delay MS]: create A, R, B with veths, v4+v6 addresses and routes, $TB_DIR, and the cleanup traps.
# --delay MS adds MS of netem delay in R on each direction (RTT + 2*MS); ignored with a warning without sch_netem.
tb_setup() {
    local delay_ms=0 cmd
    while (($#)); do
        case $1 in
            --delay)
                if [[ ! ${2:-} =~ ^[0-9]+$ ]]; then
                    tb__err "tb_setup: --delay needs a whole number of milliseconds"
                    return 1
                fi
                delay_ms=$2
                shift 2
                ;;
            *)
                tb__err "tb_setup: unknown argument '$1' (usage: tb_setup [--delay MS])"
                return 1
                ;;
        esac
    done
    if ((EUID != 0)); then
        tb__err "tb_setup: must run as root (it creates network namespaces)"
        return 1
    fi
    if [[ $tb__state == up && $tb__owner == "$BASHPID" ]]; then
        tb__err "tb_setup: this shell already has a test bed ($TB_A, $TB_R, $TB_B)"
        return 1
    fi
    for cmd in ip nft tc ss python3 awk nsenter; do
        if ! command -v "$cmd" >/dev/null; then
            tb__err "tb_setup: '$cmd' is not installed"
            return 1
        fi
    done

    tb__namespaces=() tb__pids=() tb__exit_cmds=()
    TB_A="" TB_R="" TB_B="" TB_DELAY_MS=0
    TB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/rackd-tb.XXXXXX") || {
        tb__err "tb_setup: mktemp failed"
        return 1
    }
    export TB_DIR TB_A TB_R TB_B TB_DELAY_MS
    tb__state=up tb__owner=$BASHPID
    trap 'tb__exit_trap' EXIT
    trap 'tb__signal_trap INT 130' INT
    trap 'tb__signal_trap TERM 143' TERM
    trap 'tb__signal_trap HUP 129' HUP

    if ! tb__build "$delay_ms"; then
        tb__err "tb_setup failed; tearing down what was made"
        tb_cleanup 1
        return 1
    fi
    tb__note "up: A=$TB_A R=$TB_R B=$TB_B dir=$TB_DIR$( ((TB_DELAY_MS > 0)) && echo " delay=${TB_DELAY_MS}ms")"
}

# tb__build DELAY_MS: create the namespaces, links, addresses and routes (called by tb_setup).
tb__build() {
    local delay_ms=$1 base="" out="" try
    for try in 1 2 3 4 5 6 7 8; do
        base=${TB_NS_PREFIX:-rk}${BASHPID}x$(printf '%04x' "$RANDOM")
        if out=$(ip netns add "$base-a" 2>&1); then
            break
        fi
        base=""
    done
    if [[ -z $base ]]; then
        tb__err "cannot create a network namespace ($try tries): $out"
        return 1
    fi
    TB_A=$base-a TB_R=$base-r TB_B=$base-b
    tb__namespaces=("$TB_A")
    tb__run ip netns add "$TB_R" || return 1
    tb__namespaces+=("$TB_R")
    tb__run ip netns add "$TB_B" || return 1
    tb__namespaces+=("$TB_B")

    tb__run ip -n "$TB_A" link add "$TB_A_IF" type veth peer name "$TB_R_A_IF" netns "$TB_R" || return 1
    tb__run ip -n "$TB_R" link add "$TB_R_B_IF" type veth peer name "$TB_B_IF" netns "$TB_B" || return 1
    tb__sysctl "$TB_R" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || return 1

    tb__config_if "$TB_R" "$TB_R_A_IF" "$TB_R_A_ADDR4" "$TB_R_A_ADDR6" || return 1
    tb__config_if "$TB_R" "$TB_R_B_IF" "$TB_R_B_ADDR4" "$TB_R_B_ADDR6" || return 1
    tb__config_if "$TB_A" "$TB_A_IF" "$TB_A_ADDR4" "$TB_A_ADDR6" "$TB_R_A_ADDR4" "$TB_R_A_ADDR6" || return 1
    tb__config_if "$TB_B" "$TB_B_IF" "$TB_B_ADDR4" "$TB_B_ADDR6" "$TB_R_B_ADDR4" "$TB_R_B_ADDR6" || return 1

    if ((delay_ms > 0)); then
        if tc -n "$TB_R" qdisc add dev "$TB_R_A_IF" root netem delay "${delay_ms}ms" limit 100000 2>/dev/null &&
            tc -n "$TB_R" qdisc add dev "$TB_R_B_IF" root netem delay "${delay_ms}ms" limit 100000 2>/dev/null; then
            TB_DELAY_MS=$delay_ms
        else
            tc -n "$TB_R" qdisc del dev "$TB_R_A_IF" root 2>/dev/null || true
            tb__note "warning: netem (sch_netem) is not available here; --delay $delay_ms ignored"
        fi
    fi
}

# tb__sysctl NS KEY=VALUE...: set sysctls inside NS through /proc/sys (no procps needed). Keys must not contain '/'.
tb__sysctl() {
    local ns=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner sh
    tb__run ip netns exec "$ns" sh -c 'for kv; do printf %s "${kv#*=}" >"/proc/sys/$(echo "${kv%%=*}" | tr . /)" || exit; done' \
        tb__sysctl "$@"
}

# tb__config_if NS IF ADDR4 ADDR6 [GW4 GW6]: (re)apply addresses (/24, /64 nodad), lo+IF up, default routes. Idempotent.
tb__config_if() {
    local ns=$1 ifc=$2 a4=$3 a6=$4 gw4=${5:-} gw6=${6:-}
    tb__sysctl "$ns" "net.ipv6.conf.$ifc.accept_dad=0" || return 1
    tb__run ip -n "$ns" link set lo up || return 1
    tb__run ip -n "$ns" addr replace "$a4/24" dev "$ifc" || return 1
    tb__run ip -n "$ns" -6 addr replace "$a6/64" dev "$ifc" nodad || return 1
    tb__run ip -n "$ns" link set "$ifc" up || return 1
    if [[ -n $gw4 ]]; then
        tb__run ip -n "$ns" route replace default via "$gw4" dev "$ifc" || return 1
        tb__run ip -n "$ns" -6 route replace default via "$gw6" dev "$ifc" || return 1
    fi
}

# tb_on_exit CMD...: register CMD (evaluated as a string) to run at cleanup, before the namespaces go; last in, first out.
tb_on_exit() { tb__exit_cmds+=("$*"); }

# tb__exit_trap: the EXIT trap: clean up and keep the script's exit status.
tb__exit_trap() {
    local rc=$?
    set +e
    ((rc == 0)) || tb__note "exiting with status $rc; cleaning up"
    tb_cleanup "$rc"
    exit "$rc"
}

# tb__signal_trap NAME STATUS: the INT/TERM/HUP trap: say so and exit (the EXIT trap cleans up).
tb__signal_trap() {
    tb__note "caught SIG$1; cleaning up"
    exit "$2"
}

# tb_cleanup [STATUS]: run tb_on_exit commands, kill the bed's processes, delete the namespaces, remove $TB_DIR
# (kept if TB_KEEP=1). Idempotent; a no-op in subshells. A non-zero STATUS also prints the tails of the logs.
tb_cleanup() {
    local status=${1:-0} i p f rc=0 leftover
    [[ $tb__state == up && $tb__owner == "$BASHPID" ]] || return 0
    tb__state=cleaning
    trap '' INT TERM HUP # finish cleaning even if interrupted again

    for ((i = ${#tb__exit_cmds[@]} - 1; i >= 0; i--)); do
        eval "${tb__exit_cmds[i]}" || tb__err "cleanup command failed: ${tb__exit_cmds[i]}"
    done
    # Every process tb_bg started lives in one of the namespaces, so `ip netns pids` (in tb__teardown)
    # finds it; tracked children that are still ours are added in case one is between fork and setns.
    local own=()
    for p in "${tb__pids[@]}"; do
        [[ $(tb__ppid "$p" 2>/dev/null) == "$BASHPID" ]] && tb__alive "$p" && own+=("$p")
    done
    tb__terminate "${own[@]}" || rc=1
    tb__teardown "${tb__namespaces[@]}" || rc=1
    for p in "${tb__pids[@]}"; do wait "$p" 2>/dev/null || true; done # reap quietly

    leftover=$(tb__ns_list | grep -xF -f <(printf '%s\n' "${tb__namespaces[@]}") || true)
    if [[ -n $leftover ]]; then
        tb__err "namespaces still exist after cleanup: $leftover"
        rc=1
    fi
    if ((status != 0)) && [[ -d ${TB_DIR:-} ]] && ((${TB_LOG_TAIL:-20} > 0)); then
        for f in "$TB_DIR"/*.log; do
            [[ -s $f ]] || continue
            printf 'testbed: --- last %s lines of %s ---\n' "${TB_LOG_TAIL:-20}" "${f##*/}" >&2
            tail -n "${TB_LOG_TAIL:-20}" "$f" >&2
        done
    fi
    if [[ ${TB_KEEP:-0} == 1 ]]; then
        tb__note "TB_KEEP=1: kept $TB_DIR"
    elif [[ -d ${TB_DIR:-} ]]; then
        rm -rf -- "$TB_DIR"
    fi
    tb__namespaces=() tb__pids=() tb__exit_cmds=()
    tb__state=down
    trap - INT TERM HUP
    return "$rc"
}

# tb_sweep PREFIX: delete every namespace whose name starts with PREFIX (and kill its processes); print their names.
# For the test runner after a test that was killed. PREFIX must start with "rk" and be at least 5 characters.
tb_sweep() {
    local prefix=${1:-} names=() ns
    if [[ ! $prefix =~ ^rk.{3,} ]]; then
        tb__err "tb_sweep: refusing a short or foreign prefix '$prefix'"
        return 1
    fi
    while read -r ns; do
        [[ $ns != "$prefix"* ]] || names+=("$ns")
    done < <(tb__ns_list)
    ((${#names[@]})) || return 0
    printf '%s\n' "${names[@]}"
    tb__teardown "${names[@]}"
}

# tb_sweep_stale: delete the bed's namespaces whose creating shell is dead (left by a SIGKILLed run); print them.
# Only names of the form rk[<runner>t<n>-]<pid>x<hex4>-{a,r,b} whose <pid> no longer exists are touched.
# (The dead run's $TB_DIR stays behind: it holds only logs.)
tb_sweep_stale() {
    local ns stale=()
    while read -r ns; do
        if [[ $ns =~ ^rk([0-9]+t[0-9]+-)?([0-9]+)x[0-9a-f]{4}-[arb]$ ]] && [[ ! -e /proc/${BASH_REMATCH[2]} ]]; then
            stale+=("$ns")
        fi
    done < <(tb__ns_list)
    ((${#stale[@]})) || return 0
    printf '%s\n' "${stale[@]}"
    tb__teardown "${stale[@]}"
}

# ---------------------------------------------------------------------------------------------------
# Running things in the namespaces

# tb_exec NS CMD...: run CMD inside namespace NS (ip netns exec), in the foreground.
tb_exec() {
    tb__need_ns "${1:-}" tb_exec || return 1
    local ns=$1
    shift
    ip netns exec "$ns" "$@"
}

# tb_bg NS NAME CMD...: start CMD in NS in the background; output to $TB_DIR/NAME.log, pid to $TB_DIR/NAME.pid
# and $TB_LAST_PID. Don't call it inside $(...): the process must be a child of the calling shell.
tb_bg() {
    if (($# < 3)); then
        tb__err "tb_bg: usage: tb_bg NS NAME CMD..."
        return 1
    fi
    tb__need_ns "$1" tb_bg || return 1
    if [[ ! -d ${TB_DIR:-} ]]; then
        tb__err "tb_bg: no \$TB_DIR; call tb_setup first"
        return 1
    fi
    local ns=$1 name=$2
    shift 2
    # A non-interactive shell starts background jobs with SIGINT and SIGQUIT ignored; give them back their
    # defaults, so that `kill -INT` reaches rackd and the tools as it would from a terminal.
    ip netns exec "$ns" env --default-signal=INT,QUIT "$@" >"$TB_DIR/$name.log" 2>&1 </dev/null &
    TB_LAST_PID=$!
    echo "$TB_LAST_PID" >"$TB_DIR/$name.pid"
    tb__pids+=("$TB_LAST_PID")
}

# tb_pid NAME: print the pid of the background process NAME started by tb_bg.
tb_pid() {
    local pid
    if ! read -r pid 2>/dev/null <"${TB_DIR:-}/$1.pid"; then
        tb__err "tb_pid: no background process named '$1'"
        return 1
    fi
    echo "$pid"
}

# tb_wait_bg NAME [TIMEOUT_S]: wait (default 60 s) for background process NAME to exit; return its exit status,
# 124 on timeout (it is left running). The status is only known for children of this shell; for others, 0.
tb_wait_bg() {
    local name=${1:-} timeout=${2:-60} pid rc=0
    pid=$(tb_pid "$name") || return 1
    if tb__alive "$pid" && [[ $(tb__ppid "$pid") != "$BASHPID" ]]; then
        tb_wait_for "! tb__alive $pid" "$timeout" || return 124
        tb__note "tb_wait_bg: $name (pid $pid) was not started by this shell; its exit status is unknown"
        return 0
    fi
    if ! tb_wait_for "! tb__alive $pid" "$timeout"; then
        tb__err "tb_wait_bg: $name (pid $pid) still running after ${timeout}s"
        return 124
    fi
    wait "$pid" 2>/dev/null || rc=$?
    return "$rc"
}

# tb_wait_for CONDITION TIMEOUT_S [INTERVAL_S]: evaluate the CONDITION string every INTERVAL_S (default 0.1)
# until it succeeds (return 0) or TIMEOUT_S passes (return 1). Both times may be fractional.
tb_wait_for() {
    local cond=${1:?tb_wait_for: missing condition} timeout=${2:?tb_wait_for: missing timeout} interval=${3:-0.1}
    local deadline
    deadline=$(($(tb__now_us) + $(tb__secs_to_us "$timeout")))
    while :; do
        if eval "$cond"; then
            return 0
        fi
        (($(tb__now_us) < deadline)) || return 1
        sleep "$interval"
    done
}

# tb_wait_port NS PORT [TIMEOUT_S]: wait (default 10 s) until a TCP socket listens on PORT inside NS.
tb_wait_port() {
    tb__need_ns "${1:-}" tb_wait_port || return 1
    if ! tb_wait_for "tb__listening '$1' '$2'" "${3:-10}" 0.05; then
        tb__err "tb_wait_port: nothing listens on TCP port $2 in $1 after ${3:-10}s"
        return 1
    fi
}

# tb__listening NS PORT: true if a TCP socket listens on PORT in NS.
tb__listening() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null) ]]; }

# tb_sha256 FILE: print the SHA-256 of FILE (hex).
tb_sha256() {
    local sum
    sum=$(sha256sum -- "${1:?tb_sha256: missing file}") || return 1
    echo "${sum%% *}"
}

# ---------------------------------------------------------------------------------------------------
# Connectivity and transfers

# tb_ping NS ADDR [COUNT] [TIMEOUT_S]: true if ADDR answers any of COUNT (default 3) ICMP echoes from NS.
tb_ping() {
    tb__need_ns "${1:-}" tb_ping || return 1
    ip netns exec "$1" "$TB_TOOLS/ping.py" -q --first -c "${3:-3}" -W "${4:-1}" "$2"
}

# tb_xfer NAME CLIENT_NS SERVER_NS SERVER_ADDR PORT C2S_BYTES S2C_BYTES [CLIENT_OPT...] [-- SERVER_OPT...]: one xfer.py transfer both
# ways (server in SERVER_NS, client in CLIENT_NS), waited for and checked: tb_xfer_start + tb_xfer_finish.
tb_xfer() {
    tb_xfer_start "$@" || return 1
    tb_xfer_finish "$1"
}

# tb_xfer_start NAME CLIENT_NS SERVER_NS SERVER_ADDR PORT C2S_BYTES S2C_BYTES [CLIENT_OPT...] [-- SERVER_OPT...]:
# start an xfer.py server and client in the background (processes NAME-server and NAME-client; reports in
# $TB_DIR/NAME-{client,server}.json). Options are xfer.py's, e.g. --rate 1M to keep data in flight during a
# fault (give it to both sides to keep both directions busy); --fast (no hashing, for benchmarks) given to the
# client is passed to the server too, since both ends must agree on it.
tb_xfer_start() {
    if (($# < 7)); then
        tb__err "tb_xfer_start: usage: NAME CLIENT_NS SERVER_NS SERVER_ADDR PORT C2S_BYTES S2C_BYTES" \
            "[CLIENT_OPT...] [-- SERVER_OPT...]"
        return 1
    fi
    local name=$1 cns=$2 sns=$3 addr=$4 port=$5 c2s=$6 s2c=$7 client_opts=() server_opts=()
    shift 7
    while (($#)) && [[ $1 != -- ]]; do
        client_opts+=("$1")
        shift
    done
    (($# == 0)) || shift
    server_opts=("$@")
    [[ " ${client_opts[*]} " != *" --fast "* ]] || server_opts+=(--fast)
    tb__need_ns "$cns" tb_xfer_start || return 1
    printf '%s %s\n' "$c2s" "$s2c" >"$TB_DIR/$name.expect"
    tb_bg "$sns" "$name-server" "$TB_TOOLS/xfer.py" server --listen "$addr" --port "$port" \
        --bytes "$s2c" --report "$TB_DIR/$name-server.json" "${server_opts[@]}" || return 1
    tb_wait_port "$sns" "$port" || return 1
    tb_bg "$cns" "$name-client" "$TB_TOOLS/xfer.py" client --connect "$addr" --port "$port" \
        --bytes "$c2s" --report "$TB_DIR/$name-client.json" "${client_opts[@]}"
}

# tb_xfer_finish NAME [TIMEOUT_S]: wait (default $TB_XFER_TIMEOUT or 300 s) for transfer NAME to end on both sides,
# then check it with tb_check_xfer. Stops whatever is still running on timeout.
tb_xfer_finish() {
    local name=${1:?tb_xfer_finish: missing name} timeout=${2:-${TB_XFER_TIMEOUT:-300}} c2s s2c rc role failed=0
    read -r c2s s2c <"$TB_DIR/$name.expect" || return 1
    for role in client server; do
        rc=0
        tb_wait_bg "$name-$role" "$timeout" || rc=$?
        if ((rc != 0)); then
            tb__err "tb_xfer $name: $role exited with status $rc: $(tail -n 3 "$TB_DIR/$name-$role.log")"
            tb__terminate "$(tb_pid "$name-client")" "$(tb_pid "$name-server")" || true
            timeout=1 failed=1 # the other side only gets a moment now
        fi
    done
    tb_check_xfer "$TB_DIR/$name-client.json" "$TB_DIR/$name-server.json" "$c2s" "$s2c" && ((failed == 0))
}

# tb_check_xfer CLIENT_REPORT SERVER_REPORT [C2S_BYTES S2C_BYTES]: compare both directions' hashes and counts;
# prints a one-line verdict (tools/check_xfer.py).
tb_check_xfer() {
    local args=("${1:?tb_check_xfer: missing client report}" "${2:?tb_check_xfer: missing server report}")
    [[ -n ${3:-} ]] && args+=(--c2s-bytes "$3")
    [[ -n ${4:-} ]] && args+=(--s2c-bytes "$4")
    "$TB_TOOLS/check_xfer.py" "${args[@]}"
}

# tb_json FILE KEY: print field KEY of the (last) JSON object in FILE ("null" if absent).
tb_json() {
    python3 -c 'import json,sys
lines=[l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
v=json.loads(lines[-1]).get(sys.argv[2])
print("null" if v is None else v)' "$1" "$2"
}

# ---------------------------------------------------------------------------------------------------
# Faults

# tb__fault_nft SCRIPT: load an nft script into R's namespace.
tb__fault_nft() {
    local out
    if ! out=$(ip netns exec "${TB_R:?no test bed}" nft -f - 2>&1 <<<"$1"); then
        tb__err "nft in $TB_R failed: $out"
        return 1
    fi
}

# tb_blackhole_on [both|a2b|b2a]: drop forwarded traffic between A and B in R (default both directions).
tb_blackhole_on() {
    local dir=${1:-both} rules=""
    case $dir in
        both) rules="iifname { \"$TB_R_A_IF\", \"$TB_R_B_IF\" } drop" ;;
        a2b) rules="iifname \"$TB_R_A_IF\" oifname \"$TB_R_B_IF\" drop" ;;
        b2a) rules="iifname \"$TB_R_B_IF\" oifname \"$TB_R_A_IF\" drop" ;;
        *)
            tb__err "tb_blackhole_on: direction must be both, a2b or b2a (got '$dir')"
            return 1
            ;;
    esac
    tb__fault_nft "add table inet tb_fault
delete table inet tb_fault
table inet tb_fault {
    chain forward {
        type filter hook forward priority filter - 10; policy accept;
        $rules
    }
}"
}

# tb_blackhole_off: remove the black hole (idempotent).
tb_blackhole_off() { tb__fault_nft $'add table inet tb_fault\ndelete table inet tb_fault'; }

# tb_link_down_a: set A's interface down. Measured on 6.18: the v4 address stays, but the default routes and
# the v6 address go with it (keep_addr_on_down=0).
tb_link_down_a() { tb__run ip -n "${TB_A:?no test bed}" link set "$TB_A_IF" down; }

# tb_link_up_a: set A's interface up and restore its current addresses and default routes (idempotent).
tb_link_up_a() {
    tb__config_if "${TB_A:?no test bed}" "$TB_A_IF" "$TB_A_ADDR4" "$TB_A_ADDR6" "$TB_R_A_ADDR4" "$TB_R_A_ADDR6"
}

# tb_replace_addr_a NEW4 [NEW6]: remove A's v4 (and, if NEW6 is given, v6) address, add the new one in the same
# subnet, restore the default routes, and update $TB_A_ADDR4/$TB_A_ADDR6.
tb_replace_addr_a() {
    local new4=${1:-} new6=${2:-}
    if [[ ! $new4 =~ ^10\.1\.0\.([0-9]+)$ ]] || ((BASH_REMATCH[1] < 2 || BASH_REMATCH[1] > 254)); then
        tb__err "tb_replace_addr_a: '$new4' is not a host address in 10.1.0.0/24 other than the router"
        return 1
    fi
    if [[ -n $new6 && ! $new6 =~ ^fd00:1:: ]] || [[ $new6 == "$TB_R_A_ADDR6" ]]; then
        tb__err "tb_replace_addr_a: '$new6' is not a host address in fd00:1::/64 other than the router"
        return 1
    fi
    tb__run ip -n "${TB_A:?no test bed}" addr del "$TB_A_ADDR4/24" dev "$TB_A_IF" || return 1
    TB_A_ADDR4=$new4
    if [[ -n $new6 ]]; then
        tb__run ip -n "$TB_A" -6 addr del "$TB_A_ADDR6/64" dev "$TB_A_IF" || return 1
        TB_A_ADDR6=$new6
    fi
    export TB_A_ADDR4 TB_A_ADDR6
    tb_link_up_a
}

# tb_move_a [--make-before-break] NET4_INDEX: move A onto another subnet, as a laptop does when it joins another
# network, so that A's old address becomes unreachable. For N = NET4_INDEX (1, the original network, or 3..250):
# A's link gets 10.N.0.2/24 and fd00:N::2/64 (nodad), R's side of it 10.N.0.1/24 and fd00:N::1/64 (nodad), and A's
# default routes go via R's new addresses. The previous addresses of both ends of the link are removed, so R has no
# route to A's old address any more (B's default routes via R reach the new one). Break before make by default (old
# addresses removed, then new ones added); --make-before-break adds the new ones first. Updates and exports
# $TB_A_ADDR4, $TB_A_ADDR6, $TB_R_A_ADDR4 and $TB_R_A_ADDR6. Only the link's interfaces are touched, never lo (a
# rackd in A may keep A's old address there). Moving to the network A is on just reapplies its configuration.
tb_move_a() {
    local mbb=0 n=""
    while (($#)); do
        case $1 in
            --make-before-break) mbb=1 ;;
            *)
                if [[ -n $n ]]; then
                    tb__err "tb_move_a: usage: tb_move_a [--make-before-break] NET4_INDEX"
                    return 1
                fi
                n=$1
                ;;
        esac
        shift
    done
    if [[ ! $n =~ ^[1-9][0-9]{0,2}$ ]] || ((n == 2 || n > 250)); then
        tb__err "tb_move_a: NET4_INDEX must be 1 or 3..250 (10.2.0.0/24 is B's link), not '$n'"
        return 1
    fi
    local nsa=${TB_A:?no test bed} nsr=${TB_R:?no test bed}
    local old_a4=$TB_A_ADDR4 old_a6=$TB_A_ADDR6 old_r4=$TB_R_A_ADDR4 old_r6=$TB_R_A_ADDR6
    local new_a4=10.$n.0.2 new_a6=fd00:$n::2 new_r4=10.$n.0.1 new_r6=fd00:$n::1
    if [[ $old_r4 == "$new_r4" ]]; then
        # Already on that network: removing and re-adding would only break it. Reapply A's current config.
        tb__config_if "$nsr" "$TB_R_A_IF" "$TB_R_A_ADDR4" "$TB_R_A_ADDR6" || return 1
        tb_link_up_a
        return
    fi
    if ((mbb)); then
        tb__move_a_add "$nsa" "$nsr" "$new_a4" "$new_a6" "$new_r4" "$new_r6" || return 1
        tb__move_a_del "$nsa" "$nsr" "$old_a4" "$old_a6" "$old_r4" "$old_r6" || return 1
    else
        tb__move_a_del "$nsa" "$nsr" "$old_a4" "$old_a6" "$old_r4" "$old_r6" || return 1
        tb__move_a_add "$nsa" "$nsr" "$new_a4" "$new_a6" "$new_r4" "$new_r6" || return 1
    fi
    TB_A_ADDR4=$new_a4 TB_A_ADDR6=$new_a6 TB_R_A_ADDR4=$new_r4 TB_R_A_ADDR6=$new_r6
    export TB_A_ADDR4 TB_A_ADDR6 TB_R_A_ADDR4 TB_R_A_ADDR6
    # The default routes once more: in break-before-make order the kernel may have dropped them with the old
    # subnet, in make-before-break order they must not stay on the old gateway.
    tb__run ip -n "$nsa" route replace default via "$new_r4" dev "$TB_A_IF" || return 1
    tb__run ip -n "$nsa" -6 route replace default via "$new_r6" dev "$TB_A_IF" || return 1
}

# tb__move_a_add A R A4 A6 R4 R6: add the addresses of one A-R network (R's end first), point A's default routes at R.
tb__move_a_add() {
    local nsa=$1 nsr=$2 a4=$3 a6=$4 r4=$5 r6=$6
    tb__run ip -n "$nsr" addr add "$r4/24" dev "$TB_R_A_IF" || return 1
    tb__run ip -n "$nsr" -6 addr add "$r6/64" dev "$TB_R_A_IF" nodad || return 1
    tb__run ip -n "$nsa" addr add "$a4/24" dev "$TB_A_IF" || return 1
    tb__run ip -n "$nsa" -6 addr add "$a6/64" dev "$TB_A_IF" nodad || return 1
    tb__run ip -n "$nsa" route replace default via "$r4" dev "$TB_A_IF" || return 1
    tb__run ip -n "$nsa" -6 route replace default via "$r6" dev "$TB_A_IF" || return 1
}

# tb__move_a_del A R A4 A6 R4 R6: remove the addresses of one A-R network from both ends of the link (A's first).
# Addresses already gone are skipped; only the link's interfaces are named, so A's lo keeps whatever it holds.
tb__move_a_del() {
    local nsa=$1 nsr=$2 a4=$3 a6=$4 r4=$5 r6=$6
    tb__move_a_del_one "$nsa" "$TB_A_IF" 4 "$a4/24" || return 1
    tb__move_a_del_one "$nsa" "$TB_A_IF" 6 "$a6/64" || return 1
    tb__move_a_del_one "$nsr" "$TB_R_A_IF" 4 "$r4/24" || return 1
    tb__move_a_del_one "$nsr" "$TB_R_A_IF" 6 "$r6/64" || return 1
}

# tb__move_a_del_one NS IF FAMILY ADDR/LEN: delete ADDR/LEN from IF in NS if it is there.
tb__move_a_del_one() {
    local ns=$1 ifc=$2 family=$3 prefix=$4
    [[ -n $(ip -n "$ns" -"$family" -o addr show dev "$ifc" to "${prefix%/*}/$([[ $family == 4 ]] && echo 32 || echo 128)") ]] ||
        return 0
    tb__run ip -n "$ns" -"$family" addr del "$prefix" dev "$ifc"
}

# ---------------------------------------------------------------------------------------------------
# rackd

# tb_rackd_bin [--prefer-release]: print the rackd binary: $RACKD_BIN, else .build/release/rackd (if preferred
# and built), else .build/debug/rackd.
tb_rackd_bin() {
    if [[ -n ${RACKD_BIN:-} ]]; then
        echo "$RACKD_BIN"
    elif [[ ${1:-} == --prefer-release && -x $TB_REPO/.build/release/rackd ]]; then
        echo "$TB_REPO/.build/release/rackd"
    else
        echo "$TB_REPO/.build/debug/rackd"
    fi
}

# tb_skip MESSAGE...: print "SKIP: MESSAGE" and exit 77 (the runner counts the test as skipped).
tb_skip() {
    echo "SKIP: $*"
    exit 77
}

# tb_require_rackd: skip the calling test (exit 77) unless the rackd binary exists.
tb_require_rackd() {
    local bin
    bin=$(tb_rackd_bin)
    [[ -x $bin ]] || tb_skip "rackd is not built ($bin missing): run 'swift build' first, or set RACKD_BIN"
}

# tb_start_rackd NS NAME [ARG...]: start rackd in NS (log $TB_DIR/rackd-NAME.log); wait up to 10 s until its
# table `inet rackd` exists in NS while it still runs. On failure print the log tail, stop it, return 1.
tb_start_rackd() {
    tb__need_ns "${1:-}" tb_start_rackd || return 1
    if [[ -z ${2:-} ]]; then
        tb__err "tb_start_rackd: usage: tb_start_rackd NS NAME [ARG...]"
        return 1
    fi
    local ns=$1 name=$2 bin pid timeout=${TB_RACKD_START_TIMEOUT:-10}
    shift 2
    bin=$(tb_rackd_bin)
    if [[ ! -x $bin ]]; then
        tb__err "tb_start_rackd: no rackd binary at $bin; build it first (swift build) or set RACKD_BIN"
        return 1
    fi
    # Each rackd serves rackctl on a socket of its own (tb_rackctl NAME talks to it), and reads no
    # /etc/rackd/rackd.conf the machine may have unless the test names a configuration.
    local own=()
    [[ " $* " == *" --control-socket "* ]] || own+=(--control-socket "$TB_DIR/rackd-$name.sock")
    [[ " $* " == *" --config "* ]] || own+=(--config /dev/null)
    # Each keeps its connections across restarts in a directory of its own (docs/restarts.md).
    [[ " $* " == *" --state-directory "* ]] || own+=(--state-directory "$TB_DIR/state-$name")
    tb_bg "$ns" "rackd-$name" "$bin" "${own[@]}" "$@" || return 1
    pid=$TB_LAST_PID
    # Ready: its table exists and it said so (a table kept by an earlier rackd exists before this one is).
    # The line is "… notice ready …" on a terminal, "<5>ready …" when JOURNAL_STREAM names its stderr.
    if tb_wait_for "! tb__alive $pid || (tb_has_rackd_table '$ns' && grep -Eq '( |^<[0-7]>)ready( |$)' '$TB_DIR/rackd-$name.log')" \
        "$timeout" && tb__alive "$pid"; then
        tb__note "rackd-$name running in $ns (pid $pid)"
        return 0
    fi
    if tb__alive "$pid"; then
        tb__err "tb_start_rackd: rackd-$name (pid $pid) installed no table inet rackd in $ns within ${timeout}s"
        tb__terminate "$pid" || true
    else
        tb__err "tb_start_rackd: rackd-$name exited during startup"
    fi
    wait "$pid" 2>/dev/null || true
    tb__err "last lines of $TB_DIR/rackd-$name.log:"
    tail -n 30 "$TB_DIR/rackd-$name.log" >&2
    return 1
}

# tb_rackctl NAME ARG...: run rackctl against rackd NAME (started by tb_start_rackd), e.g. tb_rackctl a status --json.
tb_rackctl() {
    local name=${1:?tb_rackctl: missing name}
    shift
    "$(tb_rackctl_bin)" "$@" --socket "$TB_DIR/rackd-$name.sock"
}

# tb_rackctl_bin: the rackctl binary: $RACKCTL_BIN, else the one next to rackd.
tb_rackctl_bin() { echo "${RACKCTL_BIN:-$(dirname "$(tb_rackd_bin)")/rackctl}"; }

# tb_has_rackd_table NS: true if table inet rackd exists in namespace NS.
tb_has_rackd_table() { ip netns exec "$1" nft list table inet rackd >/dev/null 2>&1; }

# tb_rackd_pid NAME: print the pid of rackd NAME.
tb_rackd_pid() { tb_pid "rackd-${1:?tb_rackd_pid: missing name}"; }

# tb_stop_rackd NS NAME [SIGNAL]: send SIGNAL (default TERM) to rackd NAME in NS, wait up to 10 s for it to exit and
# return its exit status (124 if it did not exit).
tb_stop_rackd() {
    tb__need_ns "${1:-}" tb_stop_rackd || return 1
    local ns=$1 name=${2:?tb_stop_rackd: missing name} sig=${3:-TERM} pid rc=0
    pid=$(tb_rackd_pid "$name") || return 1
    local where
    where=$(ip netns identify "$pid" 2>/dev/null) || true
    if ! grep -qxF -- "$ns" <<<"$where"; then
        tb__alive "$pid" && tb__err "tb_stop_rackd: rackd-$name (pid $pid) is not in $ns" && return 1
    fi
    kill -s "$sig" "$pid" 2>/dev/null || tb__note "tb_stop_rackd: rackd-$name (pid $pid) had already exited"
    tb_wait_bg "rackd-$name" 10 || rc=$?
    return "$rc"
}

# tb_restart_rackd NS NAME SIGNAL [ARG...]: stop rackd NAME in NS with SIGNAL, keep its log as rackd-NAME.log.N (the
# first free N), and start it again in NS with ARG... (tb_start_rackd); print how long that took.
tb_restart_rackd() {
    tb__need_ns "${1:-}" tb_restart_rackd || return 1
    local ns=$1 name=${2:?tb_restart_rackd: missing name} signal=${3:?tb_restart_rackd: missing signal} n=1 start
    shift 3
    tb_stop_rackd "$ns" "$name" "$signal" || true
    while [[ -e $TB_DIR/rackd-$name.log.$n ]]; do n=$((n + 1)); done
    mv "$TB_DIR/rackd-$name.log" "$TB_DIR/rackd-$name.log.$n"
    start=$(date +%s%N)
    tb_start_rackd "$ns" "$name" "$@" || return 1
    echo "rackd-$name: stopped with SIG$signal and ready again after $((($(date +%s%N) - start) / 1000000)) ms"
}

# tb_assert_root_clean: fail if the ROOT network namespace has a table inet rackd (read-only check, via pid 1's
# namespace so that it holds even when called from inside another namespace).
tb_assert_root_clean() {
    local out
    local -a enter=()
    [[ -r /proc/1/ns/net ]] && command -v nsenter >/dev/null && enter=(nsenter --net=/proc/1/ns/net)
    if ! out=$("${enter[@]}" nft list tables 2>&1); then
        tb__err "tb_assert_root_clean: cannot list the root namespace's nftables tables: $out"
        return 1
    fi
    if grep -qx 'table inet rackd' <<<"$out"; then
        tb__err "the ROOT network namespace has a table inet rackd. rackd must only run inside test namespaces." \
            "Find out what put it there."
        return 1
    fi
}

# ---------------------------------------------------------------------------------------------------
# Assertions for tests

# tb_grep GREP-ARGS...: `grep -q` that reads its whole input. Under pipefail, `nft list … | grep -q X` fails
# with status 141 when grep exits at the first match while the writer still has output (it gets SIGPIPE);
# use `… | tb_grep X` in a test's own shell (a `bash -c` string has no pipefail and may keep grep -q).
tb_grep() { grep "$@" >/dev/null; }

# tb_assert DESCRIPTION CMD...: run CMD; print "ok - DESCRIPTION" or "not ok - DESCRIPTION" and return 1.
tb_assert() {
    local what=$1 rc=0
    shift
    "$@" || rc=$?
    if ((rc == 0)); then
        echo "ok - $what"
    else
        echo "not ok - $what (status $rc: $*)"
        return 1
    fi
}

# tb_assert_fails DESCRIPTION CMD...: like tb_assert, but CMD must fail.
tb_assert_fails() {
    local what=$1
    shift
    if "$@"; then
        echo "not ok - $what (succeeded: $*)"
        return 1
    fi
    echo "ok - $what"
}
