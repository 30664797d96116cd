/* SPDX-License-Identifier: MIT */
/*
 * regs_win64_x86_64.S — the register-integrity probe of tests/regs.h for
 * Win64, where preemption suspends the thread and redirects it
 * (hal/win32/preempt.c, hal/x86_64/preempt_win64.S).
 *
 * The same struct regs as the SysV probe (gpr by register number at 0,
 * flags 256, mxcsr 264, canaries 272, vectors 400, x87 control word 1424),
 * with three differences:
 *  - the spin checks every register on every iteration against copies in
 *    its frame: the general registers (rcx, the counter, aside), the
 *    flags, xmm0-15 (ymm0-15 in regs_run_avx), mxcsr and the x87 control
 *    word; it leaves at the first difference with rcx not 0, so a register
 *    that is wrong only for a while is caught too;
 *  - Win64 has no red zone: the canaries sit in the probe's frame, above
 *    rsp, where a preempted thread's stack must stay untouched;
 *  - the x87 control word is loaded and stored back too; mxcsr's control
 *    bits, the x87 control word, xmm6-15, rbx, rbp, rdi, rsi and r12-r15
 *    are callee-saved on Win64 and are put back before returning.
 * The flags must be in->flags = 0x8D5 | 2 (CF PF AF ZF SF OF, as
 * t_preempt.c's regs_fill sets them): the check in the loop compares with
 * that constant, having no free register to hold it.
 *
 * regs_win64_spin_lo/hi bound the spin, for the negative control's hook
 * (hal_win32_preempt_test_flip).
 */
#ifdef _WIN32
#define IN_FPUCW 1424
#define FLAGS_MASK 0x8D5

/* The frame, from rsp after the prologue. */
#define F_OUT 0      /* out */
#define F_SPINS 8    /* spins; then the final rdi */
#define F_MXCSR 16   /* the caller's mxcsr */
#define F_FPUCW 20   /* the caller's x87 control word */
#define F_FLAGS 24   /* the final flags */
#define F_XMM 32     /* the caller's xmm6-15: 160 bytes */
#define F_GPR 192    /* the expected gprs, by register number: 128 bytes */
#define F_WANTF 320  /* in->flags, for popfq */
#define F_RZ 336     /* the canaries: 128 bytes */
#define F_VEC 464    /* the expected vectors: 16 x 32 bytes */
#define F_VSCR 976   /* one vector register stored, to compare: 32 bytes */
#define F_WANTMX 1008 /* in's mxcsr */
#define F_WANTCW 1012 /* in's x87 control word, masked with FPUCW_MASK */
#define FRAME 1016   /* 8 pushes + FRAME + the return address: 16-aligned */
#define FPUCW_MASK 0x1F3F

        .text

/* The body of regs_run (avx 0) and regs_run_avx (avx 1). */
.macro PROBE name, avx
        .globl  \name
        .def    \name; .scl 2; .type 32; .endef
        .p2align 4
        .seh_proc \name
