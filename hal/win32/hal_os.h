/* SPDX-License-Identifier: MIT */
/*
 * hal_os.h (win32) — the OS half of the HAL that kern sees: the thread
 * handle type and the guard band's size.
 *
 * Compiled into kern, so it is freestanding: no <windows.h>. Every call of
 * the Windows port is out of line, in the .c files of this directory.
 */
#ifndef WEFT_HAL_OS_H
#define WEFT_HAL_OS_H

#include <stdint.h>

/* A thread: a pointer to the port's record of it (thread.c), which holds
 * the thread's HANDLE. */
typedef uintptr_t hal_thread_t;

/* Pages of guard below each task stack: [NOACCESS][3 x PAGE_GUARD].
 * Windows pushes an exception's frame on the faulting stack, so a
 * NOACCESS page alone leaves no room for it and the process dies without
 * a word; the first touch of a PAGE_GUARD page raises a one-shot guard
 * violation while there is still room (mem.c, fault.c). */
#define HAL_STACK_GUARD_PAGES 4

/* struct hal_io's port words (hal.h): the OVERLAPPED, a WSABUF, the
 * receive flags, an address and its length, and AcceptEx's two address
 * slots (sock.c, struct win_op, checks that it fits). */
#define HAL_IO_PORT_WORDS 48

#endif /* WEFT_HAL_OS_H */
