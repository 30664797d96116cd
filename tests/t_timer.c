/* SPDX-License-Identifier: MIT */
/*
 * t_timer.c — sleep, timers and the poller's timeouts: precision sanity,
 * many timers, stop/reset races, timers firing while every proc runs a
 * tight loop, an idle runtime using no CPU, both poller timer paths,
 * deadlock detection with timers, one thread at a time in a timer's
 * function, and timers and sleeps at the end of time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <sys/resource.h>
#endif
#include <time.h>

#include "kern/timer.h" /* white box: timer_one_firer drives a k_timer directly */
#include "tests/check.h"

int hal_poll_timer_mode(void); /* hal/posix/poll_epoll.c: 1 pwait2, 2 timerfd */

static const int procs3[3] = {1, 2, 4};

/* ---- timer_sleep: sleeps are never early and not wildly late ---- */

static void sleep_main(void *arg)
{
    (void)arg;
    static const int64_t durs[] = {10000, 100000, 1000000, 5000000};
    for (size_t d = 0; d < sizeof durs / sizeof durs[0]; d++) {
        int64_t worst = 0;
        for (int i = 0; i < 20; i++) {
            int64_t t0 = weft_now();
            CHECK_OK(weft_sleep(durs[d]));
            int64_t took = weft_now() - t0;
            CHECK_GE(took, durs[d]);
            if (took - durs[d] > worst)
                worst = took - durs[d];
        }
        /* Generous: only catches hangs and starvation (qemu, loaded CI). */
        CHECK_LT(worst, 500000000);
        fprintf(stderr, "sleep %lld us: worst overshoot %lld us (timer mode %d)\n",
                (long long)durs[d] / 1000, (long long)worst / 1000, hal_poll_timer_mode());
    }
    CHECK_OK(weft_sleep(0));
    CHECK_OK(weft_sleep(-5));
}

void t_timer_sleep(void)
{
    CHECK_EQ(weft_sleep(1000), WEFT_ENOTASK);
    for (int i = 0; i < 3; i++)
        t_run(sleep_main, NULL, procs3[i]);
}

/* Both timeout paths of the poller, forced by the environment. */
static void sleep_modes(const char *mode)
{
    setenv("WEFT_POLLER_TIMER", mode, 1);
    for (int i = 0; i < 3; i++)
        t_run(sleep_main, NULL, procs3[i]);
    unsetenv("WEFT_POLLER_TIMER");
}

void t_timer_mode_timerfd(void)
{
    sleep_modes("timerfd");
}

void t_timer_mode_pwait2(void)
{
    sleep_modes("pwait2"); /* falls back to timerfd where the kernel lacks it (qemu) */
}

/* ---- timer_mode_unknown: a WEFT_POLLER_TIMER no port knows fails the run ---- */

static void mode_noop(void *arg)
{
    (void)arg;
}

void t_timer_mode_unknown(void)
{
    weft_config cfg = {.procs = 1};
    setenv("WEFT_POLLER_TIMER", "no-such-mode", 1);
    fprintf(stderr, "expect a message naming the bad value:\n");
    int rc = weft_run(mode_noop, NULL, &cfg);
    unsetenv("WEFT_POLLER_TIMER");
    CHECK_EQ(rc, WEFT_EINVAL);
    CHECK_OK(weft_run(mode_noop, NULL, &cfg)); /* and the next run is fine */
}

/* ---- timer_many: 100k sleepers with random deadlines, none early ---- */

struct many_ctx {
    int64_t n;
    weft_waitgroup wg;
    _Atomic int64_t early, done, max_late;
};

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static struct many_ctx many;

static void many_task(void *arg)
{
    int64_t d = (int64_t)(intptr_t)arg;
    int64_t t0 = weft_now();
    CHECK_OK(weft_sleep(d));
    int64_t late = weft_now() - t0 - d;
    if (late < 0)
        atomic_fetch_add(&many.early, 1);
    int64_t m = atomic_load(&many.max_late);
    while (late > m && !atomic_compare_exchange_weak(&many.max_late, &m, late))
        ;
    atomic_fetch_add(&many.done, 1);
    weft_wg_done(&many.wg);
}

