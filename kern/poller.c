/* SPDX-License-Identifier: MIT */
/*
 * poller.c — poll descriptors, waiting for I/O, deadlines, and turning the
 * port's events into runnable tasks (Go: netpoll.go; the port's half is
 * hal/posix/poll_epoll.c, later hal/win32/poll_iocp.c).
 *
 * A task that would block on an I/O object parks on its descriptor's read
 * or write side (one waiter per side: a second gets WEFT_EINVAL, where Go
 * queues concurrent readers on fdMutex's read lock). It is woken with a
 * code: 0 "the port reported this side, submit again", WEFT_ECLOSED or
 * WEFT_ETIMEDOUT. An event that finds no waiter sets the side's ready
 * flag, which the next wait consumes instead of parking, so an event
 * between a failed submit and the park is never lost. Go does the same
 * with an atomic state per side (pdReady / pdWait / a g); weft uses the
 * descriptor's lock, which is simpler to prove and cheap next to a system
 * call.
 *
 * Descriptors are found from the OS handle through a two-level table
 * (1024 chunks of 1024 slots, read without a lock). A closed descriptor's
 * slot is emptied: the OS may hand its number to anything next, so a later
 * call with it gets WEFT_EBADF, not a guess.
 *
 * Lifetime (Go: fdMutex's reference count and closing bit; what Go's
 * pollDesc sequence number is for is covered below). The hazard: a task
 * parked in a read is readied by the port; before it runs, another task
 * closes the socket, and the OS gives the number to the next accept. Were the
 * descriptor freed at the close, the reader would resume, submit again on
 * the number and read the new connection's bytes. So every operation holds
 * a reference from the lookup of its number to its return, and close only
 * marks: it sets PD_CLOSED, empties the slot, tells the waiters, and the
 * OS handle is closed and the descriptor reused only once the count is 0.
 * A resumed operation looks at PD_CLOSED (under the lock, where close set
 * it) before it submits again, and returns WEFT_ECLOSED. The OS cannot
 * reuse the number meanwhile, since the handle is still open. A completion
 * port needs the same count (an operation in flight owns its buffer until
 * the port returns it), which is why the count is per descriptor and not a
 * lock around each call.
 *
 * ref is one word: bit 0 PD_CLOSED, bit 1 PD_FOREIGN (registered for
 * weft_wait_fd only), the count above. A lookup loads the slot, adds to
 * the count with a CAS that fails on PD_CLOSED (and on PD_FOREIGN unless
 * it came from weft_wait_fd), then checks that the descriptor is still the
 * one for its number: between the slot load and the CAS it may have been
 * closed and set up again for another number (harmless: the reference is
 * then dropped and the lookup retried). There is no ABA problem to guard
 * against: whatever incarnation the CAS lands on, the reference is a real
 * one on it, and the check comes after.
 *
 * What still points at a reused descriptor is harmless: an event the port
 * reported before the close (a thread may hold it in its event array) only
 * sets a ready flag or wakes a waiter of the next incarnation with 0, and
 * that operation submits, finds nothing and parks again (Go tags events
 * with a sequence number to spare that retry; it is rare). Deadline timers
 * are stopped and waited out before reuse.
 *
 * Who polls, and when, is sched.c's business (find_runnable): a
 * non-blocking poll when tasks wait on I/O, and one thread at a time
 * blocking in the port until the earliest timer when nothing else is left.
 */
#include "kern/poller.h"

#include "kern/proc.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define NCHUNKS 1024
#define MAX_FD ((intptr_t)CHUNK * NCHUNKS)
#define MAX_EVENTS 128

/* ref (struct k_pollfd): */
#define PD_CLOSED 1u  /* no new reference: FREE, CLOSING, or torn down */
#define PD_FOREIGN 2u /* registered for weft_wait_fd only (not weft's socket) */
#define PD_REF 4u     /* one reference */

typedef struct k_pollfd *_Atomic pd_slot;

static struct {
    /* Serialises the set-up and the tear-down of descriptors weft does not
     * own (their slots, registration and count). Rank: before lock. */
    struct k_lock foreign;
    struct k_lock lock; /* the free list, the all list, chunk allocation */
    struct k_pollfd *free;
    struct k_pollfd *all; /* every descriptor allocated this run */
    /* Set once each, under lock (release), read without it (acquire):
     * slot_of. */
    pd_slot *_Atomic chunks[NCHUNKS];
    _Atomic int32_t nwaiters;   /* k_poll_waiters: see k_pollfd_wait */
    _Atomic uint64_t wakeups;   /* k_poll_wakeups (stats); relaxed: a count */
    _Atomic uint64_t readied;   /* k_poll_readied (tests); relaxed: see k_poll */
    _Atomic int32_t inflight;   /* k_poll_inflight; relaxed: a count for tests */
    _Atomic uint64_t recancels; /* k_poll_recancels; relaxed: a count for tests */
    bool inited;
    bool short_read_drains; /* hal_poll_short_read_drains(), per run */
    bool completion;        /* hal_io_completion(), per run */
} poller;

bool k_pollfd_poison;

int k_poller_init(void)
{
    memset(&poller, 0, sizeof poller);
    int rc = hal_poll_init();
    if (rc != 0) /* HAL_EINVAL: a bad setting in the environment, as WEFT_PREEMPT */
        return rc == HAL_EINVAL ? WEFT_EINVAL : rc == HAL_ENOMEM ? WEFT_ENOMEM : WEFT_EIO;
    poller.inited = true;
    poller.short_read_drains = hal_poll_short_read_drains() != 0;
    poller.completion = hal_io_completion() != 0;
    return 0;
}

