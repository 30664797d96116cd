/* SPDX-License-Identifier: MIT */
/*
 * t_block.c — blocking calls (kern/block.c): a proc is handed off while its
 * task blocks in the OS, errno follows the task across threads, a locked
 * task stays on its thread, a blocking call is not a deadlock, a call that
 * lost its proc never takes back the proc of a later call (block_aba), and
 * weft_run returns while a task is in a blocking call (block_abandon*).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kern/proc.h" /* white box: a proc's holder (block_aba), k_orphans_live */
#include "tests/check.h"

static pthread_t (*volatile self_fn)(void) = pthread_self; /* not const-folded */

/* errno through a call the compiler cannot see into: glibc's errno address
 * is "const", so a plain errno read after a switch may use the address of
 * the thread the task ran on before (see weft_errno in weft.h). */
#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#include <windows.h>
#define pipe(fds) _pipe((fds), 4096, _O_BINARY)
static int *(*volatile errno_loc)(void) = _errno;
#else
static int *(*volatile errno_loc)(void) = __errno_location;
#endif
#define ERRNO (*errno_loc())

static void nap_ns(int64_t ns)
{
#ifdef _WIN32
    /* Whole milliseconds, rounded up: with mingw's nanosleep a 200 µs nap
     * was never long enough for the monitor to retake the proc
     * (block_errno saw its task move 0 times in 3 runs under Wine; 16-24
     * with Sleep). */
    Sleep(ns > 0 ? (DWORD)((ns + 999999) / 1000000) : 0);
#else
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
#endif
}

/* ---- block_handoff: procs 1, a 1 s raw read does not stall others ---- */

struct handoff {
    int fds[2];
    atomic_int done;
    int64_t max_gap;
    long iters;
    weft_waitgroup wg;
};

static void *late_writer(void *arg)
{
    struct handoff *h = arg;
    nap_ns(1050000000); /* 50 ms warm-up + 1 s */
    CHECK_EQ(write(h->fds[1], "x", 1), 1);
    return NULL;
}

static void counter_task(void *arg)
{
    struct handoff *h = arg;
    uint64_t x = 1;
    int64_t prev = weft_now();
    while (!atomic_load(&h->done)) {
        for (int k = 0; k < 50; k++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        weft_yield();
        int64_t now = weft_now();
        if (now - prev > h->max_gap)
            h->max_gap = now - prev;
        prev = now;
        h->iters++;
    }
    h->iters += (long)(x & 1);
    CHECK_OK(weft_wg_done(&h->wg));
}

static void handoff_main(void *arg)
{
    struct handoff *h = arg;
    CHECK_OK(weft_wg_add(&h->wg, 1));
    CHECK_OK(weft_go(counter_task, h));
    weft_block_begin();
    nap_ns(50000000); /* warm-up: the counter runs alone */
    weft_block_end();
    h->max_gap = 0;
    char c = 0;
    int64_t t0 = weft_now();
    weft_block_begin();
    ssize_t n = read(h->fds[0], &c, 1);
    weft_block_end();
    int64_t took = weft_now() - t0;
    atomic_store(&h->done, 1);
    CHECK_OK(weft_wg_wait(&h->wg));
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    fprintf(stderr,
            "read blocked %.1f ms; counting task: %ld iterations, longest gap %.3f ms; "
            "%llu retakes\n",
            took / 1e6, h->iters, h->max_gap / 1e6, (unsigned long long)st.syscall_retakes);
    CHECK_EQ(n, 1);
    CHECK_EQ(c, 'x');
    CHECK_GE(st.syscall_retakes, 1);
    /* Starvation would be ~1 s (the whole read); the bench measures the
     * real figure. The bound only has to tell the two apart on a loaded
     * machine (seen: gaps of 148 ms natively at a load of 8 on 2 cores,
     * 166 ms under qemu). */
    CHECK_LT(h->max_gap, 500000000);
}

void t_block_handoff(void)
{
    static struct handoff h;
    memset(&h, 0, sizeof h);
    CHECK_OK(pipe(h.fds));
    pthread_t w;
    CHECK_OK(pthread_create(&w, NULL, late_writer, &h));
    weft_config cfg = {.procs = 1};
    CHECK_OK(weft_run(handoff_main, &h, &cfg));
    CHECK_OK(pthread_join(w, NULL));
    close(h.fds[0]);
    close(h.fds[1]);
}

/* ---- block_errno: errno belongs to the task ---- */

static atomic_long errno_moves;
static weft_waitgroup errno_wg;

static void errno_task(void *arg)
{
    int mine = 1000 + (int)(intptr_t)arg;
    for (int i = 0; i < 200; i++) {
        /* A blocking call that fails: its errno must survive block_end,
         * even when the task resumes on another thread. */
        pthread_t before = self_fn();
        weft_block_begin();
        nap_ns(i % 10 == 0 ? 200000 : 0); /* long enough to be retaken */
        char c;
        ssize_t r = read(-1, &c, 1); /* last: a SIGURG may leave EINTR from the nap */
        weft_block_end();
        CHECK_EQ(r, -1);
        CHECK_EQ(ERRNO, EBADF);
        CHECK_EQ(weft_errno(), EBADF);
        /* Any value survives yields across threads. */
        ERRNO = mine;
        weft_yield();
        CHECK_EQ(ERRNO, mine);
        if (!pthread_equal(before, self_fn()))
            atomic_fetch_add(&errno_moves, 1);
    }
    CHECK_OK(weft_wg_done(&errno_wg));
}

static void errno_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_add(&errno_wg, 8));
    for (intptr_t i = 0; i < 8; i++)
        CHECK_OK(weft_go(errno_task, (void *)i));
    CHECK_OK(weft_wg_wait(&errno_wg));
}

