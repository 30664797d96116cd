/* SPDX-License-Identifier: MIT */
/*
 * sched.c — the scheduler: each thread's loop, finding work, parking and
 * readying tasks, and parking and waking threads (Go: schedule,
 * findRunnable, execute, park_m, gopark, goready, wakep, startm, stopm in
 * proc.go).
 *
 * Worker thread parking and unparking
 * -----------------------------------
 * The problem is Go's: keep enough threads running to use every proc that
 * has work, and no more, without ever leaving a runnable task unnoticed
 * while threads sleep. Waking a thread per readied task wastes CPU and
 * futex calls when work is fine-grained; never waking leaves procs idle.
 * Go's answer, which weft keeps:
 *
 *  - A thread that finds nothing in its own queue becomes *spinning*
 *    (counted in sched.nspinning) and steals from others. At most half of
 *    the busy procs' worth of threads spin at once.
 *  - Whoever makes a task runnable (k_ready, spawn) calls k_wakep, which
 *    starts or wakes one thread only when idle procs exist and nobody
 *    spins: a spinning thread will find the task anyway.
 *  - A spinning thread that finds work stops spinning; if it was the last
 *    spinner it wakes another (there may be more work where it found some).
 *  - A spinning thread that finds nothing gives its proc back to the idle
 *    list, then (1) decrements nspinning, (2) a #StoreLoad fence, (3) looks
 *    at every proc's queue and the global queue once more. If it sees work
 *    it takes an idle proc and spins again. A concurrent readier that saw
 *    nspinning != 0 before step 1 relied on this re-check; one that saw 0
 *    starts a thread itself.
 *
 * A readied task is always put on the readier's own proc, which is held by
 * a running thread; so a missed wake-up costs parallelism for a moment, never
 * progress: that thread will run the task. This is why k_ready needs no
 * fence of its own.
 *
 * Deadlock: the last thread to go idle, with every other thread idle too,
 * knows no task can ever run (nothing holds a proc, every queue is empty,
 * and no thread is anywhere else, e.g. in a blocking call). It reports and
 * stops the run (Go: checkdead).
 *
 * Blocking calls and locked threads (block.c): a proc whose thread is in a
 * blocking call is PROC_SYSCALL; the monitor retakes it and k_handoff
 * gives it to another thread. A thread with a locked task runs nothing
 * else: when the task switches out, the thread hands its proc off and
 * waits (locked_wait); whoever later picks the task from a run queue hands
 * its own proc to that thread instead of running it (hand_locked). Such
 * waiting threads count as idle for the deadlock check (Go: nmidlelocked).
 *
 * Switching: a task switches to its thread's scheduler context (Go: mcall
 * to g0), and the scheduler, on its own stack, finishes what the task asked
 * for (requeue, park, exit) only after the task's context is saved: the
 * "enqueue, then switch" race cannot happen by construction. The one
 * exception, a park or yield that switches straight to the next task of
 * its proc, keeps the same order (see "Direct switches" below).
 */
#include "kern/host.h"
#include "kern/poller.h"
#include "kern/proc.h"

struct sched k_sched;

/* ---- Thread structs and abandoned threads (weft_run's end: runtime.c) ---- */

/* Threads abandoned in a blocking call that have not ended yet, across
 * runs (k_orphans_live). Incremented by weft_run (k_orphan_begin),
 * decremented by the thread as the last thing it does with weft (release:
 * its stack and struct are gone by then). */
static _Atomic uint32_t orphans_live;

static size_t thread_bytes(void)
{
    return K_ROUND_UP(sizeof(struct thread), hal_page_size());
}

struct thread *k_thread_alloc(void)
{
    size_t size = thread_bytes();
    struct thread *th = hal_mem_reserve(size, hal_page_size());
    if (th == NULL)
        return NULL;
    if (hal_mem_commit(th, size) != 0) {
        hal_mem_release(th, size);
        return NULL;
    }
    memset(th, 0, sizeof *th);
    return th;
}

void k_thread_free(struct thread *th)
{
    hal_mem_release(th, thread_bytes());
}

void k_orphan_begin(void)
{
    /* Relaxed: the count publishes nothing. weft_run's release store of
     * ORPHANED, after this, orders it before the thread's decrement
     * (which follows its acquire load of ORPHANED), so the count never
     * goes below zero; and k_orphans_live's readers read it after
     * weft_run returns, on its thread or one ordered after it. */
    atomic_fetch_add_explicit(&orphans_live, 1, memory_order_relaxed);
}

void k_orphan_exit(struct thread *th)
{
    void *region = th->orphan_region;
    k_thread_free(th);
    k_stack_unkeep(region);
    /* Release: pairs with the acquire load in k_orphans_live; whoever sees
     * the count drop sees th and its stack let go. */
    atomic_fetch_sub_explicit(&orphans_live, 1, memory_order_release);
}

uint32_t k_orphans_live(void)
{
    /* Acquire: pairs with the decrement in k_orphan_exit. */
    return atomic_load_explicit(&orphans_live, memory_order_acquire);
}

/* ---- thread parking (the thread's own futex word) ---- */

static void thread_park(struct thread *th)
{
    /* Acquire: pairs with the release store of wake in thread_unpark.
     * The reset is relaxed: only th writes 0, and the next unpark comes
     * from whoever handed th work after that (through sched.lock, which
     * th takes to put itself on an idle list, or through the run queue
     * that carried th's locked task to hand_locked), so after the reset. */
    while (atomic_load_explicit(&th->wake, memory_order_acquire) == 0)
        hal_futex_wait((uint32_t *)&th->wake, 0, -1);
    atomic_store_explicit(&th->wake, 0, memory_order_relaxed);
}

static void thread_unpark(struct thread *th)
{
    /* Pairs with the acquire load in thread_park: next_proc and spinning,
     * written before, are visible to the woken thread. */
    atomic_store_explicit(&th->wake, 1, memory_order_release);
    hal_futex_wake((uint32_t *)&th->wake, 1);
}

static void wakep_for_global(void);
static bool any_work(void);

/* ---- idle lists (sched.lock held) ---- */

/* Ends the loan of the spare p (sched.lock held; p held by nobody, or by
 * the caller, who forgets it): what is queued on it goes to the global
 * queue, p to sched.spares. Returns whether it queued anything (the caller
 * then wakes a thread: wakep_for_global). */
static bool spare_put(struct proc *p)
{
    k_lock_assert_held(&k_sched.lock);
    k_assert(p->id >= k_sched.nprocs);
    bool moved = false;
    struct task *t;
    /* The holder's right to pop (we are it, or nobody is); thieves may
     * still take from the head meanwhile, which k_runq_get tolerates. */
    while ((t = k_runq_get(p)) != NULL) {
        k_globrunq_put(t);
        moved = true;
    }
    /* status, retire: relaxed, under sched.lock like IDLE (proc_idle_put).
     * thread: release like every store of it; NULL publishes nothing.
     * nactive: written only under the lock; seq_cst like nidle_procs, whose
     * lock-free readers compare the two. */
    atomic_store_explicit(&p->status, PROC_SPARE, memory_order_relaxed);
    atomic_store_explicit(&p->thread, NULL, memory_order_release);
    atomic_store_explicit(&p->retire, false, memory_order_relaxed);
    p->spare_next = k_sched.spares;
    k_sched.spares = p;
    atomic_store_explicit(&k_sched.nactive,
                          atomic_load_explicit(&k_sched.nactive, memory_order_relaxed) - 1,
                          memory_order_seq_cst);
    return moved;
}

