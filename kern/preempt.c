/* SPDX-License-Identifier: MIT */
/*
 * preempt.c — when a task may be preempted, and the public calls that
 * shape it (docs/design.md "Preemption in C"; Go: preempt.go's
 * isAsyncSafePoint and wantAsyncPreempt, in C's terms).
 *
 * Go can stop a goroutine almost anywhere because its compiler records
 * where that is safe. C has no such record, so weft switches a task out
 * from its signal handler (kern_preempt) only when all of these hold:
 *
 *   - a preemption was asked for (thread->preempt_req, by the monitor);
 *   - a task is running on the thread and the thread holds a proc (not the
 *     scheduler, the monitor, or a task inside a blocking call, whose proc
 *     the monitor may have given away);
 *   - the thread holds no kern lock (thread->locks.held == 0);
 *   - the task has not opted out (weft_nopreempt_begin/end);
 *   - the interrupted PC is in the program's own code: inside the main
 *     program's text or a module registered with weft_preemptible_module,
 *     and outside weft's own text (kern and the port: hal_runtime_text).
 *     Shared libraries, libc first, may hold their own locks or
 *     thread-local state mid-update; kern code may be half-way through a
 *     run-queue push that no lock guards.
 *
 * Otherwise the request stays set and the task honours it at its next
 * scheduler call: a park or yield switches anyway, and weft_go,
 * weft_nopreempt_end and weft_unlock_thread call k_preempt_point. The
 * monitor also interrupts again (monitor.c) while the task keeps
 * overrunning, so a loop that spends half its time in libc is still
 * preempted within a few tries.
 *
 * The switch itself (execute's SW_PREEMPT) puts the task at the back of
 * the global queue, as Go does (gopreempt_m), only after its context is
 * saved, on the scheduler stack, as every switch does (sched.c).
 */
#include "kern/proc.h"

#define MAX_RANGES 16

/* Code where tasks may be preempted. Kept across runs (a module may be
 * registered before weft_run); appended under ranges_lock, read without a
 * lock by the signal handler: an entry is complete before the release
 * store of nranges that publishes it. */
static struct {
    uintptr_t lo, hi;
} ranges[MAX_RANGES];
static _Atomic int nranges;
static struct k_lock ranges_lock;
static uintptr_t weft_lo, weft_hi; /* written once, before any handler runs */
static _Atomic int main_added;

static int add_range(uintptr_t lo, uintptr_t hi)
{
    int rc = 0;
    k_lock(&ranges_lock);
    /* Relaxed: nranges is written only under ranges_lock, held. */
    int n = atomic_load_explicit(&nranges, memory_order_relaxed);
    for (int i = 0; i < n; i++)
        if (ranges[i].lo == lo && ranges[i].hi == hi)
            goto out;
    if (n == MAX_RANGES) {
        rc = WEFT_ENOMEM;
        goto out;
    }
    ranges[n].lo = lo;
    ranges[n].hi = hi;
    /* Release: pairs with pc_preemptible's acquire load. */
    atomic_store_explicit(&nranges, n + 1, memory_order_release);
out:
    k_unlock(&ranges_lock);
    return rc;
}

static bool pc_preemptible(uintptr_t pc)
{
    if (pc >= weft_lo && pc < weft_hi)
        return false;
    /* Acquire: pairs with add_range's release store of nranges; the
     * entries below n are complete. */
    int n = atomic_load_explicit(&nranges, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (pc >= ranges[i].lo && pc < ranges[i].hi)
            return true;
    return false;
}

void k_preempt_setup(void)
{
    hal_runtime_text(&weft_lo, &weft_hi);
    /* Only picks the one call that adds the main range; add_range's lock
     * orders the rest. */
    if (!atomic_exchange(&main_added, 1)) {
        uintptr_t lo, hi;
        if (hal_module_text(NULL, &lo, &hi) == 0)
            add_range(lo, hi);
    }
    k_sched.preempt_async = k_sched.preempt > 0 && hal_preempt_init() == 0;
}

/* Whether the task running on th may switch out here, apart from the PC. */
static bool task_may_switch(struct thread *th)
{
    struct task *t = th->cur;
    return t && th->proc && th->locks.held == 0 && t->nopreempt == 0 && !t->blocking;
}

bool kern_preempt_ok(void *kern_thread, uintptr_t pc)
{
    struct thread *th = kern_thread;
    /* preempt_req is a request (monitor.c stores it relaxed): what the
     * preemption acts on is the thread's own state. On another thread (a
     * port that suspends th, hal.h) the plain fields task_may_switch reads
     * are th's own, stable while it is stopped, and the port's suspension
     * made them visible here. */
    if (!th)
        return false;
    /* The monitor's interrupt has arrived (monitor.c preempt_one). */
    atomic_store_explicit(&th->sig_seen, atomic_load_explicit(&th->sig_sent, memory_order_relaxed),
                          memory_order_relaxed);
    if (!atomic_load_explicit(&th->preempt_req, memory_order_relaxed))
        return false;
    return task_may_switch(th) && pc_preemptible(pc);
}

bool kern_preempt(uintptr_t pc)
{
    struct thread *th = k_thread_self();
    /* Decided again here even when the port asked kern_preempt_ok on
     * another thread: the same answer, as nothing ran on this thread in
     * between, and a port that skips the question loses nothing. Clearing
     * the request relaxed may drop a newer one racing in; the monitor asks
     * again at its next look. Likewise in k_preempt_point. */
    if (!kern_preempt_ok(th, pc))
        return false;
    atomic_store_explicit(&th->preempt_req, 0, memory_order_relaxed);
    /* The thread runs the scheduler and other tasks before this interrupt
     * returns: they must be interruptible (hal.h). */
    hal_preempt_switching();
    /* Where it was interrupted, for the dump (its frames show the
     * interrupt's, and the caller of the interrupted function, but not
     * that function: its return address is in no frame yet). Relaxed:
     * read racily by the dump only. */
    struct task *t = th->cur;
    atomic_store_explicit(&t->preempted_pc, pc, memory_order_relaxed);
    k_switch(SW_PREEMPT);
    atomic_store_explicit(&t->preempted_pc, 0, memory_order_relaxed);
    return true;
}

void k_preempt_point(void)
{
    struct thread *th = k_thread_self();
    if (th && K_UNLIKELY(atomic_load_explicit(&th->preempt_req, memory_order_relaxed)) &&
        task_may_switch(th)) {
        atomic_store_explicit(&th->preempt_req, 0, memory_order_relaxed);
        k_switch(SW_PREEMPT);
    }
}

/* ---- public ---- */

int weft_nopreempt_begin(void)
{
    struct task *t = k_task_self();
    if (!t)
        return WEFT_ENOTASK;
    t->nopreempt++;
    return 0;
}

int weft_nopreempt_end(void)
{
    struct task *t = k_task_self();
    if (!t)
        return WEFT_ENOTASK;
    if (t->nopreempt <= 0)
        return WEFT_EINVAL;
    if (--t->nopreempt == 0)
        k_preempt_point();
    return 0;
}

int weft_preemptible_module(const void *addr)
{
    if (!addr)
        return WEFT_EINVAL;
    uintptr_t lo, hi;
    if (hal_module_text(addr, &lo, &hi) != 0)
        return WEFT_EINVAL;
    /* A module that holds weft itself (libweft.so) is harmless to add:
     * weft's own text is excluded before the ranges are looked at. */
    return add_range(lo, hi);
}
