/* SPDX-License-Identifier: MIT */
/*
 * chan.h — the channel structure and the pieces chan.c and select.c share
 * (Go: hchan, waitq, and the send/recv helpers of chan.go).
 *
 * Channel invariants (Go's, restated):
 *   - At least one of sendq and recvq is empty, except while one select has
 *     cases that send and receive on the same channel.
 *   - count > 0 implies recvq is empty (a receiver would have taken it).
 *   - count < cap implies sendq is empty (a sender would have put it).
 *   - closed never goes from 1 back to 0; once closed, no waiter is added
 *     to sendq or recvq, and count only decreases.
 *   - A waiter on a queue is owned by the queue (under the channel lock)
 *     until it is dequeued; the task that dequeues it owns it until it
 *     calls k_ready on the waiter's task, after which only that task
 *     touches it (and gives it back with k_waiter_put).
 *
 * A select waiter (is_select) may be dequeued only by whoever wins its
 * task's select_done (CAS 0 -> 1). A waiter that loses is still unlinked by
 * waitq_dequeue, and the selecting task's pass 3 sees it as already removed
 * (see waitq_remove). This is Go's selectDone.
 *
 * Lifetime. A task blocked in a plain send or receive never touches the
 * channel once it is woken, so the program may free the channel as soon as
 * the operation is complete (right after a close, for instance). A woken
 * select is different: its pass 3 must lock every channel it waited on
 * again, to unlink the waiters that lost, and meanwhile each of those
 * channels may have lost its last waiter (to the waker, or to a close that
 * unlinked the loser) and been freed by the program. In Go the garbage
 * collector keeps them alive because the select still points at them; in
 * weft the select holds a reference on each (refs below), and
 * weft_chan_free leaves the release to whoever drops the last one.
 */
#ifndef WEFT_KERN_CHAN_H
#define WEFT_KERN_CHAN_H

#include "kern/kern.h"
#include "kern/lock.h"
#include "kern/task.h"
#include "kern/waiter.h"

/* weft_chan.refs: weft_chan_free was called. */
#define K_CHAN_FREED 0x80000000u
#define K_CHAN_LIVE 0x6e616863u /* "chan" */

/* Stops the program (a message naming fn, the dump, an abort) when c is
 * neither NULL nor a live channel. */
void k_chan_misuse(const struct weft_chan *c, const char *fn);
#define k_chan_check(c, fn)                                                                        \
    do {                                                                                           \
        if ((c) != NULL &&                                                                         \
            K_UNLIKELY(atomic_load_explicit(&(c)->live, memory_order_relaxed) != K_CHAN_LIVE))     \
            k_chan_misuse((c), (fn));                                                              \
    } while (0)

/* Largest element (as in Go, which rejects elements of 64 KiB or more) and
 * largest capacity and buffer accepted by weft_chan_make. */
#define K_CHAN_ELEM_MAX 65535u
#define K_CHAN_CAP_MAX ((size_t)K_MIN((uint64_t)1 << 40, (uint64_t)SIZE_MAX / 4))
#define K_CHAN_BUF_MAX K_CHAN_CAP_MAX

/* A FIFO of waiters (Go: waitq). */
struct waitq {
    /* Written under the channel lock with release stores; read without the
     * lock (acquire) by the non-blocking fast paths, which only compare it
     * with NULL. Pairs with those loads; see chan_full / chan_empty. */
    struct waiter *_Atomic first;
    /* Protected by the channel lock: */
    struct waiter *last;
};

struct weft_chan {
    /* Immutable after weft_chan_make, so read anywhere without the lock: */
    size_t elem_size;
    size_t cap;        /* slots in buf; 0 = unbuffered (Go: dataqsiz) */
    char *buf;         /* cap * elem_size bytes, just after the struct */
    size_t alloc_size; /* what k_free must be given */
    /* K_CHAN_LIVE from weft_chan_make until weft_chan_free lets the channel
     * go (then 0). Every public function checks it first (chan.c,
     * k_chan_check): a channel used after its free, or a pointer that is
     * no channel, stops the program with a message while the memory is
     * still weft's, instead of corrupting it. Past the first word, which
     * the allocator's free list takes. Relaxed: the store at the free
     * races only with a use that is misuse already. */
    _Atomic uint32_t live;

    /*
     * The channel lock (Go: hchan.lock). Protects every field below and the
     * links, elem and success of every waiter on recvq and sendq. Several
     * channel locks are taken only by select, in address order; channel
     * locks are taken before sched.lock (see kern/lock.h). Never held across
     * a park: k_park's unlock function releases it.
     */
    struct k_lock lock;

