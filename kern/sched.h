/* SPDX-License-Identifier: MIT */
/*
 * sched.h — what the rest of kern (channels, locks, timers, the poller) uses
 * of the scheduler: parking a task and readying it again.
 *
 * The pattern (Go: gopark / goready), which loses no wake-up:
 *
 *   waiting side                         waking side
 *   k_lock(&obj->lock);                  k_lock(&obj->lock);
 *   if (!condition) {                    w = dequeue a waiter;
 *       enqueue a waiter for me;         k_unlock(&obj->lock);
 *       k_park(k_park_unlock, &obj->lock,k_ready(w->task);
 *              WAIT_..., obj);
 *   }
 *
 * k_park switches to the thread's scheduler stack first, then marks the task
 * WAITING and only then calls unlock(task, arg): so by the time a waker can
 * find the waiter, the task's context is saved and its state is WAITING.
 */
#ifndef WEFT_KERN_SCHED_H
#define WEFT_KERN_SCHED_H

#include "kern/lock.h"
#include "kern/task.h"

/* Called on the scheduler stack after the parking task's context is saved
 * and its state is WAITING. Return false to cancel the park: the task is
 * made runnable again and resumes at once. Must not park. */
typedef bool (*k_unlock_fn)(struct task *t, void *arg);

/* Parks the calling task until someone calls k_ready on it.
 * Precondition: called from a task, holding no k_lock other than the one
 * unlock releases (if any). unlock may be NULL. obj is recorded for the dump. */
void k_park(k_unlock_fn unlock, void *arg, enum wait_reason reason, void *obj);

/* An unlock function for k_park that releases the k_lock arg. */
bool k_park_unlock(struct task *t, void *arg);

/* Makes a WAITING task runnable: it goes to the calling thread's proc's
 * runnext slot (so it runs soon, on this proc: communication locality), and
 * an idle proc is woken if there is one and nobody is spinning. Called from
 * a thread holding no proc, the task goes to the global queue instead
 * (a safe fallback: the threads that ready tasks without a proc, the one
 * blocked in the poller and the monitor, pass their lists to
 * k_sched_inject). */
void k_ready(struct task *t);

/* Puts the calling task at the back of the queue and runs others. */
void k_yield(void);

/* Starts a task; 0 or a WEFT_E* code. Called from a task. */
int k_spawn(void (*fn)(void *), void *arg, size_t stack_size);
/* The same from a host thread inside the gate (kern/host.h): the task goes
 * to the global queue. */
int k_spawn_host(void (*fn)(void *), void *arg, size_t stack_size);

/* The procs of this run (0 when not running). */
int k_nprocs(void);
#endif /* WEFT_KERN_SCHED_H */
