#!/usr/bin/env python3
"""Plays systemd's side of sd_notify for a test: listens on a unix datagram socket (the NOTIFY_SOCKET given
to rackd) and writes one line per notification to OUT: "<seconds since start> <field>" for each field of
the datagram. On READY=1 it runs CHECK (a shell command) at once and records "READY-CHECK <exit status>",
so a test can tell what held at the moment rackd declared itself ready.

It also keeps a file-descriptor store as systemd does (FileDescriptorStoreMax=): a datagram with
FDSTORE=1 and descriptors (SCM_RIGHTS) stores them under its FDNAME= and records
"<seconds> FDSTORE-FDS name=NAME KIND:PORT..." (KIND udp, tcp or other; PORT the bound port); one with
FDSTOREREMOVE=1 closes those under its FDNAME= and records "<seconds> FDSTORE-REMOVED name=NAME count=N".
A process that connects to SOCKET.fds (a unix stream socket) is sent every stored descriptor in one
message, the payload their names joined by ":" as in LISTEN_FDNAMES: fdstore_exec.py starts rackd with them
as systemd would after a restart. The listener keeps its copies, as systemd does.

    notify_listener.py SOCKET OUT CHECK
"""
import array
import os
import select
import socket
import subprocess
import sys
import time

path, out, check = sys.argv[1:4]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
handout = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
handout.bind(path + ".fds")
handout.listen(4)
store = []  # (name, fd), in the order stored
start = time.monotonic()


def describe(fd):
    """KIND:PORT of a socket descriptor."""
    try:
        s = socket.socket(fileno=os.dup(fd))
    except OSError:
        return "other:-"
    try:
        kind = {(socket.AF_INET, socket.SOCK_DGRAM): "udp", (socket.AF_INET, socket.SOCK_STREAM): "tcp"}.get(
            (s.family, s.type), "other")
        port = s.getsockname()[1] if s.family == socket.AF_INET else "-"
        return f"{kind}:{port}"
    finally:
        s.close()


def receive(log):
    fds = array.array("i")
    data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    stamp = time.monotonic() - start
    fields = [f for f in data.decode(errors="replace").split("\n") if f]
    for field in fields:
        log.write(f"{stamp:.3f} {field}\n")
        if field == "READY=1":
            status = subprocess.call(check, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            log.write(f"{stamp:.3f} READY-CHECK {status}\n")
    name = next((f[len("FDNAME="):] for f in fields if f.startswith("FDNAME=")), "stored")
    if "FDSTORE=1" in fields and fds:
        log.write(f"{stamp:.3f} FDSTORE-FDS name={name} {' '.join(describe(fd) for fd in fds)}\n")
        store.extend((name, fd) for fd in fds)
    else:
        for fd in fds:  # descriptors without FDSTORE=1: systemd closes them
            os.close(fd)
    if "FDSTOREREMOVE=1" in fields:
        gone = [fd for n, fd in store if n == name]
        for fd in gone:
            os.close(fd)
        store[:] = [(n, fd) for n, fd in store if n != name]
        log.write(f"{stamp:.3f} FDSTORE-REMOVED name={name} count={len(gone)}\n")


def hand_out(log):
    conn, _ = handout.accept()
    with conn:
        names = ":".join(n for n, _ in store).encode() or b"-"
        fds = array.array("i", [fd for _, fd in store])
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)] if store else []
        conn.sendmsg([names], ancillary)
    log.write(f"{time.monotonic() - start:.3f} FDSTORE-HANDED count={len(store)}\n")


with open(out, "w", buffering=1) as log:
    log.write("LISTENING\n")
    while True:
        ready, _, _ = select.select([sock, handout], [], [])
        if sock in ready:
            receive(log)
        if handout in ready:
            hand_out(log)
