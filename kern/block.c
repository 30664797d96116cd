/* SPDX-License-Identifier: MIT */
/*
 * block.c — blocking calls and locked threads (Go: entersyscall,
 * exitsyscall, exitsyscallfast, LockOSThread, UnlockOSThread).
 *
 * A task about to make a call that may block in the OS (a read of a pipe,
 * a wait on something weft does not poll) brackets it with
 * weft_block_begin / weft_block_end. Begin is cheap and hands nothing off:
 * it marks the proc PROC_SYSCALL and the thread as holding none. If the
 * call returns quickly, end takes the same proc back with one CAS. If it
 * lasts, the monitor retakes the proc (CAS SYSCALL -> IDLE) after 20 µs and
 * hands it to another thread, so the other tasks of that proc keep
 * running (monitor.c). Then end takes any idle proc, or, when none is
 * free, queues the task on the global run queue and parks the thread
 * (execute's SW_BLOCKED, in sched.c).
 *
 * Both CASes compare the whole status word, which in SYSCALL carries the
 * number of the call (proc.h): the proc the monitor retook may have gone
 * to another thread whose task is in a blocking call of its own by the
 * time this one ends, and the proc is SYSCALL again, but with that call's
 * number. Comparing the state alone (as Go's exitsyscallfast does with
 * _Psyscall) let the first call take the proc from under the second: the
 * thread ran on a proc that still named the other thread as its holder,
 * and the monitor's preemption signals went to the thread in the OS.
 *
 * The common path pins nothing (docs/design.md "Blocking calls"; for
 * Windows, docs/platforms.md): whatever the call leaves in thread-local
 * state that the task needs (errno; on Windows also the last-error value)
 * travels with the task. Both are saved at every switch-out and put back
 * at switch-in (sched.c k_switch), and weft_block_end saves them before
 * anything else can change them, so they survive it even when the task
 * resumes on another thread.
 * One caveat no runtime can fix from inside: glibc declares
 * __errno_location const, so a compiler may compute &errno once in a
 * function and reuse it after a weft call that moved the task, reading the
 * old thread's errno. weft_errno() (the value at the last weft_block_end,
 * kept in the task) is always right; include/weft.h says so to users.
 *
 * Between begin and end the task must call nothing in weft that needs a
 * proc (its thread holds none): k_task_self stops it there with a message
 * and the dump (weft.h lists what it may call). It is never preempted
 * there.
 *
 * The run may end while the call lasts. weft_run does not wait for it: it
 * abandons the thread in the OS (runtime.c, thread.call in proc.h), and
 * when the call returns, end leaves the thread at once, before it looks at
 * the task, its proc or anything else of the run that is gone
 * (block_orphaned). A call that returns while the run is stopping but
 * before weft_run got to its thread drops the task (SW_DISCARD): the
 * other tasks of a run that ends are not run any further.
 *
 * Locked threads (Go: LockOSThread): weft_lock_thread ties the task to its
 * current thread until the same number of weft_unlock_thread calls. The
 * thread then runs only that task; whenever the task switches out the
 * thread hands its proc to others and waits, and whoever picks the task
 * from a run queue hands its proc to the thread instead (sched.c).
 */
#include "kern/proc.h"

void weft_block_begin(void)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur || !th->proc || th->cur->blocking)
        return; /* outside a task, or nested: nothing to hand off */
    struct task *t = th->cur;
    struct proc *p = th->proc;
    t->blocking = true;
    /* Relaxed: read only by the dump (how long the call has lasted). The
     * clock now, not p->clock_ns: that is the proc's last scheduling
     * decision, which a task that works without calling the scheduler
     * leaves far behind (a 102 ms call was shown as 326 ms:
     * tests/t_dump.c dw_block). A call into the OS follows anyway. */
    atomic_store_explicit(&t->wait_since_ns, hal_now_ns(), memory_order_relaxed);
    th->old_proc = p;
    th->proc = NULL;
    uint64_t word = (++p->syscall_gen << K_PROC_STATE_BITS) | PROC_SYSCALL;
    th->syscall_word = word;
    /* Release: pairs with the monitor's acquire load of status and the
     * acquire of its CAS to IDLE (retake), so that whoever takes the proc
     * over (through k_handoff) sees everything this thread did with it
     * (its run queue, caches, syscall_gen). The thread's own CAS back to
     * RUNNING in weft_block_end needs no pair (relaxed, see there). */
    atomic_store_explicit(&p->status, word, memory_order_release);
    /* Release: pairs with the acquire of weft_run's CAS to ORPHANING, which
     * then reads th->cur and the task's stack (runtime.c end_threads). Stored
     * after status: a thread weft_run finds IN holds no proc. */
    atomic_store_explicit(&th->call, CALL_IN, memory_order_release);
    k_monitor_kick();
}

