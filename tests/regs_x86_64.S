/* SPDX-License-Identifier: MIT */
/*
 * regs_x86_64.S — the register-integrity probe of tests/regs.h for x86_64
 * (SysV). See regs.h for the layout:
 * gpr[16] by register number at 0, flags 256, mxcsr 264, red-zone
 * canaries 272, vectors 400 (32 bytes each).
 */
#ifndef _WIN32 /* SysV only; Win64: regs_win64_x86_64.S */
        .text

/* void regs_run(const struct regs *in, struct regs *out, uint64_t spins); */
        .globl  regs_run
        .type   regs_run, @function
        .p2align 4
regs_run:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $16, %rsp
        movq    %rsi, 0(%rsp)
        movq    %rdx, 8(%rsp)
        pushq   256(%rdi)
        popfq
        movq    272(%rdi), %rax
        movq    %rax, -128(%rsp)
        movq    280(%rdi), %rax
        movq    %rax, -120(%rsp)
        movq    288(%rdi), %rax
        movq    %rax, -112(%rsp)
        movq    296(%rdi), %rax
        movq    %rax, -104(%rsp)
        movq    304(%rdi), %rax
        movq    %rax, -96(%rsp)
        movq    312(%rdi), %rax
        movq    %rax, -88(%rsp)
        movq    320(%rdi), %rax
        movq    %rax, -80(%rsp)
        movq    328(%rdi), %rax
        movq    %rax, -72(%rsp)
        movq    336(%rdi), %rax
        movq    %rax, -64(%rsp)
        movq    344(%rdi), %rax
        movq    %rax, -56(%rsp)
        movq    352(%rdi), %rax
        movq    %rax, -48(%rsp)
        movq    360(%rdi), %rax
        movq    %rax, -40(%rsp)
        movq    368(%rdi), %rax
        movq    %rax, -32(%rsp)
        movq    376(%rdi), %rax
        movq    %rax, -24(%rsp)
        movq    384(%rdi), %rax
        movq    %rax, -16(%rsp)
        movq    392(%rdi), %rax
        movq    %rax, -8(%rsp)
        ldmxcsr 264(%rdi)
        movdqu  400(%rdi), %xmm0
        movdqu  432(%rdi), %xmm1
        movdqu  464(%rdi), %xmm2
        movdqu  496(%rdi), %xmm3
        movdqu  528(%rdi), %xmm4
        movdqu  560(%rdi), %xmm5
        movdqu  592(%rdi), %xmm6
        movdqu  624(%rdi), %xmm7
        movdqu  656(%rdi), %xmm8
        movdqu  688(%rdi), %xmm9
        movdqu  720(%rdi), %xmm10
        movdqu  752(%rdi), %xmm11
        movdqu  784(%rdi), %xmm12
        movdqu  816(%rdi), %xmm13
        movdqu  848(%rdi), %xmm14
        movdqu  880(%rdi), %xmm15
        movq    8(%rsp), %rcx
        movq    0(%rdi), %rax
        movq    16(%rdi), %rdx
        movq    24(%rdi), %rbx
        movq    40(%rdi), %rbp
        movq    48(%rdi), %rsi
        movq    64(%rdi), %r8
        movq    72(%rdi), %r9
        movq    80(%rdi), %r10
        movq    88(%rdi), %r11
        movq    96(%rdi), %r12
        movq    104(%rdi), %r13
        movq    112(%rdi), %r14
        movq    120(%rdi), %r15
        movq    56(%rdi), %rdi