\name:
        pushq   %rbp
        .seh_pushreg %rbp
        pushq   %rbx
        .seh_pushreg %rbx
        pushq   %rdi
        .seh_pushreg %rdi
        pushq   %rsi
        .seh_pushreg %rsi
        pushq   %r12
        .seh_pushreg %r12
        pushq   %r13
        .seh_pushreg %r13
        pushq   %r14
        .seh_pushreg %r14
        pushq   %r15
        .seh_pushreg %r15
        subq    $FRAME, %rsp
        .seh_stackalloc FRAME
        .seh_endprologue
        movq    %rcx, %rax              /* in */
        movq    %rdx, F_OUT(%rsp)
        movq    %r8, F_SPINS(%rsp)
        stmxcsr F_MXCSR(%rsp)
        fnstcw  F_FPUCW(%rsp)
        movdqu  %xmm6, F_XMM+0(%rsp)
        movdqu  %xmm7, F_XMM+16(%rsp)
        movdqu  %xmm8, F_XMM+32(%rsp)
        movdqu  %xmm9, F_XMM+48(%rsp)
        movdqu  %xmm10, F_XMM+64(%rsp)
        movdqu  %xmm11, F_XMM+80(%rsp)
        movdqu  %xmm12, F_XMM+96(%rsp)
        movdqu  %xmm13, F_XMM+112(%rsp)
        movdqu  %xmm14, F_XMM+128(%rsp)
        movdqu  %xmm15, F_XMM+144(%rsp)
        /* Copy the gprs, the flags and the canaries into the frame. */
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        movq    8*\i(%rax), %r10
        movq    %r10, F_GPR+8*\i(%rsp)
        .endr
        movq    256(%rax), %r10
        movq    %r10, F_WANTF(%rsp)
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        movq    272+8*\i(%rax), %r10
        movq    %r10, F_RZ+8*\i(%rsp)
        .endr
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .irp q, 0,1,2,3
        movq    400+32*\i+8*\q(%rax), %r10
        movq    %r10, F_VEC+32*\i+8*\q(%rsp)
        .endr
        .endr
        movl    264(%rax), %r10d
        movl    %r10d, F_WANTMX(%rsp)
        movzwl  IN_FPUCW(%rax), %r10d
        andl    $FPUCW_MASK, %r10d
        movl    %r10d, F_WANTCW(%rsp)
        ldmxcsr 264(%rax)
        fldcw   IN_FPUCW(%rax)
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .if \avx
        vmovdqu 400+32*\i(%rax), %ymm\i
        .else
        movdqu  400+32*\i(%rax), %xmm\i
        .endif
        .endr
        pushq   F_WANTF(%rsp)
        popfq
        movq    F_SPINS(%rsp), %rcx
        movq    F_GPR+0(%rsp), %rax
        movq    F_GPR+16(%rsp), %rdx
        movq    F_GPR+24(%rsp), %rbx
        movq    F_GPR+40(%rsp), %rbp
        movq    F_GPR+48(%rsp), %rsi
        movq    F_GPR+56(%rsp), %rdi
        movq    F_GPR+64(%rsp), %r8
        movq    F_GPR+72(%rsp), %r9
        movq    F_GPR+80(%rsp), %r10
        movq    F_GPR+88(%rsp), %r11
        movq    F_GPR+96(%rsp), %r12
        movq    F_GPR+104(%rsp), %r13
        movq    F_GPR+112(%rsp), %r14
        movq    F_GPR+120(%rsp), %r15
        .globl  regs_win64_spin_lo\avx
regs_win64_spin_lo\avx:
        /* Every iteration: the flags (the pushed copy, masked), then each
         * gpr against its copy, then with rax pushed (so the offsets are 8
         * more) each vector register stored and compared 8 bytes at a time
         * through rax, mxcsr and the x87 control word; then the flags again
         * from the copy, since the compares changed them. mov, lea, push,
         * pop and jrcxz leave the flags alone. */
1:      pushfq
        andq    $FLAGS_MASK, (%rsp)
        cmpq    $FLAGS_MASK, (%rsp)
        leaq    8(%rsp), %rsp
        jne     2f
        cmpq    F_GPR+0(%rsp), %rax
        jne     2f
        cmpq    F_GPR+16(%rsp), %rdx
        jne     2f
        cmpq    F_GPR+24(%rsp), %rbx
        jne     2f
        cmpq    F_GPR+40(%rsp), %rbp
        jne     2f
        cmpq    F_GPR+48(%rsp), %rsi
        jne     2f
        cmpq    F_GPR+56(%rsp), %rdi
        jne     2f
        cmpq    F_GPR+64(%rsp), %r8
        jne     2f
        cmpq    F_GPR+72(%rsp), %r9
        jne     2f
        cmpq    F_GPR+80(%rsp), %r10
        jne     2f
        cmpq    F_GPR+88(%rsp), %r11
        jne     2f
        cmpq    F_GPR+96(%rsp), %r12
        jne     2f
        cmpq    F_GPR+104(%rsp), %r13
        jne     2f
        cmpq    F_GPR+112(%rsp), %r14
        jne     2f
        cmpq    F_GPR+120(%rsp), %r15
        jne     2f
        pushq   %rax
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .if \avx
        vmovdqu %ymm\i, F_VSCR+8(%rsp)
        .irp q, 0,1,2,3
        movq    F_VSCR+8+8*\q(%rsp), %rax
        cmpq    F_VEC+8+32*\i+8*\q(%rsp), %rax
        jne     5f
        .endr
        .else
        movdqu  %xmm\i, F_VSCR+8(%rsp)
        .irp q, 0,1
        movq    F_VSCR+8+8*\q(%rsp), %rax
        cmpq    F_VEC+8+32*\i+8*\q(%rsp), %rax
        jne     5f
        .endr
        .endif
        .endr
        stmxcsr F_VSCR+8(%rsp)
        movl    F_VSCR+8(%rsp), %eax
        cmpl    F_WANTMX+8(%rsp), %eax
        jne     5f
        fnstcw  F_VSCR+8(%rsp)
        movzwl  F_VSCR+8(%rsp), %eax
        andl    $FPUCW_MASK, %eax
        cmpl    F_WANTCW+8(%rsp), %eax
        jne     5f
        popq    %rax
        pushq   F_WANTF(%rsp)
        popfq
        leaq    -1(%rcx), %rcx          /* loop's work; its rel8 is too short */
        jrcxz   3f
        jmp     1b
