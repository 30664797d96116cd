# SPDX-License-Identifier: MIT
"""The dump of a program whose tasks wait in every way (tests/t_dump.c):
from weft_dump() on every target, from SIGQUIT on the POSIX ones, from the
console handler's Ctrl-Break on Windows. Each
task's line must name its wait and what it waits on; scripts/symbolize
must turn its "started as" address into the function it was started
with, its first frame into the scheduler's switch, and one of its frames
into that function again (the frame chain reaches the task's own code).
"""

import os
import re
import subprocess
import sys

import pytest

from conftest import DEFAULT_TARGETS, ROOT, read_target, sanitizer_env

TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()

# start function: (the state in the brackets, what follows them)
WAITERS = {
    "dw_chan_send": (r"waiting: chan send, \d+ ms", r" on chan 0x[0-9a-f]+"),
    "dw_chan_recv": (r"waiting: chan receive, \d+ ms", r" on chan 0x[0-9a-f]+"),
    "dw_mutex": (r"waiting: mutex lock, \d+ ms", r" on mutex 0x[0-9a-f]+"),
    "dw_sleep": (r"waiting: sleep, \d+ ms", r""),
    "dw_read": (r"waiting: I/O read, \d+ ms", r" on fd \d+"),
    "dw_block": (r"running: in a blocking call \(weft_block_begin\), \d+ ms", r""),
}

HEADER = re.compile(r"^  task (\d+) \[(.*?)\](.*?), stack 0x[0-9a-f]+-0x[0-9a-f]+$")
FRAME = re.compile(r"^    #(\d+) 0x[0-9a-f]+ (\S+) at (\S+)$")
START = re.compile(r"^    started as 0x[0-9a-f]+ (\S+) at (\S+)$")
PREEMPTED = re.compile(r"^    preempted at 0x[0-9a-f]+ (\S+) at (\S+)$")
INLINED = re.compile(r"^        inlined into (\S+) at (\S+)$")


def run(t, case, timeout=60):
    env = dict(os.environ)
    mult = t.timeout_mult
    env["WEFT_TEST_TIMEOUT_MULT"] = str(int(mult) if mult.is_integer() else mult)
    env.update(sanitizer_env(t, env))
    return subprocess.run(
        t.run_prefix + [t.exe, "run", case],
        capture_output=True,
        text=True,
        timeout=timeout * mult,
        cwd=ROOT,
        env=env,
    )


def symbolize(text):
    p = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "symbolize")],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def tasks_of(text):
    """{start function: (header state, header rest, [(frame fn, file)])}."""
    out = {}
    cur = None
    for line in text.splitlines():
        h = HEADER.match(line)
        if h:
            cur = {"state": h.group(2), "rest": h.group(3), "frames": [], "preempted": None}
            continue
        if cur is None:
            continue
        p = PREEMPTED.match(line)
        if p:
            cur["preempted"] = p.group(1)
            continue
        f = FRAME.match(line)
        if f:
            cur["frames"].append((f.group(2), f.group(3)))
            continue
        s = START.match(line)
        if s:
            assert s.group(1) not in out, f"two tasks started as {s.group(1)}"
            out[s.group(1)] = cur
            cur = None
    return out


def check_dump(text, where, spinners=False):
    sym = symbolize(text)
    tasks = tasks_of(sym)
    shown = f"{where}\n--- symbolized ---\n{sym[-6000:]}"
    for fn, (state, rest) in WAITERS.items():
        assert fn in tasks, f"no task started as {fn}\n{shown}"
        t = tasks[fn]
        assert re.fullmatch(state, t["state"]), f"{fn}: [{t['state']}]\n{shown}"
        assert re.fullmatch(rest, t["rest"]), f"{fn}: {t['rest']!r}\n{shown}"
        if fn == "dw_block":
            # Running on its thread: no frames are read.
            assert t["frames"] == [], f"{fn}: frames of a running task\n{shown}"
            continue
        frames = t["frames"]
        assert frames, f"{fn}: no frames\n{shown}"
        first, first_file = frames[0]
        assert first in ("k_switch", "switch_direct") and first_file.replace("\\", "/").find(
            "kern/sched.c"
        ) >= 0, f"{fn}: first frame {first} at {first_file}\n{shown}"
        assert fn in [f for f, _ in frames], f"{fn}: not among its frames\n{shown}"
    # A frame in code the compiler inlined (the scheduler's switch is) is
    # followed by a line per function it was inlined into.
    inlined = 0
    prev = ""
    for line in sym.splitlines():
        if "inlined into" in line:
            assert INLINED.match(line), f"inlined line {line!r}\n{shown}"
            assert FRAME.match(prev) or INLINED.match(prev), f"{line!r} after {prev!r}\n{shown}"
            inlined += 1
        prev = line
    assert inlined > 0, f"no inlined frame named\n{shown}"
    if spinners and "dump: a spinner" in text:
        # One proc, held by the first task while it dumps: the spinner
        # waits, switched out by an interrupt, and the dump says where.
        assert "dw_spin" in tasks, f"no task started as dw_spin\n{shown}"
        t = tasks["dw_spin"]
        assert t["state"] == "runnable", f"dw_spin: [{t['state']}]\n{shown}"
        assert t["preempted"] == "dw_spin_loop", f"dw_spin preempted at {t['preempted']}\n{shown}"
    return sym


