/* SPDX-License-Identifier: MIT */
/*
 * t_hal_win32.c — the Windows variants of t_hal.c's POSIX cases, and the
 * port's own HAL case, for hal/win32 with hal/x86_64's Win64 switch. Like
 * t_hal.c they call hal_* directly and never weft_run.
 *
 * What stands in for what POSIX has:
 *   fork()ed child     the same weft-test.exe started again for the same
 *                      case (CreateProcess), with WEFT_T_CHILD naming the
 *                      part it runs; its exit code is the answer
 *   signal handlers    a vectored handler added after weft's, a frame-based
 *                      handler (t_seh_call: unwind data naming t_seh_filter,
 *                      in t_hal_win64_x86_64.S), the unhandled-exception
 *                      filter, the C runtime's signal()
 *   /proc/self/maps    VirtualQuery's regions
 *   the altstack       the rescue stack fault.c gives each thread in weft
 *
 * On Windows a fault that nobody handles ends the process with the
 * exception's code as its exit code (STATUS_ACCESS_VIOLATION and so on).
 *
 *   hal_seh_task  a frame-based handler inside a task catches an access
 *                 violation raised in the task, which then goes on. Windows
 *                 (and Wine) accept a frame only between the TIB's
 *                 StackLimit and StackBase, so this works only because
 *                 hal_ctx_switch points the TIB at the task's stack; a child
 *                 that puts the thread's values back first must die of the
 *                 access violation.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef _WIN32
#include <signal.h>
#include <windows.h>

#include "hal/hal.h"
#include "hal/win32/win32.h"

#define MS 1000000LL
#define TEB_DEALLOCATION_STACK 0x1478 /* TEB.DeallocationStack on x86_64 */

/* ---- Helpers ---- */

/* A committed test stack with an unguarded page below: returns its low end. */
static char *stack_new(size_t size)
{
    size_t ps = hal_page_size();
    char *base = hal_mem_reserve(size + ps, ps);
    CHECK(base != NULL);
    CHECK_OK(hal_mem_commit(base, size + ps));
    return base + ps;
}

/* The TIB's description of the running stack. */
struct tib_stack {
    uintptr_t base, limit, dealloc;
};

/* The thread's TEB, which begins with its NT_TIB (TEB.NtTib.Self, at
 * gs:0x30, points to it). Not NtCurrentTeb(): GCC 12 warns about its
 * array-typed read of gs. */
static NT_TIB *teb(void)
{
    NT_TIB *t;
    __asm__ __volatile__("movq %%gs:0x30, %0" : "=r"(t));
    return t;
}

static struct tib_stack tib_now(void)
{
    NT_TIB *tib = teb();
    struct tib_stack s = {(uintptr_t)tib->StackBase, (uintptr_t)tib->StackLimit,
                          *(uintptr_t *)(void *)((char *)tib + TEB_DEALLOCATION_STACK)};
    return s;
}

static void tib_set(struct tib_stack s)
{
    NT_TIB *tib = teb();
    tib->StackBase = (void *)s.base;
    tib->StackLimit = (void *)s.limit;
    *(uintptr_t *)(void *)((char *)tib + TEB_DEALLOCATION_STACK) = s.dealloc;
}

static bool tib_eq(struct tib_stack a, struct tib_stack b)
{
    return a.base == b.base && a.limit == b.limit && a.dealloc == b.dealloc;
}

/* The TIB as kernel32 reads it (DeallocationStack, StackBase), to check
 * the offset above. GetCurrentThreadStackLimits is Windows 8's: looked up,
 * so that weft-test.exe still loads where it is missing. */
static void tib_check_kernel32(struct tib_stack s)
{
    typedef void(WINAPI * limits_fn)(PULONG_PTR, PULONG_PTR);
    limits_fn limits = (limits_fn)(void (*)(void))GetProcAddress(GetModuleHandleA("kernel32.dll"),
                                                                 "GetCurrentThreadStackLimits");
    if (limits == NULL)
        return;
    ULONG_PTR lo, hi;
    limits(&lo, &hi);
    CHECK_EQ(lo, s.dealloc);
    CHECK_EQ(hi, s.base);
}

/* ---- A frame-based handler (t_hal_win64_x86_64.S: t_seh_call) ---- */

int t_seh_call(void (*fn)(void *), void *arg);
void t_seh_join(void);
EXCEPTION_DISPOSITION t_seh_filter(EXCEPTION_RECORD *rec, void *frame, CONTEXT *ctx,
                                   DISPATCHER_CONTEXT *dc);

/* What the last exception t_seh_filter caught was. */
static volatile DWORD seh_code;
static void *volatile seh_addr;
static volatile int seh_caught;

/* The language handler of t_seh_call's frame: takes every exception that
 * reaches it (as __except(1) would) and unwinds to t_seh_join, so that
 * t_seh_call returns 1. */
EXCEPTION_DISPOSITION t_seh_filter(EXCEPTION_RECORD *rec, void *frame, CONTEXT *ctx,
                                   DISPATCHER_CONTEXT *dc)
{
    (void)ctx;
    if (rec->ExceptionFlags & (EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND))
        return ExceptionContinueSearch;
    seh_code = rec->ExceptionCode;
    seh_addr = rec->NumberParameters >= 2 ? (void *)rec->ExceptionInformation[1] : NULL;
    seh_caught++;
    RtlUnwindEx(frame, (void *)t_seh_join, rec, (void *)1, dc->ContextRecord, dc->HistoryTable);
    return ExceptionContinueSearch; /* not reached */
}

