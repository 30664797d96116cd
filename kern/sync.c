/* SPDX-License-Identifier: MIT */
/*
 * sync.c — weft_mutex, weft_rwmutex, weft_cond, weft_waitgroup and
 * weft_once: locks that park tasks, never threads (Go: sync/mutex.go,
 * rwmutex.go, cond.go, waitgroup.go, once.go; internal/sync/mutex.go).
 *
 * What it owns: nothing global. Every object is a user's zero-initialised
 * struct from weft.h; its words are changed only with atomics (through the
 * K_ATOMIC_* views of sema.h), and tasks park on its semaphore words in
 * sema.c's table.
 *
 * ---- weft_mutex ----
 *
 * state (int32): bit 0 LOCKED, bit 1 WOKEN (a task is awake and competing
 * for the lock: unlock need not wake another), bit 2 STARVING, bits 3..31
 * the number of tasks parked or about to park on `sema`.
 *
 * Two modes. Normal: parked waiters are FIFO, but a woken waiter does not
 * own the lock; it competes with arriving tasks, which are already running
 * and usually win, and after losing it parks again at the front. Fast,
 * because the running task can take the lock many times in a row.
 * Starvation: a waiter that has waited more than STARVATION_NS sets
 * STARVING; from then on unlock hands the lock directly to the first
 * waiter (semaphore handoff, and the unlocker yields its proc to it), and
 * arriving tasks neither take the lock nor spin: they queue at the back.
 *
 *   NORMAL, free --- lock: a CAS sets LOCKED ---> NORMAL, locked
 *        ^          (arrivals and woken waiters     |    |
 *        |           race for it)                   |    |
 *        +--- unlock: clears LOCKED; wakes one -----+    |
 *             parked waiter unless one is awake          |
 *                                                        | a woken waiter that has
 *                                                        | waited > 1 ms finds it
 *                                                        v held: sets STARVING
 *                                                STARVING, locked <----------+
 *                                                        |                   |
 *                  unlock: clears LOCKED, hands the unit |                   | (b)
 *                  to the first waiter and yields to it  |                   |
 *                                                        v                   |
 *                                                STARVING, handed off -------+
 *                                                        |
 *   LOCKED is clear while handed off, but the lock      | (a)
 *   belongs to the woken waiter: trylock fails, unlock  v
 *   says WEFT_EINVAL, arrivals queue.              NORMAL, locked
 *
 *   The woken waiter sets LOCKED itself: (a) if it waited < 1 ms or is the
 *   last waiter it also clears STARVING, else (b) starvation mode goes on.
 *
 * Spinning: in normal mode an arriving task spins a few rounds before it
 * parks (ACTIVE_SPIN rounds of ACTIVE_SPIN_RELAX pauses: a few
 * microseconds), only when procs > 1 and another proc is busy (with one,
 * the holder cannot run meanwhile) and our run queue is empty. While
 * spinning it sets WOKEN so that unlock does not wake a parked waiter
 * needlessly.
 *
 * Departures from Go, written down:
 *  - Unlocking an unlocked mutex returns WEFT_EINVAL and leaves the state
 *    as it was (Go throws). So unlock is a CAS loop instead of an add.
 *  - trylock retries its CAS while the lock looks free (Go gives up on
 *    the first failure, e.g. when only the waiter count changed).
 *  - Calls outside a task: unlock, signal, broadcast and the waitgroup's
 *    add/done work on a host thread (one that is not weft's) while a run
 *    runs: they pass the host gate (kern/host.h) before they may wake a
 *    task, which goes to the global queue (k_ready without a proc). With
 *    no run (or one that is stopping) they work as long as they need not
 *    wake a parked task; if they would have to, they return WEFT_ENOTASK
 *    and change nothing.
 *
 * ---- weft_rwmutex ----
 *
 * w serialises writers. reader_count counts readers that hold or wait for
 * the read lock; a writer that has the w lock subtracts MAX_READERS from
 * it, which makes it negative: arriving readers see that and park on
 * reader_sem (writer preference: a waiting writer stops new readers).
 * reader_wait counts the readers that were active when the writer arrived;
 * each of them decrements it on runlock and the last one releases
 * writer_sem. The writer's unlock adds MAX_READERS back and releases one
 * unit of reader_sem per reader that parked meanwhile, then unlocks w.
 *
 * ---- weft_cond ----
 *
 * A ticket notify list (sema.c): wait takes a ticket while still holding
 * the mutex, unlocks, and parks until its ticket is notified; signal
 * notifies the oldest unnotified ticket, broadcast all of them. Nothing is
 * lost between the unlock and the park, and waiters wake in FIFO order.
 *
 * ---- weft_waitgroup ----
 *
 * state (uint64): counter in the high 32 bits, parked waiters in the low
 * 32. The add that brings the counter to 0 while waiters > 0 is then the
 * only one allowed to change the state (adds racing with it are misuse and
 * get WEFT_EINVAL, waits see counter 0 and return): it resets the state to
 * 0 and releases `sema` once per waiter.
 *
 * ---- weft_once ----
 *
 * done is read with an acquire load on the fast path; the slow path runs
 * fn under the once's mutex and publishes done with a release store after
 * fn returns, so every caller that returns has seen fn's effects.
 *
 * Memory orders: the fast paths name theirs; everything else uses the
 * sequentially consistent default, as Go's sync/atomic does.
 */
