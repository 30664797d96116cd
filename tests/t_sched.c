/* SPDX-License-Identifier: MIT */
/*
 * t_sched.c — the runtime and tasks: start/stop, spawning at scale,
 * parking at scale, chains, yields, deadlock detection, bad input, and the
 * stack guard.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern/proc.h" /* white box: sched_task_cache */
#include "tests/check.h"

/* ---- sched_basic: one run, ids, procs, outside-a-task values ---- */

static int basic_ran;
static void basic_main(void *arg)
{
    CHECK(arg == &basic_ran);
    CHECK_EQ(weft_id(), 1);
    CHECK_EQ(weft_procs(), 3);
    CHECK_GT(weft_now(), 0);
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.procs, 3);
    CHECK_GE(st.tasks, 1);
    basic_ran = 1;
}

void t_sched_basic(void)
{
    CHECK_EQ(weft_id(), 0);
    CHECK_EQ(weft_procs(), 0);
    weft_config cfg = {.procs = 3};
    CHECK_OK(weft_run(basic_main, &basic_ran, &cfg));
    CHECK_EQ(basic_ran, 1);
    CHECK_EQ(weft_procs(), 0);
}

/* ---- sched_spawn_1m: 1,000,000 short tasks ---- */

static atomic_long spawn_count;
static weft_waitgroup spawn_wg;

static void spawn_child(void *arg)
{
    atomic_fetch_add_explicit(&spawn_count, (long)(intptr_t)arg, memory_order_relaxed);
    weft_wg_done(&spawn_wg);
}

static void spawn_main(void *arg)
{
    int64_t n = *(int64_t *)arg;
    CHECK_OK(weft_wg_add(&spawn_wg, n));
    for (int64_t i = 0; i < n; i++)
        CHECK_OK(weft_go(spawn_child, (void *)(intptr_t)1));
    CHECK_OK(weft_wg_wait(&spawn_wg));
    CHECK_EQ(atomic_load(&spawn_count), n);
}

void t_sched_spawn_1m(void)
{
    int64_t n = t_count(1000000);
    atomic_store(&spawn_count, 0);
    memset(&spawn_wg, 0, sizeof spawn_wg);
    int64_t t0 = weft_now();
    t_run(spawn_main, &n, 0);
    fprintf(stderr, "spawned %lld tasks in %.1f ms\n", (long long)n, (weft_now() - t0) / 1e6);
}

/* ---- sched_park_1m: 1,000,000 tasks parked at once ---- */

static weft_rwmutex park_gate;
static atomic_long park_arrived, park_passed;
static weft_waitgroup park_wg;

static void park_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&park_arrived, 1);
    CHECK_OK(weft_rwmutex_rlock(&park_gate)); /* parks: main holds the write lock */
    atomic_fetch_add(&park_passed, 1);
    CHECK_OK(weft_rwmutex_runlock(&park_gate));
    weft_wg_done(&park_wg);
}

static void park_main(void *arg)
{
    int64_t n = *(int64_t *)arg;
    CHECK_OK(weft_rwmutex_lock(&park_gate));
    CHECK_OK(weft_wg_add(&park_wg, n));
    for (int64_t i = 0; i < n; i++)
        CHECK_OK(weft_go(park_child, NULL));
    while (atomic_load(&park_arrived) < n)
        weft_yield();
    /* Let the last arrivals reach their park. */
    for (int i = 0; i < 100; i++)
        weft_yield();
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.tasks, n + 1);
    CHECK_EQ(atomic_load(&park_passed), 0);
    fprintf(stderr,
            "%lld tasks parked; stacks guarded: %llu region, %llu protect, %llu none; "
            "%llu MiB reserved\n",
            (long long)n, (unsigned long long)st.stacks_guard_region,
            (unsigned long long)st.stacks_guard_protect, (unsigned long long)st.stacks_unguarded,
            (unsigned long long)(st.mem_reserved >> 20));
    CHECK_EQ(st.stacks_guard_region + st.stacks_guard_protect + st.stacks_unguarded,
             st.stacks_guard_region + st.stacks_guard_protect + st.stacks_unguarded);
    CHECK_GE(st.stacks_guard_region + st.stacks_guard_protect + st.stacks_unguarded, (uint64_t)n);
    CHECK_OK(weft_rwmutex_unlock(&park_gate));
    CHECK_OK(weft_wg_wait(&park_wg));
    CHECK_EQ(atomic_load(&park_passed), n);
}