static void touch(void *p)
{
    *(volatile char *)p = 1;
}

static void raise_custom(void *arg)
{
    (void)arg;
    RaiseException(0xE0057EF7, 0, 0, NULL);
}

/* Calls fn(p) under t_seh_call: 0 if it returned, else the code caught
 * (and the faulting address must be p for an access violation or guard
 * page violation). */
static DWORD seh_try(void (*fn)(void *), void *p)
{
    seh_code = 0;
    seh_addr = NULL;
    if (t_seh_call(fn, p) == 0)
        return 0;
    if (seh_code == STATUS_ACCESS_VIOLATION || seh_code == STATUS_GUARD_PAGE_VIOLATION)
        CHECK(seh_addr == p);
    return seh_code;
}

/* ---- Callee-saved registers and the TIB across hal_ctx_switch ---- */

#define NREGS 30 /* rbx rbp rdi rsi r12-r15, xmm6-15 (2 words each), MXCSR, x87 CW */
#define NCTL 2
#define REG_RSI 3
#define REG_XMM15_HI 27
static const uint64_t ctl_tab[6][NCTL] = {
    {0x1F80, 0x027F}, {0x3F80, 0x037F}, {0x5F80, 0x007F},
    {0x7F80, 0x0F7F}, {0x9F80, 0x067F}, {0x1FC0, 0x0B7F},
};

void t_hal_regs_switch(struct hal_context *from, struct hal_context *to, const uint64_t *in,
                       uint64_t *out);

static struct {
    struct hal_context main, task;
    uintptr_t lo, hi; /* the task's stack */
    int64_t rounds, bad, tib_bad;
    /* Rounds in which the task damages main's saved frame, once each: */
    int64_t flip_rsi, flip_xmm, flip_tib;
} rs;

static void regs_fill(uint64_t *v, uint64_t seed, uint64_t i)
{
    for (int k = 0; k < NREGS - NCTL; k++)
        v[k] = (seed + i * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)(k + 1) << 56);
    for (int k = 0; k < NCTL; k++)
        v[NREGS - NCTL + k] = ctl_tab[(i + seed) % 6][k];
}

static void regs_task(void *arg)
{
    (void)arg;
    uint64_t in[NREGS], out[NREGS];
    for (uint64_t i = 0;; i++) {
        /* The TIB describes this stack while the task runs. */
        struct tib_stack t = tib_now();
        uintptr_t here = (uintptr_t)&t;
        if (t.base != rs.hi || t.limit != rs.lo ||
            t.dealloc != rs.lo - HAL_STACK_GUARD_PAGES * hal_page_size() || here < t.limit ||
            here >= t.base)
            rs.tib_bad++;
        regs_fill(in, 0x5151, i);
        memset(out, 0, sizeof out);
        char *frame = rs.main.sp; /* main's saved frame */
        if (rs.rounds == rs.flip_rsi)
            *(uint64_t *)(void *)(frame + HAL_FRAME_RSI) ^= 1;
        if (rs.rounds == rs.flip_xmm)
            *(uint64_t *)(void *)(frame + HAL_FRAME_XMM6 + 9 * 16 + 8) ^= 1ull << 63;
        if (rs.rounds == rs.flip_tib)
            *(uint64_t *)(void *)(frame + HAL_FRAME_STACK_LIMIT) += 4096;
        t_hal_regs_switch(&rs.task, &rs.main, in, out);
        for (int k = 0; k < NREGS; k++)
            rs.bad += in[k] != out[k];
        rs.rounds++;
    }
}

/* Every callee-saved register and control word survives 100k round trips
 * in both directions, the TIB describes the task's stack inside the task
 * and the thread's outside it; three saved values of main's damaged on
 * purpose (rsi, xmm15's high half, the TIB's StackLimit) are caught
 * exactly once each. */
void t_hal_ctx_regs(void)
{
    const int64_t n = 100000;
    const size_t size = 64 << 10;
    uint64_t in[NREGS], out[NREGS];
    int64_t bad[NREGS] = {0}, nbad = 0, tib_bad = 0;
    char *lo = stack_new(size);
    rs.lo = (uintptr_t)lo;
    rs.hi = (uintptr_t)lo + size;
    rs.flip_rsi = n / 4;
    rs.flip_xmm = n / 2;
    rs.flip_tib = 3 * n / 4;
    hal_ctx_init(&rs.task, lo, size, regs_task, NULL);
    struct tib_stack home = tib_now();
    uintptr_t here = (uintptr_t)&home;
    CHECK(here >= home.limit && here < home.base);
    tib_check_kernel32(home);
    for (int64_t i = 0; i < n; i++) {
        regs_fill(in, 0xA0A0, (uint64_t)i);
        memset(out, 0, sizeof out);
        t_hal_regs_switch(&rs.main, &rs.task, in, out);
        for (int k = 0; k < NREGS; k++) {
            bad[k] += in[k] != out[k];
            nbad += in[k] != out[k];
        }
        if (!tib_eq(tib_now(), home)) {
            tib_bad++;
            tib_set(home);
        }
    }
    CHECK_EQ(rs.rounds, n - 1);
    CHECK_EQ(rs.bad, 0);
    CHECK_EQ(rs.tib_bad, 0);
    CHECK_EQ(nbad, 2); /* exactly the two corruptions */
    CHECK_EQ(bad[REG_RSI], 1);
    CHECK_EQ(bad[REG_XMM15_HI], 1);
    CHECK_EQ(tib_bad, 1);
    tib_check_kernel32(tib_now());
}

