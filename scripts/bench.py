#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench.py: weft against Go's runtime, side by side in one run.

Runs every scenario that `weft-test bench-list` and `weft-bench-go list`
both report: a warm-up of each side, then PAIRS x (weft, go) alternating,
each run a fresh process. Prints per scenario and metric the medians,
min-max and the ratio weft/Go; writes build/bench/results.json (every
sample) and build/bench/report.svg (the ratios). A run whose "ok" is false,
that crashes or times out fails its scenario, and the exit status is 1.
Scenarios only Go has are listed as pending. See docs/benchmarks.md.

    /usr/bin/python3 scripts/bench.py --weft build/linux-x86_64/weft-test \
        --go build/go/weft-bench-go [--floor build/bench/floor_timerfd ...] \
        [--scenarios spawn,yield] [--procs 1] [--pairs 5] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

# One entry per row: (scenario, params for both sides, quick-run overrides
# or None to skip it in --quick, goals per metric). Variants of a scenario
# are separate entries. procs, when absent, is the CPU count. Goals are
# docs/benchmarks.md's ("The goals"): "<=0.7x" / ">=1.2x" compare the
# ratio to Go, "<=15ms" the weft median, "floor+10" the weft median to the
# OS floor's.
ENTRIES = [
    ("spawn", {"n": 1000000, "procs": 1}, {"n": 200000}, {"ns_per_task": "<=0.7x"}),
    ("spawn", {"n": 1000000, "procs": 2}, {"n": 200000}, {"ns_per_task": "<=0.7x"}),
    ("park_memory", {"n": 100000}, {}, {"bytes_per_task": "<=1.7x"}),
    ("park_memory", {"n": 1000000}, None, {"bytes_per_task": "<=1.7x"}),
    ("yield", {"n": 5000000, "procs": 1}, {"n": 1000000}, {"ns_per_switch": "<=0.5x"}),
    ("pingpong", {"n": 1000000, "procs": 1}, {"n": 200000}, {"ns_per_roundtrip": "<=0.5x"}),
    ("pingpong", {"n": 1000000, "procs": 2}, {"n": 200000}, {"ns_per_roundtrip": "<=0.8x"}),
    ("buffered", {"n": 10000000, "procs": 2}, {"n": 2000000}, {"ns_per_item": "<=1.0x"}),
    ("select", {"n": 1000000, "procs": 2}, {"n": 200000}, {"ns_per_message": "<=0.8x"}),
    ("mutex", {"n": 10000000, "procs": 2}, {"n": 2000000}, {"ns_per_op": "<=1.0x"}),
    ("sleep", {"dur_us": 10, "n": 500}, {"n": 100}, {"overshoot_p50": "floor+10"}),
    ("sleep", {"dur_us": 100, "n": 500}, {"n": 100}, {"overshoot_p50": "floor+10"}),
    ("sleep", {"dur_us": 1000, "n": 500}, {"n": 100}, {"overshoot_p50": "floor+10"}),
    ("timers", {"n": 100000}, {"n": 20000}, {"max_lateness": "<=0.2x"}),
    ("preempt", {"n": 50, "procs": 1}, {"n": 10}, {"lateness_max": "<=15ms"}),
    ("syscall", {"delay_ms": 500, "procs": 1}, {}, {"max_stall": "<=1ms"}),
    ("autoblock", {"delay_ms": 500, "procs": 1}, {}, {"max_stall": "<=0.3x"}),
    ("echo", {"conns": 100, "rounds": 2000, "procs": 2}, {"rounds": 500},
     {"roundtrips_per_s": ">=1.2x"}),
    ("echo", {"conns": 1000, "rounds": 200, "procs": 2}, {"rounds": 50},
     {"roundtrips_per_s": ">=1.2x"}),
    ("workers", {"n": 1000000, "workers": 8}, {"n": 200000}, {"jobs_per_s": ">=1.0x"}),
]
SIDES = ("weft", "go", "os-floor")


class RunError(Exception):
    """A run that failed: short (for the table) and detail (command, stderr)."""

    def __init__(self, short, detail):
        super().__init__(short)
        self.short, self.detail = short, detail


def listed(cmd):
    """Scenario names a binary lists (first word of each line), in order."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as err:
        sys.exit(f"bench.py: cannot list scenarios with {' '.join(cmd)}: {err}")
    return [ln.split()[0] for ln in out.splitlines() if ln.strip() and not ln.startswith("#")]


def run_once(cmd, timeout):
    """Runs one process; returns {metric: record}. Raises RunError loudly."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunError(f"{cmd[0]}: timed out", f"timed out after {timeout} s: {' '.join(cmd)}")
    except OSError as err:
        raise RunError(f"{cmd[0]}: {err.strerror}", f"{' '.join(cmd)}: {err}")
    where = f"{' '.join(cmd)} (exit {p.returncode})"
    name = os.path.basename(cmd[0])
    if p.returncode != 0:
        raise RunError(f"{name}: exit {p.returncode}", f"{where}:\n{p.stderr.strip()[-1500:]}")
    try:
        recs = {r["metric"]: r for r in map(json.loads, (ln for ln in p.stdout.splitlines()
                                                         if ln.startswith("{")))}
    except (ValueError, KeyError) as err:
        raise RunError(f"{name}: bad JSON line", f"{where}: {err}\n{p.stdout[-1500:]}")
    if not recs:
        raise RunError(f"{name}: no JSON line", f"{where}: printed no JSON line")
    for r in recs.values():
        if r.get("ok") is not True or not isinstance(r.get("value"), (int, float)):
            raise RunError(f"{name}: {r.get('metric')}: check failed or no value",
                           f"{where}: result check failed: {json.dumps(r)}")
    return recs


