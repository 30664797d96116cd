/* SPDX-License-Identifier: MIT */
/*
 * sema.c — parking tasks on a 32-bit word anywhere in memory, and the
 * ticket notify list of weft_cond (Go: runtime/sema.go, semacquire1,
 * semrelease1, notifyList*).
 *
 * What it owns: the semaphore table, a static array of SEMA_BUCKETS buckets.
 * A bucket holds, under its k_lock, every task parked on a semaphore word
 * whose address hashes to it. The words themselves belong to their owners
 * (weft_mutex.sema, weft_rwmutex.reader_sem, ...); a word holds the count
 * of available units and is changed only with atomics.
 *
 * The big picture. This is a sleep/wake-up primitive, not a counting
 * semaphore users see: every acquire that must sleep is paired with exactly
 * one release, even when the release comes first (Mullender and Cox,
 * "Semaphores in Plan 9").
 *
 *   acquire(addr)                          release(addr)
 *   1. take a unit if *addr > 0: done      1. *addr += 1
 *   2. lock bucket; nwait += 1             2. if nwait == 0: done (nobody
 *   3. take a unit if *addr > 0:              can be parked in this bucket)
 *      nwait -= 1, unlock, done            3. lock bucket; dequeue the first
 *   4. queue a waiter for addr; park,         waiter on addr; nwait -= 1;
 *      unlocking the bucket                   unlock
 *   5. woken: if the unit was handed to    4. [handoff: take the unit for the
 *      us, done; else go to 1 (3 runs         waiter, mark it handed]
 *      again before parking again)         5. k_ready(waiter); [handoff: yield]
 *
 * No wake-up is lost: acquire step 2's increment of nwait and step 3's load
 * of *addr, against release step 1's increment of *addr and step 2's load
 * of nwait, are all sequentially consistent (a Dekker pair), so either the
 * acquirer sees the unit or the releaser sees the waiter count and then
 * takes the bucket lock, which the acquirer holds until it is queued and
 * WAITING (k_park's protocol, sched.h). nwait lets a release with nobody
 * waiting skip the lock entirely, which is the common case of an
 * uncontended weft_mutex unlock that found waiters in its state word.
 *
 * Waiter order: per address, FIFO; lifo=true queues at the front (the
 * mutex's waiter that was woken, lost the race, and waits again keeps its
 * place at the head). A woken waiter without a handed unit competes with
 * tasks that arrive meanwhile (barging), as in Go; handoff (the mutex's
 * starvation mode) gives the unit to the woken waiter directly and lets it
 * run at once on this proc (runnext + yield: it inherits the time slice).
 *
 * Per-bucket structure (Go keeps a treap of addresses per bucket):
 *
 *   bucket.heads -> [head addr A] --anext--> [head addr B] --> NULL
 *                      | next                   | next
 *                      v                        v
 *                   [waiter A2] -> [A3]      NULL        (FIFO per address)
 *
 * Each distinct address has one head waiter on a singly linked list, and
 * the head keeps a pointer to the last waiter of its address. queue and
 * dequeue are O(d), d = distinct addresses with parked tasks in the same
 * bucket (almost always 0 or 1 with 251 buckets), and O(1) in the number
 * of waiters per address: a thousand tasks on one mutex cost nothing to
 * the release of a colliding address. Rejected: Go's treap (O(log d)) is
 * worth its code only when thousands of distinct addresses collide in one
 * bucket; one flat FIFO per bucket is O(waiters) per release (Go issue
 * 17953).
 *
 * Waiter nodes live on the parked task's stack: a parked task's stack
 * stays put until it is readied, C stacks never move, and so no allocation
 * happens on this path at all.
 *
 * The notify list (weft_cond) lives here too, as in Go: its tickets and
 * list are in the weft_cond itself and are guarded by the lock of the
 * bucket the cond's address hashes to (weft_cond.lock is unused: a k_lock
 * carries an owner field in DEBUG builds and does not fit in it).
 */
#include "kern/sema.h"
#include "kern/lock.h"
#include "kern/sched.h"

/* Prime, so that addresses in arrays of structs spread out (Go: 251). */
#define SEMA_BUCKETS 251