/* ---- Entry of a new context ---- */

#define NCTX 8
/* Written by t_hal_entry_probe (the .S) at the entry's first instruction. */
uintptr_t t_hal_entry_sp, t_hal_entry_rcx;
void t_hal_entry_probe(void *arg);
void t_hal_entry_c(void *arg);

/* Windows starts every thread with these (all exceptions masked, round to
 * nearest; x87 at double precision). */
#define FP_INIT ((uint64_t)0x1F80 << 16 | 0x027F)
#define FP_ODD ((uint64_t)0x7F80 << 16 | 0x0F7F)

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

static struct {
    struct hal_context main, ctx[NCTX];
    char *lo[NCTX];
    uintptr_t sp[NCTX], rcx[NCTX];
    uint64_t fp[NCTX];
    struct tib_stack tib[NCTX];
    int runs[NCTX];
} es;

void t_hal_entry_c(void *arg)
{
    int i = -1;
    for (int j = 0; j < NCTX; j++)
        if (arg == &es.runs[j])
            i = j;
    CHECK(i >= 0);
    es.sp[i] = t_hal_entry_sp;
    es.rcx[i] = t_hal_entry_rcx;
    es.fp[i] = fp_control();
    es.tib[i] = tib_now();
    for (;;) {
        es.runs[i]++;
        hal_ctx_switch(&es.ctx[i], &es.main);
    }
}

static void fp_of_thread(void *out)
{
    *(uint64_t *)out = fp_control();
}

/* A new context starts in entry(arg) with arg in rcx, on its own stack
 * with rsp + 8 16-aligned and the return address and 32 bytes of shadow
 * space inside the stack, with the control words a new thread gets (not
 * its creator's), and the TIB describing its stack; eight of them
 * interleave for 100 rounds. */
void t_hal_ctx_entry(void)
{
    const size_t size = 32 << 10, ps = hal_page_size();
    uint64_t fresh = 0;
    hal_thread_t t;
    CHECK_OK(hal_thread_start(fp_of_thread, &fresh, &t));
    hal_thread_join(t);
    CHECK_EQ(fresh, FP_INIT);
    for (int i = 0; i < NCTX; i++) {
        es.lo[i] = stack_new(size);
        hal_ctx_init(&es.ctx[i], es.lo[i], size - 16 * (size_t)i, t_hal_entry_probe, &es.runs[i]);
    }
    struct tib_stack home = tib_now();
    uint64_t saved = fp_control();
    fp_control_set(FP_ODD);
    for (int r = 1; r <= 100; r++) {
        for (int i = 0; i < NCTX; i++) {
            hal_ctx_switch(&es.main, &es.ctx[i]);
            CHECK_EQ(es.runs[i], r);
            CHECK_EQ(fp_control(), FP_ODD);
            CHECK(tib_eq(tib_now(), home));
        }
    }
    fp_control_set(saved);
    for (int i = 0; i < NCTX; i++) {
        uintptr_t lo = (uintptr_t)es.lo[i], hi = lo + size - 16 * (size_t)i;
        CHECK_EQ(es.rcx[i], (uintptr_t)&es.runs[i]);
        CHECK_EQ(es.sp[i] % 16, 8);
        CHECK(es.sp[i] > lo);
        CHECK_LE(es.sp[i] + 8 + 32, hi); /* return address and shadow space */
        CHECK_LT(hi - es.sp[i], 256);    /* the frame is at the top */
        CHECK_EQ(es.fp[i], FP_INIT);
        CHECK_EQ(es.tib[i].base, hi);
        CHECK_EQ(es.tib[i].limit, lo);
        CHECK_EQ(es.tib[i].dealloc, lo - HAL_STACK_GUARD_PAGES * ps);
    }
}

/* ---- A returning entry ---- */

static void ret_entry(void *arg)
{
    (void)arg;
}

/* An entry function that returns traps at once (ud2): the process dies
 * of STATUS_ILLEGAL_INSTRUCTION. */
void t_hal_ctx_return(void)
{
    if (t_child_mode() != NULL) {
        struct hal_context home, c;
        hal_ctx_init(&c, stack_new(32 << 10), 32 << 10, ret_entry, NULL);
        hal_ctx_switch(&home, &c);
        ExitProcess(0);
    }
    CHECK_EQ(t_child_run("hal_ctx_return", "ret"), STATUS_ILLEGAL_INSTRUCTION);
}

/* ---- A frame-based handler inside a task ---- */

static struct {
    struct hal_context main, task;
    struct tib_stack thread_tib; /* the thread's, outside any task */
    char *noaccess;
    int undo_tib; /* negative control: put the thread's TIB back first */
    int caught, finished;
    uintptr_t lo, hi;
} st;

static void seh_deep(void *p)
{
    char pad[512];
    memset(pad, 1, sizeof pad);
    __asm__ __volatile__("" : : "r"(pad) : "memory");
    touch(p);
}

