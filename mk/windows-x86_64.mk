# SPDX-License-Identifier: MIT
# windows-x86_64: cross-built with mingw-w64, run under Wine (docs/platforms.md).
# A later port: `make test` does not build it yet; `make TARGET=windows-x86_64`
# does once hal/win32 exists. Install the toolchain with `scripts/deps.sh windows`.
OS   := win32
ARCH := x86_64
EXE  := .exe
LIBS := -lws2_32 -lmswsock -lsynchronization
SHARED := 0
PIC  :=
ARCH_CFLAGS :=
# The port's sources, every one named (docs/PORTING.md). hal/win32 is not
# written yet (hal/win32/README.md says what goes there): its files join
# this list as they are written, with hal/x86_64/switch_win64.S.
HAL_SRCS := hal/x86_64/context.c
CROSS := x86_64-w64-mingw32-
RUN   := wine
TEST_TIMEOUT_MULT := 4
TEST_SCALE := 4

CC := $(CROSS)gcc
AR := $(CROSS)ar
NM := $(CROSS)nm
LD := $(CROSS)ld
DEPS_HINT := gcc-mingw-w64-x86-64 wine
DEPS_GROUP := windows
