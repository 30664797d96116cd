/* SPDX-License-Identifier: MIT */
/*
 * chan.c — channels: make, send, receive, close, len, cap, free
 * (Go: runtime/chan.go). Select is in select.c; the structure and the
 * helpers both files share are in chan.h.
 *
 * A channel is one allocation: struct weft_chan followed by a ring of cap
 * elements of elem_size bytes. Each operation takes the channel lock and
 * does one of four things, in this order of preference:
 *
 *   1. Hand off to a waiting partner. A send that finds a blocked receiver
 *      copies the value straight into the receiver's element and readies
 *      it; since k_ready puts it in this proc's runnext, it runs as soon as
 *      the sender blocks or yields, on the same proc (the cache is warm).
 *      A receive that finds a blocked sender on a full buffer takes the
 *      head and moves the sender's value into the freed slot, so FIFO
 *      order holds and the sender is released in one step.
 *   2. Use the buffer (send: a free slot; receive: the head).
 *   3. Closed: a send fails with WEFT_ECLOSED; a receive of a drained
 *      channel returns 0 with a zeroed element.
 *   4. Block: link a waiter (Go: sudog) for this task into sendq or recvq
 *      and k_park with k_park_unlock, which releases the channel lock only
 *      after the task is marked WAITING, so a waker that finds the waiter
 *      always finds a parked task (see kern/sched.h). The waker completes
 *      the operation on the parked task's behalf and sets w->success;
 *      the task only reads the result.
 *
 * Tasks are readied after the channel lock is dropped, as in Go: the lock
 * is held for the copy only, and the scheduler's locks are never taken
 * inside a channel's.
 *
 * Non-blocking operations first check, without the lock, whether they are
 * bound to fail (Go does the same); see try_send_fails / try_recv_fast.
 *
 * Departures from Go: sending on or closing a closed channel returns
 * WEFT_ECLOSED instead of panicking, and closing a NULL channel returns
 * WEFT_EINVAL. A task woken by close zeroes its own element (in Go the
 * closer does it), so close writes to no other task's memory. Rejected:
 * a lock-free channel (Vyukov's 2014 proposal for Go): it complicates
 * select and close, and the locked path is not the bottleneck when the
 * hand-off goes through runnext.
 */
#include "kern/chan.h"

#include "kern/alloc.h"
#include "kern/host.h"
#include "kern/sched.h"

/* ---- Send and receive (Go: chansend, chanrecv) ---- */

/*
 * true if a non-blocking send must fail with WEFT_EAGAIN, decided without
 * the lock. "Full" is read first, then "not closed"; both are acquire loads,
 * so the second is not satisfied earlier than the first. Since a channel
 * never reopens, "open" seen second means it was open when "full" was seen:
 * there was a moment when it was open and full, and the send is ordered at
 * that moment. If it was closed instead, the locked path reports
 * WEFT_ECLOSED.
 */
static inline bool try_send_fails(struct weft_chan *c)
{
    return chan_full(c) && atomic_load_explicit(&c->closed, memory_order_acquire) == 0;
}

/*
 * A non-blocking receive, decided without the lock when it can be: returns
 * WEFT_EAGAIN (empty and open), 0 (empty and closed: elem zeroed), or 1
 * meaning "take the lock".
 *
 * "Empty" is read first, then "closed", for the reason in try_send_fails.
 * The order matters here: read the other way round, a channel that was
 * open with a value, then closed, then drained could look open and empty.
 * The acquire on closed pairs with the release store of closed in
 * chan_close: every element sent before the close is then visible to the
 * second emptiness check, so "closed and empty" is only reported when no
 * value is left.
 */
static inline int try_recv_fast(struct weft_chan *c, void *elem)
{
    if (!chan_empty(c))
        return 1;
    if (atomic_load_explicit(&c->closed, memory_order_acquire) == 0)
        return WEFT_EAGAIN;
    if (!chan_empty(c))
        return 1;
    if (elem != NULL)
        memset(elem, 0, c->elem_size);
    return 0;
}

/*
 * Parks self, whose waiter w is on q of c (locked), until a partner or a
 * close completes w; releases c's lock. Returns 0, or WEFT_ENOTASK when
 * self is a host thread's stand-in (kern/host.h) and the run stopped
 * before anybody completed w: then w is off q and nothing was done.
 *
 * A host holds a reference on c while it is parked (refs, chan.h), as a
 * select does: cancelled, it must lock c again to unlink w, and c may be
 * freed by then if a partner completed w in the meantime (the program may
 * free a channel once nobody is blocked on it).
 */
