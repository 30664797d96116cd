/* SPDX-License-Identifier: MIT */
/*
 * hal_arch.h (x86_64) — the architecture half of the HAL that kern sees:
 * struct hal_context, the spin-wait hint, stack constants, and the layout
 * of the frame hal_ctx_switch leaves on a suspended task's stack.
 *
 * Compiled into kern (freestanding) and into the .S files (cpp only), so
 * it includes nothing but <stddef.h>, and only for C. The frame layout is
 * shared by switch_sysv.S (which writes it) and context.c (which builds
 * the first one for a new task); context.c static-asserts it.
 *
 * A suspended context is only its stack pointer: everything callee-saved
 * sits on the task's own stack, like xv6's swtch but without the copy into
 * a struct. The Win64 ABI (switch_win64.S) adds rdi, rsi, xmm6-15 and
 * the TIB's stack fields to this frame; the SysV ABI keeps no vector
 * register across a call, only the MXCSR and x87 control words. Which
 * frame is picked by the compiler's _WIN64 (a HAL header may test the
 * OS; kern never does).
 */
#ifndef WEFT_HAL_ARCH_H
#define WEFT_HAL_ARCH_H

/* Offset of sp in struct hal_context, for the assembly. */
#define HAL_CTX_SP 0

/* The ABI's stack alignment at a call instruction, in bytes. */
#define HAL_STACK_ALIGN 16

/* Bytes of stack a signal frame may need below a task's SP when the
 * kernel does not say (AT_MINSIGSTKSZ, Linux 5.14+): the frame with
 * AVX-512 state measured 3,040 bytes (docs/platforms.md, "Preemption
 * inside the signal handler"). The floor
 * of hal_preempt_headroom, which measures the machine. */
#define HAL_SIGNAL_HEADROOM 4096

#ifndef _WIN64
/*
 * The switch frame of the System V ABI (switch_sysv.S), at a suspended
 * context's sp (offsets in bytes):
 *
 *   +56  return address into the caller of hal_ctx_switch (pushed by call)
 *   +48  rbp
 *   +40  rbx
 *   +32  r12
 *   +24  r13
 *   +16  r14
 *   +8   r15
 *   +4   x87 control word (16 bits)
 *   +0   MXCSR (32 bits)
 *
 * HAL_FRAME_SIZE includes the return address; sp + HAL_FRAME_SIZE is the
 * caller's stack pointer after the call returns.
 */
#define HAL_FRAME_MXCSR 0
#define HAL_FRAME_FCW 4
#define HAL_FRAME_R15 8
#define HAL_FRAME_R14 16
#define HAL_FRAME_R13 24
#define HAL_FRAME_R12 32
#define HAL_FRAME_RBX 40
#define HAL_FRAME_RBP 48
#define HAL_FRAME_RET 56
#define HAL_FRAME_SIZE 64
#else
/*
 * The switch frame of the Win64 ABI (switch_win64.S). The ABI keeps more
 * across a call: rdi, rsi and xmm6-xmm15 too. And the thread's TIB
 * describes the stack it runs on (StackBase, StackLimit,
 * DeallocationStack at gs:0x08, gs:0x10, gs:0x1478), which exception
 * dispatch, unwinding and the stack probe (___chkstk_ms) read, so each
 * context carries its own three values:
 *
 *   +264 return address into the caller of hal_ctx_switch
 *   +256 rbp      +248 rbx      +240 rdi      +232 rsi
 *   +224 r12      +216 r13      +208 r14      +200 r15
 *   +192 TIB DeallocationStack  +184 TIB StackLimit  +176 TIB StackBase
 *   +16  xmm6 ... xmm15 (16 bytes each, 16-aligned)
 *   +4   x87 control word (16 bits)
 *   +0   MXCSR (32 bits)
 */
#define HAL_FRAME_MXCSR 0
#define HAL_FRAME_FCW 4
#define HAL_FRAME_XMM6 16 /* xmm(6+i) at HAL_FRAME_XMM6 + 16 * i */
#define HAL_FRAME_STACK_BASE 176
#define HAL_FRAME_STACK_LIMIT 184
#define HAL_FRAME_STACK_DEALLOC 192
#define HAL_FRAME_R15 200
#define HAL_FRAME_R14 208
#define HAL_FRAME_R13 216
#define HAL_FRAME_R12 224
#define HAL_FRAME_RSI 232
#define HAL_FRAME_RDI 240
#define HAL_FRAME_RBX 248
#define HAL_FRAME_RBP 256
#define HAL_FRAME_RET 264
#define HAL_FRAME_SIZE 272

/* The TIB fields, as offsets from the gs base. */
#define HAL_TIB_STACK_BASE 0x08
#define HAL_TIB_STACK_LIMIT 0x10
#define HAL_TIB_STACK_DEALLOC 0x1478
#endif

/* The ABI's initial control words: all exceptions masked, round to
 * nearest; x87 extended precision (SysV) or double precision (Win64, as
 * Windows starts every thread). */
#define HAL_MXCSR_INIT 0x1F80
#ifndef _WIN64
#define HAL_FCW_INIT 0x037F
#else
#define HAL_FCW_INIT 0x027F
#endif

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

/* One spin-wait step (pause: yields the core's pipeline to its sibling
 * hyperthread and avoids the memory-order flush on loop exit). Also a
 * compiler barrier. Never blocks; async-signal-safe. */
static inline void hal_cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
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
