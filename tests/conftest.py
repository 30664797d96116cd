# SPDX-License-Identifier: MIT
"""pytest driver for weft's C test cases (tests/cases.h, built into weft-test).

For every required target (env WEFT_TARGETS, default "linux-x86_64
linux-aarch64 windows-x86_64") it reads `build/<target><variant>/weft-test list` and makes one
item per (target, case), id `target::case`, in tests/test_cases.py. Each item
runs `RUN weft-test run CASE` in its own process group with the case's
timeout times the target's multiplier, and kills the group on timeout.

Exit 0 passes, 77 skips (reason from stderr), anything else fails with the
tail of the output. A target whose weft-test is missing fails: CI requires
every target.

Environment WEFT_QEMU_CPU=NAME runs qemu-user targets with `-cpu NAME`
instead of the one in their RUN (mk/<target>.mk), e.g. `max` for SVE.

Options:
  --stress           also run F_STRESS cases (env WEFT_STRESS=N does too and
                     multiplies counts by N through WEFT_TEST_STRESS)
  --repeat N         run every case N times
  --procs-list L     run every case once per WEFT_PROCS value in L (1,2,4,8)
"""

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TARGETS = "linux-x86_64 linux-aarch64 windows-x86_64"
TAIL_LINES = 60


@dataclass
class Target:
    name: str
    build_dir: str
    env: dict = field(default_factory=dict)  # from build/<target>/target.env
    error: str = ""  # why this target cannot run

    @property
    def run_prefix(self):
        return qemu_cpu(shlex.split(self.env.get("RUN", "")), os.environ.get("WEFT_QEMU_CPU", ""))

    @property
    def exe(self):
        return os.path.join(self.build_dir, "weft-test" + self.env.get("EXE", ""))

    @property
    def timeout_mult(self):
        return float(os.environ.get("WEFT_TEST_TIMEOUT_MULT") or self.env.get("TIMEOUT_MULT", "1"))

    @property
    def scale(self):
        return self.env.get("TEST_SCALE", "1")


def qemu_cpu(prefix, cpu):
    """prefix with its qemu-user `-cpu` replaced by (or given) cpu, when cpu
    is not empty and prefix runs qemu-user; otherwise prefix unchanged. This
    is how WEFT_QEMU_CPU picks the emulated CPU (e.g. `max`, which has SVE,
    or `max,sve-default-vector-length=256`) without rebuilding."""
    if not cpu or not prefix or not os.path.basename(prefix[0]).startswith("qemu-"):
        return prefix
    out = [prefix[0], "-cpu", cpu]
    rest = prefix[1:]
    i = 0
    while i < len(rest):
        if rest[i] == "-cpu" and i + 1 < len(rest):
            i += 2
            continue
        out.append(rest[i])
        i += 1
    return out


@dataclass
class Case:
    target: Target
    name: str
    timeout_ms: int
    flags: frozenset
    procs: int = 0  # WEFT_PROCS for this run, 0 = unset
    rep: int = 0

    @property
    def id(self):
        s = f"{self.target.name}::{self.name}"
        if self.procs:
            s += f"@p{self.procs}"
        if self.rep:
            s += f"#{self.rep}"
        return s


def pytest_addoption(parser):
    g = parser.getgroup("weft")
    g.addoption("--stress", action="store_true", help="also run F_STRESS cases")
    g.addoption("--repeat", type=int, default=1, metavar="N", help="run every case N times")
    g.addoption(
        "--procs-list",
        default="",
        metavar="L",
        help="comma list of WEFT_PROCS values; every case runs once per value",
    )


def stress_mult():
    v = os.environ.get("WEFT_STRESS", "")
    return int(v) if v.strip() else 0


def read_target(name):
    variant = os.environ.get("WEFT_VARIANT", "")
    t = Target(name, os.path.join(ROOT, "build", name + variant))
    envf = os.path.join(t.build_dir, "target.env")
    if not os.path.exists(envf):
        t.error = f"{envf} missing: build it with `make TARGET={name}`"
        return t
    with open(envf) as f:
        for line in f:
            k, sep, v = line.rstrip("\n").partition("=")
            if sep:
                t.env[k] = v
    if not os.path.exists(t.exe):
        t.error = f"{t.exe} missing: build it with `make TARGET={name}`"
    elif "wine" in t.run_prefix:
        t.error = wine_setup(t)
    return t


# ---- Wine --------------------------------------------------------------------
# Targets whose RUN runs `wine` run in a prefix of their own, under
# build/<target>/wineprefix: created once (wineboot, 5-7 s), headless, with
# Wine's automatic debugger off (AeDebug): with it on, winedbg turns some
# crashes into exit 0. One wineserver is started for the whole pytest run
# (`wineserver -p`: it stays, instead of each case paying 0.4-1.2 s to start
# one) and stopped at the end (pytest_unconfigure). The prefix is shared by
# every wine target of the run; the environment set here is inherited by
# every case.

