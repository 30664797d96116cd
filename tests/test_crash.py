# SPDX-License-Identifier: MIT
"""Cases that must end the process, and output that must say something.

F_CRASH cases (tests/cases.h) are checked here rather than by the generic
runner: each must die abnormally (never exit 0) and print the message that
names what happened. Also the deadlock report's content, and a valgrind
leak check of repeated weft_run cycles on the native build.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import DEFAULT_TARGETS, ROOT, read_target, run_case, tail

# What each crash case must print on stderr (regular expressions).
EXPECT = {
    "crash_stack_overflow": r"weft: task (\d+): stack overflow \(fault at 0x[0-9a-f]+",
    # k_panic's message, then the dump weft_run hooked in: the blocked task.
    "crash_panic_dump": r"weft: fatal: planted by crash_panic_dump\n[\s\S]*"
    r"  task \d+ \[waiting: chan receive, ",
    # SIGQUIT at SIG_DFL: the dump, then death by SIGQUIT (tests/test_dump.py
    # reads the dump itself).
    "dump_sigquit_default": r"weft: SIGQUIT: dump: [\s\S]*  task \d+ \[waiting: chan send, ",
    # A call that needs a proc inside a weft_block_begin/end pair: the rule
    # named, then the dump, with the offender in its blocking call.
    "misuse_block_call": r"weft: task (\d+) called weft between weft_block_begin and "
    r"weft_block_end[^\n]*\n[\s\S]*  task \1 \[running: in a blocking call",
    "misuse_block_select": r"weft: task (\d+) called weft between weft_block_begin and "
    r"weft_block_end[^\n]*\n[\s\S]*  task \1 \[running: in a blocking call",
    # A channel used after weft_chan_free: the call named, then the dump.
    "misuse_chan_freed": r"weft: weft_chan_try_send\(0x[0-9a-f]+\): not a live channel[^\n]*\n"
    r"weft: fatal: [\s\S]*  task \d+ \[running",
    "misuse_timer_freed": r"weft: weft_timer_stop\(0x[0-9a-f]+\): not a live timer[^\n]*\n"
    r"weft: fatal: [\s\S]*  task \d+ \[running",
}


def test_crash(crash_case):
    import re

    t = crash_case.target
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    if "nowine" in crash_case.flags and t.env.get("OS") == "win32":
        pytest.skip("F_NOWINE: not on windows-x86_64 (see tests/cases.h)")
    assert crash_case.name in EXPECT, f"no expectation for crash case {crash_case.name}"
    rc, out, err, secs, timed_out, cmd, timeout = run_case(crash_case)
    where = f"$ {' '.join(cmd)}\n--- stderr ---\n{tail(err)}"
    assert not timed_out, f"timed out after {timeout:.1f} s\n{where}"
    assert rc != 0, f"exited 0: the crash was not caught\n{where}"
    m = re.search(EXPECT[crash_case.name], err)
    assert m, f"message not found: {EXPECT[crash_case.name]}\n{where}"
    if crash_case.name == "crash_stack_overflow":
        # The message names the task that overflowed, which announced itself.
        announced = re.search(r"overflowing task (\d+)", err)
        assert announced and announced.group(1) == m.group(1), where


TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()


def run(t, args, env=None, timeout=120):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(
        t.run_prefix + [t.exe] + args,
        capture_output=True,
        text=True,
        timeout=timeout * t.timeout_mult,
        cwd=ROOT,
        env=e,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_deadlock_report(target):
    """The deadlock report names every blocked task, what it waits on, its
    frames and its start function."""
    t = read_target(target)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    p = run(t, ["run", "sched_deadlock"])
    assert p.returncode == 0, p.stderr
    assert "weft: deadlock: all 2 tasks are asleep" in p.stderr, p.stderr
    assert "task 1 [waiting: waitgroup wait" in p.stderr, p.stderr
    assert "task 2 [waiting: mutex lock" in p.stderr, p.stderr
    # The same dump as weft_dump's: each task's frames and start function.
    assert p.stderr.count("    started as 0x") >= 2, p.stderr
    assert "    #0 0x" in p.stderr, p.stderr


def test_no_leaks_valgrind():
    """100 weft_run cycles leave no definite leak (native build, memcheck)."""
    if not shutil.which("valgrind"):
        pytest.fail("valgrind missing: run scripts/deps.sh", pytrace=False)
    t = read_target("linux-x86_64")
    if t.error:
        pytest.fail(t.error, pytrace=False)
    p = subprocess.run(
        [
            "valgrind",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--error-exitcode=99",
            "--quiet",
            t.exe,
            "run",
            "sched_cycles",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert p.returncode == 0, f"rc={p.returncode}\n{tail(p.stderr)}"
    assert "definitely lost" not in p.stderr, tail(p.stderr)


def test_demo_memcheck():
    """examples/demo under valgrind's memcheck reports no error: task stacks
    are registered with it (hal/posix/tools.c), so switching between them
    is not taken for wild stack moves. A small count keeps it to seconds."""
    if not shutil.which("valgrind"):
        pytest.fail("valgrind missing: run scripts/deps.sh", pytrace=False)
    t = read_target("linux-x86_64")
    if t.error:
        pytest.fail(t.error, pytrace=False)
    demo = os.path.join(t.build_dir, "demo")
    assert os.path.exists(demo), f"{demo} missing: build it with `make`"
    p = subprocess.run(
        ["valgrind", "--error-exitcode=99", "--quiet", demo, "2000"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    where = f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-3000:]}\n--- stderr ---\n{p.stderr[-6000:]}"
    assert p.returncode == 0, where
    assert "demo: OK" in p.stdout, where
    # memcheck's reports start with ==pid== and name the error.
    errors = [l for l in p.stderr.splitlines() if re.match(r"==\d+== \S", l)]
    assert not errors, where