static void seh_task(void *arg)
{
    (void)arg;
    if (st.undo_tib)
        tib_set(st.thread_tib);
    for (int k = 0; k < 3; k++) {
        DWORD code = seh_try(seh_deep, st.noaccess + 64 * k);
        if (code == STATUS_ACCESS_VIOLATION)
            st.caught++;
    }
    CHECK_EQ(seh_try(raise_custom, NULL), 0xE0057EF7);
    CHECK_EQ(seh_try(touch, &st.finished), 0); /* a harmless call returns */
    struct tib_stack t = tib_now();
    CHECK_EQ(t.base, st.hi);
    CHECK_EQ(t.limit, st.lo);
    st.finished = 1;
    hal_ctx_switch(&st.task, &st.main);
}

static void seh_setup(int undo_tib)
{
    size_t ps = hal_page_size(), size = 64 << 10, band = HAL_STACK_GUARD_PAGES * ps;
    hal_thread_enter(); /* weft's vectored handler sees every fault first */
    st.noaccess = hal_mem_reserve(ps, ps);
    CHECK(st.noaccess != NULL);
    char *r = hal_mem_reserve(band + size, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, band + size));
    CHECK_NE(hal_mem_guard(r, band), HAL_GUARD_NONE);
    st.lo = (uintptr_t)r + band;
    st.hi = st.lo + size;
    st.undo_tib = undo_tib;
    st.thread_tib = tib_now();
    hal_ctx_init(&st.task, r + band, size, seh_task, NULL);
    hal_ctx_switch(&st.main, &st.task);
}

/* Inside a task, a frame-based handler catches three access violations
 * and a raised exception, and the task finishes; the thread's TIB is back
 * afterwards. Without the TIB switch (a child that restores the thread's
 * values inside the task) the handler is never found: the child dies of
 * the access violation. */
void t_hal_seh_task(void)
{
    const char *m = t_child_mode();
    if (m != NULL) {
        seh_setup(1);
        ExitProcess(st.caught > 0 ? 50 : 51); /* must not get here */
    }
    seh_setup(0);
    CHECK_EQ(st.caught, 3);
    CHECK_EQ(st.finished, 1);
    CHECK(tib_eq(tib_now(), st.thread_tib));
    DWORD code = t_child_run("hal_seh_task", "undo_tib");
    fprintf(stderr, "without the TIB switch the child ended with 0x%lx\n", (unsigned long)code);
    CHECK_EQ(code, STATUS_ACCESS_VIOLATION);
    hal_thread_leave();
}

/* ---- Memory ---- */

static MEMORY_BASIC_INFORMATION query(const void *p)
{
    MEMORY_BASIC_INFORMATION mbi;
    CHECK_EQ(VirtualQuery(p, &mbi, sizeof mbi), sizeof mbi);
    return mbi;
}

/* Checks the region at p: its state, protection (when committed) and size. */
static void expect_region(const void *p, DWORD state, DWORD protect, size_t size)
{
    MEMORY_BASIC_INFORMATION m = query(p);
    CHECK(m.BaseAddress == p);
    CHECK_EQ(m.State, state);
    if (state == MEM_COMMIT)
        CHECK_EQ(m.Protect, protect);
    if (size != 0)
        CHECK_EQ(m.RegionSize, size);
}

/* Reservations at several alignments; commit, recommit, discard, release,
 * each as VirtualQuery sees it; an uncommitted page faults; bad arguments
 * give NULL. */
void t_hal_mem_basic(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    size_t ps = hal_page_size();
    CHECK_EQ(ps, si.dwPageSize);
    CHECK_EQ(ps & (ps - 1), 0);
    static const size_t aligns[] = {0, 4096, 64 << 10, 2 << 20, 64 << 20};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t size = 16 * ps, align = aligns[i] > ps ? aligns[i] : ps;
        char *p = hal_mem_reserve(size, aligns[i]);
        CHECK(p != NULL);
        CHECK_EQ((uintptr_t)p % align, 0);
        CHECK(query(p).AllocationBase == p);
        expect_region(p, MEM_RESERVE, 0, size);
        CHECK_OK(hal_mem_commit(p, 2 * ps));
        expect_region(p, MEM_COMMIT, PAGE_READWRITE, 2 * ps);
        expect_region(p + 2 * ps, MEM_RESERVE, 0, 14 * ps);
        memset(p, 0xAB, 2 * ps);
        CHECK_OK(hal_mem_commit(p, 4 * ps));
        expect_region(p, MEM_COMMIT, PAGE_READWRITE, 4 * ps);
        CHECK_EQ((unsigned char)p[2 * ps - 1], 0xAB);
        CHECK_EQ(seh_try(touch, p + 4 * ps), STATUS_ACCESS_VIOLATION);
        CHECK_OK(hal_mem_discard(p, 2 * ps));
        expect_region(p, MEM_COMMIT, PAGE_READWRITE, 4 * ps);
        p[0] = 1;
        p[2 * ps - 1] = 1;
        hal_mem_release(p, size);
        CHECK_EQ(query(p).State, MEM_FREE);
    }
    /* Address space only. */
    char *big = hal_mem_reserve((size_t)1 << 30, 512 << 20);
    CHECK(big != NULL);
    CHECK_EQ((uintptr_t)big % (512 << 20), 0);
    expect_region(big, MEM_RESERVE, 0, (size_t)1 << 30);
    hal_mem_release(big, (size_t)1 << 30);
    CHECK_EQ(query(big).State, MEM_FREE);
    CHECK(hal_mem_reserve(0, ps) == NULL);
    CHECK(hal_mem_reserve(ps + 1, ps) == NULL);
    CHECK(hal_mem_reserve(ps, 3 * ps) == NULL);
}