    /* Written under the lock with release stores; also read without the
     * lock (acquire) by the fast paths and weft_chan_len: */
    _Atomic uint32_t closed;
    _Atomic size_t count; /* elements in buf (Go: qcount) */

    /*
     * Not under the lock. References held by selects and by parked host
     * threads (the low 31 bits), and K_CHAN_FREED once weft_chan_free has
     * been called. A select that parks takes one reference per distinct
     * channel in pass 2 (under the lock, with its waiter) and drops it in
     * pass 3 right after its last unlock of the channel (k_chan_unref);
     * that drop is its last access to the channel. A host thread parked
     * in a plain send or receive holds one the same way (chan.c
     * chan_park: a cancelled host locks the channel again). The memory
     * is released by whichever read-modify-write leaves exactly
     * K_CHAN_FREED: weft_chan_free's (no reference left) or the last
     * k_chan_unref's. A reference count never reaches 2^31: each holds a
     * parked or running task (or host thread), each with a stack.
     */
    _Atomic uint32_t refs;

    /* Protected by the lock: */
    size_t sendx;       /* next slot to fill */
    size_t recvx;       /* next slot to empty */
    struct waitq recvq; /* tasks blocked receiving */
    struct waitq sendq; /* tasks blocked sending */
};

/* ---- Lock-free readiness checks (Go: full, empty) ---- */

/*
 * true if a send would block now, ignoring closed. cap is immutable; the
 * load is an acquire so that a later load of closed cannot be satisfied
 * earlier than it (see try_send_fails and try_recv_fast in chan.c).
 */
static inline bool chan_full(struct weft_chan *c)
{
    if (c->cap == 0)
        return atomic_load_explicit(&c->recvq.first, memory_order_acquire) == NULL;
    return atomic_load_explicit(&c->count, memory_order_acquire) == c->cap;
}

/* true if a receive would block now, ignoring closed. */
static inline bool chan_empty(struct weft_chan *c)
{
    if (c->cap == 0)
        return atomic_load_explicit(&c->sendq.first, memory_order_acquire) == NULL;
    return atomic_load_explicit(&c->count, memory_order_acquire) == 0;
}

/* ---- Waiter queues. All of these need the channel lock. ---- */

/* first: relaxed loads here, under the lock that orders every store of
 * it; stores are releases for the lock-free fast paths (see waitq). */
static inline void waitq_enqueue(struct waitq *q, struct waiter *w)
{
    w->next = NULL;
    w->prev = q->last;
    if (q->last == NULL)
        atomic_store_explicit(&q->first, w, memory_order_release);
    else
        q->last->next = w;
    q->last = w;
}

/*
 * Takes the first waiter that may be completed: plain waiters always, select
 * waiters only if this call wins their task's select_done. Losers are
 * unlinked too (their select is being completed through another case) and
 * left with next == prev == NULL, which waitq_remove reads as "removed".
 * Returns NULL when no waiter is left. (Go: waitq.dequeue)
 */
static inline struct waiter *waitq_dequeue(struct waitq *q)
{
    for (;;) {
        struct waiter *w = atomic_load_explicit(&q->first, memory_order_relaxed);
        if (w == NULL)
            return NULL;
        struct waiter *n = w->next;
        atomic_store_explicit(&q->first, n, memory_order_release);
        if (n == NULL)
            q->last = NULL;
        else
            n->prev = NULL;
        w->next = NULL;
        w->prev = NULL;
        if (w->is_select) {
            /* Only one case of a select may complete. The CAS is the only
             * synchronisation between wakers of the same select on
             * different channels (they hold different locks); the task
             * resets select_done to 0 only while holding every one of its
             * channels' locks, when no waker can be here. acq_rel pairs
             * with the other wakers' CAS, though nothing is read through
             * it: the winner's writes to the waiter reach the task via
             * k_ready (the run queue's release). */
            uint32_t zero = 0;
            if (!atomic_compare_exchange_strong_explicit(
                    &w->task->select_done, &zero, 1, memory_order_acq_rel, memory_order_relaxed))
                continue;
        }
        return w;
    }
}

/* Unlinks w if it is still on q; no-op if a waitq_dequeue already took it.
 * (Go: dequeueSudoG) */
static inline void waitq_remove(struct waitq *q, struct waiter *w)
{
    struct waiter *p = w->prev, *n = w->next;
    if (p == NULL) {
        if (atomic_load_explicit(&q->first, memory_order_relaxed) != w) {
            /* next == prev == NULL and not first: already dequeued. */
            k_assert(n == NULL);
            return;
        }
        atomic_store_explicit(&q->first, n, memory_order_release);
    } else {
        p->next = n;
    }
    if (n == NULL)
        q->last = p;
    else
        n->prev = p;
    w->next = NULL;
    w->prev = NULL;
}