void t_block_errno(void)
{
    for (int p = 1; p <= 4; p *= 2) {
        memset(&errno_wg, 0, sizeof errno_wg);
        weft_config cfg = {.procs = p};
        CHECK_OK(weft_run(errno_main, NULL, &cfg));
    }
    fprintf(stderr, "tasks resumed on another thread: %ld times\n", atomic_load(&errno_moves));
    CHECK_GT(atomic_load(&errno_moves), 0);
}

/* ---- block_lock_thread: a locked task stays on its thread ---- */

struct locked {
    pthread_t thread;
    atomic_int locked;
    atomic_long trespass; /* other tasks seen on the locked thread */
    atomic_int stop;
    weft_chan *ch;
    weft_waitgroup wg;
};

static void lt_other(void *arg)
{
    struct locked *l = arg;
    while (!atomic_load(&l->stop)) {
        if (atomic_load(&l->locked) && pthread_equal(self_fn(), l->thread))
            atomic_fetch_add(&l->trespass, 1);
        weft_yield();
    }
    CHECK_OK(weft_wg_done(&l->wg));
}

static void lt_producer(void *arg)
{
    struct locked *l = arg;
    for (int i = 0; i < 300; i++)
        CHECK_OK(weft_chan_send(l->ch, &i));
    CHECK_OK(weft_chan_close(l->ch));
}

static void lt_main(void *arg)
{
    struct locked *l = arg;
    CHECK_EQ(weft_unlock_thread(), WEFT_EINVAL);
    l->ch = weft_chan_make(sizeof(int), 0);
    CHECK(l->ch != NULL);
    CHECK_OK(weft_wg_add(&l->wg, 4));
    for (int i = 0; i < 4; i++)
        CHECK_OK(weft_go(lt_other, l));
    CHECK_OK(weft_lock_thread());
    CHECK_OK(weft_lock_thread()); /* nests */
    l->thread = self_fn();
    atomic_store(&l->locked, 1);
    CHECK_OK(weft_go(lt_producer, l));
    int v, want = 0;
    while (weft_chan_recv(l->ch, &v) == 1) { /* parks and resumes many times */
        CHECK_EQ(v, want++);
        CHECK(pthread_equal(self_fn(), l->thread));
        weft_yield();
        CHECK(pthread_equal(self_fn(), l->thread));
        if (v % 50 == 0) {
            weft_block_begin();
            nap_ns(300000);
            weft_block_end();
            CHECK(pthread_equal(self_fn(), l->thread));
        }
    }
    CHECK_EQ(want, 300);
    atomic_store(&l->locked, 0);
    CHECK_OK(weft_unlock_thread());
    CHECK_OK(weft_unlock_thread());
    atomic_store(&l->stop, 1);
    CHECK_OK(weft_wg_wait(&l->wg));
    weft_chan_free(l->ch);
    CHECK_EQ(atomic_load(&l->trespass), 0);
}

