/*
 * timer.c — per-proc timer heaps, weft_sleep and the public timers (Go:
 * time.go's addtimer/deltimer/runtimer since 1.14, and time.Timer).
 *
 * Each proc has a 4-ary min-heap of pending timers ordered by when, under
 * the proc's timers_lock, and publishes its earliest time in timer0 so that
 * others can see without the lock whether anything is due (Go: timer0When).
 * A timer goes into the heap of the proc whose thread starts it and stays
 * there until it fires or is stopped: procs are fixed for a run, so timers
 * never migrate (Go moves them only when GOMAXPROCS shrinks).
 *
 * Who runs a heap's due timers: the proc's holder at each scheduling
 * decision (find_runnable), any spinning thread for a victim while it
 * steals, and so the thread that blocks in the poller when nothing is left
 * to do, which sleeps until k_timers_earliest() and then looks again.
 * Unlike Go's checkTimers, a thread holding a proc stops when its run
 * queue is out of room (see k_timers_run): woken tasks must not overflow
 * to the back of the global queue. A timer's function is called with no lock held, so it may ready tasks and
 * send on channels (not park). Rejected: Go's lock-free timer status
 * machine (timerModifying, timerMoving, ...): a lock per heap, held for a
 * few hundred ns, is what Go itself went back to in 1.23.
 *
 * weft_sleep parks the task first and starts its timer from the park's
 * unlock callback (on the scheduler stack, after the task is WAITING), so
 * the timer can never fire at a task that is still running.
 */
#include "kern/timer.h"

#include "kern/chan.h"
#include "kern/poller.h"
#include "kern/proc.h"

#define HEAP_ARY 4

/* ---- the heap (p->timers_lock held) ---- */

/* A slot keeps a copy of its timer's when (Go 1.23: timerWhen), so that
 * sifting compares within the heap array instead of loading each child's
 * timer, which lives on its task's stack, a cache miss each: with 100k
 * sleepers, sift_down was a fifth of the CPU of the timers bench. */

static void heap_set(struct proc *p, uint32_t i, struct k_timer_slot s)
{
    p->timers[i] = s;
    s.t->idx = (int32_t)i;
}

static void sift_up(struct proc *p, uint32_t i)
{
    struct k_timer_slot s = p->timers[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / HEAP_ARY;
        if (p->timers[parent].when <= s.when)
            break;
        heap_set(p, i, p->timers[parent]);
        i = parent;
    }
    heap_set(p, i, s);
}

static void sift_down(struct proc *p, uint32_t i)
{
    struct k_timer_slot s = p->timers[i];
    uint32_t n = p->ntimers;
    for (;;) {
        uint32_t c = i * HEAP_ARY + 1;
        if (c >= n)
            break;
        uint32_t best = c;
        for (uint32_t k = c + 1; k < c + HEAP_ARY && k < n; k++)
            if (p->timers[k].when < p->timers[best].when)
                best = k;
        if (p->timers[best].when >= s.when)
            break;
        heap_set(p, i, p->timers[best]);
        i = best;
    }
    heap_set(p, i, s);
}

static void publish_timer0(struct proc *p)
{
    atomic_store_explicit(&p->timer0, p->ntimers ? p->timers[0].when : 0, memory_order_release);
}

/* Grows the heap so one more fits; false without memory. */
static bool heap_grow(struct proc *p)
{
    if (p->ntimers < p->timers_cap)
        return true;
    uint32_t cap = p->timers_cap ? p->timers_cap * 2 : 64;
    struct k_timer_slot *a = k_alloc(sizeof *a * cap);
    if (!a)
        return false;
    if (p->ntimers)
        memcpy(a, p->timers, sizeof *a * p->ntimers);
    if (p->timers)
        k_free(p->timers, sizeof *a * p->timers_cap);
    p->timers = a;
    p->timers_cap = cap;
    return true;
}

static void heap_push(struct proc *p, struct k_timer *t)
{
    uint32_t i = p->ntimers++;
    p->timers[i] = (struct k_timer_slot){t->when, t};
    atomic_store_explicit(&t->proc, p, memory_order_relaxed);
    sift_up(p, i);
}