void k_poller_fini(void)
{
    if (!poller.inited)
        return;
    /* Sockets the program left open belong to this run: close them, since
     * the descriptors' memory goes away with the run. That includes ones
     * closing when the run ended (the closer or an operation in flight was
     * discarded). Every thread has stopped: plain reads are enough. */
    for (struct k_pollfd *pd = poller.all; pd; pd = pd->all_next) {
        if (!pd->os_held)
            continue;
        if (pd->owned)
            hal_sock_close(pd->fd);
        else
            hal_poll_unregister(pd->fd);
    }
    hal_poll_fini();
    poller.inited = false;
}

static pd_slot *slot_of(intptr_t fd, bool create)
{
    if (fd < 0 || fd >= MAX_FD)
        return NULL;
    unsigned c = (unsigned)(fd >> CHUNK_BITS);
    /* Acquire: pairs with the release store below, so the chunk's zeroed
     * slots are seen as set up by k_zalloc. */
    pd_slot *chunk = atomic_load_explicit(&poller.chunks[c], memory_order_acquire);
    if (!chunk && create) {
        k_lock(&poller.lock);
        /* Relaxed: every store of chunks[] is made under poller.lock. */
        chunk = atomic_load_explicit(&poller.chunks[c], memory_order_relaxed);
        if (!chunk) {
            chunk = k_zalloc(sizeof(pd_slot) * CHUNK);
            /* Release: publishes the zeroed slots to the acquire load
             * above in other threads. */
            atomic_store_explicit(&poller.chunks[c], chunk, memory_order_release);
        }
        k_unlock(&poller.lock);
    }
    return chunk ? &chunk[fd & (CHUNK - 1)] : NULL;
}

static void deadline_fire(struct k_timer *t, uint64_t seq, int64_t now);

/* A FREE descriptor to set up: from the free list, or new. */
static struct k_pollfd *pd_alloc(void)
{
    k_lock(&poller.lock);
    struct k_pollfd *pd = poller.free;
    if (pd)
        poller.free = pd->free_next;
    k_unlock(&poller.lock);
    if (pd)
        return pd;
    pd = k_zalloc(sizeof *pd);
    if (!pd)
        return NULL;
    /* FREE. Relaxed: nothing can reach it yet (no slot, no registration);
     * pd_setup's release store of ref publishes it. */
    atomic_store_explicit(&pd->ref, PD_CLOSED, memory_order_relaxed);
    k_lock(&poller.lock);
    pd->all_next = poller.all;
    poller.all = pd;
    k_unlock(&poller.lock);
    return pd;
}

/* Back to the free list (ref: PD_CLOSED, count 0; timers quiet). */
static void pd_free(struct k_pollfd *pd)
{
    k_lock(&poller.lock);
    pd->free_next = poller.free;
    poller.free = pd;
    k_unlock(&poller.lock);
}

/* Sets up a FREE descriptor for fd, registers it and publishes it OPEN
 * with ref (count and flags) in the slot. NULL with *err on failure. */
static struct k_pollfd *pd_setup(pd_slot *slot, intptr_t fd, int kind, uint32_t ref, int *err)
{
    struct k_pollfd *pd = pd_alloc();
    if (!pd) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    /* Under the lock: a late event of the last incarnation may be looking
     * (k_poll); it finds a fresh state after this. The relaxed stores of
     * deadline, drained and nodrain below: holders of a reference, who
     * read them (and write drained) without this lock, are ordered after
     * the set-up by ref's release store below; k_poll, which may still
     * reach the descriptor through a late event, writes nodrain under
     * this lock. */
    k_lock(&pd->lock);
    pd->fd = fd;
    pd->kind = kind;
    pd->owned = !(ref & PD_FOREIGN);
    pd->closer = NULL;
    pd->last_out = false;
    /* Relaxed: the last incarnation's operations all finished before its
     * last reference was dropped (acq_rel), which happened before this. */
    k_assert(atomic_load_explicit(&pd->inflight, memory_order_relaxed) == 0);
    for (int m = 0; m < 2; m++) {
        pd->op_owner[m] = NULL;
        pd->ready[m] = false;
        pd->waiter[m] = NULL;
        pd->wake_code[m] = 0;
        atomic_store_explicit(&pd->deadline[m], 0, memory_order_relaxed);
        pd->timer[m].fn = deadline_fire;
        pd->timer[m].arg = pd;
        pd->timer[m].idx = -1;
    }
    pd->free_next = NULL;
    atomic_store_explicit(&pd->drained, 0, memory_order_relaxed);
    atomic_store_explicit(&pd->nodrain, false, memory_order_relaxed);
    k_unlock(&pd->lock);
    unsigned flags = (ref & PD_FOREIGN) ? HAL_REG_FOREIGN : 0;
    if (kind == PD_STREAM || kind == PD_LISTENER)
        flags |= HAL_REG_STREAM;
    else if (kind == PD_DGRAM)
        flags |= HAL_REG_DGRAM;
    int r = hal_poll_register(fd, pd, flags, &pd->cookie);
    if (r != 0) {
        pd_free(pd);
        *err = r == HAL_EINVAL ? WEFT_EBADF : r == HAL_ENOTSUP ? WEFT_ENOTSUP : WEFT_EIO;
        return NULL;
    }
    pd->os_held = true;
    /* OPEN. Release: pairs with the acquire CAS of a lookup that lands on
     * this incarnation (through a slot load, below, or a stale pointer),
     * which then reads fd, kind and owned as set up here. */
    atomic_store_explicit(&pd->ref, ref, memory_order_release);
    /* Release: pairs with the slot's acquire load in acquire_slot; the
     * descriptor it publishes is the set-up above. */
    atomic_store_explicit(slot, pd, memory_order_release);
    return pd;
}

