# SPDX-License-Identifier: MIT
"""weft.dll on windows-x86_64: it exports the API and nothing else, and a
program linked against its import library runs under Wine with the DLL
beside it, and does not run without it (so the code it ran was the DLL's).

Skipped unless windows-x86_64 is among the targets under test."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import DEFAULT_TARGETS, ROOT, read_target
from test_install import header_api

TARGET = "windows-x86_64"
CC = "x86_64-w64-mingw32-gcc"
OBJDUMP = "x86_64-w64-mingw32-objdump"

pytestmark = pytest.mark.skipif(
    TARGET not in os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split(),
    reason=f"{TARGET} is not under test")

# Tasks, a channel, a wait group and a sleep: enough of the runtime to show
# the DLL's scheduler, timers and poller at work.
PROGRAM = r"""
#include <stdio.h>
#include <weft.h>

static weft_chan *ch;
static weft_waitgroup wg;

static void producer(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 0; i < 1000; i++)
        weft_chan_send(ch, &(long){base + i});
    weft_wg_done(&wg);
}

static void main_task(void *arg)
{
    long *sum = arg;
    ch = weft_chan_make(sizeof(long), 16);
    weft_wg_add(&wg, 4);
    for (long p = 0; p < 4; p++)
        weft_go(producer, (void *)(intptr_t)(p * 1000));
    for (int i = 0; i < 4000; i++) {
        long v;
        weft_chan_recv(ch, &v);
        *sum += v;
    }
    weft_wg_wait(&wg);
    weft_sleep(2000000);
    weft_chan_free(ch);
}

int main(void)
{
    long sum = 0;
    weft_config cfg = {.procs = 2};
    int rc = weft_run(main_task, &sum, &cfg);
    printf("rc=%d sum=%ld version=%s\n", rc, sum, weft_version());
    return rc == 0 && sum == 3999L * 4000 / 2 ? 0 : 1;
}
"""


@pytest.fixture(scope="module")
def target():
    t = read_target(TARGET)
    if t.error:
        pytest.fail(f"target {TARGET}: {t.error}", pytrace=False)
    return t


def dll_exports(path):
    """The names in a PE image's export table (objdump -p)."""
    out = subprocess.run([OBJDUMP, "-p", path], capture_output=True, text=True,
                         check=True).stdout
    table = out.split("[Ordinal/Name Pointer] Table", 1)
    assert len(table) == 2, f"{path} has no export table"
    names = []
    for line in table[1].splitlines()[1:]:
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)$", line)
        if not m:
            break
        names.append(m.group(1))
    return names


def test_dll_exports_exactly_the_api(target):
    dll = os.path.join(target.build_dir, "weft.dll")
    assert os.path.exists(dll), f"{dll} missing: build it with `make TARGET={TARGET}`"
    exported = set(dll_exports(dll))
    api = set(header_api())
    assert exported == api, (f"not in weft.h: {sorted(exported - api)}; "
                             f"missing: {sorted(api - exported)}")


@pytest.mark.parametrize("using_dll", [True, False], ids=["dllimport", "thunks"])
def test_program_runs_on_the_dll(target, tmp_path, using_dll):
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    exe = tmp_path / "prog.exe"
    cmd = [CC, "-std=c11", "-O2", "-Wall", "-Werror", f"-I{ROOT}/include", str(src),
           os.path.join(target.build_dir, "libweft.dll.a"), "-o", str(exe)]
    if using_dll:
        cmd.insert(1, "-DWEFT_USING_DLL")
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    imports = subprocess.run([OBJDUMP, "-p", str(exe)], capture_output=True, text=True,
                             check=True).stdout
    assert "DLL Name: weft.dll" in imports, "the program does not import weft.dll"
    run = lambda: subprocess.run(target.run_prefix + [str(exe)], capture_output=True,
                                 text=True, timeout=60 * target.timeout_mult, cwd=tmp_path)
    # Without the DLL the loader refuses the program: the code that runs
    # below is the DLL's, not a copy linked into the program.
    p = run()
    assert p.returncode != 0 and "rc=" not in p.stdout, (p.returncode, p.stdout, p.stderr)
    shutil.copy(os.path.join(target.build_dir, "weft.dll"), tmp_path / "weft.dll")
    p = run()
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    assert f"rc=0 sum={3999 * 4000 // 2} version=" in p.stdout, p.stdout


