/* SPDX-License-Identifier: MIT */
/*
 * context.c (x86_64) — builds the first switch frame of a new context.
 *
 * hal_ctx_switch (switch_sysv.S, or switch_win64.S on Windows) resumes
 * a context by loading its sp,
 * popping the frame described in hal_arch.h and returning. A new context
 * is therefore just a stack whose top holds a frame that "returns" into
 * hal_ctx_start with entry and arg in two callee-saved registers. This
 * file and the .S share the HAL_FRAME_* offsets; the assertions below
 * keep them and struct hal_context in step.
 *
 * On System V it also walks a suspended context's frames
 * (hal_ctx_backtrace); Windows walks them with its unwind tables
 * (hal/win32/unwind.c).
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
_Static_assert(HAL_FRAME_SIZE % HAL_STACK_ALIGN == 0, "the switch frame keeps the stack aligned");
_Static_assert(HAL_FRAME_RET + 8 == HAL_FRAME_SIZE, "the return address is the frame's last word");
#ifndef _WIN64
_Static_assert(HAL_FRAME_FCW >= HAL_FRAME_MXCSR + 4 && HAL_FRAME_R15 >= HAL_FRAME_FCW + 2,
               "control words do not overlap the registers");
#else
_Static_assert(HAL_FRAME_FCW >= HAL_FRAME_MXCSR + 4 && HAL_FRAME_XMM6 >= HAL_FRAME_FCW + 2,
               "control words do not overlap the registers");
_Static_assert(HAL_FRAME_XMM6 % 16 == 0, "movaps needs the xmm slots 16-aligned");
_Static_assert(HAL_FRAME_STACK_BASE == HAL_FRAME_XMM6 + 10 * 16, "xmm6-xmm15 end at the TIB slots");
_Static_assert(HAL_FRAME_STACK_LIMIT == HAL_FRAME_STACK_BASE + 8 &&
                   HAL_FRAME_STACK_DEALLOC == HAL_FRAME_STACK_LIMIT + 8 &&
                   HAL_FRAME_R15 == HAL_FRAME_STACK_DEALLOC + 8,
               "the TIB slots are three words before r15");
_Static_assert(HAL_FRAME_R14 == HAL_FRAME_R15 + 8 && HAL_FRAME_R13 == HAL_FRAME_R14 + 8 &&
                   HAL_FRAME_R12 == HAL_FRAME_R13 + 8 && HAL_FRAME_RSI == HAL_FRAME_R12 + 8 &&
                   HAL_FRAME_RDI == HAL_FRAME_RSI + 8 && HAL_FRAME_RBX == HAL_FRAME_RDI + 8 &&
                   HAL_FRAME_RBP == HAL_FRAME_RBX + 8 && HAL_FRAME_RET == HAL_FRAME_RBP + 8,
               "the general registers are consecutive words up to the return address");
#endif

/* The stub in the switch file that calls entry(arg). */
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
#ifdef _WIN64
    /* Win64: rdi, rsi and xmm6-15 start as 0, and the TIB is to describe
     * this stack: its top, its lowest usable byte, and the bottom of the
     * guard band below it (HAL_STACK_GUARD_PAGES pages of 4 KiB, hal_os.h), where
     * Windows' own thread stacks start their reservation too. */
    put64(frame, HAL_FRAME_RSI, 0);
    put64(frame, HAL_FRAME_RDI, 0);
    for (int i = 0; i < 10 * 16; i += 8)
        put64(frame, HAL_FRAME_XMM6 + i, 0);
    put64(frame, HAL_FRAME_STACK_BASE, (uint64_t)top);
    put64(frame, HAL_FRAME_STACK_LIMIT, (uint64_t)(uintptr_t)stack_lo);
    put64(frame, HAL_FRAME_STACK_DEALLOC,
          (uint64_t)((uintptr_t)stack_lo - HAL_STACK_GUARD_PAGES * 4096u));
#endif
    ctx->sp = frame;
}

#ifndef _WIN64
/* The switch frame holds rbp of the code that called hal_ctx_switch (its
 * frame record's address) and the address to return to in it, the start
 * of the chain (frame_record.h). */
int hal_ctx_backtrace(const struct hal_context *ctx, const void *lo, const void *hi, uintptr_t *pcs,
                      int max)
{
    uintptr_t sp = (uintptr_t)__atomic_load_n(&ctx->sp, __ATOMIC_RELAXED);
    return hal_frame_walk(sp, HAL_FRAME_RBP, HAL_FRAME_RET, HAL_FRAME_SIZE, (uintptr_t)lo,
                          (uintptr_t)hi, pcs, max);
}
#endif
