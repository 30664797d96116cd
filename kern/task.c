/* SPDX-License-Identifier: MIT */
/*
 * task.c — creating, recycling and ending tasks (Go: newproc, gfget, gfput,
 * goexit), and the per-proc waiter cache (Go: acquireSudog).
 *
 * Task structs are never freed while a run lasts: every struct ever made is
 * on sched.alltasks (the dump walks it) and a dead one is reused by the next
 * spawn, first from its proc's cache (with its stack, ready to go), then
 * from the global free list (without a stack). Everything is given back at
 * once when weft_run ends and the allocator releases its arenas.
 */
#include "kern/proc.h"

static const char *const wait_strs[] = {
#define K_WAIT_STR(name, str) str,
    K_WAIT_REASONS(K_WAIT_STR)
#undef K_WAIT_STR
};

const char *k_wait_reason_str(enum wait_reason r)
{
    if ((unsigned)r >= WAIT_NREASONS)
        return "?";
    return wait_strs[r];
}

/* The first code every task runs, on its own stack. */
static void task_entry(void *arg)
{
    struct task *t = arg;
    k_switched_in();
    t->fn(t->arg);
    k_task_exit();
}

/*
 * A task struct with state RUNNABLE and a fresh id; NULL when out of
 * memory. Runs on a task or scheduler stack holding p, or on a host
 * thread inside the gate (kern/host.h) with p NULL: then the struct and
 * any stack come from the central lists and the stack pool.
 *
 * Stacks of the default size are given lazily (Go gives one at spawn): a
 * dead task from p's cache comes with its stack, otherwise the task gets
 * one when it first runs (k_task_first_run), from whatever finished
 * before it. A burst of a million short tasks spawned at once then runs
 * on a handful of warm stacks instead of touching a million fresh ones.
 * Other sizes are allocated here, so that a bad size fails in weft_go.
 */
struct task *k_task_new(struct proc *p, size_t stack_size)
{
    struct task *t = NULL;
    bool dflt = stack_size == 0 || stack_size == k_sched.stack_size;
    if (dflt && p && p->dead) {
        t = p->dead;
        p->dead = t->schedlink;
        p->ndead--;
    } else {
        /* Relaxed peek (proc.h: free_tasks); the list itself is read and
         * changed under sched.lock, which orders it (relaxed there). */
        if (atomic_load_explicit(&k_sched.free_tasks, memory_order_relaxed)) {
            k_lock(&k_sched.lock);
            t = atomic_load_explicit(&k_sched.free_tasks, memory_order_relaxed);
            if (t)
                atomic_store_explicit(&k_sched.free_tasks, t->schedlink, memory_order_relaxed);
            k_unlock(&k_sched.lock);
        }
        if (!t) {
            t = k_zalloc(sizeof *t);
            if (!t)
                return NULL;
            k_lock(&k_sched.alltasks_lock);
            t->all_next = k_sched.alltasks;
            k_sched.alltasks = t;
            k_unlock(&k_sched.alltasks_lock);
        }
        k_assert(t->stack.lo == NULL);
        if (!dflt && k_stack_alloc(p ? &p->stack_cache : NULL, stack_size, &t->stack) != 0) {
            t->stack.lo = NULL;
            atomic_store(&t->state, TASK_DEAD);
            /* free_tasks: under sched.lock, relaxed (see above). */
            k_lock(&k_sched.lock);
            t->schedlink = atomic_load_explicit(&k_sched.free_tasks, memory_order_relaxed);
            atomic_store_explicit(&k_sched.free_tasks, t, memory_order_relaxed);
            k_unlock(&k_sched.lock);
            return NULL;
        }
    }
    t->schedlink = NULL;
    t->waiting = NULL;
    t->nopreempt = 0;
    t->blocking = false;
    t->nlocked = 0;
    t->os_errno = 0;
    t->locked_to = NULL;
    /* Relaxed: t is visible to no other thread yet but k_dump_tasks (a
     * racy diagnostic); k_runq_put's release store publishes it with all
     * of these. next_id: only atomicity matters (unique ids); ntasks_live:
     * a statistic. */
    atomic_store_explicit(&t->select_done, 0, memory_order_relaxed);
    atomic_store_explicit(&t->wake_data, NULL, memory_order_relaxed);
    atomic_store_explicit(&t->wait_reason, WAIT_NONE, memory_order_relaxed);
    atomic_store_explicit(&t->wait_obj, NULL, memory_order_relaxed);
    t->id = atomic_fetch_add_explicit(&k_sched.next_id, 1, memory_order_relaxed);
    t->fresh = true;
    atomic_store_explicit(&t->state, TASK_RUNNABLE, memory_order_relaxed);
    atomic_fetch_add_explicit(&k_sched.ntasks_live, 1, memory_order_relaxed);
    return t;
}