void t_sched_park_1m(void)
{
    int64_t n = t_live_stacks(t_count(1000000));
#ifdef WEFT_SAN_TSAN
    /* TSan keeps 256 KiB of trace per fiber, and each parked task is one:
     * 100,000 of them would need 25 GiB. */
    n /= 10;
#endif
    memset(&park_gate, 0, sizeof park_gate);
    memset(&park_wg, 0, sizeof park_wg);
    atomic_store(&park_arrived, 0);
    atomic_store(&park_passed, 0);
    t_run(park_main, &n, 0);
}

/* ---- sched_chain: a chain of 10,000 tasks, each waiting for the next ---- */

static atomic_int chain_reached;

/* Each link lives on its parent's stack, which stays valid because the
 * parent waits for it. */
struct link {
    int depth;
    int max;
    weft_waitgroup *parent_wg;
};

static void chain_link(void *arg)
{
    struct link *me = arg;
    atomic_fetch_add(&chain_reached, 1);
    if (me->depth + 1 < me->max) {
        weft_waitgroup wg = {0};
        struct link child = {me->depth + 1, me->max, &wg};
        CHECK_OK(weft_wg_add(&wg, 1));
        CHECK_OK(weft_go(chain_link, &child));
        CHECK_OK(weft_wg_wait(&wg));
    }
    if (me->parent_wg)
        weft_wg_done(me->parent_wg); /* the last touch of *me */
}

static void chain_main(void *arg)
{
    struct link root = {0, *(int *)arg, NULL};
    chain_link(&root);
    CHECK_EQ(atomic_load(&chain_reached), root.max);
}

void t_sched_chain(void)
{
    for (int i = 0; i < 4; i++) {
        int max = 10000;
        atomic_store(&chain_reached, 0);
        t_run(chain_main, &max, t_procs_list[i]);
    }
}

/* ---- sched_yield: two tasks take turns through yields ---- */

struct turns {
    atomic_int turn;
    atomic_long steps;
    long n;
    weft_waitgroup wg;
};

static void yield_player(void *arg)
{
    struct turns *tt = arg;
    int me = (int)(weft_id() & 1);
    for (long i = 0; i < tt->n; i++) {
        while (atomic_load(&tt->turn) != me)
            weft_yield();
        atomic_fetch_add(&tt->steps, 1);
        atomic_store(&tt->turn, !me);
    }
    weft_wg_done(&tt->wg);
}

static void yield_main(void *arg)
{
    struct turns *tt = arg;
    atomic_store(&tt->turn, 0);
    atomic_store(&tt->steps, 0);
    memset(&tt->wg, 0, sizeof tt->wg);
    CHECK_OK(weft_wg_add(&tt->wg, 2));
    /* Ids 2 and 3: one even, one odd. */
    CHECK_OK(weft_go(yield_player, tt));
    CHECK_OK(weft_go(yield_player, tt));
    CHECK_OK(weft_wg_wait(&tt->wg));
    CHECK_EQ(atomic_load(&tt->steps), 2 * tt->n);
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_GE(st.context_switches, (uint64_t)tt->n);
}

void t_sched_yield(void)
{
    struct turns tt = {.n = (long)t_count(100000)};
    for (int i = 0; i < 4; i++)
        t_run(yield_main, &tt, t_procs_list[i]);
}

/* ---- sched_many: thousands of tasks mixing yields and spawns on 1-8 procs ---- */

static atomic_long many_sum;
static weft_waitgroup many_wg;

static void many_leaf(void *arg)
{
    long v = (long)(intptr_t)arg;
    for (int i = 0; i < (int)(v % 7); i++)
        weft_yield();
    atomic_fetch_add(&many_sum, v);
    weft_wg_done(&many_wg);
}

static void many_mid(void *arg)
{
    long base = (long)(intptr_t)arg;
    for (long i = 0; i < 20; i++) {
        CHECK_OK(weft_go(many_leaf, (void *)(intptr_t)(base * 20 + i)));
        if (i % 3 == 0)
            weft_yield();
    }
    weft_wg_done(&many_wg);
}