static void many_main(void *arg)
{
    (void)arg;
    uint64_t seed = 1;
    CHECK_OK(weft_wg_add(&many.wg, many.n));
    for (int64_t i = 0; i < many.n; i++)
        CHECK_OK(
            weft_go_stack(many_task, (void *)(intptr_t)(int64_t)(lcg(&seed) % 300000000), 16384));
    CHECK_OK(weft_wg_wait(&many.wg));
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.timers, 0);
}

void t_timer_many(void)
{
    for (int i = 0; i < 3; i++) {
        memset(&many, 0, sizeof many);
        many.n = t_live_stacks(t_count(100000));
        t_run(many_main, NULL, procs3[i]);
        CHECK_EQ(atomic_load(&many.done), many.n);
        CHECK_EQ(atomic_load(&many.early), 0);
        fprintf(stderr, "procs %d: %lld sleepers, max lateness %.1f ms\n", procs3[i],
                (long long)many.n, atomic_load(&many.max_late) / 1e6);
    }
}

/* ---- timer_api: one-shot, periodic, stop, reset, bad input ---- */

static void api_main(void *arg)
{
    (void)arg;
    CHECK(weft_timer_new(1000, -1) == NULL);
    CHECK_EQ(weft_timer_stop(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_timer_reset(NULL, 1, 0), WEFT_EINVAL);
    CHECK(weft_timer_chan(NULL) == NULL);
    weft_timer_free(NULL);

    /* One-shot: fires once, not early, value = its fire time. */
    int64_t t0 = weft_now();
    weft_timer *t = weft_timer_new(2000000, 0);
    CHECK(t != NULL);
    weft_chan *c = weft_timer_chan(t);
    CHECK_EQ(weft_chan_cap(c), 1);
    int64_t v = 0;
    CHECK_EQ(weft_chan_recv(c, &v), 1);
    CHECK_GE(v - t0, 2000000);
    CHECK_GE(weft_now() - t0, 2000000);
    CHECK_EQ(weft_timer_stop(t), 0); /* already fired */
    /* Reset after firing: fires again. */
    CHECK_EQ(weft_timer_reset(t, 1000000, 0), 0);
    CHECK_EQ(weft_chan_recv(c, &v), 1);
    /* Stop before it fires: 1, and nothing arrives. */
    CHECK_EQ(weft_timer_reset(t, 50000000, 0), 0);
    CHECK_EQ(weft_timer_stop(t), 1);
    CHECK_EQ(weft_timer_stop(t), 0);
    CHECK_OK(weft_sleep(60000000 / 10));
    CHECK_EQ(weft_chan_try_recv(c, &v), WEFT_EAGAIN);
    /* Reset a pending timer: 1. */
    CHECK_EQ(weft_timer_reset(t, 100000000, 0), 0);
    CHECK_EQ(weft_timer_reset(t, 1000000, 0), 1);
    CHECK_EQ(weft_chan_recv(c, &v), 1);
    weft_timer_free(t);

    /* Periodic: 5 ticks of 1 ms, increasing, about a period apart. */
    t = weft_timer_new(1000000, 1000000);
    CHECK(t != NULL);
    int64_t prev = 0;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(weft_chan_recv(weft_timer_chan(t), &v), 1);
        CHECK_GT(v, prev);
        prev = v;
    }
    CHECK_EQ(weft_timer_stop(t), 1);
    weft_timer_free(t);

    /* Negative delay fires at once. */
    t = weft_timer_new(-5, 0);
    CHECK_EQ(weft_chan_recv(weft_timer_chan(t), &v), 1);
    weft_timer_free(t);
}

void t_timer_api(void)
{
    CHECK(weft_timer_new(1000, 0) == NULL); /* outside a task */
    for (int i = 0; i < 3; i++)
        t_run(api_main, NULL, procs3[i]);
}

/* ---- timer_races: stop/reset from many tasks while timers fire ---- */

#define RACE_TIMERS 16
static weft_timer *race_t[RACE_TIMERS];
static _Atomic int64_t race_stops, race_fires;
static weft_waitgroup race_wg;
static int64_t race_rounds;

