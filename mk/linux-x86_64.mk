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

# The port's sources (docs/PORTING.md): the OS half, shared by the Linux
# targets, then the architecture's.
include mk/linux-hal.inc
HAL_SRCS := $(LINUX_HAL_SRCS) hal/x86_64/context.c hal/x86_64/switch_sysv.S

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