def measure(entry, cmds, pairs, timeout):
    """Warm-up, then pairs x (weft, go[, os-floor]); fills entry["metrics"]."""
    metrics = {}
    for i in range(pairs + 1):
        for side, cmd in cmds.items():
            recs = run_once(cmd, timeout)
            if i == 0:
                continue  # warm-up: checked, not counted
            for name, r in recs.items():
                m = metrics.setdefault(name, {"metric": name, "unit": r["unit"],
                                              "better": r["better"], "procs": r["procs"],
                                              "n": r["n"], "samples": {}})
                m["samples"].setdefault(side, []).append(r["value"])
    for m in metrics.values():
        s = m["samples"]
        m["median"] = {k: statistics.median(v) for k, v in s.items()}
        m["range"] = {k: [min(v), max(v)] for k, v in s.items()}
        w, g = m["median"].get("weft"), m["median"].get("go")
        m["ratio"] = w / g if w is not None and g else None
        m["goal"] = entry["goals"].get(m["metric"])
        m["goal_met"] = goal_met(m)
    entry["metrics"] = list(metrics.values())


def goal_met(m):
    """True/False for a goal (docs/benchmarks.md), None when there is none."""
    goal, med = m["goal"], m["median"]
    if not goal or "weft" not in med:
        return None
    if goal.startswith("floor+"):
        floor = med.get("os-floor")
        return None if floor is None else med["weft"] <= floor + float(goal[6:])
    op, num, unit = re.fullmatch(r"([<>]=)([\d.]+)(x|\w+)", goal).groups()
    value = m["ratio"] if unit == "x" else med["weft"]
    if value is None:
        return None
    return value <= float(num) if op == "<=" else value >= float(num)


def num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if a >= 1 else f"{v:.2g}"


def label(e):
    def short(v):
        for div, suffix in ((1000000, "M"), (1000, "k")):
            if isinstance(v, int) and v >= div and v % div == 0:
                return f"{v // div}{suffix}"
        return str(v)
    return e["scenario"] + "".join(f" {k}={short(v)}" for k, v in e["params"].items())


def print_table(entries, out=sys.stdout):
    rows = [("scenario", "metric", "better", "weft median [min-max]",
             "go median [min-max]", "weft/go", "os floor", "goal")]
    for e in entries:
        if e["status"] != "ok":
            rows.append((label(e), e["status"].upper(), "", e.get("why", ""), "", "", "", ""))
            continue
        for m in e["metrics"]:
            cell = {}
            for side in SIDES:
                if side in m["median"]:
                    lo, hi = m["range"][side]
                    cell[side] = f"{num(m['median'][side])} [{num(lo)}-{num(hi)}]"
            goal = ""
            if m["goal"]:
                verdict = {True: "met", False: "MISSED", None: "?"}[m["goal_met"]]
                goal = f"{m['goal']} {verdict}"
            ratio = f"{m['ratio']:.2f}x" if m["ratio"] is not None else "-"
            rows.append((label(e), f"{m['metric']} ({m['unit']})",
                         f"{m['better']} is better", cell.get("weft", "-"),
                         cell.get("go", "-"), ratio, cell.get("os-floor", ""), goal))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=out)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=out)


