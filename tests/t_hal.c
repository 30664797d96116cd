/* SPDX-License-Identifier: MIT */
/*
 * t_hal.c — cases for the HAL alone (hal/hal.h), below the scheduler:
 * contexts, memory and guards, threads, futexes, clocks, the error stream
 * and the fault handler's chaining. They call hal_* directly and never
 * weft_run, so a new port can be brought up case by case before kern runs
 * on it (docs/PORTING.md).
 *
 * hal_ctx_regs loads known values into every callee-saved register from
 * assembly written per ABI (below) around hal_ctx_switch. Crash cases run
 * in a fork()ed child and look at how it died. The cases written for
 * POSIX are not built on win32: tests/t_hal_win32.c has their Windows
 * variants.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef _WIN32
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "check.h"
#include "hal/hal.h"

#define MS 1000000LL

/* A committed test stack with an unguarded page below: returns its low end. */
static char *stack_new(size_t size)
{
    size_t ps = hal_page_size();
    char *base = hal_mem_reserve(size + ps, ps);
    CHECK(base != NULL);
    CHECK_OK(hal_mem_commit(base, size + ps));
    return base + ps;
}

/* ---- A context resumed on another thread ---- */

static struct {
    struct hal_context ctx, *home;
    void *seen[2];
} mg;
static int tag_a, tag_b;

static void mig_entry(void *arg)
{
    (void)arg;
    for (int k = 0;; k = 1) {
        mg.seen[k] = hal_thread_get(); /* never cached across the switch */
        hal_ctx_switch(&mg.ctx, mg.home);
    }
}

static void mig_thread(void *arg)
{
    (void)arg;
    struct hal_context home;
    hal_thread_set(&tag_b);
    mg.home = &home;
    hal_ctx_switch(&home, &mg.ctx);
}

/* Suspended on one thread, a context resumes on another and sees that
 * thread's kern pointer. */
void t_hal_ctx_migrate(void)
{
    struct hal_context home;
    hal_thread_set(&tag_a);
    hal_ctx_init(&mg.ctx, stack_new(32 << 10), 32 << 10, mig_entry, NULL);
    mg.home = &home;
    hal_ctx_switch(&home, &mg.ctx);
    CHECK(mg.seen[0] == &tag_a);
    hal_thread_t t;
    CHECK_OK(hal_thread_start(mig_thread, NULL, &t));
    hal_thread_join(t);
    CHECK(mg.seen[1] == &tag_b);
    CHECK(hal_thread_get() == &tag_a);
}

/* ---- Threads, futexes, clocks ---- */

static _Atomic uint32_t fw_word;
static _Atomic int fw_woken;

static void fw_waiter(void *arg)
{
    void **slot = arg;
    hal_thread_set(slot);
    while (atomic_load(&fw_word) == 0)
        hal_futex_wait((uint32_t *)&fw_word, 0, -1);
    if (hal_thread_get() == slot)
        atomic_fetch_add(&fw_woken, 1);
}

/* Four threads block in hal_futex_wait with no timeout; one wake-all
 * releases them; each saw its own kern pointer. */
void t_hal_futex_wake(void)
{
    void *slots[4];
    hal_thread_t t[4];
    hal_thread_set(&slots[0]);
    for (int i = 0; i < 4; i++)
        CHECK_OK(hal_thread_start(fw_waiter, &slots[i], &t[i]));
    hal_sleep_ns(30 * MS);
    CHECK_EQ(atomic_load(&fw_woken), 0);
    atomic_store(&fw_word, 1);
    hal_futex_wake((uint32_t *)&fw_word, INT32_MAX);
    for (int i = 0; i < 4; i++)
        hal_thread_join(t[i]);
    CHECK_EQ(atomic_load(&fw_woken), 4);
    CHECK(hal_thread_get() == &slots[0]);
}

/* Timeouts last at least as long as asked and not absurdly longer; a word
 * that differs returns at once; so do zero timeouts. */
void t_hal_futex_timeout(void)
{
    uint32_t w = 7;
    static const int64_t timeouts[] = {20 * MS, 50 * MS};
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        int64_t t0 = hal_now_ns();
        CHECK_EQ(hal_futex_wait(&w, 7, timeouts[i]), HAL_ETIMEDOUT);
        int64_t el = hal_now_ns() - t0;
        CHECK_GE(el, timeouts[i]);
        CHECK_LT(el, 10 * timeouts[i]);
    }
    int64_t t0 = hal_now_ns();
    CHECK_EQ(hal_futex_wait(&w, 8, 1000 * MS), 0);
    CHECK_EQ(hal_futex_wait(&w, 7, 0), HAL_ETIMEDOUT);
    CHECK_LT(hal_now_ns() - t0, 500 * MS);
    t0 = hal_now_ns();
    hal_sleep_ns(20 * MS);
    CHECK_GE(hal_now_ns() - t0, 20 * MS);
    CHECK_LT(hal_now_ns() - t0, 200 * MS);
}

