/* SPDX-License-Identifier: MIT */
/*
 * t_win32.c — cases for the Windows port alone (F_WINONLY in cases.h; on
 * other targets they skip): the poller's timeout paths of
 * hal/win32/timer_hr.c.
 *
 * Wine lacks the wait completion packets, so the real path cannot run
 * here; the emulated path drives the same code through a model of them,
 * and hal_win32_timer_counter tells which branches ran:
 *   timer_mode_emulated  every branch of the arming sequence and of the
 *                        packets' handling, taken on purpose through the
 *                        HAL alone; then 100 µs sleeps under weft_run,
 *                        which must end by the timer's packet, not by the
 *                        port's timeout.
 *   timer_mode_fallback  the millisecond path, measured (printed) with
 *                        generous bounds: Wine's waits tick at ~1.1 ms.
 *   timer_mode_bad       a bad WEFT_POLLER_TIMER, and waitpacket where
 *                        ntdll lacks the exports, fail weft_run clearly.
 * And the port's blocking calls:
 *   block_lasterror      the last-error value (GetLastError) belongs to
 *                        the task, as errno does (block_errno): it
 *                        survives weft_block_end and switches, even when
 *                        the task resumes on another thread;
 * and the preemption by suspension of hal/win32/preempt.c:
 *   preempt_dll_loop     a task inside a DLL is never redirected;
 *   preempt_exit_storm   exit() in a storm of suspensions never hangs;
 *   preempt_lasterror    errno and the last-error value survive a
 *                        preemption that moves a spinning task to
 *                        another thread.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"

#ifdef _WIN32
#include <windows.h>

#include "hal/win32/win32.h"

#define MS 1000000LL

static int64_t cnt(int which)
{
    return hal_win32_timer_counter(which);
}

struct snap {
    int64_t v[HAL_WIN32_TC_N];
};

static void snap_take(struct snap *s)
{
    for (int i = 0; i < HAL_WIN32_TC_N; i++)
        s->v[i] = cnt(i);
}

static int64_t since(const struct snap *s, int which)
{
    return cnt(which) - s->v[which];
}

static const char *const tc_names[HAL_WIN32_TC_N] = {
    "cancel_success", "cancel_cancelled", "cancel_pending", "assoc_armed",   "assoc_fired",
    "gave_up",        "woke_timer",       "woke_timeout",   "woke_backstop", "woke_wake",
    "stolen_timer",   "stolen_wake",      "emu_posted",     "emu_race"};

static void snap_print(const char *what, const struct snap *s)
{
    fprintf(stderr, "%s:", what);
    for (int i = 0; i < HAL_WIN32_TC_N; i++)
        fprintf(stderr, " %s=%lld", tc_names[i], (long long)since(s, i));
    fprintf(stderr, "\n");
}

static int64_t now_ns(void)
{
    return hal_now_ns();
}

/* One blocking poll: returns how long it took. */
static int64_t wait_took(int64_t timeout_ns)
{
    struct hal_poll_event ev[8];
    int64_t t0 = now_ns();
    CHECK_EQ(hal_poll_wait(ev, 8, timeout_ns), 0); /* nothing is registered */
    return now_ns() - t0;
}