static void race_task(void *arg)
{
    uint64_t seed = (uint64_t)(intptr_t)arg + 7;
    for (int64_t i = 0; i < race_rounds; i++) {
        weft_timer *t = race_t[lcg(&seed) % RACE_TIMERS];
        switch (lcg(&seed) % 4) {
        case 0:
            if (weft_timer_stop(t) == 1)
                atomic_fetch_add(&race_stops, 1);
            break;
        case 1:
            CHECK_GE(weft_timer_reset(t, (int64_t)(lcg(&seed) % 200000), 0), 0);
            break;
        case 2:
            if (weft_chan_try_recv(weft_timer_chan(t), NULL) == 1)
                atomic_fetch_add(&race_fires, 1);
            break;
        default:
            weft_yield();
        }
    }
    weft_wg_done(&race_wg);
}

static void race_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < RACE_TIMERS; i++)
        CHECK((race_t[i] = weft_timer_new(i * 1000, 0)) != NULL);
    CHECK_OK(weft_wg_add(&race_wg, 8));
    for (int i = 0; i < 8; i++)
        CHECK_OK(weft_go(race_task, (void *)(intptr_t)i));
    CHECK_OK(weft_wg_wait(&race_wg));
    /* Every timer still works after the storm. */
    for (int i = 0; i < RACE_TIMERS; i++) {
        weft_timer_stop(race_t[i]);
        weft_chan_try_recv(weft_timer_chan(race_t[i]), NULL);
        CHECK_GE(weft_timer_reset(race_t[i], 100000, 0), 0);
        CHECK_EQ(weft_chan_recv(weft_timer_chan(race_t[i]), NULL), 1);
        weft_timer_free(race_t[i]);
    }
}

void t_timer_races(void)
{
    race_rounds = t_count(20000);
    for (int i = 0; i < 3; i++) {
        memset(&race_wg, 0, sizeof race_wg);
        t_run(race_main, NULL, procs3[i]);
    }
    fprintf(stderr, "stops %lld, fires %lld\n", (long long)race_stops, (long long)race_fires);
}

/* ---- timer_busy: timers keep firing while every proc runs a tight loop ----
 *
 * As many loops as procs, none of which ever calls the scheduler: only
 * asynchronous preemption takes a proc from them, and a proc's timers run
 * at its holder's scheduling decisions (or by a thief, and no proc is idle
 * here). Beside them: sleepers (1-5 ms sleeps), a task that re-arms a
 * one-shot weft_timer and receives from its channel, and a 2 ms ticker.
 * Every sleep and timer must come back, none early, none later than a
 * bound that only a starved timer breaks (natively the wait is about a
 * time slice, 10 ms). The loops must all have advanced meanwhile. */

#define BUSY_MAX_PROCS 4
#define BUSY_SLEEPERS 8
#define BUSY_SLEEPS 25
#define BUSY_REARMS 25
#define BUSY_TICKS 25
#define BUSY_PERIOD_NS 2000000

static struct {
    atomic_int stop;                           /* the loops leave */
    atomic_int dog;                            /* the watchdog stopped them */
    _Atomic uint64_t progress[BUSY_MAX_PROCS]; /* iterations, one per loop (relaxed) */
    weft_waitgroup spin_wg, work_wg;
    _Atomic int64_t fired, early, max_late, max_gap;
    int64_t bound_ns; /* starved beyond this */
} busy;

/* The watchdog (a plain thread): when the run has not finished in time,
 * a timer is starved; it stops the loops so that the run ends and the
 * checks report how late the timers were, instead of a hang. */
static pthread_mutex_t dog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_cv = PTHREAD_COND_INITIALIZER;
static int dog_done;

static void *busy_watchdog(void *arg)
{
    int64_t ns = *(int64_t *)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ns / 1000000000;
    pthread_mutex_lock(&dog_mu);
    int r = 0;
    while (!dog_done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&dog_cv, &dog_mu, &ts);
    if (!dog_done) {
        fprintf(stderr, "watchdog: the run took over %lld s; stopping the busy loops\n",
                (long long)(ns / 1000000000));
        atomic_store(&busy.dog, 1);
        atomic_store(&busy.stop, 1);
    }
    pthread_mutex_unlock(&dog_mu);
    return NULL;
}

static void busy_loop(void *arg)
{
    _Atomic uint64_t *prog = arg;
    uint64_t n = 0;
    /* A relaxed store is a plain store: the loop makes no call. */
    while (!atomic_load_explicit(&busy.stop, memory_order_relaxed))
        atomic_store_explicit(prog, ++n, memory_order_relaxed);
    weft_wg_done(&busy.spin_wg);
}

