#!/usr/bin/env python3
"""check_xfer.py: compare the reports of one xfer.py transfer and print a one-line verdict.

    check_xfer.py CLIENT_REPORT SERVER_REPORT [--c2s-bytes N] [--s2c-bytes N]

Checks that neither side reported an error, that what the client sent is what the server received
(byte count and SHA-256) and the other way round, and, if given, that the counts are the expected
ones (sizes take xfer.py's suffixes: 20M, 1G). Reports of --fast transfers carry no hashes; then only
the counts are compared, and the verdict says so. Exit status 0 if the transfer is intact, else 1.
"""

import argparse
import json
import sys

from xfer import parse_size


def load(path):
    """Read a report file holding one JSON object (the last line if there are several)."""
    with open(path) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty report")
    return json.loads(lines[-1])


def short(digest):
    return digest[:12] if digest else "unhashed"


def check_direction(label, sender, receiver, expected, problems):
    """Compare one direction; append problems; return a short description."""
    sent, got = sender.get("sent_bytes"), receiver.get("recv_bytes")
    if expected is not None and sent != expected:
        problems.append(f"{label}: sent {sent} bytes, expected {expected}")
    if sent != got:
        problems.append(f"{label}: sent {sent} bytes, received {got}")
    hs, hr = sender.get("sent_sha256"), receiver.get("recv_sha256")
    if (hs or hr) and hs != hr:
        problems.append(f"{label}: sha256 differs: sent {short(hs)}, received {short(hr)}")
    return f"{label} {got} B sha256 {short(hr)}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client_report")
    parser.add_argument("server_report")
    parser.add_argument("--c2s-bytes", type=parse_size, help="bytes the client should have sent")
    parser.add_argument("--s2c-bytes", type=parse_size, help="bytes the server should have sent")
    args = parser.parse_args(argv)

    try:
        client, server = load(args.client_report), load(args.server_report)
    except (OSError, ValueError) as exc:
        print(f"xfer FAIL: cannot read reports: {exc}")
        return 1

    problems = []
    for name, report in (("client", client), ("server", server)):
        if report.get("error"):
            problems.append(f"{name} error: {report['error']}")
    parts = [
        check_direction("c->s", client, server, args.c2s_bytes, problems),
        check_direction("s->c", server, client, args.s2c_bytes, problems),
    ]
    where = f"{client.get('local')} -> {server.get('local')}"
    if problems:
        print(f"xfer FAIL ({where}): " + "; ".join(problems))
        return 1
    print(f"xfer OK ({where}): " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
