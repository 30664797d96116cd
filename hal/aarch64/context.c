/* SPDX-License-Identifier: MIT */
/*
 * context.c (aarch64) — builds the first switch frame of a new context.
 *
 * hal_ctx_switch (switch.S) resumes a context by loading its sp, restoring
 * the frame described in hal_arch.h and returning to the saved x30. A new
 * context is therefore just a stack whose top holds a frame with x30 =
 * hal_ctx_start and entry and arg in two callee-saved registers. This
 * file and the .S share the HAL_FRAME_* offsets; the assertions below keep
 * them and struct hal_context in step.
 *
 * It also walks a suspended context's frames (hal_ctx_backtrace).
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

#include "hal/frame_record.h"
#include "hal/hal.h"

_Static_assert(offsetof(struct hal_context, sp) == HAL_CTX_SP,
               "HAL_CTX_SP must match struct hal_context");
_Static_assert(HAL_FRAME_SIZE % HAL_STACK_ALIGN == 0, "the switch frame keeps sp 16-aligned");
_Static_assert(HAL_FRAME_X30 == HAL_FRAME_X29 + 8 && HAL_FRAME_D8 == HAL_FRAME_X29 + 16 &&
                   HAL_FRAME_FPCR == HAL_FRAME_D14 + 16 && HAL_FRAME_SIZE >= HAL_FRAME_FPCR + 8,
               "frame slots are laid out as switch.S stores them");

/* The stub in switch.S that calls entry(arg). */
void hal_ctx_start(void);

/*
 * Lays out, at the 16-aligned top of [stack_lo, stack_lo + size), a switch
 * frame of HAL_FRAME_SIZE bytes (the top of the stack must be committed),
 * so that the first switch returns into hal_ctx_start with sp at that
 * top. x29 is 0 so a frame-record walk (weft_dump) stops at the task's
 * first frame; the other registers start as 0 and the FPCR as the ABI's
 * default, whatever the creating thread has set.
 */
void hal_ctx_init(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                  void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)(HAL_STACK_ALIGN - 1);
    uint64_t *frame = (uint64_t *)(top - HAL_FRAME_SIZE);

    for (size_t i = 0; i < HAL_FRAME_SIZE / sizeof(uint64_t); i++)
        frame[i] = 0;
    frame[HAL_FRAME_X19 / 8] = (uint64_t)(uintptr_t)entry;
    frame[HAL_FRAME_X19 / 8 + 1] = (uint64_t)(uintptr_t)arg; /* x20 */
    frame[HAL_FRAME_X29 / 8] = 0;
    frame[HAL_FRAME_X30 / 8] = (uint64_t)(uintptr_t)hal_ctx_start;
    frame[HAL_FRAME_FPCR / 8] = HAL_FPCR_INIT;
    ctx->sp = frame;
}

/* The switch frame holds x29 and x30 of the code that called
 * hal_ctx_switch: its frame record's address and the address to return
 * to in it, the start of the chain (frame_record.h). */
int hal_ctx_backtrace(const struct hal_context *ctx, const void *lo, const void *hi, uintptr_t *pcs,
                      int max)
{
    uintptr_t sp = (uintptr_t)__atomic_load_n(&ctx->sp, __ATOMIC_RELAXED);
    return hal_frame_walk(sp, HAL_FRAME_X29, HAL_FRAME_X30, HAL_FRAME_SIZE, (uintptr_t)lo,
                          (uintptr_t)hi, pcs, max);
}
