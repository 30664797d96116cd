/* SPDX-License-Identifier: MIT */
/*
 * switch.S (aarch64) — the task context switch for the AAPCS64 (Linux,
 * and the same registers on macOS and Windows on Arm), and the stub a new
 * context starts in.
 *
 * Only what the ABI says survives a call is saved: x19-x28, x29, x30,
 * d8-d15 and the FPCR. Everything else is dead at a call site. The layout
 * is in hal_arch.h (HAL_FRAME_*); context.c builds the first frame.
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
 * load the sp from *to and return (to x30) into that context.
 *
 * sp cannot be stored directly, so it goes through x9 (caller-saved).
 * The store to from->sp is the last use of the old stack, and nothing
 * here needs a barrier: kern publishes the old context only after this
 * call returns on the new stack, and that publication is its release.
 */
        .globl  hal_ctx_switch
        .hidden hal_ctx_switch
        .type   hal_ctx_switch, %function
        .p2align 4
hal_ctx_switch:
        .cfi_startproc
        sub     sp, sp, #HAL_FRAME_SIZE
        .cfi_adjust_cfa_offset HAL_FRAME_SIZE
        stp     x19, x20, [sp, #HAL_FRAME_X19]
        stp     x21, x22, [sp, #HAL_FRAME_X21]
        stp     x23, x24, [sp, #HAL_FRAME_X23]
        stp     x25, x26, [sp, #HAL_FRAME_X25]
        stp     x27, x28, [sp, #HAL_FRAME_X27]
        stp     x29, x30, [sp, #HAL_FRAME_X29]
        .cfi_rel_offset x29, HAL_FRAME_X29
        .cfi_rel_offset x30, HAL_FRAME_X30
        stp     d8, d9, [sp, #HAL_FRAME_D8]
        stp     d10, d11, [sp, #HAL_FRAME_D10]
        stp     d12, d13, [sp, #HAL_FRAME_D12]
        stp     d14, d15, [sp, #HAL_FRAME_D14]
        mrs     x10, fpcr
        str     x10, [sp, #HAL_FRAME_FPCR]

        mov     x9, sp
        str     x9, [x0, #HAL_CTX_SP]
        ldr     x9, [x1, #HAL_CTX_SP]
        mov     sp, x9
        /* Same frame layout on the new stack, so the CFI above still
         * describes where everything is. */

        ldr     x10, [sp, #HAL_FRAME_FPCR]
        msr     fpcr, x10
        ldp     d14, d15, [sp, #HAL_FRAME_D14]
        ldp     d12, d13, [sp, #HAL_FRAME_D12]
        ldp     d10, d11, [sp, #HAL_FRAME_D10]
        ldp     d8, d9, [sp, #HAL_FRAME_D8]
        ldp     x29, x30, [sp, #HAL_FRAME_X29]
        ldp     x27, x28, [sp, #HAL_FRAME_X27]
        ldp     x25, x26, [sp, #HAL_FRAME_X25]
        ldp     x23, x24, [sp, #HAL_FRAME_X23]
        ldp     x21, x22, [sp, #HAL_FRAME_X21]
        ldp     x19, x20, [sp, #HAL_FRAME_X19]
        add     sp, sp, #HAL_FRAME_SIZE
        .cfi_adjust_cfa_offset -HAL_FRAME_SIZE
        ret
        .cfi_endproc
        .size   hal_ctx_switch, .-hal_ctx_switch

/*
 * void hal_ctx_start(void);   (never called; "returned" into)
 * The first hal_ctx_switch to a new context returns here, with the frame
 * from hal_ctx_init: x19 = entry, x20 = arg, x29 = 0, sp 16-aligned.
 * Calls entry(arg). entry must not return; if it does, brk traps
 * (SIGTRAP). x30 is undefined here, so a debugger's backtrace ends.
 */
        .globl  hal_ctx_start
        .hidden hal_ctx_start
        .type   hal_ctx_start, %function
        .p2align 4
hal_ctx_start:
        .cfi_startproc
        .cfi_undefined x30
        mov     x0, x20
        blr     x19
        brk     #0x3e8
        .cfi_endproc
        .size   hal_ctx_start, .-hal_ctx_start

        .section .note.GNU-stack, "", %progbits
