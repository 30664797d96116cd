/* SPDX-License-Identifier: MIT */
/*
 * timer.c — per-proc timer heaps and weft_sleep (Go: time.go's
 * addtimer/deltimer/runtimer since 1.14). The public timers, which
 * deliver on a channel, are built on these in timer_api.c.
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
 * to the back of the global queue. A timer's function is called with no
 * lock held, so it may ready tasks and send on channels (not park).
 * Rejected: Go's lock-free timer status machine (timerModifying,
 * timerMoving, ...): a lock per heap, held only for a heap operation, is
 * what Go itself went back to in 1.23.
 *
 * Several threads run one heap's timers, so a timer can be due on one
 * while another is still in its function (a periodic timer slower than
 * its period, a one-shot one restarted during its fire). One state word,
 * running (timer.h), claimed under the heap lock, keeps the function on
 * one thread at a time; it is also what k_timer_quiesce waits on before
 * an owner frees the timer.
 *
 * weft_sleep parks the task first and starts its timer from the park's
 * unlock callback (on the scheduler stack, after the task is WAITING), so
 * the timer can never fire at a task that is still running.
 */
#include "kern/timer.h"

#include "kern/ktest.h"
#include "kern/poller.h"
#include "kern/proc.h"

#define HEAP_ARY 4

/* ---- the heap (p->timers_lock held) ---- */

/* A slot keeps a copy of its timer's when (Go 1.23: timerWhen), so that
 * sifting compares within the heap array instead of loading each child's
 * timer, which lives on its task's stack, a cache miss each: with many
 * sleepers sift_down dominated the timers bench (docs/benchmarks.md,
 * "Figures behind the code"). */

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

/* Publishes p's earliest time after it became later (or the heap empty):
 * a timer fired, moved later or stopped. Nobody needs waking for that, so
 * a release store suffices (it pairs with the acquire loads of thieves,
 * which lock the heap anyway before touching it). A time that became
 * earlier is published by k_timer_start, seq_cst (see there). */
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
    /* Relaxed: a lock-free reader (k_timer_stop) only uses it to find the
     * heap's lock, and checks it again under that lock. */
    atomic_store_explicit(&t->proc, p, memory_order_relaxed);
    sift_up(p, i);
}

static void heap_remove(struct proc *p, struct k_timer *t)
{
    uint32_t i = (uint32_t)t->idx;
    k_assert(i < p->ntimers && p->timers[i].t == t);
    uint32_t last = --p->ntimers;
    /* Release: pairs with k_timer_stop's acquire load (timer.h). */
    atomic_store_explicit(&t->proc, NULL, memory_order_release);
    t->idx = -1;
    if (i == last)
        return;
    heap_set(p, i, p->timers[last]);
    if (i > 0 && p->timers[i].when < p->timers[(i - 1) / HEAP_ARY].when)
        sift_up(p, i);
    else
        sift_down(p, i);
}

/* A due periodic timer's next time on its grid after now (missed ticks
 * are skipped), INT64_MAX when that is past the end of time: a period
 * that would carry when past INT64_MAX must not wrap it round to the
 * past, where the timer would be due for ever and its thread would fire
 * it for ever. t->when <= now, so every term is >= 0:
 * when + period * (1 + (now - when) / period), with the product written
 * as period + the whole periods in (now - when), which cannot overflow. */
static int64_t next_tick(const struct k_timer *t, int64_t now)
{
    int64_t late = now - t->when;
    return k_add_sat(t->when, k_add_sat(t->period_ns, late - late % t->period_ns));
}

/* ---- kern's interface ---- */