#include "kern/host.h"
#include "kern/lock.h"
#include "kern/proc.h" /* k_sched's idle counts and the run queue, for spinning */
#include "kern/sema.h"
#include "weft.h"

#define MUTEX_LOCKED 1
#define MUTEX_WOKEN 2
#define MUTEX_STARVING 4
#define MUTEX_WAITER_SHIFT 3
#define MUTEX_WAITER (1 << MUTEX_WAITER_SHIFT)

/* A waiter that waited longer than this switches the mutex to starvation
 * mode (Go: starvationThresholdNs). */
#define STARVATION_NS 1000000

/* Spinning before parking (Go: active_spin, active_spin_cnt). */
#define ACTIVE_SPIN 4
#define ACTIVE_SPIN_RELAX 30

/* Readers an rwmutex can count; more than this is undefined, as in Go. */
#define RW_MAX_READERS (1 << 30)

static bool in_task(void)
{
    return k_task_self() != NULL;
}

/*
 * For the waking calls (unlock, signal, broadcast, wg add): whether the
 * caller may wake a parked task. A task may. A host thread may while a run
 * runs: it enters the host gate, and *gate says it must call k_host_leave
 * when done; otherwise it may not (no run: it fails with WEFT_ENOTASK only
 * if a task would have to be woken).
 */
static bool can_wake(bool *gate)
{
    *gate = false;
    if (in_task())
        return true;
    *gate = k_host_enter();
    return *gate;
}

/* ---- Objects that were never zeroed ----
 *
 * Every sync object starts as all zeroes (weft.h). One that never was
 * (stack or heap garbage) is refused with WEFT_EINVAL, before anything
 * changes, where its contents show it: a field weft keeps at 0 that is
 * not, a count outside its range, or more tasks waiting than the run has
 * made (every waiter is a task: hosts never wait on these). Garbage that
 * happens to look like a used object cannot be told from one. Each check
 * reads what the operation reads anyway, off its fast path where it has
 * one (a CAS from 0 that succeeds saw a zeroed word). */

static bool waiters_impossible(uint64_t n)
{
    /* Every waiter is a task of the run, made before it counted itself:
     * more waiters than tasks made so far (ids handed out, next_id - 1)
     * cannot be. next_id only grows during a run, so a count read a while
     * ago cannot raise a false alarm (tasks alive could: they may end
     * between the two reads, a count of them was seen too low that way).
     * The fence orders this load after the caller's read of the count,
     * which read the waiters' own read-modify-writes: their ids are seen. */
    if (n == 0)
        return false;
    atomic_thread_fence(memory_order_acquire);
    uint64_t made = atomic_load_explicit(&k_sched.next_id, memory_order_relaxed);
    return made != 0 && n >= made; /* 0: no run to count by (outside one) */
}

static bool mutex_garbage(int32_t state)
{
    return state < 0 || waiters_impossible((uint32_t)state >> MUTEX_WAITER_SHIFT);
}

/* ---- weft_mutex ---- */