/* Clocks: monotonic never goes back; wall agrees with the C library's. */
void t_hal_time(void)
{
    int64_t prev = hal_now_ns();
    for (int i = 0; i < 100000; i++) {
        int64_t now = hal_now_ns();
        CHECK_GE(now, prev);
        prev = now;
    }
    int64_t wall_s = hal_wall_ns() / 1000000000;
    int64_t libc_s = (int64_t)time(NULL);
    CHECK_LE(wall_s - libc_s, 2);
    CHECK_LE(libc_s - wall_s, 2);
}

#ifndef _WIN32

/* ---- Callee-saved registers across hal_ctx_switch ----
 *
 * void t_hal_regs_switch(struct hal_context *from, struct hal_context *to,
 *                        const uint64_t in[NREGS], uint64_t out[NREGS]);
 * Loads in[] into the callee-saved registers and control words, calls
 * hal_ctx_switch(from, to), and when that returns stores them into out[].
 * The caller's own registers are saved and restored around all of it.
 */
#if defined(__x86_64__) && !defined(_WIN32)
#define HAVE_REGS 1
#define NREGS 8 /* rbx rbp r12 r13 r14 r15, MXCSR, x87 CW */
#define NCTL 2
#define FRAME_FIRST_REG HAL_FRAME_RBX
static const uint64_t ctl_tab[6][NCTL] = {
    {0x1F80, 0x037F}, {0x3F80, 0x027F}, {0x5F80, 0x007F},
    {0x7F80, 0x0F7F}, {0x9F80, 0x077F}, {0x1FC0, 0x0B7F},
};
__asm__(".text\n"
        ".globl t_hal_regs_switch\n .hidden t_hal_regs_switch\n"
        ".type t_hal_regs_switch, @function\n"
        "t_hal_regs_switch:\n"
        " pushq %rbp\n pushq %rbx\n pushq %r12\n pushq %r13\n pushq %r14\n pushq %r15\n"
        " subq $24, %rsp\n"
        " stmxcsr 0(%rsp)\n fnstcw 4(%rsp)\n movq %rcx, 8(%rsp)\n"
        " ldmxcsr 48(%rdx)\n fldcw 56(%rdx)\n"
        " movq 0(%rdx), %rbx\n movq 8(%rdx), %rbp\n movq 16(%rdx), %r12\n"
        " movq 24(%rdx), %r13\n movq 32(%rdx), %r14\n movq 40(%rdx), %r15\n"
        " call hal_ctx_switch@PLT\n"
        " movq 8(%rsp), %rcx\n"
        " movq %rbx, 0(%rcx)\n movq %rbp, 8(%rcx)\n movq %r12, 16(%rcx)\n"
        " movq %r13, 24(%rcx)\n movq %r14, 32(%rcx)\n movq %r15, 40(%rcx)\n"
        " stmxcsr 48(%rcx)\n fnstcw 56(%rcx)\n"
        " ldmxcsr 0(%rsp)\n fldcw 4(%rsp)\n"
        " addq $24, %rsp\n"
        " popq %r15\n popq %r14\n popq %r13\n popq %r12\n popq %rbx\n popq %rbp\n"
        " ret\n"
        ".size t_hal_regs_switch, .-t_hal_regs_switch\n");
