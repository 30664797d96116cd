/* SPDX-License-Identifier: MIT */
/*
 * frame_record.h — the walk of a chain of frame records, shared by the
 * architectures whose ABI keeps one when code is built with frame
 * pointers (x86_64 System V: rbp; aarch64: x29).
 *
 * A function's frame pointer holds the address of its frame record: two
 * words, the frame pointer of its caller and the address to return to in
 * its caller. Following the first words from record to record therefore
 * visits the callers, outermost last, and the second words are the
 * return addresses. A stack grows down, so each record sits above the
 * last; the first frame of a context has a frame pointer of 0
 * (hal_ctx_init), which ends the chain.
 *
 * Freestanding, for hal/<arch>/context.c.
 */
#ifndef WEFT_HAL_FRAME_RECORD_H
#define WEFT_HAL_FRAME_RECORD_H

#include <stdint.h>

/* hal_ctx_backtrace (hal.h) for a context whose switch frame, at sp and
 * size bytes long, holds the frame pointer (at fp_off) and the return
 * address (at ret_off) of the code that called hal_ctx_switch: that
 * return address is the first one, and that frame pointer starts the
 * chain. Every read lies in [lo, hi), each record above the last, so the
 * walk ends within (hi - lo) / 16 steps whatever the memory holds: it may
 * be changing under the reader. No sanitizer looks at these reads: they
 * race with the stack's owner by design. */
__attribute__((no_sanitize("address", "thread"))) static inline int
hal_frame_walk(uintptr_t sp, int fp_off, int ret_off, int size, uintptr_t lo, uintptr_t hi,
               uintptr_t *pcs, int max)
{
    if (max <= 0 || sp < lo || sp % 8 != 0 || hi < (uintptr_t)size || sp > hi - (uintptr_t)size)
        return 0;
    const volatile uint64_t *frame = (const volatile uint64_t *)sp;
    uintptr_t fp = (uintptr_t)frame[fp_off / 8];
    uintptr_t floor = sp + (uintptr_t)size; /* the caller's records are above the frame */
    int n = 0;
    pcs[n++] = (uintptr_t)frame[ret_off / 8];
    while (n < max && fp >= floor && fp <= hi - 16 && fp % 8 == 0) {
        const volatile uint64_t *rec = (const volatile uint64_t *)fp;
        uintptr_t next = (uintptr_t)rec[0];
        uintptr_t ret = (uintptr_t)rec[1];
        if (ret == 0)
            break;
        pcs[n++] = ret;
        floor = fp + 16;
        fp = next;
    }
    return n;
}

#endif /* WEFT_HAL_FRAME_RECORD_H */