void t_block_lock_thread(void)
{
    CHECK_EQ(weft_lock_thread(), WEFT_ENOTASK);
    for (int p = 1; p <= 4; p *= 2) {
        static struct locked l;
        memset(&l, 0, sizeof l);
        weft_config cfg = {.procs = p};
        CHECK_OK(weft_run(lt_main, &l, &cfg));
    }
}

/* ---- block_not_deadlock: a task in a blocking call is not asleep forever ---- */

static void nd_child(void *arg)
{
    weft_chan *c = arg;
    weft_block_begin();
    nap_ns(200000000);
    weft_block_end();
    int v = 7;
    CHECK_OK(weft_chan_send(c, &v));
}

static void nd_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_make(sizeof(int), 0);
    CHECK(c != NULL);
    CHECK_OK(weft_go(nd_child, c));
    int v = 0;
    CHECK_EQ(weft_chan_recv(c, &v), 1); /* every other thread idles meanwhile */
    CHECK_EQ(v, 7);
    weft_chan_free(c);
}

void t_block_not_deadlock(void)
{
    for (int p = 1; p <= 2; p++) {
        weft_config cfg = {.procs = p};
        CHECK_OK(weft_run(nd_main, NULL, &cfg));
    }
}

/* A locked task that waits forever is still a deadlock, reported. */
static void ld_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_lock_thread());
    weft_chan *c = weft_chan_make(sizeof(int), 0);
    int v;
    weft_chan_recv(c, &v); /* nobody sends */
}

void t_block_locked_deadlock(void)
{
    weft_config cfg = {.procs = 2};
    CHECK_EQ(weft_run(ld_main, NULL, &cfg), WEFT_EDEADLK);
}

/* ---- block_aba: a call that lost its proc leaves the next call's alone ----
 *
 * Procs 1, forced step by step: T1 (the main task) blocks; the monitor
 * retakes proc 0 and hands it to another thread, which runs T2; T2 blocks
 * too (proc 0 is SYSCALL again, for T2's call); only then does T1's call
 * return. T1 must not take proc 0 from under T2's call: it waits until the
 * monitor retakes proc 0 from T2 (a second retake). The bug (an ABA:
 * weft_block_end's CAS from SYSCALL to RUNNING could not tell the two
 * calls apart) let T1 run on proc 0 while the proc still named T2's thread
 * as its holder, so the monitor's preemption signals for T1's time slice
 * went to T2's thread, interrupting its blocking call (EINTR) every
 * slice, and T1 was never preempted. */

struct aba {
    atomic_int t2_in_call; /* T2 is inside its blocking call */
    atomic_int stop;       /* T2 may end its call */
    atomic_int watch;      /* T1 runs on proc 0 again: count T2's EINTRs */
    bool conclusive;       /* T1's call ended while T2's held proc 0 */
    long t2_eintr;         /* T2's nanosleeps cut short by a signal, while watched */
    weft_waitgroup wg;
};

static void aba_t2(void *arg)
{
    struct aba *a = arg;
    weft_block_begin();
    atomic_store(&a->t2_in_call, 1);
    while (!atomic_load(&a->stop)) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000};
        /* Only from when T1 runs again: a signal for T2's own time slice,
         * sent just before its call began, may land in it (qemu). */
        if (nanosleep(&ts, NULL) != 0 && errno == EINTR && atomic_load(&a->watch))
            a->t2_eintr++;
    }
    weft_block_end();
    CHECK_OK(weft_wg_done(&a->wg));
}