#elif defined(__aarch64__) && !defined(_WIN32)
#define HAVE_REGS 1
#define NREGS 20 /* x19-x28, x29, d8-d15, FPCR */
#define NCTL 1
#define FRAME_FIRST_REG HAL_FRAME_X19
static const uint64_t ctl_tab[6][NCTL] = {
    {0}, {0x00400000}, {0x00800000}, {0x00C00000}, {0x01000000}, {0x02000000},
};
__asm__(".text\n"
        ".globl t_hal_regs_switch\n .hidden t_hal_regs_switch\n"
        ".type t_hal_regs_switch, %function\n"
        "t_hal_regs_switch:\n"
        " stp x29, x30, [sp, #-176]!\n mov x29, sp\n"
        " stp x19, x20, [sp, #16]\n stp x21, x22, [sp, #32]\n stp x23, x24, [sp, #48]\n"
        " stp x25, x26, [sp, #64]\n stp x27, x28, [sp, #80]\n"
        " stp d8, d9, [sp, #96]\n stp d10, d11, [sp, #112]\n"
        " stp d12, d13, [sp, #128]\n stp d14, d15, [sp, #144]\n"
        " mrs x9, fpcr\n stp x3, x9, [sp, #160]\n"
        " ldr x9, [x2, #152]\n msr fpcr, x9\n"
        " ldp x19, x20, [x2, #0]\n ldp x21, x22, [x2, #16]\n ldp x23, x24, [x2, #32]\n"
        " ldp x25, x26, [x2, #48]\n ldp x27, x28, [x2, #64]\n ldr x29, [x2, #80]\n"
        " ldp d8, d9, [x2, #88]\n ldp d10, d11, [x2, #104]\n"
        " ldp d12, d13, [x2, #120]\n ldp d14, d15, [x2, #136]\n"
        " bl hal_ctx_switch\n"
        " ldr x3, [sp, #160]\n"
        " stp x19, x20, [x3, #0]\n stp x21, x22, [x3, #16]\n stp x23, x24, [x3, #32]\n"
        " stp x25, x26, [x3, #48]\n stp x27, x28, [x3, #64]\n str x29, [x3, #80]\n"
        " stp d8, d9, [x3, #88]\n stp d10, d11, [x3, #104]\n"
        " stp d12, d13, [x3, #120]\n stp d14, d15, [x3, #136]\n"
        " mrs x9, fpcr\n str x9, [x3, #152]\n"
        " ldr x9, [sp, #168]\n msr fpcr, x9\n"
        " ldp x19, x20, [sp, #16]\n ldp x21, x22, [sp, #32]\n ldp x23, x24, [sp, #48]\n"
        " ldp x25, x26, [sp, #64]\n ldp x27, x28, [sp, #80]\n"
        " ldp d8, d9, [sp, #96]\n ldp d10, d11, [sp, #112]\n"
        " ldp d12, d13, [sp, #128]\n ldp d14, d15, [sp, #144]\n"
        " ldp x29, x30, [sp], #176\n ret\n"
        ".size t_hal_regs_switch, .-t_hal_regs_switch\n");
#endif

#ifdef HAVE_REGS
void t_hal_regs_switch(struct hal_context *from, struct hal_context *to, const uint64_t *in,
                       uint64_t *out);

static struct {
    struct hal_context main, task;
    int64_t rounds, bad;
    int64_t corrupt_round; /* the task flips one saved register of main's */
} rs;

static void regs_fill(uint64_t *v, uint64_t seed, uint64_t i)
{
    for (int k = 0; k < NREGS - NCTL; k++)
        v[k] = (seed + i * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(k + 1) << 56);
    for (int k = 0; k < NCTL; k++)
        v[NREGS - NCTL + k] = ctl_tab[(i + seed) % 6][k];
}

static int64_t regs_diff(const uint64_t *in, const uint64_t *out)
{
    int64_t bad = 0;
    for (int k = 0; k < NREGS; k++)
        bad += in[k] != out[k];
    return bad;
}

static void regs_task(void *arg)
{
    (void)arg;
    uint64_t in[NREGS], out[NREGS];
    for (uint64_t i = 0;; i++) {
        regs_fill(in, 0x5151, i);
        memset(out, 0, sizeof out);
        if (rs.rounds == rs.corrupt_round) /* main's frame, saved on its stack */
            *(uint64_t *)(void *)((char *)rs.main.sp + FRAME_FIRST_REG) ^= 1;
        t_hal_regs_switch(&rs.task, &rs.main, in, out);
        rs.bad += regs_diff(in, out);
        rs.rounds++;
    }
}
#endif

/* Every callee-saved register and control word survives 100k round trips
 * in both directions; a saved register flipped on purpose once is caught. */
