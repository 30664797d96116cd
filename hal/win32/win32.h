/* SPDX-License-Identifier: MIT */
/*
 * win32.h — what the files of the Windows port share with each other, and
 * nothing kern sees. Each file of hal/win32 owns one mechanism:
 *
 *   mem.c      address space: VirtualAlloc reservations, commit, discard,
 *              the guard band of task stacks
 *   fault.c    the vectored exception handler that names a task whose
 *              stack overflowed, and the per-thread rescue stacks
 *   thread.c   CreateThread, the current-thread pointer, errno, CPUs
 *   futex.c    WaitOnAddress / WakeByAddress and sleeping
 *   time.c     QueryPerformanceCounter and the wall clock
 *   env.c      environment, the error stream, abort
 *   poll_iocp.c the poller: an I/O completion port
 *   sock.c     sockets (not yet: docs/platforms.md)
 *   preempt.c  preemption (cooperative for now) and code ranges
 *   call_on.S  running a function on another stack (fault.c)
 */
#ifndef WEFT_HAL_WIN32_H
#define WEFT_HAL_WIN32_H

#include "hal/hal.h"

/* fault.c: installs the vectored handler once per process (later calls do
 * nothing) and gives the calling thread a rescue stack (nesting: only the
 * outermost call allocates, the matching off frees). Thread-safe. */
void hal_win32_fault_install(void);
void hal_win32_rescue_on(void);
void hal_win32_rescue_off(void);

/* call_on.S: calls fn(arg) with rsp at stack_top (16-aligned), and returns
 * to the caller's stack afterwards. */
void hal_win32_call_on(void (*fn)(void *), void *arg, void *stack_top);

#endif /* WEFT_HAL_WIN32_H */
