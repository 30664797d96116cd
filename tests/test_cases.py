# SPDX-License-Identifier: MIT
"""One pytest item per (target, C test case): see conftest.py."""

import json
import os
import subprocess

import pytest

from conftest import (DEFAULT_TARGETS, ROOT, read_target, run_case, sanitizer_env, tail,
                      watchdog_ms)

# A report of the watchdog (exit 3) is shown whole: the counters, then a
# dump of every task.
WATCHDOG_LINES = 400


def _describe(rc):
    if rc is None:
        return "no exit status"
    if rc < 0:
        return f"killed by signal {-rc}"
    if rc > 128:
        return f"exit {rc} (signal {rc - 128} under the emulator?)"
    if rc == 3:
        return "exit 3: still running at the watchdog's time (a hang: its report is on stderr)"
    return f"exit {rc}"


def test_case(case):
    t = case.target
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    if "nowine" in case.flags and t.env.get("OS") == "win32":
        pytest.skip("F_NOWINE: not on windows-x86_64 (see tests/cases.h)")
    if "winonly" in case.flags and t.env.get("OS") != "win32":
        pytest.skip("F_WINONLY: only on windows-x86_64 (see tests/cases.h)")

    rc, out, err, secs, timed_out, cmd, timeout = run_case(case)
    where = f"$ {' '.join(cmd)}"
    if timed_out:
        pytest.fail(
            f"{case.id}: TIMEOUT after {timeout:.1f} s (killed)\n{where}\n"
            f"--- stdout ---\n{tail(out)}\n--- stderr ---\n{tail(err)}",
            pytrace=False,
        )
    if rc == 77:
        reasons = [l for l in err.splitlines() if l.startswith("skip:")]
        lines = err.strip().splitlines()
        reason = reasons[-1][5:].strip() if reasons else (lines[-1] if lines else "no reason given")
        pytest.skip(f"{case.id}: {reason}")
    if rc != 0:
        pytest.fail(
            f"{case.id}: {_describe(rc)} after {secs:.2f} s\n{where}\n"
            f"--- stdout ---\n{tail(out)}\n--- stderr ---\n"
            f"{tail(err, WATCHDOG_LINES if rc == 3 else None)}",
            pytrace=False,
        )
    # A pass needs the closing line too (tests/weft-test.c): Wine can turn a
    # crash into exit 0, and a case that ends early by exit(0) proves nothing.
    if f"weft-test: {case.name} passed" not in out.splitlines():
        pytest.fail(
            f"{case.id}: exit 0 but no closing line 'weft-test: {case.name} passed' "
            f"after {secs:.2f} s\n{where}\n"
            f"--- stdout ---\n{tail(out)}\n--- stderr ---\n{tail(err)}",
            pytrace=False,
        )


# ---- the runner itself --------------------------------------------------------

TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()


@pytest.mark.parametrize("target", TARGETS)
def test_runner_unknown_case(target):
    """`weft-test run` of an unknown name exits 2 with a message (never passes)."""
    t = read_target(target)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    p = subprocess.run(
        t.run_prefix + [t.exe, "run", "no_such_case_xyz"],
        capture_output=True, text=True, timeout=60 * t.timeout_mult, cwd=ROOT,
    )
    assert p.returncode == 2, p.stderr
    assert "unknown case" in p.stderr
    p = subprocess.run(t.run_prefix + [t.exe], capture_output=True, text=True,
                       timeout=60 * t.timeout_mult, cwd=ROOT)
    assert p.returncode == 2 and "usage" in p.stderr



@pytest.mark.parametrize("target", TARGETS)
def test_bench_preempt_short_naps(target):
    """bench preempt with naps shorter than a retake: the spinner never gets
    the proc during the loop, so it must have run before it, or it first
    runs after the stop and the bench waits for its count for ever (it
    hung so: 2 of 400 runs under Wine with the CPUs busy, and every run
    with these naps)."""
    t = read_target(target)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    if "-tsan" in t.env.get("VARIANT", ""):
        pytest.skip("its tight loop needs asynchronous preemption, which a TSan build does not do")
    env = dict(os.environ)
    timeout = 60 * t.timeout_mult
    env["WEFT_TEST_WATCHDOG"] = str(watchdog_ms(timeout))
    env.update(sanitizer_env(t, env))
    cmd = t.run_prefix + [t.exe, "bench", "preempt", "n=20", "dur_us=1"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    assert p.returncode == 0, (f"{_describe(p.returncode)}\n$ {' '.join(cmd)}\n{tail(p.stdout)}\n"
                               f"{tail(p.stderr, WATCHDOG_LINES)}")
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    assert len(lines) == 2 and all(r["ok"] is True and r["check"] == 20 for r in lines), p.stdout

def test_bench_smoke(bench_case):
    """Every bench scenario runs with a small n and emits well-formed JSON
    lines whose own result check passed (a bench that does nothing fails)."""
    t, name = bench_case
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    if name == "preempt" and "-tsan" in t.env.get("VARIANT", ""):
        pytest.skip("its tight loop needs asynchronous preemption, which a TSan build does not do")
    env = dict(os.environ)
    timeout = 120 * t.timeout_mult
    env["WEFT_TEST_WATCHDOG"] = str(watchdog_ms(timeout))
    env.update(sanitizer_env(t, env))
    cmd = t.run_prefix + [t.exe, "bench", name, "n=1000"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env=env)
    except subprocess.TimeoutExpired as e:
        def text(b):
            return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")
        pytest.fail(f"TIMEOUT after {timeout:.0f} s (killed)\n$ {' '.join(cmd)}\n"
                    f"--- stdout ---\n{tail(text(e.stdout))}\n"
                    f"--- stderr ---\n{tail(text(e.stderr), WATCHDOG_LINES)}", pytrace=False)
    if p.returncode == 77:  # a scenario not built for this target says why
        pytest.skip(f"{t.name}::{name}: {p.stderr.strip()}")
    assert p.returncode == 0, (f"{_describe(p.returncode)}\n$ {' '.join(cmd)}\n{tail(p.stdout)}\n"
                               f"{tail(p.stderr, WATCHDOG_LINES if p.returncode == 3 else None)}")
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    assert lines, f"no JSON line\n{tail(p.stdout)}\n{tail(p.stderr)}"
    for rec in lines:
        for key in ("scenario", "impl", "procs", "n", "metric", "value", "unit", "better",
                    "check", "ok"):
            assert key in rec, rec
        assert rec["impl"] == "weft" and rec["better"] in ("lower", "higher"), rec
        assert rec["ok"] is True, rec
