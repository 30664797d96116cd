# SPDX-License-Identifier: MIT
# windows-x86_64: cross-built with mingw-w64, run under Wine (docs/platforms.md),
# tested by `make test` (hal/win32/README.md says what the port still
# lacks). `scripts/deps.sh windows` installs its toolchain and Wine alone.
OS   := win32
ARCH := x86_64
EXE  := .exe
# -static: weft-test.exe needs no DLL from the build machine (winpthreads,
# libgcc) beside the system's.
LIBS := -static -lws2_32 -lmswsock -lsynchronization -lntdll
# weft.pc's Libs.private: the system libraries the port calls.
PC_LIBS_PRIVATE := -lws2_32 -lmswsock -lsynchronization -lntdll
SHARED := dll
PIC  :=
ARCH_CFLAGS :=
CROSS := x86_64-w64-mingw32-
# Wine with address-space randomization off (setarch -R, util-linux): Debian's
# wine64 has no preloader, so the kernel puts the brk heap anywhere in the
# 1 GiB above the loader at 0x7d000000, and about one start in 2000 it lands
# on the page Wine maps at 0x7ffe0000 for its shared user data; Wine then
# exits 1 at once ("failed to map the shared user data", shown only with
# WINEDEBUG=err+all). docs/platforms.md, "Wine".
RUN   := setarch -R wine
TEST_TIMEOUT_MULT := 4
TEST_SCALE := 4

# The port's sources, every one named (docs/PORTING.md).
HAL_SRCS := hal/win32/env.c \
            hal/win32/fault.c \
            hal/win32/futex.c \
            hal/win32/mem.c \
            hal/win32/poll_iocp.c \
            hal/win32/preempt.c \
            hal/win32/sock.c \
            hal/win32/thread.c \
            hal/win32/time.c \
            hal/win32/timer_hr.c \
            hal/win32/unwind.c \
            hal/win32/call_on.S \
            hal/win32/text_bounds.S \
            hal/x86_64/preempt_win64.S \
            hal/x86_64/context.c \
            hal/x86_64/switch_win64.S

# kern is built with -nostdinc and only GCC's own include directory; GCC's
# stddef.h and stdarg.h #include_next mingw-w64's, so that directory comes
# after it (and after nothing else: kern still includes no libc header).
KERN_IDIRAFTER := -idirafter /usr/x86_64-w64-mingw32/include

# PE/COFF has no hidden visibility: the static library keeps weft_* global
# and makes every other defined symbol local.
LIB_LOCALIZE := --wildcard --keep-global-symbol='weft_*'

CC := $(CROSS)gcc
AR := $(CROSS)ar
NM := $(CROSS)nm
LD := $(CROSS)ld
OBJCOPY := $(CROSS)objcopy
OBJDUMP := $(CROSS)objdump
DEPS_HINT := gcc-mingw-w64-x86-64 wine
DEPS_GROUP := windows