/* ---- Moving elements. All of these need the channel lock. ---- */

/* Copies one element. kern is built with -fno-builtin, so memcpy is always
 * a call; the common small sizes are inlined here instead. */
static inline void elem_copy(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 0:
        break;
    case 4:
        __builtin_memcpy(dst, src, 4);
        break;
    case 8:
        __builtin_memcpy(dst, src, 8);
        break;
    case 16:
        __builtin_memcpy(dst, src, 16);
        break;
    default:
        memcpy(dst, src, n);
        break;
    }
}

static inline char *chan_slot(struct weft_chan *c, size_t i)
{
    return c->buf + i * c->elem_size;
}

/* Appends *elem to the buffer; count < cap. */
static inline void chan_buf_put(struct weft_chan *c, const void *elem)
{
    elem_copy(chan_slot(c, c->sendx), elem, c->elem_size);
    if (++c->sendx == c->cap)
        c->sendx = 0;
    /* Written only under the lock (relaxed load); the release store pairs
     * with the fast paths' acquire loads (chan_full, chan_empty). */
    size_t n = atomic_load_explicit(&c->count, memory_order_relaxed);
    atomic_store_explicit(&c->count, n + 1, memory_order_release);
}

/* Takes the buffer's head into elem (NULL: discarded); count > 0. */
static inline void chan_buf_take(struct weft_chan *c, void *elem)
{
    if (elem != NULL)
        elem_copy(elem, chan_slot(c, c->recvx), c->elem_size);
    if (++c->recvx == c->cap)
        c->recvx = 0;
    /* As in chan_buf_put. */
    size_t n = atomic_load_explicit(&c->count, memory_order_relaxed);
    atomic_store_explicit(&c->count, n - 1, memory_order_release);
}

/*
 * Completes a dequeued receiver w with *elem (Go: send): the value goes
 * straight into the receiver's element, never through the buffer (which is
 * empty, since a receiver was waiting). Marks w successful and records it
 * as the task's wake_data. The caller unlocks, then k_ready(w->task).
 */
static inline void chan_send_to(struct weft_chan *c, struct waiter *w, const void *elem)
{
    if (w->elem != NULL)
        elem_copy(w->elem, elem, c->elem_size);
    w->success = true;
    /* Relaxed, like every store of wake_data: the task reads it after it
     * resumes, which k_ready's queueing (release) and its taker's acquire
     * order after this; a select also reads it under this lock. */
    atomic_store_explicit(&w->task->wake_data, w, memory_order_relaxed);
}

/*
 * Completes a dequeued sender w for a receiver wanting *elem (NULL:
 * discarded) (Go: recv). Unbuffered: straight from the sender's element.
 * Buffered (then full, since a sender waited): the receiver takes the head
 * and the sender's value goes to the tail, which is the same slot, so
 * sendx follows recvx and count stays cap. The caller unlocks, then
 * k_ready(w->task).
 */
static inline void chan_recv_from(struct weft_chan *c, struct waiter *w, void *elem)
{
    if (c->cap == 0) {
        if (elem != NULL)
            elem_copy(elem, w->elem, c->elem_size);
    } else {
        char *slot = chan_slot(c, c->recvx);
        if (elem != NULL)
            elem_copy(elem, slot, c->elem_size);
        elem_copy(slot, w->elem, c->elem_size);
        if (++c->recvx == c->cap)
            c->recvx = 0;
        c->sendx = c->recvx;
    }
    w->success = true;
    /* Relaxed: see chan_send_to. */
    atomic_store_explicit(&w->task->wake_data, w, memory_order_relaxed);
}

/* ---- Entry points for the rest of kern ---- */

/*
 * Send *elem on / receive into elem from c (not NULL), with the results of
 * weft_chan_send / weft_chan_recv. With block, the caller is the task self
 * and may park, or a host thread whose stand-in is self (kern/host.h),
 * inside the gate: then WEFT_ENOTASK too, when the run stopped first. Without, WEFT_EAGAIN replaces
 * blocking, self is unused and the caller need only hold a proc (a timer firing on the scheduler
 * stack). No locks held on entry.
 */
int k_chan_send(struct weft_chan *c, const void *elem, bool block, struct task *self);
int k_chan_recv(struct weft_chan *c, void *elem, bool block, struct task *self);

/*
 * Drops a select's reference on c (see refs), releasing c if weft_chan_free
 * was called and this was the last one. The caller no longer holds c's
 * lock and must not touch c afterwards.
 */
void k_chan_unref(struct weft_chan *c);

#endif /* WEFT_KERN_CHAN_H */