static void many_main(void *arg)
{
    long mids = *(long *)arg;
    atomic_store(&many_sum, 0);
    memset(&many_wg, 0, sizeof many_wg);
    CHECK_OK(weft_wg_add(&many_wg, mids * 21));
    for (long m = 0; m < mids; m++)
        CHECK_OK(weft_go(many_mid, (void *)(intptr_t)m));
    CHECK_OK(weft_wg_wait(&many_wg));
    long n = mids * 20;
    CHECK_EQ(atomic_load(&many_sum), n * (n - 1) / 2);
}

void t_sched_many(void)
{
    long mids = (long)t_count(2000);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 4; i++)
            t_run(many_main, &mids, t_procs_list[i]);
}

/* ---- sched_cycles: weft_run 100 times in one process, nothing kept ---- */

static void cycle_child(void *arg)
{
    atomic_fetch_add((atomic_long *)arg, 1);
}

static void cycle_main(void *arg)
{
    for (int i = 0; i < 50; i++)
        CHECK_OK(weft_go(cycle_child, arg));
    /* Some of them are still queued or running when main returns: they
     * are discarded with the run. */
    weft_yield();
}

void t_sched_cycles(void)
{
    atomic_long count = 0;
    for (int i = 0; i < 100; i++) {
        weft_config cfg = {.procs = 1 + i % 4};
        CHECK_OK(weft_run(cycle_main, &count, &cfg));
        CHECK_EQ(weft_procs(), 0);
    }
    CHECK_GT(atomic_load(&count), 0);
}

/* ---- sched_deadlock: every task blocked forever ---- */

static weft_mutex dl_mu;
static void dl_other(void *arg)
{
    (void)arg;
    weft_mutex_lock(&dl_mu); /* blocks: main holds it */
}

static void dl_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&dl_mu));
    CHECK_OK(weft_go(dl_other, NULL));
    weft_waitgroup wg = {0};
    CHECK_OK(weft_wg_add(&wg, 1));
    weft_wg_wait(&wg); /* nobody will call done */
    CHECK(!"unreachable: the deadlocked run must not resume main");
}

static void ok_main(void *arg)
{
    *(int *)arg = 1;
}

void t_sched_deadlock(void)
{
    for (int i = 0; i < 4; i++) {
        memset(&dl_mu, 0, sizeof dl_mu);
        weft_config cfg = {.procs = t_procs_list[i]};
        CHECK_EQ(weft_run(dl_main, NULL, &cfg), WEFT_EDEADLK);
        /* The runtime is usable again afterwards. */
        int ran = 0;
        CHECK_OK(weft_run(ok_main, &ran, &cfg));
        CHECK_EQ(ran, 1);
    }
}

/* ---- sched_errors: bad input and calls outside a task ---- */

static void nested_main(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_run(ok_main, NULL, NULL), WEFT_EBUSY);
    CHECK_EQ(weft_go(NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_go_stack(ok_main, NULL, (size_t)1 << 40), WEFT_EINVAL);
    CHECK_EQ(weft_go_stack(NULL, NULL, 0), WEFT_EINVAL);
    CHECK_EQ(weft_stats(NULL), WEFT_EINVAL);
}

static void small_stack_task(void *arg)
{
    volatile char buf[8 * 1024];
    buf[0] = 1;
    buf[sizeof buf - 1] = 2;
    atomic_fetch_add((atomic_int *)arg, buf[0] + buf[sizeof buf - 1]);
}

static void stack_main(void *arg)
{
    atomic_int *n = arg;
    weft_waitgroup wg = {0};
    (void)wg;
    CHECK_OK(weft_go_stack(small_stack_task, n, 1)); /* rounded up to the minimum */
    CHECK_OK(weft_go_stack(small_stack_task, n, 100 * 1024 + 5));
    CHECK_OK(weft_go_stack(small_stack_task, n, 0));
    while (atomic_load(n) < 9)
        weft_yield();
}