static void busy_max(_Atomic int64_t *m, int64_t v)
{
    int64_t cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

/* One timer came back: late is how long after its time. */
static void busy_note(int64_t late)
{
    if (late < 0)
        atomic_fetch_add(&busy.early, 1);
    busy_max(&busy.max_late, late);
    atomic_fetch_add(&busy.fired, 1);
}

static int64_t busy_dur(uint64_t *seed)
{
    return 1000000 + (int64_t)(lcg(seed) % 4000001); /* 1-5 ms */
}

static void busy_sleeper(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < BUSY_SLEEPS; i++) {
        int64_t d = busy_dur(&seed);
        int64_t t0 = weft_now();
        CHECK_OK(weft_sleep(d));
        busy_note(weft_now() - t0 - d);
    }
    weft_wg_done(&busy.work_wg);
}

/* A one-shot timer, re-armed with weft_timer_reset each round. Its value
 * is the fire time, which is never before the deadline. */
static void busy_rearm(void *arg)
{
    (void)arg;
    uint64_t seed = 99;
    weft_timer *t = weft_timer_new(INT64_MAX / 2, 0);
    CHECK(t != NULL);
    weft_chan *c = weft_timer_chan(t);
    for (int i = 0; i < BUSY_REARMS; i++) {
        int64_t d = busy_dur(&seed);
        int64_t t0 = weft_now();
        CHECK_GE(weft_timer_reset(t, d, 0), 0);
        int64_t v = 0;
        CHECK_EQ(weft_chan_recv(c, &v), 1);
        CHECK_GE(v, t0 + d);
        busy_note(weft_now() - t0 - d);
    }
    CHECK_EQ(weft_timer_stop(t), 0); /* fired: nothing pending */
    weft_timer_free(t);
    weft_wg_done(&busy.work_wg);
}

/* A periodic timer: BUSY_TICKS ticks (a tick not taken in time is dropped,
 * so the k-th one received is on the k-th point of the grid or later), and
 * no wait for the next tick much longer than a period. */
static void busy_ticker(void *arg)
{
    (void)arg;
    int64_t start = weft_now();
    weft_timer *t = weft_timer_new(BUSY_PERIOD_NS, BUSY_PERIOD_NS);
    CHECK(t != NULL);
    int64_t prev = 0, last = weft_now();
    for (int k = 1; k <= BUSY_TICKS; k++) {
        int64_t v = 0;
        CHECK_EQ(weft_chan_recv(weft_timer_chan(t), &v), 1);
        int64_t now = weft_now();
        CHECK_GE(v, start + k * BUSY_PERIOD_NS);
        CHECK_GT(v, prev);
        CHECK_LE(v, now);
        busy_max(&busy.max_gap, now - last - BUSY_PERIOD_NS);
        prev = v;
        last = now;
        atomic_fetch_add(&busy.fired, 1);
    }
    CHECK_EQ(weft_timer_stop(t), 1);
    weft_timer_free(t);
    weft_wg_done(&busy.work_wg);
}