void k_timer_start(struct k_timer *t, int64_t when)
{
    struct thread *th = k_thread_self();
    /* Relaxed: the owner's own check that it stopped t (or t fired, which
     * k_timer_stop's acquire told it). */
    k_assert(atomic_load_explicit(&t->proc, memory_order_relaxed) == NULL);
    bool host = th == NULL;
    struct proc *p;
    if (!host) {
        k_check(th->proc != NULL);
        p = th->proc;
    } else {
        /* A host thread (inside the gate, kern/host.h) holds no proc: the
         * timer goes to a heap picked by its address, spreading a host's
         * timers over the procs. */
        p = k_sched.procs[((uintptr_t)t >> 6) % (uintptr_t)k_sched.nprocs];
    }
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
    /* The heap's earliest time became earlier: a thread blocked in the
     * poller may sleep past it. Store-buffering with the poller: we store
     * timer0 and then load sched.last_poll (k_poll_wake_for); the poller
     * stores last_poll = 0 and then loads every timer0
     * (k_timers_earliest, in poll_or_stop). All four accesses are
     * seq_cst, so at least one side sees the other's store: we see 0 and
     * wake the poller, or it sees our time and wakes by it. C11 promises
     * that only when all four are seq_cst: a release store or an acquire
     * load is outside the single total order. (Hardware would mostly
     * order them anyway through the lock release in between, x86's xchg
     * or ARMv8's stlr before ldar, but not an acquire load compiled to
     * ARMv8.3's ldapr after the poller's swap.) */
    if (earliest)
        atomic_store_explicit(&p->timer0, when, memory_order_seq_cst);
    k_unlock(&p->timers_lock);
    if (earliest)
        k_poll_wake_for(when);
    /* A task's thread will look at the timers when it next schedules; a
     * host thread has no such thread. If every worker is parked (and none
     * blocks in the poller, which k_poll_wake_for handles), wake one: it
     * finds the timer and blocks in the poller until it is due. The fence
     * in k_wakep_global pairs with the last spinner's, as for a task put
     * on the global queue. */
    if (host)
        k_wakep_global();
}

