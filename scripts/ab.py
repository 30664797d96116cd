#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Interleaved A/B runs: the first JSON value each command prints, per command.

    scripts/ab.py N CMD [CMD ...]

Runs every CMD once per round, N rounds, alternating them so that drift in
the machine's speed falls on all of them alike, and prints each command's
median and sorted samples. For comparing two builds of one scenario, e.g.

    cp build/linux-x86_64/weft-test /tmp/before   # then rebuild
    scripts/ab.py 7 "/tmp/before bench echo" "build/linux-x86_64/weft-test bench echo"

Not a benchmark of record (that is `make bench`, weft against Go): a tool
for telling whether a change moved one number beyond the noise.
"""
import json
import statistics
import subprocess
import sys


def first_value(cmd):
    out = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ab.py: {cmd}: exit {out.returncode}\n{out.stderr[-1000:]}")
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)["value"]
    sys.exit(f"ab.py: {cmd}: printed no JSON line")


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 1:
        sys.exit(__doc__)
    n, cmds = int(sys.argv[1]), sys.argv[2:]
    res = {c: [] for c in cmds}
    for _ in range(n):
        for c in cmds:
            res[c].append(first_value(c))
    for c, v in res.items():
        print(f"{statistics.median(v):12.1f}  {sorted(round(x, 1) for x in v)}  {c}")


if __name__ == "__main__":
    main()
