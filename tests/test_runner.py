# SPDX-License-Identifier: MIT
"""Self-tests of the pytest runner (conftest.py) against a fake weft-test, so
that a timeout, a skip or a crash is reported right whatever kern does."""

import os
import stat
import subprocess
import time

import pytest

import test_cases
from conftest import DEFAULT_TARGETS, ROOT, Case, Target, read_target, run_case, sanitizer_env

FAKE = r"""#!/bin/sh
case "$1 $2" in
"list ") printf 'pass 1000 -\nslow 1000 scaled,stress\n' ;;
"run pass") echo "weft-test: pass passed"; exit 0 ;;
"run quiet") exit 0 ;;
"run skip") echo "some noise" >&2; echo "skip: needs a unicorn" >&2; exit 77 ;;
"run fail") echo "t_x.c:1: CHECK failed: 1 == 2" >&2; exit 1 ;;
"run env") echo "scale=$WEFT_TEST_SCALE mult=$WEFT_TEST_TIMEOUT_MULT procs=${WEFT_PROCS:-unset} watchdog=$WEFT_TEST_WATCHDOG" >&2; exit 1 ;;
"run dog") echo "weft-test: watchdog: still running after 9000 ms" >&2; exit 3 ;;
"run hang") sleep 100 & echo $! > "$(dirname "$0")/child.pid"; sleep 100 ;;
*) exit 2 ;;
esac
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.delenv("WEFT_TEST_TIMEOUT_MULT", raising=False)
    monkeypatch.delenv("WEFT_STRESS", raising=False)
    exe = tmp_path / "weft-test"
    exe.write_text(FAKE)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return Target("fake", str(tmp_path), env={"RUN": "", "TIMEOUT_MULT": "2", "TEST_SCALE": "10"})


def case(t, name, timeout_ms=5000, procs=0):
    return Case(t, name, timeout_ms, frozenset(), procs)


def test_pass(fake):
    test_cases.test_case(case(fake, "pass"))


def test_exit0_without_closing_line_fails(fake):
    with pytest.raises(pytest.fail.Exception, match="no closing line"):
        test_cases.test_case(case(fake, "quiet"))


def test_skip_reason(fake):
    with pytest.raises(pytest.skip.Exception, match="needs a unicorn"):
        test_cases.test_case(case(fake, "skip"))


def test_fail_shows_output(fake):
    with pytest.raises(pytest.fail.Exception, match=r"exit 1(.|\n)*CHECK failed: 1 == 2"):
        test_cases.test_case(case(fake, "fail"))


def test_env_passed(fake):
    rc, out, err, *_ = run_case(case(fake, "env", procs=4))
    assert rc == 1
    # The watchdog: 10 s (5 s x TIMEOUT_MULT 2) less 5 s.
    assert "scale=10 mult=2 procs=4 watchdog=5000" in err


def test_watchdog_exit_reported(fake):
    with pytest.raises(pytest.fail.Exception, match=r"exit 3: still running(.|\n)*after 9000 ms"):
        test_cases.test_case(case(fake, "dog"))


@pytest.mark.parametrize("target", os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split())
def test_watchdog_fires(target):
    """weft-test's own watchdog: a run still going at WEFT_TEST_WATCHDOG
    prints the counters twice, then the dump, and exits 3 (a bad value
    is refused with exit 2)."""
    t = read_target(target)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    env = dict(os.environ)
    env.update(sanitizer_env(t, env))
    cmd = t.run_prefix + [t.exe, "bench", "preempt", "n=1000000"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * t.timeout_mult,
                       cwd=ROOT, env=dict(env, WEFT_TEST_WATCHDOG="1000"))
    err = p.stderr
    assert p.returncode == 3, f"exit {p.returncode}\n{err[-3000:]}"
    at = err.find("weft-test: watchdog: still running after 1000 ms")
    first = err.find("weft-test: watchdog at: tasks=2 ")
    second = err.find("weft-test: watchdog 1 s later: tasks=2 ")
    dump = err.find("weft: dump: 2 tasks, 1 procs")
    assert 0 <= at < first < second < dump, err[-3000:]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60 * t.timeout_mult,
                       cwd=ROOT, env=dict(env, WEFT_TEST_WATCHDOG="soon"))
    assert p.returncode == 2 and "bad WEFT_TEST_WATCHDOG=soon" in p.stderr, p.stderr


def test_timeout_kills_process_group(fake, tmp_path):
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="TIMEOUT after 0.6 s"):
        test_cases.test_case(case(fake, "hang", timeout_ms=300))  # x TIMEOUT_MULT 2
    assert time.monotonic() - start < 10
    pid = int((tmp_path / "child.pid").read_text())
    time.sleep(0.1)
    # The background child was in the case's process group: it must be gone
    # (or a zombie of init's, never still sleeping).
    try:
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] == "Z"
    except FileNotFoundError:
        pass


def test_missing_binary_fails(tmp_path):
    t = Target("nowhere", str(tmp_path), error="weft-test missing")
    with pytest.raises(pytest.fail.Exception, match="missing"):
        test_cases.test_case(case(t, "<missing>"))


def test_list_parsing(fake):
    from conftest import list_cases

    listed = list_cases(fake)
    assert not fake.error, fake.error
    assert listed == [("pass", 1000, frozenset()), ("slow", 1000, frozenset({"scaled", "stress"}))]
