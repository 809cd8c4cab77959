# shellcheck shell=bash
# integration-tests/lib/ssh.sh: a throwaway sshd in a namespace and a scripted interactive ssh session.
# Everything (keys, config, pid file) lives in $TB_DIR; nothing of the machine's own ssh setup is used.

# ssh_require: skip unless the OpenSSH server and client are installed.
ssh_require() {
    [[ -x /usr/sbin/sshd ]] && command -v ssh >/dev/null || tb_skip "openssh-server and openssh-client are needed"
}

# ssh_start_server NS ADDR: sshd listening on ADDR:22 in NS, accepting root with a fresh key.
ssh_start_server() {
    local ns=$1 addr=$2 dir=$TB_DIR/ssh
    mkdir -p "$dir" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    cat >"$dir/sshd_config" <<CONF
ListenAddress $addr
Port 22
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
ClientAliveInterval 0
CONF
    tb_bg "$ns" sshd /usr/sbin/sshd -D -e -f "$dir/sshd_config"
    tb_wait_port "$ns" 22 10
}

# ssh_start_session NAME NS ADDR SCRIPT: an interactive login (ssh -tt, so with a terminal) from NS to
# ADDR, typing SCRIPT at the shell prompt. Output in $TB_DIR/NAME.out, errors in $TB_DIR/NAME.err.
ssh_start_session() {
    local name=$1 ns=$2 addr=$3 script=$4 dir=$TB_DIR/ssh
    printf '%s\n' "$script" >"$TB_DIR/$name.typed"
    # stdin comes from a process substitution, so bash waits for ssh alone, not for the typist.
    tb_bg "$ns" "$name" bash -c "ssh -tt -q \
        -i '$dir/client_key' -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
        -o ServerAliveInterval=0 -o LogLevel=ERROR root@$addr >'$TB_DIR/$name.out' 2>'$TB_DIR/$name.err' \
        < <(sleep 1; cat '$TB_DIR/$name.typed'; sleep 600)"
}

# ssh_check_counter FILE COUNT: the lines C1..CCOUNT appear once each, in order, with nothing missing.
ssh_check_counter() {
    local file=$1 count=$2 seen
    # Terminal control sequences (bracketed paste, colours) can precede a line; they are not output.
    seen=$(tr -d '\r' <"$file" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' | grep -E '^C[0-9]+$' | sed 's/^C//')
    tb_assert "the counter reached $count" test "$(tail -n 1 <<<"$seen")" = "$count"
    tb_assert "no gap and no repeat: exactly 1..$count in order" test "$seen" = "$(seq 1 "$count")"
}
