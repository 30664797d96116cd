/* SPDX-License-Identifier: MIT */
/*
 * hal_arch.h (template) — the architecture half of the HAL that kern
 * sees. Copy to hal/<yourarch>/ and fill it in; see hal/x86_64 and
 * hal/aarch64 for two complete ones, and docs/PORTING.md.
 *
 * Compiled into kern (freestanding: only <stddef.h> and friends) and
 * into the port's assembly (so keep C under #ifndef __ASSEMBLER__).
 */
#ifndef WEFT_HAL_ARCH_H
#define WEFT_HAL_ARCH_H

/* Offset of sp in struct hal_context, for the assembly; context.c must
 * _Static_assert it against offsetof. */
#define HAL_CTX_SP 0

/* TODO(port): the stack alignment the ABI requires at a call (16 on
 * x86_64, aarch64 and riscv64; 8 on 32-bit ARM EABI). */
#define HAL_STACK_ALIGN 16

/* TODO(port): bytes a signal or exception frame needs below a task's SP
 * at least (the frame your OS pushes without optional vector
 * extensions, rounded up): the floor of hal_preempt_headroom, which
 * measures the machine at run time. */
#define HAL_SIGNAL_HEADROOM 8192

/* TODO(port): the layout of the switch frame, HAL_FRAME_* offsets shared
 * by the switch assembly and hal_ctx_init. Symbolic offsets only. */

#ifndef __ASSEMBLER__
#include <stddef.h>

/* A suspended context. Storing only the stack pointer (everything else
 * pushed on the task's own stack by hal_ctx_switch) keeps it small and
 * makes the "store sp last" rule of hal.h easy to keep. */
struct hal_context {
    void *sp;
};

/* TODO(port): one spin-wait hint (x86 pause, Arm yield, RISC-V pause
 * from Zihintpause), with a "memory" clobber so it is also a compiler
 * barrier. Never blocks; async-signal-safe. */
static inline void hal_cpu_relax(void)
{
    __asm__ __volatile__("" ::: "memory");
}
/* TODO(port): a hint that ctx will be switched to soon: prefetch its saved
 * frame (the HAL_FRAME_SIZE bytes at ctx->sp), or nothing. Must not fault
 * on any sp (a fresh context's may be NULL). */
static inline void hal_ctx_prefetch(const struct hal_context *ctx)
{
    (void)ctx;
}
#endif /* !__ASSEMBLER__ */

#endif /* WEFT_HAL_ARCH_H */