static void busy_main(void *arg)
{
    (void)arg;
    int procs = weft_procs();
    CHECK_LE(procs, BUSY_MAX_PROCS);
    CHECK_OK(weft_wg_add(&busy.spin_wg, procs));
    for (int i = 0; i < procs; i++)
        CHECK_OK(weft_go(busy_loop, (void *)&busy.progress[i]));
    CHECK_OK(weft_wg_add(&busy.work_wg, BUSY_SLEEPERS + 2));
    for (int i = 0; i < BUSY_SLEEPERS; i++)
        CHECK_OK(weft_go(busy_sleeper, (void *)(intptr_t)i));
    CHECK_OK(weft_go(busy_rearm, NULL));
    CHECK_OK(weft_go(busy_ticker, NULL));
    /* Every loop has started (this sleep is a timer among the others). */
    for (int i = 0; i < procs; i++)
        while (busy.progress[i] == 0)
            CHECK_OK(weft_sleep(1000000));
    uint64_t seen[BUSY_MAX_PROCS];
    for (int i = 0; i < procs; i++)
        seen[i] = busy.progress[i];
    CHECK_OK(weft_wg_wait(&busy.work_wg));
    fprintf(stderr,
            "procs %d: %lld timers, max lateness %.2f ms, ticker max gap %.2f ms; "
            "loops at %llu %llu %llu %llu iterations\n",
            procs, (long long)busy.fired, busy.max_late / 1e6, busy.max_gap / 1e6,
            (unsigned long long)busy.progress[0], (unsigned long long)busy.progress[1],
            (unsigned long long)busy.progress[2], (unsigned long long)busy.progress[3]);
    CHECK_EQ(atomic_load(&busy.dog), 0);
    CHECK_EQ(busy.fired, BUSY_SLEEPERS * BUSY_SLEEPS + BUSY_REARMS + BUSY_TICKS);
    CHECK_EQ(busy.early, 0);
    CHECK_LT(busy.max_late, busy.bound_ns);
    CHECK_LT(busy.max_gap, busy.bound_ns);
    /* The loops kept running while the timers fired. */
    for (int i = 0; i < procs; i++)
        CHECK_GT(busy.progress[i], seen[i]);
    atomic_store(&busy.stop, 1);
    CHECK_OK(weft_wg_wait(&busy.spin_wg));
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.timers, 0);
    CHECK_GT(st.preemptions, 0);
}

void t_timer_busy(void)
{
    t_need_async_preempt(); /* tight loops */
    for (int i = 0; i < 3; i++) {
        memset(&busy, 0, sizeof busy);
        /* Natively a due timer waits about a time slice (10 ms) for a busy
         * proc, two at worst (measured: 15-40 ms). On a loaded machine the
         * OS adds its own delays: worker threads descheduled for tens of
         * ms, and once the monitor thread (the one that preempts) not run
         * for 7 s (perf: another session's hogs on the other CPU; autogroup
         * leaves this process little weight there), which no bound here
         * can absorb. Half a second, times the target's slowness, is still
         * below the old fallback (other procs' timers every 61 slices,
         * 0.6 s) and far below a timer that never fires. */
        busy.bound_ns = 500000000 * t_slack();
        int64_t dog_ns = 10000000000 * t_slack();
        dog_done = 0;
        pthread_t dog;
        CHECK_OK(pthread_create(&dog, NULL, busy_watchdog, &dog_ns));
        t_run(busy_main, NULL, procs3[i]);
        pthread_mutex_lock(&dog_mu);
        dog_done = 1;
        pthread_cond_signal(&dog_cv);
        pthread_mutex_unlock(&dog_mu);
        CHECK_OK(pthread_join(dog, NULL));
    }
}

/* ---- timer_idle_cpu: a sleeping runtime uses no CPU ---- */

#ifdef _WIN32
static int64_t cpu_ns(void)
{
    FILETIME c, e, k, u;
    GetProcessTimes(GetCurrentProcess(), &c, &e, &k, &u);
    uint64_t t = ((uint64_t)k.dwHighDateTime << 32 | k.dwLowDateTime) +
                 ((uint64_t)u.dwHighDateTime << 32 | u.dwLowDateTime);
    return (int64_t)t * 100;
}
#else
static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}
#endif

static void idle_main(void *arg)
{
    int64_t *used = arg;
    weft_sleep(10000000); /* let every thread settle */
    int64_t c0 = cpu_ns(), w0 = weft_now();
    /* One long sleep, and many short ones beside it in other tasks would
     * not be idle; here the whole runtime waits. */
    CHECK_OK(weft_sleep(200000000));
    used[0] = cpu_ns() - c0;
    used[1] = weft_now() - w0;
}

void t_timer_idle_cpu(void)
{
    for (int i = 0; i < 3; i++) {
        int64_t used[2];
        t_run(idle_main, used, procs3[i]);
        fprintf(stderr, "procs %d: cpu %.2f ms over %.1f ms\n", procs3[i], used[0] / 1e6,
                used[1] / 1e6);
        CHECK_LT(used[0] * 10, used[1]); /* well below wall time */
    }
}

/* ---- timer_deadlock: a pending timer is not a deadlock; none is ---- */