/* The band hal_mem_guard makes of HAL_STACK_GUARD_PAGES pages at g, as
 * VirtualQuery sees it: one NOACCESS page, then PAGE_GUARD pages. */
static void expect_band(char *g)
{
    size_t ps = hal_page_size();
    expect_region(g, MEM_COMMIT, PAGE_NOACCESS, ps);
    expect_region(g + ps, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD,
                  (HAL_STACK_GUARD_PAGES - 1) * ps);
}

/* The child of hal_mem_guard_kinds: WEFT_GUARD=mode ("-": unset) in a
 * fresh process (mem.c reads it once). Exits 100 + the kind it got, after
 * checking what that kind must look like and do. */
static void guard_child(const char *mode)
{
    if (strcmp(mode, "-") == 0)
        unsetenv("WEFT_GUARD");
    else
        setenv("WEFT_GUARD", mode, 1);
    size_t ps = hal_page_size(), band = HAL_STACK_GUARD_PAGES * ps;
    char *r = hal_mem_reserve(band + 2 * ps, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, band + 2 * ps));
    char *g = r + ps, *top = g + band - ps; /* the band's highest page */
    int kind = hal_mem_guard(g, band);
    if (kind == HAL_GUARD_NONE) {
        expect_region(r, MEM_COMMIT, PAGE_READWRITE, band + 2 * ps);
        CHECK_EQ(seh_try(touch, g), 0);
        ExitProcess(100 + kind);
    }
    expect_band(g);
    r[ps - 1] = 1;
    g[band] = 2;
    CHECK_OK(hal_mem_discard(r, band + 2 * ps)); /* the band survives a discard */
    expect_band(g);
    /* A guard page faults once, then is an ordinary page. */
    CHECK_EQ(seh_try(touch, top + ps / 2), STATUS_GUARD_PAGE_VIOLATION);
    expect_region(top, MEM_COMMIT, PAGE_READWRITE, 0);
    CHECK_EQ(seh_try(touch, top + ps / 2), 0);
    CHECK_EQ(seh_try(touch, g + 10), STATUS_ACCESS_VIOLATION);
    ExitProcess(100 + kind);
}

/* Each WEFT_GUARD setting gives the kind expected: Windows has one kind
 * (PROTECT: a NOACCESS page under PAGE_GUARD pages) whatever is asked but
 * "none"; a guard faults, first as a one-shot guard violation. */
void t_hal_mem_guard_kinds(void)
{
    const char *m = t_child_mode();
    if (m != NULL)
        guard_child(m);
    static const struct {
        const char *mode;
        int kind;
    } runs[] = {{"-", HAL_GUARD_PROTECT},
                {"region", HAL_GUARD_PROTECT},
                {"protect", HAL_GUARD_PROTECT},
                {"none", HAL_GUARD_NONE},
                {"bogus", HAL_GUARD_PROTECT}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
        CHECK_EQ(t_child_run("hal_mem_guard_kinds", runs[i].mode), 100 + runs[i].kind);
}

/* Regions VirtualQuery sees in [p, p + size). */
static long regions(char *p, size_t size)
{
    long n = 0;
    for (char *q = p; q < p + size;) {
        MEMORY_BASIC_INFORMATION m = query(q);
        q = (char *)m.BaseAddress + m.RegionSize;
        n++;
    }
    return n;
}

/* Windows keeps no guard budget (its address space has no small mapping
 * table): with WEFT_GUARD_BUDGET=3, five guards are all PROTECT, and each
 * band adds exactly three regions (NOACCESS, PAGE_GUARD, the rest split
 * off). Released, the range and its guards are gone, and cannot be
 * guarded. */
void t_hal_mem_guard_budget(void)
{
    setenv("WEFT_GUARD", "protect", 1);
    setenv("WEFT_GUARD_BUDGET", "3", 1);
    size_t ps = hal_page_size(), stride = (HAL_STACK_GUARD_PAGES + 1) * ps, size = 5 * stride + ps;
    char *r = hal_mem_reserve(size, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, size));
    CHECK_EQ(regions(r, size), 1);
    for (int i = 0; i < 5; i++) {
        char *g = r + (size_t)i * stride + ps;
        CHECK_EQ(hal_mem_guard(g, HAL_STACK_GUARD_PAGES * ps), HAL_GUARD_PROTECT);
        expect_band(g);
        CHECK_EQ(regions(r, size), 1 + 3 * (i + 1));
    }
    hal_mem_release(r, size);
    MEMORY_BASIC_INFORMATION m = query(r);
    CHECK_EQ(m.State, MEM_FREE);
    CHECK_GE(m.RegionSize, size);
    CHECK_EQ(hal_mem_guard(r + ps, HAL_STACK_GUARD_PAGES * ps), HAL_GUARD_NONE);
}

/* Guards at scale, as many as Wine's Linux mappings allow comfortably
 * (Wine backs each region with a Linux mapping, and vm.max_map_count is
 * shared by the whole process): 400 bands in one reservation cost exactly
 * three regions each, each band faults where it should, and releasing the
 * reservation takes every band with it. */