K_STATIC_ASSERT(sizeof(_Atomic uint32_t) == sizeof(uint32_t) &&
                    _Alignof(_Atomic uint32_t) == _Alignof(uint32_t),
                "K_ATOMIC_U32 views a plain uint32_t");
K_STATIC_ASSERT(sizeof(_Atomic int32_t) == sizeof(int32_t) &&
                    _Alignof(_Atomic int32_t) == _Alignof(int32_t),
                "K_ATOMIC_I32 views a plain int32_t");
K_STATIC_ASSERT(sizeof(_Atomic uint64_t) == sizeof(uint64_t) &&
                    _Alignof(_Atomic uint64_t) == _Alignof(uint64_t),
                "K_ATOMIC_U64 views a plain uint64_t");
K_STATIC_ASSERT(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
                "sync words need lock-free 32- and 64-bit atomics");
K_STATIC_ASSERT(offsetof(weft_waitgroup, state) % 8 == 0,
                "weft_waitgroup.state must be 8-aligned for 64-bit atomics");

/* A task parked on a semaphore word; on that task's stack. */
struct sema_waiter {
    /* Immutable while queued: */
    struct task *task;
    uint32_t *addr;

    /* Protected by the bucket lock: */
    struct sema_waiter *next;  /* next waiter on the same address */
    struct sema_waiter *last;  /* head only: last waiter on its address */
    struct sema_waiter *anext; /* head only: head of the next address */

    /* Written by the releaser before k_ready, read by the task after
     * k_park returns; the run queue's release/acquire orders the two
     * (Go: sudog.ticket != 0). */
    bool handed;
};

struct sema_bucket {
    /* Protects heads and the links of every waiter queued here, and the
     * notify lists of the weft_conds that hash here. Nothing else is
     * locked while it is held (k_ready and the allocator are called only
     * after it is released), except the stack pool lock when k_park's
     * direct switch starts a task that never ran (lock.h); lock.h ranks
     * it before sched.lock. */
    struct k_lock lock;
    /* Tasks queued here, on any address. Changed under lock; read without
     * it by release (Go: semaRoot.nwait). Pairs with the semaphore word:
     * see the Dekker pair in the comment at the top. */
    _Atomic uint32_t nwait;
    /* Under lock: one head waiter per distinct address. */
    struct sema_waiter *heads;
};

/* One bucket per cache line, so that unrelated locks do not share one. */
static struct {
    _Alignas(K_CACHELINE) struct sema_bucket b;
} sema_table[SEMA_BUCKETS];

/* Times a weft_mutex entered starvation mode (tests read it). A statistic:
 * every access is relaxed. */
static _Atomic uint64_t starvation_count;

static struct sema_bucket *bucket_for(const void *addr)
{
    return &sema_table[((uintptr_t)addr >> 3) % SEMA_BUCKETS].b;
}

void k_sema_init(void)
{
    memset(sema_table, 0, sizeof sema_table);
    atomic_store_explicit(&starvation_count, 0, memory_order_relaxed);
}

uint64_t k_sync_starvation_count(void)
{
    return atomic_load_explicit(&starvation_count, memory_order_relaxed);
}

void k_sync_note_starvation(void)
{
    atomic_fetch_add_explicit(&starvation_count, 1, memory_order_relaxed);
}

/* ---- semaphores ---- */

bool k_sema_tryacquire(uint32_t *addr)
{
    _Atomic uint32_t *a = K_ATOMIC_U32(addr);
    /* Sequentially consistent: this load is the second half of acquire's
     * Dekker pair (nwait += 1, then load *addr). */
    uint32_t v = atomic_load(a);
    while (v != 0) {
        /* seq_cst, so also an acquire: pairs with k_sema_release's
         * increment (a release too); what the releaser did before (a
         * mutex's critical section) is visible to the taker. */
        if (atomic_compare_exchange_weak(a, &v, v - 1))
            return true;
    }
    return false;
}

/* Queues w (w->addr set) in b. Caller holds b->lock. */
static void sema_queue(struct sema_bucket *b, struct sema_waiter *w, bool lifo)
{
    w->next = NULL;
    w->last = w;
    w->anext = NULL;
    for (struct sema_waiter **pp = &b->heads; *pp != NULL; pp = &(*pp)->anext) {
        struct sema_waiter *h = *pp;
        if (h->addr != w->addr)
            continue;
        if (lifo) {
            /* w becomes the head of addr; h is its second waiter. */
            w->next = h;
            w->last = h->last;
            w->anext = h->anext;
            h->last = NULL;
            h->anext = NULL;
            *pp = w;
        } else {
            h->last->next = w;
            h->last = w;
        }
        return;
    }
    /* First waiter on addr in this bucket. */
    w->anext = b->heads;
    b->heads = w;
}

