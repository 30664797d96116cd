# SPDX-License-Identifier: MIT
"""`make check-freestanding` must pass on a clean kern and fail on each kind
of violation. Each test plants one file in a temporary copy of the tree (the
kern headers, hal/, the build files) and runs the check there."""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT

TARGETS = [t for t in ("linux-x86_64", "linux-aarch64")
           if shutil.which({"linux-x86_64": "gcc",
                            "linux-aarch64": "aarch64-linux-gnu-gcc"}[t])]

# Clean: calls the HAL and memcpy/memset (allowed: the port provides them),
# and does an atomic read-modify-write (on aarch64 GCC would call libgcc's
# __aarch64_ldadd8_acq_rel without -mno-outline-atomics). A comment naming
# _WIN32, <stdio.h> and _Thread_local, and a string with __linux__, are fine.
CLEAN = r"""
/* Not a violation: _WIN32, __linux__, #include <stdio.h>, _Thread_local. */
#include <stdatomic.h>
#include "kern/kern.h"

static _Atomic uint64_t counter;
static const char *name = "__linux__ _Thread_local";

size_t k_planted(char *dst, const char *src, size_t n)
{
    memcpy(dst, src, n);
    memset(dst, 0, n / 2);
    atomic_fetch_add(&counter, 1);
    return hal_page_size() + (size_t)name[0];
}
"""

VIOLATIONS = {
    "libc_include": ("#include <stdio.h>\nint k_planted(void) { return 0; }\n",
                     "includes <stdio.h>"),
    "libc_call": ("int puts(const char *s);\nint k_planted(void) { return puts(\"x\"); }\n",
                  "undefined symbol 'puts'"),
    "os_macro": ("#ifdef __linux__\nint k_planted(void) { return 1; }\n#endif\n",
                 "uses __linux__"),
    "arch_macro": ("#if defined(__aarch64__) || defined(_WIN32)\nint k_planted;\n#endif\n",
                   "uses __aarch64__"),
    "tls": ("_Thread_local int k_planted;\n", "uses _Thread_local"),
    "gnu_tls": ("__thread int k_planted;\n", "uses __thread"),
    "kern_undefined": ("int k_nowhere(void);\nint k_planted(void) { return k_nowhere(); }\n",
                       "undefined symbol 'k_nowhere'"),
}


def tree(tmp_path, name, text):
    """A copy of the tree with only the kern headers plus kern/<name>.c."""
    root = tmp_path / "weft"
    for d in ("mk", "scripts", "hal", "include"):
        shutil.copytree(os.path.join(ROOT, d), root / d)
    shutil.copy(os.path.join(ROOT, "Makefile"), root / "Makefile")
    (root / "kern").mkdir()
    for f in os.listdir(os.path.join(ROOT, "kern")):
        if f.endswith(".h"):
            shutil.copy(os.path.join(ROOT, "kern", f), root / "kern" / f)
    (root / "kern" / f"{name}.c").write_text(text)
    return root


def check(root, targets):
    p = subprocess.run(
        ["make", "--no-print-directory", "check-freestanding",
         "FREESTANDING_TARGETS=" + " ".join(targets)],
        cwd=root, capture_output=True, text=True, timeout=300,
    )
    return p.returncode, p.stdout + p.stderr


def test_compilers_present():
    assert TARGETS, "no Linux compiler installed: run scripts/deps.sh"


@pytest.mark.parametrize("target", TARGETS)
def test_clean_kern_file_passes(tmp_path, target):
    rc, out = check(tree(tmp_path, "planted", CLEAN), [target])
    assert rc == 0, out
    assert f"check-freestanding {target}: PASS" in out
    assert "memcpy" in out and "hal_*" in out, out


@pytest.mark.parametrize("kind", sorted(VIOLATIONS))
def test_violation_fails(tmp_path, kind):
    text, message = VIOLATIONS[kind]
    rc, out = check(tree(tmp_path, "planted", text), TARGETS[:1])
    assert rc != 0, out
    assert message in out, out
    assert "FAIL" in out, out


def test_template_port_must_define_every_hal_function(tmp_path):
    """`make check-template`: kern linked against hal/template leaves no hal_*
    undefined; take one stub out and it must fail, naming it."""
    root = tmp_path / "weft"
    for d in ("mk", "scripts", "hal", "include", "kern"):
        shutil.copytree(os.path.join(ROOT, d), root / d)
    shutil.copy(os.path.join(ROOT, "Makefile"), root / "Makefile")
    run = lambda: subprocess.run(["make", "--no-print-directory", "check-template"], cwd=root,
                                 capture_output=True, text=True, timeout=300)
    p = run()
    assert p.returncode == 0, p.stdout + p.stderr
    src = root / "hal" / "template" / "template.c"
    text = src.read_text()
    stub = "size_t hal_page_size(void)"
    assert stub in text
    src.write_text(text.replace(stub, "size_t hal_renamed_page_size(void)"))
    p = run()
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "undefined symbol 'hal_page_size'" in out, out
