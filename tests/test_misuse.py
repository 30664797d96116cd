# SPDX-License-Identifier: MIT
"""Misuse must never pass in silence (tests/t_misuse.c does the misusing):
a bad value of any WEFT_* variable is refused with a message that names
the variable."""

import os
import re
import subprocess

import pytest

from conftest import DEFAULT_TARGETS, ROOT, read_target, sanitizer_env

TARGETS = os.environ.get("WEFT_TARGETS", DEFAULT_TARGETS).split()


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


@pytest.mark.parametrize("target", TARGETS)
def test_env_messages(target):
    """Each refused variable's line is preceded by weft's message naming it."""
    t = read_target(target)
    if t.error:
        pytest.fail(f"target {t.name}: {t.error}", pytrace=False)
    p = run(t, "misuse_env")
    where = f"$ {t.exe} run misuse_env (exit {p.returncode})\n{p.stderr[-4000:]}"
    assert p.returncode == 0, where
    lines = p.stderr.splitlines()
    seen = 0
    for i, line in enumerate(lines):
        m = re.match(r"misuse_env: (WEFT_[A-Z_]+)=", line)
        if not m:
            continue
        seen += 1
        assert i > 0 and lines[i - 1].startswith(f"weft: {m.group(1)}"), (
            f"no message naming {m.group(1)} before: {line}\n{where}"
        )
    assert seen >= 8, where
