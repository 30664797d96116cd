# SPDX-License-Identifier: MIT
"""docs/API.md's table of every public function's codes ("Function by
function") against include/weft.h and against the tests:

- every function the header declares has one row, and every row names a
  declared function;
- every code in a row is one the header documents for that function (its
  own comment, or the comment of its section), and every code a
  function's comment documents is in the rows of the functions that
  comment covers;
- every code in a row is asserted by some test (tests/*.c compares the
  function's result with it), unless UNTESTED below names the pair and
  says why no test provokes it.
Static: no binary is run.
"""

import glob
import os
import re

from conftest import ROOT

HEADER = os.path.join(ROOT, "include", "weft.h")
API = os.path.join(ROOT, "docs", "API.md")

CODE = re.compile(r"\bWEFT_E[A-Z]+\b")
DECL = re.compile(r"^(?:WEFT_NORETURN )?WEFT_EXTERN\b[^;(]*?\b(weft_\w+)\(")

# Codes a comment mentions that are not returns of its function.
NOT_RETURNS = {
    ("weft_select", "WEFT_ECLOSED"): "a case's ok field, not select's result",
    ("weft_errno", "WEFT_EIO"): "names the calls whose OS error it keeps",
    ("weft_strerror", "WEFT_EINVAL"): "an example of a code's name",
    ("weft_stop", "WEFT_ENOTASK"): "what host calls get once the stop has begun",
    ("weft_set_deadline", "WEFT_ETIMEDOUT"): "what the calls an expired deadline ends return",
}

# Codes in the table that no test provokes, and why.
UNTESTED = {
    "WEFT_ENOMEM": "running out of memory is not provoked in the suite",
    "WEFT_EIO": "an OS failure outside weft's control (the suite provokes the ones it can "
    "reach: refused connections are checked through weft_errno)",
}
UNTESTED_PAIRS = {
    ("weft_run", "WEFT_EDEADLK"): "tests/test_crash.py test_deadlock_report runs sched_deadlock",
    ("weft_close", "WEFT_ECLOSED"): "a second close while the first waits for calls in "
    "progress: the window lasts until the woken calls run, and no case can hold it open",
}


def declarations():
    """[(name, line index)] of the header's functions, and its lines."""
    lines = open(HEADER).read().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = DECL.match(line)
        if m:
            out.append((m.group(1), i))
    return out, lines


def comment_before(lines, i):
    """The comment block that ends right above line i (after skipping the
    declarations grouped with it), with the line it starts on."""
    j = i - 1
    while j >= 0 and DECL.match(lines[j]):
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("*/"):
        return "", j
    k = j
    while k >= 0 and "/*" not in lines[k]:
        k -= 1
    return "\n".join(lines[k : j + 1]), k


def header_codes():
    """{function: (own codes, section codes, group key)}."""
    decls, lines = declarations()
    out = {}
    for name, i in decls:
        own, start = comment_before(lines, i)
        own += " " + " ".join(re.findall(r"/\*(.*?)\*/", lines[i]))
        sec = ""
        for k in range(i, -1, -1):
            if lines[k].startswith("/* ---- "):
                e = k
                while e < len(lines) and "*/" not in lines[e]:
                    e += 1
                sec = "\n".join(lines[k : e + 1])
                break
        out[name] = (set(CODE.findall(own)), set(CODE.findall(sec)), start)
    return out


def table_rows():
    """{function: codes} from the API.md table."""
    text = open(API).read()
    at = text.index("### Function by function")
    rows = {}
    for line in text[at:].splitlines():
        m = re.match(r"^\| `(weft_\w+)` \|[^|]*\|(.*)\|\s*$", line)
        if m:
            assert m.group(1) not in rows, f"two rows for {m.group(1)}"
            rows[m.group(1)] = set(CODE.findall(m.group(2)))
        elif rows and not line.startswith("|"):
            break
    return rows


def asserted_pairs():
    """{(function, code)} that some test compares: CHECK_EQ(weft_f(...), C)
    directly, or CHECK_EQ(v, C) after v = weft_f(...)."""
    pairs = set()
    direct = re.compile(r"CHECK_EQ\(\s*(weft_\w+)\(.*,\s*(WEFT_E[A-Z]+)\)")
    assign = re.compile(r"\b(\w+)\s*=\s*(weft_\w+)\(")
    var_check = re.compile(r"CHECK_EQ\(\s*(\w+)\s*,\s*(WEFT_E[A-Z]+)\)")
    for path in glob.glob(os.path.join(ROOT, "tests", "*.c")):
        last = {}
        for line in open(path, errors="replace"):
            for m in direct.finditer(line):
                pairs.add((m.group(1), m.group(2)))
            for m in assign.finditer(line):
                last[m.group(1)] = m.group(2)
            for m in var_check.finditer(line):
                if m.group(1) in last:
                    pairs.add((last[m.group(1)], m.group(2)))
    return pairs


def test_every_function_has_a_row():
    decls, _ = declarations()
    names = [n for n, _ in decls]
    rows = table_rows()
    missing = [n for n in names if n not in rows]
    extra = [n for n in rows if n not in names]
    assert not missing, f"functions without a row in docs/API.md: {missing}"
    assert not extra, f"rows for functions weft.h does not declare: {extra}"


def test_rows_match_the_header():
    hdr = header_codes()
    rows = table_rows()
    problems = []
    groups = {}
    for name, (own, sec, start) in hdr.items():
        groups.setdefault(start, []).append(name)
        for code in sorted(rows.get(name, set()) - own - sec):
            problems.append(f"{name}: {code} is in the table but not in its comment")
    for start, names in groups.items():
        own = hdr[names[0]][0]
        listed = set().union(*(rows.get(n, set()) for n in names))
        for code in sorted(own - listed):
            if not any((n, code) in NOT_RETURNS for n in names):
                problems.append(f"{'/'.join(names)}: the comment documents {code}, the table does not")
    assert not problems, "\n".join(problems)


def test_every_code_is_tested():
    rows = table_rows()
    pairs = asserted_pairs()
    missing = []
    for name, codes in sorted(rows.items()):
        for code in sorted(codes):
            if (name, code) in pairs or code in UNTESTED or (name, code) in UNTESTED_PAIRS:
                continue
            missing.append(f"{name} -> {code}")
    assert not missing, "codes no test asserts:\n" + "\n".join(missing)