static int chan_park(struct task *self, struct weft_chan *c, struct waitq *q, struct waiter *w,
                     enum wait_reason reason)
{
    if (K_LIKELY(self->host == NULL)) {
        k_park(k_park_unlock, &c->lock, reason, c);
        return 0;
    }
    /* Relaxed: taken under c's lock with the waiter, as select_wait does
     * (see there and weft_chan_free). */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    if (k_host_park(self->host, k_park_unlock, &c->lock) == 0) {
        k_chan_unref(c);
        return 0;
    }
    /* Cancelled. Completed meanwhile? wake_data is set under c's lock by
     * whoever completed w (chan_send_to, chan_recv_from, chan_close);
     * relaxed under that lock. */
    k_lock(&c->lock);
    bool done = atomic_load_explicit(&self->wake_data, memory_order_relaxed) != NULL;
    if (!done)
        waitq_remove(q, w);
    k_unlock(&c->lock);
    k_chan_unref(c);
    if (!done)
        return WEFT_ENOTASK;
    k_host_wait_ready(self->host); /* the completer's k_ready is on its way */
    return 0;
}

/* Sends *elem on c (Go: chansend). Contract in chan.h. */
int k_chan_send(struct weft_chan *c, const void *elem, bool block, struct task *self)
{
    if (!block && try_send_fails(c))
        return WEFT_EAGAIN;

    k_lock(&c->lock);
    /* closed and count: relaxed under the lock, which orders every store
     * of them (the release stores serve the lock-free readers). */
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        k_unlock(&c->lock);
        return WEFT_ECLOSED;
    }
    struct waiter *w = waitq_dequeue(&c->recvq);
    if (w != NULL) {
        chan_send_to(c, w, elem);
        struct task *t = w->task;
        k_unlock(&c->lock);
        k_ready(t);
        return 0;
    }
    if (atomic_load_explicit(&c->count, memory_order_relaxed) < c->cap) {
        chan_buf_put(c, elem);
        k_unlock(&c->lock);
        return 0;
    }
    if (!block) {
        k_unlock(&c->lock);
        return WEFT_EAGAIN;
    }

    /* The waiter lives on our stack: it is unlinked before we resume, and
     * a task's stack never moves. */
    struct waiter self_w = {.task = self};
    w = &self_w;
    w->obj = c;
    w->elem = (void *)elem; /* only read from, by the receiver */
    waitq_enqueue(&c->sendq, w);
    if (chan_park(self, c, &c->sendq, w, WAIT_CHAN_SEND) != 0)
        return WEFT_ENOTASK;

    /* Dequeued by a receiver (success) or by close; either way the waker
     * owned w until it readied us, and nobody else refers to it now. */
    k_assert(w->next == NULL && w->prev == NULL);
    return w->success ? 0 : WEFT_ECLOSED;
}

/* Receives from c into elem (Go: chanrecv). Contract in chan.h. */
int k_chan_recv(struct weft_chan *c, void *elem, bool block, struct task *self)
{
    if (!block) {
        int r = try_recv_fast(c, elem);
        if (r <= 0)
            return r;
    }

    k_lock(&c->lock);
    /* Relaxed under the lock, as in k_chan_send. */
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        /* Closed: sendq is empty (close emptied it; no sender joins a
         * closed channel), so only the buffer can still hold values. */
        if (atomic_load_explicit(&c->count, memory_order_relaxed) == 0) {
            k_unlock(&c->lock);
            if (elem != NULL)
                memset(elem, 0, c->elem_size);
            return 0;
        }
    } else {
        struct waiter *w = waitq_dequeue(&c->sendq);
        if (w != NULL) {
            chan_recv_from(c, w, elem);
            struct task *t = w->task;
            k_unlock(&c->lock);
            k_ready(t);
            return 1;
        }
    }
    if (atomic_load_explicit(&c->count, memory_order_relaxed) > 0) {
        chan_buf_take(c, elem);
        k_unlock(&c->lock);
        return 1;
    }
    if (!block) {
        k_unlock(&c->lock);
        return WEFT_EAGAIN;
    }

    struct waiter self_w = {.task = self}; /* on our stack, as in send */
    struct waiter *w = &self_w;
    w->obj = c;
    w->elem = elem;
    waitq_enqueue(&c->recvq, w);
    size_t elem_size = c->elem_size; /* c is not touched after the wake-up */
    if (chan_park(self, c, &c->recvq, w, WAIT_CHAN_RECV) != 0)
        return WEFT_ENOTASK;

    k_assert(w->next == NULL && w->prev == NULL);
    if (w->success)
        return 1;
    if (elem != NULL)
        memset(elem, 0, elem_size);
    return 0;
}

/* ---- Close (Go: closechan) ---- */

