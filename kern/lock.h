/* SPDX-License-Identifier: MIT */
/*
 * lock.h — kern's runtime locks (Go: lock_futex.go's mutex).
 *
 * struct k_lock is a spin-then-futex lock: a few rounds of spinning with
 * hal_cpu_relax, then the thread sleeps on the lock word. It blocks the
 * *thread*, so it is for kern's short critical sections only; tasks wait
 * on weft_mutex, which parks the task instead.
 *
 * While a thread holds any k_lock it must not switch tasks, and it is not
 * preemptible (the count is kept in the thread; see k_locks_held). The one
 * exception is the lock that k_park's unlock function releases: it stays
 * held across a direct switch to the next task of the proc, which releases
 * it first thing (sched.c, "Direct switches"). In DEBUG builds each lock
 * records its owner and panics on recursion or on an unlock by a
 * non-owner.
 *
 * Lock order (take left before right; never the reverse):
 *   channel locks (in address order)  before  sched.lock
 *   sema bucket locks  before  sched.lock
 *   a poll descriptor's lock  before  sched.lock
 *     (None of these is held when sched.lock is taken in today's code: a
 *     task is readied after its wait structure's lock is dropped. The
 *     order says which way round they would go.)
 *   sched.lock  before  alltasks_lock (only a k_trylock, in the deadlock
 *     report's dump)
 *   channel locks (select's waiters)  before  alloc central locks
 *   the poller's foreign lock  before  the poller's lock  before  alloc
 *     central locks; the foreign lock  before  a poll descriptor's lock
 *   a poll descriptor's lock, a weft_timer's lock  before  a proc's
 *     timers_lock  before  alloc central locks (kern/poller.[ch], timer.c)
 *   sched.lock  before  alloc central locks  before  the heap lock
 *   any lock held into k_park  before  the stack pool lock (a direct
 *     switch to a task that never ran takes a stack for it)
 *   channel locks (a host thread parking)  before  host.c's list lock
 *   the heap lock, the stack pool lock, alltasks_lock, preempt.c's
 *   ranges lock and host.c's list lock are leaves: nothing is taken while
 *   holding them (stack.c never calls k_alloc).
 */
#ifndef WEFT_KERN_LOCK_H
#define WEFT_KERN_LOCK_H

#include "kern/kern.h"

struct k_lock {
    /* 0 unlocked, 1 locked, 2 locked with sleepers. */
    _Atomic uint32_t key;
#ifdef WEFT_DEBUG
    void *owner; /* the holding kern thread (NULL for a host thread, kern/host.h);
                    written only by the holder */
#endif
};

void k_lock(struct k_lock *l);
void k_unlock(struct k_lock *l);
bool k_trylock(struct k_lock *l);
/* DEBUG: panics unless the calling thread holds l. Release: no-op. */
void k_lock_assert_held(struct k_lock *l);

/* Number of k_locks the calling thread holds (0 outside kern threads). */
int k_locks_held(void);

/*
 * The locks' per-thread state. Every kern thread's struct thread (proc.h)
 * begins with it, and hal_thread_get() returns that struct (NULL on a
 * thread that is no kern thread, whose locks are not counted), so lock.c
 * finds it without knowing the scheduler (docs/HACKING.md, "Layers").
 */
struct k_lock_count {
    int held; /* k_locks held right now; owned by the thread */
};

#endif /* WEFT_KERN_LOCK_H */
