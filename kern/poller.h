/* SPDX-License-Identifier: MIT */
/*
 * poller.h — the portable half of the network poller (Go: netpoll.go):
 * a poll descriptor per I/O object with a read and a write waiter,
 * deadlines and closing, and the scheduler's entry points into the port's
 * poller (hal.h "Poller").
 */
#ifndef WEFT_KERN_POLLER_H
#define WEFT_KERN_POLLER_H

#include "kern/lock.h"
#include "kern/task.h"
#include "kern/timer.h"

enum { K_POLL_R = 0, K_POLL_W = 1 };

/* Socket kinds (what weft_read / weft_write / weft_accept allow). */
enum pd_kind { PD_ANY = 0, PD_STREAM, PD_LISTENER, PD_DGRAM };

/*
 * A poll descriptor (Go: pollDesc, with the reference count of Go's
 * fdMutex). Its memory is never freed during a run: a closed one goes back
 * to a free list and is reused for another descriptor, so a late event or
 * timer that still points at one only sets a readiness flag or wakes a
 * waiter for a retry (poller.c, "Lifetime").
 *
 * References (ref, below). Every operation holds one from the lookup of
 * its number to its return (k_pollfd_acquire .. k_pollfd_release), so a
 * descriptor in use is never reused, and its OS handle is not closed while
 * an operation may still submit on it. A descriptor weft owns has one more,
 * the open reference, which k_pollfd_close drops. One weft does not own
 * (weft_wait_fd on any pollable descriptor) has none: it is unregistered
 * and reused when the last wait releases it.
 *
 * States of an incarnation (each transition is made by the one named):
 *   FREE     on the free list or being set up: ref == PD_CLOSED (nothing
 *            can take a reference). k_pollfd_open / k_pollfd_acquire_any
 *            set it up and register it, then make it OPEN.
 *   OPEN     registered and in its slot; PD_CLOSED clear; the count is the
 *            references above. k_pollfd_close (owned) sets PD_CLOSED, and
 *            the last release of a foreign one sets it at count 0.
 *   CLOSING  PD_CLOSED set, out of its slot, waiters told WEFT_ECLOSED,
 *            the count still above 0: operations in flight finish, and a
 *            resumed one sees PD_CLOSED and returns WEFT_ECLOSED without
 *            submitting again. The one that brings the count to 0 hands
 *            over to the closer (k_pollfd_close), which closes the OS
 *            handle, waits out the deadline timers and frees it (FREE).
 */
struct k_pollfd {
    /* Protected by lock (rank: after poller.lock, before timers_lock and
     * sched.lock): */
    struct k_lock lock;
    bool ready[2];          /* readiness seen since the last wait */
    struct task *waiter[2]; /* the task parked on each side */
    int wake_code[2];       /* what the waker says: 0 retry, or a WEFT_E* */
    /* 0 none, -1 expired, else absolute ns. Written under lock; also read
     * without it by k_pollfd_prepare (relaxed: see there). */
    _Atomic int64_t deadline[2];
    struct k_timer timer[2]; /* the deadlines' timers */
    struct task *closer;     /* CLOSING: the closer, parked until the count is 0 */
    bool last_out;           /* CLOSING: the count reached 0 before the closer parked */
    /* Completion ports (hal_io_completion): the task whose operation has
     * side m, from before its first submit to its last collect, so that a
     * report of the side is for that operation (hal.h); NULL when none. */
    struct task *op_owner[2];

    /* Set while FREE by the one setting it up, constant while OPEN and
     * CLOSING (read by holders of a reference, who are ordered after the
     * set-up by ref's acquire): */
    intptr_t fd;
    int kind;         /* enum pd_kind */
    bool owned;       /* weft opened it; weft_close closes it */
    uintptr_t cookie; /* hal_poll_register's word, copied into every operation */
    /* The OS handle is open (owned) or registered (not owned): set by the
     * set-up, cleared by the closer or the last release; read by
     * k_poller_fini once every thread has stopped. */
    bool os_held;

    /* (count << 2) | PD_FOREIGN | PD_CLOSED (poller.c, "Lifetime").
     * Changed by read-modify-writes (and, for a foreign one, by plain
     * stores under poller.foreign); the orderings are at each access in
     * poller.c (pd_setup's release store, acquire_slot's acquire CAS, the
     * acq_rel decrements). */
    _Atomic uint32_t ref;

    /* Short reads (hal_poll_short_read_drains), stream sockets only.
     * Lock-free: rseq counts read-side reports (k_poll, under lock, after
     * nodrain); drained is rseq + 1 as a reader loaded it just before a
     * read that came back short (0: nothing known), so drained == rseq + 1
     * means "empty, and no report since". nodrain is set for good once the
     * port reported more than data (HAL_POLL_NODRAIN). Orderings: poller.c,
     * above k_pollfd_read_seq. */
    _Atomic uint64_t rseq;
    _Atomic uint64_t drained;
    _Atomic bool nodrain;
    /* Operations whose submit said PENDING and that have not finished
     * (both kinds of port; on a completion port the kernel owns each one
     * meanwhile). Read-modify-writes by the operation's task; the
     * descriptor is reused only at 0 (asserted: the references above
     * already keep it, since an operation holds one until it is
     * collected). */
    _Atomic int32_t inflight;
    struct k_pollfd *free_next; /* on the free list (poller.lock) */
    struct k_pollfd *all_next;  /* every descriptor of the run (poller.lock) */
};