void t_hal_ctx_regs(void)
{
#ifdef HAVE_REGS
    const int64_t n = 100000;
    uint64_t in[NREGS], out[NREGS];
    int64_t bad = 0;
    hal_ctx_init(&rs.task, stack_new(64 << 10), 64 << 10, regs_task, NULL);
#if defined(WEFT_SAN_ASAN) || defined(WEFT_SAN_TSAN)
    /* hal_ctx_switch is hal/posix/sanitizer.c's C wrapper here: the frame
     * at main.sp holds the wrapper's registers, not the caller's. */
    const int64_t want_bad = 0;
    rs.corrupt_round = -1;
#else
    const int64_t want_bad = 1;
    rs.corrupt_round = n / 2;
#endif
    for (int64_t i = 0; i < n; i++) {
        regs_fill(in, 0xA0A0, (uint64_t)i);
        memset(out, 0, sizeof out);
        t_hal_regs_switch(&rs.main, &rs.task, in, out);
        bad += regs_diff(in, out);
    }
    CHECK_EQ(rs.rounds, n - 1);
    CHECK_EQ(rs.bad, 0);
    CHECK_EQ(bad, want_bad); /* exactly the one corruption */
#else
    t_skip("no register-loading assembly for this ABI yet");
#endif
}

/* ---- Entry of a new context ---- */

#define NCTX 8
/* Stack pointer at the first instruction of entry (t_hal_entry_probe). */
__attribute__((visibility("hidden"))) uintptr_t t_hal_entry_sp;
__attribute__((visibility("hidden"))) void t_hal_entry_c(void *arg);
void t_hal_entry_probe(void *arg);

#if defined(__x86_64__)
#define ENTRY_SP_MOD 8 /* a call pushed the return address */
__asm__(".text\n .globl t_hal_entry_probe\n .hidden t_hal_entry_probe\n"
        "t_hal_entry_probe:\n movq %rsp, t_hal_entry_sp(%rip)\n jmp t_hal_entry_c\n");
static uint64_t fp_control(void)
{
    uint32_t mx;
    uint16_t cw;
    __asm__ __volatile__("stmxcsr %0\n fnstcw %1" : "=m"(mx), "=m"(cw));
    return (uint64_t)mx << 16 | cw;
}
static void fp_control_set(uint64_t v)
{
    uint32_t mx = (uint32_t)(v >> 16);
    uint16_t cw = (uint16_t)v;
    __asm__ __volatile__("ldmxcsr %0\n fldcw %1" : : "m"(mx), "m"(cw));
}
#define FP_INIT ((uint64_t)HAL_MXCSR_INIT << 16 | HAL_FCW_INIT)
#define FP_ODD ((uint64_t)0x7F80 << 16 | 0x0F7F)
#elif defined(__aarch64__)
#define ENTRY_SP_MOD 0
__asm__(".text\n .globl t_hal_entry_probe\n .hidden t_hal_entry_probe\n"
        "t_hal_entry_probe:\n mov x9, sp\n adrp x10, t_hal_entry_sp\n"
        " str x9, [x10, #:lo12:t_hal_entry_sp]\n b t_hal_entry_c\n");
static uint64_t fp_control(void)
{
    uint64_t v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
}
static void fp_control_set(uint64_t v)
{
    __asm__ __volatile__("msr fpcr, %0" : : "r"(v));
}
#define FP_INIT ((uint64_t)HAL_FPCR_INIT)
#define FP_ODD ((uint64_t)0x00C00000)
#endif

static struct {
    struct hal_context main, ctx[NCTX];
    char *lo[NCTX];
    uintptr_t sp[NCTX];
    uint64_t fp[NCTX];
    int runs[NCTX];
} es;

void t_hal_entry_c(void *arg)
{
    int i = (int)((int *)arg - es.runs);
    es.sp[i] = t_hal_entry_sp;
    es.fp[i] = fp_control();
    for (;;) {
        es.runs[i]++;
        hal_ctx_switch(&es.ctx[i], &es.main);
    }
}

/* A new context starts in entry(arg) on its own stack, aligned as the ABI
 * wants, with the ABI's initial FP control words (not its creator's), and
 * eight of them interleave for 100 rounds. */
void t_hal_ctx_entry(void)
{
    const size_t size = 32 << 10;
    for (int i = 0; i < NCTX; i++) {
        es.lo[i] = stack_new(size);
        hal_ctx_init(&es.ctx[i], es.lo[i], size - 16 * (size_t)i, t_hal_entry_probe, &es.runs[i]);
    }
    uint64_t saved = fp_control();
    fp_control_set(FP_ODD);
    for (int r = 1; r <= 100; r++) {
        for (int i = 0; i < NCTX; i++) {
            hal_ctx_switch(&es.main, &es.ctx[i]);
            CHECK_EQ(es.runs[i], r);
            CHECK_EQ(fp_control(), FP_ODD);
        }
    }
    fp_control_set(saved);
    for (int i = 0; i < NCTX; i++) {
        uintptr_t hi = (uintptr_t)es.lo[i] + size - 16 * (size_t)i;
        CHECK_EQ(es.sp[i] % 16, ENTRY_SP_MOD);
        CHECK(es.sp[i] > (uintptr_t)es.lo[i] && es.sp[i] <= hi);
        CHECK_LT(hi - es.sp[i], 256); /* the frame is at the top */
        CHECK_EQ(es.fp[i], FP_INIT);
    }
}

