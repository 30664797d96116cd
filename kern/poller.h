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

/* A poll descriptor (Go: pollDesc). Never freed during a run: closed ones
 * go back to a free list and are reused, so a late event or timer that
 * still points at one is harmless (it only sets a readiness flag). */
struct k_pollfd {
    /* Protected by lock (rank: before timers_lock and sched.lock): */
    struct k_lock lock;
    intptr_t fd;
    int kind;                   /* enum pd_kind */
    bool owned;                 /* weft opened it; weft_close closes it */
    bool closing;
    bool ready[2];              /* readiness seen since the last wait */
    struct task *waiter[2];     /* the task parked on each side */
    int wake_code[2];           /* what the waker says: 0 retry, or a WEFT_E* */
    int64_t deadline[2];        /* 0 none, -1 expired, else absolute ns */
    struct k_timer timer[2];    /* the deadlines' timers */
    /* Short reads (hal_poll_short_read_drains), stream sockets only.
     * Lock-free: rseq counts read-side reports (k_poll, under lock, after
     * nodrain); drained is rseq + 1 as a reader loaded it just before a
     * read that came back short (0: nothing known), so drained == rseq + 1
     * means "empty, and no report since". nodrain is set for good once the
     * port reported more than data (HAL_POLL_NODRAIN). */
    _Atomic uint64_t rseq;
    _Atomic uint64_t drained;
    _Atomic bool nodrain;
    struct k_pollfd *free_next; /* on the free list (poller lock) */
};

/* Called once per run by weft_run, before and after the scheduler runs. */
int k_poller_init(void);
void k_poller_fini(void);

/* Registers fd (owned: weft closes it) and returns its descriptor, or NULL
 * with *err a WEFT_E* code. */
struct k_pollfd *k_pollfd_open(intptr_t fd, int kind, bool owned, int *err);
/* The descriptor of fd: NULL with *err = WEFT_EBADF (unknown or closed). */
struct k_pollfd *k_pollfd_get(intptr_t fd, int *err);
/* Closes: wakes both waiters with WEFT_ECLOSED, stops the deadlines,
 * unregisters (owned: closes the OS object too). */
int k_pollfd_close(struct k_pollfd *pd);
/* Before an operation on side mode: 0, WEFT_ECLOSED or WEFT_ETIMEDOUT. */
int k_pollfd_prepare(struct k_pollfd *pd, int mode);
/* Parks the calling task until side mode may be ready. 0 (retry the
 * operation), WEFT_ECLOSED or WEFT_ETIMEDOUT. */
int k_pollfd_wait(struct k_pollfd *pd, int mode);
/* Short reads of a stream socket (net.c). k_pollfd_read_seq is loaded
 * just before a read; k_pollfd_read_short(pd, seq) records that the read
 * came back short; k_pollfd_read_empty says a read now would only find
 * nothing (wait first). All false/no-ops where the port does not promise
 * hal_poll_short_read_drains. */
uint64_t k_pollfd_read_seq(struct k_pollfd *pd);
void k_pollfd_read_short(struct k_pollfd *pd, uint64_t seq);
bool k_pollfd_read_empty(struct k_pollfd *pd);
/* Sets both deadlines (absolute ns, 0 none); wakes waiters whose deadline
 * has passed. */
void k_pollfd_set_deadline(struct k_pollfd *pd, int64_t rd, int64_t wd);

/* ---- the scheduler's side (sched.c) ---- */

/* Polls the port for up to timeout_ns (< 0 forever, 0 not at all) and
 * returns the tasks it made runnable, linked by schedlink, count in *n.
 * At most one thread calls it with timeout_ns != 0 at a time (sched.c's
 * last_poll protocol). Entry point for the monitor (Go: netpoll(0)). */
struct task *k_poll(int64_t timeout_ns, int *n);
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