struct k_pollfd *k_pollfd_open(intptr_t fd, int kind, int *err)
{
    pd_slot *slot = slot_of(fd, true);
    if (!slot) {
        *err = fd < 0 || fd >= MAX_FD ? WEFT_EBADF : WEFT_ENOMEM;
        return NULL;
    }
    /* The open reference and the caller's. */
    return pd_setup(slot, fd, kind, 2 * PD_REF, err);
}

/* A reference on the descriptor in slot for fd, unless its ref has a bit
 * of refuse; NULL if there is none to take. */
static struct k_pollfd *acquire_slot(pd_slot *slot, intptr_t fd, uint32_t refuse)
{
    for (;;) {
        /* Acquire: pairs with pd_setup's release store of the slot. */
        struct k_pollfd *pd = atomic_load_explicit(slot, memory_order_acquire);
        if (!pd)
            return NULL;
        /* Relaxed: only the CAS's first guess; the CAS reads the latest. */
        uint32_t r = atomic_load_explicit(&pd->ref, memory_order_relaxed);
        bool got = false;
        while (!(r & refuse)) {
            /* Acquire: pairs with pd_setup's release store of ref (the
             * fd read below is the set-up's). The value the CAS reads is
             * that store's or one written by a read-modify-write after it
             * (lookups, releases, close), which continue its release
             * sequence; release_foreign's plain stores do not, but a
             * foreign descriptor is taken only under poller.foreign, which
             * its set-up held, and a CAS that refuses PD_FOREIGN never
             * succeeds on a value they wrote (they keep the bit). Failure
             * relaxed: only retried or refused, nothing is read. */
            if (atomic_compare_exchange_weak_explicit(&pd->ref, &r, r + PD_REF,
                                                      memory_order_acquire, memory_order_relaxed)) {
                got = true;
                break;
            }
        }
        if (got) {
            if (pd->fd == fd)
                return pd;
            /* Closed and set up for another number since the slot load. */
            k_pollfd_release(pd);
        }
        /* Still there: closing (or not ours to take). Else look again.
         * Only compared (the acquire at the top of the loop is the one a
         * dereference needs): acquire is more than this needs. */
        if (atomic_load_explicit(slot, memory_order_acquire) == pd)
            return NULL;
    }
}

struct k_pollfd *k_pollfd_acquire(intptr_t fd, int *err)
{
    pd_slot *slot = slot_of(fd, false);
    struct k_pollfd *pd = slot ? acquire_slot(slot, fd, PD_CLOSED | PD_FOREIGN) : NULL;
    if (!pd)
        *err = WEFT_EBADF;
    return pd;
}

struct k_pollfd *k_pollfd_acquire_any(intptr_t fd, int *err)
{
    if (fd < 0 || fd >= MAX_FD) {
        *err = WEFT_EBADF;
        return NULL;
    }
    pd_slot *slot = slot_of(fd, true);
    if (!slot) {
        *err = WEFT_ENOMEM;
        return NULL;
    }
    /* Under poller.foreign a foreign descriptor's count and slot do not
     * change, and none is set up or torn down: so two waits on a number
     * weft does not know share one registration. A stale pointer that
     * acquire_slot releases is to one weft owns (one that became foreign
     * would need this lock), so that release does not take it again. */
    k_lock(&poller.foreign);
    struct k_pollfd *pd = acquire_slot(slot, fd, PD_CLOSED);
    if (!pd) {
        /* Only tested against NULL, not dereferenced: acquire is more than
         * this needs. A foreign slot does not change under poller.foreign,
         * and an owned one that is seen a moment late gives an answer a
         * lookup just before its close or after its set-up would give. */
        if (atomic_load_explicit(slot, memory_order_acquire))
            *err = WEFT_EBADF; /* a socket of weft's, closing */
        else
            pd = pd_setup(slot, fd, PD_ANY, PD_FOREIGN | PD_REF, err);
    }
    k_unlock(&poller.foreign);
    return pd;
}

/* Takes side m's waiter, telling it code (pd->lock held). */
static struct task *take_waiter(struct k_pollfd *pd, int m, int code)
{
    struct task *t = pd->waiter[m];
    if (t) {
        pd->waiter[m] = NULL;
        pd->wake_code[m] = code;
    }
    return t;
}

/* Whether close has begun (pd->lock held: close sets PD_CLOSED under it,
 * so relaxed is enough). */
static bool closing(struct k_pollfd *pd)
{
    return atomic_load_explicit(&pd->ref, memory_order_relaxed) & PD_CLOSED;
}