def target_or_fail(name):
    t = read_target(name)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    return t


@pytest.mark.parametrize("target", TARGETS)
def test_dump_waits(target):
    """weft_dump() names each wait, each start function and each frame."""
    t = target_or_fail(target)
    p = run(t, "dump_waits")
    where = f"$ {t.exe} run dump_waits (exit {p.returncode})\n--- stderr ---\n{p.stderr[-6000:]}"
    assert p.returncode == 0, where
    assert re.search(r"^weft: dump: \d+ tasks, 1 procs", p.stderr, re.M), where
    # The monitor's view follows the first line: its last round, the proc.
    assert re.search(r"^  monitor: last round \d+ us ago, (naps of \d+ us|parked), lending (on|off)$",
                     p.stderr, re.M), where
    # The task that dumps holds the one proc.
    assert re.search(r"^  proc 0: running, thread \d+, task \d+ for -?\d+ ms; "
                     r"(interrupted \d+ ms ago|not interrupted), cpu [a-zA-Z ]+; "
                     r"thread \d+: task \d+, proc 0, preempt_req \d, interrupts sent \d+ seen \d+, "
                     r"locks \d+$",
                     p.stderr, re.M), where
    check_dump(p.stderr, where, spinners=True)
    # The blocking call's age counts from the call (dw_block works 200 ms
    # first without a scheduler pass): at most what the case measured
    # before asking for the dump, plus the dump's own time.
    began = re.search(r"^dump: the blocking call began (\d+) ms before the dump$", p.stderr, re.M)
    shown = re.search(r"in a blocking call \(weft_block_begin\), (\d+) ms", p.stderr)
    assert began and shown, where
    assert int(shown.group(1)) <= int(began.group(1)) + 50, where


def posix_target(name):
    t = target_or_fail(name)
    if name.startswith("windows"):
        pytest.skip("SIGQUIT is POSIX's (Ctrl-Break is Windows' own)")
    return t


@pytest.mark.parametrize("target", TARGETS)
def test_dump_sigquit_chains(target):
    """SIGQUIT prints the dump, then the host's own handler runs."""
    t = posix_target(target)
    p = run(t, "dump_sigquit")
    where = f"$ {t.exe} run dump_sigquit (exit {p.returncode})\n--- stderr ---\n{p.stderr[-6000:]}"
    assert p.returncode == 0, where
    head = p.stderr.find("weft: SIGQUIT: dump: ")
    host = p.stderr.find("host: SIGQUIT handler ran")
    assert 0 <= head < host, f"the dump, then the host's handler\n{where}"
    check_dump(p.stderr, where)


@pytest.mark.parametrize("target", TARGETS)
def test_dump_sigquit_ignored(target):
    """A host that ignores SIGQUIT gets the dump, and its program goes on."""
    t = posix_target(target)
    p = run(t, "dump_sigquit_ignored")
    where = f"$ {t.exe} run dump_sigquit_ignored (exit {p.returncode})\n{p.stderr[-6000:]}"
    assert p.returncode == 0, where
    assert "weft: SIGQUIT: dump: " in p.stderr, where
    assert "the program went on" in p.stderr, where
    check_dump(p.stderr, where)


@pytest.mark.parametrize("target", TARGETS)
def test_dump_sigquit_default(target):
    """At SIG_DFL the dump comes first, then the process dies of SIGQUIT."""
    t = posix_target(target)
    p = run(t, "dump_sigquit_default")
    where = f"$ {t.exe} run dump_sigquit_default (exit {p.returncode})\n{p.stderr[-6000:]}"
    assert p.returncode == -3, f"not killed by SIGQUIT\n{where}"
    assert "still alive" not in p.stderr, where
    check_dump(p.stderr, where)


@pytest.mark.parametrize("target", TARGETS)
def test_dump_ctrl_break(target):
    """Windows: the console handler prints the dump on Ctrl-Break (only),
    and passes the event on (the case checks it returns FALSE)."""
    t = target_or_fail(target)
    if not target.startswith("windows"):
        pytest.skip("Ctrl-Break is Windows' (SIGQUIT is POSIX's)")
    p = run(t, "dump_ctrl_break")
    where = f"$ {t.exe} run dump_ctrl_break (exit {p.returncode})\n{p.stderr[-6000:]}"
    assert p.returncode == 0, where
    c = p.stderr.find("dump_ctrl_break: Ctrl-C first")
    b = p.stderr.find("dump_ctrl_break: Ctrl-Break")
    d = p.stderr.find("weft: Ctrl-Break: dump: ")
    assert 0 <= c < b < d, f"the dump after Ctrl-Break only\n{where}"
    assert p.stderr.count("weft: Ctrl-Break: dump: ") == 1, where
    check_dump(p.stderr, where)