/* The sequence that takes every branch once, knobs off. */
static void emulated_branches(void)
{
    struct snap s;
    snap_take(&s);
    CHECK_OK(hal_poll_init());
    CHECK_EQ(hal_poll_timer_mode(), HAL_WIN32_TIMER_EMULATED);

    /* A fresh packet: cancel finds nothing associated; the 1 ms timer's
     * packet ends the wait (the port's timeout is 2 ms later; retried
     * while the port wins: Wine starts the thread pool's wait thread on
     * the first registration, which can take longer on a loaded machine). */
    for (int i = 0; i < 200 && since(&s, HAL_WIN32_TC_WOKE_TIMER) == 0; i++)
        wait_took(1 * MS);
    snap_print("first timer", &s);
    CHECK_GE(since(&s, HAL_WIN32_TC_CANCEL_CANCELLED), 1);
    CHECK_GE(since(&s, HAL_WIN32_TC_ASSOC_ARMED), 1);
    CHECK_GE(since(&s, HAL_WIN32_TC_EMU_POSTED), 1);
    CHECK_GE(since(&s, HAL_WIN32_TC_WOKE_TIMER), 1);

    /* A wake ends a long wait at once, its timer still associated; the
     * next wait cancels that live association. */
    hal_poll_wake();
    CHECK_LT(wait_took(2000 * MS), 1000 * MS);
    CHECK_GE(since(&s, HAL_WIN32_TC_WOKE_WAKE), 1);
    int64_t ok0 = since(&s, HAL_WIN32_TC_CANCEL_SUCCESS);
    hal_poll_wake();
    CHECK_LT(wait_took(200 * MS), 150 * MS);
    CHECK_EQ(since(&s, HAL_WIN32_TC_CANCEL_SUCCESS), ok0 + 1);

    /* The 200 ms timer fires while no thread blocks: a timeout-0 poll
     * dequeues its packet and hands it on as a wake-up, which the next
     * timeout-0 poll hands on again, and a blocking wait takes at once. */
    Sleep(400);
    int64_t stolen = since(&s, HAL_WIN32_TC_STOLEN_TIMER);
    for (int i = 0; i < 100 && since(&s, HAL_WIN32_TC_STOLEN_TIMER) == stolen; i++) {
        CHECK_LT(wait_took(0), 1000 * MS);
        Sleep(10);
    }
    CHECK_EQ(since(&s, HAL_WIN32_TC_STOLEN_TIMER), stolen + 1);
    int64_t sw = since(&s, HAL_WIN32_TC_STOLEN_WAKE);
    wait_took(0);
    CHECK_EQ(since(&s, HAL_WIN32_TC_STOLEN_WAKE), sw + 1);
    int64_t ww = since(&s, HAL_WIN32_TC_WOKE_WAKE);
    CHECK_LT(wait_took(5000 * MS), 1000 * MS);
    CHECK_EQ(since(&s, HAL_WIN32_TC_WOKE_WAKE), ww + 1);

    /* A timeout with no timer: the port's own. */
    int64_t wt = since(&s, HAL_WIN32_TC_WOKE_TIMEOUT);
    hal_win32_timer_emu_force(1, 0, 0); /* every cancel: PENDING */
    CHECK_GE(wait_took(1 * MS), 1 * MS);
    hal_win32_timer_emu_force(0, 0, 0);
    CHECK_GE(since(&s, HAL_WIN32_TC_CANCEL_PENDING), 1);
    CHECK_EQ(since(&s, HAL_WIN32_TC_WOKE_TIMEOUT), wt + 1);

    /* The timer fires during association: the wait returns at once. */
    int64_t af = since(&s, HAL_WIN32_TC_ASSOC_FIRED);
    hal_win32_timer_emu_force(0, 1, 0);
    CHECK_LT(wait_took(3000 * MS), 1000 * MS);
    hal_win32_timer_emu_force(0, 0, 0);
    CHECK_EQ(since(&s, HAL_WIN32_TC_ASSOC_FIRED), af + 1);
    /* and the next association works again */
    int64_t aa = since(&s, HAL_WIN32_TC_ASSOC_ARMED);
    wait_took(1 * MS);
    CHECK_EQ(since(&s, HAL_WIN32_TC_ASSOC_ARMED), aa + 1);

    /* An unexpected status: said once, then the fallback for the run. */
    hal_win32_timer_emu_force(0, 0, 1);
    fprintf(stderr, "an association fails on purpose now:\n");
    /* (a cancel may race the last timer's callback: PENDING, no attempt) */
    for (int i = 0; i < 20 && since(&s, HAL_WIN32_TC_GAVE_UP) == 0; i++)
        wait_took(1 * MS);
    hal_win32_timer_emu_force(0, 0, 0);
    CHECK_EQ(since(&s, HAL_WIN32_TC_GAVE_UP), 1);
    CHECK_EQ(hal_poll_timer_mode(), HAL_WIN32_TIMER_FALLBACK);
    aa = since(&s, HAL_WIN32_TC_ASSOC_ARMED);
    wait_took(1 * MS);
    CHECK_EQ(since(&s, HAL_WIN32_TC_ASSOC_ARMED), aa);
    hal_poll_fini();

    snap_print("branches", &s);
    for (int i = 0; i < HAL_WIN32_TC_N; i++)
        /* races the test cannot force: the model's cancel meeting its
         * callback, and the port's timeout beating an armed timer */
        if (i != HAL_WIN32_TC_EMU_RACE && i != HAL_WIN32_TC_WOKE_BACKSTOP)
            CHECK_GE(since(&s, i), 1);
}

/* ---- sleeps under weft_run ---- */

struct sleeps {
    int n;
    int64_t dur_ns;
    int64_t took[200];
};