static void proc_idle_put(struct proc *p)
{
    k_lock_assert_held(&k_sched.lock);
    /* An idle proc has nothing queued; a stopping run may leave tasks
     * anywhere (they are discarded). */
    k_assert(k_runq_empty(p) || atomic_load_explicit(&k_sched.stopping, memory_order_relaxed));
    /* A spare whose loan ended goes back to the spares instead (relaxed:
     * retire is written under sched.lock, which we hold). Nothing is
     * queued on it, so nothing needs waking. */
    if (atomic_load_explicit(&p->retire, memory_order_relaxed)) {
        (void)spare_put(p);
        return;
    }
    /* status: relaxed, a hint for thieves (k_runq_steal) and the monitor;
     * the idle list under sched.lock is the truth, and the monitor only
     * acts on PROC_SYSCALL, which block.c publishes with release.
     * nidle_procs: written only under sched.lock (hence load + store); the
     * lock orders it for k_handoff's and stopm's checks, and seq_cst puts
     * it in the total order that k_wakep's lock-free reads come from. */
    atomic_store_explicit(&p->status, PROC_IDLE, memory_order_relaxed);
    p->thread = NULL;
    p->idle_next = k_sched.idle_procs;
    k_sched.idle_procs = p;
    atomic_store_explicit(&k_sched.nidle_procs,
                          atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) + 1,
                          memory_order_seq_cst);
}

static struct proc *proc_idle_get(void)
{
    k_lock_assert_held(&k_sched.lock);
    struct proc *p = k_sched.idle_procs;
    if (!p)
        return NULL;
    k_sched.idle_procs = p->idle_next;
    p->idle_next = NULL;
    /* A fresh clock for its next holder (published with the proc, by
     * sched.lock or next_proc): an idle proc's is as old as its last busy
     * spell, and tasks parking on it date their waits by it (k_park). */
    p->clock_ns = hal_now_ns();
    /* As in proc_idle_put. */
    atomic_store_explicit(&p->status, PROC_RUNNING, memory_order_relaxed);
    int32_t n = atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed);
    atomic_store_explicit(&k_sched.nidle_procs, n - 1, memory_order_seq_cst);
    /* Every proc was idle, so the monitor may be parked: work appeared.
     * nactive: relaxed, written only under sched.lock, which we hold. */
    if (n == atomic_load_explicit(&k_sched.nactive, memory_order_relaxed))
        k_monitor_work();
    return p;
}

static void thread_idle_put(struct thread *th)
{
    k_lock_assert_held(&k_sched.lock);
    th->idle_next = k_sched.idle_threads;
    k_sched.idle_threads = th;
    k_sched.nidle_threads++;
}

/* Takes th itself back off the idle list (sched.lock held). */
static void thread_idle_get_this(struct thread *th)
{
    k_lock_assert_held(&k_sched.lock);
    struct thread **pp = &k_sched.idle_threads;
    while (*pp != th)
        pp = &(*pp)->idle_next;
    *pp = th->idle_next;
    th->idle_next = NULL;
    k_sched.nidle_threads--;
}

static struct thread *thread_idle_get(void)
{
    k_lock_assert_held(&k_sched.lock);
    struct thread *th = k_sched.idle_threads;
    if (!th)
        return NULL;
    k_sched.idle_threads = th->idle_next;
    th->idle_next = NULL;
    k_sched.nidle_threads--;
    return th;
}

/* Whether nothing can make progress on its own (sched.lock held): every
 * thread is idle (or waits for its locked task) and every proc is on the
 * idle list. The procs matter too: the monitor hands a retaken proc to a
 * thread without being a thread itself, and while it does the proc is
 * neither idle nor held, and tasks on its queue are about to run. */
static bool everyone_idle(void)
{
    k_lock_assert_held(&k_sched.lock);
    /* nidle_procs, nactive: relaxed, written only under sched.lock, which
     * we hold. */
    return k_sched.nidle_threads + k_sched.nidle_locked == k_sched.nthreads &&
           atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) ==
               atomic_load_explicit(&k_sched.nactive, memory_order_relaxed);
}

/* Stops the run with result (sched.lock held): wakes every idle thread so
 * that it leaves its loop. The first result wins. */
static void stop_locked(int result)
{
    k_lock_assert_held(&k_sched.lock);
    /* stopping is written only here, under sched.lock. Readers poll it
     * relaxed: a stale false costs one more round, and every decision to
     * sleep (stopm, locked_wait, find_runnable) re-reads it under the
     * lock. result: relaxed; our seq_cst store of stopping publishes it,
     * and k_sched_loop's acquire load of stopping on the way out pairs
     * with that store (weft_run reads result before joining threads). */
    if (!atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
        atomic_store_explicit(&k_sched.result, result, memory_order_relaxed);
        atomic_store_explicit(&k_sched.stopping, true, memory_order_seq_cst);
    }
    struct thread *th;
    while ((th = thread_idle_get()) != NULL) {
        th->next_proc = NULL;
        thread_unpark(th);
    }
    while ((th = k_sched.locked_threads) != NULL) {
        k_sched.locked_threads = th->locked_next;
        th->locked_next = NULL;
        th->locked_idle = false;
        k_sched.nidle_locked--;
        th->next_proc = NULL;
        thread_unpark(th);
    }
    hal_poll_wake(); /* and the thread blocked in the poller, if any */
    k_monitor_wake();
}

void k_stop_the_world(int result)
{
    k_lock(&k_sched.lock);
    stop_locked(result);
    k_unlock(&k_sched.lock);
}

/* ---- starting threads ---- */

static void thread_main(void *arg)
{
    struct thread *th = arg;
    hal_thread_set(th);
    th->os = hal_thread_self();
    k_lock(&k_sched.lock);
    th->proc = th->next_proc;
    th->next_proc = NULL;
    k_unlock(&k_sched.lock);
    /* Release, like every store of p->thread: pairs with the monitor's
     * acquire load (preempt_one), which then reads th's fields. */
    if (th->proc)
        atomic_store_explicit(&th->proc->thread, th, memory_order_release);
    k_sched_loop(th);
    hal_thread_set(NULL);
    if (K_UNLIKELY(th->why == SW_ORPHAN)) {
        k_orphan_exit(th); /* abandoned by weft_run: nothing of the run is ours */
        return;
    }
    /* Release: pairs with weft_run's acquire load before it joins. */
    atomic_store_explicit(&th->call, CALL_EXITED, memory_order_release);
    hal_futex_wake((uint32_t *)&th->call, 1);
}

int k_thread_start(struct thread *th)
{
    k_lock(&k_sched.lock);
    th->id = k_sched.nthreads;
    int rc = hal_thread_start(thread_main, th, &th->handle);
    if (rc == 0) {
        /* As in startm: on the list only with a valid handle. */
        th->all_next = k_sched.all_threads;
        k_sched.all_threads = th;
        k_sched.nthreads++;
    }
    k_unlock(&k_sched.lock);
    return rc == 0 ? 0 : WEFT_ENOMEM;
}

/* Go: startm. Hands p (or an idle proc when p is NULL) to an idle thread,
 * or to a new one. With spinning, the caller has already counted the
 * thread in nspinning; the count is undone if no proc is free. */
static void startm(struct proc *p, bool spinning)
{
    k_lock(&k_sched.lock);
    if (!p)
        p = proc_idle_get();
    if (!p || atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
        if (p)
            proc_idle_put(p);
        k_unlock(&k_sched.lock);
        /* seq_cst, like every update of nspinning: k_wakep's CAS and the
         * spinner's decrement-then-fence rely on one total order on it.
         * No re-check needed: no proc is idle (every holder finds its own
         * work), or the run stops. */
        if (spinning)
            atomic_fetch_sub_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
        return;
    }
    struct thread *th = thread_idle_get();
    if (th) {
        th->next_proc = p;
        th->spinning = spinning;
        k_unlock(&k_sched.lock);
        thread_unpark(th);
        return;
    }
    /* A new thread. Created under sched.lock (rare: at most one per proc
     * plus those in blocking calls) so that the thread list, which
     * weft_run joins, never holds a thread without a valid handle. */
    th = k_thread_alloc(); /* not the run's memory: see k_thread_alloc */
    if (th) {
        th->id = k_sched.nthreads;
        th->next_proc = p;
        th->spinning = spinning;
        th->rand = (uint64_t)hal_now_ns() ^ ((uint64_t)th->id << 32);
        if (hal_thread_start(thread_main, th, &th->handle) == 0) {
            th->all_next = k_sched.all_threads;
            k_sched.all_threads = th;
            k_sched.nthreads++;
            k_unlock(&k_sched.lock);
            return;
        }
        k_thread_free(th);
    }
    k_print("weft: warning: could not start a worker thread; running on fewer\n");
    proc_idle_put(p);
    k_unlock(&k_sched.lock);
    /* seq_cst, as above, but here no re-check follows: a task put on the
     * global queue by a thread without a proc, which saw our count and
     * left it to us, waits for some proc's holder (or the next k_wakep).
     * Only reachable when no thread can be started. */
    if (spinning)
        atomic_fetch_sub_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
}

