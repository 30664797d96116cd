# SPDX-License-Identifier: MIT
# linux-aarch64: cross-built with aarch64-linux-gnu-gcc and run under
# qemu-user on an x86_64 host (docs/platforms.md); native on an arm64 host.
#
# Linking: dynamic, run as `qemu-aarch64 -L /usr/aarch64-linux-gnu`, which
# finds the cross glibc (libc6-dev-arm64-cross) there. It gives the same
# results as -static (docs/platforms.md) and keeps the sanitizer builds
# possible (their runtimes are shared libraries).
OS   := posix
ARCH := aarch64
EXE  :=
LIBS := -pthread -lm
SHARED := 1
PIC  := -fPIC
# GCC would call libgcc's __aarch64_* helpers for atomics (LSE detection).
# kern must stay freestanding, and no weft code (kern or the port: the
# Makefile passes ARCH_CFLAGS to both) may call into the program's .text,
# where those helpers land and where preemption is allowed; so inline them
# (LL/SC or LSE by -march).
ARCH_CFLAGS := -mno-outline-atomics

# The port's sources (docs/PORTING.md): the OS half, shared by the Linux
# targets, then the architecture's.
include mk/linux-hal.inc
HAL_SRCS := $(LINUX_HAL_SRCS) hal/aarch64/context.c hal/aarch64/switch.S

ifeq ($(HOST_ARCH),aarch64)
CROSS :=
RUN   :=
TEST_TIMEOUT_MULT := 1
TEST_SCALE := 1
else
CROSS := aarch64-linux-gnu-
# -cpu cortex-a72: the suite on a CPU without SVE; `make test` runs the
# preemption and scheduler cases again on qemu's SVE CPUs (test-sve), and
# WEFT_QEMU_CPU=max (tests/conftest.py) runs any of them there.
RUN   := qemu-aarch64 -cpu cortex-a72 -L /usr/aarch64-linux-gnu
TEST_TIMEOUT_MULT := 8
TEST_SCALE := 10
endif

CC := $(CROSS)gcc
AR := $(CROSS)ar
NM := $(CROSS)nm
OBJCOPY := $(CROSS)objcopy
OBJDUMP := $(CROSS)objdump
LD := $(CROSS)ld
DEPS_HINT := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
DEPS_GROUP := $(if $(CROSS),cross)