static void sleeps_main(void *arg)
{
    struct sleeps *sl = arg;
    for (int i = 0; i < sl->n; i++) {
        int64_t t0 = weft_now();
        CHECK_OK(weft_sleep(sl->dur_ns));
        sl->took[i] = weft_now() - t0;
        CHECK_GE(sl->took[i], sl->dur_ns); /* never early */
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Runs n sleeps of dur_ns on procs procs; returns the median overshoot
 * and stores the worst in *worst. */
static int64_t sleeps_run(int procs, int n, int64_t dur_ns, int64_t *worst)
{
    static struct sleeps sl;
    memset(&sl, 0, sizeof sl);
    sl.n = n;
    sl.dur_ns = dur_ns;
    t_run(sleeps_main, &sl, procs);
    qsort(sl.took, (size_t)n, sizeof sl.took[0], cmp64);
    *worst = sl.took[n - 1] - dur_ns;
    return sl.took[n / 2] - dur_ns;
}

void t_timer_mode_emulated(void)
{
    setenv("WEFT_POLLER_TIMER", "emulated", 1);
    emulated_branches();

    /* 100 µs sleeps: with a timer path active, the blocking waits end by
     * the timer's packet; the port's timeout (the backstop) ends few of
     * those that armed it. Waits that went without the timer (the model
     * answered PENDING while the thread pool was slow to run its
     * callback) end by the port's timeout, and are not counted here. */
    static const int procs[2] = {1, 2};
    for (int p = 0; p < 2; p++) {
        struct snap s;
        snap_take(&s);
        int64_t worst, med = sleeps_run(procs[p], 100, 100000, &worst);
        fprintf(stderr,
                "emulated, procs %d: 100 us sleeps overshoot median %lld us, worst %lld us\n",
                procs[p], (long long)med / 1000, (long long)worst / 1000);
        snap_print("sleeps", &s);
        int64_t by_timer = since(&s, HAL_WIN32_TC_WOKE_TIMER);
        int64_t by_backstop = since(&s, HAL_WIN32_TC_WOKE_BACKSTOP);
        CHECK_EQ(since(&s, HAL_WIN32_TC_GAVE_UP), 0);
        CHECK_GE(by_timer, 25);
        CHECK_LE(by_backstop * 10, by_timer);
        CHECK_LT(med, 50 * MS); /* generous: Wine's timers tick at ~1.1 ms */
    }
    unsetenv("WEFT_POLLER_TIMER");
}

void t_timer_mode_fallback(void)
{
    setenv("WEFT_POLLER_TIMER", "fallback", 1);
    static const int procs[2] = {1, 2};
    for (int p = 0; p < 2; p++) {
        struct snap s;
        snap_take(&s);
        int64_t worst, med = sleeps_run(procs[p], 100, 100000, &worst);
        fprintf(stderr,
                "fallback, procs %d: 100 us sleeps overshoot median %lld us, worst %lld us\n",
                procs[p], (long long)med / 1000, (long long)worst / 1000);
        snap_print("sleeps", &s);
        CHECK_EQ(hal_poll_timer_mode(), HAL_WIN32_TIMER_FALLBACK);
        /* No timer at all: the port's timeouts end the waits. */
        CHECK_EQ(since(&s, HAL_WIN32_TC_ASSOC_ARMED) + since(&s, HAL_WIN32_TC_WOKE_TIMER) +
                     since(&s, HAL_WIN32_TC_WOKE_BACKSTOP),
                 0);
        CHECK_GE(since(&s, HAL_WIN32_TC_WOKE_TIMEOUT), 50);
        /* Generous (at least 2 ms, docs/platforms.md "Test tolerances"):
         * a millisecond, rounded up, on a loaded machine. */
        CHECK_LT(med, 50 * MS);
    }
    unsetenv("WEFT_POLLER_TIMER");
}

static void noop_main(void *arg)
{
    (void)arg;
}

void t_timer_mode_bad(void)
{
    weft_config cfg = {.procs = 1};
    setenv("WEFT_POLLER_TIMER", "highres", 1);
    fprintf(stderr, "a bad value now:\n");
    CHECK_EQ(weft_run(noop_main, NULL, &cfg), WEFT_EINVAL);
    HMODULE nt = GetModuleHandleW(L"ntdll.dll");
    int have = nt != NULL && GetProcAddress(nt, "NtCreateWaitCompletionPacket") != NULL &&
               GetProcAddress(nt, "NtAssociateWaitCompletionPacket") != NULL &&
               GetProcAddress(nt, "NtCancelWaitCompletionPacket") != NULL;
    setenv("WEFT_POLLER_TIMER", "waitpacket", 1);
    fprintf(stderr, "waitpacket, with the exports %s:\n", have ? "present" : "missing");
    CHECK_EQ(weft_run(noop_main, NULL, &cfg), have ? 0 : WEFT_EINVAL);
    setenv("WEFT_POLLER_TIMER", "fallback", 1);
    CHECK_OK(weft_run(noop_main, NULL, &cfg));
    setenv("WEFT_POLLER_TIMER", "emulated", 1);
    CHECK_OK(weft_run(noop_main, NULL, &cfg));
    unsetenv("WEFT_POLLER_TIMER");
    CHECK_OK(weft_run(noop_main, NULL, &cfg));
    /* The default: the wait packets where they exist (unless the timer
     * refuses the high-resolution flag, before Windows 10 1803). */
    int m = hal_poll_timer_mode();
    if (have)
        CHECK(m == HAL_WIN32_TIMER_WAITPACKET || m == HAL_WIN32_TIMER_FALLBACK);
    else
        CHECK_EQ(m, HAL_WIN32_TIMER_FALLBACK);
}

/* ---- block_lasterror ---- */

static atomic_long lasterror_moves;
static weft_waitgroup lasterror_wg;

static void lasterror_task(void *arg)
{
    DWORD mine = 0x20000000u + 0x10000u * (DWORD)(intptr_t)arg;
    for (DWORD i = 0; i < 200; i++) {
        DWORD before = GetCurrentThreadId();
        weft_block_begin();
        /* 1 ms: long enough for the monitor to retake the proc, so that
         * weft_block_end may find none free and queue the task. */
        Sleep(i % 10 == 0 ? 1 : 0);
        SetLastError(mine + i);
        weft_block_end();
        CHECK_EQ(GetLastError(), mine + i);
        /* Any value survives switches across threads: a yield (a direct
         * switch) and a park on a channel (through the scheduler). */
        SetLastError(mine);
        weft_yield();
        CHECK_EQ(GetLastError(), mine);
        SetLastError(mine + 1);
        weft_sleep(i % 4 == 0 ? 100000 : 0);
        CHECK_EQ(GetLastError(), mine + 1);
        if (before != GetCurrentThreadId())
            atomic_fetch_add(&lasterror_moves, 1);
    }
    CHECK_OK(weft_wg_done(&lasterror_wg));
}

static void lasterror_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_add(&lasterror_wg, 8));
    for (intptr_t i = 0; i < 8; i++)
        CHECK_OK(weft_go(lasterror_task, (void *)i));
    CHECK_OK(weft_wg_wait(&lasterror_wg));
}

