/* SPDX-License-Identifier: MIT */
/*
 * hal_os.h (posix) — the OS half of the HAL that kern sees: the thread
 * handle type and two sizes.
 *
 * Compiled into kern, so it is freestanding: no OS header, no libc. Every
 * POSIX HAL call is out of line, in the .c files of this directory. The
 * candidates for inlining were the clock and the current-thread pointer:
 * the clock is a vDSO call either way, and the thread pointer must stay a
 * real call (hal.h: the compiler must not reuse a value read before a
 * switch, and kern may not use TLS).
 */
#ifndef WEFT_HAL_OS_H
#define WEFT_HAL_OS_H

#include <stdint.h>

/* A thread started by hal_thread_start: its pthread_t (an integer or a
 * pointer on every POSIX system weft targets; thread.c asserts it fits). */
typedef uintptr_t hal_thread_t;

/* Pages of guard below each task stack (hal.h): one PROT_NONE page (or
 * guard region) is enough, since a fault is handled on the altstack. */
#define HAL_STACK_GUARD_PAGES 1

/* struct hal_io's port words (hal.h): a readiness port keeps nothing in
 * an operation. */
#define HAL_IO_PORT_WORDS 1

#endif /* WEFT_HAL_OS_H */