/* Go: wakep. Called after making a task runnable. */
void k_wakep(void)
{
    /* Both loads are relaxed hints; the CAS decides. A readier that holds
     * a proc may miss a wake-up here (its own thread runs the task, see
     * the top); one that does not (wakep_for_global) issues a seq_cst
     * fence first, which pairs with the last spinner's fence in
     * find_runnable, so these loads see its decrement or it sees the
     * task. nidle_procs == 0 needs no pairing: k_handoff and
     * find_runnable put a proc on the idle list only after checking the
     * global queue under sched.lock, where the task was put. */
    if (atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) == 0)
        return;
    int32_t zero = 0;
    if (atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed) != 0 ||
        !atomic_compare_exchange_strong_explicit(&k_sched.nspinning, &zero, 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    startm(NULL, true);
}

/* Whether "every thread idle, no timer, no I/O wait" means that no task
 * can ever run again. Not in a run started by weft_start, and not once a
 * host thread has called into the run: threads weft does not know may
 * spawn tasks or send at any time (docs/embedding.md, "Deadlocks").
 * sched.lock held (background is immutable during a run). */
static bool deadlock_detectable(void)
{
    return !k_sched.background && !k_hosts_may_act();
}

/* Go: checkdead. Called with sched.lock held once every thread is idle
 * (everyone_idle) and no timer is pending and no task waits on I/O: no
 * proc is held, so every run queue is empty and no task is running;
 * nothing is in a blocking call or the poller. No task can ever run:
 * report it and stop the run with WEFT_EDEADLK. */
static void deadlock_locked(void)
{
    k_assert(deadlock_detectable());
    k_print("weft: deadlock: all %llu tasks are asleep\n",
            (unsigned long long)atomic_load(&k_sched.ntasks_live));
    k_dump_tasks();
    stop_locked(WEFT_EDEADLK);
}

/* Go: stopm. Parks the calling thread (which holds no proc) until it is
 * handed a proc or the run stops. */
static void stopm(struct thread *th)
{
    k_assert(th->proc == NULL && !th->spinning);
    k_lock(&k_sched.lock);
    if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
        k_unlock(&k_sched.lock);
        return;
    }
    /* stopping: under sched.lock, where it is written. */
    thread_idle_put(th);
    bool all_idle = everyone_idle();
    if (all_idle && (k_timers_earliest() != 0 || k_poll_waiters() != 0)) {
        /* Every thread is idle but a timer or an I/O wait can still ready
         * a task: this thread must not sleep; the caller polls instead. */
        thread_idle_get_this(th);
        k_unlock(&k_sched.lock);
        return;
    }
    if (all_idle && deadlock_detectable()) {
        deadlock_locked();
        k_unlock(&k_sched.lock);
        return;
    }
    k_unlock(&k_sched.lock);
    thread_park(th);
    th->proc = th->next_proc;
    th->next_proc = NULL;
    /* Release: pairs with the monitor's acquire load of p->thread. */
    if (th->proc)
        atomic_store_explicit(&th->proc->thread, th, memory_order_release);
}

/* Go: handoffp. p is held by nobody and not on the idle list (a proc the
 * monitor retook from a blocking call, or one a locked thread gives up).
 * Start a thread on it if it has work, or if nobody spins or idles (so that
 * someone looks for work); otherwise it goes idle. Any thread. */
void k_handoff(struct proc *p)
{
    /* A spare whose loan ended while its thread was in a blocking call
     * (relaxed: a hint, re-read under the lock). */
    if (K_UNLIKELY(atomic_load_explicit(&p->retire, memory_order_relaxed))) {
        k_lock(&k_sched.lock);
        if (atomic_load_explicit(&p->retire, memory_order_relaxed)) {
            bool moved = spare_put(p);
            k_unlock(&k_sched.lock);
            if (moved)
                wakep_for_global();
            return;
        }
        k_unlock(&k_sched.lock);
    }
    /* status: a hint (see proc_idle_put). thread: release like every
     * store of it (the monitor's acquire); NULL publishes nothing. The
     * runq_size and nidle_procs loads are hints: the global queue is
     * re-checked under sched.lock below, and the CAS on nspinning
     * decides (seq_cst, see k_wakep). */
    atomic_store_explicit(&p->status, PROC_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&p->thread, NULL, memory_order_release);
    if (!k_runq_empty(p) || atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) > 0) {
        startm(p, false);
        return;
    }
    int32_t zero = 0;
    if (atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_strong_explicit(&k_sched.nspinning, &zero, 1, memory_order_seq_cst,
                                                memory_order_relaxed)) {
        startm(p, true);
        return;
    }
    k_lock(&k_sched.lock);
    if (k_sched.runq_size > 0) {
        k_unlock(&k_sched.lock);
        startm(p, false);
        return;
    }
    proc_idle_put(p);
    k_unlock(&k_sched.lock);
    /* Work queued globally after the check above finds the proc through
     * k_wakep: the global queue and the idle list share sched.lock, so a
     * k_globrunq_put after our unlock sees the raised nidle_procs. */
    if (!k_runq_empty(p))
        k_wakep();
}

struct proc *k_proc_idle_take(void)
{
    /* Relaxed: a hint; proc_idle_get re-checks under sched.lock. */
    if (atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) == 0)
        return NULL;
    k_lock(&k_sched.lock);
    struct proc *p = proc_idle_get();
    k_unlock(&k_sched.lock);
    return p;
}

/* ---- lending (monitor.c, "Lending") ---- */

struct proc *k_spare_lend(void)
{
    k_lock(&k_sched.lock);
    /* stopping: under sched.lock, where it is written. */
    if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
        k_unlock(&k_sched.lock);
        return NULL;
    }
    struct proc *q = k_sched.spares;
    if (q) {
        k_sched.spares = q->spare_next;
        q->spare_next = NULL;
    } else {
        /* Only the monitor makes spares, so nall is ours to read and
         * grow. Made under sched.lock (rare: once per spare per run). */
        int32_t n = atomic_load_explicit(&k_sched.nall, memory_order_relaxed);
        if (n >= k_sched.nprocs + k_sched.nspares || !(q = k_zalloc(sizeof *q))) {
            k_unlock(&k_sched.lock);
            return NULL;
        }
        q->id = n;
        k_sched.procs[n] = q;
        /* Release: pairs with k_procs_all's acquire; a loop that sees the
         * new count sees the slot and the zeroed proc. */
        atomic_store_explicit(&k_sched.nall, n + 1, memory_order_release);
    }
    /* As in spare_put (nactive) and proc_idle_get (status, clock). */
    q->clock_ns = hal_now_ns();
    atomic_store_explicit(&q->status, PROC_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&k_sched.nactive,
                          atomic_load_explicit(&k_sched.nactive, memory_order_relaxed) + 1,
                          memory_order_seq_cst);
    k_unlock(&k_sched.lock);
    /* To a spinning thread, which steals the stuck proc's queue and runs
     * its due timers (steal_work). Counted first, as k_wakep does (seq_cst,
     * like every nspinning update: startm). */
    atomic_fetch_add_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
    startm(q, true);
    return q;
}

void k_spare_end(struct proc *q)
{
    k_lock(&k_sched.lock);
    /* On the idle list: back to the spares now. Held (or on its way to a
     * thread through next_proc, or in a blocking call): its holder does it
     * at its next scheduling decision (find_runnable, proc_idle_put,
     * k_handoff). Already a spare (its holder retired it on a stale flag,
     * or the run stopped before it started): nothing to do. */
    bool idle = false;
    for (struct proc **pp = &k_sched.idle_procs; *pp; pp = &(*pp)->idle_next)
        if (*pp == q) {
            *pp = q->idle_next;
            q->idle_next = NULL;
            idle = true;
            break;
        }
    if (idle) {
        /* As in proc_idle_get. */
        atomic_store_explicit(&k_sched.nidle_procs,
                              atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) - 1,
                              memory_order_seq_cst);
        (void)spare_put(q);
    } else if (atomic_load_explicit(&q->status, memory_order_relaxed) != PROC_SPARE) {
        atomic_store_explicit(&q->retire, true, memory_order_relaxed);
    }
    k_unlock(&k_sched.lock);
}

