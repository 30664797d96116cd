/* SPDX-License-Identifier: MIT */
/*
 * switch_sysv.S — the task context switch for the x86_64 System V ABI
 * (Linux, BSD, macOS), and the stub a new context starts in.
 *
 * Only what the ABI says survives a call is saved: rbp, rbx, r12-r15, the
 * MXCSR and the x87 control word. Everything else is dead at a call site,
 * so the compiler has already saved it if it mattered. The layout is in
 * hal_arch.h (HAL_FRAME_*); context.c builds the first frame of a task.
 *
 * Both routines are .hidden: the library exports only weft_* names, and
 * -fvisibility=hidden, which hides the C code's, does not reach assembly.
 */
#include "hal_arch.h"

/* Sanitizer builds: hal/posix/sanitizer.c defines hal_ctx_switch, which
 * announces the switch to the sanitizer and calls this routine. */
#if defined(WEFT_SAN_ASAN) || defined(WEFT_SAN_TSAN)
#define hal_ctx_switch hal_ctx_switch_raw
#endif

        .text

/*
 * void hal_ctx_switch(struct hal_context *from, struct hal_context *to);
 * Save the caller's callee-saved state on its stack and its sp in *from;
 * load the sp from *to and return into that context.
 *
 * The call already pushed the return address at HAL_FRAME_RET. The store
 * to from->sp is the last use of the old stack, and nothing here needs a
 * fence: kern publishes the old context only after this call returns on
 * the new stack, and that publication is its release.
 */
        .globl  hal_ctx_switch
        .hidden hal_ctx_switch
        .type   hal_ctx_switch, @function
        .p2align 4
hal_ctx_switch:
        .cfi_startproc
        subq    $HAL_FRAME_RET, %rsp
        .cfi_adjust_cfa_offset HAL_FRAME_RET
        movq    %rbp, HAL_FRAME_RBP(%rsp)
        .cfi_rel_offset rbp, HAL_FRAME_RBP
        movq    %rbx, HAL_FRAME_RBX(%rsp)
        .cfi_rel_offset rbx, HAL_FRAME_RBX
        movq    %r12, HAL_FRAME_R12(%rsp)
        .cfi_rel_offset r12, HAL_FRAME_R12
        movq    %r13, HAL_FRAME_R13(%rsp)
        .cfi_rel_offset r13, HAL_FRAME_R13
        movq    %r14, HAL_FRAME_R14(%rsp)
        .cfi_rel_offset r14, HAL_FRAME_R14
        movq    %r15, HAL_FRAME_R15(%rsp)
        .cfi_rel_offset r15, HAL_FRAME_R15
        stmxcsr HAL_FRAME_MXCSR(%rsp)
        fnstcw  HAL_FRAME_FCW(%rsp)
        /* Keep the current control words in scratch registers: loading
         * them (ldmxcsr, fldcw) costs more than the rest of the switch,
         * and they almost never differ between contexts, so they are
         * loaded only when they do. */
        movl    HAL_FRAME_MXCSR(%rsp), %eax
        movzwl  HAL_FRAME_FCW(%rsp), %edx

        movq    %rsp, HAL_CTX_SP(%rdi)
        movq    HAL_CTX_SP(%rsi), %rsp
        /* Same frame layout on the new stack, so the CFI above still
         * describes where everything is. */

        cmpl    HAL_FRAME_MXCSR(%rsp), %eax
        jne     .Lload_mxcsr
.Lmxcsr_done:
        cmpw    HAL_FRAME_FCW(%rsp), %dx
        jne     .Lload_fcw
.Lfcw_done:
        movq    HAL_FRAME_R15(%rsp), %r15
        movq    HAL_FRAME_R14(%rsp), %r14
        movq    HAL_FRAME_R13(%rsp), %r13
        movq    HAL_FRAME_R12(%rsp), %r12
        movq    HAL_FRAME_RBX(%rsp), %rbx
        movq    HAL_FRAME_RBP(%rsp), %rbp
        addq    $HAL_FRAME_RET, %rsp
        .cfi_adjust_cfa_offset -HAL_FRAME_RET
        ret
        .cfi_adjust_cfa_offset HAL_FRAME_RET
.Lload_mxcsr:
        ldmxcsr HAL_FRAME_MXCSR(%rsp)
        jmp     .Lmxcsr_done
.Lload_fcw:
        fldcw   HAL_FRAME_FCW(%rsp)
        jmp     .Lfcw_done
        .cfi_endproc
        .size   hal_ctx_switch, .-hal_ctx_switch

/*
 * void hal_ctx_start(void);   (never called; "returned" into)
 * The first hal_ctx_switch to a new context returns here, with the frame
 * from hal_ctx_init: r12 = entry, r13 = arg, rbp = 0, and rsp 16-aligned.
 * Calls entry(arg), so rsp % 16 == 8 at entry's first instruction as the
 * ABI wants. entry must not return; if it does, ud2 traps (SIGILL).
 * The return address is undefined here, so a debugger's backtrace ends.
 */
        .globl  hal_ctx_start
        .hidden hal_ctx_start
        .type   hal_ctx_start, @function
        .p2align 4
hal_ctx_start:
        .cfi_startproc
        .cfi_undefined rip
        movq    %r13, %rdi
        callq   *%r12
        ud2
        .cfi_endproc
        .size   hal_ctx_start, .-hal_ctx_start

        .section .note.GNU-stack, "", %progbits
