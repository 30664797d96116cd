/* SPDX-License-Identifier: MIT */
/*
 * hal_os.h (template) — the OS half of the HAL that kern sees. Copy this
 * directory to hal/<youros>/ and fill it in; docs/PORTING.md walks
 * through the whole contract (hal/hal.h).
 *
 * This header is compiled into kern, which is freestanding: include only
 * <stddef.h>, <stdint.h>, <stdbool.h> or <stdatomic.h>, never an OS
 * header. If an OS type must appear here, use an integer of its size.
 */
#ifndef WEFT_HAL_OS_H
#define WEFT_HAL_OS_H

#include <stdint.h>

/* TODO(port): the handle hal_thread_start returns and hal_thread_join
 * takes. An integer wide enough for the OS's thread handle (a pthread_t,
 * a Windows HANDLE, an RTOS task pointer). */
typedef uintptr_t hal_thread_t;

/* TODO(port): pages of guard kern leaves below every task stack (hal.h).
 * 1 when the fault handler runs on a stack of its own (POSIX altstack);
 * more when the OS pushes the fault's frame on the faulting stack. */
#define HAL_STACK_GUARD_PAGES 1

/* Must: the words of struct hal_io that belong to the port (hal.h "I/O
 * operations"): 1 for a readiness port; a completion port keeps its
 * OVERLAPPED-like record, buffers and an address there. */
#define HAL_IO_PORT_WORDS 1

/* Optional: a hot call may be defined here as static inline instead of in
 * template.c, if it needs no OS header and references only hal_* symbols
 * (the check-freestanding script allows nothing else in kern's objects).
 * hal_thread_get and hal_thread_set must stay real calls (hal.h). */

#endif /* WEFT_HAL_OS_H */