/* ---- POSIX only: memory and guards, signals, crashes in a child ---- */

/* Runs fn(arg) in a fork()ed child with core dumps off; returns how it
 * ended: its exit code, or SIGNALLED(sig). */
#define SIGNALLED(sig) (1000 + (sig))
static int in_child(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        fn(arg);
        _exit(0);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        CHECK_EQ(errno, EINTR);
    return WIFSIGNALED(st) ? SIGNALLED(WTERMSIG(st)) : WEXITSTATUS(st);
}

/* Lines of /proc/self/maps: the process's mapping count. */
static long maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    long n = 0;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

/* A word shared with forked children. */
static volatile int *shared_page(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

static void ret_entry(void *arg)
{
    (void)arg;
}

static void ret_child(void *arg)
{
    (void)arg;
    struct hal_context home, c;
    hal_ctx_init(&c, stack_new(32 << 10), 32 << 10, ret_entry, NULL);
    hal_ctx_switch(&home, &c);
    _exit(0);
}

/* An entry function that returns traps at once (ud2 / brk). */
void t_hal_ctx_return(void)
{
#if defined(__x86_64__)
    CHECK_EQ(in_child(ret_child, NULL), SIGNALLED(SIGILL));
#else
    CHECK_EQ(in_child(ret_child, NULL), SIGNALLED(SIGTRAP));
#endif
}

static void touch_child(void *p)
{
    *(volatile char *)p = 1;
}

/* Reservations at several alignments; commit, recommit, discard (zeroes),
 * release; bad arguments give NULL; an uncommitted page faults. */
void t_hal_mem_basic(void)
{
    size_t ps = hal_page_size();
    CHECK_EQ(ps, sysconf(_SC_PAGESIZE));
    CHECK_EQ(ps & (ps - 1), 0);
    static const size_t aligns[] = {0, 4096, 64 << 10, 2 << 20, 64 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 16 * ps, align = aligns[i] > ps ? aligns[i] : ps;
        char *p = hal_mem_reserve(size, aligns[i]);
        CHECK(p != NULL);
        CHECK_EQ((uintptr_t)p % align, 0);
        CHECK_OK(hal_mem_commit(p, 2 * ps));
        memset(p, 0xAB, 2 * ps);
        CHECK_OK(hal_mem_commit(p, 4 * ps));
        CHECK_EQ((unsigned char)p[2 * ps - 1], 0xAB);
        CHECK_EQ(in_child(touch_child, p + 4 * ps), SIGNALLED(SIGSEGV));
        CHECK_OK(hal_mem_discard(p, 2 * ps));
        CHECK_EQ(p[0] | p[2 * ps - 1], 0);
        p[0] = 1;
        hal_mem_release(p, size);
    }
    /* Address space only. (Under qemu-user a reservation costs about 60 ms
     * per GiB: qemu tracks every guest page.) */
    char *big = hal_mem_reserve((size_t)1 << 30, 512 << 20);
    CHECK(big != NULL);
    CHECK_EQ((uintptr_t)big % (512 << 20), 0);
    hal_mem_release(big, (size_t)1 << 30);
    CHECK(hal_mem_reserve(0, ps) == NULL);
    CHECK(hal_mem_reserve(ps + 1, ps) == NULL);
    CHECK(hal_mem_reserve(ps, 3 * ps) == NULL);
}

static volatile int *gk; /* [0] the kind the child got, [1] it survived */

static void guard_child(void *mode)
{
    if (mode != NULL)
        setenv("WEFT_GUARD", mode, 1);
    else
        unsetenv("WEFT_GUARD");
    unsetenv("WEFT_GUARD_BUDGET");
    size_t ps = hal_page_size();
    char *r = hal_mem_reserve(4 * ps, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, 4 * ps));
    gk[0] = (int)hal_mem_guard(r + ps, ps);
    r[ps - 1] = 1;
    r[2 * ps] = 2;
    CHECK_OK(hal_mem_discard(r, 4 * ps)); /* the guard survives a discard */
    CHECK_EQ(r[ps - 1] | r[2 * ps], 0);
    *(volatile char *)(r + ps + ps / 2) = 3;
    gk[1] = 1;
}

