# SPDX-License-Identifier: MIT
"""weft's code calls nothing in the program's own text (scripts/check-weft-calls.py).

The preemption handler treats a PC in the program's .text as the program's
own code, where a task may be switched out. A helper the linker put there and
that weft calls (libgcc's outline atomics on aarch64 did) would let a task be
switched out in the middle of a weft call. Every linked binary of every POSIX
target under test is checked, and a planted violation must be caught."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import DEFAULT_TARGETS, ROOT

SCRIPT = os.path.join(ROOT, "scripts", "check-weft-calls.py")
OBJDUMP = {"linux-x86_64": "objdump", "linux-aarch64": "aarch64-linux-gnu-objdump"}
CC = {"linux-x86_64": "gcc", "linux-aarch64": "aarch64-linux-gnu-gcc"}
VARIANT = os.environ.get("WEFT_VARIANT", "")
TARGETS = [t for t in os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()
           if t in OBJDUMP]


def run_check(target, files):
    return subprocess.run([sys.executable, SCRIPT, OBJDUMP[target], *files],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", TARGETS)
def test_linked_binaries_call_nothing_in_program_text(target):
    build = os.path.join(ROOT, "build", target + VARIANT)
    files = [os.path.join(build, f) for f in ("weft-test", "libweft.so", "demo", "echo", "httpd")]
    files = [f for f in files if os.path.exists(f)]
    assert os.path.join(build, "weft-test") in files, f"{build}/weft-test missing: build it first"
    p = run_check(target, files)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(": PASS") == len(files), p.stdout


# weft_text calls a function in .text: the pattern of an outline atomic.
PLANTED = r"""
__attribute__((noinline)) int helper_in_text(int x) { return x * 3; }
__attribute__((section("weft_text"), noinline)) int weft_fn(int x) { return helper_in_text(x) + 1; }
int main(int argc, char **argv) { (void)argv; return weft_fn(argc) == 4 ? 0 : 1; }
"""


@pytest.mark.parametrize("target", TARGETS)
def test_planted_call_into_program_text_is_caught(tmp_path, target):
    if not shutil.which(CC[target]):
        pytest.fail(f"{CC[target]} not installed: run scripts/deps.sh")
    src = tmp_path / "planted.c"
    src.write_text(PLANTED)
    exe = tmp_path / "planted"
    subprocess.run([CC[target], "-O1", "-o", str(exe), str(src)], check=True, timeout=120)
    p = run_check(target, [str(exe)])
    assert p.returncode == 1, p.stdout + p.stderr
    assert "weft_fn calls helper_in_text" in p.stdout, p.stdout
    assert "FAIL" in p.stdout, p.stdout