void t_sched_errors(void)
{
    /* Outside a task. */
    CHECK_EQ(weft_go(ok_main, NULL), WEFT_ENOTASK);
    CHECK_EQ(weft_go_stack(ok_main, NULL, 0), WEFT_ENOTASK);
    weft_yield(); /* a no-op */
    CHECK_EQ(weft_id(), 0);
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.tasks, 0);
    /* Bad configuration. */
    CHECK_EQ(weft_run(NULL, NULL, NULL), WEFT_EINVAL);
    weft_config bad[] = {
        {.procs = -1},
        {.procs = 100000},
        {.preempt = 2},
        {.timeslice_ns = -5},
        {.stack_size = (size_t)1 << 40},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(weft_run(ok_main, NULL, &bad[i]), WEFT_EINVAL);
    setenv("WEFT_PROCS", "abc", 1);
    CHECK_EQ(weft_run(ok_main, NULL, NULL), WEFT_EINVAL);
    setenv("WEFT_PROCS", "0", 1);
    CHECK_EQ(weft_run(ok_main, NULL, NULL), WEFT_EINVAL);
    unsetenv("WEFT_PROCS");
    setenv("WEFT_STACK", "12x", 1);
    CHECK_EQ(weft_run(ok_main, NULL, NULL), WEFT_EINVAL);
    setenv("WEFT_STACK", "64K", 1);
    int ran = 0;
    CHECK_OK(weft_run(ok_main, &ran, NULL));
    CHECK_EQ(ran, 1);
    unsetenv("WEFT_STACK");
    /* Inside a task. */
    CHECK_OK(weft_run(nested_main, NULL, NULL));
    atomic_int n = 0;
    CHECK_OK(weft_run(stack_main, &n, NULL));
    /* Error names are distinct. */
    int codes[] = {WEFT_EINVAL,    WEFT_ENOMEM,  WEFT_EAGAIN,  WEFT_ECLOSED,
                   WEFT_ETIMEDOUT, WEFT_EDEADLK, WEFT_ENOTASK, WEFT_EBADF,
                   WEFT_EIO,       WEFT_EBUSY,   WEFT_ENOTSUP};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        CHECK_LT(codes[i], 0);
        CHECK(strstr(weft_strerror(codes[i]), "WEFT_E") != NULL);
        for (size_t j = 0; j < i; j++) {
            CHECK_NE(codes[i], codes[j]);
            CHECK(strcmp(weft_strerror(codes[i]), weft_strerror(codes[j])) != 0);
        }
    }
    CHECK(strcmp(weft_strerror(12345), "unknown weft error") == 0);
}

/* ---- crash_stack_overflow: the guard catches it and names the task ---- */

/* Recursion without a base case that the compiler can see: the depth
 * limit is a volatile read that is never reached in practice. */
static volatile int recurse_limit = 1 << 30;
static int recurse(volatile char *prev, int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = prev ? prev[0] : 0;
    if (depth >= recurse_limit)
        return 0;
    return recurse(frame, depth + 1) + frame[511];
}

static void overflow_task(void *arg)
{
    (void)arg;
    fprintf(stderr, "overflowing task %llu\n", (unsigned long long)weft_id());
    recurse(NULL, 0);
}

static void overflow_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg = {0};
    CHECK_OK(weft_wg_add(&wg, 1));
    CHECK_OK(weft_go_stack(overflow_task, NULL, 64 * 1024));
    weft_wg_wait(&wg);
}

void t_crash_stack_overflow(void)
{
    weft_config cfg = {.procs = 2};
    weft_run(overflow_main, NULL, &cfg);
    CHECK(!"unreachable: the overflow must end the process");
}

/* ---- sched_task_cache: dead tasks are kept per proc with their stacks ----
 *
 * White box (kern/proc.h): a task that ends goes to its proc's cache of
 * dead tasks, stack and all, so that the next spawn on that proc takes no
 * lock and makes no system call (Go: gfput/gfget). The cache used to
 * compare the stack's usable size, which includes the preemption headroom,
 * with the configured size, which does not: with preemption on no task was
 * ever cached, and every exit and spawn took sched.lock and freed or
 * allocated a stack. Checked with preemption on and off, default and
 * configured stack sizes. */

struct cache_ctx {
    weft_chan *done;
    uint32_t ndead;
    bool free_list_used;
};

static void cache_task(void *arg)
{
    CHECK_OK(weft_chan_send(((struct cache_ctx *)arg)->done, NULL));
}