void t_block_lasterror(void)
{
    for (int p = 1; p <= 4; p *= 2) {
        memset(&lasterror_wg, 0, sizeof lasterror_wg);
        weft_config cfg = {.procs = p};
        CHECK_OK(weft_run(lasterror_main, NULL, &cfg));
    }
    fprintf(stderr, "tasks resumed on another thread: %ld times\n", atomic_load(&lasterror_moves));
    CHECK_GT(atomic_load(&lasterror_moves), 0);
}

/* ---- preempt_dll_loop: never redirected inside a DLL ----
 *
 * A task spends nearly all its time in msvcrt's memset (a DLL: the call
 * goes through the import thunk) on an 8 MiB buffer, with a short slice so
 * that the monitor suspends it again and again. Every suspension that finds
 * it in the DLL must be declined (kern_preempt_ok: not the program's code);
 * one that finds it between two calls, in the test's own loop, may redirect
 * it. The port counts redirections whose RIP lay outside the program's
 * image, from the PE headers (HAL_WIN32_PC_FOREIGN): there must be none. */
#define DLL_BUF (8u << 20)
static void *(*volatile dll_memset)(void *, int, size_t) = memset;

struct dll_ctx {
    unsigned char *buf;
    int64_t deadline;
    long calls;
};

static void dll_task(void *arg)
{
    struct dll_ctx *c = arg;
    long n = 0;
    while (weft_now() < c->deadline) {
        dll_memset(c->buf, (int)(n & 0xff), DLL_BUF);
        CHECK_EQ(c->buf[DLL_BUF - 1], (unsigned char)(n & 0xff));
        n++;
    }
    c->calls = n;
}

