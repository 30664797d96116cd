#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-weft-calls.py OBJDUMP FILE... — weft's code never calls into the
program's own text (ELF and PE images).

Why: the preemption handler (hal/posix/preempt.c, kern/preempt.c) switches a
task out only when the interrupted PC lies in the program's .text and outside
weft's own code (the weft_text section). A function that weft calls and that
the linker places in the program's .text (libgcc's outline atomics on aarch64,
__aarch64_cas8_relax and friends; any other compiler runtime helper; a
statically linked libc) looks like the program's code to that check: a task
interrupted inside it is switched out in the middle of a weft call, and resumes,
maybe on another thread, with weft frames below it that still hold the old
thread and its proc. That was the linux-aarch64 crash in timer_many: the
protect-guard budget's compare-and-swap in hal_mem_guard, called from
weft_go_stack, went through __aarch64_cas8_relax in the program's .text.

For each FILE (an executable or shared object linked with weft) this
disassembles the weft_text section and lists every direct call or branch whose
target lies in a text section other than weft_text and the PLT (a call through
the PLT goes to a shared library, which is never preemptible). Exit 0 and one
"PASS" line per file when there is none; exit 1 naming each caller and callee
otherwise.

PE (the windows-x86_64 port, hal/win32/preempt.c): weft's code is the
.text$weft_m group inside .text, between the labels hal_win32_text_lo and
hal_win32_text_hi (hal/win32/text_bounds.S). The linker puts the import
thunks of DLL functions in the same .text: a direct call from weft's range to
a thunk is allowed when the thunk's first instruction is `jmp *disp32(%rip)`
(bytes FF 25), because the suspending port declines a PC at such an
instruction and the DLL's code lies outside the program's image. Any other
direct branch from weft's range into an executable section, outside the
range, fails the check.
"""

import re
import subprocess
import sys

# A direct branch in objdump's output: "  4a3c:\t94000123 \tbl\t4b00 <name>".
# x86_64: call/jmp/jcc; aarch64: bl/b/b.cond/cbz/cbnz/tbz/tbnz.
BRANCH = re.compile(
    r"^\s*([0-9a-f]+):\s+(call[qw]?|jmp[qw]?|j[a-z]{1,3}|bl|b|b\.[a-z]{2}|cbn?z|tbn?z)\s+"
    r"(?:[^,\s]+,\s*)*(?:#?0x)?([0-9a-f]+)\s+<([^>]+)>")
FUNC = re.compile(r"^([0-9a-f]+) <([^>]+)>:$")


def sections(objdump, path):
    """{name: (start, end)} of the file's allocated code sections."""
    out = subprocess.run([objdump, "-h", path], capture_output=True, text=True, check=True).stdout
    found = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit():
            flags = lines[i + 1] if i + 1 < len(lines) else ""
            if "CODE" in flags:
                start, size = int(parts[3], 16), int(parts[2], 16)
                found[parts[1]] = (start, start + size)
    return found


def file_format(objdump, path):
    out = subprocess.run([objdump, "-f", path], capture_output=True, text=True, check=True).stdout
    m = re.search(r"file format (\S+)", out)
    return m.group(1) if m else ""


# One instruction of `objdump -d` with its bytes: "   140001000:\tff 25 7a fe\tjmp ...".
INSN = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$")


# A line of `objdump -t` on PE: "[3737](sec  1)(fl 0x00)...(nx 0) 0x0000000000008060 name";
# the value is relative to section 1-based "sec".
PE_SYM = re.compile(r"^\[\s*\d+\]\(sec\s+(\d+)\).*\s0x([0-9a-f]+)\s+(\S+)$")


