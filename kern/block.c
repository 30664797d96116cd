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
 * The common path pins nothing (reference/go-windows-syscall-no-
 * lockosthread.txt): whatever the call leaves in thread-local state that
 * the task needs (errno) travels with the task. errno is saved at every
 * switch-out and put back at switch-in (sched.c switch_out), so it
 * survives weft_block_end even when the task resumes on another thread.
 * One caveat no runtime can fix from inside: glibc declares
 * __errno_location const, so a compiler may compute &errno once in a
 * function and reuse it after a weft call that moved the task, reading the
 * old thread's errno. weft_errno() (the value at the last weft_block_end,
 * kept in the task) is always right; docs/scheduler.md says more.
 *
 * Between begin and end the task must call nothing in weft but weft_now
 * (its thread holds no proc). It is never preempted there.
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
    th->old_proc = p;
    th->proc = NULL;
    atomic_store_explicit(&p->syscalltick,
                          atomic_load_explicit(&p->syscalltick, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    /* Release: the monitor that sees SYSCALL sees the tick, and whoever
     * takes the proc over sees everything this thread did with it. */
    atomic_store_explicit(&p->status, PROC_SYSCALL, memory_order_release);
    k_monitor_kick();
}

void weft_block_end(void)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur || !th->cur->blocking)
        return;
    int err = hal_errno_get();
    struct task *t = th->cur;
    t->os_errno = err;
    struct proc *p = th->old_proc;
    th->old_proc = NULL;
    t->blocking = false;

    /* Go: exitsyscallfast. Our proc, if the monitor did not take it. */
    int expect = PROC_SYSCALL;
    if (atomic_compare_exchange_strong_explicit(&p->status, &expect, PROC_RUNNING,
                                                memory_order_acquire, memory_order_relaxed)) {
        th->proc = p;
        hal_errno_set(err);
        return;
    }
    /* Any idle proc. */
    struct proc *pp = k_proc_idle_take();
    if (pp) {
        th->proc = pp;
        atomic_store_explicit(&pp->thread, th, memory_order_release);
        hal_errno_set(err);
        return;
    }
    /* None: queue this task and park the thread (sched.c, SW_BLOCKED).
     * k_switch carries errno across. */
    hal_errno_set(err);
    k_switch(SW_BLOCKED);
}

int weft_errno(void)
{
    struct task *t = k_task_self();
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
