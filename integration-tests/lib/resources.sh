# shellcheck shell=bash
# integration-tests/lib/resources.sh: what a process costs, read from /proc (memory, CPU time), for tests that
# bound rackd's resources. Source it after testbed/netns.sh (the sampler uses tb_bg and $TB_DIR).
#
#   proc_rss_kb PID             current resident set size (VmRSS), KiB
#   proc_peak_rss_kb PID        peak resident set size (VmHWM, since start or the last proc_reset_peak_rss), KiB
#   proc_reset_peak_rss PID     reset VmHWM to the current RSS (clear_refs 5), so the next peak is this phase's
#   proc_cpu_ms PID             user + system CPU time so far (utime + stime of /proc/PID/stat), ms
#   proc_sampler_start NAME PID [INTERVAL_S]   sample VmRSS and CPU in the background into $TB_DIR/NAME.samples
#   proc_sampler_stop NAME      stop it; prints "samples=N max_rss_kb=K" (the sampler's own view of the peak)

# proc__status_kb PID FIELD: FIELD's value (in kB) from /proc/PID/status.
proc__status_kb() {
    local key value
    while read -r key value _; do
        if [[ $key == "$2:" ]]; then
            echo "$value"
            return 0
        fi
    done <"/proc/$1/status" || return 1
    echo "resources: no $2 in /proc/$1/status" >&2
    return 1
}

# proc_rss_kb PID: PID's resident set size now, in KiB.
proc_rss_kb() { proc__status_kb "${1:?proc_rss_kb: missing pid}" VmRSS; }

# proc_peak_rss_kb PID: PID's peak resident set size (VmHWM), in KiB.
proc_peak_rss_kb() { proc__status_kb "${1:?proc_peak_rss_kb: missing pid}" VmHWM; }

# proc_reset_peak_rss PID: reset PID's VmHWM to its current RSS (writes 5 to /proc/PID/clear_refs; Linux >= 4.0).
proc_reset_peak_rss() { echo 5 >"/proc/${1:?proc_reset_peak_rss: missing pid}/clear_refs"; }

# proc_cpu_ms PID: user + system CPU time PID has used (all its threads; not its children's), in ms.
proc_cpu_ms() {
    local pid=${1:?proc_cpu_ms: missing pid} stat fields hz
    read -r stat <"/proc/$pid/stat" || return 1
    stat=${stat##*) } # the command name may hold spaces and parentheses; fields follow its last ')'
    read -r -a fields <<<"$stat"
    # After the name: [0]=state ... [11]=utime [12]=stime (fields 14 and 15 of proc(5)), in clock ticks.
    hz=${PROC_CLK_TCK:-$(getconf CLK_TCK)}
    echo $(((fields[11] + fields[12]) * 1000 / hz))
}

# proc_sampler_start NAME PID [INTERVAL_S]: every INTERVAL_S (default 0.1) append "<epoch_ms> <VmRSS_kB> <cpu_ms>" to
# $TB_DIR/NAME.samples until PID exits or proc_sampler_stop NAME. Runs as background process NAME (tb_bg).
proc_sampler_start() {
    local name=${1:?proc_sampler_start: missing name} pid=${2:?proc_sampler_start: missing pid} interval=${3:-0.1}
    local hz
    hz=$(getconf CLK_TCK)
    : >"$TB_DIR/$name.samples"
    # Runs in the root namespace's view of /proc, which sees every pid; `ip netns exec` is not needed, but tb_bg
    # wants a namespace: any of the bed's does (the sampler touches no network).
    # shellcheck disable=SC2016 # expanded by the inner bash
    tb_bg "$TB_R" "$name" bash -c '
        pid=$1 out=$2 interval=$3 hz=$4
        while [[ -r /proc/$pid/status ]]; do
            rss=$(awk "/^VmRSS:/ {print \$2}" "/proc/$pid/status" 2>/dev/null) || break
            read -r stat <"/proc/$pid/stat" 2>/dev/null || break
            stat=${stat##*) }
            read -r -a f <<<"$stat"
            [[ -n $rss ]] && echo "$(date +%s%3N) $rss $(((f[11] + f[12]) * 1000 / hz))" >>"$out"
            sleep "$interval"
        done' proc_sampler "$pid" "$TB_DIR/$name.samples" "$interval" "$hz"
}

# proc_sampler_stop NAME: stop sampler NAME; print "samples=N max_rss_kb=K" from what it recorded.
proc_sampler_stop() {
    local name=${1:?proc_sampler_stop: missing name} pid
    pid=$(tb_pid "$name") || return 1
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    awk '$2 > max { max = $2 } END { printf "samples=%d max_rss_kb=%d\n", NR, max }' "$TB_DIR/$name.samples"
}