static void cache_main(void *arg)
{
    struct cache_ctx *c = arg;
    c->done = weft_chan_make(0, 0);
    CHECK(c->done != NULL);
    for (int i = 0; i < 200; i++) {
        CHECK_OK(weft_go(cache_task, c));
        CHECK_EQ(weft_chan_recv(c->done, NULL), 1);
        weft_yield(); /* let it finish exiting */
    }
    weft_chan_free(c->done);
    c->ndead = k_sched.procs[0]->ndead;
    c->free_list_used = atomic_load(&k_sched.free_tasks) != NULL;
}

void t_sched_task_cache(void)
{
    const int preempt[] = {1, -1, 1};
    const size_t stack[] = {0, 0, 64 << 10};
    for (int i = 0; i < 3; i++) {
        struct cache_ctx c;
        memset(&c, 0, sizeof c);
        weft_config cfg = {.procs = 1, .preempt = preempt[i], .stack_size = stack[i]};
        CHECK_OK(weft_run(cache_main, &c, &cfg));
        fprintf(stderr, "preempt %d, stack %zu: %u dead tasks cached on proc 0, free list %s\n",
                preempt[i], stack[i], c.ndead, c.free_list_used ? "used" : "empty");
        CHECK_GE(c.ndead, 1);
        CHECK(!c.free_list_used);
    }
}

/* ---- sched_locked_sleep: a task locked to its thread may sleep ----
 *
 * A thread whose locked task parks hands its proc off and waits for the
 * task. When every other thread is idle too, that is a deadlock only if
 * nothing can ready a task: a pending timer (the locked task's own sleep)
 * or an I/O wait can. The check used to look only at the threads and
 * procs, and reported a deadlock at procs >= 2 the first time a locked
 * task slept; at procs 1 the sleep happened to be covered. */

static void locked_sleep_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_lock_thread());
    for (int i = 0; i < 20; i++) {
        int64_t t0 = weft_now();
        CHECK_OK(weft_sleep(1000000));
        CHECK_GE(weft_now() - t0, 1000000);
    }
    /* A timer channel too, and a task that is not locked. */
    weft_timer *t = weft_timer_new(2000000, 0);
    CHECK(t != NULL);
    int64_t v;
    CHECK_EQ(weft_chan_recv(weft_timer_chan(t), &v), 1);
    weft_timer_free(t);
    CHECK_OK(weft_unlock_thread());
    CHECK_OK(weft_sleep(1000000));
}

void t_sched_locked_sleep(void)
{
    for (int i = 0; i < 4; i++)
        t_run(locked_sleep_main, NULL, t_procs_list[i]);
}

/* ---- sched_stats_startup: weft_stats while threads are being started ----
 * Each round a fresh run starts its threads as tasks appear, while a task
 * reads weft_stats in a loop: the thread count it reads is written by
 * startm under sched.lock (a data race for TSan when read without it). */

static atomic_int stats_stop;

static void stats_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        weft_yield();
}

static void stats_reader(void *arg)
{
    weft_waitgroup *wg = arg;
    struct weft_stats st;
    while (!atomic_load(&stats_stop)) {
        CHECK_OK(weft_stats(&st));
        CHECK_GE(st.threads, 1);
        weft_yield();
    }
    CHECK_OK(weft_wg_done(wg));
}

static void stats_main(void *arg)
{
    (void)arg;
    weft_waitgroup wg;
    memset(&wg, 0, sizeof wg);
    atomic_store(&stats_stop, 0);
    CHECK_OK(weft_wg_add(&wg, 1));
    CHECK_OK(weft_go(stats_reader, &wg));
    for (int i = 0; i < 64; i++)
        CHECK_OK(weft_go(stats_worker, NULL));
    for (int i = 0; i < 50; i++)
        weft_yield();
    atomic_store(&stats_stop, 1);
    CHECK_OK(weft_wg_wait(&wg));
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_LE(st.threads, 64 + 8);
}

void t_sched_stats_startup(void)
{
    for (int r = 0; r < 20; r++)
        t_run(stats_main, NULL, 8);
}

