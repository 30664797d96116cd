# SPDX-License-Identifier: MIT
# linux-x86_64: native on an x86_64 host, cross (x86_64-linux-gnu-gcc +
# qemu-x86_64) on any other host.
OS   := posix
ARCH := x86_64
EXE  :=
LIBS := -pthread -lm
SHARED := 1
PIC  := -fPIC
ARCH_CFLAGS :=

# The port's sources, every one named (docs/PORTING.md): the OS half, then
# the architecture's. A second backend of a mechanism (poll_*.c, switch_*.S)
# is built only where a target lists it.
HAL_SRCS := hal/posix/env.c \
            hal/posix/futex.c \
            hal/posix/io.c \
            hal/posix/mem.c \
            hal/posix/poll_epoll.c \
            hal/posix/preempt.c \
            hal/posix/sanitizer.c \
            hal/posix/signal.c \
            hal/posix/thread.c \
            hal/posix/time.c \
            hal/posix/tools.c \
            hal/x86_64/context.c \
            hal/x86_64/switch_sysv.S

ifeq ($(HOST_ARCH),x86_64)
CROSS :=
RUN   :=
TEST_TIMEOUT_MULT := 1
TEST_SCALE := 1
else
CROSS := x86_64-linux-gnu-
RUN   := qemu-x86_64 -L /usr/x86_64-linux-gnu
TEST_TIMEOUT_MULT := 8
TEST_SCALE := 10
endif

CC := $(CROSS)gcc
AR := $(CROSS)ar
NM := $(CROSS)nm
OBJCOPY := $(CROSS)objcopy
OBJDUMP := $(CROSS)objdump
LD := $(CROSS)ld
DEPS_HINT := gcc binutils