/* Called once per run by weft_run, before and after the scheduler runs.
 * k_poller_init: 0, WEFT_EINVAL (a bad WEFT_POLLER_TIMER), WEFT_ENOMEM or
 * WEFT_EIO. */
int k_poller_init(void);
void k_poller_fini(void);

/* Registers fd, which weft opened and weft_close will close, and returns
 * its descriptor holding a reference for the caller (release it, or give
 * it to k_pollfd_close), or NULL with *err a WEFT_E* code. */
struct k_pollfd *k_pollfd_open(intptr_t fd, int kind, int *err);
/* The descriptor of a socket weft opened, with a reference for the caller;
 * NULL with *err = WEFT_EBADF when fd is unknown, closed or closing, or
 * registered only for weft_wait_fd. */
struct k_pollfd *k_pollfd_acquire(intptr_t fd, int *err);
/* The same for weft_wait_fd, which takes any pollable descriptor: one weft
 * does not know is registered until the last wait on it releases it. NULL
 * with *err = WEFT_EBADF (negative or too big, not pollable, closing),
 * WEFT_ENOMEM or WEFT_EIO. */
struct k_pollfd *k_pollfd_acquire_any(intptr_t fd, int *err);
/* Drops a reference taken by the three above. The last one out of a
 * closing descriptor hands it to its closer; the last wait on one weft
 * does not own unregisters it. Never parks. */
void k_pollfd_release(struct k_pollfd *pd);
/* Closes a descriptor weft owns, consuming the caller's reference: wakes
 * both waiters with WEFT_ECLOSED, stops the deadlines, forgets the number
 * (later lookups get WEFT_EBADF), then parks until every other operation
 * in flight has released it, and only then closes the OS handle and frees
 * the descriptor. 0, WEFT_EIO (the OS's close failed), or WEFT_ECLOSED
 * (another task closed it first; that one finishes the job). May park. */
int k_pollfd_close(struct k_pollfd *pd);
/* Runs op (its kind, h, buf, len and addr filled in) on side mode of pd
 * until it is DONE, fails, or a deadline or close ends it: submits, parks
 * on PENDING until the port reports the side, submits again. Returns the
 * result (bytes, 0, an accepted handle) or a WEFT_E* code: WEFT_ECLOSED,
 * WEFT_ETIMEDOUT (the side's deadline, or deadline: absolute ns, 0 none,
 * which is this call's own and changes nothing in the descriptor),
 * WEFT_EINVAL (another task waits on that side, or on a completion port
 * has an operation there), WEFT_ENOMEM, WEFT_EIO (the task's weft_errno
 * set). On a completion port an operation that is given up is cancelled
 * and collected before this returns: its buffer is the caller's again, and
 * a result that landed before the cancel is returned instead of the code.
 * The caller holds a reference and reads nothing of op afterwards
 * (k_pollfd_poison). May park. */
int64_t k_pollfd_io(struct k_pollfd *pd, int mode, struct hal_io *op, int64_t deadline);
/* White box for tests: when set (before a run), k_pollfd_io fills each
 * operation with 0xa5 bytes once it is done with it, so that a port that
 * still writes to one, or finds one in a completion it dequeues, is
 * caught (hal/win32 checks a live mark there). */
extern bool k_pollfd_poison;
/* Sets both deadlines (absolute ns, 0 none; the caller rejects negative
 * ones); wakes waiters whose deadline has passed. */
void k_pollfd_set_deadline(struct k_pollfd *pd, int64_t rd, int64_t wd);

/* ---- the scheduler's side (sched.c) ---- */

/* Polls the port for up to timeout_ns (< 0 forever, 0 not at all) and
 * returns the tasks it made runnable, linked by schedlink, count in *n.
 * At most one thread calls it with timeout_ns != 0 at a time (sched.c's
 * last_poll protocol). Entry point for the monitor (Go: netpoll(0)). */
struct task *k_poll(int64_t timeout_ns, int *n);
/* Operations in flight on every descriptor (tests: 0 once all returned),
 * and the cancels asked again because a completion was late (poller.c,
 * give_up), since the run began. */
int32_t k_poll_inflight(void);
uint64_t k_poll_recancels(void);
/* Tasks parked on I/O right now (Go: netpollWaiters). */
int32_t k_poll_waiters(void);
/* A timer at when was added: wake the thread blocked in the poller if it
 * sleeps past when (Go: wakeNetPoller). Any thread. */
void k_poll_wake_for(int64_t when);

/* Poller wake-ups for weft_stats. */
uint64_t k_poll_wakeups(void);
/* White box for tests: tasks k_poll has made runnable since the run began
 * (t_net.c waits for it to move to know a parked task was readied). */
uint64_t k_poll_readied(void);

#endif /* WEFT_KERN_POLLER_H */