/* Busy in the program's own code (preemptible) for ns. */
static uint64_t busy_ns(int64_t ns)
{
    uint64_t x = 1;
    int64_t end = weft_now() + ns;
    for (;;) {
        for (int k = 0; k < 4096; k++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        if (weft_now() >= end)
            return x;
    }
}

static void aba_main(void *arg)
{
    struct aba *a = arg;
    /* A short call first: under qemu, the first run of weft_block_end's
     * code is translated then, not in the window below. */
    weft_block_begin();
    weft_block_end();
    CHECK_OK(weft_wg_add(&a->wg, 1));
    /* Not preempted before the call begins: T2 must start after it. */
    CHECK_OK(weft_nopreempt_begin());
    CHECK_OK(weft_go(aba_t2, a));
    int64_t limit = weft_now() + 10000000000ll * t_slack();
    weft_block_begin();
    /* T2 can only run once the monitor has retaken proc 0 from us. Spin,
     * so that this call ends right after T2's begins, long before the
     * monitor could retake proc 0 from T2 (20 us at the earliest). */
    while (!atomic_load(&a->t2_in_call) && weft_now() < limit) {
    }
    /* White box: proc 0 is SYSCALL for T2's call (not this one's), unless
     * the OS left this thread unscheduled long enough for the monitor to
     * retake proc 0 from T2 as well (a loaded machine); then this run
     * proves nothing and t_block_aba runs it again. */
    uint64_t word = atomic_load(&k_sched.procs[0]->status);
    a->conclusive =
        (word & 3) == PROC_SYSCALL && word != ((struct thread *)k_thread_self())->syscall_word;
    weft_block_end();
    CHECK_OK(weft_nopreempt_end());
    CHECK(atomic_load(&a->t2_in_call));

    /* White box: the proc this thread runs on names it as its holder (the
     * monitor preempts whatever thread p->thread names). */
    struct thread *th = k_thread_self();
    struct thread *holder = atomic_load(&th->proc->thread);
    bool async = k_sched.preempt_async;

    struct weft_stats st0, st1;
    atomic_store(&a->watch, 1);
    CHECK_OK(weft_stats(&st0));
    volatile uint64_t sink = busy_ns(30000000); /* 30 time slices of 1 ms */
    (void)sink;
    CHECK_OK(weft_stats(&st1));
    atomic_store(&a->stop, 1);
    CHECK_OK(weft_wg_wait(&a->wg));
    struct weft_stats st2;
    CHECK_OK(weft_stats(&st2));
    fprintf(stderr,
            "%s: holder %s; T1 preempted %llu times in 30 ms (async preemption %s); T2's call "
            "interrupted %ld times; %llu retakes\n",
            a->conclusive ? "conclusive" : "inconclusive (retaken from T2 first)",
            holder == th ? "right" : "WRONG (another thread)",
            (unsigned long long)(st1.preemptions - st0.preemptions), async ? "on" : "off",
            a->t2_eintr, (unsigned long long)st2.syscall_retakes);
    if (!a->conclusive)
        return;
    CHECK(holder == th);
    /* The bug interrupts T2's call once a slice (~30 times here). One
     * signal that was meant for T2's own short time slice on proc 0, sent
     * before its call began, can still land in the call after T1 runs
     * again: qemu on a loaded machine delivers a signal milliseconds late
     * (seen once in 20 runs). */
    CHECK_LE(a->t2_eintr, 2);
    /* Proc 0 retaken from T1's call, then from T2's for T1. */
    CHECK_GE(st2.syscall_retakes, 2);
    if (async)
        CHECK_GE(st1.preemptions - st0.preemptions, 1);
}

void t_block_aba(void)
{
    static struct aba a;
    int runs = 0;
    do {
        memset(&a, 0, sizeof a);
        weft_config cfg = {.procs = 1, .timeslice_ns = 1000000};
        CHECK_OK(weft_run(aba_main, &a, &cfg));
    } while (!a.conclusive && ++runs < 50);
    CHECK(a.conclusive);
}

/* ---- block_abandon: weft_run returns while a task is in a blocking call ----
 *
 * Procs 1. The main task blocks, so that proc 0 goes to a second thread,
 * which runs B; B enters a long blocking call (300 ms or more) and the main task
 * returns at once. weft_run must return without waiting for B's call
 * (it once joined B's thread instead), and B's thread, abandoned
 * in the OS, must come back to nothing: B's code after weft_block_end
 * never runs, and a second run, going on meanwhile with blocking calls,
 * spawns, channels and stats of its own, is not disturbed when it does. */

static struct {
    pthread_t host; /* weft_run's thread */
    pthread_t b_thread;
    int64_t nap_ns;        /* B's call */
    _Atomic int64_t began; /* when B's call began (weft_now), 0 before */
    atomic_int b_after;    /* B ran past weft_block_end: must not */
} ab;

static void ab_blocker(void *arg)
{
    (void)arg;
    ab.b_thread = pthread_self();
    weft_block_begin();
    atomic_store(&ab.began, weft_now());
    nap_ns(ab.nap_ns);
    weft_block_end();
    atomic_store(&ab.b_after, 1); /* the run is over: never reached */
}

static void ab_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_go(ab_blocker, NULL));
    int64_t limit = weft_now() + 10000000000ll * t_slack();
    /* In a call of our own, so that proc 0 and B go to another thread. */
    weft_block_begin();
    while (atomic_load(&ab.began) == 0 && weft_now() < limit)
        nap_ns(50000);
    weft_block_end();
    CHECK(atomic_load(&ab.began) != 0);
    CHECK(!pthread_equal(ab.b_thread, ab.host));
    /* Return at once: B is discarded in its call. */
}