_Noreturn static void mutex_bad_state(weft_mutex *m, int32_t state)
{
    k_print("weft: sync: mutex %p has state %x\n", (void *)m, (unsigned)state);
    k_panic("sync: inconsistent mutex state");
}

/* Whether spinning on a held (normal mode) mutex is worth it (Go:
 * sync_runtime_canSpin): only a few rounds; only with more than one proc,
 * and only while some other proc is busy (running the holder, perhaps)
 * and no task waits in our own run queue, which spinning would delay.
 * Reads the scheduler's counters without its lock: a stale value only
 * costs a spin round or a park too early. */
static bool mutex_can_spin(int iter)
{
    if (iter >= ACTIVE_SPIN)
        return false;
    int32_t nprocs = k_sched.nprocs;
    int32_t idle = atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) +
                   atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed);
    if (nprocs <= 1 || nprocs <= idle + 1)
        return false;
    struct thread *th = k_thread_self();
    return th != NULL && th->proc != NULL && k_runq_empty(th->proc);
}

static void mutex_spin(void)
{
    for (int i = 0; i < ACTIVE_SPIN_RELAX; i++)
        hal_cpu_relax();
}

/* The lock's slow path (Go: lockSlow). From a task; may park. */
static void mutex_lock_slow(weft_mutex *m)
{
    _Atomic int32_t *sp = K_ATOMIC_I32(&m->state);
    bool waited = false; /* parked at least once */
    int64_t wait_start_ns = 0;
    bool starving = false; /* we waited longer than STARVATION_NS */
    bool awoke = false;    /* we own the WOKEN bit */
    int iter = 0;
    /* Relaxed loads of state only seed a CAS, which re-reads it. Every CAS
     * and add here is seq_cst: the one that takes the lock (LOCKED set
     * from clear) is the acquire that pairs with weft_mutex_unlock's
     * release CAS. */
    int32_t old = atomic_load_explicit(sp, memory_order_relaxed);

    for (;;) {
        /* Spin only on a normal-mode lock that is held: in starvation
         * mode the lock goes to the first waiter, never to us. */
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == MUTEX_LOCKED && mutex_can_spin(iter)) {
            /* Claim WOKEN so that unlock does not wake a parked waiter
             * while we are about to take the lock ourselves. */
            if (!awoke && (old & MUTEX_WOKEN) == 0 && (old >> MUTEX_WAITER_SHIFT) != 0 &&
                atomic_compare_exchange_strong(sp, &old, old | MUTEX_WOKEN))
                awoke = true;
            mutex_spin();
            iter++;
            old = atomic_load_explicit(sp, memory_order_relaxed);
            continue;
        }

        int32_t next = old;
        /* A starving mutex is never taken by CAS: arrivals queue. */
        if ((old & MUTEX_STARVING) == 0)
            next |= MUTEX_LOCKED;
        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) != 0)
            next += MUTEX_WAITER;
        /* Switch to starvation mode only while the lock is held: unlock
         * expects a starving mutex to have waiters, which an unlocked one
         * may not have once we take it. */
        if (starving && (old & MUTEX_LOCKED) != 0)
            next |= MUTEX_STARVING;
        if (awoke) {
            /* We were woken (or claimed WOKEN while spinning): give the
             * bit back whatever happens next. */
            if ((next & MUTEX_WOKEN) == 0)
                mutex_bad_state(m, next);
            next &= ~MUTEX_WOKEN;
        }

        if (!atomic_compare_exchange_strong(sp, &old, next))
            continue; /* old now holds the current state */

        if ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == 0)
            return; /* we set LOCKED on a free mutex */
        if ((next & MUTEX_STARVING) != 0 && (old & MUTEX_STARVING) == 0)
            k_sync_note_starvation();

        /* We are counted as a waiter: park. A task that waited before
         * keeps its place at the front of the queue. */
        bool lifo = waited;
        if (!waited) {
            waited = true;
            wait_start_ns = hal_now_ns();
        }
        k_sema_acquire(&m->sema, lifo, WAIT_MUTEX, m);
        starving = starving || hal_now_ns() - wait_start_ns > STARVATION_NS;

        /* A handed-off lock: the previous holder's critical section is
         * ordered before us by its release CAS of state (which this load
         * reads or follows) and by k_sema_release's k_ready. */
        old = atomic_load(sp);
        if ((old & MUTEX_STARVING) != 0) {
            /* Handed off: we own the lock, but LOCKED is clear and we are
             * still counted as a waiter. Fix both in one add; leave
             * starvation mode if we did not really starve or nobody else
             * waits (two tasks could otherwise stay in lock-step handoff
             * forever). */
            if ((old & (MUTEX_LOCKED | MUTEX_WOKEN)) != 0 || (old >> MUTEX_WAITER_SHIFT) == 0)
                mutex_bad_state(m, old);
            int32_t delta = MUTEX_LOCKED - MUTEX_WAITER;
            if (!starving || (old >> MUTEX_WAITER_SHIFT) == 1)
                delta -= MUTEX_STARVING;
            atomic_fetch_add(sp, delta);
            return;
        }
        /* Normal mode: the releaser set WOKEN for us; compete again. */
        awoke = true;
        iter = 0;
    }
}

