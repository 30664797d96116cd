/*
 * t_timer.c — sleep, timers and the poller's timeouts: precision sanity,
 * many timers, stop/reset races, an idle runtime using no CPU, both
 * poller timer paths, deadlock detection with timers.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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
        CHECK_OK(weft_go_stack(many_task, (void *)(intptr_t)(int64_t)(lcg(&seed) % 300000000), 16384));
    CHECK_OK(weft_wg_wait(&many.wg));
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_EQ(st.timers, 0);
}

void t_timer_many(void)
{
    for (int i = 0; i < 3; i++) {
        memset(&many, 0, sizeof many);
        many.n = t_count(100000);
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

/* ---- timer_idle_cpu: a sleeping runtime uses no CPU ---- */

static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

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
