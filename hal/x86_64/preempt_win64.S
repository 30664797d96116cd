/* SPDX-License-Identifier: MIT */
/*
 * preempt_win64.S — where a task preempted by suspension resumes (Windows
 * on x86_64; hal/win32/preempt.c does the suspending).
 *
 * The monitor found the stopped thread at a safe point, pushed its RIP on
 * the task's stack (Win64 has no red zone: everything below RSP is free)
 * and pointed RIP here. So this routine is entered as if the interrupted
 * code had called it between two of its instructions, with RSP at any
 * alignment and every register live: it saves what a C call may change
 * (rax, rcx, rdx, r8-r11, the flags, and the whole vector and x87 state
 * with XSAVE, or FXSAVE where the OS has not enabled XSAVE: that covers
 * xmm0-15, the upper halves of the ymm/zmm registers, which Win64 does not
 * preserve across calls, MXCSR and the x87 control word), clears the
 * direction flag for C, calls hal_win32_preempted(pc, frame), restores and
 * returns to the interrupted RIP. The callee-saved registers are kept by
 * C itself, also across a switch to another thread. Its frame lies below
 * the task's RSP for as long as the task is switched out (preempt.c:
 * hal_preempt_headroom counts it).
 *
 * Frame, from the entry RSP down (rbp points at the saved rbp):
 *   +72 interrupted RIP   +64 flags   +56 rax  +48 rcx  +40 rdx
 *   +32 r8  +24 r9  +16 r10  +8 r11  +0 rbp
 * then the save area (hal_win32_xsave_bytes, 64-aligned) and 32 bytes of
 * shadow space for the call.
 */
#define TRAMP_PC 72
#define XSAVE_HEADER 512

        .text

/*
 * void hal_win32_preempt_tramp(void);  -- never called; entered by
 * SetThreadContext with the interrupted RIP on the stack.
 */
        .globl  hal_win32_preempt_tramp
        .def    hal_win32_preempt_tramp; .scl 2; .type 32; .endef
        .p2align 4
        .seh_proc hal_win32_preempt_tramp
hal_win32_preempt_tramp:
        pushfq
        .seh_stackalloc 8
        pushq   %rax
        .seh_pushreg %rax
        pushq   %rcx
        .seh_pushreg %rcx
        pushq   %rdx
        .seh_pushreg %rdx
        pushq   %r8
        .seh_pushreg %r8
        pushq   %r9
        .seh_pushreg %r9
        pushq   %r10
        .seh_pushreg %r10
        pushq   %r11
        .seh_pushreg %r11
        pushq   %rbp
        .seh_pushreg %rbp
        movq    %rsp, %rbp
        .seh_setframe %rbp, 0
        .seh_endprologue
        cld
        subq    hal_win32_xsave_bytes(%rip), %rsp
        andq    $-64, %rsp
        cmpl    $0, hal_win32_use_xsave(%rip)
        je      1f
        /* XRSTOR faults unless the header's reserved bytes are zero, and
         * XSAVE writes only its first eight. */
        xorl    %eax, %eax
        movq    %rax, XSAVE_HEADER+0(%rsp)
        movq    %rax, XSAVE_HEADER+8(%rsp)
        movq    %rax, XSAVE_HEADER+16(%rsp)
        movq    %rax, XSAVE_HEADER+24(%rsp)
        movq    %rax, XSAVE_HEADER+32(%rsp)
        movq    %rax, XSAVE_HEADER+40(%rsp)
        movq    %rax, XSAVE_HEADER+48(%rsp)
        movq    %rax, XSAVE_HEADER+56(%rsp)
        movl    $-1, %eax
        movl    $-1, %edx
        xsave64 (%rsp)
        jmp     2f
1:      fxsave64 (%rsp)
2:      movq    TRAMP_PC(%rbp), %rcx
        movq    %rbp, %rdx
        subq    $32, %rsp
        call    hal_win32_preempted
        addq    $32, %rsp
        cmpl    $0, hal_win32_use_xsave(%rip)
        je      3f
        movl    $-1, %eax
        movl    $-1, %edx
        xrstor64 (%rsp)
        jmp     4f
3:      fxrstor64 (%rsp)
4:      movq    %rbp, %rsp
        popq    %rbp
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rdx
        popq    %rcx
        popq    %rax
        popfq
        ret
        .seh_endproc