int weft_mutex_lock(weft_mutex *m)
{
    if (m == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    int32_t expect = 0;
    /* Acquire: pairs with the release in weft_mutex_unlock. */
    if (K_LIKELY(atomic_compare_exchange_strong_explicit(K_ATOMIC_I32(&m->state), &expect,
                                                         MUTEX_LOCKED, memory_order_acquire,
                                                         memory_order_relaxed)))
        return 0;
    if (mutex_garbage(expect))
        return WEFT_EINVAL;
    mutex_lock_slow(m);
    return 0;
}

int weft_mutex_trylock(weft_mutex *m)
{
    if (m == NULL)
        return WEFT_EINVAL;
    _Atomic int32_t *sp = K_ATOMIC_I32(&m->state);
    /* Relaxed load and CAS failure: they only seed the next CAS. The
     * successful CAS is the acquire, pairing with weft_mutex_unlock's
     * release. */
    int32_t old = atomic_load_explicit(sp, memory_order_relaxed);
    if (mutex_garbage(old))
        return WEFT_EINVAL;
    /* Retry while the lock looks free: a failed CAS may only mean the
     * waiter count changed. A starving mutex belongs to its waiters. */
    while ((old & (MUTEX_LOCKED | MUTEX_STARVING)) == 0) {
        if (atomic_compare_exchange_weak_explicit(sp, &old, old | MUTEX_LOCKED,
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
    return WEFT_EAGAIN;
}

/* After unlocking to state `next`: must somebody be woken? In starvation
 * mode always (the lock is handed to the first waiter); in normal mode
 * when tasks wait and none is awake already. (Go: the first test in
 * unlockSlow.) */
static bool mutex_unlock_must_wake(int32_t next)
{
    if ((next & MUTEX_STARVING) != 0)
        return true;
    return (next >> MUTEX_WAITER_SHIFT) != 0 && (next & (MUTEX_LOCKED | MUTEX_WOKEN)) == 0;
}

/* The unlock's slow path (Go: unlockSlow); next is the state our unlock
 * left. From a task (weft_mutex_unlock checks). May yield. */
static void mutex_unlock_slow(weft_mutex *m, int32_t next)
{
    _Atomic int32_t *sp = K_ATOMIC_I32(&m->state);
    if ((next & MUTEX_STARVING) != 0) {
        /* Hand the lock to the first waiter and let it run now. LOCKED
         * stays clear until it wakes, but STARVING keeps arrivals out. */
        k_sema_release(&m->sema, true);
        return;
    }
    int32_t old = next;
    for (;;) {
        /* Nobody waits, or a task is awake and will take it, or someone
         * already took the lock (its unlock will wake), or it went
         * starving after our unlock (then handoff is not ours to do). */
        if ((old >> MUTEX_WAITER_SHIFT) == 0 ||
            (old & (MUTEX_LOCKED | MUTEX_WOKEN | MUTEX_STARVING)) != 0)
            return;
        /* Take one waiter off the count and the right to wake it.
         * (seq_cst; the lock itself was released by our unlock's CAS.) */
        if (atomic_compare_exchange_strong(sp, &old, (old - MUTEX_WAITER) | MUTEX_WOKEN)) {
            k_sema_release(&m->sema, false);
            return;
        }
    }
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (m == NULL)
        return WEFT_EINVAL;
    _Atomic int32_t *sp = K_ATOMIC_I32(&m->state);
    int32_t old = MUTEX_LOCKED;
    /* Fast path: locked, nobody waits. Release: pairs with the acquire of
     * the next lock (the CAS that sets LOCKED in weft_mutex_lock,
     * trylock, mutex_lock_slow). A failed CAS's relaxed value only seeds
     * the loop below, whose release CAS is the unlock. */
    if (K_LIKELY(atomic_compare_exchange_strong_explicit(sp, &old, 0, memory_order_release,
                                                         memory_order_relaxed)))
        return 0;
    if (mutex_garbage(old))
        return WEFT_EINVAL;
    bool gate;
    bool may_wake = can_wake(&gate);
    int rc;
    for (;;) {
        /* Not locked (this includes a starving handoff in flight, which
         * belongs to the woken waiter): refuse, change nothing. */
        if ((old & MUTEX_LOCKED) == 0) {
            rc = WEFT_EINVAL;
            break;
        }
        int32_t next = old - MUTEX_LOCKED;
        bool wake = mutex_unlock_must_wake(next);
        if (wake && !may_wake) {
            rc = WEFT_ENOTASK;
            break;
        }
        if (atomic_compare_exchange_weak_explicit(sp, &old, next, memory_order_release,
                                                  memory_order_relaxed)) {
            if (wake)
                mutex_unlock_slow(m, next);
            rc = 0;
            break;
        }
    }
    if (gate)
        k_host_leave();
    return rc;
}

/* ---- weft_rwmutex ---- */

/* reader_count stays in [-RW_MAX_READERS, RW_MAX_READERS) (a writer
 * subtracts RW_MAX_READERS from the readers' count), and reader_wait in
 * (-RW_MAX_READERS, RW_MAX_READERS] (departing readers may take it below
 * 0 before the writer adds their number); and w is a mutex. */
static bool rw_garbage(weft_rwmutex *rw)
{
    int32_t r = atomic_load_explicit(K_ATOMIC_I32(&rw->reader_count), memory_order_relaxed);
    int32_t w = atomic_load_explicit(K_ATOMIC_I32(&rw->reader_wait), memory_order_relaxed);
    return r < -RW_MAX_READERS || r >= RW_MAX_READERS || w <= -RW_MAX_READERS ||
           w > RW_MAX_READERS ||
           mutex_garbage(atomic_load_explicit(K_ATOMIC_I32(&rw->w.state), memory_order_relaxed));
}

int weft_rwmutex_rlock(weft_rwmutex *rw)
{
    if (rw == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (rw_garbage(rw))
        return WEFT_EINVAL;
    /* Negative: a writer holds or waits for the lock; it will release
     * reader_sem once for us when it unlocks. seq_cst (so acquire): reads
     * the writer's unlock CAS of reader_count, or parks until its
     * k_sema_release, which orders the writer's section before ours. */
    if (atomic_fetch_add(K_ATOMIC_I32(&rw->reader_count), 1) + 1 < 0)
        k_sema_acquire(&rw->reader_sem, false, WAIT_RWMUTEX_R, rw);
    return 0;
}

int weft_rwmutex_runlock(weft_rwmutex *rw)
{
    if (rw == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (rw_garbage(rw))
        return WEFT_EINVAL;
    _Atomic int32_t *rc = K_ATOMIC_I32(&rw->reader_count);
    /* The load seeds the CAS; the seq_cst CAS is the release of our read
     * section (the writer acquires it through reader_wait or its
     * semaphore). */
    int32_t r = atomic_load(rc);
    for (;;) {
        /* No reader counted, with or without a writer: nothing to undo. */
        if (r == 0 || r == -RW_MAX_READERS)
            return WEFT_EINVAL;
        if (atomic_compare_exchange_weak(rc, &r, r - 1))
            break;
    }
    if (r - 1 < 0) {
        /* A writer waits for the readers it saw; the last of them
         * releases it. Pairs with the writer's add to reader_wait, which
         * may come after our decrement (then the sum reaches 0 there).
         * seq_cst RMWs: the writer's acquire of reader_wait (or its
         * semaphore) orders every reader's section before its own. */
        if (atomic_fetch_sub(K_ATOMIC_I32(&rw->reader_wait), 1) - 1 == 0)
            k_sema_release(&rw->writer_sem, false);
    }
    return 0;
}

int weft_rwmutex_lock(weft_rwmutex *rw)
{
    if (rw == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (rw_garbage(rw))
        return WEFT_EINVAL;
    /* Writers queue on w first. */
    int rc = weft_mutex_lock(&rw->w);
    if (rc != 0)
        return rc;
    /* Announce the writer: from now on readers park. r readers are active. */
    int32_t r = atomic_fetch_add(K_ATOMIC_I32(&rw->reader_count), -RW_MAX_READERS);
    /* Wait for them, unless they all left already (their decrements of
     * reader_wait may precede our add: the sum is what counts). */
    if (r != 0 && atomic_fetch_add(K_ATOMIC_I32(&rw->reader_wait), r) + r != 0)
        k_sema_acquire(&rw->writer_sem, false, WAIT_RWMUTEX_W, rw);
    return 0;
}

int weft_rwmutex_unlock(weft_rwmutex *rw)
{
    if (rw == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (rw_garbage(rw))
        return WEFT_EINVAL;
    _Atomic int32_t *rc = K_ATOMIC_I32(&rw->reader_count);
    /* The load seeds the CAS; the seq_cst CAS is a release that pairs with
     * weft_rwmutex_rlock's add (readers that arrive from now on), and
     * reader_sem carries it to those that parked. */
    int32_t r = atomic_load(rc);
    for (;;) {
        /* Not negative: no writer holds it. */
        if (r >= 0)
            return WEFT_EINVAL;
        if (atomic_compare_exchange_weak(rc, &r, r + RW_MAX_READERS))
            break;
    }
    /* Readers that arrived while we held the lock are parked (or about to
     * park) on reader_sem: one unit each. */
    for (int32_t i = r + RW_MAX_READERS; i > 0; i--)
        k_sema_release(&rw->reader_sem, false);
    int rc2 = weft_mutex_unlock(&rw->w);
    k_assert(rc2 == 0);
    (void)rc2;
    return 0;
}

/* ---- weft_cond ---- */

/* lock and pad_ are never written. (Its tickets cannot be vetted from
 * outside its lock: read one after the other, notify may already be past
 * the wait read first.) */
static bool cond_garbage(weft_cond *c)
{
    return c->lock != 0 || c->pad_ != 0;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m)
{
    if (c == NULL || m == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (cond_garbage(c))
        return WEFT_EINVAL;
    /* The caller must hold m. (Who holds it is not recorded; this catches
     * a mutex that nobody holds.) */
    if ((atomic_load(K_ATOMIC_I32(&m->state)) & MUTEX_LOCKED) == 0)
        return WEFT_EINVAL;
    uint32_t t = k_notify_add(c);
    int rc = weft_mutex_unlock(m);
    if (rc != 0) {
        /* m was unlocked by someone else since the check above (misuse).
         * Our ticket can never be waited for, so a later signal would
         * fall on it; spend one notification now so none is lost (at
         * worst some waiter wakes early). */
        k_notify_one(c, true);
        return rc;
    }
    k_notify_wait(c, t);
    rc = weft_mutex_lock(m);
    k_assert(rc == 0);
    return 0;
}

int weft_cond_signal(weft_cond *c)
{
    if (c == NULL || cond_garbage(c))
        return WEFT_EINVAL;
    bool gate;
    bool ok = k_notify_one(c, can_wake(&gate));
    if (gate)
        k_host_leave();
    return ok ? 0 : WEFT_ENOTASK;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (c == NULL || cond_garbage(c))
        return WEFT_EINVAL;
    bool gate;
    bool ok = k_notify_all(c, can_wake(&gate));
    if (gate)
        k_host_leave();
    return ok ? 0 : WEFT_ENOTASK;
}

/* ---- weft_waitgroup ---- */

/* pad_ is never written; the counter (high half of state) stays in
 * [0, INT32_MAX]. */
static bool wg_garbage(weft_waitgroup *wg)
{
    uint64_t st = atomic_load_explicit(K_ATOMIC_U64(&wg->state), memory_order_relaxed);
    return wg->pad_ != 0 || (int32_t)(st >> 32) < 0 || waiters_impossible((uint32_t)st);
}

static int wg_add(weft_waitgroup *wg, int64_t delta, bool may_wake);

int weft_wg_add(weft_waitgroup *wg, int64_t delta)
{
    if (wg == NULL || wg_garbage(wg))
        return WEFT_EINVAL;
    if (delta == 0)
        return 0;
    bool gate;
    bool may_wake = can_wake(&gate);
    int rc = wg_add(wg, delta, may_wake);
    if (gate)
        k_host_leave();
    return rc;
}

/* weft_wg_add's body; may_wake: see can_wake. */
static int wg_add(weft_waitgroup *wg, int64_t delta, bool may_wake)
{
    _Atomic uint64_t *sp = K_ATOMIC_U64(&wg->state);
    uint64_t old = atomic_load(sp);
    int32_t v;
    uint32_t w;
    for (;;) {
        v = (int32_t)(old >> 32);
        w = (uint32_t)old;
        /* The counter stays in [0, INT32_MAX]; a change that would leave
         * it changes nothing. v >= 0, so -v and INT32_MAX - v cannot overflow,
         * and delta is only ever compared, never added unchecked. */
        if (delta < 0 ? delta < -(int64_t)v : delta > (int64_t)INT32_MAX - v)
            return WEFT_EINVAL;
        /* Counter 0 with waiters: another add is releasing them right now.
         * An add from 0 must happen before the wait (Go panics). */
        if (v == 0 && w != 0)
            return WEFT_EINVAL;
        v += (int32_t)delta;
        if (v == 0 && w != 0 && !may_wake)
            return WEFT_ENOTASK; /* the waiters could not be woken */
        uint64_t next = ((uint64_t)(uint32_t)v << 32) | w;
        if (atomic_compare_exchange_weak(sp, &old, next))
            break;
    }
    if (v > 0 || w == 0)
        return 0;
    /* We brought the counter to 0 with w waiters. Nobody else changes the
     * state now (adds get WEFT_EINVAL, waits see counter 0 and return), so
     * reset it for reuse before waking them. The waiters' return happens
     * after every done: each done's RMW on state is in the release
     * sequence our CAS read from, and the semaphore carries that on. */
    atomic_store(sp, 0);
    for (; w != 0; w--)
        k_sema_release(&wg->sema, false);
    return 0;
}

int weft_wg_done(weft_waitgroup *wg)
{
    return weft_wg_add(wg, -1);
}

int weft_wg_wait(weft_waitgroup *wg)
{
    if (wg == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    if (wg_garbage(wg))
        return WEFT_EINVAL;
    _Atomic uint64_t *sp = K_ATOMIC_U64(&wg->state);
    uint64_t s = atomic_load(sp);
    for (;;) {
        if ((s >> 32) == 0)
            return 0; /* seq_cst load: acquires the last done's CAS */
        if (atomic_compare_exchange_weak(sp, &s, s + 1)) {
            k_sema_acquire(&wg->sema, false, WAIT_WAITGROUP, wg);
            return 0;
        }
    }
}

/* ---- weft_once ---- */

int weft_once_do(weft_once *o, void (*fn)(void *), void *arg)
{
    if (o == NULL || fn == NULL)
        return WEFT_EINVAL;
    if (!in_task())
        return WEFT_ENOTASK;
    _Atomic uint32_t *donep = K_ATOMIC_U32(&o->done);
    /* Acquire: pairs with the release store below, so fn's effects are
     * visible to every caller that returns. */
    uint32_t done = atomic_load_explicit(donep, memory_order_acquire);
    if (K_LIKELY(done == 1))
        return 0;
    /* Never zeroed: done is 0 or 1, and pad_ is never written. */
    if (done != 0 || o->pad_ != 0)
        return WEFT_EINVAL;
    int rc = weft_mutex_lock(&o->m);
    if (rc != 0)
        return rc;
    /* Relaxed: done is stored only under o->m, which we hold. */
    if (atomic_load_explicit(donep, memory_order_relaxed) == 0) {
        fn(arg);
        atomic_store_explicit(donep, 1, memory_order_release);
    }
    rc = weft_mutex_unlock(&o->m);
    k_assert(rc == 0);
    (void)rc;
    return 0;
}
