#!/usr/bin/env python3
"""log_time.py LOG SKIP PATTERN [AFTER]: when rackd logged a line (a terminal-format log of tb_start_rackd,
whose lines start with the local time, e.g. 2026-11-29T07:20:00.123). Skips the first SKIP lines, then, if
AFTER is given, every line up to and including the first that matches AFTER; prints the time of the first
line after that which matches PATTERN, as seconds since the epoch with milliseconds (e.g. 1795936800.123),
so that it compares with the shell's $EPOCHREALTIME. PATTERN and AFTER are Python regular expressions. Exits
1, printing nothing, if no line matches."""
import re
import sys
import time

path, skip, pattern = sys.argv[1], int(sys.argv[2]), re.compile(sys.argv[3])
after = re.compile(sys.argv[4]) if len(sys.argv) > 4 else None
stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3}) ")
with open(path, errors="replace") as f:
    lines = f.read().split("\n")[skip:]
for line in lines:
    if after is not None:
        if after.search(line):
            after = None
        continue
    found = stamp.match(line)
    if found and pattern.search(line):
        seconds = time.mktime(time.strptime(found.group(1), "%Y-%m-%dT%H:%M:%S"))
        print("%.3f" % (seconds + int(found.group(2)) / 1000))
        sys.exit(0)
sys.exit(1)
