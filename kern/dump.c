/* SPDX-License-Identifier: MIT */
/*
 * dump.c — printing every task's state (weft_dump, the deadlock report,
 * panics) and naming the task whose stack overflowed (kern_fault).
 *
 * All output goes through k_print: no allocation, async-signal-safe, so
 * the same code serves a panic, a signal handler and a normal call.
 */
#include "kern/host.h"
#include "kern/proc.h"

static const char *state_str(int s)
{
    switch (s) {
    case TASK_RUNNABLE:
        return "runnable";
    case TASK_RUNNING:
        return "running";
    case TASK_WAITING:
        return "waiting";
    case TASK_DEAD:
        return "dead";
    default:
        return "?";
    }
}

/* Whether t runs on a proc whose thread the monitor found stuck in the OS
 * (monitor.c, "Lending"): then since when (*ms ago) and the spare's
 * number. Relaxed loads: a snapshot, which a dump accepts. */
static bool stuck_in_os(struct task *t, int64_t now, int64_t *ms, int *lent)
{
    int n = k_procs_all();
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        int64_t since = atomic_load_explicit(&p->stuck_ns, memory_order_relaxed);
        struct proc *q = atomic_load_explicit(&p->lent, memory_order_relaxed);
        if (since && q && atomic_load_explicit(&p->cur_id, memory_order_relaxed) == t->id) {
            *ms = (now - since) / 1000000;
            *lent = q->id;
            return true;
        }
    }
    return false;
}

/* One line per live task. Takes alltasks_lock if it can get it (a panic
 * may come from a thread that holds it: then the list is walked without,
 * which is racy but better than no dump). */
void k_dump_tasks(void)
{
    bool locked = false;
    for (int i = 0; i < 1000 && !(locked = k_trylock(&k_sched.alltasks_lock)); i++)
        hal_cpu_relax();
    int64_t now = hal_now_ns();
    uint64_t shown = 0, dead = 0;
    int64_t os_ms;
    int lent;
    for (struct task *t = k_sched.alltasks; t; t = t->all_next) {
        /* Relaxed: a snapshot of other threads' tasks; each field may be
         * stale by the time it prints, which a dump accepts. */
        int s = atomic_load_explicit(&t->state, memory_order_relaxed);
        if (s == TASK_DEAD || s == 0) {
            dead++;
            continue;
        }
        if (shown++ >= 1000)
            continue;
        if (s == TASK_WAITING) {
            int64_t since = atomic_load_explicit(&t->wait_since_ns, memory_order_relaxed);
            int64_t ms = since ? (now - since) / 1000000 : -1;
            k_print("  task %llu [%s: %s, %lld ms] on %p, stack %p-%p\n", (unsigned long long)t->id,
                    state_str(s),
                    k_wait_reason_str((enum wait_reason)atomic_load_explicit(&t->wait_reason,
                                                                             memory_order_relaxed)),
                    (long long)ms, atomic_load_explicit(&t->wait_obj, memory_order_relaxed),
                    (void *)t->stack.lo, (void *)t->stack.hi);
        } else if (s == TASK_RUNNING && stuck_in_os(t, now, &os_ms, &lent)) {
            k_print("  task %llu [%s: in the OS, not annotated, %lld ms or more; proc %d stands in "
                    "for its proc], stack %p-%p\n",
                    (unsigned long long)t->id, state_str(s), (long long)os_ms, lent,
                    (void *)t->stack.lo, (void *)t->stack.hi);
        } else {
            k_print("  task %llu [%s], stack %p-%p\n", (unsigned long long)t->id, state_str(s),
                    (void *)t->stack.lo, (void *)t->stack.hi);
        }
    }
    if (shown > 1000)
        k_print("  ... and %llu more tasks\n", (unsigned long long)(shown - 1000));
    if (locked)
        k_unlock(&k_sched.alltasks_lock);
}

void weft_dump(void)
{
    /* A host thread goes through the gate: the run cannot end under the
     * dump (kern/host.h). */
    bool host = k_task_self() == NULL;
    if (host && !k_host_enter()) {
        k_print("weft: dump: no run is active\n");
        return;
    }
    /* Statistics for a human: any order would do. nthreads is written by
     * startm under sched.lock. */
    k_lock(&k_sched.lock);
    int nthreads = k_sched.nthreads;
    k_unlock(&k_sched.lock);
    k_print("weft: dump: %llu tasks, %d procs (%d idle, %d lent), %d threads\n",
            (unsigned long long)atomic_load(&k_sched.ntasks_live), k_sched.nprocs,
            (int)atomic_load(&k_sched.nidle_procs),
            (int)atomic_load(&k_sched.nactive) - k_sched.nprocs, nthreads);
    k_dump_tasks();
    if (host)
        k_host_leave();
}

/* Called by the port's fault handler (alternate signal stack). */
void kern_fault(void *addr)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur)
        return;
    struct task *t = th->cur;
    char *a = addr;
    /* The guard, and a little below it: a frame larger than the guard can
     * jump past it, but not far. */
    char *guard_lo = t->stack.lo;
    char *guard_hi = t->stack.lo + t->stack.guard;
    if (a >= guard_hi || a + 64 * 1024 < guard_lo)
        return;
    size_t usable = (size_t)(t->stack.hi - guard_hi);
    k_print("weft: task %llu: stack overflow (fault at %p; its stack is %p-%p, %llu bytes; "
            "give it more with weft_go_stack or WEFT_STACK)\n",
            (unsigned long long)t->id, addr, (void *)guard_hi, (void *)t->stack.hi,
            (unsigned long long)usable);
    hal_abort();
}
