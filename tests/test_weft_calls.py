# SPDX-License-Identifier: MIT
"""weft's code calls nothing in the program's own text (scripts/check-weft-calls.py).

The preemption handler treats a PC in the program's .text as the program's
own code, where a task may be switched out. A helper the linker put there and
that weft calls (libgcc's outline atomics on aarch64 did) would let a task be
switched out in the middle of a weft call. Every linked binary of every
target under test is checked (ELF: the weft_text section; PE: the range
between hal_win32_text_lo and hal_win32_text_hi, where a branch to an import
thunk is allowed), and a planted violation must be caught."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import DEFAULT_TARGETS, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "check-weft-calls.py")
OBJDUMP = {"linux-x86_64": "objdump", "linux-aarch64": "aarch64-linux-gnu-objdump",
           "windows-x86_64": "x86_64-w64-mingw32-objdump"}
CC = {"linux-x86_64": "gcc", "linux-aarch64": "aarch64-linux-gnu-gcc",
      "windows-x86_64": "x86_64-w64-mingw32-gcc"}
EXE = {"windows-x86_64": ".exe"}
VARIANT = os.environ.get("WEFT_VARIANT", "")
TARGETS = [t for t in os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()
           if t in OBJDUMP]


def run_check(target, files):
    return subprocess.run([sys.executable, SCRIPT, OBJDUMP[target], *files],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", TARGETS)
def test_linked_binaries_call_nothing_in_program_text(target):
    build = os.path.join(ROOT, "build", target + VARIANT)
    exe = EXE.get(target, "")
    files = [os.path.join(build, f + exe) for f in ("weft-test", "demo", "echo", "httpd")]
    files += [os.path.join(build, f) for f in ("libweft.so", "weft.dll")]
    files = [f for f in files if os.path.exists(f)]
    test_exe = os.path.join(build, "weft-test" + exe)
    assert test_exe in files, f"{test_exe} missing: build it first"
    p = run_check(target, files)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": PASS") == len(files), p.stdout


# weft_text calls a function in .text: the pattern of an outline atomic.
PLANTED = r"""
__attribute__((noinline)) int helper_in_text(int x) { return x * 3; }
__attribute__((section("weft_text"), noinline)) int weft_fn(int x) { return helper_in_text(x) + 1; }
int main(int argc, char **argv) { (void)argv; return weft_fn(argc) == 4 ? 0 : 1; }
"""


# PE: the same, between markers like text_bounds.S's, and next to it a
# direct call to an import thunk (GetTickCount declared without dllimport,
# so the linker's thunk in .text is called), which the rule allows.
PLANTED_PE = r"""
unsigned long __stdcall GetTickCount(void);
__asm__(".section .text$weft_a,\"xr\"\n.globl hal_win32_text_lo\nhal_win32_text_lo:\n"
        ".section .text$weft_z,\"xr\"\n.globl hal_win32_text_hi\nhal_win32_text_hi:\nint3\n"
        ".text\n");
__attribute__((noinline)) int helper_in_text(int x) { return x * 3; }
__attribute__((section(".text$weft_m"), noinline)) int weft_fn(int x)
{
    return helper_in_text(x) + (int)(GetTickCount() & 0);
}
int main(int argc, char **argv) { (void)argv; return weft_fn(argc) == 4 ? 0 : 1; }
"""


@pytest.mark.parametrize("target", TARGETS)
def test_planted_call_into_program_text_is_caught(tmp_path, target):
    if not shutil.which(CC[target]):
        pytest.fail(f"{CC[target]} not installed: run scripts/deps.sh")
    src = tmp_path / "planted.c"
    src.write_text(PLANTED_PE if target.startswith("windows") else PLANTED)
    exe = tmp_path / ("planted" + EXE.get(target, ""))
    subprocess.run([CC[target], "-O1", "-o", str(exe), str(src)], check=True, timeout=120)
    p = run_check(target, [str(exe)])
    assert p.returncode == 1, p.stdout + p.stderr
    assert "weft_fn calls helper_in_text" in p.stdout, p.stdout
    assert "FAIL" in p.stdout, p.stdout
    if target.startswith("windows"):
        # The thunk call is allowed: only the helper is reported.
        assert "GetTickCount" not in p.stdout, p.stdout
