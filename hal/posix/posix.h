/* SPDX-License-Identifier: MIT */
/*
 * posix.h — what the files of the POSIX port share with each other, and
 * nothing kern sees. Each file of hal/posix owns one mechanism:
 *
 *   mem.c     address space: mmap reservations, commit, discard, guards
 *   thread.c  pthreads, the current-thread pointer, per-thread altstacks
 *   signal.c  the process-wide SIGSEGV/SIGBUS handler and its chaining
 *   preempt.c the SIGURG preemption handler, code ranges, errno access
 *   futex.c   futex wait/wake and sleeping
 *   time.c    clocks
 *   env.c     environment, the error stream, abort
 */
#ifndef WEFT_HAL_POSIX_H
#define WEFT_HAL_POSIX_H

#include "hal/hal.h"

/* Installs the fault handler for SIGSEGV and SIGBUS once per process
 * (later calls do nothing), remembering the host's previous handlers for
 * chaining. Thread-safe. Defined in signal.c. */
void hal_posix_fault_install(void);

/* preempt.c: the largest signal frame the kernel may push on this machine,
 * in bytes (AT_MINSIGSTKSZ, or an estimate from the vector lengths where
 * the kernel does not say), at least HAL_SIGNAL_HEADROOM. Constant;
 * thread-safe; not async-signal-safe on the first call. */
size_t hal_posix_signal_frame(void);

/* thread.c: whether mask (an interrupted context's uc_sigmask) is the
 * calling thread's normal signal mask, the one it had when it entered weft
 * (hal_thread_start or hal_thread_enter). Only the kernel's 64-signal word
 * is compared (the rest of glibc's sigset_t in a signal frame is not the
 * kernel's). Another mask means that code interrupted at that point runs
 * inside a signal handler (which blocks its own signal) or changed the
 * mask itself: preempt.c then does not preempt. True when the thread never
 * entered weft. Async-signal-safe. */
#include <signal.h>
bool hal_posix_mask_is_normal(const sigset_t *mask);

/* Reads thread t's /proc/self/task/TID/stat (sched: schedstat) into buf
 * (NUL-terminated), from the descriptor the thread opened for itself when
 * it started (thread.c, "State files"). Returns the bytes read, or -1
 * (not a weft thread, or no such file). Any thread; takes a mutex. */
ssize_t hal_posix_stat_read(pthread_t t, bool sched, char *buf, size_t size);

/* tools.c: a reservation is going away; forget the stacks registered in it. */
void hal_posix_stacks_released(void *addr, size_t size);

/* sanitizer.c (SAN=tsan): a reservation is going away; destroy the TSan
 * fibers of the contexts that lie in it. */
#ifdef WEFT_SAN_TSAN
void hal_posix_san_released(void *addr, size_t size);
#endif

#endif /* WEFT_HAL_POSIX_H */
