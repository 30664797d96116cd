/* SPDX-License-Identifier: MIT */
/*
 * regs_aarch64.S — the register-integrity probe of tests/regs.h for
 * AAPCS64. Layout (regs.h): gpr[32] by register number at 0, nzcv 256,
 * fpcr 264, vectors 400 (q registers, 32-byte slots). x18 is not touched
 * (platform register); x17 counts the spin down to 0.
 */
        .text

/* void regs_run(const struct regs *in, struct regs *out, uint64_t spins); */
        .globl  regs_run
        .type   regs_run, %function
        .p2align 4
regs_run:
        sub     sp, sp, #192
        stp     x19, x20, [sp, #0]
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]
        stp     d8, d9, [sp, #96]
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        str     x1, [sp, #160]
        ldr     x3, [x0, #264]
        msr     fpcr, x3
        ldr     x3, [x0, #256]
        msr     nzcv, x3
        ldr     q0, [x0, #400]
        ldr     q1, [x0, #432]
        ldr     q2, [x0, #464]
        ldr     q3, [x0, #496]
        ldr     q4, [x0, #528]
        ldr     q5, [x0, #560]
        ldr     q6, [x0, #592]
        ldr     q7, [x0, #624]
        ldr     q8, [x0, #656]
        ldr     q9, [x0, #688]
        ldr     q10, [x0, #720]
        ldr     q11, [x0, #752]
        ldr     q12, [x0, #784]
        ldr     q13, [x0, #816]
        ldr     q14, [x0, #848]
        ldr     q15, [x0, #880]
        ldr     q16, [x0, #912]
        ldr     q17, [x0, #944]
        ldr     q18, [x0, #976]
        ldr     q19, [x0, #1008]
        ldr     q20, [x0, #1040]
        ldr     q21, [x0, #1072]
        ldr     q22, [x0, #1104]
        ldr     q23, [x0, #1136]
        ldr     q24, [x0, #1168]
        ldr     q25, [x0, #1200]
        ldr     q26, [x0, #1232]
        ldr     q27, [x0, #1264]
        ldr     q28, [x0, #1296]
        ldr     q29, [x0, #1328]
        ldr     q30, [x0, #1360]
        ldr     q31, [x0, #1392]
        mov     x17, x2
        ldr     x1, [x0, #8]
        ldr     x2, [x0, #16]
        ldr     x3, [x0, #24]
        ldr     x4, [x0, #32]
        ldr     x5, [x0, #40]
        ldr     x6, [x0, #48]
        ldr     x7, [x0, #56]
        ldr     x8, [x0, #64]
        ldr     x9, [x0, #72]
        ldr     x10, [x0, #80]
        ldr     x11, [x0, #88]
        ldr     x12, [x0, #96]
        ldr     x13, [x0, #104]
        ldr     x14, [x0, #112]
        ldr     x15, [x0, #120]
        ldr     x16, [x0, #128]
        ldr     x19, [x0, #152]
        ldr     x20, [x0, #160]
        ldr     x21, [x0, #168]
        ldr     x22, [x0, #176]
        ldr     x23, [x0, #184]
        ldr     x24, [x0, #192]
        ldr     x25, [x0, #200]
        ldr     x26, [x0, #208]
        ldr     x27, [x0, #216]
        ldr     x28, [x0, #224]
        ldr     x29, [x0, #232]
        ldr     x30, [x0, #240]
        ldr     x0, [x0, #0]
1:      sub     x17, x17, #1
        cbnz    x17, 1b
        stp     x0, x1, [sp, #176]
        ldr     x0, [sp, #160]
        ldr     x1, [sp, #176]
        str     x1, [x0, #0]
        ldr     x1, [sp, #184]
        str     x1, [x0, #8]
        str     x2, [x0, #16]
        str     x3, [x0, #24]
        str     x4, [x0, #32]
        str     x5, [x0, #40]
        str     x6, [x0, #48]
        str     x7, [x0, #56]
        str     x8, [x0, #64]
        str     x9, [x0, #72]
        str     x10, [x0, #80]
        str     x11, [x0, #88]
        str     x12, [x0, #96]
        str     x13, [x0, #104]
        str     x14, [x0, #112]
        str     x15, [x0, #120]
        str     x16, [x0, #128]
        str     x17, [x0, #136]
        str     x19, [x0, #152]
        str     x20, [x0, #160]
        str     x21, [x0, #168]
        str     x22, [x0, #176]
        str     x23, [x0, #184]
        str     x24, [x0, #192]
        str     x25, [x0, #200]
        str     x26, [x0, #208]
        str     x27, [x0, #216]
        str     x28, [x0, #224]
        str     x29, [x0, #232]
        str     x30, [x0, #240]
        str     q0, [x0, #400]
        str     q1, [x0, #432]
        str     q2, [x0, #464]
        str     q3, [x0, #496]
        str     q4, [x0, #528]
        str     q5, [x0, #560]
        str     q6, [x0, #592]
        str     q7, [x0, #624]
        str     q8, [x0, #656]
        str     q9, [x0, #688]
        str     q10, [x0, #720]
        str     q11, [x0, #752]
        str     q12, [x0, #784]
        str     q13, [x0, #816]
        str     q14, [x0, #848]
        str     q15, [x0, #880]
        str     q16, [x0, #912]
        str     q17, [x0, #944]
        str     q18, [x0, #976]
        str     q19, [x0, #1008]
        str     q20, [x0, #1040]
        str     q21, [x0, #1072]
        str     q22, [x0, #1104]
        str     q23, [x0, #1136]
        str     q24, [x0, #1168]
        str     q25, [x0, #1200]
        str     q26, [x0, #1232]
        str     q27, [x0, #1264]
        str     q28, [x0, #1296]
        str     q29, [x0, #1328]
        str     q30, [x0, #1360]
        str     q31, [x0, #1392]
        mrs     x1, nzcv
        str     x1, [x0, #256]
        mrs     x1, fpcr
        str     x1, [x0, #264]
        msr     fpcr, xzr
        ldp     x19, x20, [sp, #0]
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]
        ldp     d8, d9, [sp, #96]
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #192
        ret
        .size   regs_run, .-regs_run

/*
 * SVE: the whole scalable state, at the machine's vector length VL bytes.
 * Buffer layout (in and out): z0-z31 (VL bytes each), p0-p15 (VL/8 bytes
 * each), then FFR (VL/8 bytes; it must hold a run of ones from bit 0, the
 * only values WRFFR is defined for). Only d8-d15 survive a call in the
 * base AAPCS64, so they are saved and restored around the probe.
 */
        .arch_extension sve

/* uint64_t regs_sve_vl(void); the SVE vector length in bytes (SVE only). */
        .globl  regs_sve_vl
        .type   regs_sve_vl, %function
        .p2align 4
regs_sve_vl:
        rdvl    x0, #1
        ret
        .size   regs_sve_vl, .-regs_sve_vl

/* void regs_run_sve(const uint8_t *in, uint8_t *out, uint64_t spins);
 * Loads every z and p register and FFR from in, spins `spins` times with
 * no call, stores them all into out. */
        .globl  regs_run_sve
        .type   regs_run_sve, %function
        .p2align 4
regs_run_sve:
        stp     d8, d9, [sp, #-64]!
        stp     d10, d11, [sp, #16]
        stp     d12, d13, [sp, #32]
        stp     d14, d15, [sp, #48]
        addvl   x9, x0, #16
        addvl   x9, x9, #16
        ldr     p0, [x9, #16, mul vl]
        wrffr   p0.b
        ldr     p0, [x9, #0, mul vl]
        ldr     p1, [x9, #1, mul vl]
        ldr     p2, [x9, #2, mul vl]
        ldr     p3, [x9, #3, mul vl]
        ldr     p4, [x9, #4, mul vl]
        ldr     p5, [x9, #5, mul vl]
        ldr     p6, [x9, #6, mul vl]
        ldr     p7, [x9, #7, mul vl]
        ldr     p8, [x9, #8, mul vl]
        ldr     p9, [x9, #9, mul vl]
        ldr     p10, [x9, #10, mul vl]
        ldr     p11, [x9, #11, mul vl]
        ldr     p12, [x9, #12, mul vl]
        ldr     p13, [x9, #13, mul vl]
        ldr     p14, [x9, #14, mul vl]
        ldr     p15, [x9, #15, mul vl]
        ldr     z0, [x0, #0, mul vl]
        ldr     z1, [x0, #1, mul vl]
        ldr     z2, [x0, #2, mul vl]
        ldr     z3, [x0, #3, mul vl]
        ldr     z4, [x0, #4, mul vl]
        ldr     z5, [x0, #5, mul vl]
        ldr     z6, [x0, #6, mul vl]
        ldr     z7, [x0, #7, mul vl]
        ldr     z8, [x0, #8, mul vl]
        ldr     z9, [x0, #9, mul vl]
        ldr     z10, [x0, #10, mul vl]
        ldr     z11, [x0, #11, mul vl]
        ldr     z12, [x0, #12, mul vl]
        ldr     z13, [x0, #13, mul vl]
        ldr     z14, [x0, #14, mul vl]
        ldr     z15, [x0, #15, mul vl]
        ldr     z16, [x0, #16, mul vl]
        ldr     z17, [x0, #17, mul vl]
        ldr     z18, [x0, #18, mul vl]
        ldr     z19, [x0, #19, mul vl]
        ldr     z20, [x0, #20, mul vl]
        ldr     z21, [x0, #21, mul vl]
        ldr     z22, [x0, #22, mul vl]
        ldr     z23, [x0, #23, mul vl]
        ldr     z24, [x0, #24, mul vl]
        ldr     z25, [x0, #25, mul vl]
        ldr     z26, [x0, #26, mul vl]
        ldr     z27, [x0, #27, mul vl]
        ldr     z28, [x0, #28, mul vl]
        ldr     z29, [x0, #29, mul vl]
        ldr     z30, [x0, #30, mul vl]
        ldr     z31, [x0, #31, mul vl]
        mov     x17, x2
1:      sub     x17, x17, #1
        cbnz    x17, 1b
        str     z0, [x1, #0, mul vl]
        str     z1, [x1, #1, mul vl]
        str     z2, [x1, #2, mul vl]
        str     z3, [x1, #3, mul vl]
        str     z4, [x1, #4, mul vl]
        str     z5, [x1, #5, mul vl]
        str     z6, [x1, #6, mul vl]
        str     z7, [x1, #7, mul vl]
        str     z8, [x1, #8, mul vl]
        str     z9, [x1, #9, mul vl]
        str     z10, [x1, #10, mul vl]
        str     z11, [x1, #11, mul vl]
        str     z12, [x1, #12, mul vl]
        str     z13, [x1, #13, mul vl]
        str     z14, [x1, #14, mul vl]
        str     z15, [x1, #15, mul vl]
        str     z16, [x1, #16, mul vl]
        str     z17, [x1, #17, mul vl]
        str     z18, [x1, #18, mul vl]
        str     z19, [x1, #19, mul vl]
        str     z20, [x1, #20, mul vl]
        str     z21, [x1, #21, mul vl]
        str     z22, [x1, #22, mul vl]
        str     z23, [x1, #23, mul vl]
        str     z24, [x1, #24, mul vl]
        str     z25, [x1, #25, mul vl]
        str     z26, [x1, #26, mul vl]
        str     z27, [x1, #27, mul vl]
        str     z28, [x1, #28, mul vl]
        str     z29, [x1, #29, mul vl]
        str     z30, [x1, #30, mul vl]
        str     z31, [x1, #31, mul vl]
        addvl   x9, x1, #16
        addvl   x9, x9, #16
        str     p0, [x9, #0, mul vl]
        str     p1, [x9, #1, mul vl]
        str     p2, [x9, #2, mul vl]
        str     p3, [x9, #3, mul vl]
        str     p4, [x9, #4, mul vl]
        str     p5, [x9, #5, mul vl]
        str     p6, [x9, #6, mul vl]
        str     p7, [x9, #7, mul vl]
        str     p8, [x9, #8, mul vl]
        str     p9, [x9, #9, mul vl]
        str     p10, [x9, #10, mul vl]
        str     p11, [x9, #11, mul vl]
        str     p12, [x9, #12, mul vl]
        str     p13, [x9, #13, mul vl]
        str     p14, [x9, #14, mul vl]
        str     p15, [x9, #15, mul vl]
        rdffr   p0.b
        str     p0, [x9, #16, mul vl]
        ldp     d10, d11, [sp, #16]
        ldp     d12, d13, [sp, #32]
        ldp     d14, d15, [sp, #48]
        ldp     d8, d9, [sp], #64
        ret
        .size   regs_run_sve, .-regs_run_sve

/* No AVX on aarch64: the same probe. */
        .globl  regs_run_avx
        .type   regs_run_avx, %function
regs_run_avx:
        b       regs_run
        .size   regs_run_avx, .-regs_run_avx

        .section .note.GNU-stack, "", %progbits