/* The last reference of one weft does not own: unregister it, free it. */
static void release_foreign(struct k_pollfd *pd)
{
    k_lock(&poller.foreign);
    /* Every change of a foreign ref is made under poller.foreign: relaxed. */
    uint32_t r = atomic_load_explicit(&pd->ref, memory_order_relaxed);
    if (r >= 2 * PD_REF) {
        atomic_store_explicit(&pd->ref, r - PD_REF, memory_order_relaxed);
        k_unlock(&poller.foreign);
        return;
    }
    atomic_store_explicit(&pd->ref, PD_FOREIGN | PD_CLOSED, memory_order_relaxed);
    /* Empty the slot unless something else took the number since (the
     * program closed it behind weft's back and weft opened a socket on
     * it). Relaxed: NULL publishes nothing, foreign lookups read the slot
     * under poller.foreign, and a k_pollfd_acquire that still sees pd
     * refuses it (PD_FOREIGN, PD_CLOSED). */
    pd_slot *slot = slot_of(pd->fd, false);
    struct k_pollfd *expect = pd;
    atomic_compare_exchange_strong_explicit(slot, &expect, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
    hal_poll_unregister(pd->fd);
    pd->os_held = false;
    k_unlock(&poller.foreign);
    /* Its deadline timers never ran (weft_set_deadline refuses it), and
     * a wait's own timer is waited out by the wait. */
    pd_free(pd);
}

void k_pollfd_release(struct k_pollfd *pd)
{
    /* PD_FOREIGN is constant for the incarnation we hold (relaxed: our
     * reference keeps it from being reused, so any value read has the
     * bit of this incarnation). */
    if (atomic_load_explicit(&pd->ref, memory_order_relaxed) & PD_FOREIGN) {
        release_foreign(pd);
        return;
    }
    /* Release: our submits on the handle happen before the closer closes
     * it; acquire: the last one out sees every earlier release (it pairs
     * with the other references' decrements, the closer's included). */
    uint32_t old = atomic_fetch_sub_explicit(&pd->ref, PD_REF, memory_order_acq_rel);
    if (old != (PD_REF | PD_CLOSED))
        return;
    /* The last one out of a closing descriptor: hand it to the closer,
     * parked or about to park (it looks at last_out under the lock). */
    k_lock(&pd->lock);
    struct task *t = pd->closer;
    pd->closer = NULL;
    pd->last_out = true;
    k_unlock(&pd->lock);
    if (t)
        k_ready(t);
}

int k_pollfd_close(struct k_pollfd *pd)
{
    k_lock(&pd->lock);
    /* Relaxed: the CAS's first guess. */
    uint32_t r = atomic_load_explicit(&pd->ref, memory_order_relaxed);
    do {
        if (r & PD_CLOSED) { /* another close came first */
            k_unlock(&pd->lock);
            k_pollfd_release(pd);
            return WEFT_ECLOSED;
        }
        /* Relaxed: what must see PD_CLOSED reads it under pd->lock
         * (closing()), and lookups only need it to refuse: their CAS is
         * a read-modify-write, so it reads the latest value of ref and
         * cannot add to the count after this without seeing the bit.
         * k_pollfd_prepare's unlocked peek may miss it (see there). */
    } while (!atomic_compare_exchange_weak_explicit(&pd->ref, &r, r | PD_CLOSED,
                                                    memory_order_relaxed, memory_order_relaxed));
    struct task *rt = take_waiter(pd, K_POLL_R, WEFT_ECLOSED);
    struct task *wt = take_waiter(pd, K_POLL_W, WEFT_ECLOSED);
    for (int m = 0; m < 2; m++) {
        /* Stop, then bump seq (timer.h: seq changes only while the timer
         * is not pending; k_timers_run reads it under the heap lock). A
         * fire already taken off the heap reads seq again under pd->lock,
         * which we hold, and sees the new one. */
        k_timer_stop(&pd->timer[m]);
        pd->timer[m].seq++;
    }
    intptr_t fd = pd->fd;
    /* Forget the number. Relaxed: NULL publishes nothing, and a lookup
     * that still loads pd refuses it on PD_CLOSED, set above (its CAS
     * reads the latest ref). The OS keeps the number until the handle is
     * closed below, so no other descriptor can be stored in the slot in
     * between; the CAS only guards that. */
    pd_slot *slot = slot_of(fd, false);
    struct k_pollfd *expect = pd;
    atomic_compare_exchange_strong_explicit(slot, &expect, NULL, memory_order_relaxed,
                                            memory_order_relaxed);
    k_unlock(&pd->lock);
    if (rt)
        k_ready(rt);
    if (wt)
        k_ready(wt);
    /* Drop the open reference and ours. Acq_rel, as in k_pollfd_release:
     * at 0, every operation's use of the handle happened before this. */
    uint32_t old = atomic_fetch_sub_explicit(&pd->ref, 2 * PD_REF, memory_order_acq_rel);
    if (old != (2 * PD_REF | PD_CLOSED)) {
        /* Operations in flight: the last one out wakes us. */
        k_lock(&pd->lock);
        if (pd->last_out) {
            k_unlock(&pd->lock);
        } else {
            pd->closer = k_task_self();
            k_park(k_park_unlock, &pd->lock, WAIT_IO_CLOSE, pd);
        }
    }
    /* Nobody else holds it now, and no new reference can be taken; every
     * operation was collected before its task let go (relaxed: ordered
     * by the references' acq_rel decrements). */
    k_assert(atomic_load_explicit(&pd->inflight, memory_order_relaxed) == 0);
    int rc = hal_sock_close(fd);
    pd->os_held = false;
    /* Reused only after both timers' functions have returned (they would
     * otherwise see the next incarnation's state). */
    for (int m = 0; m < 2; m++)
        k_timer_quiesce(&pd->timer[m]);
    pd_free(pd);
    return rc == 0 ? 0 : WEFT_EIO;
}

/* Whether side m's deadline has passed (pd->lock held). Relaxed: every
 * store of deadline is made under pd->lock (pd_setup, deadline_fire,
 * k_pollfd_set_deadline, here); only k_pollfd_prepare peeks without it. */
static bool expired(struct k_pollfd *pd, int m)
{
    int64_t d = atomic_load_explicit(&pd->deadline[m], memory_order_relaxed);
    if (d == 0)
        return false;
    if (d < 0)
        return true;
    if (d > hal_now_ns())
        return false;
    atomic_store_explicit(&pd->deadline[m], -1, memory_order_relaxed);
    return true;
}

/* Before an operation on side mode: 0, WEFT_ECLOSED or WEFT_ETIMEDOUT. */
static int k_pollfd_prepare(struct k_pollfd *pd, int mode)
{
    /* Without the lock when no close has begun and the side has no
     * deadline (the usual case: every operation passes here). Relaxed
     * loads: a close or a deadline set by another task meanwhile may be
     * missed, which is the same as the operation coming before it; the
     * handle stays open while we hold our reference, and the wait
     * re-reads both under the lock before parking. */
    if (!(atomic_load_explicit(&pd->ref, memory_order_relaxed) & PD_CLOSED) &&
        atomic_load_explicit(&pd->deadline[mode], memory_order_relaxed) == 0)
        return 0;
    k_lock(&pd->lock);
    int rc = closing(pd) ? WEFT_ECLOSED : expired(pd, mode) ? WEFT_ETIMEDOUT : 0;
    k_unlock(&pd->lock);
    return rc;
}

/* A wait with a deadline of its own (weft_wait_fd's): its timer lives on
 * the waiting task's stack and is waited out before the wait returns. */
struct io_wait {
    struct k_timer timer; /* first: the timer function casts back */
    struct k_pollfd *pd;
    struct task *task;
    int mode;
};

/* The wait's deadline passed: time it out if it still waits (the task is
 * the side's waiter only during this wait: the timer is stopped and waited
 * out before the wait returns). */
static void wait_deadline_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)seq;
    (void)now;
    struct io_wait *w = (struct io_wait *)t;
    struct k_pollfd *pd = w->pd;
    k_lock(&pd->lock);
    struct task *task =
        pd->waiter[w->mode] == w->task ? take_waiter(pd, w->mode, WEFT_ETIMEDOUT) : NULL;
    k_unlock(&pd->lock);
    if (task)
        k_ready(task);
}