void t_hal_mem_guard_maps(void)
{
    unsetenv("WEFT_GUARD");
    unsetenv("WEFT_GUARD_BUDGET");
    const size_t n = 400;
    size_t ps = hal_page_size(), band = HAL_STACK_GUARD_PAGES * ps, stride = band + ps,
           size = n * stride + ps;
    char *r = hal_mem_reserve(size, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, size));
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(hal_mem_guard(r + i * stride + ps, band), HAL_GUARD_PROTECT);
    CHECK_EQ(regions(r, size), 1 + 3 * (long)n);
    for (size_t i = 0; i < n; i += n / 8) {
        char *g = r + i * stride + ps;
        expect_band(g);
        CHECK_EQ(seh_try(touch, g + band - 1), STATUS_GUARD_PAGE_VIOLATION);
        CHECK_EQ(seh_try(touch, g), STATUS_ACCESS_VIOLATION);
    }
    r[0] = 1;
    hal_mem_release(r, size);
    MEMORY_BASIC_INFORMATION m = query(r);
    CHECK_EQ(m.State, MEM_FREE);
    CHECK_GE(m.RegionSize, size);
}

/* ---- The fault handler: chaining to the host's handlers ---- */

static char *fc_page;
static void *volatile fc_addr;
static volatile DWORD fc_code, fc_lasterror;

/* A host's vectored handler, added after weft's: makes the page writable
 * and resumes the faulting write. */
static LONG CALLBACK fc_vectored(EXCEPTION_POINTERS *ep)
{
    EXCEPTION_RECORD *rec = ep->ExceptionRecord;
    if (rec->ExceptionCode != STATUS_ACCESS_VIOLATION || rec->NumberParameters < 2 ||
        (char *)rec->ExceptionInformation[1] != fc_page)
        return EXCEPTION_CONTINUE_SEARCH;
    fc_code = rec->ExceptionCode;
    fc_addr = (void *)rec->ExceptionInformation[1];
    fc_lasterror = GetLastError();
    DWORD old;
    VirtualProtect(fc_page, hal_page_size(), PAGE_READWRITE, &old);
    return EXCEPTION_CONTINUE_EXECUTION;
}

static LONG WINAPI fc_filter(EXCEPTION_POINTERS *ep)
{
    EXCEPTION_RECORD *rec = ep->ExceptionRecord;
    bool ours = rec->ExceptionCode == STATUS_ACCESS_VIOLATION && rec->NumberParameters >= 2 &&
                (char *)rec->ExceptionInformation[1] == fc_page;
    ExitProcess(ours ? 41 : 40);
}

static void fc_signal(int sig)
{
    _exit(sig == SIGSEGV ? 42 : 43);
}

static char *noaccess_page(void)
{
    size_t ps = hal_page_size();
    char *p = hal_mem_reserve(ps, ps);
    CHECK(p != NULL);
    CHECK_OK(hal_mem_commit(p, ps));
    DWORD old;
    CHECK(VirtualProtect(p, ps, PAGE_NOACCESS, &old));
    return p;
}

/* The children: an access violation in a thread that entered weft, or in
 * a task ("task_..."), with the host's unhandled-exception filter, its C
 * runtime signal handler, or nothing. */
static void fc_task(void *arg)
{
    (void)arg;
    touch(fc_page);
    ExitProcess(3); /* the fault was lost */
}

static char *fc_task_stack;

/* A thread that runs fc_task on fc_task_stack. */
static void fc_task_thread(void *arg)
{
    (void)arg;
    struct hal_context home, c;
    CHECK_LT((uintptr_t)fc_task_stack, tib_now().limit);
    hal_ctx_init(&c, fc_task_stack, 64 << 10, fc_task, NULL);
    hal_ctx_switch(&home, &c);
}

static void fc_child(const char *mode)
{
    bool in_task = strncmp(mode, "task_", 5) == 0;
    if (in_task)
        mode += 5;
    if (strcmp(mode, "filter") == 0)
        SetUnhandledExceptionFilter(fc_filter);
    else if (strcmp(mode, "signal") == 0)
        signal(SIGSEGV, fc_signal);
    hal_thread_enter();
    fc_page = noaccess_page();
    if (in_task) {
        /* The task's stack below the thread's: Wine runs the handlers a
         * thread's start registers in its TEB (the one that calls
         * UnhandledExceptionFilter) as soon as the walk of the stack
         * passes their address, so with the task's stack above the
         * thread's it would find them by chance. Windows keeps no such
         * list on x86_64. */
        fc_task_stack = stack_new(64 << 10);
        hal_thread_t t;
        CHECK_OK(hal_thread_start(fc_task_thread, NULL, &t));
        hal_thread_join(t);
    }
    touch(fc_page);
    ExitProcess(2); /* the fault was lost */
}

/* After weft's handler (kern_fault returns: no task here), an exception
 * reaches the host's handler of every kind, or kills the process as it
 * would have without weft: a vectored handler that resumes (and sees the
 * thread's last-error value unchanged), a frame-based handler, an
 * exception that is no fault, the unhandled-exception filter, the C
 * runtime's SIGSEGV handler, and nothing (the process dies of it); the
 * last three also for a fault inside a task. */