/* The end of a blocking call on a thread that weft_run has abandoned: the
 * run is over, and the task, its proc and kern's memory may be gone or
 * another run's. Only th itself and the task's stack (this one) were kept.
 * Back to the thread's own stack, which leaves the scheduler loop without
 * touching anything (SW_ORPHAN in sched.c) and ends the thread. */
static _Noreturn K_NOINLINE void block_orphaned(struct thread *th)
{
    /* weft_run is still keeping our stack: wait until it has (rare: the
     * call returned in that instant). Acquire: pairs with its release
     * store of ORPHANED (th->orphan_region). */
    while (atomic_load_explicit(&th->call, memory_order_acquire) == CALL_ORPHANING)
        hal_futex_wait((uint32_t *)&th->call, CALL_ORPHANING, 100000);
    th->why = SW_ORPHAN;
    struct hal_context dead; /* this context is never resumed */
    hal_ctx_switch(&dead, &th->sched_ctx);
    k_panic("an abandoned thread came back to its task");
}

void weft_block_end(void)
{
    struct thread *th = k_thread_self();
    if (!th)
        return;
    /* First, before anything of the run is touched: has weft_run abandoned
     * this thread? One CAS decides that race with weft_run's own CAS of
     * IN (runtime.c). Acquire on failure: pairs with weft_run's release
     * store of ORPHANED (th->orphan_region). On success nothing needs
     * ordering (weft_run, losing, waits for the thread to exit), but C11
     * wants the success order at least as strong. */
    uint32_t c = CALL_IN;
    if (!atomic_compare_exchange_strong_explicit(&th->call, &c, CALL_OUT, memory_order_acquire,
                                                 memory_order_acquire)) {
        if (c != CALL_OUT)
            block_orphaned(th);
        return; /* outside a task, or the end of a nested pair */
    }
    struct hal_oserr err;
    hal_oserr_save(&err);
    struct task *t = th->cur;
    t->os_errno = err.err;
    struct proc *p = th->old_proc;
    th->old_proc = NULL;
    t->blocking = false;
    /* The run is ending: the task is not run any further (relaxed: a stale
     * false only lets it run until its next switch, as any running task). */
    if (K_UNLIKELY(atomic_load_explicit(&k_sched.stopping, memory_order_relaxed))) {
        hal_oserr_restore(&err);
        k_switch(SW_DISCARD);
        k_panic("a discarded task was resumed");
    }

    /* Go: exitsyscallfast. Our proc, if the monitor did not take it from
     * this call. Relaxed is enough: a CAS that succeeds reads this
     * thread's own store from begin, so no other thread held the proc in
     * between (a later holder's call would have stored another gen) and
     * there is nothing to acquire. Thieves and timer runners that touched
     * p meanwhile did so through p's run queue and timer lock, which carry
     * their own orderings. */
    uint64_t expect = th->syscall_word;
    if (atomic_compare_exchange_strong_explicit(&p->status, &expect, PROC_RUNNING,
                                                memory_order_relaxed, memory_order_relaxed)) {
        /* Nobody took it: the monitor preempts the thread it names.
         * Relaxed: p->thread was last stored by this thread (when it took
         * p; nobody else has held p since, as the CAS just showed). */
        k_assert(atomic_load_explicit(&p->thread, memory_order_relaxed) == th);
        th->proc = p;
        hal_oserr_restore(&err);
        return;
    }
    /* Any idle proc. */
    struct proc *pp = k_proc_idle_take();
    if (pp) {
        th->proc = pp;
        /* Release, like every store of p->thread: pairs with the monitor's
         * acquire load in preempt_one, which then reads th->os. pp itself
         * came off the idle list under sched.lock (k_proc_idle_take). */
        atomic_store_explicit(&pp->thread, th, memory_order_release);
        hal_oserr_restore(&err);
        return;
    }
    /* None: queue this task and park the thread (sched.c, SW_BLOCKED).
     * k_switch carries the error state across. */
    hal_oserr_restore(&err);
    k_switch(SW_BLOCKED);
}

int weft_errno(void)
{
    struct task *t = k_task_here();
    return t ? t->os_errno : hal_errno_get();
}

int weft_lock_thread(void)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur)
        return WEFT_ENOTASK;
    struct task *t = th->cur;
    if (t->nlocked++ == 0) {
        t->locked_to = th;
        th->locked = t;
    }
    return 0;
}

int weft_unlock_thread(void)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur)
        return WEFT_ENOTASK;
    struct task *t = th->cur;
    if (t->nlocked <= 0)
        return WEFT_EINVAL;
    if (--t->nlocked == 0) {
        k_assert(th->locked == t && t->locked_to == th);
        th->locked = NULL;
        t->locked_to = NULL;
        k_preempt_point();
    }
    return 0;
}
