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
 * preemptible (the count is kept in the thread; see k_locks_held). In DEBUG
 * builds each lock records its owner and panics on recursion or on an
 * unlock by a non-owner.
 *
 * Lock order (take left before right; never the reverse):
 *   channel locks (in address order)  before  sched.lock
 *   sema bucket locks  before  sched.lock
 *   sched.lock  before  alloc central locks  before  the heap lock
 *   the poller's foreign lock  before  the poller's lock  before  alloc
 *     central locks; the foreign lock  before  a poll descriptor's lock
 *     before  timers_lock and sched.lock (kern/poller.[ch])
 *   the heap lock and the stack pool lock are leaves: nothing is taken
 *   while holding them (stack.c never calls k_alloc).
 */
#ifndef WEFT_KERN_LOCK_H
#define WEFT_KERN_LOCK_H

#include "kern/kern.h"

struct k_lock {
    /* 0 unlocked, 1 locked, 2 locked with sleepers. */
    _Atomic uint32_t key;
#ifdef WEFT_DEBUG
    void *owner; /* the holding kern thread; written only by the holder */
#endif
};

#define K_LOCK_INIT {0}

void k_lock(struct k_lock *l);
void k_unlock(struct k_lock *l);
bool k_trylock(struct k_lock *l);
/* DEBUG: panics unless the calling thread holds l. Release: no-op. */
void k_lock_assert_held(struct k_lock *l);

/* Number of k_locks the calling thread holds (0 outside kern threads). */
int k_locks_held(void);

#endif /* WEFT_KERN_LOCK_H */