void t_hal_fault_chain(void)
{
    const char *m = t_child_mode();
    if (m != NULL)
        fc_child(m);
    hal_thread_enter();
    fc_page = noaccess_page();
    PVOID h = AddVectoredExceptionHandler(0, fc_vectored);
    CHECK(h != NULL);
    SetLastError(0x1234);
    touch(fc_page);
    CHECK(fc_addr == fc_page);
    CHECK_EQ(fc_code, STATUS_ACCESS_VIOLATION);
    CHECK_EQ(fc_lasterror, 0x1234);
    CHECK_EQ(fc_page[0], 1);
    RemoveVectoredExceptionHandler(h);
    char *p = noaccess_page();
    CHECK_EQ(seh_try(touch, p), STATUS_ACCESS_VIOLATION);
    CHECK_EQ(seh_try(raise_custom, NULL), 0xE0057EF7);
    hal_thread_leave();
    CHECK_EQ(t_child_run("hal_fault_chain", "filter"), 41);
    CHECK_EQ(t_child_run("hal_fault_chain", "signal"), 42);
    CHECK_EQ(t_child_run("hal_fault_chain", "none"), STATUS_ACCESS_VIOLATION);
    /* The same from inside a task, which has no thread start below it. */
    CHECK_EQ(t_child_run("hal_fault_chain", "task_filter"), 41);
    CHECK_EQ(t_child_run("hal_fault_chain", "task_signal"), 42);
    CHECK_EQ(t_child_run("hal_fault_chain", "task_none"), STATUS_ACCESS_VIOLATION);
}

/* ---- A context's stack overflow ---- */

static char *so_band; /* [so_band, so_band + band): the guard band */
static uintptr_t so_hi;
static volatile long long so_depth = 1LL << 40;
static char so_report_stack[64 << 10] __attribute__((aligned(16)));

struct so_seen {
    DWORD code;
    uintptr_t addr, sp;
    struct tib_stack tib;
};

/* On a stack of its own: prints what the handler saw and ends the child. */
static void so_report(void *arg)
{
    struct so_seen *s = arg;
    size_t band = HAL_STACK_GUARD_PAGES * hal_page_size();
    uintptr_t b = (uintptr_t)so_band;
    fprintf(stderr,
            "code 0x%lx at %p, handler sp %p; band %p-%p, stack top %p; TIB %p-%p (from %p)\n",
            (unsigned long)s->code, (void *)s->addr, (void *)s->sp, (void *)b, (void *)(b + band),
            (void *)so_hi, (void *)s->tib.limit, (void *)s->tib.base, (void *)s->tib.dealloc);
    fflush(NULL);
    bool in_band = s->addr >= b && s->addr < b + band;
    bool on_task = s->sp > b + hal_page_size() && s->sp < so_hi;
    bool tib_task = s->tib.base == so_hi && s->tib.dealloc == b;
    ExitProcess(!in_band                           ? 9
                : s->code != STATUS_STACK_OVERFLOW ? 6
                : !on_task                         ? 8
                : !tib_task                        ? 5
                                                   : 7);
}