/* The second run: work of every kind until well after B's call ended. */
struct ab2 {
    weft_chan *ping, *pong;
    weft_waitgroup wg;
    atomic_int stop;
    atomic_long rounds, calls, spawned;
};

static void ab2_echo(void *arg)
{
    struct ab2 *w = arg;
    int v;
    while (weft_chan_recv(w->ping, &v) == 1)
        CHECK_OK(weft_chan_send(w->pong, &v));
    CHECK_OK(weft_wg_done(&w->wg));
}

static void ab2_short(void *arg)
{
    struct ab2 *w = arg;
    atomic_fetch_add(&w->spawned, 1);
    CHECK_OK(weft_wg_done(&w->wg));
}

static void ab2_caller(void *arg)
{
    struct ab2 *w = arg;
    while (!atomic_load(&w->stop)) {
        weft_block_begin();
        nap_ns(200000); /* long enough to be retaken */
        weft_block_end();
        atomic_fetch_add(&w->calls, 1);
        CHECK_OK(weft_wg_add(&w->wg, 1));
        CHECK_OK(weft_go(ab2_short, w));
    }
    CHECK_OK(weft_wg_done(&w->wg));
}

static void ab2_main(void *arg)
{
    struct ab2 *w = arg;
    /* White box: B's thread is still out there, abandoned. */
    CHECK_EQ(k_orphans_live(), 1);
    w->ping = weft_chan_make(sizeof(int), 0);
    w->pong = weft_chan_make(sizeof(int), 0);
    CHECK(w->ping && w->pong);
    CHECK_OK(weft_wg_add(&w->wg, 3));
    CHECK_OK(weft_go(ab2_echo, w));
    CHECK_OK(weft_go(ab2_caller, w));
    CHECK_OK(weft_go(ab2_caller, w));
    /* Until 200 ms (times the slack) after B's call ended. */
    int64_t until = atomic_load(&ab.began) + ab.nap_ns + 200000000ll * t_slack();
    int i = 0;
    while (weft_now() < until) {
        int v = i, r = -1;
        CHECK_OK(weft_chan_send(w->ping, &v));
        CHECK_EQ(weft_chan_recv(w->pong, &r), 1);
        CHECK_EQ(r, i);
        i++;
        atomic_fetch_add(&w->rounds, 1);
        if (i % 64 == 0)
            weft_sleep(100000);
    }
    atomic_store(&w->stop, 1);
    CHECK_OK(weft_chan_close(w->ping));
    CHECK_OK(weft_wg_wait(&w->wg));
    /* The last done() may come just before its task exits. */
    struct weft_stats st;
    int64_t exit_limit = weft_now() + 2000000000ll * t_slack();
    do {
        weft_sleep(1000000);
        CHECK_OK(weft_stats(&st));
    } while (st.tasks > 1 && weft_now() < exit_limit);
    fprintf(stderr,
            "second run: %ld round trips, %ld blocking calls, %ld spawns, %llu retakes; "
            "%llu tasks live, %llu created\n",
            atomic_load(&w->rounds), atomic_load(&w->calls), atomic_load(&w->spawned),
            (unsigned long long)st.syscall_retakes, (unsigned long long)st.tasks,
            (unsigned long long)st.tasks_created);
    /* B's thread came back during this run and is gone (white box). */
    CHECK_EQ(k_orphans_live(), 0);
    CHECK_EQ(st.tasks, 1); /* only this one: nothing of the first run counts */
    CHECK_EQ(st.tasks_created, 4 + atomic_load(&w->spawned));
    CHECK_GT(atomic_load(&w->calls), 0);
    weft_chan_free(w->ping);
    weft_chan_free(w->pong);
}

