/* SPDX-License-Identifier: MIT */
/*
 * timer_api.c — the public timers, weft_timer_* (Go: time.Timer and
 * time.Ticker): a kern timer (timer.h) whose function sends the time on a
 * channel of capacity 1.
 *
 * A file of its own, above channels: timer.c is part of the scheduler
 * (find_runnable runs the heaps), and channels park and ready tasks
 * through the scheduler, so the public timers, which need both, sit on
 * top of both (docs/HACKING.md, "Layers").
 *
 * Each weft_timer has a lock (mu) that serialises stop, reset and free of
 * that timer; a fire takes no lock of the timer's, only the channel's.
 * Lock order (lock.h): mu before the proc's timers_lock.
 */
#include "kern/chan.h"
#include "kern/host.h"
#include "kern/sched.h"
#include "kern/timer.h"

struct weft_timer {
    struct k_timer kt;
    weft_chan *c;
    struct k_lock mu; /* serialises stop/reset/free of this timer */
    /* TIMER_LIVE from weft_timer_new until weft_timer_free (then 0): the
     * same guard as a channel's live word (chan.h), checked where t's
     * memory is known to be the run's. Relaxed: only misuse races. */
    _Atomic uint32_t live;
};

#define TIMER_LIVE 0x726d6974u /* "timr" */

/* t is not a live timer: a message naming fn, the dump, an abort. */
K_NOINLINE _Noreturn static void timer_misuse(const weft_timer *t, const char *fn)
{
    k_print("weft: %s(%p): not a live timer: used after weft_timer_free, or never made by "
            "weft_timer_new\n",
            fn, (const void *)t);
    k_panic("a freed timer was used");
}

static inline void timer_check(const weft_timer *t, const char *fn)
{
    if (K_UNLIKELY(atomic_load_explicit(&t->live, memory_order_relaxed) != TIMER_LIVE))
        timer_misuse(t, fn);
}

static void timer_fire(struct k_timer *kt, uint64_t seq, int64_t now)
{
    (void)seq;
    struct weft_timer *t = K_CONTAINER_OF(kt, struct weft_timer, kt);
    /* Capacity 1 and never blocking: a tick the reader has not taken yet
     * makes this one drop, as with Go's Ticker. */
    (void)k_chan_send(t->c, &now, false, NULL);
}

static int64_t deadline_after(int64_t delay_ns)
{
    return k_add_sat(hal_now_ns(), K_MAX(delay_ns, 0));
}

static weft_timer *timer_new(int64_t delay_ns, int64_t period_ns)
{
    struct weft_timer *t = k_zalloc(sizeof *t);
    if (!t)
        return NULL;
    t->c = weft_chan_make(sizeof(int64_t), 1);
    if (!t->c) {
        k_free(t, sizeof *t);
        return NULL;
    }
    atomic_store_explicit(&t->live, TIMER_LIVE, memory_order_relaxed);
    t->kt.fn = timer_fire;
    t->kt.period_ns = period_ns;
    t->kt.idx = -1;
    k_timer_start(&t->kt, deadline_after(delay_ns));
    return t;
}

static int timer_reset(weft_timer *t, int64_t delay_ns, int64_t period_ns)
{
    timer_check(t, "weft_timer_reset");
    k_lock(&t->mu);
    bool was = k_timer_stop(&t->kt);
    /* A fire in progress must finish before the period and seq change
     * under it (k_timer_quiesce, spinning: we hold mu); it cannot run
     * long (a non-blocking send). Acquire: pairs with the release store
     * of 0 after the fire (k_timers_run). */
    while (atomic_load_explicit(&t->kt.running, memory_order_acquire))
        hal_cpu_relax();
    t->kt.period_ns = period_ns;
    t->kt.seq++;
    k_timer_start(&t->kt, deadline_after(delay_ns));
    k_unlock(&t->mu);
    return was ? 1 : 0;
}

static void timer_free(weft_timer *t)
{
    timer_check(t, "weft_timer_free");
    k_lock(&t->mu);
    k_timer_stop(&t->kt);
    atomic_store_explicit(&t->live, 0, memory_order_relaxed);
    k_unlock(&t->mu);
    k_timer_quiesce(&t->kt);
    weft_chan_free(t->c);
    k_free(t, sizeof *t);
}

/* Host threads (not weft's) pass the gate (kern/host.h) around each call,
 * so that the run cannot end under it. */

weft_timer *weft_timer_new(int64_t delay_ns, int64_t period_ns)
{
    if (period_ns < 0)
        return NULL;
    if (k_task_self())
        return timer_new(delay_ns, period_ns);
    if (!k_host_enter())
        return NULL;
    weft_timer *t = timer_new(delay_ns, period_ns);
    k_host_leave();
    return t;
}

weft_chan *weft_timer_chan(weft_timer *t)
{
    return t ? t->c : NULL;
}

int weft_timer_stop(weft_timer *t)
{
    if (!t)
        return WEFT_EINVAL;
    bool host = !k_task_self();
    if (host && !k_host_enter())
        return 0; /* no run: nothing is pending */
    timer_check(t, "weft_timer_stop");
    k_lock(&t->mu);
    bool was = k_timer_stop(&t->kt);
    k_unlock(&t->mu);
    if (host)
        k_host_leave();
    return was ? 1 : 0;
}

int weft_timer_reset(weft_timer *t, int64_t delay_ns, int64_t period_ns)
{
    if (!t || period_ns < 0)
        return WEFT_EINVAL;
    if (k_task_self())
        return timer_reset(t, delay_ns, period_ns);
    if (!k_host_enter())
        return WEFT_ENOTASK;
    int rc = timer_reset(t, delay_ns, period_ns);
    k_host_leave();
    return rc;
}

void weft_timer_free(weft_timer *t)
{
    if (!t)
        return;
    if (k_task_self()) {
        timer_free(t);
        return;
    }
    if (!k_host_enter())
        return; /* no run: its memory, t's included, is gone */
    timer_free(t);
    k_host_leave();
}
