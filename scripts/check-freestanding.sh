#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# check-freestanding.sh — proves that kern/ is freestanding (docs/design.md
# "The freestanding rule", docs/HACKING.md), for one target.
# `make check-freestanding` runs it for every Linux target whose compiler
# is installed; run directly without the variables below, it does just that.
#
# Environment (set by the Makefile): TARGET, CC, LD, NM, KERN_CFLAGS.
# For `make check-template`, also FS_EXTRA_SRC (more freestanding files
# compiled and linked with kern: the template port) and FS_ALLOW_HAL=0 (then
# no hal_* may stay undefined: the template must define all kern uses).
#
# Checks:
#   1. includes: kern/*.[ch] and the port headers compiled into kern
#      (hal/hal.h, hal/*/hal_*.h) include <...> only from the freestanding
#      list below;
#   2. kern/*.[ch] name no OS or architecture macro and no thread-local
#      storage (comments and strings are stripped first);
#   3. kern/*.c compile with KERN_CFLAGS (-ffreestanding -nostdinc ...), are
#      linked into one object with `$LD -r`, and `$NM -u` on it lists only
#      hal_* and memcpy, memmove, memset, memcmp (and the linker's own
#      _GLOBAL_OFFSET_TABLE_).
#
# Exit: 0 pass, 1 violation or build failure, 3 compiler not installed (skipped).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

if [ -z "${CC:-}" ] || [ -z "${KERN_CFLAGS+x}" ]; then
    exec make --no-print-directory check-freestanding
fi
: "${TARGET:=unknown}" "${LD:=ld}" "${NM:=nm}"

ALLOWED_HEADERS="stddef.h stdint.h stdbool.h stdatomic.h stdarg.h stdalign.h stdnoreturn.h"
FORBIDDEN_MACROS="_WIN32 _WIN64 __WIN32__ __CYGWIN__ __MINGW32__ __MINGW64__ __linux__ __linux \
__gnu_linux__ __unix__ __unix __APPLE__ __MACH__ __FreeBSD__ __x86_64__ __x86_64 __amd64__ \
__amd64 _M_X64 __i386__ __aarch64__ __arm64__ _M_ARM64 __arm__ __riscv"
FORBIDDEN_TLS="_Thread_local __thread thread_local"
# _GLOBAL_OFFSET_TABLE_ is not a dependency: the linker defines it (x86_64
# -fPIC code such as switch tables refers to it).
ALLOWED_UNDEF_RE='^(hal_[A-Za-z0-9_]*|memcpy|memmove|memset|memcmp|_GLOBAL_OFFSET_TABLE_)$'
if [ "${FS_ALLOW_HAL:-1}" = 0 ]; then
    ALLOWED_UNDEF_RE='^(memcpy|memmove|memset|memcmp|_GLOBAL_OFFSET_TABLE_)$'
fi

say() { printf '%s\n' "check-freestanding $TARGET: $*"; }

if ! command -v "$CC" >/dev/null 2>&1; then
    say "skipped ($CC not installed)"
    exit 3
fi

violations=0
violate() {
    say "VIOLATION: $*"
    violations=$((violations + 1))
}

shopt -s nullglob
kern_files=(kern/*.c kern/*.h)
kern_c=(kern/*.c)
# shellcheck disable=SC2206 # a list of paths
extra_c=(${FS_EXTRA_SRC:-})
port_headers=(include/weft.h hal/hal.h hal/*/hal_*.h)
shopt -u nullglob

# Source without comments and string literals (gcc -fpreprocessed keeps
# directives and does not expand anything).
strip_comments() {
    "$CC" -fpreprocessed -dD -E -P -x c "$1" 2>/dev/null | sed -e 's/"\([^"\\]\|\\.\)*"/""/g'
}