/* th's proc is a spare whose loan has ended (find_runnable): give it back
 * (spare_put) and continue with an idle proc, or none. */
static void proc_retire(struct thread *th)
{
    struct proc *p = th->proc;
    k_lock(&k_sched.lock);
    /* Re-read under the lock, where it is written. */
    if (!atomic_load_explicit(&p->retire, memory_order_relaxed)) {
        k_unlock(&k_sched.lock);
        return;
    }
    bool moved = spare_put(p);
    struct proc *pp = proc_idle_get();
    k_unlock(&k_sched.lock);
    th->proc = pp;
    if (pp)
        atomic_store_explicit(&pp->thread, th, memory_order_release); /* as in stopm */
    if (moved)
        wakep_for_global();
    if (!pp && th->spinning) {
        /* A spinner without a proc stops spinning, with the last
         * spinner's re-check (find_runnable's tail): the fence pairs with
         * wakep_for_global's. */
        th->spinning = false;
        atomic_fetch_sub_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
        k_fence_seq_cst();
        if (any_work()) {
            k_lock(&k_sched.lock);
            pp = proc_idle_get();
            k_unlock(&k_sched.lock);
            if (pp) {
                th->proc = pp;
                pp->thread = th; /* seq_cst, so a release */
                th->spinning = true;
                atomic_fetch_add_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
            }
        }
    }
}

/* Go: stoplockedm. th's locked task is not running: hand th's proc (if
 * any) to others and wait until someone hands the task back with a proc.
 * Returns false when the run is stopping. */
static bool locked_wait(struct thread *th)
{
    struct proc *p = th->proc;
    if (p) {
        th->proc = NULL;
        k_handoff(p);
    }
    k_lock(&k_sched.lock);
    /* stopping: under sched.lock, where it is written. */
    if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
        k_unlock(&k_sched.lock);
        return false;
    }
    bool need_poller = false;
    if (th->next_proc == NULL) {
        th->locked_idle = true;
        th->locked_next = k_sched.locked_threads;
        k_sched.locked_threads = th;
        k_sched.nidle_locked++;
        if (everyone_idle()) {
            if (k_timers_earliest() == 0 && k_poll_waiters() == 0) {
                if (deadlock_detectable()) {
                    deadlock_locked();
                    k_unlock(&k_sched.lock);
                    return false;
                }
            } else {
                /* A timer or an I/O wait can still ready a task (this
                 * thread's own, asleep), but every other thread is parked
                 * and none will look: start one, with an idle proc, to run
                 * the timers and block in the poller (stopm's last thread
                 * does that itself; this one must stay free for its task).
                 * Go: handoffp's wakeNetPoller for a proc that goes idle
                 * with timers. */
                need_poller = true;
            }
        }
    }
    k_unlock(&k_sched.lock);
    if (need_poller)
        startm(NULL, false);
    thread_park(th);
    k_lock(&k_sched.lock);
    th->proc = th->next_proc;
    th->next_proc = NULL;
    k_unlock(&k_sched.lock);
    if (!th->proc)
        return false;
    /* Release: pairs with the monitor's acquire load of p->thread. */
    atomic_store_explicit(&th->proc->thread, th, memory_order_release);
    return true;
}

/* Go: startlockedm. t, just taken from a run queue by th, is locked to
 * another thread: give th's proc to that thread (which runs t), and park
 * th until it gets a proc again. */
static void hand_locked(struct thread *th, struct task *t)
{
    struct thread *owner = t->locked_to;
    struct proc *p = th->proc;
    th->proc = NULL;
    k_lock(&k_sched.lock);
    if (owner->locked_idle) {
        struct thread **pp = &k_sched.locked_threads;
        while (*pp != owner)
            pp = &(*pp)->locked_next;
        *pp = owner->locked_next;
        owner->locked_next = NULL;
        owner->locked_idle = false;
        k_sched.nidle_locked--;
    }
    owner->next_proc = p;
    k_unlock(&k_sched.lock);
    thread_unpark(owner);
    stopm(th);
}

/* ---- finding work ---- */

/* Go: stealWork. Four passes over the procs in random order; the last
 * also takes runnext. Returns a task, stolen into th->proc's queue. */
static struct task *steal_work(struct thread *th)
{
    struct proc *p = th->proc;
    int n = k_procs_all();
    int64_t now = 0;
    for (int pass = 0; pass < 4; pass++) {
        uint32_t start = k_rand_n(&th->rand, (uint32_t)n);
        for (int i = 0; i < n; i++) {
            struct proc *victim = k_sched.procs[(start + (uint32_t)i) % (uint32_t)n];
            if (victim == p)
                continue;
            /* First pass: run the victim's due timers too (it may be idle,
             * or its thread busy); what they ready lands in our queue.
             * timer0 is a hint (acquire pairs with publish_timer0's
             * release, though nothing depends on it): k_timers_run
             * re-reads the heap under its lock. */
            int64_t t0 =
                pass == 0 ? atomic_load_explicit(&victim->timer0, memory_order_acquire) : 0;
            if (t0 != 0 && t0 <= (now ? now : (now = hal_now_ns()))) {
                k_timers_run(victim, now);
                struct task *t = k_runq_get(p);
                if (t)
                    return t;
            }
            struct task *t = k_runq_steal(p, victim, pass == 3);
            if (t) {
                /* A statistic, written only by p's holder (us). */
                atomic_store_explicit(&p->nsteal,
                                      atomic_load_explicit(&p->nsteal, memory_order_relaxed) + 1,
                                      memory_order_relaxed);
                return t;
            }
        }
        if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) /* a hint */
            return NULL;
    }
    return NULL;
}

/* Whether any run queue holds work (after giving up the proc). Relaxed
 * loads (k_runq_empty's acquires too, which publish nothing here): the
 * caller's seq_cst fence orders them after its nspinning decrement (see
 * wakep_for_global). */
static bool any_work(void)
{
    if (atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) > 0)
        return true;
    int n = k_procs_all();
    for (int i = 0; i < n; i++)
        if (!k_runq_empty(k_sched.procs[i]))
            return true;
    return false;
}

static struct task *globrunq_take(struct proc *p, int max)
{
    k_lock(&k_sched.lock);
    struct task *t = k_globrunq_get(p, max);
    k_unlock(&k_sched.lock);
    return t;
}

/* k_wakep after tasks were put on the global queue by a thread that holds
 * no proc. Unlike a readier that holds a proc (whose thread will run the
 * task anyway, see the top), nobody is bound to look at the global queue,
 * so the last spinner's re-check (steps 1-3 at the top) must not miss it.
 * That is a store-buffering pattern: here, store runq_size (under the
 * lock), then load nspinning (k_wakep); the spinner: store nspinning, then
 * load runq_size (any_work). The unlock is only a release, which does not
 * keep the later load from being satisfied before the store is visible
 * (ARMv8 can do that with a relaxed load after a store-release; x86's
 * locked unlock and qemu-user on x86 hide it). Each side needs a StoreLoad
 * fence: the spinner's is k_fence_seq_cst after its decrement; this one
 * pairs with it, so at least one side sees the other's store: either we
 * see nspinning == 0 and start a thread, or the spinner sees the task. */
static void wakep_for_global(void)
{
    k_fence_seq_cst();
    k_wakep();
}

/* Makes the tasks of a blocking poll runnable (Go: injectglist) from a
 * thread without a proc (a poller's, the monitor): the global queue, and a
 * thread is woken. */
void k_sched_inject(struct task *list)
{
    if (list) {
        k_lock(&k_sched.lock);
        while (list) {
            struct task *next = list->schedlink;
            /* Relaxed: published with the task by sched.lock, which the
             * taker of the global queue holds. */
            atomic_store_explicit(&list->state, TASK_RUNNABLE, memory_order_relaxed);
            k_globrunq_put(list);
            list = next;
        }
        k_unlock(&k_sched.lock);
        wakep_for_global();
    }
}