/*
 * Closes c (not NULL) and readies every waiter: receivers get 0, senders
 * WEFT_ECLOSED. Returns 0 or WEFT_ECLOSED (already closed). Called from a
 * task, or from a host thread inside the gate (kern/host.h: the tasks it
 * readies go to the global queue), without locks.
 */
static int chan_close(struct weft_chan *c)
{
    k_lock(&c->lock);
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) { /* under the lock */
        k_unlock(&c->lock);
        return WEFT_ECLOSED;
    }
    /* Release: pairs with the acquire loads of closed in try_recv_fast and
     * try_send_fails; the elements sent before are then visible to
     * try_recv_fast's second emptiness check. */
    atomic_store_explicit(&c->closed, 1, memory_order_release);

    /* Collect the waiters on a private list (linked through next, which is
     * ours once a waiter is dequeued), then ready them after unlocking. */
    struct waiter *list = NULL, *w;
    while ((w = waitq_dequeue(&c->recvq)) != NULL) {
        w->success = false;
        /* Relaxed: see chan_send_to. */
        atomic_store_explicit(&w->task->wake_data, w, memory_order_relaxed);
        w->next = list;
        list = w;
    }
    while ((w = waitq_dequeue(&c->sendq)) != NULL) {
        w->success = false;
        atomic_store_explicit(&w->task->wake_data, w, memory_order_relaxed);
        w->next = list;
        list = w;
    }
    k_unlock(&c->lock);

    while (list != NULL) {
        /* Read both before k_ready: from then on the task owns w. */
        struct waiter *next = list->next;
        struct task *t = list->task;
        list->next = NULL;
        k_ready(t);
        list = next;
    }
    return 0;
}

/* ---- Public API (include/weft.h) ---- */

static weft_chan *chan_make(size_t elem_size, size_t cap);
static void chan_free(weft_chan *c);

weft_chan *weft_chan_make(size_t elem_size, size_t cap)
{
    if (elem_size > K_CHAN_ELEM_MAX || cap > K_CHAN_CAP_MAX)
        return NULL;
    if (elem_size != 0 && cap > K_CHAN_BUF_MAX / elem_size)
        return NULL;
    /* Memory belongs to a run (k_mem_fini gives it all back when the run
     * ends), so there is no channel outside one; a host thread goes
     * through the gate, so that the run cannot end under the allocation. */
    if (k_task_self() == NULL) {
        if (!k_host_enter())
            return NULL;
        weft_chan *c = chan_make(elem_size, cap);
        k_host_leave();
        return c;
    }
    return chan_make(elem_size, cap);
}

static weft_chan *chan_make(size_t elem_size, size_t cap)
{
    size_t hdr = K_ROUND_UP(sizeof(struct weft_chan), 16);
    size_t size = hdr + elem_size * cap;
    struct weft_chan *c = k_alloc(size);
    if (c == NULL)
        return NULL;
    memset(c, 0, sizeof(*c));
    atomic_store_explicit(&c->live, K_CHAN_LIVE, memory_order_relaxed);
    c->elem_size = elem_size;
    c->cap = cap;
    c->buf = (char *)c + hdr;
    c->alloc_size = size;
    return c;
}

/* ---- Lifetime (the refs and live fields in chan.h) ---- */

void k_chan_misuse(const struct weft_chan *c, const char *fn)
{
    k_print("weft: %s(%p): not a live channel: used after weft_chan_free, or never made by "
            "weft_chan_make\n",
            fn, (const void *)c);
    k_panic("a freed channel was used");
}

void k_chan_unref(struct weft_chan *c)
{
    /* acq_rel, pairing with the fetch_or in weft_chan_free and with the
     * other selects' k_chan_unref: the release orders this select's use of
     * c (its locks, its reads) before a release of the memory by another
     * thread; the acquire, when this call releases it, orders theirs before
     * the k_free here. */
    uint32_t old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    k_assert((old & ~K_CHAN_FREED) != 0);
    if (old == (K_CHAN_FREED | 1))
        k_free(c, c->alloc_size);
}

void weft_chan_free(weft_chan *c)
{
    if (c == NULL)
        return;
    if (k_task_self() == NULL) {
        /* After the run's end the memory is gone: nothing to do. */
        if (!k_host_enter())
            return;
        chan_free(c);
        k_host_leave();
        return;
    }
    chan_free(c);
}

