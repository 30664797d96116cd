/* SPDX-License-Identifier: MIT */
/*
 * context.c (x86_64) — builds the first switch frame of a new context.
 *
 * hal_ctx_switch (switch_sysv.S) resumes a context by loading its sp,
 * popping the frame described in hal_arch.h and returning. A new context
 * is therefore just a stack whose top holds a frame that "returns" into
 * hal_ctx_start with entry and arg in two callee-saved registers. This
 * file and the .S share the HAL_FRAME_* offsets; the assertions below
 * keep them and struct hal_context in step.
 *
 * Freestanding like kern: it needs nothing from the OS.
 */
#include <stddef.h>
#include <stdint.h>

/* Sanitizer builds: hal/posix/sanitizer.c defines hal_ctx_init, which
 * records what the sanitizer must know about the context and calls this. */
#if defined(WEFT_SAN_ASAN) || defined(WEFT_SAN_TSAN)
#define hal_ctx_init hal_ctx_init_raw
#endif

#include "hal/hal.h"

_Static_assert(offsetof(struct hal_context, sp) == HAL_CTX_SP,
               "HAL_CTX_SP must match struct hal_context");
_Static_assert(HAL_FRAME_SIZE % HAL_STACK_ALIGN == 0, "the switch frame keeps the stack aligned");
_Static_assert(HAL_FRAME_RET + 8 == HAL_FRAME_SIZE, "the return address is the frame's last word");
_Static_assert(HAL_FRAME_FCW >= HAL_FRAME_MXCSR + 4 && HAL_FRAME_R15 >= HAL_FRAME_FCW + 2,
               "control words do not overlap the registers");

/* The stub in switch_sysv.S that calls entry(arg). */
void hal_ctx_start(void);

static void put64(char *frame, int off, uint64_t v)
{
    *(uint64_t *)(void *)(frame + off) = v;
}

/*
 * Lays out, at the 16-aligned top of [stack_lo, stack_lo + size), a switch
 * frame whose sp is 16-aligned (so rsp is 16-aligned after the final ret
 * into hal_ctx_start, and 8 mod 16 inside entry). Writes HAL_FRAME_SIZE
 * bytes at the top of the stack, which must be committed. rbp is 0 so a
 * frame-pointer walk (weft_dump) stops at the task's first frame. The
 * other callee-saved registers start as 0 and the control words as the
 * ABI's initial values, whatever the creating thread has set.
 */
void hal_ctx_init(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                  void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)(HAL_STACK_ALIGN - 1);
    char *frame = (char *)(top - HAL_FRAME_SIZE);

    *(uint32_t *)(void *)(frame + HAL_FRAME_MXCSR) = HAL_MXCSR_INIT;
    *(uint16_t *)(void *)(frame + HAL_FRAME_FCW) = HAL_FCW_INIT;
    *(uint16_t *)(void *)(frame + HAL_FRAME_FCW + 2) = 0;
    put64(frame, HAL_FRAME_R15, 0);
    put64(frame, HAL_FRAME_R14, 0);
    put64(frame, HAL_FRAME_R13, (uint64_t)(uintptr_t)arg);
    put64(frame, HAL_FRAME_R12, (uint64_t)(uintptr_t)entry);
    put64(frame, HAL_FRAME_RBX, 0);
    put64(frame, HAL_FRAME_RBP, 0);
    put64(frame, HAL_FRAME_RET, (uint64_t)(uintptr_t)hal_ctx_start);
    ctx->sp = frame;
}
