/* SPDX-License-Identifier: MIT */
/*
 * regs.h — the register-integrity probe used by the preemption tests
 * (t_preempt.c): an assembly routine that loads a known value into every
 * register it can, spins with no call and no flag change, and stores every
 * register back. A preemption in the spin (or any other signal) that lost
 * or mixed up any register shows up as a difference between in and out.
 *
 * x86_64: rax rbx rcx rdx rsi rdi rbp r8-r15 (rcx is the spin counter: it
 * must come back 0), rflags (CF PF AF ZF SF OF), MXCSR, xmm0-15, and 16
 * canaries in the red zone below rsp. With AVX the upper halves of ymm0-15
 * too (regs_run_avx). Win64 (regs_win64_x86_64.S): the same registers,
 * checked on every spin, plus the x87 control word; the canaries sit in
 * the probe's frame (no red zone).
 * aarch64: x0-x30 except x18 (the platform register) and x17 (the spin
 * counter, back as 0), v0-v31 (all 128 bits), NZCV and FPCR; with SVE,
 * a second probe (regs_run_sve) does z0-z31 at full length, p0-p15, FFR.
 */
#ifndef WEFT_TEST_REGS_H
#define WEFT_TEST_REGS_H

#include <stdint.h>

#define REGS_GPR 32 /* slots, indexed by register number (see the .c) */
#define REGS_VEC 32 /* vector registers, 32 bytes each (ymm / q) */
#define REGS_RZ 16  /* red-zone canaries (x86_64) */

struct regs {
    uint64_t gpr[REGS_GPR];
    uint64_t flags; /* rflags / nzcv */
    uint64_t ctrl;  /* mxcsr / fpcr */
    uint64_t rz[REGS_RZ];
    uint8_t vec[REGS_VEC][32];
    uint64_t fpucw; /* x87 control word (Win64 probe only) */
};

/* Loads *in, spins `spins` times, stores everything into *out. */
void regs_run(const struct regs *in, struct regs *out, uint64_t spins);
/* x86_64 with AVX: the same with ymm upper halves. */
void regs_run_avx(const struct regs *in, struct regs *out, uint64_t spins);

#if defined(_WIN32)
/* The bounds of the checking spin of regs_run (0) and regs_run_avx (1). */
extern char regs_win64_spin_lo0[], regs_win64_spin_hi0[];
extern char regs_win64_spin_lo1[], regs_win64_spin_hi1[];
#endif

#if defined(__aarch64__)
/* SVE (regs_aarch64.S): the vector length in bytes, and the probe of every
 * z and p register and FFR at that length. Buffers hold z0-z31 (VL bytes
 * each), p0-p15 and FFR (VL/8 bytes each); FFR must be a run of ones from
 * bit 0. Call only where SVE is present. */
#define REGS_SVE_BYTES(vl) (32 * (vl) + 17 * ((vl) / 8))
uint64_t regs_sve_vl(void);
void regs_run_sve(const uint8_t *in, uint8_t *out, uint64_t spins);
#endif

#endif