/* Prepares a task that has never run: a stack if it has none, and the
 * initial context. Scheduler stack, holding a proc. */
void k_task_first_run(struct task *t)
{
    struct thread *th = k_thread_self();
    k_assert(th && th->proc);
    if (!t->stack.lo && k_stack_alloc(&th->proc->stack_cache, 0, &t->stack) != 0) {
        k_print("weft: no memory for the stack of task %llu (%llu bytes)\n",
                (unsigned long long)t->id, (unsigned long long)k_sched.stack_size);
        k_panic("out of memory");
    }
    char *usable = t->stack.lo + t->stack.guard;
    hal_ctx_init(&t->ctx, usable, (size_t)(t->stack.hi - usable), task_entry, t);
    t->fresh = false;
}

/* Go: gfput. A DEAD task goes back to p's cache with its stack if the stack
 * has the default size and the cache has room; otherwise the stack is freed
 * and the bare struct goes to the global list. Scheduler stack, holding p.
 * "Default size" is the stack pool's (k_stack_is_default), not
 * k_sched.stack_size: a stack also holds the preemption headroom, so its
 * usable size never equals the configured one while preemption is on (no
 * task was ever cached then: sched_task_cache). */
void k_task_recycle(struct proc *p, struct task *t)
{
    /* ntasks_live: a statistic. p->dead is p's holder's alone; free_tasks
     * is under sched.lock (relaxed, as in k_task_new). */
    atomic_fetch_sub_explicit(&k_sched.ntasks_live, 1, memory_order_relaxed);
    if (k_stack_is_default(&t->stack) && p->ndead < K_TASK_CACHE) {
        t->schedlink = p->dead;
        p->dead = t;
        p->ndead++;
        return;
    }
    k_stack_free(&p->stack_cache, &t->stack);
    t->stack.lo = t->stack.hi = NULL;
    k_lock(&k_sched.lock);
    t->schedlink = atomic_load_explicit(&k_sched.free_tasks, memory_order_relaxed);
    atomic_store_explicit(&k_sched.free_tasks, t, memory_order_relaxed);
    k_unlock(&k_sched.lock);
}

struct waiter *k_waiter_get(struct task *t)
{
    struct thread *th = k_thread_self();
    struct proc *p = th ? th->proc : NULL;
    struct waiter *w;
    if (p && p->nwaiters) {
        w = p->waiters[--p->nwaiters];
        memset(w, 0, sizeof *w);
    } else {
        w = k_zalloc(sizeof *w);
        if (!w)
            k_panic("out of memory for a waiter");
    }
    w->task = t;
    return w;
}

void k_waiter_put(struct waiter *w)
{
    k_assert(w->next == NULL && w->prev == NULL);
    struct thread *th = k_thread_self();
    struct proc *p = th ? th->proc : NULL;
    if (p && p->nwaiters < K_WAITER_CACHE) {
        p->waiters[p->nwaiters++] = w;
        return;
    }
    k_free(w, sizeof *w);
}

struct k_mcache *k_mcache_self(void)
{
    struct thread *th = k_thread_self();
    return th && th->proc ? &th->proc->mcache : NULL;
}