def test_install_and_pkg_config(target, tmp_path):
    """`make install` for windows-x86_64 into a staging root, then the
    program built through the installed weft.pc: on the DLL, and statically
    (`-static` and `pkg-config --static`), which needs no DLL at all; then
    `make uninstall` leaves nothing of weft behind."""
    root = tmp_path / "root"
    prefix = "/usr/x86_64-w64-mingw32"
    make = ["make", "--no-print-directory", f"TARGET={TARGET}", f"DESTDIR={root}",
            f"PREFIX={prefix}"]
    p = subprocess.run(make + ["install"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    top = root / prefix.lstrip("/")
    want = {"bin/weft.dll", "include/weft.h", "lib/libweft.a", "lib/libweft.dll.a",
            "lib/pkgconfig/weft.pc"}
    got = {str(f.relative_to(top)) for f in top.rglob("*") if f.is_file()}
    assert got == want, got
    env = dict(os.environ, PKG_CONFIG_PATH=str(top / "lib/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=str(root))
    pc = lambda *a: subprocess.run(["pkg-config", *a, "weft"], capture_output=True, text=True,
                                   env=env, check=True).stdout.split()
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    run = lambda exe: subprocess.run(target.run_prefix + [str(exe)], capture_output=True,
                                     text=True, timeout=60 * target.timeout_mult,
                                     cwd=exe.parent)
    for kind, libs in (("dll", pc("--libs")), ("static", ["-static", *pc("--static", "--libs")])):
        d = tmp_path / kind
        d.mkdir()
        exe = d / "prog.exe"
        p = subprocess.run([CC, "-std=c11", "-O2", "-Wall", "-Werror", *pc("--cflags"), str(src),
                            "-o", str(exe), *libs], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        imports = subprocess.run([OBJDUMP, "-p", str(exe)], capture_output=True, text=True,
                                 check=True).stdout
        assert ("DLL Name: weft.dll" in imports) == (kind == "dll"), imports
        if kind == "dll":
            shutil.copy(top / "bin/weft.dll", d / "weft.dll")
        p = run(exe)
        assert p.returncode == 0 and "rc=0 sum=" in p.stdout, (kind, p.stdout, p.stderr)
    p = subprocess.run(make + ["uninstall"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert not [f for f in root.rglob("*") if f.is_file()], "uninstall left files"


# Loads weft.dll at run time, runs it with preemption on, unloads it, then
# exits: the exit hook weft registered in the C runtime's process-wide
# table (hal/win32/preempt.c) must not run code of the unloaded DLL, and
# the DLL must really go (no pinning).
DYNAMIC = r"""
#include <stdio.h>
#include <windows.h>
#include <weft.h>

typedef int (*run_fn)(void (*)(void *), void *, const weft_config *);
static volatile unsigned long spins;

static void spin(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < 50000000ul; i++)
        spins++;
}

int main(void)
{
    HMODULE dll = LoadLibraryA("weft.dll");
    if (!dll) { printf("load failed\n"); return 2; }
    run_fn run = (run_fn)(void (*)(void))GetProcAddress(dll, "weft_run");
    if (!run) { printf("no weft_run\n"); return 3; }
    weft_config cfg = {.procs = 1, .preempt = 1};
    int rc = run(spin, NULL, &cfg);
    BOOL freed = FreeLibrary(dll);
    printf("rc=%d freed=%d still_loaded=%d\n", rc, (int)freed,
           GetModuleHandleA("weft.dll") != NULL);
    fflush(stdout);
    return rc == 0 ? 0 : 4;
}
"""


def test_unloaded_dll_leaves_no_dangling_exit_hook(target, tmp_path):
    src = tmp_path / "dyn.c"
    src.write_text(DYNAMIC)
    exe = tmp_path / "dyn.exe"
    p = subprocess.run([CC, "-std=c11", "-O2", "-Wall", "-Werror", f"-I{ROOT}/include", str(src),
                        "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    shutil.copy(os.path.join(target.build_dir, "weft.dll"), tmp_path / "weft.dll")
    p = subprocess.run(target.run_prefix + [str(exe)], capture_output=True, text=True,
                       timeout=60 * target.timeout_mult, cwd=tmp_path)
    # The DLL goes at FreeLibrary; the exit handler it registered is a stub
    # outside it (hal/win32/preempt.c), which exit then runs without
    # jumping into the unloaded DLL.
    assert "rc=0 freed=1 still_loaded=0" in p.stdout, (p.returncode, p.stdout, p.stderr)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