/* Makes list (linked by schedlink, maybe empty) runnable on p's queue,
 * held by this thread, and starts a spinner to steal them. state:
 * relaxed, published by k_runq_put's release store. */
static void queue_ready(struct proc *p, struct task *list)
{
    if (!list)
        return;
    while (list) {
        struct task *next = list->schedlink;
        atomic_store_explicit(&list->state, TASK_RUNNABLE, memory_order_relaxed);
        k_runq_put(p, list, false);
        list = next;
    }
    k_wakep();
}

/* Polls (timeout as k_poll) and returns a task to run; the others go to
 * the caller's own queue (it holds a proc), from where idle procs steal
 * them once k_wakep has started a spinner (Go: injectglist's local half;
 * no global-queue lock per event). */
static struct task *poll_take(struct proc *p, int64_t timeout_ns)
{
    int n;
    struct task *list = k_poll(timeout_ns, &n);
    if (!list)
        return NULL;
    struct task *first = list;
    /* state: relaxed, the first runs on this thread. */
    atomic_store_explicit(&first->state, TASK_RUNNABLE, memory_order_relaxed);
    queue_ready(p, first->schedlink);
    return first;
}

/* Runs v's due timers on th's scheduler stack, th holding a proc: what
 * they ready goes to th's proc, the last one to runnext, which th runs
 * next. So the wake-up of a thread that each k_ready would do is held
 * back, and one is done here only when more than that task became
 * runnable (or the global queue, which may be served first, has work). A
 * thread woken for the task this one is about to run only costs the task
 * a futex wake on its way from the timer (docs/benchmarks.md, "Figures
 * behind the code"). */
static void run_timers(struct thread *th, struct proc *v, int64_t now)
{
    th->held_wakes = 0;
    th->hold_wakep = true;
    k_timers_run(v, now);
    th->hold_wakep = false;
    /* runq_size: a hint (a missed wake-up costs parallelism, not progress:
     * this thread serves the global queue too). */
    if (th->held_wakes > 1 ||
        (th->held_wakes == 1 && atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) > 0))
        k_wakep();
}

/* Takes an idle proc for th to search with again, after due timers or a
 * blocking poll; false if none.
 *
 * The idle proc with the earliest timer, and th does not spin. It runs
 * that proc's due timers at the top of find_runnable and then the task
 * they readied (or the first task its poll readied), and no other thread
 * is woken on the way: as a spinner it would wake one when it found the
 * task (the last spinner to find work does, Go's resetspinning), and a
 * timer on another idle proc would need a steal. Go, too, spins after its
 * blocking poll only if it spun before; its timer's goroutine then wakes
 * a thread through ready's wakep, which makes a short sleep measurably
 * later (docs/benchmarks.md). */
static bool take_idle_proc(struct thread *th)
{
    k_lock(&k_sched.lock);
    /* Put the idle proc with the earliest timer first. */
    struct proc **best = NULL;
    int64_t best_when = 0;
    for (struct proc **pp = &k_sched.idle_procs; *pp; pp = &(*pp)->idle_next) {
        /* Relaxed: only picks a proc; its timers run under their lock. */
        int64_t w = atomic_load_explicit(&(*pp)->timer0, memory_order_relaxed);
        if (w != 0 && (best == NULL || w < best_when)) {
            best = pp;
            best_when = w;
        }
    }
    if (best && best != &k_sched.idle_procs) {
        struct proc *bp = *best;
        *best = bp->idle_next;
        bp->idle_next = k_sched.idle_procs;
        k_sched.idle_procs = bp;
    }
    struct proc *pp = proc_idle_get();
    k_unlock(&k_sched.lock);
    if (!pp)
        return false;
    th->proc = pp;
    pp->thread = th; /* seq_cst, so also a release (the monitor's acquire) */
    return true;
}

/* The end of the search, th holding no proc (Go: the tail of
 * findRunnable). Searches again with an idle proc if timers are due (they
 * run holding it); else, when timers are pending or tasks wait on I/O,
 * becomes the one thread that blocks in the poller until the earliest
 * timer (if another thread already does, makes sure it wakes by our
 * earliest and parks instead). Returns true with
 * th->proc set to search again, false when the run is stopping. */
static bool poll_or_stop(struct thread *th)
{
    for (;;) {
        if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) /* a hint */
            return false;
        int64_t now = hal_now_ns();
        int64_t until = k_timers_earliest();
        bool due = until != 0 && until <= now;
        if (due) {
            /* Due timers (of idle procs, or ones we could not steal): take
             * an idle proc and search again, which runs them holding it
             * (its own at the top of find_runnable, others' while
             * stealing), so that what they ready goes to its runnext. Run
             * here, without a proc, they would go to the tail of the
             * global queue, behind everything there (Go, too, runs timers
             * only holding a P). No idle proc: every due timer is on a
             * held proc, whose holder runs it at its next scheduling
             * decision (one stuck in a long task: the monitor's
             * preemption); park, and do not poll with a zero timeout. */
            if (take_idle_proc(th))
                return true;
        }
        if (!due && (until != 0 || k_poll_waiters() > 0) &&
            atomic_exchange_explicit(&k_sched.last_poll, 0, memory_order_seq_cst) != 0) {
            /* We are the poller. Read the timers again after the swap: a
             * timer added before it is seen here, one added after sees
             * last_poll == 0 and wakes us (k_poll_wake_for). The swap and
             * the loads of timer0 are seq_cst: the store-buffering pair
             * of k_timer_start's timer0 store and last_poll load. The
             * poll_until stores pair with k_poll_wake_for's seq_cst load:
             * it sees 0 (and wakes us) or our until. The stores after the
             * poll: a waker that sees last_poll != 0 needs no wake, this
             * thread re-reads the timers in find_runnable. */
            until = k_timers_earliest();
            atomic_store_explicit(&k_sched.poll_until, until, memory_order_seq_cst);
            int64_t timeout = -1;
            if (until != 0) {
                timeout = until - hal_now_ns();
                if (timeout < 0)
                    timeout = 0;
            }
            int n;
            struct task *list = NULL;
            /* A hint: stop_locked also wakes the poller. */
            if (!atomic_load_explicit(&k_sched.stopping, memory_order_relaxed))
                list = k_poll(timeout, &n);
            atomic_store_explicit(&k_sched.poll_until, 0, memory_order_seq_cst);
            atomic_store_explicit(&k_sched.last_poll, hal_now_ns(), memory_order_seq_cst);
            /* Go: the tail of findRunnable. With a proc, this thread runs
             * the first task the poll readied itself (runnext, not
             * spinning) and queues the rest locally for spinners to steal:
             * no thread is woken on the way from the event to its task. */
            if (take_idle_proc(th)) {
                if (list) {
                    /* rest first: once queued, list may be stolen and run. */
                    struct task *rest = list->schedlink;
                    /* Relaxed: published by k_runq_put. */
                    atomic_store_explicit(&list->state, TASK_RUNNABLE, memory_order_relaxed);
                    k_runq_put(th->proc, list, true);
                    queue_ready(th->proc, rest);
                }
                return true;
            }
            k_sched_inject(list);
            /* Every proc is busy: park (Go: stopm after injectglist), and
             * let their holders poll without blocking in find_runnable.
             * Polling again at once would make this thread a dedicated
             * poller: one thread more than procs, and a wake-up per event
             * batch (docs/benchmarks.md, "Figures behind the code"). */
        }
        if (until != 0 && !due)
            k_poll_wake_for(until); /* the poller must wake by our earliest */
        stopm(th);
        if (th->proc)
            return true;
        /* No proc: stopping, or stopm refused to park (timers or I/O
         * waits left with every thread idle): go round. */
    }
}

/* Go: findRunnable. Returns a task to run on th (which holds a proc on
 * return), or NULL when the run is stopping. May park the thread. */
static struct task *find_runnable(struct thread *th)
{
    for (;;) {
        if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) /* a hint */
            return NULL;
        struct proc *p = th->proc;
        struct task *t;

