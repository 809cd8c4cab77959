#!/usr/bin/env python3
"""log_time.py LOG SKIP PATTERN [AFTER [BEFORE]]: when rackd logged a line (a terminal-format log of
tb_start_rackd, whose lines start with the local time, e.g. 2026-11-29T07:20:00.123). Skips the first SKIP
lines, then, if AFTER is given (and not empty), every line up to and including the first that matches AFTER;
prints the time of the first line after that which matches PATTERN, or with BEFORE, of the last such line
before the first line that matches BEFORE, as seconds since the epoch with milliseconds (e.g.
1795936800.123), so that it compares with the shell's $EPOCHREALTIME. PATTERN, AFTER and BEFORE are Python
regular expressions. Exits 1, printing nothing, if no line matches."""
import re
import sys
import time

path, skip, pattern = sys.argv[1], int(sys.argv[2]), re.compile(sys.argv[3])
after = re.compile(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] else None
before = re.compile(sys.argv[5]) if len(sys.argv) > 5 else None
stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3}) ")
with open(path, errors="replace") as f:
    lines = f.read().split("\n")[skip:]
chosen = None
for line in lines:
    if after is not None:
        if after.search(line):
            after = None
        continue
    if before is not None and before.search(line):
        break
    found = stamp.match(line)
    if found and pattern.search(line):
        chosen = found
        if before is None:
            break
if chosen is None:
    sys.exit(1)
seconds = time.mktime(time.strptime(chosen.group(1), "%Y-%m-%dT%H:%M:%S"))
print("%.3f" % (seconds + int(chosen.group(2)) / 1000))