static void heap_remove(struct proc *p, struct k_timer *t)
{
    uint32_t i = (uint32_t)t->idx;
    k_assert(i < p->ntimers && p->timers[i].t == t);
    uint32_t last = --p->ntimers;
    atomic_store_explicit(&t->proc, NULL, memory_order_relaxed);
    t->idx = -1;
    if (i == last)
        return;
    heap_set(p, i, p->timers[last]);
    if (i > 0 && p->timers[i].when < p->timers[(i - 1) / HEAP_ARY].when)
        sift_up(p, i);
    else
        sift_down(p, i);
}

/* ---- kern's interface ---- */

void k_timer_start(struct k_timer *t, int64_t when)
{
    struct thread *th = k_thread_self();
    k_check(th && th->proc);
    k_assert(atomic_load_explicit(&t->proc, memory_order_relaxed) == NULL);
    struct proc *p = th->proc;
    if (when < 1)
        when = 1;
    k_lock(&p->timers_lock);
    while (!heap_grow(p)) {
        /* No memory for a bigger heap: wait for some, as a stack would. */
        k_unlock(&p->timers_lock);
        k_print("weft: out of memory for a timer heap; retrying\n");
        hal_sleep_ns(1000000);
        k_lock(&p->timers_lock);
    }
    t->when = when;
    heap_push(p, t);
    bool earliest = p->timers[0].t == t;
    if (earliest)
        publish_timer0(p);
    k_unlock(&p->timers_lock);
    if (earliest)
        k_poll_wake_for(when);
}

bool k_timer_stop(struct k_timer *t)
{
    for (;;) {
        struct proc *p = atomic_load_explicit(&t->proc, memory_order_acquire);
        if (!p)
            return false;
        k_lock(&p->timers_lock);
        if (atomic_load_explicit(&t->proc, memory_order_relaxed) != p) {
            k_unlock(&p->timers_lock);
            continue; /* fired (or moved by a reset) meanwhile */
        }
        bool was_top = p->timers[0].t == t;
        heap_remove(p, t);
        if (was_top)
            publish_timer0(p);
        k_unlock(&p->timers_lock);
        return true;
    }
}

void k_timer_quiesce(struct k_timer *t)
{
    while (atomic_load_explicit(&t->running, memory_order_acquire)) {
        if (k_task_self())
            k_yield();
        else
            hal_cpu_relax();
    }
}

int64_t k_timers_run(struct proc *p, int64_t now)
{
    int64_t t0 = atomic_load_explicit(&p->timer0, memory_order_acquire);
    if (t0 == 0 || t0 > now)
        return t0;
    /* What a timer readies goes to the caller's proc (runnext, pushing the
     * task there to the ring). Stop when that would overflow: half the
     * ring, readied tasks included, would go to the tail of the global
     * queue, behind everything there (100k unstarted spawns: half a second
     * late), while a due timer left in the heap fires at the next
     * scheduling decision that has room, or by a thief. Room returns when
     * the holder runs runnext or a ring task: a due timer waits no longer
     * than the tasks already on this proc. */
    struct thread *th = k_thread_self();
    struct proc *dst = th ? th->proc : NULL;
    k_lock(&p->timers_lock);
    while (p->ntimers && p->timers[0].when <= now &&
           (dst == NULL || k_runq_has_room(dst))) {
        struct k_timer *t = p->timers[0].t;
        uint64_t seq = t->seq;
        if (t->period_ns > 0) {
            /* Periodic: next time on the grid, skipping missed ticks. */
            t->when += t->period_ns * (1 + (now - t->when) / t->period_ns);
            p->timers[0].when = t->when;
            sift_down(p, 0);
        } else {
            heap_remove(p, t);
        }
        atomic_store_explicit(&t->running, 1, memory_order_relaxed);
        publish_timer0(p);
        k_unlock(&p->timers_lock);
        t->fn(t, seq, now);
        atomic_store_explicit(&t->running, 0, memory_order_release);
        k_lock(&p->timers_lock);
    }
    publish_timer0(p);
    int64_t next = p->ntimers ? p->timers[0].when : 0;
    k_unlock(&p->timers_lock);
    return next;
}