static void dl_main(void *arg)
{
    (void)arg;
    weft_timer *t = weft_timer_new(20000000, 0);
    /* Blocks until the timer fires: no deadlock report. */
    CHECK_EQ(weft_chan_recv(weft_timer_chan(t), NULL), 1);
    weft_timer_free(t);
    weft_chan *c = weft_chan_make(0, 0);
    weft_chan_recv(c, NULL); /* now every task blocks forever */
}

void t_timer_deadlock(void)
{
    for (int i = 0; i < 3; i++) {
        weft_config cfg = {.procs = procs3[i]};
        CHECK_EQ(weft_run(dl_main, NULL, &cfg), WEFT_EDEADLK);
    }
}

/* ---- timer_one_firer: a timer's function runs on one thread at a time ----
 *
 * A periodic k_timer whose function outlasts its period (it spins for
 * ONE_SPIN_NS, the period is ONE_PERIOD_NS): while one thread is inside
 * it, the timer is due again, and every other thread that runs that
 * proc's timers (a thief in steal_work, the holder of another proc after a
 * preemption, a thread taking an idle proc for due timers) finds it due.
 * Poker tasks on the other procs sleep in a loop so that their threads
 * keep looking at the other procs' timers. The function counts how many
 * threads are inside; more than one is the bug (and the first to return
 * used to mark the timer idle while the second was still inside, so that
 * k_timer_quiesce returned and its owner could free it under the second).
 * After k_timer_stop and k_timer_quiesce, nobody may be inside, and nobody
 * may enter later.
 *
 * Then the same for a one-shot timer started again while its function
 * runs (a poll descriptor's deadline timer is restarted so, under the
 * descriptor's lock, without waiting): the function restarts it itself,
 * due at once, so that the new fire is due during the old one every
 * round. The new fire must wait for the old one, and must still come. */

#define ONE_PERIOD_NS 100000
#define ONE_SPIN_NS 2000000
#define ONE_RUN_NS 40000000
#define ONE_ROUNDS 5

static struct {
    struct k_timer kt;
    atomic_int inside;   /* threads in one_fire right now */
    atomic_int overlaps; /* entries that found another thread inside */
    atomic_int fires;
    atomic_int quiesced; /* set once k_timer_quiesce returned */
    atomic_int after;    /* one_fire seen inside after that */
    atomic_int restart;  /* one_fire starts the timer again, once */
    atomic_int poke;     /* the pokers run while set */
    weft_waitgroup wg;
} one;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void one_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)seq;
    (void)now;
    if (atomic_fetch_add(&one.inside, 1) != 0)
        atomic_fetch_add(&one.overlaps, 1);
    if (atomic_load(&one.quiesced))
        atomic_fetch_add(&one.after, 1);
    atomic_fetch_add(&one.fires, 1);
    /* A timer's function runs holding a proc, with no timer lock: it may
     * start a timer that is not pending, as this one is not (a one-shot
     * timer leaves its heap before its function is called). */
    if (atomic_exchange(&one.restart, 0))
        k_timer_start(t, weft_now());
    int64_t end = mono_ns() + ONE_SPIN_NS;
    while (mono_ns() < end) {
    }
    if (atomic_load(&one.quiesced))
        atomic_fetch_add(&one.after, 1);
    atomic_fetch_sub(&one.inside, 1);
}

static void one_poker(void *arg)
{
    (void)arg;
    while (atomic_load(&one.poke))
        CHECK_OK(weft_sleep(20000));
    weft_wg_done(&one.wg);
}

/* Sleeps until one.fires reaches n (a loaded machine may keep the thread
 * in the function off its CPU for a while: no bound but a hang's). */
static void one_wait_fires(int n, int64_t limit)
{
    while (atomic_load(&one.fires) < n) {
        CHECK_LT(weft_now(), limit);
        CHECK_OK(weft_sleep(ONE_PERIOD_NS));
    }
}