_wine_started = []


def wine_setup(t):
    """Prepares the prefix and the server; returns "" or why it failed."""
    if _wine_started:
        return ""
    prefix = os.path.join(t.build_dir, "wineprefix")
    os.environ["WINEPREFIX"] = prefix
    os.environ["WINEDEBUG"] = "-all"
    os.environ["WINEDLLOVERRIDES"] = "mscoree,mshtml="
    os.environ.pop("DISPLAY", None)
    os.environ.pop("WAYLAND_DISPLAY", None)
    ready = os.path.join(prefix, ".weft-ready")
    aedebug = r"HKLM\Software\Microsoft\Windows NT\CurrentVersion\AeDebug"
    steps = [["wineboot", "-i"],
             ["wine", "reg", "add", aedebug, "/v", "Auto", "/t", "REG_SZ", "/d", "0", "/f"],
             ["wine", "reg", "delete", aedebug, "/v", "Debugger", "/f"]]
    try:
        if not os.path.exists(ready):
            os.makedirs(prefix, exist_ok=True)
            for i, cmd in enumerate(steps):
                # Output to files, not pipes: see wineboot below.
                p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=300)
                # Deleting a value that is not there fails; that is fine.
                if p.returncode != 0 and i < 2:
                    return f"`{' '.join(cmd)}` exited {p.returncode}"
            subprocess.run(["wineserver", "-w"], timeout=120, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            open(ready, "w").close()
        subprocess.run(["wineserver", "-p"], check=True, timeout=60,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The first program of a session starts Wine's services, which live
        # on and keep the descriptors they inherited: started here with none
        # of a case's pipes, or every captured run would wait for them.
        subprocess.run(["wineboot"], timeout=120, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return f"preparing Wine in {prefix} failed: {e}"
    _wine_started.append(prefix)
    return ""


def pytest_unconfigure(config):
    if _wine_started:
        subprocess.run(["wineserver", "-k"], timeout=60)
        # Until it is gone: a pytest run started right after this one met a
        # wineserver still going down, and `weft-test list` hung for its
        # whole 120 s (1 of 20 back-to-back runs).
        try:
            subprocess.run(["wineserver", "-w"], timeout=60)
        except subprocess.TimeoutExpired:
            print("\nweft: wineserver still running 60 s after wineserver -k")


def pytest_sessionfinish(session, exitstatus):
    """A target that cannot run fails the session even when -k deselected
    its failing placeholder item (the regression passes select by name)."""
    broken = [t for t, _ in _targets_cache.values() if t.error]
    for t in broken:
        print(f"\nweft: target {t.name} cannot run: {t.error}")
    if broken and session.exitstatus in (0, 5):  # 5: no test collected
        session.exitstatus = 1


def list_cases(t):
    """The (name, timeout_ms, flags) lines of `weft-test list`, or sets t.error."""
    if t.error:
        return []
    cmd = t.run_prefix + [t.exe, "list"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as e:
        t.error = f"`{' '.join(cmd)}` failed: {e}"
        return []
    if p.returncode != 0:
        t.error = f"`{' '.join(cmd)}` exited {p.returncode}:\n{p.stdout}{p.stderr}"
        return []
    out = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            t.error = f"bad line from `weft-test list`: {line!r}"
            return []
        flags = frozenset() if parts[2] == "-" else frozenset(parts[2].split(","))
        out.append((parts[0], int(parts[1]), flags))
    if not out:
        t.error = "`weft-test list` printed no case"
    return out


def pytest_generate_tests(metafunc):
    """Parametrizes `case` with every case but F_CRASH ones, and `crash_case`
    (for tests that check how a crash ends, e.g. test_crash.py) with those."""
    for fixture, want_crash in (("case", False), ("crash_case", True)):
        if fixture in metafunc.fixturenames:
            params = collect_cases(metafunc.config, want_crash)
            metafunc.parametrize(fixture, params, ids=[c.id for c in params])
    if "bench_case" in metafunc.fixturenames:
        params = collect_benches()
        metafunc.parametrize("bench_case", params, ids=[f"{t.name}::{b}" for t, b in params])


def collect_benches():
    """(target, scenario) for every scenario of `weft-test bench-list`."""
    out = []
    for name in os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split():
        t, _ = cached_target(name)
        if t.error:
            out.append((t, "<missing>"))
            continue
        p = subprocess.run(t.run_prefix + [t.exe, "bench-list"], capture_output=True,
                           text=True, timeout=120, cwd=ROOT)
        if p.returncode != 0:
            t.error = f"`weft-test bench-list` exited {p.returncode}: {p.stderr}"
            out.append((t, "<missing>"))
            continue
        out += [(t, line.split()[0]) for line in p.stdout.splitlines() if line.strip()]
    return out


_targets_cache = {}


def cached_target(name):
    """read_target + list_cases once per session and target."""
    if name not in _targets_cache:
        t = read_target(name)
        _targets_cache[name] = (t, list_cases(t))
    return _targets_cache[name]


def collect_cases(config, want_crash):
    """Case objects for every required target (one failing placeholder for a
    target that cannot run)."""
    names = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()
    repeat = max(1, config.getoption("--repeat"))
    procs_list = [int(p) for p in config.getoption("--procs-list").split(",") if p.strip()]
    params = []
    for name in names:
        t, listed = cached_target(name)
        if t.error:
            # One failing item per broken target: never a silent skip.
            params.append(Case(t, "<missing>", 0, frozenset()))
            continue
        for cname, timeout_ms, flags in listed:
            if ("crash" in flags) != want_crash:
                continue
            for procs in procs_list or [0]:
                for rep in range(1, repeat + 1) if repeat > 1 else [0]:
                    params.append(Case(t, cname, timeout_ms, flags, procs, rep))
    return params


def pytest_collection_modifyitems(config, items):
    stress = config.getoption("--stress") or stress_mult() > 0
    if stress:
        return
    keep, drop = [], []
    for item in items:
        c = getattr(item, "callspec", None)
        case = (c.params.get("case") or c.params.get("crash_case")) if c else None
        (drop if case is not None and "stress" in case.flags else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def tail(text, n=None):
    n = n or TAIL_LINES
    lines = text.splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} lines above)"] + lines[-n:]
    return "\n".join(lines)


def sanitizer_env(t, env):
    """What a sanitizer variant's runs need in the environment (the build's
    VARIANT says which): LeakSanitizer's and TSan's suppressions
    (tests/lsan.supp, tests/tsan.supp, a reason per line) and, for TSan,
    no SIGSEGV/SIGBUS handler of its own, so that weft's guard
    page message and the cases that die by a signal in a fork()ed child
    behave as without it (the ASan build says the same in t_hal.c's
    __asan_default_options). Options already in the environment come first
    and the ones here win."""
    out = {}
    if "-asan" in t.env.get("VARIANT", ""):
        opts = [env.get("LSAN_OPTIONS", ""),
                "suppressions=" + os.path.join(ROOT, "tests", "lsan.supp")]
        out["LSAN_OPTIONS"] = " ".join(o for o in opts if o)
    if "-tsan" in t.env.get("VARIANT", ""):
        opts = [env.get("TSAN_OPTIONS", ""),
                "suppressions=" + os.path.join(ROOT, "tests", "tsan.supp"),
                "handle_segv=0", "handle_sigbus=0"]
        out["TSAN_OPTIONS"] = " ".join(o for o in opts if o)
    return out


def watchdog_ms(timeout_s):
    """WEFT_TEST_WATCHDOG for a process given timeout_s: weft-test reports
    what a run that is still going does, and exits 3, this long before the
    kill (tests/weft-test.c): 10 % of the time or at least 5 s (a report
    under Wine takes a second or two), never less than half of it."""
    margin = max(timeout_s * 0.1, 5.0)
    return max(int((timeout_s - margin) * 1000), int(timeout_s * 500), 1)


def run_case(case):
    """Runs one case in its own process group.

    Returns (returncode, stdout, stderr, seconds, timed_out, cmd, timeout_s)."""
    t = case.target
    timeout = case.timeout_ms / 1000.0 * t.timeout_mult
    env = dict(os.environ)
    env["WEFT_TEST_TIMEOUT_MULT"] = str(int(t.timeout_mult) if t.timeout_mult.is_integer() else t.timeout_mult)
    env["WEFT_TEST_SCALE"] = t.scale
    mult = stress_mult()
    if mult > 0:
        env["WEFT_TEST_STRESS"] = str(mult)
    if case.procs:
        env["WEFT_PROCS"] = str(case.procs)
    env["WEFT_TEST_WATCHDOG"] = str(watchdog_ms(timeout))
    env.update(sanitizer_env(t, env))
    cmd = t.run_prefix + [t.exe, "run", case.name]
    start = time.monotonic()
    p = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
    else:
        # Nothing of the case may outlive it (a stray child would hold the pipes).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    secs = time.monotonic() - start
    return (
        p.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        secs,
        timed_out,
        cmd,
        timeout,
    )