/* Park callback: the task is WAITING and is the side's waiter; start the
 * wait's timer, then let wakers in. */
static bool wait_arm(struct task *self, void *arg)
{
    (void)self;
    struct io_wait *w = arg;
    k_timer_start(&w->timer, w->timer.when);
    k_unlock(&w->pd->lock);
    return true;
}

/* Parks the calling task until side mode may be ready. 0 (submit again),
 * WEFT_ECLOSED (also when the descriptor was closed after the port
 * reported it and before the task ran again), WEFT_ETIMEDOUT (the side's
 * deadline, or deadline: see k_pollfd_io), or WEFT_EINVAL (another task
 * waits on that side). The caller holds a reference. */
static int k_pollfd_wait(struct k_pollfd *pd, int mode, int64_t deadline)
{
    struct task *self = k_task_self();
    k_lock(&pd->lock);
    if (closing(pd)) {
        k_unlock(&pd->lock);
        return WEFT_ECLOSED;
    }
    if (expired(pd, mode) || (deadline > 0 && deadline <= hal_now_ns())) {
        k_unlock(&pd->lock);
        return WEFT_ETIMEDOUT;
    }
    if (pd->ready[mode]) {
        pd->ready[mode] = false;
        k_unlock(&pd->lock);
        return 0;
    }
    if (pd->waiter[mode]) {
        k_unlock(&pd->lock);
        return WEFT_EINVAL; /* another task already waits on this side */
    }
    pd->waiter[mode] = self;
    pd->wake_code[mode] = 0;
    enum wait_reason why = mode == K_POLL_R ? WAIT_IO_READ : WAIT_IO_WRITE;
    /* Read by k_poll_waiters (sched.c: whether to poll, and stopm's
     * deadlock check). seq_cst is more than it needs, and it pairs with
     * no store-buffering partner: the thread that adds is the one that
     * next looks for work (program order), and another thread's deadlock
     * check sees it through sched.lock, which this thread takes before it
     * counts as idle. The decrement below is relaxed for the same reason:
     * a stale count only costs a poll that finds nothing. */
    atomic_fetch_add_explicit(&poller.nwaiters, 1, memory_order_seq_cst);
    if (deadline > 0) {
        struct io_wait w;
        memset(&w, 0, sizeof w);
        w.timer.fn = wait_deadline_fire;
        w.timer.idx = -1;
        w.timer.when = deadline;
        w.pd = pd;
        w.task = self;
        w.mode = mode;
        k_park(wait_arm, &w, why, pd);
        k_timer_stop(&w.timer);
        k_timer_quiesce(&w.timer);
    } else {
        k_park(k_park_unlock, &pd->lock, why, pd);
    }
    atomic_fetch_sub_explicit(&poller.nwaiters, 1, memory_order_relaxed);
    /* The waker wrote wake_code under pd->lock before readying us. A
     * "retry" from the port is void if the descriptor was closed since:
     * the close found no waiter to tell, and the operation must not
     * submit again (the number is about to go to someone else). */
    k_lock(&pd->lock);
    int code = pd->wake_code[mode];
    if (code == 0 && closing(pd))
        code = WEFT_ECLOSED;
    k_unlock(&pd->lock);
    return code;
}

