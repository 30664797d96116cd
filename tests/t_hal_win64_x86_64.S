/* SPDX-License-Identifier: MIT */
/*
 * t_hal_win64_x86_64.S — the assembly of tests/t_hal_win32.c, for the
 * Win64 ABI (arguments in rcx, rdx, r8, r9; 32 bytes of shadow space;
 * rbx, rbp, rdi, rsi, r12-r15, xmm6-xmm15, MXCSR and the x87 control
 * word survive a call). The Makefile builds every tests/NAME_x86_64.S on
 * both x86_64 targets; this one is empty but on Windows.
 */
#ifdef _WIN64
        .text

/*
 * void t_hal_regs_switch(struct hal_context *from, struct hal_context *to,
 *                        const uint64_t in[30], uint64_t out[30]);
 * Loads in[] into every callee-saved register and control word, calls
 * hal_ctx_switch(from, to), and when that returns stores them into out[].
 * Layout of in[] and out[]: rbx rbp rdi rsi r12 r13 r14 r15 (0-7), xmm6-
 * xmm15 as low, high quadwords (8-27), MXCSR (28), x87 control word (29).
 * The caller's own registers are saved and restored around all of it.
 */
        .globl  t_hal_regs_switch
        .def    t_hal_regs_switch; .scl 2; .type 32; .endef
        .p2align 4
t_hal_regs_switch:
        pushq   %rbp
        pushq   %rbx
        pushq   %rdi
        pushq   %rsi
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        /* 8 pushes keep rsp at 8 mod 16; 216 more make it 16-aligned for
         * the call: shadow space at 0, out at 32, MXCSR 40, FCW 44,
         * xmm6-xmm15 at 48..207. */
        subq    $216, %rsp
        movq    %r9, 32(%rsp)
        stmxcsr 40(%rsp)
        fnstcw  44(%rsp)
        movaps  %xmm6, 48(%rsp)
        movaps  %xmm7, 64(%rsp)
        movaps  %xmm8, 80(%rsp)
        movaps  %xmm9, 96(%rsp)
        movaps  %xmm10, 112(%rsp)
        movaps  %xmm11, 128(%rsp)
        movaps  %xmm12, 144(%rsp)
        movaps  %xmm13, 160(%rsp)
        movaps  %xmm14, 176(%rsp)
        movaps  %xmm15, 192(%rsp)

        ldmxcsr 224(%r8)
        fldcw   232(%r8)
        movdqu  64(%r8), %xmm6
        movdqu  80(%r8), %xmm7
        movdqu  96(%r8), %xmm8
        movdqu  112(%r8), %xmm9
        movdqu  128(%r8), %xmm10
        movdqu  144(%r8), %xmm11
        movdqu  160(%r8), %xmm12
        movdqu  176(%r8), %xmm13
        movdqu  192(%r8), %xmm14
        movdqu  208(%r8), %xmm15
        movq    0(%r8), %rbx
        movq    8(%r8), %rbp
        movq    16(%r8), %rdi
        movq    24(%r8), %rsi
        movq    32(%r8), %r12
        movq    40(%r8), %r13
        movq    48(%r8), %r14
        movq    56(%r8), %r15
        /* rcx and rdx still hold from and to. */
        callq   hal_ctx_switch

        movq    32(%rsp), %rax
        movq    %rbx, 0(%rax)
        movq    %rbp, 8(%rax)
        movq    %rdi, 16(%rax)
        movq    %rsi, 24(%rax)
        movq    %r12, 32(%rax)
        movq    %r13, 40(%rax)
        movq    %r14, 48(%rax)
        movq    %r15, 56(%rax)
        movdqu  %xmm6, 64(%rax)
        movdqu  %xmm7, 80(%rax)
        movdqu  %xmm8, 96(%rax)
        movdqu  %xmm9, 112(%rax)
        movdqu  %xmm10, 128(%rax)
        movdqu  %xmm11, 144(%rax)
        movdqu  %xmm12, 160(%rax)
        movdqu  %xmm13, 176(%rax)
        movdqu  %xmm14, 192(%rax)
        movdqu  %xmm15, 208(%rax)
        movq    $0, 224(%rax)
        stmxcsr 224(%rax)
        movq    $0, 232(%rax)
        fnstcw  232(%rax)

        ldmxcsr 40(%rsp)
        fldcw   44(%rsp)
        movaps  48(%rsp), %xmm6
        movaps  64(%rsp), %xmm7
        movaps  80(%rsp), %xmm8
        movaps  96(%rsp), %xmm9
        movaps  112(%rsp), %xmm10
        movaps  128(%rsp), %xmm11
        movaps  144(%rsp), %xmm12
        movaps  160(%rsp), %xmm13
        movaps  176(%rsp), %xmm14
        movaps  192(%rsp), %xmm15
        addq    $216, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rsi
        popq    %rdi
        popq    %rbx
        popq    %rbp
        ret

/*
 * void t_hal_entry_probe(void *arg);   (a context's entry)
 * Records rsp at the entry's first instruction and the argument as it
 * arrived in rcx, homes rcx into the first slot of the shadow space above
 * the return address (as a Win64 callee may), then goes on to
 * t_hal_entry_c(arg).
 */
        .globl  t_hal_entry_probe
        .def    t_hal_entry_probe; .scl 2; .type 32; .endef
        .p2align 4
t_hal_entry_probe:
        movq    %rsp, t_hal_entry_sp(%rip)
        movq    %rcx, t_hal_entry_rcx(%rip)
        movq    %rcx, 8(%rsp)
        jmp     t_hal_entry_c

/*
 * int t_seh_call(void (*fn)(void *), void *arg);
 * Calls fn(arg) under a frame-based exception handler (the function's
 * unwind data names t_seh_filter, the way a compiler's __try/__except
 * would): returns 0 when fn returns, or what t_seh_filter passed to
 * RtlUnwindEx when it caught an exception raised below this frame.
 * t_seh_filter unwinds to t_seh_join with that value in rax.
 */
        .globl  t_seh_call
        .globl  t_seh_join
        .def    t_seh_call; .scl 2; .type 32; .endef
        .p2align 4
        .seh_proc t_seh_call
t_seh_call:
        subq    $40, %rsp
        .seh_stackalloc 40
        .seh_endprologue
        .seh_handler t_seh_filter, @except
        movq    %rcx, %rax
        movq    %rdx, %rcx
        callq   *%rax
        xorl    %eax, %eax
t_seh_join:
        addq    $40, %rsp
        ret
        .seh_endproc
#else
        .section .note.GNU-stack, "", @progbits /* ELF: no executable stack */
#endif