void t_preempt_dll_loop(void)
{
    t_need_async_preempt();
    static struct dll_ctx c;
    c.buf = malloc(DLL_BUF);
    CHECK(c.buf != NULL);
    int64_t r0 = hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED);
    int64_t d0 = hal_win32_preempt_count(HAL_WIN32_PC_DECLINED);
    int64_t f0 = hal_win32_preempt_count(HAL_WIN32_PC_FOREIGN);
    c.deadline = hal_now_ns() + 1500 * MS;
    weft_config cfg = {.procs = 1, .timeslice_ns = 200000};
    CHECK_OK(weft_run(dll_task, &c, &cfg));
    int64_t r = hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED) - r0;
    int64_t d = hal_win32_preempt_count(HAL_WIN32_PC_DECLINED) - d0;
    int64_t f = hal_win32_preempt_count(HAL_WIN32_PC_FOREIGN) - f0;
    fprintf(stderr,
            "%ld memset calls of 8 MiB: %lld suspensions declined, %lld redirected, %lld of "
            "them outside the program's image\n",
            c.calls, (long long)d, (long long)r, (long long)f);
    free(c.buf);
    CHECK_GE(d, 20); /* the monitor did find it in the DLL, many times */
    CHECK_EQ(f, 0);
}

/* ---- preempt_exit_storm: exit() in a storm of suspensions never hangs ----
 *
 * SuspendThread only asks: a thread the monitor suspends may still run on
 * into exit() and ExitProcess, which ends the monitor, and then stop for
 * good with nobody left to resume it. Exit takes the suspension lock first
 * (hal/win32/preempt.c). The case starts itself EXIT_RUNS times as a child
 * (WEFT_TEST_EXIT_CHILD=k): the child spins four tasks on four procs with a
 * 100 us slice, waits until the monitor has redirected threads a few times,
 * and then calls exit(EXIT_CODE) from a spinning task (odd k) or from the
 * main task (even k) a few ms later. Each child must end within
 * EXIT_WAIT_MS (times the slack of the target) with EXIT_CODE. */
#define EXIT_RUNS 20
#define EXIT_CODE 42
#define EXIT_WAIT_MS 20000

static atomic_int exit_now;

static void exit_spinner(void *arg)
{
    int who = (int)(intptr_t)arg;
    uint64_t x = 1;
    for (;;) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        if (atomic_load_explicit(&exit_now, memory_order_relaxed) == who)
            exit(EXIT_CODE + (int)(x & 0));
    }
}

static void exit_child_main(void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 1; i <= 4; i++)
        CHECK_OK(weft_go(exit_spinner, (void *)(intptr_t)i));
    int64_t deadline = hal_now_ns() + 5000 * MS;
    while (hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED) < 5 + k && hal_now_ns() < deadline)
        CHECK_OK(weft_sleep(MS));
    if (hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED) < 5) {
        fprintf(stderr, "child %d: no storm after 5 s\n", k);
        exit(EXIT_CODE + 1);
    }
    CHECK_OK(weft_sleep((int64_t)(k % 7) * MS));
    if (k % 2)
        atomic_store(&exit_now, 1 + k % 4);
    else
        exit(EXIT_CODE);
    for (;;)
        weft_yield();
}

void t_preempt_exit_storm(void)
{
    const char *child = getenv("WEFT_TEST_EXIT_CHILD");
    if (child != NULL) {
        t_need_async_preempt();
        weft_config cfg = {.procs = 4, .timeslice_ns = 100000};
        weft_run(exit_child_main, (void *)(intptr_t)atoi(child), &cfg);
        fprintf(stderr, "child: weft_run returned\n");
        exit(EXIT_CODE + 2);
    }
    t_need_async_preempt();
    wchar_t exe[MAX_PATH];
    DWORD len = GetModuleFileNameW(NULL, exe, MAX_PATH);
    CHECK(len > 0 && len < MAX_PATH);
    for (int k = 0; k < EXIT_RUNS; k++) {
        char v[16];
        snprintf(v, sizeof v, "%d", k);
        CHECK(SetEnvironmentVariableA("WEFT_TEST_EXIT_CHILD", v));
        wchar_t cmd[MAX_PATH + 64];
        swprintf(cmd, sizeof cmd / sizeof cmd[0], L"\"%ls\" run preempt_exit_storm", exe);
        STARTUPINFOW si = {.cb = sizeof si};
        PROCESS_INFORMATION pi;
        int64_t t0 = hal_now_ns();
        CHECK(CreateProcessW(exe, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi));
        DWORD w = WaitForSingleObject(pi.hProcess, (DWORD)(EXIT_WAIT_MS * t_slack()));
        DWORD code = 0;
        if (w == WAIT_OBJECT_0)
            GetExitCodeProcess(pi.hProcess, &code);
        else
            TerminateProcess(pi.hProcess, 99);
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
        fprintf(stderr, "child %d: %s, exit code %lu, %.0f ms\n", k,
                w == WAIT_OBJECT_0 ? "ended" : "HUNG (killed)", (unsigned long)code,
                (hal_now_ns() - t0) / 1e6);
        CHECK_EQ(w, WAIT_OBJECT_0);
        CHECK_EQ(code, EXIT_CODE);
    }
    SetEnvironmentVariableA("WEFT_TEST_EXIT_CHILD", NULL);
}

