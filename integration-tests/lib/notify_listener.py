#!/usr/bin/env python3
"""Plays systemd's side of sd_notify for a test: listens on a unix datagram socket (the NOTIFY_SOCKET given
to rackd) and writes one line per notification to OUT: "<seconds since start> <field>" for each field of
the datagram. On READY=1 it runs CHECK (a shell command) at once and records "READY-CHECK <exit status>",
so a test can tell what held at the moment rackd declared itself ready.

    notify_listener.py SOCKET OUT CHECK
"""
import os
import socket
import subprocess
import sys
import time

path, out, check = sys.argv[1:4]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
start = time.monotonic()
with open(out, "w", buffering=1) as log:
    log.write("LISTENING\n")
    while True:
        data = sock.recv(4096).decode(errors="replace")
        stamp = time.monotonic() - start
        for field in data.split("\n"):
            if field:
                log.write(f"{stamp:.3f} {field}\n")
            if field == "READY=1":
                status = subprocess.call(check, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                log.write(f"{stamp:.3f} READY-CHECK {status}\n")