/* Removes and returns the first waiter on addr, or NULL. Caller holds
 * b->lock. */
static struct sema_waiter *sema_dequeue(struct sema_bucket *b, const uint32_t *addr)
{
    for (struct sema_waiter **pp = &b->heads; *pp != NULL; pp = &(*pp)->anext) {
        struct sema_waiter *h = *pp;
        if (h->addr != addr)
            continue;
        struct sema_waiter *n = h->next;
        if (n != NULL) {
            n->last = h->last;
            n->anext = h->anext;
            *pp = n;
        } else {
            *pp = h->anext;
        }
        h->next = h->last = h->anext = NULL;
        return h;
    }
    return NULL;
}

void k_sema_acquire(uint32_t *addr, bool lifo, enum wait_reason reason, void *obj)
{
    if (k_sema_tryacquire(addr))
        return;

    struct sema_bucket *b = bucket_for(addr);
    struct sema_waiter w;
    for (;;) {
        struct task *self = k_task_self();
        k_assert(self != NULL);
        k_assert(k_locks_held() == 0);

        k_lock(&b->lock);
        /* Count ourselves before the last look at *addr: pairs with the
         * increment of *addr then load of nwait in k_sema_release (all
         * sequentially consistent). A release that misses this count has
         * already made its unit visible to the tryacquire below. */
        atomic_fetch_add(&b->nwait, 1);
        if (k_sema_tryacquire(addr)) {
            /* Under b->lock like every change of nwait; a releaser that
             * reads the stale count only takes the lock for nothing. */
            atomic_fetch_sub(&b->nwait, 1);
            k_unlock(&b->lock);
            return;
        }
        w.task = self;
        w.addr = addr;
        w.handed = false;
        sema_queue(b, &w, lifo);
        /* The releaser dequeues w (and decrements nwait) before readying
         * us, so w is unlinked when k_park returns. */
        k_park(k_park_unlock, &b->lock, reason, obj);
        if (w.handed || k_sema_tryacquire(addr))
            return;
        /* Woken, but a barging task took the unit: wait again. */
    }
}

void k_sema_release(uint32_t *addr, bool handoff)
{
    struct sema_bucket *b = bucket_for(addr);

    /* Publish the unit before looking for waiters: pairs with the
     * nwait increment then tryacquire in k_sema_acquire. */
    atomic_fetch_add(K_ATOMIC_U32(addr), 1);
    if (atomic_load(&b->nwait) == 0)
        return;

    k_lock(&b->lock);
    /* Relaxed: nwait changes only under b->lock, which we hold. */
    if (atomic_load_explicit(&b->nwait, memory_order_relaxed) == 0) {
        /* Someone took the unit and left; nobody to wake. */
        k_unlock(&b->lock);
        return;
    }
    struct sema_waiter *w = sema_dequeue(b, addr);
    if (w != NULL)
        atomic_fetch_sub(&b->nwait, 1);
    k_unlock(&b->lock);
    if (w == NULL)
        return;

    /* w stays valid until k_ready: its task is parked and only we can
     * wake it now. Read everything we need before readying it. */
    struct task *t = w->task;
    bool handed = handoff && k_sema_tryacquire(addr);
    w->handed = handed;
    k_ready(t);
    if (handed && k_task_self() != NULL && k_locks_held() == 0) {
        /* k_ready put t in our runnext: yielding runs it now, here. */
        k_yield();
    }
}

/* ---- notify list (weft_cond) ---- */

/* A task parked in k_notify_wait; on that task's stack. */
struct notify_waiter {
    /* Immutable while queued: */
    struct task *task;
    uint32_t ticket;
    /* Protected by the bucket lock of the cond: */
    struct notify_waiter *next;
};

/* a comes before b in ticket order. Tickets wrap; their unwrapped distance
 * stays below 2^31 as long as fewer than 2^31 tasks wait on one cond. */