/* Does this kernel enforce MADV_GUARD_INSTALL? Asked with a real fault,
 * independently of the probe in hal/posix/mem.c. */
static void region_oracle(void *arg)
{
    (void)arg;
    size_t ps = hal_page_size();
    char *p = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || madvise(p + ps, ps, 102 /* MADV_GUARD_INSTALL */) != 0)
        _exit(3);
    *(volatile char *)(p + ps) = 1;
}

/* Each WEFT_GUARD setting gives the kind expected (region exactly where
 * the kernel really enforces it), and a guard of any kind faults. */
void t_hal_mem_guard_kinds(void)
{
    gk = shared_page();
    int natural =
        in_child(region_oracle, NULL) == SIGNALLED(SIGSEGV) ? HAL_GUARD_REGION : HAL_GUARD_PROTECT;
    fprintf(stderr, "guard kind without WEFT_GUARD: %s\n",
            natural == HAL_GUARD_REGION ? "region" : "protect");
    static const struct {
        const char *mode;
        int kind; /* -1: natural */
    } runs[] = {{NULL, -1},
                {"region", -1},
                {"protect", HAL_GUARD_PROTECT},
                {"none", HAL_GUARD_NONE},
                {"bogus", -1}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        int want = runs[i].kind < 0 ? natural : runs[i].kind;
        gk[0] = -1;
        gk[1] = 0;
        int how = in_child(guard_child, (void *)runs[i].mode);
        CHECK_EQ(gk[0], want);
        CHECK_EQ(how, want == HAL_GUARD_NONE ? 0 : SIGNALLED(SIGSEGV));
        CHECK_EQ(gk[1], want == HAL_GUARD_NONE);
    }
}

/* Protect guards stop at the budget (WEFT_GUARD_BUDGET=3 here), and each
 * one costs exactly two mappings. */
void t_hal_mem_guard_budget(void)
{
    t_skip_if_tsan_maps();
    setenv("WEFT_GUARD", "protect", 1);
    setenv("WEFT_GUARD_BUDGET", "3", 1);
    size_t ps = hal_page_size();
    char *r = hal_mem_reserve(12 * ps, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, 12 * ps));
    long m0 = maps_count();
    static const int want[5] = {HAL_GUARD_PROTECT, HAL_GUARD_PROTECT, HAL_GUARD_PROTECT,
                                HAL_GUARD_NONE, HAL_GUARD_NONE};
    for (int i = 0; i < 5; i++)
        CHECK_EQ(hal_mem_guard(r + (size_t)(2 * i + 1) * ps, ps), want[i]);
    CHECK_EQ(maps_count() - m0, 6);
    hal_mem_release(r, 12 * ps);
    CHECK_EQ(hal_mem_guard(r, ps), HAL_GUARD_NONE); /* a fixed budget stays spent */
}

/* Region guards cost no mapping: 1,000 of them leave the count as it was.
 * Skips where the kernel does not enforce them (before 6.13, qemu-user). */
void t_hal_mem_guard_maps(void)
{
    t_skip_if_tsan_maps();
    unsetenv("WEFT_GUARD");
    unsetenv("WEFT_GUARD_BUDGET");
    size_t ps = hal_page_size(), n = 1000;
    char *r = hal_mem_reserve(2 * n * ps, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, 2 * n * ps));
    long m0 = maps_count();
    if (hal_mem_guard(r, ps) != HAL_GUARD_REGION) {
        hal_mem_release(r, 2 * n * ps);
        t_skip("no enforced MADV_GUARD_INSTALL here (kernel < 6.13 or qemu-user)");
    }
    for (size_t i = 1; i < n; i++)
        CHECK_EQ(hal_mem_guard(r + 2 * i * ps, ps), HAL_GUARD_REGION);
    CHECK_LE(maps_count() - m0, 2);
    r[ps] = 1;
    CHECK_EQ(in_child(touch_child, r + 2 * (n - 1) * ps), SIGNALLED(SIGSEGV));
    hal_mem_release(r, 2 * n * ps);
}

/* ---- The fault handler: altstack, chaining to the host's handler ---- */

static sigjmp_buf fc_jmp;
static void *volatile fc_addr;
static volatile int fc_onstack;

static void fc_siginfo(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    stack_t ss;
    sigaltstack(NULL, &ss);
    fc_onstack = (ss.ss_flags & SS_ONSTACK) != 0;
    fc_addr = si->si_addr;
    siglongjmp(fc_jmp, 1);
}

static void fc_plain(int sig)
{
    _exit(sig == SIGSEGV ? 41 : 40);
}