int64_t k_timers_earliest(void)
{
    int64_t best = 0;
    for (int i = 0; i < k_sched.nprocs; i++) {
        int64_t w = atomic_load_explicit(&k_sched.procs[i]->timer0, memory_order_acquire);
        if (w && (best == 0 || w < best))
            best = w;
    }
    return best;
}

uint64_t k_timers_count(void)
{
    uint64_t n = 0;
    for (int i = 0; i < k_sched.nprocs; i++)
        n += *(volatile uint32_t *)&k_sched.procs[i]->ntimers; /* racy read: statistics */
    return n;
}

void k_timers_fini(struct proc *p)
{
    if (p->timers)
        k_free(p->timers, sizeof *p->timers * p->timers_cap);
    p->timers = NULL;
    p->ntimers = p->timers_cap = 0;
}

/* ---- weft_sleep ---- */

static void sleep_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)seq;
    (void)now;
    k_ready_any((struct task *)t->arg);
}

/* Park callback: the task is WAITING; start its timer. */
static bool sleep_arm(struct task *self, void *arg)
{
    (void)self;
    struct k_timer *t = arg;
    k_timer_start(t, t->when);
    return true;
}

int weft_sleep(int64_t ns)
{
    struct task *self = k_task_self();
    if (!self)
        return WEFT_ENOTASK;
    if (ns <= 0) {
        k_yield();
        return 0;
    }
    struct k_timer t;
    memset(&t, 0, sizeof t);
    t.fn = sleep_fire;
    t.arg = self;
    int64_t now = hal_now_ns();
    t.when = ns > INT64_MAX - now ? INT64_MAX : now + ns;
    k_park(sleep_arm, &t, WAIT_SLEEP, NULL);
    /* The timer fired (it is the only waker): off every heap. Its function
     * may still be returning on another thread: wait for that before the
     * stack frame holding t goes away. */
    k_timer_quiesce(&t);
    return 0;
}

/* ---- public timers (Go's time.Timer and time.Ticker) ---- */

struct weft_timer {
    struct k_timer kt;
    weft_chan *c;
    struct k_lock mu; /* serialises stop/reset/free of this timer */
};

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
    int64_t now = hal_now_ns();
    if (delay_ns < 0)
        delay_ns = 0;
    return delay_ns > INT64_MAX - now ? INT64_MAX : now + delay_ns;
}

weft_timer *weft_timer_new(int64_t delay_ns, int64_t period_ns)
{
    if (period_ns < 0 || !k_task_self())
        return NULL;
    struct weft_timer *t = k_zalloc(sizeof *t);
    if (!t)
        return NULL;
    t->c = weft_chan_make(sizeof(int64_t), 1);
    if (!t->c) {
        k_free(t, sizeof *t);
        return NULL;
    }
    t->kt.fn = timer_fire;
    t->kt.period_ns = period_ns;
    t->kt.idx = -1;
    k_timer_start(&t->kt, deadline_after(delay_ns));
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
    k_lock(&t->mu);
    bool was = k_timer_stop(&t->kt);
    k_unlock(&t->mu);
    return was ? 1 : 0;
}

int weft_timer_reset(weft_timer *t, int64_t delay_ns, int64_t period_ns)
{
    if (!t || period_ns < 0)
        return WEFT_EINVAL;
    if (!k_task_self())
        return WEFT_ENOTASK;
    k_lock(&t->mu);
    bool was = k_timer_stop(&t->kt);
    /* A fire in progress must finish before the period changes under it;
     * it cannot run long (a non-blocking send). */
    while (atomic_load_explicit(&t->kt.running, memory_order_acquire))
        hal_cpu_relax();
    t->kt.period_ns = period_ns;
    t->kt.seq++;
    k_timer_start(&t->kt, deadline_after(delay_ns));
    k_unlock(&t->mu);
    return was ? 1 : 0;
}

void weft_timer_free(weft_timer *t)
{
    if (!t || !k_sched.procs)
        return;
    k_lock(&t->mu);
    k_timer_stop(&t->kt);
    k_unlock(&t->mu);
    k_timer_quiesce(&t->kt);
    weft_chan_free(t->c);
    k_free(t, sizeof *t);
}