# ---- 1. includes ---------------------------------------------------------
for f in "${kern_files[@]}" "${port_headers[@]}"; do
    while IFS= read -r hdr; do
        case " $ALLOWED_HEADERS " in
        *" $hdr "*) ;;
        *) violate "$f includes <$hdr> (allowed: $ALLOWED_HEADERS)" ;;
        esac
    done < <(strip_comments "$f" | sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\([^>]*\)>.*/\1/p')
done

# ---- 2. OS/arch macros and thread-local storage --------------------------
# shellcheck disable=SC2086 # word lists
macro_re=$(printf '%s\n' $FORBIDDEN_MACROS $FORBIDDEN_TLS | paste -sd'|')
for f in "${kern_files[@]}"; do
    while IFS= read -r hit; do
        violate "$f uses $hit (kern has no OS/arch #ifs and no TLS: variants are HAL files)"
    done < <(strip_comments "$f" | grep -oE "(^|[^A-Za-z0-9_])($macro_re)([^A-Za-z0-9_]|$)" |
        grep -oE "($macro_re)" | sort -u)
done

# ---- 3. compile, link -r, nm -u ------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/weft-fs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
undef_total=0
undef_list=()
if [ ${#kern_c[@]} -eq 0 ]; then
    say "no kern/*.c yet: nothing to compile"
else
    build_failed=0
    # Compile in parallel, nproc at a time; report in file order.
    jobs_max=$(nproc 2>/dev/null || echo 2)
    for f in "${kern_c[@]}" "${extra_c[@]}"; do
        o="$tmp/$(basename "${f%.c}").o"
        # shellcheck disable=SC2086 # KERN_CFLAGS is a list of flags
        { "$CC" $KERN_CFLAGS -c "$f" -o "$o" 2>"$o.err" || rm -f "$o"; } &
        while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
    done
    wait
    for f in "${kern_c[@]}" "${extra_c[@]}"; do
        o="$tmp/$(basename "${f%.c}").o"
        if [ ! -f "$o" ]; then
            violate "$f does not compile with the kern flags:"
            sed 's/^/    /' "$o.err" | head -20
            build_failed=1
        fi
    done
    if [ $build_failed -eq 0 ]; then
        if ! "$LD" -r -o "$tmp/kern.o" "$tmp"/*.o 2>"$tmp/ld.err"; then
            violate "$LD -r failed:"
            sed 's/^/    /' "$tmp/ld.err" | head -20
        else
            while read -r sym; do
                [ -z "$sym" ] && continue
                if [[ $sym =~ $ALLOWED_UNDEF_RE ]]; then
                    undef_total=$((undef_total + 1))
                    undef_list+=("$sym")
                else
                    if [ "${FS_ALLOW_HAL:-1}" = 0 ]; then
                        violate "undefined symbol '$sym' (not defined by ${extra_c[*]})"
                    else
                        violate "undefined symbol '$sym' (kern may only call hal_* and memcpy/memmove/memset/memcmp)"
                    fi
                    for o in "$tmp"/*.o; do
                        [ "$o" = "$tmp/kern.o" ] && continue
                        if "$NM" -u "$o" | awk '{print $NF}' | grep -qx -- "$sym"; then
                            say "    referenced from $(basename "${o%.o}").c"
                        fi
                    done
                fi
            done < <("$NM" -u "$tmp/kern.o" | awk '{print $NF}' | sort -u)
        fi
    fi
fi

say "checked ${#kern_files[@]} kern files and ${#port_headers[@]} headers compiled into kern for includes;" \
    "${#kern_files[@]} kern files for OS/arch macros and TLS;" \
    "linked $((${#kern_c[@]} + ${#extra_c[@]})) objects with $CC: $undef_total allowed undefined symbols"
if [ ${#undef_list[@]} -ne 0 ]; then
    hal_n=$(printf '%s\n' "${undef_list[@]}" | grep -c '^hal_' || true)
    mem=$(printf '%s\n' "${undef_list[@]}" | grep -v -e '^hal_' -e '^_GLOBAL_OFFSET_TABLE_$' | xargs)
    say "  undefined: $hal_n hal_*${mem:+ + $mem}"
fi
if [ $violations -ne 0 ]; then
    say "FAIL ($violations violation(s))"
    exit 1
fi
say "PASS"
exit 0