/* ---- sched_dump_ages: the dump dates each wait from a clock its proc
 * keeps. Procs other than the first had none until their 64th task run,
 * so a task parking on one early showed "-1 ms" (and a proc idle for a
 * long time gave its first parks the age of its last busy spell). procs
 * 4: 16 tasks park on a channel as soon as they run, on procs that just
 * left the idle list (the first task spins meanwhile); the dump, 5 ms later, must give every wait
 * an age from 0 to 5 s. ---- */

#include <stdio.h>
#ifdef _WIN32
#include <io.h>
#include <windows.h>
#else
#include <unistd.h>
#endif

/* weft's own output (hal_write_err) into a temporary file, for the cases
 * that read what weft printed: POSIX writes to fd 2, which dup2 points at
 * the file; Windows writes to the process's standard error handle, which
 * SetStdHandle points at it. */
struct capture {
    FILE *f;
#ifdef _WIN32
    HANDLE saved;
#else
    int saved;
#endif
};

static void capture_begin(struct capture *c)
{
    c->f = tmpfile();
    CHECK(c->f != NULL);
    fflush(stderr);
#ifdef _WIN32
    c->saved = GetStdHandle(STD_ERROR_HANDLE);
    CHECK(SetStdHandle(STD_ERROR_HANDLE, (HANDLE)_get_osfhandle(_fileno(c->f))));
#else
    c->saved = dup(2);
    CHECK_GE(c->saved, 0);
    CHECK_GE(dup2(fileno(c->f), 2), 0);
#endif
}

/* Ends the capture; its text into buf[size] (cut to fit). */
static void capture_end(struct capture *c, char *buf, size_t size)
{
#ifdef _WIN32
    CHECK(SetStdHandle(STD_ERROR_HANDLE, c->saved));
#else
    fflush(stderr);
    CHECK_GE(dup2(c->saved, 2), 0);
    close(c->saved);
#endif
    rewind(c->f);
    size_t n = fread(buf, 1, size - 1, c->f);
    buf[n] = 0;
    fclose(c->f);
}

static struct {
    weft_chan *ch;
    _Atomic int started;
    char text[1 << 17]; /* the dump: a header line and frames per task */
} da;

static void da_waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&da.started, 1);
    int v;
    CHECK_EQ(weft_chan_recv(da.ch, &v), 1);
}

static void da_main(void *arg)
{
    (void)arg;
    da.ch = weft_chan_make(sizeof(int), 0);
    CHECK(da.ch != NULL);
    for (int i = 0; i < 16; i++)
        CHECK_OK(weft_go(da_waiter, NULL));
    /* Spin, not park: the other procs' threads steal the waiters and run
     * them there. */
    int64_t t0 = weft_now();
    while (atomic_load(&da.started) < 16)
        CHECK_LT(weft_now() - t0, 5000000000ll * t_slack());
    CHECK_OK(weft_sleep(5000000));
    struct capture c;
    capture_begin(&c);
    weft_dump();
    capture_end(&c, da.text, sizeof da.text);
    for (int i = 0; i < 16; i++)
        CHECK_OK(weft_chan_send(da.ch, &i));
}

void t_sched_dump_ages(void)
{
    memset(&da, 0, sizeof da);
    weft_config cfg = {.procs = 4};
    CHECK_OK(weft_run(da_main, NULL, &cfg));
    fprintf(stderr, "%s", da.text);
    int waits = 0;
    for (const char *p = da.text; (p = strstr(p, "[waiting: ")) != NULL; p++) {
        const char *c = strchr(p, ',');
        CHECK(c != NULL);
        long long ms = strtoll(c + 1, NULL, 10);
        CHECK_GE(ms, 0);
        CHECK_LT(ms, 5000);
        waits++;
    }
    CHECK_EQ(waits, 16);
}

/* ---- sched_trace: WEFT_SCHEDTRACE=20 prints a line every 20 ms whose
 * fields parse; ",detail" adds the task dump; a bad value is an error.
 * Two tasks keep a proc busy for 200 ms (yields: switches to count). ---- */

static _Atomic int tr_stop;

static void tr_yielder(void *arg)
{
    (void)arg;
    while (!atomic_load(&tr_stop))
        weft_yield();
}