/* ---- preempt_lasterror: errno and GetLastError survive a preemption ----
 *
 * Six tasks spin on two procs with a short slice, so that the monitor
 * preempts them and other threads steal them. Each sets its own errno and
 * last-error value, then spins with no weft call, looking only at its
 * thread's id (a kernel32 call, which changes neither value); when the id
 * changed, a preemption moved it, and both values must still be its own.
 * GetLastError is read first: reading errno is a call into the C runtime,
 * which may clear the last-error value. */
#define LE_TASKS 6
#define LE_MOVES 40

static atomic_long le_moves, le_spins;
static int64_t le_deadline;
static weft_waitgroup le_wg;

static void le_task(void *arg)
{
    DWORD mine = 0x30000000u + 0x100u * (DWORD)(intptr_t)arg;
    int emine = 1000 + (int)(intptr_t)arg;
    uint64_t x = 1;
    for (DWORD round = 0; atomic_load(&le_moves) < LE_MOVES && weft_now() < le_deadline; round++) {
        errno = emine;
        SetLastError(mine + round);
        DWORD tid = GetCurrentThreadId();
        long spins = 0;
        while (GetCurrentThreadId() == tid && spins < 2000000) {
            for (int k = 0; k < 100; k++)
                x = x * 6364136223846793005ull + 1442695040888963407ull;
            spins++;
        }
        DWORD last = GetLastError();
        int e = errno;
        CHECK_EQ(last, mine + round);
        CHECK_EQ(e, emine);
        atomic_fetch_add(&le_spins, spins);
        if (GetCurrentThreadId() != tid)
            atomic_fetch_add(&le_moves, 1);
        weft_yield();
    }
    if (x == 42)
        fprintf(stderr, "(keeps x alive)\n");
    CHECK_OK(weft_wg_done(&le_wg));
}

static void le_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_add(&le_wg, LE_TASKS));
    for (intptr_t i = 0; i < LE_TASKS; i++)
        CHECK_OK(weft_go(le_task, (void *)i));
    CHECK_OK(weft_wg_wait(&le_wg));
}

void t_preempt_lasterror(void)
{
    t_need_async_preempt();
    int64_t r0 = hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED);
    le_deadline = hal_now_ns() + 10000 * MS * t_slack();
    weft_config cfg = {.procs = 2, .timeslice_ns = 500000};
    CHECK_OK(weft_run(le_main, NULL, &cfg));
    int64_t r = hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED) - r0;
    fprintf(stderr, "%ld moves by preemption, %lld redirections\n", atomic_load(&le_moves),
            (long long)r);
    CHECK_GE(atomic_load(&le_moves), 1);
}

#else /* not Windows: F_WINONLY cases */
T_NOT_BUILT(t_timer_mode_emulated, "Windows-only case (hal/win32/timer_hr.c)")
T_NOT_BUILT(t_timer_mode_fallback, "Windows-only case (hal/win32/timer_hr.c)")
T_NOT_BUILT(t_timer_mode_bad, "Windows-only case (hal/win32/timer_hr.c)")
T_NOT_BUILT(t_block_lasterror, "Windows-only case (GetLastError)")
T_NOT_BUILT(t_preempt_dll_loop, "Windows-only case (hal/win32/preempt.c)")
T_NOT_BUILT(t_preempt_exit_storm, "Windows-only case (hal/win32/preempt.c)")
T_NOT_BUILT(t_preempt_lasterror, "Windows-only case (hal/win32/preempt.c)")
#endif