enum { HOST_SIGINFO, HOST_PLAIN, HOST_DFL, HOST_IGN, HOST_IGN_KILL, HOST_DFL_KILL };

static void fc_child(void *arg)
{
    int mode = (int)(intptr_t)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    if (mode == HOST_SIGINFO) {
        sa.sa_sigaction = fc_siginfo;
        sa.sa_flags = SA_SIGINFO;
    } else if (mode == HOST_PLAIN) {
        sa.sa_handler = fc_plain;
    } else {
        sa.sa_handler = mode == HOST_DFL || mode == HOST_DFL_KILL ? SIG_DFL : SIG_IGN;
    }
    sigaction(SIGSEGV, &sa, NULL);
    hal_thread_enter();
    if (mode == HOST_IGN_KILL || mode == HOST_DFL_KILL) {
        kill(getpid(), SIGSEGV);
        _exit(0);
    }
    char *p = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    if (sigsetjmp(fc_jmp, 1) == 0) {
        *(volatile char *)p = 1;
        _exit(2); /* the fault was lost */
    }
    CHECK(fc_addr == p);
    CHECK(fc_onstack);
    hal_thread_leave();
}

/* After weft's handler (kern_fault returns: no task here), a fault reaches
 * the host's handler of every kind, or kills the process as before. */
void t_hal_fault_chain(void)
{
    CHECK_EQ(in_child(fc_child, (void *)HOST_SIGINFO), 0);
    CHECK_EQ(in_child(fc_child, (void *)HOST_PLAIN), 41);
    CHECK_EQ(in_child(fc_child, (void *)HOST_DFL), SIGNALLED(SIGSEGV));
    CHECK_EQ(in_child(fc_child, (void *)HOST_IGN), SIGNALLED(SIGSEGV));
    CHECK_EQ(in_child(fc_child, (void *)HOST_IGN_KILL), 0);
    CHECK_EQ(in_child(fc_child, (void *)HOST_DFL_KILL), SIGNALLED(SIGSEGV));
}

static char *so_guard;
static volatile long so_depth = 1L << 40;

static void so_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    stack_t ss;
    sigaltstack(NULL, &ss);
    char *a = si->si_addr;
    bool in_guard = a >= so_guard && a < so_guard + hal_page_size();
    _exit(!in_guard ? 9 : (ss.ss_flags & SS_ONSTACK) ? 7 : 8);
}

static void so_recurse(volatile char *prev)
{
    volatile char buf[256];
    buf[0] = prev[0];
    if (so_depth-- > 0)
        so_recurse(buf);
    buf[1] = buf[0]; /* no tail call */
}

static void so_entry(void *arg)
{
    so_recurse(arg);
}

static void so_child(void *arg)
{
    (void)arg;
    unsetenv("WEFT_GUARD");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = so_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    hal_thread_enter();
    size_t ps = hal_page_size(), size = 64 << 10;
    char *r = hal_mem_reserve(size + ps, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, size + ps));
    CHECK_NE(hal_mem_guard(r, ps), HAL_GUARD_NONE);
    so_guard = r;
    static char zero;
    struct hal_context home, c;
    hal_ctx_init(&c, r + ps, size, so_entry, &zero);
    hal_ctx_switch(&home, &c);
    _exit(1);
}

/* A context that overflows its stack hits the guard, and the fault is
 * handled on the thread's altstack with si_addr inside the guard. */
void t_hal_stack_overflow(void)
{
    CHECK_EQ(in_child(so_child, NULL), 7);
}

/* ---- Threads and the altstack ---- */

struct th {
    void *got;
    size_t alt_size;
    int alt_on, segv_blocked;
};

static void th_fn(void *arg)
{
    struct th *t = arg;
    hal_thread_set(t);
    t->got = hal_thread_get();
    stack_t ss;
    sigaltstack(NULL, &ss);
    t->alt_on = !(ss.ss_flags & SS_DISABLE);
    t->alt_size = ss.ss_size;
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    t->segv_blocked = sigismember(&m, SIGSEGV);
}

static stack_t altstack_now(void)
{
    stack_t ss;
    CHECK_OK(sigaltstack(NULL, &ss));
    return ss;
}

/* Started threads have their own kern pointer, a 64 KiB altstack and
 * SIGSEGV unblocked; enter/leave nest and give a host thread its own
 * altstack and signal mask back. */