1:      loop    1b
        movq    %rdi, 8(%rsp)
        movq    0(%rsp), %rdi
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
        movq    8(%rsp), %rax
        movq    %rax, 56(%rdi)
        stmxcsr 264(%rdi)
        movdqu  %xmm0, 400(%rdi)
        movdqu  %xmm1, 432(%rdi)
        movdqu  %xmm2, 464(%rdi)
        movdqu  %xmm3, 496(%rdi)
        movdqu  %xmm4, 528(%rdi)
        movdqu  %xmm5, 560(%rdi)
        movdqu  %xmm6, 592(%rdi)
        movdqu  %xmm7, 624(%rdi)
        movdqu  %xmm8, 656(%rdi)
        movdqu  %xmm9, 688(%rdi)
        movdqu  %xmm10, 720(%rdi)
        movdqu  %xmm11, 752(%rdi)
        movdqu  %xmm12, 784(%rdi)
        movdqu  %xmm13, 816(%rdi)
        movdqu  %xmm14, 848(%rdi)
        movdqu  %xmm15, 880(%rdi)
        movq    -128(%rsp), %rax
        movq    %rax, 272(%rdi)
        movq    -120(%rsp), %rax
        movq    %rax, 280(%rdi)
        movq    -112(%rsp), %rax
        movq    %rax, 288(%rdi)
        movq    -104(%rsp), %rax
        movq    %rax, 296(%rdi)
        movq    -96(%rsp), %rax
        movq    %rax, 304(%rdi)
        movq    -88(%rsp), %rax
        movq    %rax, 312(%rdi)
        movq    -80(%rsp), %rax
        movq    %rax, 320(%rdi)
        movq    -72(%rsp), %rax
        movq    %rax, 328(%rdi)
        movq    -64(%rsp), %rax
        movq    %rax, 336(%rdi)
        movq    -56(%rsp), %rax
        movq    %rax, 344(%rdi)
        movq    -48(%rsp), %rax
        movq    %rax, 352(%rdi)
        movq    -40(%rsp), %rax
        movq    %rax, 360(%rdi)
        movq    -32(%rsp), %rax
        movq    %rax, 368(%rdi)
        movq    -24(%rsp), %rax
        movq    %rax, 376(%rdi)
        movq    -16(%rsp), %rax
        movq    %rax, 384(%rdi)
        movq    -8(%rsp), %rax
        movq    %rax, 392(%rdi)
        pushfq
        popq    %rax
        movq    %rax, 256(%rdi)
        movl    $0x1f80, 8(%rsp)
        ldmxcsr 8(%rsp)
        cld
        addq    $16, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   regs_run, .-regs_run

/* void regs_run_avx(const struct regs *in, struct regs *out, uint64_t spins); */
        .globl  regs_run_avx
        .type   regs_run_avx, @function
        .p2align 4
regs_run_avx:
        pushq   %rbp
        pushq   %rbx
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        subq    $16, %rsp
        movq    %rsi, 0(%rsp)
        movq    %rdx, 8(%rsp)
        pushq   256(%rdi)
        popfq
        movq    272(%rdi), %rax
        movq    %rax, -128(%rsp)
        movq    280(%rdi), %rax
        movq    %rax, -120(%rsp)
        movq    288(%rdi), %rax
        movq    %rax, -112(%rsp)
        movq    296(%rdi), %rax
        movq    %rax, -104(%rsp)
        movq    304(%rdi), %rax
        movq    %rax, -96(%rsp)
        movq    312(%rdi), %rax
        movq    %rax, -88(%rsp)
        movq    320(%rdi), %rax
        movq    %rax, -80(%rsp)
        movq    328(%rdi), %rax
        movq    %rax, -72(%rsp)
        movq    336(%rdi), %rax
        movq    %rax, -64(%rsp)
        movq    344(%rdi), %rax
        movq    %rax, -56(%rsp)
        movq    352(%rdi), %rax
        movq    %rax, -48(%rsp)
        movq    360(%rdi), %rax
        movq    %rax, -40(%rsp)
        movq    368(%rdi), %rax
        movq    %rax, -32(%rsp)
        movq    376(%rdi), %rax
        movq    %rax, -24(%rsp)
        movq    384(%rdi), %rax
        movq    %rax, -16(%rsp)
        movq    392(%rdi), %rax
        movq    %rax, -8(%rsp)
        ldmxcsr 264(%rdi)
        vmovdqu 400(%rdi), %ymm0
        vmovdqu 432(%rdi), %ymm1
        vmovdqu 464(%rdi), %ymm2
        vmovdqu 496(%rdi), %ymm3
        vmovdqu 528(%rdi), %ymm4
        vmovdqu 560(%rdi), %ymm5
        vmovdqu 592(%rdi), %ymm6
        vmovdqu 624(%rdi), %ymm7
        vmovdqu 656(%rdi), %ymm8
        vmovdqu 688(%rdi), %ymm9
        vmovdqu 720(%rdi), %ymm10
        vmovdqu 752(%rdi), %ymm11
        vmovdqu 784(%rdi), %ymm12
        vmovdqu 816(%rdi), %ymm13
        vmovdqu 848(%rdi), %ymm14
        vmovdqu 880(%rdi), %ymm15
        movq    8(%rsp), %rcx
        movq    0(%rdi), %rax
        movq    16(%rdi), %rdx
        movq    24(%rdi), %rbx
        movq    40(%rdi), %rbp
        movq    48(%rdi), %rsi
        movq    64(%rdi), %r8
        movq    72(%rdi), %r9
        movq    80(%rdi), %r10
        movq    88(%rdi), %r11
        movq    96(%rdi), %r12
        movq    104(%rdi), %r13
        movq    112(%rdi), %r14
        movq    120(%rdi), %r15
        movq    56(%rdi), %rdi
