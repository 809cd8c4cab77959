# shellcheck shell=bash
# integration-tests/lib/control.sh: helpers for the rackctl tests. Source it after testbed/netns.sh.

# control_field NAME EXPR: evaluate the Python expression EXPR over rackd NAME's `rackctl status --json`
# (bound to `s`) and print the result; e.g. control_field a 's["connections"][0]["state"]'.
control_field() {
    local json
    json=$(tb_rackctl "$1" status --json) || return 1
    python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$json" "$2"
}

# control_state NAME: the state of rackd NAME's first managed connection ("none" without one), with
# "+held" appended when the operator holds it.
control_state() {
    control_field "$1" '(lambda c: c[0]["state"] + ("+held" if c[0]["held_by_operator"] else "") if c else "none")(s["connections"])'
}

# control_wait_state NAME STATE TIMEOUT_S: wait until control_state NAME prints STATE.
control_wait_state() {
    tb_wait_for "[[ \$(control_state $1 2>/dev/null) == '$2' ]]" "$3" 0.1
}

# control_watch NAME FILE: in the background, append every change of control_state NAME to FILE (one state
# per line) until control_watch_stop; the states a connection went through, as rackctl reported them.
control_watch() {
    local name=$1 file=$2
    : >"$file"
    (
        last=""
        while :; do
            now=$(control_state "$name" 2>/dev/null) || now=""
            if [[ -n $now && $now != "$last" ]]; then
                echo "$now" >>"$file"
                last=$now
            fi
            sleep 0.05
        done
    ) &
    CONTROL_WATCH_PID=$!
}

# control_watch_stop: end control_watch.
control_watch_stop() {
    [[ -n ${CONTROL_WATCH_PID:-} ]] || return 0
    kill "$CONTROL_WATCH_PID" 2>/dev/null || true
    wait "$CONTROL_WATCH_PID" 2>/dev/null || true
    CONTROL_WATCH_PID=""
}