        /* A lent spare whose loan has ended (relaxed: a hint, proc_retire
         * re-reads it under sched.lock). */
        if (K_UNLIKELY(atomic_load_explicit(&p->retire, memory_order_relaxed))) {
            proc_retire(th);
            if (!th->proc && !poll_or_stop(th))
                return NULL; /* stopping */
            continue;
        }

        /* The relaxed loads below are hints for the order of the search:
         * timer0 (k_timers_run re-reads under the heap's lock), schedtick
         * (only p's holder, us, writes it), runq_size (globrunq_take
         * re-checks under sched.lock), nidle_procs and nspinning (the
         * spinner limit is a heuristic). last_poll is claimed by the
         * seq_cst CAS, never from 0 (a blocking poller's). */

        /* Our proc's due timers (Go: checkTimers); what they ready goes
         * to runnext. */
        if (atomic_load_explicit(&p->timer0, memory_order_relaxed) != 0)
            run_timers(th, p, hal_now_ns());

        /* Now and then the global queue first, so it cannot starve behind
         * two tasks that keep readying each other locally. */
        if (atomic_load_explicit(&p->schedtick, memory_order_relaxed) % K_GLOBAL_TICK == 0 &&
            atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) > 0 &&
            (t = globrunq_take(p, 1)) != NULL)
            return t;
        /* Work the monitor does too (monitor.c: run_stranded_timers,
         * poll_network), done every 61 ticks by busy procs as a second
         * line (docs/poller.md: it costs one comparison per 61 ticks and
         * covers the monitor's naps of up to 10 ms), with p->clock_ns (at
         * most 64 ticks old: no clock read here). Timers 10 ms overdue on
         * another proc, whose holder is stuck in a long task (idle procs'
         * timers are run by the threads that take them): run them here.
         * Nobody has polled for 10 ms while this proc had work of its own
         * (so it never reached the poll below): poll now, or I/O waiters
         * starve behind busy procs.
         * Right after a preemption, with a fresh clock, any due timer of
         * another proc: every proc is likely busy with long tasks, and a
         * proc whose thread the OS does not run (a loaded machine) can
         * honour no preemption, so nobody else would run its timers until
         * the 61st tick of some proc, 61 time slices, against a clock that
         * old (docs/poller.md; timer_busy). One clock read per time slice. */
        bool preempted = th->preempted;
        th->preempted = false;
        if (preempted || p->schedtick % K_GLOBAL_TICK == 0) {
            int64_t now = preempted ? hal_now_ns() : p->clock_ns;
            int64_t late = preempted ? now : now - 10000000;
            int n = k_procs_all();
            for (int i = 0; i < n; i++) {
                struct proc *v = k_sched.procs[i];
                int64_t t0 = atomic_load_explicit(&v->timer0, memory_order_relaxed);
                if (v != p && t0 != 0 && t0 <= late)
                    run_timers(th, v, now);
            }
        }
        if (p->schedtick % K_GLOBAL_TICK == 0 && k_poll_waiters() > 0) {
            int64_t last = atomic_load_explicit(&k_sched.last_poll, memory_order_relaxed);
            if (last != 0 && p->clock_ns - last > 10000000 &&
                atomic_compare_exchange_strong_explicit(&k_sched.last_poll, &last, p->clock_ns,
                                                        memory_order_seq_cst,
                                                        memory_order_relaxed) &&
                (t = poll_take(p, 0)) != NULL)
                return t;
        }
        /* On the same ticks, the ring before runnext: two tasks handing a
         * token back and forth through runnext would otherwise keep the
         * rest of this proc's queue waiting for ever (chan_handoff_fair).
         * Go has the monitor preempt such a pair (runnext inherits the
         * time slice); here the pair parks at every hand-off, so a turn
         * for the ring every 61 runs costs nothing and needs no signal. */
        if (atomic_load_explicit(&p->schedtick, memory_order_relaxed) % K_GLOBAL_TICK == 0 &&
            (t = k_runq_get_ring(p)) != NULL)
            return t;
        if ((t = k_runq_get(p)) != NULL)
            return t;
        if (atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) > 0 &&
            (t = globrunq_take(p, 0)) != NULL)
            return t;

        /* A non-blocking poll, when tasks wait on I/O and no thread blocks
         * in the poller (it would get the events itself). It counts as a
         * poll for the monitor, which polls when nobody has for 10 ms
         * (monitor.c poll_network); recorded at most once a millisecond,
         * so that busy threads do not fight over the line. The CAS from a
         * non-zero value never overwrites a blocking poller's 0. */
        int64_t last = atomic_load_explicit(&k_sched.last_poll, memory_order_relaxed);
        if (k_poll_waiters() > 0 && last != 0) {
            int64_t now = hal_now_ns();
            if (now - last > 1000000)
                atomic_compare_exchange_strong_explicit(&k_sched.last_poll, &last, now,
                                                        memory_order_seq_cst, memory_order_relaxed);
            if ((t = poll_take(p, 0)) != NULL)
                return t;
        }

        /* Steal, unless enough threads already spin: at most half of the
         * busy procs' worth (Go's limit), so that many idle threads do
         * not burn the CPUs the busy ones need. */
        int32_t busy = atomic_load_explicit(&k_sched.nactive, memory_order_relaxed) -
                       atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed);
        if (th->spinning ||
            2 * atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed) < busy) {
            if (!th->spinning) {
                th->spinning = true;
                /* seq_cst: every nspinning update is (see startm). */
                atomic_fetch_add_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
            }
            if ((t = steal_work(th)) != NULL)
                return t;
        }

        /* Nothing: give the proc back. */
        k_lock(&k_sched.lock);
        /* stopping: under sched.lock, where it is written. */
        if (atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
            k_unlock(&k_sched.lock);
            return NULL;
        }
        if ((t = k_globrunq_get(p, 0)) != NULL) {
            k_unlock(&k_sched.lock);
            return t;
        }
        proc_idle_put(p);
        th->proc = NULL;
        k_unlock(&k_sched.lock);

        if (th->spinning) {
            /* Steps 1-3 of the protocol at the top of this file. The
             * fence pairs with wakep_for_global's: our any_work sees its
             * task, or its k_wakep sees our decrement. */
            th->spinning = false;
            atomic_fetch_sub_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
            k_fence_seq_cst();
            if (any_work()) {
                k_lock(&k_sched.lock);
                struct proc *pp = proc_idle_get();
                k_unlock(&k_sched.lock);
                if (pp) {
                    th->proc = pp;
                    pp->thread = th; /* seq_cst, so a release */
                    th->spinning = true;
                    atomic_fetch_add_explicit(&k_sched.nspinning, 1, memory_order_seq_cst);
                    continue;
                }
            }
        }
        /* Timers and I/O: block in the poller if we may, else park. */
        if (!poll_or_stop(th))
            return NULL; /* stopping */
    }
}

/* The bookkeeping of every task run, by execute or a direct switch: a
 * new tick (the monitor's measure of a time slice; every 64th refreshes
 * the proc's clock), a switch counted, a pending preemption request
 * dropped (it was for the task before). Then t runs on th. */