def pe_symbols(objdump, path, names):
    """{name: address} of the named symbols, local ones included (the
    static library localizes hal_*, and objdump -d may label an address
    with another symbol of the same value)."""
    heads = subprocess.run([objdump, "-h", path], capture_output=True, text=True,
                           check=True).stdout
    vma = {}
    for line in heads.splitlines():
        parts = line.split()
        if len(parts) >= 7 and parts[0].isdigit():
            vma[int(parts[0]) + 1] = int(parts[3], 16)
    syms = subprocess.run([objdump, "-t", path], capture_output=True, text=True,
                          check=True).stdout
    found = {}
    for line in syms.splitlines():
        m = PE_SYM.match(line)
        if m and m.group(3) in names and int(m.group(1)) in vma:
            found[m.group(3)] = vma[int(m.group(1))] + int(m.group(2), 16)
    return found


def check_pe(objdump, path):
    """The PE rule (module docstring): direct branches out of
    [hal_win32_text_lo, hal_win32_text_hi) land only on import thunks."""
    secs = sections(objdump, path)
    code = {}  # address -> first two bytes of the instruction there
    bad = []
    lines = []
    for name in secs:
        dis = subprocess.run([objdump, "-d", "-j", name, path],
                             capture_output=True, text=True, check=True).stdout
        lines += dis.splitlines()
    for line in lines:
        m = INSN.match(line)
        if m:
            code[int(m.group(1), 16)] = m.group(2).split()[:2]
    bounds = pe_symbols(objdump, path, ("hal_win32_text_lo", "hal_win32_text_hi"))
    if len(bounds) != 2:
        return [f"{path}: no hal_win32_text_lo/hi symbols (is weft linked in, and renamed?)"]
    lo, hi = bounds["hal_win32_text_lo"], bounds["hal_win32_text_hi"]
    if not lo < hi:
        return [f"{path}: hal_win32_text_lo 0x{lo:x} is not below hal_win32_text_hi 0x{hi:x}"]
    func = "?"
    for line in lines:
        m = FUNC.match(line)
        if m:
            func = m.group(2)
            continue
        m = INSN.match(line)
        if not m or not lo <= int(m.group(1), 16) < hi:
            continue
        b = BRANCH.match(f"  {m.group(1)}:\t{m.group(3)}")
        if not b:
            continue
        target = int(b.group(3), 16)
        if lo <= target < hi:
            continue
        where = next((n for n, (s, e) in secs.items() if s <= target < e), None)
        if where is None:
            continue  # not code of this image
        if code.get(target) == ["ff", "25"]:
            continue  # an import thunk: jmp *__imp_f(%rip), into a DLL
        bad.append(f"{path}: {func} calls {b.group(4)} at 0x{target:x}, in {where} "
                   "outside weft's range, not an import thunk")
    return bad


def check(objdump, path):
    if file_format(objdump, path).startswith(("pei-", "pe-")):
        return check_pe(objdump, path)
    secs = sections(objdump, path)
    if "weft_text" not in secs:
        return [f"{path}: no weft_text section (is weft linked in, and renamed?)"]
    foreign = {n: r for n, r in secs.items() if n != "weft_text" and not n.startswith(".plt")}
    end = secs["weft_text"][1]
    dis = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-j", "weft_text", path],
                         capture_output=True, text=True, check=True).stdout
    bad = []
    func = "?"
    for line in dis.splitlines():
        m = FUNC.match(line)
        if m:
            func = m.group(2)
            continue
        m = BRANCH.match(line)
        if not m:
            continue
        target = int(m.group(3), 16)
        if target == end:
            # A branch to the first byte after weft_text is the linker's own:
            # it puts erratum stubs (aarch64: Cortex-A53 843419) at the
            # section's end behind a branch that skips them, reached only
            # by falling off the last function, which no function does.
            continue
        for name, (lo, hi) in foreign.items():
            if lo <= target < hi:
                bad.append(f"{path}: {func} calls {m.group(4)} at 0x{target:x}, in {name}")
                break
    return bad


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    objdump, files = argv[1], argv[2:]
    failed = False
    for path in files:
        bad = check(objdump, path)
        if bad:
            failed = True
            seen = set()
            for b in bad:
                if b not in seen:
                    print(b)
                    seen.add(b)
            print(f"check-weft-calls {path}: FAIL (weft calls code a preemption "
                  "would take for the program's)")
        else:
            print(f"check-weft-calls {path}: PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
