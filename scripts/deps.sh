#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# deps.sh — install what a fresh Debian 12 lacks for weft's make targets.
#
#   scripts/deps.sh            make test: everything below but bench
#   scripts/deps.sh demo       make demo, make, make install: the native gcc and make
#   scripts/deps.sh cross      + the aarch64 cross toolchain and qemu-user
#   scripts/deps.sh test       the same as no group: cross, python3-pytest,
#                              valgrind, g++ and pkg-config (tests/test_install.py),
#                              clang and its TSan runtime (the TSan pass), clang-format,
#                              mingw-w64 and wine (windows-x86_64)
#   scripts/deps.sh bench      + golang-go, python3-matplotlib (make bench)
#   scripts/deps.sh windows    + mingw-w64 and wine (windows-x86_64 alone)
#   scripts/deps.sh lint       + clang-format
#   scripts/deps.sh all        every group
#
# Groups add up; each includes demo's. Only Debian packages, through apt-get.
# Checks first and does nothing when everything is there (no apt-get at all).
# As root: one `apt-get update`, then one `apt-get install`. Otherwise it
# prints the command to run and exits 1. It never downloads anything else.
set -euo pipefail

# Each entry: "package|check", where check is a command name, a
# `dpkg:PACKAGE`, a `py:MODULE` (for /usr/bin/python3) or a `file:PATH`.
demo=(
    "gcc|gcc"
    "make|make"
    "binutils|ld"
    "libc6-dev|file:/usr/include/stdio.h"
)
cross=(
    "gcc-aarch64-linux-gnu|aarch64-linux-gnu-gcc"
    "libc6-dev-arm64-cross|file:/usr/aarch64-linux-gnu/include/stdio.h"
    "qemu-user|qemu-aarch64"
)
test=(
    "${cross[@]}"
    "python3|file:/usr/bin/python3"
    "python3-pytest|py:pytest"
    "valgrind|valgrind"
    "g++|g++"
    "pkg-config|pkg-config"
    "clang|clang"
    "clang-format|clang-format"
    "libclang-rt-14-dev|dpkg:libclang-rt-14-dev"
    "gcc-mingw-w64-x86-64|x86_64-w64-mingw32-gcc"
    "wine|wine"
)
bench=(
    "python3|file:/usr/bin/python3"
    "golang-go|go"
    "python3-matplotlib|py:matplotlib"
)
windows=(
    "gcc-mingw-w64-x86-64|x86_64-w64-mingw32-gcc"
    "wine|wine"
)
lint=(
    "clang-format|clang-format"
)

[ $# -eq 0 ] && set -- test
want=("${demo[@]}")
for group in "$@"; do
    case "$group" in
    demo) ;;
    cross) want+=("${cross[@]}") ;;
    test) want+=("${test[@]}") ;;
    bench) want+=("${bench[@]}") ;;
    windows) want+=("${windows[@]}") ;;
    lint) want+=("${lint[@]}") ;;
    all) want+=("${test[@]}" "${bench[@]}" "${windows[@]}" "${lint[@]}") ;;
    -h | --help)
        sed -n '3,18s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "deps.sh: unknown group '$group' (demo, cross, test, bench, windows, lint, all)" >&2
        exit 2
        ;;
    esac
done

present() {
    local check=$1
    case "$check" in
    dpkg:*) dpkg -s "${check#dpkg:}" 2>/dev/null | grep -q '^Status: install ok installed' ;;
    py:*) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import ${check#py:}" 2>/dev/null ;;
    file:*) [ -e "${check#file:}" ] ;;
    *) command -v "$check" >/dev/null 2>&1 ;;
    esac
}

missing=()
for entry in "${want[@]}"; do
    pkg=${entry%%|*}
    check=${entry#*|}
    case " ${missing[*]} " in *" $pkg "*) continue ;; esac
    present "$check" || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

cmd="DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing: ${missing[*]}" >&2
    echo "deps.sh: run as root:" >&2
    echo "    apt-get update && $cmd" >&2
    exit 1
fi

echo "deps.sh: installing ${missing[*]}"
log=$(mktemp "${TMPDIR:-/tmp}/weft-deps.XXXXXX")
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "deps.sh: apt-get failed (log: $log)" >&2
    exit 1
fi
rm -f "$log"

still=()
for entry in "${want[@]}"; do
    present "${entry#*|}" || still+=("${entry%%|*}")
done
if [ ${#still[@]} -ne 0 ]; then
    echo "deps.sh: still missing after install: ${still[*]}" >&2
    exit 1
fi