static void one_main(void *arg)
{
    (void)arg;
    int procs = weft_procs();
    int64_t limit = weft_now() + 60000000000LL * t_slack();
    atomic_store(&one.poke, 1);
    CHECK_OK(weft_wg_add(&one.wg, procs - 1));
    for (int i = 0; i < procs - 1; i++)
        CHECK_OK(weft_go(one_poker, NULL));

    /* Periodic. */
    memset(&one.kt, 0, sizeof one.kt);
    one.kt.fn = one_fire;
    one.kt.period_ns = ONE_PERIOD_NS;
    one.kt.idx = -1;
    k_timer_start(&one.kt, weft_now() + ONE_PERIOD_NS);
    CHECK_OK(weft_sleep(ONE_RUN_NS));
    one_wait_fires(3, limit);
    CHECK(k_timer_stop(&one.kt)); /* a periodic timer stays pending */
    k_timer_quiesce(&one.kt);
    atomic_store(&one.quiesced, 1);
    int inside = atomic_load(&one.inside);
    /* Long enough for a second thread still inside to be seen leaving. */
    CHECK_OK(weft_sleep(2 * ONE_SPIN_NS));
    int after = atomic_load(&one.after), overlaps = atomic_load(&one.overlaps);
    fprintf(stderr,
            "procs %d: periodic: %d fires, %d overlapping, inside after quiesce %d (%d seen)\n",
            procs, atomic_load(&one.fires), overlaps, inside, after);
    CHECK_EQ(inside, 0);
    CHECK_EQ(after, 0);
    CHECK_EQ(overlaps, 0);

    /* One-shot, restarted by its own function. */
    for (int round = 0; round < ONE_ROUNDS; round++) {
        atomic_store(&one.quiesced, 0);
        memset(&one.kt, 0, sizeof one.kt);
        one.kt.fn = one_fire;
        one.kt.idx = -1;
        int before = atomic_load(&one.fires);
        atomic_store(&one.restart, 1);
        k_timer_start(&one.kt, weft_now());
        one_wait_fires(before + 2, limit);
        CHECK(!k_timer_stop(&one.kt)); /* fired twice: nothing pending */
        k_timer_quiesce(&one.kt);
        atomic_store(&one.quiesced, 1);
        inside = atomic_load(&one.inside);
        CHECK_OK(weft_sleep(2 * ONE_SPIN_NS));
        after = atomic_load(&one.after);
        if (inside != 0 || after != 0)
            fprintf(stderr, "round %d: %d inside after k_timer_quiesce (%d seen)\n", round, inside,
                    after);
        CHECK_EQ(inside, 0);
        CHECK_EQ(after, 0);
        CHECK_EQ(atomic_load(&one.fires), before + 2);
    }
    overlaps = atomic_load(&one.overlaps);
    fprintf(stderr, "procs %d: restarted one-shot: %d overlapping in %d rounds\n", procs, overlaps,
            ONE_ROUNDS);
    CHECK_EQ(overlaps, 0);
    atomic_store(&one.poke, 0);
    CHECK_OK(weft_wg_wait(&one.wg));
}

void t_timer_one_firer(void)
{
    static const int procs[] = {2, 4};
    for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++) {
        memset(&one, 0, sizeof one);
        t_run(one_main, NULL, procs[i]);
    }
}

/* ---- timer_huge: timers and sleeps at the end of time ----
 *
 * Durations that reach past INT64_MAX saturate there: a sleep of
 * INT64_MAX never returns (and is not a deadlock while it waits), a
 * ticker whose next tick would be past the end of time ticks once, timers
 * at INT64_MAX stay pending. None may fire early, wrap round to the past
 * (a ticker whose `when` overflowed was due for ever and kept its thread
 * firing it), or disturb the rest: with every proc idle (the monitor then
 * parks until a grace after the earliest timer, which is at INT64_MAX),
 * short sleeps and timers still come back. A watchdog turns a hang into a
 * failure with a message. */

static atomic_int huge_woke;
static pthread_mutex_t huge_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t huge_cv = PTHREAD_COND_INITIALIZER;
static int huge_done;

static void *huge_watchdog(void *arg)
{
    int64_t ns = *(int64_t *)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ns / 1000000000;
    pthread_mutex_lock(&huge_mu);
    int r = 0;
    while (!huge_done && r != ETIMEDOUT)
        r = pthread_cond_timedwait(&huge_cv, &huge_mu, &ts);
    if (!huge_done) {
        fprintf(stderr, "watchdog: timer_huge still running after %lld s: a thread hangs\n",
                (long long)(ns / 1000000000));
        fflush(NULL);
        _Exit(1);
    }
    pthread_mutex_unlock(&huge_mu);
    return NULL;
}

