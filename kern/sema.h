/* SPDX-License-Identifier: MIT */
/*
 * sema.h — task-parking semaphores on any 32-bit word, and the ticket
 * notify list behind weft_cond (Go: runtime/sema.go). See sema.c for the
 * algorithm; sync.c builds weft_mutex, weft_rwmutex, weft_cond,
 * weft_waitgroup and weft_once on these.
 */
#ifndef WEFT_KERN_SEMA_H
#define WEFT_KERN_SEMA_H

#include "kern/kern.h"
#include "kern/task.h"
#include "weft.h"

/*
 * The public sync types keep plain integer fields (weft.h has no
 * <stdatomic.h>); kern accesses them only through these views. An _Atomic
 * integer has the size and alignment of the plain one on every target, which
 * the static assertions in sema.c check.
 */
#define K_ATOMIC_U32(p) ((_Atomic uint32_t *)(p))
#define K_ATOMIC_I32(p) ((_Atomic int32_t *)(p))
#define K_ATOMIC_U64(p) ((_Atomic uint64_t *)(p))

/* Empties the semaphore table. Called by weft_run before the first task
 * starts, when no task can be waiting (tasks of an earlier run were
 * discarded, and their waiter nodes with them). */
void k_sema_init(void);

/*
 * Takes one unit from the semaphore *addr, parking the calling task while
 * *addr is 0 (Go: semacquire1). Waiters on one address are served in FIFO
 * order; lifo puts the caller at the front instead (a mutex waiter that
 * was already woken once and lost the race again). reason and obj are
 * recorded for the dump. Precondition: called from a task, holding no
 * k_lock. May park.
 */
void k_sema_acquire(uint32_t *addr, bool lifo, enum wait_reason reason, void *obj);

/* Takes one unit if *addr > 0 without parking; true if it did
 * (Go: cansemacquire). Any thread. */
bool k_sema_tryacquire(uint32_t *addr);

/*
 * Adds one unit to *addr and wakes the first task waiting on it, if any
 * (Go: semrelease1). With handoff the unit is given straight to that task
 * (nobody else can take it in between) and the caller yields so that the
 * woken task runs at once on this proc. Precondition: called from a task
 * when a task may wait on addr (k_ready needs a proc); any thread when none
 * can. Never parks, but with handoff it may yield.
 */
void k_sema_release(uint32_t *addr, bool handoff);

/*
 * The notify list of a weft_cond (Go: notifyList*). A waiter takes a ticket
 * with k_notify_add while still holding the condition's lock, releases the
 * lock, then waits for its ticket with k_notify_wait; a notification is
 * owed to every ticket taken before it, so none is lost in between.
 */
uint32_t k_notify_add(weft_cond *c);
/* Parks until ticket t is notified (returns at once if it was).
 * Precondition: called from a task, holding no k_lock. May park. */
void k_notify_wait(weft_cond *c, uint32_t t);
/* Notifies the oldest unnotified ticket (if any), waking its task if it
 * is parked. With can_wake false (no task: k_ready is not allowed), a
 * parked waiter is left alone and false is returned with nothing changed;
 * otherwise true. */
bool k_notify_one(weft_cond *c, bool can_wake);
/* Notifies every ticket taken so far; the same can_wake rule. */
bool k_notify_all(weft_cond *c, bool can_wake);

/* White-box counter for tests: how many times a weft_mutex entered
 * starvation mode since k_sema_init. */
uint64_t k_sync_starvation_count(void);
/* Called by sync.c when it sets a mutex's starving bit. */
void k_sync_note_starvation(void);

#endif /* WEFT_KERN_SEMA_H */