void t_hal_threads(void)
{
    sigset_t segv;
    sigemptyset(&segv);
    sigaddset(&segv, SIGSEGV);
    pthread_sigmask(SIG_BLOCK, &segv, NULL); /* inherited, must be undone */
    struct th th[4];
    hal_thread_t t[4];
    hal_thread_set(&th[0]);
    for (int i = 0; i < 4; i++)
        CHECK_OK(hal_thread_start(th_fn, &th[i], &t[i]));
    for (int i = 0; i < 4; i++) {
        hal_thread_join(t[i]);
        CHECK(th[i].got == &th[i]);
        CHECK(th[i].alt_on);
        CHECK_EQ(th[i].alt_size, 64 << 10);
        CHECK(!th[i].segv_blocked);
    }
    CHECK(hal_thread_get() == &th[0]);

    static char mine[32 << 10];
    stack_t host = {.ss_sp = mine, .ss_size = sizeof mine, .ss_flags = 0};
    CHECK_OK(sigaltstack(&host, NULL));
    hal_thread_enter();
    stack_t ours = altstack_now();
    CHECK(ours.ss_sp != mine);
    CHECK_EQ(ours.ss_size, 64 << 10);
    sigset_t m;
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    CHECK(!sigismember(&m, SIGSEGV));
    hal_thread_enter();
    hal_thread_leave();
    CHECK(altstack_now().ss_sp == ours.ss_sp);
    hal_thread_leave();
    CHECK(altstack_now().ss_sp == mine);
    CHECK_EQ(altstack_now().ss_size, sizeof mine);
    pthread_sigmask(SIG_BLOCK, NULL, &m);
    CHECK(sigismember(&m, SIGSEGV));

    stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
    CHECK_OK(sigaltstack(&off, NULL));
    hal_thread_enter();
    hal_thread_leave();
    CHECK(altstack_now().ss_flags & SS_DISABLE);
    pthread_sigmask(SIG_UNBLOCK, &segv, NULL);
}

/* The affinity mask's CPU count. */
void t_hal_cpu_count(void)
{
    cpu_set_t set;
    CHECK_OK(sched_getaffinity(0, sizeof set, &set));
    CHECK_GE(hal_cpu_count(), 1);
    CHECK_EQ(hal_cpu_count(), CPU_COUNT(&set));
}

/* ---- The error stream ---- */

#define WE_SIZE 300000
static void we_tick(int sig)
{
    (void)sig;
}

static void we_child(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = we_tick; /* no SA_RESTART: writes see EINTR */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    char *buf = malloc(WE_SIZE);
    CHECK(buf != NULL);
    for (int i = 0; i < WE_SIZE; i++)
        buf[i] = (char)(i * 7 + i / 251);
    dup2(fd, STDERR_FILENO);
    hal_write_err(buf, WE_SIZE);
    _exit(0);
}

/* hal_write_err writes everything, across short writes, EINTR (a 1 ms
 * timer signal) and EAGAIN (a non-blocking stderr), to a slow reader. */
void t_hal_write_err(void)
{
    for (int nonblock = 0; nonblock < 2; nonblock++) {
        int fds[2];
        CHECK_OK(pipe(fds));
        if (nonblock)
            fcntl(fds[1], F_SETFL, O_NONBLOCK);
        fflush(NULL);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            we_child((void *)(intptr_t)fds[1]);
        }
        close(fds[1]);
        hal_sleep_ns(50 * MS);
        char *got = malloc(WE_SIZE + 1);
        CHECK(got != NULL);
        size_t n = 0;
        for (ssize_t r; (r = read(fds[0], got + n, WE_SIZE + 1 - n)) != 0;) {
            CHECK(r > 0 || errno == EINTR);
            n += r > 0 ? (size_t)r : 0;
            if (n % 8192 == 0)
                hal_sleep_ns(100000);
        }
        close(fds[0]);
        int st;
        CHECK_EQ(waitpid(pid, &st, 0), pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        CHECK_EQ(n, WE_SIZE);
        for (int i = 0; i < WE_SIZE; i++)
            CHECK_EQ(got[i], (char)(i * 7 + i / 251));
        free(got);
    }
}
#else /* _WIN32: tests/t_hal_win32.c has the Windows variants of the cases above */
void t_hal_cpu_count(void)
{
    CHECK_GE(hal_cpu_count(), 1);
}
#endif

#ifdef __SANITIZE_ADDRESS__
/* weft catches SIGSEGV itself (guard pages, kern_fault) and these tests
 * check that a touched guard kills the process by SIGSEGV: ASan's own
 * SEGV handler would turn that into a report and exit(1). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0:handle_sigbus=0";
}
#endif