static LONG CALLBACK so_vectored(EXCEPTION_POINTERS *ep)
{
    EXCEPTION_RECORD *rec = ep->ExceptionRecord;
    struct so_seen s;
    s.code = rec->ExceptionCode;
    if (s.code != STATUS_STACK_OVERFLOW && s.code != STATUS_GUARD_PAGE_VIOLATION &&
        s.code != STATUS_ACCESS_VIOLATION)
        return EXCEPTION_CONTINUE_SEARCH;
    s.addr = rec->NumberParameters >= 2 ? (uintptr_t)rec->ExceptionInformation[1] : 0;
    s.sp = (uintptr_t)&s;
    s.tib = tib_now();
    hal_win32_call_on(so_report, &s, so_report_stack + sizeof so_report_stack);
    return EXCEPTION_CONTINUE_SEARCH;
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

static void so_child(void)
{
    unsetenv("WEFT_GUARD");
    hal_thread_enter();
    CHECK(AddVectoredExceptionHandler(0, so_vectored) != NULL); /* after weft's */
    size_t ps = hal_page_size(), size = 64 << 10, band = HAL_STACK_GUARD_PAGES * ps;
    char *r = hal_mem_reserve(band + size, ps);
    CHECK(r != NULL);
    CHECK_OK(hal_mem_commit(r, band + size));
    CHECK_NE(hal_mem_guard(r, band), HAL_GUARD_NONE);
    so_band = r;
    so_hi = (uintptr_t)r + band + size;
    static char zero;
    struct hal_context home, c;
    hal_ctx_init(&c, r + band, size, so_entry, &zero);
    hal_ctx_switch(&home, &c);
    ExitProcess(1);
}

/* A context that overflows its stack runs into the guard band while the
 * TIB describes the task's stack, so Windows reports a stack overflow
 * (not a stray guard-page hit) at an address in the band, with the
 * exception frame and the handlers still on the task's stack above the
 * NOACCESS page. weft's handler passes it on (no task here). */
void t_hal_stack_overflow(void)
{
    if (t_child_mode() != NULL)
        so_child();
    CHECK_EQ(t_child_run("hal_stack_overflow", "overflow"), 7);
}

/* ---- Threads ---- */

/* A committed 64 KiB rescue stack. */
static void expect_rescue(void *p)
{
    CHECK(p != NULL);
    MEMORY_BASIC_INFORMATION m = query(p);
    CHECK(m.AllocationBase == p);
    CHECK_EQ(m.State, MEM_COMMIT);
    CHECK_EQ(m.Protect, PAGE_READWRITE);
    CHECK_EQ(m.RegionSize, 64 << 10);
}

/* A rescue stack that its thread freed. */
static void expect_rescue_gone(void *p)
{
    CHECK(p != NULL);
    CHECK_EQ(query(p).State, MEM_FREE);
}

struct th {
    void *got;
    void *rescue;
    struct tib_stack stack;
};

static volatile LONG th_arrived;

static void th_fn(void *arg)
{
    struct th *t = arg;
    hal_thread_set(t);
    t->got = hal_thread_get();
    t->rescue = hal_win32_rescue_stack();
    expect_rescue(t->rescue);
    t->stack = tib_now();
    tib_check_kernel32(t->stack);
    /* All four alive at once, so that no thread's rescue stack can take
     * the place another one freed. */
    InterlockedIncrement(&th_arrived);
    while (th_arrived < 4)
        Sleep(1);
}

/* Started threads have their own kern pointer, a 1 MiB stack and a 64 KiB
 * rescue stack, freed when they end; enter/leave nest, and give a host
 * thread a rescue stack from the outermost enter to the matching leave;
 * none of these change the thread's last-error value. */
void t_hal_threads(void)
{
    struct th th[4];
    hal_thread_t t[4];
    memset(th, 0, sizeof th);
    SetLastError(777);
    hal_thread_set(&th[0]);
    CHECK_EQ(GetLastError(), 777);
    for (int i = 0; i < 4; i++)
        CHECK_OK(hal_thread_start(th_fn, &th[i], &t[i]));
    CHECK_EQ(GetLastError(), 777);
    for (int i = 0; i < 4; i++) {
        hal_thread_join(t[i]);
        CHECK(th[i].got == &th[i]);
        expect_rescue_gone(th[i].rescue);
        for (int j = 0; j < i; j++)
            CHECK(th[j].rescue != th[i].rescue);
        CHECK_EQ(th[i].stack.base - th[i].stack.dealloc, 1 << 20);
    }
    CHECK(hal_thread_get() == &th[0]);
    CHECK_EQ(GetLastError(), 777);

    CHECK(hal_win32_rescue_stack() == NULL);
    hal_thread_enter();
    void *ours = hal_win32_rescue_stack();
    expect_rescue(ours);
    hal_thread_enter();
    CHECK(hal_win32_rescue_stack() == ours);
    hal_thread_leave();
    CHECK(hal_win32_rescue_stack() == ours);
    expect_rescue(ours);
    hal_thread_leave();
    CHECK(hal_win32_rescue_stack() == NULL);
    expect_rescue_gone(ours);
    CHECK_EQ(GetLastError(), 777);
}

/* ---- The error stream ---- */

#define WE_SIZE 300000

static char we_byte(int i)
{
    return (char)(i * 7 + i / 251);
}

/* The writer: everything to its stderr (a pipe), non-blocking if asked. */
static void we_child(const char *mode)
{
    HANDLE err = GetStdHandle(STD_ERROR_HANDLE);
    if (strcmp(mode, "nowait") == 0) {
        DWORD pm = PIPE_READMODE_BYTE | PIPE_NOWAIT;
        if (!SetNamedPipeHandleState(err, &pm, NULL, NULL))
            ExitProcess(4);
    }
    char *buf = malloc(WE_SIZE);
    if (buf == NULL)
        ExitProcess(5);
    for (int i = 0; i < WE_SIZE; i++)
        buf[i] = we_byte(i);
    SetLastError(4321);
    hal_write_err(buf, WE_SIZE);
    ExitProcess(GetLastError() == 4321 ? 0 : 3);
}

/* hal_write_err writes everything, across short writes, to a slow reader
 * through a small pipe, blocking or not (PIPE_NOWAIT: a full pipe takes
 * nothing), and keeps the thread's last-error value. */
void t_hal_write_err(void)
{
    const char *m = t_child_mode();
    if (m != NULL)
        we_child(m);
    static const char *const modes[] = {"wait", "nowait"};
    for (int k = 0; k < 2; k++) {
        HANDLE rd, wr;
        CHECK(CreatePipe(&rd, &wr, NULL, 4096));
        HANDLE proc = t_child_start("hal_write_err", modes[k], wr);
        CloseHandle(wr);
        hal_sleep_ns(50 * MS);
        char *got = malloc(WE_SIZE + 1);
        CHECK(got != NULL);
        size_t n = 0;
        for (;;) {
            DWORD r = 0;
            if (!ReadFile(rd, got + n, (DWORD)(WE_SIZE + 1 - n), &r, NULL)) {
                CHECK_EQ(GetLastError(), ERROR_BROKEN_PIPE);
                break;
            }
            n += r;
            if (n % 8192 < r)
                hal_sleep_ns(100000);
            if (n == WE_SIZE + 1)
                break;
        }
        CloseHandle(rd);
        DWORD code = t_child_wait(proc);
        fprintf(stderr, "%s: child exited %lu, %zu bytes read\n", modes[k], (unsigned long)code, n);
        CHECK_EQ(code, 0);
        CHECK_EQ(n, WE_SIZE);
        for (int i = 0; i < WE_SIZE; i++)
            CHECK_EQ(got[i], we_byte(i));
        free(got);
    }
}

#else /* not _WIN32 */
T_NOT_BUILT(t_hal_seh_task, "a Windows case (frame-based exception handling inside a task)")
#endif