/* Short reads. Why parking on "empty" cannot lose a wake-up: a short read
 * at rseq == seq means the socket was empty after the read; data that
 * arrives later is reported by the port, and that report bumps rseq (so
 * k_pollfd_read_empty turns false) and, through k_pollfd_wait's usual
 * ready flag or waiter, wakes whoever parks. A report that raced with the
 * read itself bumps rseq past seq: then nothing is assumed. What the port
 * cannot promise (a FIN, urgent data, an error end a read early) arrives
 * as HAL_POLL_NODRAIN and switches the shortcut off for the descriptor. */
/*
 * Orderings. rseq is bumped only by k_poll, under pd->lock, with a release
 * read-modify-write after its nodrain store: a reader whose acquire load
 * of rseq (k_pollfd_read_seq) sees a report sees that report's nodrain in
 * k_pollfd_read_short, so no drained is recorded against a report that
 * said "more than data". The nodrain store's own release and the acquire
 * loads of nodrain publish nothing else (the flag carries no data) and are
 * more than needed. Everything else may be stale: a stale value can only
 * make k_pollfd_read_empty say "empty" when it is not, and then the wait
 * that follows runs under pd->lock, where k_poll set the ready flag (or
 * took the waiter) in the same critical section as the bump: it returns
 * at once (unless another task's wait consumed the flag first, a race
 * that concurrent readers of one stream have with or without this
 * shortcut). Saying "not empty" wrongly only costs a read that fails and a
 * wait.
 */
static uint64_t k_pollfd_read_seq(struct k_pollfd *pd)
{
    /* Acquire: pairs with k_poll's release bump of rseq (see above). */
    return atomic_load_explicit(&pd->rseq, memory_order_acquire);
}

static void k_pollfd_read_short(struct k_pollfd *pd, uint64_t seq)
{
    /* nodrain: sees the flag of every report up to seq (above). drained
     * relaxed: only ever compared, a stale one costs a read or a wait. */
    if (poller.short_read_drains && !atomic_load_explicit(&pd->nodrain, memory_order_acquire))
        atomic_store_explicit(&pd->drained, seq + 1, memory_order_relaxed);
}

static bool k_pollfd_read_empty(struct k_pollfd *pd)
{
    /* All three may be stale; see "Orderings" above for why that is safe. */
    uint64_t d = atomic_load_explicit(&pd->drained, memory_order_relaxed);
    return d != 0 && !atomic_load_explicit(&pd->nodrain, memory_order_acquire) &&
           d == atomic_load_explicit(&pd->rseq, memory_order_acquire) + 1;
}

/* ---- operations ---- */

/*
 * Operations (Go: internal/poll's execIO over the runtime poller). An
 * operation is submitted, and on PENDING its task parks on the side until
 * the port reports it, then submits again: on a readiness port a retry,
 * on a completion port a collect (hal.h "I/O operations"). Both give
 * PENDING again after a report that was not for this submit (a stale
 * ready flag, a deadline that was moved, a report that raced with an
 * earlier collect), and the loop parks again: a wake-up never frees an
 * operation the kernel still owns.
 *
 * A completion port reports a side, not an operation (the operation lives
 * on its task's stack, and kern may not touch it once its collect is
 * possible), so only one operation may be in flight per side: its task
 * claims the side (op_owner) before the first submit and gives it back
 * after the last collect. A second task gets WEFT_EINVAL at once, as a
 * second waiter on a readiness port does when it would park.
 *
 * Giving up (a deadline, a close): readiness ports have nothing in
 * flight. On a completion port the operation is cancelled and its task
 * then waits for its completion regardless of deadlines and close
 * (wait_owed), so the close that woke it parks until this is over: the
 * socket is closed and the descriptor reused only after the kernel has
 * let go of every buffer. What the kernel finished before the cancel took
 * effect is returned, not the code: bytes read are not lost, and an
 * accepted connection is not leaked.
 */

static int64_t io_fail(struct task *self, int hal_rc, int os_error)
{
    self->os_errno = os_error;
    return hal_rc == HAL_ENOMEM ? WEFT_ENOMEM : WEFT_EIO;
}

/* Parks until side mode is reported or until until (absolute ns),
 * whatever else happens: the task waits for the completion of a cancelled
 * operation (pd->lock not held). A deadline or close may wake it too, and
 * that wake-up is as good as a stale report: the caller collects, and
 * parks again on PENDING. */
static void wait_owed(struct k_pollfd *pd, int mode, int64_t until)
{
    struct task *self = k_task_self();
    k_lock(&pd->lock);
    if (pd->ready[mode]) {
        pd->ready[mode] = false;
        k_unlock(&pd->lock);
        return;
    }
    /* The side is claimed (op_owner): nobody else waits on it. */
    k_assert(!pd->waiter[mode]);
    pd->waiter[mode] = self;
    pd->wake_code[mode] = 0;
    /* As in k_pollfd_wait (the count says a poll may ready a task). */
    atomic_fetch_add_explicit(&poller.nwaiters, 1, memory_order_seq_cst);
    struct io_wait w;
    memset(&w, 0, sizeof w);
    w.timer.fn = wait_deadline_fire;
    w.timer.idx = -1;
    w.timer.when = until;
    w.pd = pd;
    w.task = self;
    w.mode = mode;
    k_park(wait_arm, &w, WAIT_IO_CANCEL, pd);
    k_timer_stop(&w.timer);
    k_timer_quiesce(&w.timer);
    atomic_fetch_sub_explicit(&poller.nwaiters, 1, memory_order_relaxed);
}