def write_svg(entries, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    rows = []  # (label, metric or None, note)
    for e in entries:
        ms = [m for m in e.get("metrics", []) if m["ratio"] is not None]
        if e["status"] != "ok" or not ms:
            rows.append((label(e), None, e["status"]))
        rows += [(f"{label(e)}  {m['metric']} ({m['better']} is better)", m, "") for m in ms]
    fig, ax = plt.subplots(figsize=(11, 1.4 + 0.36 * max(1, len(rows))))
    ys = list(range(len(rows)))[::-1]
    ratios = [m["ratio"] for _, m, _ in rows if m]
    lo, hi = min(ratios + [0.5]) / 1.5, max(ratios + [2.0]) * 1.5
    for y, (_, m, note) in zip(ys, rows):
        if m is None:
            ax.text(1.0, y, f" {note}", va="center", fontsize=8, style="italic")
            continue
        r = m["ratio"]
        win = (r <= 1) == (m["better"] == "lower")
        ax.barh(y, r - 1, left=1, color="#3a8f4b" if win else "#c0504d")
        ax.text(r, y, f" {r:.2f}x ", va="center", ha="left" if r >= 1 else "right", fontsize=8)
        goal = re.fullmatch(r"[<>]=([\d.]+)x", m["goal"] or "")
        if goal:
            ax.plot(float(goal.group(1)), y, marker="|", markersize=14, color="black")
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_yticks(ys, [r[0] for r in rows], fontsize=8)
    ax.set_ylim(-1, len(rows))
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.xaxis.set_major_locator(FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xlabel("weft / Go (log scale; 1.0 = parity; green = weft ahead; | = goal)")
    ax.set_title("weft vs Go, same run, same machine")
    fig.tight_layout()
    fig.savefig(path, format="svg")


def machine():
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weft", required=True, help="weft-test binary")
    ap.add_argument("--go", required=True, help="weft-bench-go binary")
    ap.add_argument("--floor", action="append", default=[],
                    help="an OS-floor binary (bench/floor_*.c): the scenarios its `list` "
                         "names get a third column, the same work with no runtime; repeatable")
    ap.add_argument("--scenarios", default="", help="comma-separated names (default: all)")
    ap.add_argument("--procs", type=int, help="procs= for every scenario")
    ap.add_argument("--pairs", type=int, help="A B pairs after the warm-up (5; quick 3)")
    ap.add_argument("--quick", action="store_true", help="fewer pairs, smaller n")
    ap.add_argument("--timeout", type=float, help="seconds per run (300; quick 120)")
    ap.add_argument("--out", default="build/bench", help="results.json, report.svg")
    a = ap.parse_args()
    pairs = a.pairs or (3 if a.quick else 5)
    timeout = a.timeout or (120 if a.quick else 300)
    cpus = len(os.sched_getaffinity(0))

    weft_names = listed([a.weft, "bench-list"])
    go_names = listed([a.go, "list"])
    floors = {name: f for f in a.floor for name in listed([f, "list"])}
    known = {name for name, *_ in ENTRIES}
    table = list(ENTRIES) + [(n, {}, {}, {}) for n in dict.fromkeys(weft_names + go_names)
                             if n not in known]  # new scenarios: their own defaults
    wanted = [s for s in a.scenarios.split(",") if s]
    unknown = set(wanted) - {t[0] for t in table}
    if unknown:
        sys.exit(f"bench.py: unknown scenario(s): {', '.join(sorted(unknown))}; "
                 f"known: {', '.join(dict.fromkeys(t[0] for t in table))}")

    entries, seen = [], set()
    for name, params, quick, goals in table:
        if (wanted and name not in wanted) or (a.quick and quick is None):
            continue
        p = dict(params, **(quick if a.quick else {}))
        p["procs"] = a.procs if a.procs else p.get("procs", cpus)
        key = (name, tuple(sorted(p.items())))
        if key in seen:  # PROCS= can make variants identical
            continue
        seen.add(key)
        entries.append({"scenario": name, "params": p, "goals": goals, "status": "ok"})

    failed = 0
    for i, e in enumerate(entries, 1):
        name, args = e["scenario"], [f"{k}={v}" for k, v in e["params"].items()]
        if name not in go_names:
            e.update(status="failed", why="no Go side in bench/go")
        elif name not in weft_names:
            e.update(status="pending", why="weft side not written yet")
        if e["status"] != "ok":
            failed += e["status"] == "failed"
            print(f"[{i}/{len(entries)}] {label(e)}: {e['status']}", file=sys.stderr)
            continue
        cmds = {"weft": [a.weft, "bench", name] + args, "go": [a.go, name] + args}
        if name in floors:
            cmds["os-floor"] = [floors[name], name] + args
        t0 = time.monotonic()
        try:
            measure(e, cmds, pairs, timeout)
            status = f"{time.monotonic() - t0:.1f} s"
        except RunError as err:
            e.update(status="failed", why=err.short, error=err.detail)
            failed += 1
            status = f"FAILED\n{err.detail}"
        print(f"[{i}/{len(entries)}] {label(e)}: {status}", file=sys.stderr, flush=True)

    os.makedirs(a.out, exist_ok=True)
    result = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
              "machine": machine(), "pairs": pairs, "quick": a.quick,
              "scenarios": entries}
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    write_svg(entries, os.path.join(a.out, "report.svg"))

    mach = result["machine"]
    print(f"\nweft vs Go — {result['date']}, {mach['cpu']}, {mach['cores']} cores, "
          f"{pairs} pairs after a warm-up{' (quick)' if a.quick else ''}")
    print("ratio = weft median / Go median, same run; each sample is a fresh process "
          "whose result was checked\n")
    print_table(entries)
    print(f"\nwrote {a.out}/results.json and {a.out}/report.svg")
    if failed:
        print(f"\nbench: {failed} scenario(s) FAILED:")
        for e in entries:
            if e["status"] == "failed":
                print(f"  {label(e)}: {e.get('error', e['why'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