bool k_timer_stop(struct k_timer *t)
{
    for (;;) {
        /* Acquire: pairs with heap_remove's release store of NULL, after
         * which a fire's running = 1 is visible to k_timer_quiesce. */
        struct proc *p = atomic_load_explicit(&t->proc, memory_order_acquire);
        if (!p)
            return false;
        k_lock(&p->timers_lock);
        /* Relaxed: under the heap lock, which orders every store to it. */
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
    /* Acquire: pairs with the release store of 0 after fn returned in
     * k_timers_run; what fn did is visible from here on. */
    while (atomic_load_explicit(&t->running, memory_order_acquire)) {
        if (k_task_self())
            k_yield();
        else
            hal_cpu_relax();
    }
}

int64_t k_timers_run(struct proc *p, int64_t now)
{
    /* A hint (the heap is read again under its lock); acquire pairs with
     * publish_timer0's release, though nothing depends on it. */
    int64_t t0 = atomic_load_explicit(&p->timer0, memory_order_acquire);
    if (t0 == 0 || t0 > now)
        return t0;
    /* What a timer readies goes to the caller's proc (runnext, pushing the
     * task there to the ring). Stop when that would overflow: half the
     * ring, readied tasks included, would go to the tail of the global
     * queue, behind everything there (behind 100k unstarted spawns, say:
     * docs/poller.md), while a due timer left in the heap fires at the next
     * scheduling decision that has room, or by a thief. Room returns when
     * the holder runs runnext or a ring task: a due timer waits no longer
     * than the tasks already on this proc. */
    struct thread *th = k_thread_self();
    struct proc *dst = th ? th->proc : NULL;
    k_lock(&p->timers_lock);
    while (p->ntimers && p->timers[0].when <= now && (dst == NULL || k_runq_has_room(dst))) {
        struct k_timer *t = p->timers[0].t;
        /* Acquire: pairs with the release store of 0 below, on the thread
         * that ran the previous fire; its effects are visible to ours. */
        if (atomic_load_explicit(&t->running, memory_order_acquire)) {
            /* Due while another thread is still in its function (timer.h:
             * running). Calling it here too would run fn on two threads,
             * and the first to return would clear running while the
             * second is inside, so an owner's k_timer_quiesce would let
             * it free t under the second. Move it later instead, without
             * firing: a periodic timer to its next tick (this one is
             * dropped), a one-shot one by a retry delay. It fires when
             * due again with the other fire over. */
            t->when = t->period_ns > 0 ? next_tick(t, now) : k_add_sat(now, K_TIMER_BUSY_RETRY_NS);
            p->timers[0].when = t->when;
            sift_down(p, 0);
            continue;
        }
        uint64_t seq = t->seq;
        /* Ours to fire: claim it before it leaves the heap or moves, so
         * that nobody else fires it meanwhile, and an owner that sees it
         * off the heap (proc NULL) sees it running (timer.h). Relaxed:
         * under the heap lock, which whoever finds t in this heap takes;
         * proc's release store orders it for the others. */
        atomic_store_explicit(&t->running, 1, memory_order_relaxed);
        if (t->period_ns > 0) {
            /* Periodic: next time on the grid, skipping missed ticks. */
            t->when = next_tick(t, now);
            p->timers[0].when = t->when;
            sift_down(p, 0);
        } else {
            heap_remove(p, t);
        }
        publish_timer0(p);
        k_unlock(&p->timers_lock);
        t->fn(t, seq, now);
        /* Release: pairs with the acquire loads of running (above,
         * k_timer_quiesce, weft_timer_reset). From here on t may be
         * freed or reused: do not touch it. */
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
    int n = k_procs_all(); /* lent spares' timers too */
    for (int i = 0; i < n; i++) {
        /* seq_cst: pairs with k_timer_start's seq_cst store, for the
         * poller's side of the store-buffering protocol described there
         * (poll_or_stop swaps last_poll to 0 and then calls this). */
        int64_t w = atomic_load_explicit(&k_sched.procs[i]->timer0, memory_order_seq_cst);
        if (w && (best == 0 || w < best))
            best = w;
    }
    return best;
}

uint64_t k_timers_count(void)
{
    /* Each heap's count under its lock (a plain racy read was a data
     * race with every push and pop); weft_stats is not a hot path. */
    uint64_t n = 0;
    int np = k_procs_all();
    for (int i = 0; i < np; i++) {
        struct proc *p = k_sched.procs[i];
        k_lock(&p->timers_lock);
        n += p->ntimers;
        k_unlock(&p->timers_lock);
    }
    return n;
}

void k_timers_fini(struct proc *p)
{
    if (p->timers)
        k_free(p->timers, sizeof *p->timers * p->timers_cap);
    p->timers = NULL;
    p->ntimers = p->timers_cap = 0;
}

/* ---- White-box hooks for the tests (kern/ktest.h) ---- */

int k_timers_check(struct proc *p)
{
    for (uint32_t i = 0; i < p->ntimers; i++) {
        struct k_timer_slot s = p->timers[i];
        if (s.t->idx != (int32_t)i || s.when != s.t->when ||
            atomic_load_explicit(&s.t->proc, memory_order_relaxed) != p ||
            (i > 0 && p->timers[(i - 1) / HEAP_ARY].when > s.when))
            return (int)i;
    }
    int64_t t0 = atomic_load_explicit(&p->timer0, memory_order_relaxed);
    if (t0 != (p->ntimers ? p->timers[0].when : 0))
        return (int)p->ntimers;
    return -1;
}

/* ---- weft_sleep ---- */

static void sleep_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)seq;
    (void)now;
    k_ready((struct task *)t->arg);
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
    t.when = k_add_sat(hal_now_ns(), ns);
    k_park(sleep_arm, &t, WAIT_SLEEP, NULL);
    /* The timer fired (it is the only waker): off every heap. Its function
     * may still be returning on another thread: wait for that before the
     * stack frame holding t goes away. */
    k_timer_quiesce(&t);
    return 0;
}