5:      popq    %rax                    /* a vector or control register differs */
        jmp     2f
3:
        .globl  regs_win64_spin_hi\avx
regs_win64_spin_hi\avx:
2:      pushfq
        popq    F_FLAGS(%rsp)
        movq    %rdi, F_SPINS(%rsp)
        movq    F_OUT(%rsp), %rdi
        movq    %rax, 0(%rdi)
        movq    %rcx, 8(%rdi)
        movq    %rdx, 16(%rdi)
        movq    %rbx, 24(%rdi)
        movq    %rbp, 40(%rdi)
        movq    %rsi, 48(%rdi)
        movq    %r8, 64(%rdi)
        movq    %r9, 72(%rdi)
        movq    %r10, 80(%rdi)
        movq    %r11, 88(%rdi)
        movq    %r12, 96(%rdi)
        movq    %r13, 104(%rdi)
        movq    %r14, 112(%rdi)
        movq    %r15, 120(%rdi)
        movq    F_SPINS(%rsp), %rax
        movq    %rax, 56(%rdi)
        movq    F_FLAGS(%rsp), %rax
        movq    %rax, 256(%rdi)
        stmxcsr 264(%rdi)
        fnstcw  IN_FPUCW(%rdi)
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        movq    F_RZ+8*\i(%rsp), %rax
        movq    %rax, 272+8*\i(%rdi)
        .endr
        .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
        .if \avx
        vmovdqu %ymm\i, 400+32*\i(%rdi)
        .else
        movdqu  %xmm\i, 400+32*\i(%rdi)
        .endif
        .endr
        .if \avx
        vzeroupper
        .endif
        movdqu  F_XMM+0(%rsp), %xmm6
        movdqu  F_XMM+16(%rsp), %xmm7
        movdqu  F_XMM+32(%rsp), %xmm8
        movdqu  F_XMM+48(%rsp), %xmm9
        movdqu  F_XMM+64(%rsp), %xmm10
        movdqu  F_XMM+80(%rsp), %xmm11
        movdqu  F_XMM+96(%rsp), %xmm12
        movdqu  F_XMM+112(%rsp), %xmm13
        movdqu  F_XMM+128(%rsp), %xmm14
        movdqu  F_XMM+144(%rsp), %xmm15
        ldmxcsr F_MXCSR(%rsp)
        fldcw   F_FPUCW(%rsp)
        cld
        addq    $FRAME, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rsi
        popq    %rdi
        popq    %rbx
        popq    %rbp
        ret
        .seh_endproc
.endm

/* void regs_run(const struct regs *in, struct regs *out, uint64_t spins); */
        PROBE   regs_run, 0

/* void regs_run_avx(const struct regs *in, struct regs *out, uint64_t spins); */
        PROBE   regs_run_avx, 1
#else
        /* Not Windows: nothing here (regs_x86_64.S is the SysV probe). */
        .section .note.GNU-stack, "", %progbits
#endif