void t_block_abandon(void)
{
    /* Waiting for B's call (the bug) takes all of it; returning at once
     * takes a retake or two, which a loaded machine may stretch to
     * hundreds of milliseconds. So B's call is 300 ms first, and when the
     * run took 90% of that, again at 1 s, then 3 s: the bug fails at
     * every length. The second run, which outlives B, follows the try
     * that was in time. */
    static const int64_t naps[3] = {300000000ll, 1000000000ll, 3000000000ll};
    int64_t took = 0;
    for (int i = 0; i < 3; i++) {
        memset(&ab, 0, sizeof ab);
        ab.host = pthread_self();
        ab.nap_ns = naps[i];
        weft_config cfg = {.procs = 1};
        CHECK_OK(weft_run(ab_main, NULL, &cfg));
        took = weft_now() - atomic_load(&ab.began);
        fprintf(stderr, "weft_run returned %.1f ms after B's %.0f ms call began\n", took / 1e6,
                ab.nap_ns / 1e6);
        if (took >= ab.nap_ns * 9 / 10 && i < 2) {
            /* Too late to tell (B's call may be over): once B's thread
             * is back, again with a longer call. */
            int64_t limit = weft_now() + ab.nap_ns + 10000000000ll * t_slack();
            while (k_orphans_live() != 0 && weft_now() < limit)
                nap_ns(1000000);
            CHECK_EQ(k_orphans_live(), 0);
            continue;
        }

        static struct ab2 w;
        memset(&w, 0, sizeof w);
        weft_config cfg2 = {.procs = 2};
        CHECK_OK(weft_run(ab2_main, &w, &cfg2));
        CHECK_EQ(atomic_load(&ab.b_after), 0);
        CHECK_EQ(k_orphans_live(), 0);
        break;
    }
    CHECK_LT(took, ab.nap_ns * 9 / 10);
}

/* ---- block_abandon_host: the call is on weft_run's own thread ----
 *
 * A task's blocking call runs on whichever thread runs the task, and
 * weft_run's thread is one of the workers: when the run ends while that
 * thread is in a call, weft_run can only return once the call does. It
 * then returns at once, without running the task any further. */

static void abh_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_go(ab_blocker, NULL));
    /* Parking hands this thread (weft_run's) to B. */
    int64_t limit = weft_now() + 10000000000ll * t_slack();
    while (atomic_load(&ab.began) == 0 && weft_now() < limit)
        weft_sleep(1000000);
    CHECK(atomic_load(&ab.began) != 0);
    CHECK(pthread_equal(ab.b_thread, ab.host));
}

void t_block_abandon_host(void)
{
    memset(&ab, 0, sizeof ab);
    ab.host = pthread_self();
    ab.nap_ns = 300000000ll;
    weft_config cfg = {.procs = 1};
    CHECK_OK(weft_run(abh_main, NULL, &cfg));
    int64_t took = weft_now() - atomic_load(&ab.began);
    fprintf(stderr, "weft_run returned %.1f ms after B's %.0f ms call began\n", took / 1e6,
            ab.nap_ns / 1e6);
    CHECK_GE(took, ab.nap_ns);
    CHECK_LT(took, ab.nap_ns + 2000000000ll * t_slack());
    CHECK_EQ(atomic_load(&ab.b_after), 0);
    CHECK_EQ(k_orphans_live(), 0); /* weft_run's own thread is never abandoned */
}

/* ---- block_no_eintr: calls nobody annotated with weft_block_begin see no
 * EINTR from weft. procs 1, preemption on with 2 ms slices, two tasks that
 * spin without calling weft, and a third that makes 20 bare nanosleep(5
 * ms), 20 poll(NULL, 0, 5) and 20 blocking pipe reads (a host thread
 * writes a byte every 5 ms). Its slice runs out while it sits in those
 * calls; the monitor sees its thread off the CPU (monitor.c cpu_look) and
 * does not interrupt it there, where a signal makes nanosleep and poll
 * fail with EINTR even with SA_RESTART. Before: every one of the 40 sleeps
 * and polls could fail so (20 and 20 did).
 *
 * Each kind of call is made once first, uncounted: under qemu-user the
 * first call of a function is translated first, which keeps the thread on
 * the CPU for up to milliseconds right before it enters the call, the
 * window that docs/API.md says may still see EINTR (7 of 400 runs had one
 * EINTR, 6 of them at the first call of a kind; with these first calls,
 * none in 400). Under emulation one EINTR in the 60 calls is still let
 * through for that window, and printed (1 of those 7 was not at a first
 * call); natively none is. ---- */