/* How long a cancelled operation's completion is waited for before the
 * cancel is asked again, at first; doubled each time up to the cap. A
 * port's cancel may not take: under Wine 8.0 a CancelIoEx of a WSASend
 * that had to wait for buffer space sometimes never completes it
 * (net_close_race hung in 3 of 12 runs: the writer waited for ever for
 * its cancelled send, and the close for the writer); asked again, every
 * one completed (36 runs, 0 to 3 asked again per run). Asking again is
 * harmless where the first one took: the operation is found completed. */
#define CANCEL_RETRY_NS 2000000
#define CANCEL_RETRY_MAX_NS 1000000000

/* Gives up a PENDING op for code (see "Operations"). */
static int64_t give_up(struct task *self, struct k_pollfd *pd, int mode, struct hal_io *op,
                       int code)
{
    if (hal_io_cancel(op) != HAL_EPENDING)
        return code;
    int64_t retry = CANCEL_RETRY_NS, until = k_add_sat(hal_now_ns(), retry);
    for (;;) {
        int r = hal_io_submit(op); /* collect */
        if (r == 0)
            return op->result; /* it finished before the cancel */
        if (r == HAL_ECANCELED)
            return code;
        if (r != HAL_EPENDING)
            return io_fail(self, r, op->os_error);
        if (hal_now_ns() >= until) {
            hal_io_cancel(op);
            atomic_fetch_add_explicit(&poller.recancels, 1, memory_order_relaxed);
            retry = K_MIN(retry * 2, CANCEL_RETRY_MAX_NS);
            until = k_add_sat(hal_now_ns(), retry);
        }
        wait_owed(pd, mode, until);
    }
}

static int64_t io_loop(struct task *self, struct k_pollfd *pd, int mode, struct hal_io *op,
                       int64_t deadline)
{
    /* A stream read right after one that came back short would only find
     * nothing ("Short reads"): wait for data first. */
    bool stream_read = op->kind == HAL_IO_READ && pd->kind == PD_STREAM;
    if (stream_read && k_pollfd_read_empty(pd)) {
        int rc = k_pollfd_wait(pd, mode, deadline);
        if (rc)
            return rc;
    }
    bool counted = false;
    int64_t res;
    for (;;) {
        uint64_t seq = stream_read ? k_pollfd_read_seq(pd) : 0;
        int r = hal_io_submit(op);
        if (r == 0) {
            res = op->result;
            if (stream_read && res > 0 && ((uint64_t)res < op->len || op->drained))
                k_pollfd_read_short(pd, seq);
            break;
        }
        if (r != HAL_EPENDING) {
            res = io_fail(self, r, op->os_error);
            break;
        }
        if (!counted) {
            counted = true;
            /* Relaxed: counts for an assertion and for tests; what orders
             * the decrement before a reuse is the reference's release. */
            atomic_fetch_add_explicit(&pd->inflight, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&poller.inflight, 1, memory_order_relaxed);
        }
        int rc = k_pollfd_wait(pd, mode, deadline);
        if (rc) {
            res = give_up(self, pd, mode, op, rc);
            break;
        }
    }
    if (counted) {
        atomic_fetch_sub_explicit(&pd->inflight, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&poller.inflight, 1, memory_order_relaxed);
    }
    return res;
}

int64_t k_pollfd_io(struct k_pollfd *pd, int mode, struct hal_io *op, int64_t deadline)
{
    struct task *self = k_task_self();
    int rc = k_pollfd_prepare(pd, mode);
    if (rc)
        return rc;
    /* A deadline that has passed holds before anything is tried, as the
     * side's own does (prepare): even when the object is ready. */
    if (deadline > 0 && deadline <= hal_now_ns())
        return WEFT_ETIMEDOUT;
    if (poller.completion) {
        k_lock(&pd->lock);
        rc = closing(pd) ? WEFT_ECLOSED : pd->op_owner[mode] ? WEFT_EINVAL : 0;
        if (!rc)
            pd->op_owner[mode] = self;
        k_unlock(&pd->lock);
        if (rc)
            return rc;
    }
    op->cookie = pd->cookie;
    op->started = 0;
    int64_t res = io_loop(self, pd, mode, op, deadline);
    if (poller.completion) {
        k_lock(&pd->lock);
        pd->op_owner[mode] = NULL;
        k_unlock(&pd->lock);
    }
    if (k_pollfd_poison)
        memset(op, 0xa5, sizeof *op);
    return res;
}

/* A deadline's timer: the side's deadline passed (unless it was changed
 * since: the sequence number tells). */
static void deadline_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)now;
    struct k_pollfd *pd = t->arg;
    int m = t == &pd->timer[K_POLL_R] ? K_POLL_R : K_POLL_W;
    k_lock(&pd->lock);
    if (seq != t->seq || closing(pd)) {
        k_unlock(&pd->lock);
        return;
    }
    /* Relaxed: under pd->lock (see expired). */
    atomic_store_explicit(&pd->deadline[m], -1, memory_order_relaxed);
    struct task *w = take_waiter(pd, m, WEFT_ETIMEDOUT);
    k_unlock(&pd->lock);
    if (w)
        k_ready(w);
}