static void tr_main(void *arg)
{
    (void)arg;
    atomic_store(&tr_stop, 0);
    CHECK_OK(weft_go(tr_yielder, NULL));
    CHECK_OK(weft_sleep(200000000));
    atomic_store(&tr_stop, 1);
}

/* Runs tr_main with WEFT_SCHEDTRACE=value and stderr in buf. */
static int tr_run(const char *value, char *buf, size_t size)
{
    CHECK_OK(setenv("WEFT_SCHEDTRACE", value, 1));
    struct capture c;
    capture_begin(&c);
    weft_config cfg = {.procs = 2};
    int rc = weft_run(tr_main, NULL, &cfg);
    capture_end(&c, buf, size);
    CHECK_OK(unsetenv("WEFT_SCHEDTRACE"));
    return rc;
}

void t_sched_trace(void)
{
    static char buf[1 << 16];
    CHECK_OK(tr_run("20", buf, sizeof buf));
    int lines = 0;
    long long prev = 0, switches = 0;
    for (const char *p = buf; (p = strstr(p, "weft: SCHED ")) != NULL; p++) {
        long long ms, sw, st, pr, ho, ah, pw;
        int procs, idle, threads, spin, lent, rq;
        char q[64];
        int got = sscanf(p,
                         "weft: SCHED %lldms: procs=%d idleprocs=%d threads=%d spinningthreads=%d "
                         "lentprocs=%d runqueue=%d [%63[0-9 .]] switches=+%lld steals=+%lld "
                         "preemptions=+%lld handoffs=+%lld autohandoffs=+%lld pollwakeups=+%lld",
                         &ms, &procs, &idle, &threads, &spin, &lent, &rq, q, &sw, &st, &pr, &ho,
                         &ah, &pw);
        if (got != 14)
            fprintf(stderr, "unparsed (%d fields): %.200s\n", got, p);
        CHECK_EQ(got, 14);
        CHECK_EQ(procs, 2);
        CHECK(idle >= 0 && idle <= 2);
        CHECK_GE(threads, 1);
        CHECK_GT(ms, prev);
        /* The period, against a hang or a runaway (generous bounds). */
        CHECK_GE(ms - prev, 10);
        CHECK_LE(ms - prev, 20 + 200 * t_slack());
        prev = ms;
        switches += sw;
        lines++;
    }
    fprintf(stderr, "%d lines, the last at %lld ms, %lld switches\n", lines, prev, switches);
    CHECK_GE(lines, 200 / (20 * t_slack()) / 2);
    CHECK_LE(lines, 200 / 20 + 5);
    CHECK_GT(switches, 0);

    CHECK_OK(tr_run("50,detail", buf, sizeof buf));
    CHECK(strstr(buf, "weft: SCHED ") != NULL);
    CHECK(strstr(buf, "  task 1 [") != NULL); /* the dump after a line */
    /* And the monitor's view: its last round, and a line per proc. */
    const char *mline = strstr(buf, "  monitor: last round ");
    CHECK(mline != NULL);
    long long ago, nap;
    char lend[8];
    /* A task runs all along: the monitor naps, it does not park. */
    CHECK_EQ(sscanf(mline, "  monitor: last round %lld us ago, naps of %lld us, lending %7[a-z]",
                    &ago, &nap, lend),
             3);
    CHECK_GE(ago, 0);
    CHECK_GT(nap, 0);
    for (int i = 0; i < 2; i++) {
        char head[16];
        snprintf(head, sizeof head, "  proc %d: ", i);
        const char *pl = strstr(buf, head);
        CHECK(pl != NULL);
        const char *eol = strchr(pl, '\n');
        CHECK(eol != NULL);
        /* A running proc has the monitor's look at it too. */
        const char *cpu = strstr(pl, ", cpu ");
        if (strncmp(pl + strlen(head), "running", 7) == 0)
            CHECK(cpu != NULL && cpu < eol);
    }

    CHECK_EQ(tr_run("bogus", buf, sizeof buf), WEFT_EINVAL);
    CHECK(strstr(buf, "WEFT_SCHEDTRACE=bogus") != NULL);
    CHECK_EQ(tr_run("20,details", buf, sizeof buf), WEFT_EINVAL);
    CHECK_EQ(tr_run("0", buf, sizeof buf), WEFT_EINVAL);
}