static void begin_run(struct thread *th, struct proc *p, struct task *t, uint32_t tick)
{
    /* All relaxed. schedtick, nswitch: only p's holder writes them; the
     * monitor reads schedtick as a clock (a stale tick delays or repeats a
     * preemption by one period). cur_id: for the dump only. preempt_req: a request for the task
     * before; a racing new one may be lost (the monitor asks again next
     * period) or hit t early (one spurious yield). t->state RUNNING: read
     * only by diagnostics (k_dump_tasks) and k_ready's check, which never
     * sees a running task it may ready. */
    atomic_store_explicit(&p->schedtick, tick, memory_order_relaxed);
    atomic_store_explicit(&p->cur_id, t->id, memory_order_relaxed);
    if ((tick & 63) == 0)
        p->clock_ns = hal_now_ns();
    atomic_store_explicit(&th->preempt_req, 0, memory_order_relaxed);
    atomic_store_explicit(&p->nswitch, atomic_load_explicit(&p->nswitch, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (K_UNLIKELY(t->fresh))
        k_task_first_run(t);
    th->cur = t;
    th->why = SW_NONE;
    atomic_store_explicit(&t->state, TASK_RUNNING, memory_order_relaxed);
}

/* The SW_PARK tail for t, whose context is saved: t is WAITING from here
 * on, unless its unlock function declines (then it runs next). */
static void park_tail(struct thread *th, struct task *t)
{
    k_unlock_fn fn = th->park_fn;
    void *arg = th->park_arg;
    th->park_fn = NULL;
    th->park_arg = NULL;
    /* Release: a waker that acquires the wait structure's lock (which fn
     * releases) sees WAITING and the saved context. */
    atomic_store_explicit(&t->state, TASK_WAITING, memory_order_release);
    if (fn && !fn(t, arg)) {
        /* Relaxed: fn cancelled the park, so no waker readies t; the
         * runnext exchange publishes it. */
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        k_runq_put(th->proc, t, true);
    }
    /* From here on t may be running elsewhere: do not touch it. */
}

/* Go: execute + the tail of mcall. Runs t on th until a task switches
 * back, then finishes what that task asked for. Scheduler stack. */
static void execute(struct thread *th, struct task *t)
{
    struct proc *p = th->proc;
    /* Relaxed: only p's holder (us) writes schedtick. */
    begin_run(th, p, t, atomic_load_explicit(&p->schedtick, memory_order_relaxed) + 1);
    hal_ctx_switch(&th->sched_ctx, &t->ctx);
    /* A blocking call ended in a run that is over (block.c): nothing to
     * finish, and for SW_ORPHAN nothing of the run may be touched. */
    if (K_UNLIKELY(th->why == SW_ORPHAN || th->why == SW_DISCARD))
        return;

    /* Back on the scheduler stack. The task that switched here is th->cur,
     * not always t: t may have switched straight to another task (a direct
     * switch, see k_park), and that one to another. Its context is saved. */
    t = th->cur;
    th->cur = NULL;
    if (th->why == SW_BLOCKED) {
        /* Go: exitsyscall0. The blocking call ended and no proc was free;
         * t's old proc is somebody else's now. */
        k_assert(th->proc == NULL);
        /* Relaxed: published by the queue (sched.lock or k_runq_put's
         * release), like every RUNNABLE below. */
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        k_lock(&k_sched.lock);
        struct proc *pp = proc_idle_get();
        if (pp) {
            k_unlock(&k_sched.lock);
            th->proc = pp;
            /* Release: pairs with the monitor's acquire load. */
            atomic_store_explicit(&pp->thread, th, memory_order_release);
            k_runq_put(pp, t, true);
            return;
        }
        k_globrunq_put(t);
        k_unlock(&k_sched.lock);
        /* A locked thread waits for t in k_sched_loop; others park. */
        if (th->locked != t)
            stopm(th);
        return;
    }
    /* The proc this thread holds now: not always the one it ran t on. A
     * blocking call gives its proc up, and weft_block_end may come back
     * with another (k_proc_idle_take); whatever t asked for next (a yield,
     * a park) is done on the proc the thread holds, never the old one,
     * which may be idle or another thread's by now. */
    p = th->proc;
    k_assert(p != NULL && th->cur == NULL);
    switch (th->why) {
    case SW_YIELD:
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        k_runq_put(p, t, false);
        break;
    case SW_PREEMPT:
        th->preempted = true;
        /* A statistic, written only by p's holder. */
        atomic_store_explicit(&p->npreempt,
                              atomic_load_explicit(&p->npreempt, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
        /* Go: gopreempt_m. The global queue, not the local one: the local
         * queue is served first, and a preempted spinner there could keep
         * a task queued globally (one that ended a blocking call) waiting
         * for 61 slices. FIFO, so every task waits at most one slice per
         * task ahead of it. */
        k_lock(&k_sched.lock);
        k_globrunq_put(t);
        k_unlock(&k_sched.lock);
        /* No fence (unlike wakep_for_global): this thread holds a proc
         * and serves the global queue before it gives the proc up. */
        k_wakep();
        break;
    case SW_PARK:
        park_tail(th, t);
        break;
    case SW_EXIT: {
        bool is_main = t == k_sched.main_task;
        if (th->locked == t)
            th->locked = NULL; /* the lock ends with the task */
        /* Relaxed: diagnostics; the free list publishes t (task.c). */
        atomic_store_explicit(&t->state, TASK_DEAD, memory_order_relaxed);
        k_task_recycle(p, t);
        if (is_main)
            k_stop_the_world(0);
        break;
    }
    default:
        k_print("weft: thread %d, task %llu came back with why=%d, preempt_async=%d\n", th->id,
                (unsigned long long)t->id, (int)th->why, (int)k_sched.preempt_async);
        k_panic("task switched out without a reason");
    }
}

static void sched_loop(struct thread *th)
{
    for (;;) {
        if (K_UNLIKELY(th->why == SW_ORPHAN))
            return; /* abandoned by weft_run (block.c): touch nothing */
        if (th->locked) {
            /* This thread runs its locked task and nothing else. */
            struct task *lt = th->locked;
            if (!locked_wait(th))
                return;
            execute(th, lt);
            continue;
        }
        if (!th->proc) {
            /* This thread parked without a proc (stopm after hand_locked,
             * or after a blocked task was queued, SW_BLOCKED) and came back
             * without one. stopm returns so when the run stops, and also
             * when it refused to park the last idle thread because a timer
             * or an I/O wait is pending: that thread must poll, not leave.
             * Neither path can meet the second case today (the thread it
             * handed to, or the proc holder that will take the queued task,
             * is not idle), but returning here would end the thread for
             * good, so go through poll_or_stop, which handles both. */
            if (!poll_or_stop(th))
                return;
        }
        struct task *t = find_runnable(th);
        if (!t)
            return;
        if (th->spinning) {
            /* Go: resetspinning. The last spinner to find work wakes
             * another, in case there is more. */
            th->spinning = false;
            /* seq_cst: every nspinning update is (see startm). */
            if (atomic_fetch_sub_explicit(&k_sched.nspinning, 1, memory_order_seq_cst) == 1)
                k_wakep();
        }
        if (K_UNLIKELY(t->locked_to != NULL && t->locked_to != th)) {
            hand_locked(th, t);
            continue;
        }
        execute(th, t);
    }
}

void k_sched_loop(struct thread *th)
{
    sched_loop(th);
    /* The loop ended because stopping is set, often seen by a relaxed
     * load, which orders nothing after it. weft_run reads k_sched.result
     * right after this returns on its thread, before joining the others;
     * on ARMv8 that load may be satisfied before the relaxed load of
     * stopping (a control dependency does not order two loads), and read
     * the result as it was before stop_locked, e.g. 0 for a deadlock.
     * This acquire load reads true (stopping never goes back during a
     * run) and pairs with stop_locked's seq_cst store of stopping, which
     * comes after its store of result. x86 and qemu-user on x86 never
     * reorder loads, so no test can show the difference there. */
    (void)atomic_load_explicit(&k_sched.stopping, memory_order_acquire);
}

/* ---- what tasks call ---- */

/* Switches the calling task to its thread's scheduler stack with a reason.
 * Returns when the task runs again, perhaps on another thread. */
void k_switch(enum switch_why why)
{
    struct thread *th = k_thread_self();
    struct task *t = th->cur;
    th->why = why;
    /* errno (and Windows' last error) belong to the task (docs/design.md
     * "Blocking calls"): they come back on whichever thread resumes it. */
    struct hal_oserr err;
    hal_oserr_save(&err);
    hal_ctx_switch(&t->ctx, &th->sched_ctx);
    hal_oserr_restore(&err);
    k_switched_in();
}

/*
 * Direct switches. A task that parks while its proc has another task ready
 * switches straight to it, without the trip through the scheduler stack
 * (Go always makes that trip: mcall to g0). A channel hand-off between two
 * tasks on one proc then costs one context switch instead of two, and no
 * pass through find_runnable. A yield does the same when its proc has
 * another task.
 *
 * The rule that no task is made WAITING (or queued) before its context is
 * saved still holds: the parking (or yielding) task leaves itself in
 * thread->prev, and the task it switched to finishes the park (park_tail)
 * or queues it first thing when it resumes, on its own stack, which is
 * after the switch saved the old context. Every place where a task resumes
 * therefore calls k_switched_in: the end of k_switch, the end of
 * switch_direct, and task_entry (a task's first run). Meanwhile the
 * parking task's wait structure stays locked (its unlock function is what
 * park_tail calls), so a waker cannot see the waiter yet. Nothing can
 * preempt the switch half-way: it runs in weft's own code, where the
 * signal handler never switches (kern/preempt.c), whether or not a lock
 * is held (a yield, or a park on a NULL channel, holds none).
 *
 * What find_runnable would do first is kept: the direct path is not taken
 * after every 61st run of the proc (global queue, ring before
 * runnext, other procs' timers, the overdue poll), when one of this
 * proc's timers is due, when a preemption is pending, when the thread is
 * locked to a task or the next task is locked to a thread, or when the run
 * is stopping. Then the park goes through the scheduler as before.
 */
void k_switched_in(void)
{
    struct thread *th = k_thread_self();
    struct task *prev = th->prev;
    if (K_LIKELY(prev == NULL))
        return;
    th->prev = NULL;
    if (th->prev_why == SW_PARK) {
        park_tail(th, prev);
    } else {
        k_assert(th->prev_why == SW_YIELD);
        /* Relaxed: published by k_runq_put's release. */
        atomic_store_explicit(&prev->state, TASK_RUNNABLE, memory_order_relaxed);
        k_runq_put(th->proc, prev, false);
    }
}

/* The task to switch to from a park or yield on th, claimed, marked
 * RUNNING and made th->cur; or NULL when the switch must go through the
 * scheduler (see above). */
static struct task *direct_next(struct thread *th, struct proc *p)
{
    /* Relaxed hints, as in find_runnable: preempt_req (a request missed
     * here is honoured at the next safe point), stopping, schedtick (only
     * p's holder writes it), timer0. */
    if (th->locked != NULL || atomic_load_explicit(&th->preempt_req, memory_order_relaxed) ||
        atomic_load_explicit(&k_sched.stopping, memory_order_relaxed))
        return NULL;
    /* find_runnable's turns come when the run that ends now had a tick
     * that is a multiple of 61. */
    uint32_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
    if (tick % K_GLOBAL_TICK == 0)
        return NULL;
    int64_t t0 = atomic_load_explicit(&p->timer0, memory_order_relaxed);
    if (t0 != 0 && t0 <= hal_now_ns())
        return NULL;
    struct task *next = k_runq_get(p);
    if (next == NULL)
        return NULL;
    if (K_UNLIKELY(next->locked_to != NULL)) {
        /* The scheduler hands it to its thread, first thing. */
        k_runq_put(p, next, true);
        return NULL;
    }
    begin_run(th, p, next, tick + 1);
    return next;
}

/* Switches from t (th->cur) straight to next for why: SW_PARK (with
 * th->park_fn set) or SW_YIELD. */
static void switch_direct(struct thread *th, struct task *t, struct task *next, enum switch_why why)
{
    th->prev = t;
    th->prev_why = why;
    struct hal_oserr err;
    hal_oserr_save(&err);
    hal_ctx_switch(&t->ctx, &next->ctx);
    hal_oserr_restore(&err);
    k_switched_in();
}

/* A task called a weft function between weft_block_begin and
 * weft_block_end: its thread holds no proc, and whatever the function
 * would do with one (queue a task, park) has nothing to do it with. Out of
 * line: the check in k_task_self stays a load and a branch. */
K_NOINLINE _Noreturn static void block_misuse(struct task *t)
{
    k_print("weft: task %llu called weft between weft_block_begin and weft_block_end, where its "
            "thread holds no proc; only weft_now, weft_id, weft_errno, weft_procs, weft_stats "
            "and weft_dump may be called there\n",
            (unsigned long long)t->id);
    k_panic("weft called inside a blocking call");
}

struct task *k_task_self(void)
{
    struct thread *th = k_thread_self();
    struct task *t = th ? th->cur : NULL;
    /* blocking: written by this thread only (block.c). */
    if (t != NULL && K_UNLIKELY(t->blocking))
        block_misuse(t);
    return t;
}

struct task *k_task_here(void)
{
    struct thread *th = k_thread_self();
    return th ? th->cur : NULL;
}

void k_park(k_unlock_fn unlock, void *arg, enum wait_reason reason, void *obj)
{
    struct thread *th = k_thread_self();
    k_check(th && th->cur);
    struct task *t = th->cur;
    /* Relaxed: only t writes them; read racily by diagnostics
     * (k_dump_tasks, the deadlock report). */
    atomic_store_explicit(&t->wait_reason, reason, memory_order_relaxed);
    atomic_store_explicit(&t->wait_obj, obj, memory_order_relaxed);
    atomic_store_explicit(&t->wait_since_ns, th->proc->clock_ns, memory_order_relaxed);
    th->park_fn = unlock;
    th->park_arg = arg;
    struct task *next = direct_next(th, th->proc);
    if (next != NULL)
        switch_direct(th, t, next, SW_PARK);
    else
        k_switch(SW_PARK);
    atomic_store_explicit(&t->wait_reason, WAIT_NONE, memory_order_relaxed);
}

bool k_park_unlock(struct task *t, void *arg)
{
    (void)t;
    k_unlock((struct k_lock *)arg);
    return true;
}

void k_ready(struct task *t)
{
    if (K_UNLIKELY(t->host != NULL)) {
        k_host_ready(t); /* a host thread's stand-in: wake that thread */
        return;
    }
    struct thread *th = k_thread_self();
    /* Acquire: pairs with park_tail's release store of WAITING (the
     * waker found t under the lock park_tail's unlock released, which
     * already orders t's saved context before us). RUNNABLE: relaxed,
     * published with t by the run queue (release) or sched.lock. */
    int s = atomic_load_explicit(&t->state, memory_order_acquire);
    if (K_UNLIKELY(s != TASK_WAITING)) {
        k_print("weft: k_ready: task %llu is in state %d, not waiting\n", (unsigned long long)t->id,
                s);
        k_panic("readying a task that is not waiting");
    }
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    hal_ctx_prefetch(&t->ctx);
    if (K_UNLIKELY(!th || !th->proc)) {
        /* No proc (a safe fallback, see sched.h): global queue. */
        k_lock(&k_sched.lock);
        k_globrunq_put(t);
        k_unlock(&k_sched.lock);
        wakep_for_global();
        return;
    } else {
        k_runq_put(th->proc, t, true);
        if (th->hold_wakep) {
            th->held_wakes++; /* run_timers decides */
            return;
        }
    }
    k_wakep();
}

void k_yield(void)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur || !th->proc)
        return;
    struct task *t = th->cur; /* direct_next makes next th->cur */
    struct task *next = direct_next(th, th->proc);
    if (next != NULL)
        switch_direct(th, t, next, SW_YIELD);
    else
        k_switch(SW_YIELD);
}

_Noreturn void k_task_exit(void)
{
    k_switch(SW_EXIT);
    k_panic("a dead task was resumed");
}

int k_spawn(void (*fn)(void *), void *arg, size_t stack_size)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur)
        return WEFT_ENOTASK;
    struct task *t = k_task_new(th->proc, stack_size);
    if (!t)
        return WEFT_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    k_runq_put(th->proc, t, true);
    k_wakep();
    return 0;
}

int k_spawn_host(void (*fn)(void *), void *arg, size_t stack_size)
{
    k_assert(k_thread_self() == NULL);
    struct task *t = k_task_new(NULL, stack_size);
    if (!t)
        return WEFT_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    /* No proc of our own to put it on: the global queue (state RUNNABLE
     * from k_task_new, published by sched.lock), and a thread is woken the
     * way a poller's thread wakes one (the fence pairs with the last
     * spinner's; see wakep_for_global). */
    k_lock(&k_sched.lock);
    k_globrunq_put(t);
    k_unlock(&k_sched.lock);
    wakep_for_global();
    return 0;
}

void k_wakep_global(void)
{
    wakep_for_global();
}

int k_nprocs(void)
{
    return k_sched.nprocs;
}