static bool ticket_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

uint32_t k_notify_add(weft_cond *c)
{
    /* May run concurrently with other k_notify_add calls (a cond used
     * with a lock shared by readers), so an atomic increment. seq_cst:
     * k_notify_one/all read wait lock-free (see there). */
    return atomic_fetch_add(K_ATOMIC_U32(&c->wait), 1);
}

void k_notify_wait(weft_cond *c, uint32_t t)
{
    k_assert(k_task_self() != NULL);
    k_assert(k_locks_held() == 0);

    struct sema_bucket *b = bucket_for(c);
    k_lock(&b->lock);
    /* notify is written only under this lock. */
    if (ticket_before(t, atomic_load_explicit(K_ATOMIC_U32(&c->notify), memory_order_relaxed))) {
        k_unlock(&b->lock);
        return;
    }
    struct notify_waiter w = {.task = k_task_self(), .ticket = t, .next = NULL};
    struct notify_waiter *tail = c->tail;
    if (tail == NULL)
        c->head = &w;
    else
        tail->next = &w;
    c->tail = &w;
    k_park(k_park_unlock, &b->lock, WAIT_COND, c);
}

bool k_notify_one(weft_cond *c, bool can_wake)
{
    _Atomic uint32_t *waitp = K_ATOMIC_U32(&c->wait);
    _Atomic uint32_t *notifyp = K_ATOMIC_U32(&c->notify);

    /* Nobody took a ticket since the last notification: nothing to do and
     * no lock to take. A ticket taken under the user's mutex before the
     * caller locked it is visible here through that mutex. A ticket not
     * visible yet belongs to a wait that does not happen before this
     * notify, which may miss it, as in Go. Below, notify is read relaxed
     * (written only under b->lock, held); its seq_cst store pairs with
     * k_notify_wait's check under the same lock (the lock orders them). */
    if (atomic_load(waitp) == atomic_load(notifyp))
        return true;

    struct sema_bucket *b = bucket_for(c);
    k_lock(&b->lock);
    uint32_t t = atomic_load_explicit(notifyp, memory_order_relaxed);
    if (t == atomic_load(waitp)) {
        k_unlock(&b->lock);
        return true;
    }
    /* Nobody may be woken (no run): any waiter queued belongs to a task
     * that the run's end discarded, and lived on its stack, which is gone:
     * refuse without reading it. */
    if (!can_wake && c->head != NULL) {
        k_unlock(&b->lock);
        return false;
    }
    /* The task holding ticket t may not have queued yet (it took the
     * ticket, then unlocks the user's mutex, then queues); then it is not
     * found, and it will see the new notify value and not park. Tasks
     * queue in nearly ticket order, so the scan stops near the front. */
    struct notify_waiter *prev = NULL, *s = c->head;
    while (s != NULL && s->ticket != t) {
        prev = s;
        s = s->next;
    }
    atomic_store(notifyp, t + 1);
    if (s != NULL) {
        if (prev == NULL)
            c->head = s->next;
        else
            prev->next = s->next;
        if (c->tail == s)
            c->tail = prev;
    }
    k_unlock(&b->lock);
    if (s != NULL)
        k_ready(s->task); /* s is valid until its task runs again */
    return true;
}

bool k_notify_all(weft_cond *c, bool can_wake)
{
    _Atomic uint32_t *waitp = K_ATOMIC_U32(&c->wait);
    _Atomic uint32_t *notifyp = K_ATOMIC_U32(&c->notify);

    if (atomic_load(waitp) == atomic_load(notifyp))
        return true;

    struct sema_bucket *b = bucket_for(c);
    k_lock(&b->lock);
    struct notify_waiter *s = c->head;
    if (s != NULL && !can_wake) {
        k_unlock(&b->lock);
        return false;
    }
    c->head = NULL;
    c->tail = NULL;
    /* Every ticket taken so far is notified: those queued are in s, the
     * others will see notify and not park (k_notify_wait reads it under
     * b->lock). The fast path above is as in k_notify_one. */
    atomic_store(notifyp, atomic_load(waitp));
    k_unlock(&b->lock);

    while (s != NULL) {
        struct notify_waiter *next = s->next; /* before s can vanish */
        k_ready(s->task);
        s = next;
    }
    return true;
}