void k_pollfd_set_deadline(struct k_pollfd *pd, int64_t rd, int64_t wd)
{
    int64_t d[2] = {rd, wd};
    struct task *wake[2] = {NULL, NULL};
    int64_t now = hal_now_ns();
    k_lock(&pd->lock);
    if (closing(pd)) {
        /* A close stopped the timers for good: one started now would still
         * be pending when the descriptor is reused. */
        k_unlock(&pd->lock);
        return;
    }
    /* The deadline stores: relaxed, under pd->lock (see expired). A task
     * that set a deadline and then starts an operation sees it in
     * k_pollfd_prepare by program order; another task's operation is
     * ordered after it only if something else orders them. */
    for (int m = 0; m < 2; m++) {
        k_timer_stop(&pd->timer[m]); /* then seq++: see k_pollfd_close */
        pd->timer[m].seq++;
        if (d[m] <= 0) {
            atomic_store_explicit(&pd->deadline[m], 0, memory_order_relaxed);
        } else if (d[m] <= now) {
            atomic_store_explicit(&pd->deadline[m], -1, memory_order_relaxed);
            wake[m] = take_waiter(pd, m, WEFT_ETIMEDOUT);
        } else {
            atomic_store_explicit(&pd->deadline[m], d[m], memory_order_relaxed);
            /* A fire of the old setting still running is stale by seq. */
            k_timer_start(&pd->timer[m], d[m]);
        }
    }
    k_unlock(&pd->lock);
    for (int m = 0; m < 2; m++)
        if (wake[m])
            k_ready(wake[m]);
}

/* ---- the scheduler's side ---- */

uint64_t k_poll_recancels(void)
{
    /* Relaxed: a count for tests. */
    return atomic_load_explicit(&poller.recancels, memory_order_relaxed);
}

int32_t k_poll_inflight(void)
{
    /* Relaxed: a count for tests. */
    return atomic_load_explicit(&poller.inflight, memory_order_relaxed);
}

int32_t k_poll_waiters(void)
{
    /* seq_cst, as the updates; what orders it is in k_pollfd_wait. */
    return atomic_load_explicit(&poller.nwaiters, memory_order_seq_cst);
}

uint64_t k_poll_wakeups(void)
{
    /* Relaxed: a statistic, publishes nothing. */
    return atomic_load_explicit(&poller.wakeups, memory_order_relaxed);
}

uint64_t k_poll_readied(void)
{
    /* Relaxed: see the increment in k_poll. */
    return atomic_load_explicit(&poller.readied, memory_order_relaxed);
}

void k_poll_wake_for(int64_t when)
{
    /* seq_cst: the store-buffering pair with poll_or_stop (sched.c).
     * k_timer_start stores an earlier timer0 (seq_cst) before this load;
     * the poller swaps last_poll to 0 (seq_cst) before it loads every
     * timer0. So we see 0 here, or it sees the timer. */
    if (atomic_load_explicit(&k_sched.last_poll, memory_order_seq_cst) != 0)
        return; /* nobody blocks in the poller: whoever does will see when */
    /* seq_cst: pairs with poll_or_stop's stores of poll_until: 0 (wake
     * it) or the time it will wake by itself. */
    int64_t until = atomic_load_explicit(&k_sched.poll_until, memory_order_seq_cst);
    if (until == 0 || until > when) {
        /* Relaxed: a statistic. */
        atomic_fetch_add_explicit(&poller.wakeups, 1, memory_order_relaxed);
        hal_poll_wake();
    }
}

struct task *k_poll(int64_t timeout_ns, int *n)
{
    struct hal_poll_event ev[MAX_EVENTS];
    struct task *head = NULL, **tail = &head;
    *n = 0;
    int got = hal_poll_wait(ev, MAX_EVENTS, timeout_ns);
    for (int i = 0; i < got; i++) {
        struct k_pollfd *pd = ev[i].key;
        struct task *ts[2] = {NULL, NULL};
        k_lock(&pd->lock);
        /* nodrain before rseq: a reader that sees the new rseq sees it.
         * The bump's release half publishes the nodrain store to
         * k_pollfd_read_seq's acquire load; its acquire half is not
         * needed (rseq only changes here, under pd->lock). epoll reports
         * HAL_POLL_NODRAIN only with HAL_POLL_READ; a port that reported
         * it alone would set the flag with no bump for a reader to
         * acquire (and wake no reader either). */
        if (ev[i].events & HAL_POLL_NODRAIN)
            atomic_store_explicit(&pd->nodrain, true, memory_order_release);
        if (ev[i].events & HAL_POLL_READ)
            atomic_fetch_add_explicit(&pd->rseq, 1, memory_order_acq_rel);
        for (int m = 0; m < 2; m++) {
            if (!(ev[i].events & (m == K_POLL_R ? HAL_POLL_READ : HAL_POLL_WRITE)))
                continue;
            ts[m] = take_waiter(pd, m, 0);
            if (!ts[m])
                pd->ready[m] = true;
        }
        k_unlock(&pd->lock);
        for (int m = 0; m < 2; m++) {
            if (!ts[m])
                continue;
            ts[m]->schedlink = NULL;
            hal_ctx_prefetch(&ts[m]->ctx); /* it runs soon, likely here */
            *tail = ts[m];
            tail = &ts[m]->schedlink;
            (*n)++;
        }
    }
    /* Relaxed: a count. A test that sees it move and then takes pd->lock
     * (weft_close) is still ordered after the critical section above that
     * took the waiter: had its lock come first, its load would happen
     * before this increment and could not read it (coherence). */
    if (*n)
        atomic_fetch_add_explicit(&poller.readied, (uint64_t)*n, memory_order_relaxed);
    return head;
}
