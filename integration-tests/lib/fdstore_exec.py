#!/usr/bin/env python3
"""Starts a program as systemd starts a service whose fd store holds descriptors: fetches them from
notify_listener.py (its SOCKET.fds), puts them at 3, 4, ... and sets LISTEN_FDS, LISTEN_FDNAMES and
LISTEN_PID, then becomes the program (exec keeps the pid, so LISTEN_PID is the program's own).

    fdstore_exec.py SOCKET PROGRAM [ARG...]
"""
import array
import fcntl
import os
import socket
import sys

path, program, args = sys.argv[1], sys.argv[2], sys.argv[2:]
conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.connect(path + ".fds")
fds = array.array("i")
data, ancillary, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
conn.close()
for level, kind, payload in ancillary:
    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
        fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
names = data.decode()
if fds:
    # Move them out of the way first (to 100 and up), so that placing one at 3 + i never closes another
    # still to place.
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for fd in fds:
        os.close(fd)
    for index, fd in enumerate(moved):
        os.dup2(fd, 3 + index, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(moved))
    os.environ["LISTEN_FDNAMES"] = names
    os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(program, args)