#ifndef _WIN32
#include <poll.h>

static struct {
    _Atomic int stop, go_writer;
    _Atomic int64_t spins[2];
    int pipe[2];
    int eintr[3], other[3]; /* nanosleep, poll, read */
    int first_eintr;        /* 100 * kind + call of the first EINTR, -1 none */
    uint64_t skipped;       /* k_sched.npreempt_os at the end */
    weft_waitgroup wg;
} ne;

static void ne_busy(void *arg)
{
    int i = (int)(intptr_t)arg;
    while (!atomic_load_explicit(&ne.stop, memory_order_relaxed))
        atomic_fetch_add_explicit(&ne.spins[i], 1, memory_order_relaxed);
    weft_wg_done(&ne.wg);
}

static void ne_count(int which, int i, int r)
{
    if (r >= 0)
        return;
    if (ERRNO == EINTR) {
        if (ne.eintr[0] + ne.eintr[1] + ne.eintr[2] == 0)
            ne.first_eintr = 100 * which + i;
        ne.eintr[which]++;
    } else {
        ne.other[which]++;
    }
}

static void ne_caller(void *arg)
{
    (void)arg;
    struct timespec ts0 = {0, 1000};
    nanosleep(&ts0, NULL); /* translated now, not in the counted calls */
    poll(NULL, 0, 0);
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {0, 5000000};
        ne_count(0, i, nanosleep(&ts, NULL));
    }
    for (int i = 0; i < 20; i++)
        ne_count(1, i, poll(NULL, 0, 5));
    atomic_store(&ne.go_writer, 1);
    for (int i = 0; i < 20; i++) {
        char c;
        ssize_t r = read(ne.pipe[0], &c, 1);
        ne_count(2, i, r == 1 ? 0 : -1);
    }
    atomic_store(&ne.stop, 1);
    weft_wg_done(&ne.wg);
}

static void *ne_writer(void *arg)
{
    (void)arg;
    while (!atomic_load(&ne.go_writer))
        usleep(1000);
    for (int i = 0; i < 20; i++) {
        usleep(5000);
        if (write(ne.pipe[1], "x", 1) != 1)
            break;
    }
    return NULL;
}

static void ne_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_add(&ne.wg, 3));
    CHECK_OK(weft_go(ne_busy, (void *)0));
    CHECK_OK(weft_go(ne_busy, (void *)1));
    CHECK_OK(weft_go(ne_caller, NULL));
    CHECK_OK(weft_wg_wait(&ne.wg));
    ne.skipped = atomic_load(&k_sched.npreempt_os);
}

void t_block_no_eintr(void)
{
    t_need_async_preempt();
    memset(&ne, 0, sizeof ne);
    ne.first_eintr = -1;
    CHECK_OK(pipe(ne.pipe));
    pthread_t w;
    CHECK_OK(pthread_create(&w, NULL, ne_writer, NULL));
    weft_config cfg = {.procs = 1, .preempt = 1, .timeslice_ns = 2000000};
    CHECK_OK(weft_run(ne_main, NULL, &cfg));
    CHECK_OK(pthread_join(w, NULL));
    close(ne.pipe[0]);
    close(ne.pipe[1]);
    fprintf(stderr,
            "EINTR: nanosleep %d, poll %d, read %d (the first: kind %d, call %d); other errors "
            "%d %d %d; %llu interrupts held back from a thread in the OS\n",
            ne.eintr[0], ne.eintr[1], ne.eintr[2], ne.first_eintr / 100, ne.first_eintr % 100,
            ne.other[0], ne.other[1], ne.other[2], (unsigned long long)ne.skipped);
    CHECK_LE(ne.eintr[0] + ne.eintr[1] + ne.eintr[2], t_slack() > 1 ? 1 : 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(ne.other[i], 0);
    CHECK_GT(ne.skipped, 0);
}
#else
T_NOT_BUILT(t_block_no_eintr, "Windows suspends a thread, which makes no wait fail")
#endif