static void huge_sleeper(void *arg)
{
    int64_t ns = (int64_t)(intptr_t)arg;
    if (ns == 0)
        ns = INT64_MAX - weft_now(); /* until exactly the end of time */
    CHECK_OK(weft_sleep(ns));
    atomic_fetch_add(&huge_woke, 1); /* never, during the run */
}

static void huge_main(void *arg)
{
    (void)arg;
    int64_t v = 0;
    CHECK_OK(weft_go(huge_sleeper, (void *)(intptr_t)INT64_MAX));
    CHECK_OK(weft_go(huge_sleeper, (void *)(intptr_t)(INT64_MAX - 1)));
    CHECK_OK(weft_go(huge_sleeper, (void *)(intptr_t)0));
    /* Until the three have started their sleeps (their threads may be
     * late on a loaded machine): they are the pending timers at INT64_MAX
     * while every task idles below, and the only ones at the end. */
    struct weft_stats st;
    for (;;) {
        CHECK_OK(weft_stats(&st));
        if (st.timers >= 3)
            break;
        CHECK_OK(weft_sleep(1000000));
    }
    CHECK_EQ(st.timers, 3);

    /* Tickers whose second tick is past the end of time: one tick each. */
    int64_t t0 = weft_now();
    weft_timer *tk[3];
    CHECK((tk[0] = weft_timer_new(1000000, INT64_MAX)) != NULL);
    CHECK((tk[1] = weft_timer_new(0, INT64_MAX - 1)) != NULL);
    CHECK((tk[2] = weft_timer_new(2000000, INT64_MAX - t0)) != NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_chan_recv(weft_timer_chan(tk[i]), &v), 1);
        CHECK_GE(v, t0);
    }
    /* Timers at the end of time, and resets to it. */
    weft_timer *end[3];
    CHECK((end[0] = weft_timer_new(INT64_MAX, INT64_MAX)) != NULL);
    CHECK((end[1] = weft_timer_new(INT64_MAX - 1, 0)) != NULL);
    CHECK((end[2] = weft_timer_new(1000, 1000)) != NULL);
    CHECK_EQ(weft_timer_reset(end[1], INT64_MAX, INT64_MAX), 1);
    CHECK_GE(weft_timer_reset(end[2], INT64_MAX, INT64_MAX - 1), 0);
    weft_chan_try_recv(weft_timer_chan(end[2]), NULL); /* a tick before the reset */

    /* Every task idle for a while: the threads must not be stuck firing. */
    CHECK_OK(weft_sleep(30000000));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_chan_try_recv(weft_timer_chan(tk[i]), &v), WEFT_EAGAIN);
        CHECK_EQ(weft_chan_try_recv(weft_timer_chan(end[i]), &v), WEFT_EAGAIN);
    }
    CHECK_EQ(atomic_load(&huge_woke), 0);
    /* Short timers and sleeps still work beside them. */
    weft_timer *t = weft_timer_new(1000000, 0);
    CHECK(t != NULL);
    CHECK_EQ(weft_chan_recv(weft_timer_chan(t), &v), 1);
    weft_timer_free(t);
    CHECK_OK(weft_sleep(1000000));
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(weft_timer_stop(tk[i]), 1); /* still pending, at INT64_MAX */
        CHECK_EQ(weft_timer_stop(end[i]), 1);
        weft_timer_free(tk[i]);
        weft_timer_free(end[i]);
    }
    CHECK_EQ(atomic_load(&huge_woke), 0);
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.timers, 3); /* the three sleepers */
}

void t_timer_huge(void)
{
    int64_t dog_ns = 20000000000LL * t_slack();
    pthread_t dog;
    huge_done = 0;
    CHECK_OK(pthread_create(&dog, NULL, huge_watchdog, &dog_ns));
    for (int i = 0; i < 3; i++) {
        atomic_store(&huge_woke, 0);
        t_run(huge_main, NULL, procs3[i]);
        fprintf(stderr, "procs %d: ok\n", procs3[i]);
    }
    pthread_mutex_lock(&huge_mu);
    huge_done = 1;
    pthread_cond_signal(&huge_cv);
    pthread_mutex_unlock(&huge_mu);
    CHECK_OK(pthread_join(dog, NULL));
}
