/* SPDX-License-Identifier: MIT */
/*
 * hal_arch.h (aarch64) — the architecture half of the HAL that kern sees:
 * struct hal_context, the spin-wait hint, stack constants, and the layout
 * of the frame hal_ctx_switch leaves on a suspended task's stack.
 *
 * Compiled into kern (freestanding) and into switch.S (cpp only), so it
 * includes nothing but <stddef.h>, and only for C. The frame layout is
 * shared by switch.S (which writes it) and context.c (which builds the
 * first one for a new task); context.c static-asserts it.
 *
 * A suspended context is only its stack pointer: everything the AAPCS64
 * says survives a call (x19-x28, the frame record x29/x30, the low halves
 * d8-d15 of v8-v15) and the FP control register sit on the task's stack.
 */
#ifndef WEFT_HAL_ARCH_H
#define WEFT_HAL_ARCH_H

/* Offset of sp in struct hal_context, for the assembly. */
#define HAL_CTX_SP 0

/* The ABI's stack alignment, in bytes (sp is always 16-aligned). */
#define HAL_STACK_ALIGN 16

/* Bytes of stack a Linux signal frame needs below a task's SP without SVE
 * or SME: the rt_sigframe with its 4 KiB of records is 4,704 bytes
 * (4,928 measured with the handler: docs/platforms.md, "Preemption
 * inside the signal handler"), rounded up.
 * SVE and SME registers can make it much larger (up to ~9 KiB for SVE at
 * 2048 bits, past the 4 KiB area in an extra_context record): the real
 * size is measured at run time (hal_preempt_headroom), this is its floor. */
#define HAL_SIGNAL_HEADROOM 5120

/*
 * The switch frame, at a suspended context's sp (offsets in bytes). Pairs
 * are stored with stp, so each pair's first register is 16-aligned.
 *
 *   +168  padding (keeps the frame a multiple of 16)
 *   +160  FPCR
 *   +96   d8, d9, ..., d15   (8 bytes each)
 *   +80   x29 (frame pointer), x30 (link register: where to return)
 *   +0    x19, x20, ..., x28 (8 bytes each)
 *
 * sp + HAL_FRAME_SIZE is the caller's sp before the call.
 */
#define HAL_FRAME_X19 0
#define HAL_FRAME_X21 16
#define HAL_FRAME_X23 32
#define HAL_FRAME_X25 48
#define HAL_FRAME_X27 64
#define HAL_FRAME_X29 80
#define HAL_FRAME_X30 88
#define HAL_FRAME_D8 96
#define HAL_FRAME_D10 112
#define HAL_FRAME_D12 128
#define HAL_FRAME_D14 144
#define HAL_FRAME_FPCR 160
#define HAL_FRAME_SIZE 176

/* The FPCR a new context starts with: round to nearest, no flush to zero,
 * no default NaN, no traps (what Linux gives a new process). */
#define HAL_FPCR_INIT 0

#ifndef __ASSEMBLER__
#include <stddef.h>

/* A suspended context: the task's stack pointer, which points at the
 * switch frame above. Written only by hal_ctx_switch and hal_ctx_init.
 * Sanitizer builds add what hal/posix/sanitizer.c needs to announce each
 * switch; release builds have sp alone. */
struct hal_context {
    void *sp;
#if defined(WEFT_SAN_ASAN) || defined(WEFT_SAN_TSAN)
    const void *san_stack_lo; /* ASan: the stack this context runs on */
    size_t san_stack_size;
    void *san_fake_stack;      /* ASan: its fake stack while suspended */
    void *san_fiber;           /* TSan: its fiber */
    size_t san_slot;           /* TSan: its entry in sanitizer.c's fiber table */
    int san_running;           /* TSan: a thread runs on its fiber (relaxed) */
    void (*san_entry)(void *); /* what hal_ctx_init was asked to call */
    void *san_arg;
#endif
};

/* One spin-wait step (yield: a hint to an SMT core or a hypervisor that
 * this thread is spinning). Also a compiler barrier. Never blocks;
 * async-signal-safe. */
static inline void hal_cpu_relax(void)
{
    __asm__ __volatile__("yield" ::: "memory");
}
/* A hint that ctx will be switched to soon (kern calls it when it readies
 * a task): start loading the saved frame hal_ctx_switch pops first. With
 * thousands of tasks those lines are cold, and the switch's first load
 * stalls on them (docs/benchmarks.md, "Figures behind the code"). A
 * prefetch never faults, whatever sp holds. */
static inline void hal_ctx_prefetch(const struct hal_context *ctx)
{
    uintptr_t sp = (uintptr_t)ctx->sp;
    for (int off = 0; off < HAL_FRAME_SIZE; off += 64)
        __builtin_prefetch((const void *)(sp + (uintptr_t)off));
    __builtin_prefetch((const void *)(sp + HAL_FRAME_SIZE - 1));
}
#endif /* !__ASSEMBLER__ */

#endif /* WEFT_HAL_ARCH_H */