static void chan_free(weft_chan *c)
{
    k_chan_check(c, "weft_chan_free");
    k_lock(&c->lock);
    /* Relaxed: under the lock that orders every store of first. */
    bool busy = atomic_load_explicit(&c->recvq.first, memory_order_relaxed) != NULL ||
                atomic_load_explicit(&c->sendq.first, memory_order_relaxed) != NULL;
    k_unlock(&c->lock);
    if (busy) {
        /* Freeing it would leave those tasks parked on freed memory. */
        k_print("weft: weft_chan_free(%p): tasks are still blocked on it; "
                "not freed\n",
                (void *)c);
        return;
    }
    /*
     * No waiter left, but a select woken since may still have to lock c in
     * its pass 3: then the last k_chan_unref releases c. Every such
     * reference is already counted: it was taken under c's lock with a
     * waiter that has since been dequeued under c's lock, before the lock
     * section above. acq_rel pairs with k_chan_unref's fetch_sub (see
     * there).
     */
    atomic_store_explicit(&c->live, 0, memory_order_relaxed);
    if (atomic_fetch_or_explicit(&c->refs, K_CHAN_FREED, memory_order_acq_rel) == 0)
        k_free(c, c->alloc_size);
}

/*
 * A channel operation from a host thread (kern/host.h): through the gate,
 * with a stand-in for the thread as the waiter's task. op: WEFT_SEND or
 * WEFT_RECV, or 0 for a close. A blocked host parks its OS thread.
 */
static int chan_host(weft_chan *c, void *elem, int op, bool block)
{
    if (!k_host_enter())
        return WEFT_ENOTASK;
    k_chan_check(c, op == 0           ? "weft_chan_close"
                    : op == WEFT_SEND ? "weft_chan_send"
                                      : "weft_chan_recv");
    struct k_host h;
    k_host_init(&h);
    int r;
    if (op == 0)
        r = chan_close(c);
    else if (c == NULL && block)
        r = k_host_park(&h, NULL, NULL); /* forever: until the run stops */
    else if (c == NULL)
        r = WEFT_EAGAIN;
    else if (op == WEFT_SEND)
        r = k_chan_send(c, elem, block, &h.task);
    else
        r = k_chan_recv(c, elem, block, &h.task);
    k_host_leave();
    return r;
}

int weft_chan_send(weft_chan *c, const void *elem)
{
    if (c != NULL && elem == NULL && c->elem_size != 0)
        return WEFT_EINVAL;
    struct task *self = k_task_self();
    if (self == NULL)
        return chan_host(c, (void *)elem, WEFT_SEND, true);
    if (c == NULL) {
        k_park(NULL, NULL, WAIT_CHAN_NIL_SEND, NULL);
        k_panic("send on a NULL channel resumed");
    }
    k_chan_check(c, "weft_chan_send");
    return k_chan_send(c, elem, true, self);
}

int weft_chan_recv(weft_chan *c, void *elem)
{
    struct task *self = k_task_self();
    if (self == NULL)
        return chan_host(c, elem, WEFT_RECV, true);
    if (c == NULL) {
        k_park(NULL, NULL, WAIT_CHAN_NIL_RECV, NULL);
        k_panic("receive on a NULL channel resumed");
    }
    k_chan_check(c, "weft_chan_recv");
    return k_chan_recv(c, elem, true, self);
}

int weft_chan_try_send(weft_chan *c, const void *elem)
{
    if (c != NULL && elem == NULL && c->elem_size != 0)
        return WEFT_EINVAL;
    if (k_task_self() == NULL)
        return chan_host(c, (void *)elem, WEFT_SEND, false);
    if (c == NULL)
        return WEFT_EAGAIN;
    k_chan_check(c, "weft_chan_try_send");
    return k_chan_send(c, elem, false, NULL);
}

int weft_chan_try_recv(weft_chan *c, void *elem)
{
    if (k_task_self() == NULL)
        return chan_host(c, elem, WEFT_RECV, false);
    if (c == NULL)
        return WEFT_EAGAIN;
    k_chan_check(c, "weft_chan_try_recv");
    return k_chan_recv(c, elem, false, NULL);
}

int weft_chan_close(weft_chan *c)
{
    if (c == NULL)
        return WEFT_EINVAL;
    if (k_task_self() == NULL)
        return chan_host(c, NULL, 0, false);
    k_chan_check(c, "weft_chan_close");
    return chan_close(c);
}

size_t weft_chan_len(weft_chan *c)
{
    if (c == NULL)
        return 0;
    k_chan_check(c, "weft_chan_len");
    /* A snapshot, as in Go; relaxed is enough for a value that may be
     * stale by the time the caller looks at it. */
    return atomic_load_explicit(&c->count, memory_order_relaxed);
}

size_t weft_chan_cap(weft_chan *c)
{
    k_chan_check(c, "weft_chan_cap");
    return c == NULL ? 0 : c->cap;
}