1:      loop    1b
        movq    %rdi, 8(%rsp)
        movq    0(%rsp), %rdi
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
        movq    8(%rsp), %rax
        movq    %rax, 56(%rdi)
        stmxcsr 264(%rdi)
        vmovdqu %ymm0, 400(%rdi)
        vmovdqu %ymm1, 432(%rdi)
        vmovdqu %ymm2, 464(%rdi)
        vmovdqu %ymm3, 496(%rdi)
        vmovdqu %ymm4, 528(%rdi)
        vmovdqu %ymm5, 560(%rdi)
        vmovdqu %ymm6, 592(%rdi)
        vmovdqu %ymm7, 624(%rdi)
        vmovdqu %ymm8, 656(%rdi)
        vmovdqu %ymm9, 688(%rdi)
        vmovdqu %ymm10, 720(%rdi)
        vmovdqu %ymm11, 752(%rdi)
        vmovdqu %ymm12, 784(%rdi)
        vmovdqu %ymm13, 816(%rdi)
        vmovdqu %ymm14, 848(%rdi)
        vmovdqu %ymm15, 880(%rdi)
        movq    -128(%rsp), %rax
        movq    %rax, 272(%rdi)
        movq    -120(%rsp), %rax
        movq    %rax, 280(%rdi)
        movq    -112(%rsp), %rax
        movq    %rax, 288(%rdi)
        movq    -104(%rsp), %rax
        movq    %rax, 296(%rdi)
        movq    -96(%rsp), %rax
        movq    %rax, 304(%rdi)
        movq    -88(%rsp), %rax
        movq    %rax, 312(%rdi)
        movq    -80(%rsp), %rax
        movq    %rax, 320(%rdi)
        movq    -72(%rsp), %rax
        movq    %rax, 328(%rdi)
        movq    -64(%rsp), %rax
        movq    %rax, 336(%rdi)
        movq    -56(%rsp), %rax
        movq    %rax, 344(%rdi)
        movq    -48(%rsp), %rax
        movq    %rax, 352(%rdi)
        movq    -40(%rsp), %rax
        movq    %rax, 360(%rdi)
        movq    -32(%rsp), %rax
        movq    %rax, 368(%rdi)
        movq    -24(%rsp), %rax
        movq    %rax, 376(%rdi)
        movq    -16(%rsp), %rax
        movq    %rax, 384(%rdi)
        movq    -8(%rsp), %rax
        movq    %rax, 392(%rdi)
        pushfq
        popq    %rax
        movq    %rax, 256(%rdi)
        movl    $0x1f80, 8(%rsp)
        ldmxcsr 8(%rsp)
        cld
        vzeroupper
        addq    $16, %rsp
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        ret
        .size   regs_run_avx, .-regs_run_avx

        .section .note.GNU-stack, "", %progbits
#endif
