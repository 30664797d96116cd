/* SPDX-License-Identifier: MIT */
/*
 * host.h — host threads in weft calls: the gate that keeps a runtime alive
 * while threads that are not weft's use it, and the parking of a host's
 * OS thread when its call must wait (Go: needm/dropm for C threads that
 * call into Go, and notesleep/notewakeup for the wait). host.c has the
 * protocol.
 */
#ifndef WEFT_KERN_HOST_H
#define WEFT_KERN_HOST_H

#include "kern/sched.h"

/* k_host.word: bits, set with fetch_or, never cleared. */
#define K_HOST_READY 1u  /* a waker completed the host's operation (k_ready) */
#define K_HOST_CANCEL 2u /* the runtime is stopping: give up (k_host_close) */

/*
 * A host thread parked in a blocking weft call. It lives on the host's own
 * stack for the length of that call. Its task is a stand-in: it is what a
 * channel's waiters point at (waiter.task), so that the channel code,
 * which completes waiters and readies w->task, needs no second kind of
 * waiter; k_ready sees task.host and wakes the OS thread instead of
 * queueing a task. The stand-in is never on a run queue, never runs, and
 * is not on sched.alltasks.
 */
struct k_host {
    /* Owned by the host thread; what wakers touch of it is the channel
     * waiter protocol's (chan.h: select_done, wake_data): */
    struct task task;
    uint64_t rand; /* its select's shuffle (a worker uses thread->rand) */

    /* The futex word the host sleeps on: K_HOST_* bits. A waker's last
     * access to the struct is its fetch_or of K_HOST_READY (then only the
     * word's address is used, for the wake; see k_host_ready). */
    _Atomic uint32_t word;

    /* Protected by host.c's list lock: the parked hosts' list. */
    struct k_host *next, *prev;
    bool listed;
};

/*
 * The gate. A public function called outside a task calls k_host_enter
 * first: true when a runtime runs and accepts host calls, and it will not
 * be torn down before the matching k_host_leave; false (the caller
 * returns WEFT_ENOTASK) when none runs or weft_stop has begun. Any thread.
 */
bool k_host_enter(void);
void k_host_leave(void);
/* The gate for a thread that only looks (a dump asked for by a signal):
 * the same promise, without counting as a host that may act on the run
 * (k_hosts_may_act), so the deadlock check stays on. Async-signal-safe,
 * as is k_host_leave. */
bool k_host_enter_to_look(void);

/* runtime.c: opens the gate once the run is set up (before any task runs);
 * closes it before the run's memory goes: refuses new host calls, cancels
 * the parked ones (they return WEFT_ENOTASK unless completed first) and
 * waits until every host call has left. */
void k_host_open(void);
void k_host_close(void);

/* Whether host threads may still act on this run: one is inside a weft
 * call now, or one has called in since the run began (it may call again
 * at any time). The deadlock check stays quiet then (sched.c). */
bool k_hosts_may_act(void);

/* Prepares h, on the calling host thread's stack, for one call. */
void k_host_init(struct k_host *h);

/*
 * Parks the host thread of h (k_park's counterpart; a host has no stack to
 * switch away from). unlock(&h->task, arg) releases the wait structure's
 * lock(s) once h is registered: from then on a waker may find h. Returns 0
 * when a waker readied h (k_ready), WEFT_ENOTASK when the run is stopping
 * and nobody had readied it yet: then the caller takes its locks again,
 * and either finds its operation completed (task.wake_data set, under the
 * lock it was completed under: it calls k_host_wait_ready before it
 * returns the result) or removes its waiters and returns WEFT_ENOTASK.
 * Called inside the gate, with the wait structure locked.
 */
int k_host_park(struct k_host *h, k_unlock_fn unlock, void *arg);
/* After a cancelled park whose operation a waker had completed: waits for
 * that waker's k_ready, its last touch of h. */
void k_host_wait_ready(struct k_host *h);
/* k_ready for a stand-in (sched.c). */
void k_host_ready(struct task *t);

#endif /* WEFT_KERN_HOST_H */
