/* SPDX-License-Identifier: MIT */
/*
 * select.c — weft_select: wait on several channel operations at once and
 * perform exactly one (Go: runtime/select.go, selectgo).
 *
 * The algorithm, as in Go:
 *
 *   0. Order. The poll order is a uniform random permutation of the cases
 *      with a channel (inside-out Fisher-Yates), so that among ready cases
 *      each is picked with equal probability. The lock order is the same
 *      cases sorted by channel address;
 *      every distinct channel is locked once, in that order, which is the
 *      global order for holding several channel locks (kern/lock.h).
 *   1. With every channel locked, look for a case that can proceed now, in
 *      poll order, and perform it with the helpers of chan.h. Done, unless
 *      none is ready: then WEFT_NONBLOCK returns WEFT_EAGAIN.
 *   2. Link one waiter per case (is_select, ticket = case index) onto its
 *      channel's sendq or recvq, chain them in lock order on task->waiting,
 *      take a reference on each distinct channel (weft_chan.refs), and
 *      park. The unlock function releases the channel locks walking
 *      task->waiting, never the select's own stack frame (see
 *      select_park_unlock).
 *   3. Whoever completes one of our waiters first has won
 *      task->select_done (0 -> 1, in waitq_dequeue) and set wake_data to
 *      that waiter; wakers on the other channels lose the CAS and drop our
 *      waiters instead of completing them. Once resumed, we lock all the
 *      channels again, reset select_done (no waker can run now), unlink
 *      the waiters that did not win, read what the winning case needs from
 *      its channel, then unlock each channel and drop its reference, after
 *      which we never touch it again.
 *
 * The references are weft's stand-in for Go's garbage collector, which
 * keeps a channel alive while a select points at it. Once our waiter is
 * off a channel's queues (dequeued by the waker, or unlinked as a loser by
 * a close or another operation), the program may free that channel before
 * we run again: a closer cannot tell a woken select from a woken plain
 * receiver, which never looks at the channel again. Pass 3 still locks it,
 * so weft_chan_free leaves the release to our k_chan_unref.
 *
 * A close completes a waiter like any waker (success = false), so unlike
 * old Go versions there is no retry loop after waking.
 *
 * Departures from Go: a send case on a closed channel is a normal outcome
 * (ok = WEFT_ECLOSED), not a panic. A select with a single channel case is
 * the plain send/receive (Go's compiler does that rewrite statically).
 * The shuffle draws from the calling thread's generator (thread->rand,
 * owned by the thread, which runs this task until it parks), as Go's
 * select draws from its M's.
 */
#include "kern/chan.h"

#include "kern/alloc.h"
#include "kern/host.h"
#include "kern/proc.h" /* struct thread: the calling thread's rand */
#include "kern/sched.h"

/* Cases handled with order arrays on the stack; more need k_alloc. */
#define K_SELECT_STACK_CASES 128
/* Case indices are kept in uint16_t. */
#define K_SELECT_MAX 65536

static inline uintptr_t case_key(const weft_case *cases, uint16_t i)
{
    return (uintptr_t)cases[i].chan;
}

/* Heap sort's sift-down: moves order[j] down the max-heap order[0..end). */
static void sift_down(const weft_case *cases, uint16_t *order, int j, int end)
{
    uint16_t v = order[j];
    for (;;) {
        int k = 2 * j + 1;
        if (k >= end)
            break;
        if (k + 1 < end && case_key(cases, order[k]) < case_key(cases, order[k + 1]))
            k++;
        if (case_key(cases, v) >= case_key(cases, order[k]))
            break;
        order[j] = order[k];
        j = k;
    }
    order[j] = v;
}

/* Sorts order[0..m) by channel address: insertion sort for the usual few
 * cases, heap sort (n log n, no recursion) beyond. */
static void sort_by_chan(const weft_case *cases, uint16_t *order, int m)
{
    if (m <= 16) {
        for (int i = 1; i < m; i++) {
            uint16_t v = order[i];
            int j = i;
            for (; j > 0 && case_key(cases, order[j - 1]) > case_key(cases, v); j--)
                order[j] = order[j - 1];
            order[j] = v;
        }
        return;
    }
    for (int i = m / 2 - 1; i >= 0; i--) /* build a max-heap */
        sift_down(cases, order, i, m);
    for (int end = m - 1; end > 0; end--) { /* move the maximum to the end */
        uint16_t v = order[end];
        order[end] = order[0];
        order[0] = v;
        sift_down(cases, order, 0, end);
    }
}

/* Locks each distinct channel of lockorder[0..m) once, in address order
 * (Go: sellock). */
static void sel_lock(const weft_case *cases, const uint16_t *lockorder, int m)
{
    struct weft_chan *last = NULL;
    for (int k = 0; k < m; k++) {
        struct weft_chan *c = cases[lockorder[k]].chan;
        if (c != last) {
            k_lock(&c->lock);
            last = c;
        }
    }
}

/* Unlocks what sel_lock locked, in reverse order (Go: selunlock). Only the
 * running task calls it, so its stack frame (cases, lockorder) is alive. */
static void sel_unlock(const weft_case *cases, const uint16_t *lockorder, int m)
{
    for (int k = m - 1; k >= 0; k--) {
        struct weft_chan *c = cases[lockorder[k]].chan;
        if (k > 0 && cases[lockorder[k - 1]].chan == c)
            continue; /* unlocked at its first occurrence */
        k_unlock(&c->lock);
    }
}

/* Pass 3's unlock: as sel_unlock, and after its last unlock of each
 * channel drops the select's reference on it (k_chan_unref), which may
 * release the channel: it is not touched afterwards (the comparison with
 * the previous case's channel compares addresses only). */
static void sel_unlock_unref(const weft_case *cases, const uint16_t *lockorder, int m)
{
    for (int k = m - 1; k >= 0; k--) {
        struct weft_chan *c = cases[lockorder[k]].chan;
        if (k > 0 && cases[lockorder[k - 1]].chan == c)
            continue; /* unlocked at its first occurrence */
        k_unlock(&c->lock);
        k_chan_unref(c);
    }
}

/*
 * k_park's unlock function for a select (Go: selparkcommit). Runs on the
 * scheduler stack once the task is WAITING. As soon as the first lock is
 * released a waker may ready the task, which may resume on another thread
 * and return from weft_select, so this must not touch the select's stack
 * (cases, lockorder): it walks t->waiting, which is in lock order. A
 * waiter's fields are read only while its channel is still locked (the
 * task must take that lock before it changes or frees the waiter), so a
 * channel is unlocked only after its last waiter has been passed.
 */
static bool select_park_unlock(struct task *t, void *arg)
{
    (void)arg;
    struct weft_chan *last = NULL;
    for (struct waiter *w = t->waiting; w != NULL; w = w->wait_link) {
        struct weft_chan *c = w->obj;
        if (c != last && last != NULL)
            k_unlock(&last->lock);
        last = c;
    }
    if (last != NULL)
        k_unlock(&last->lock);
    return true;
}

/* The single-case select: the plain operation. */
static int select_one(weft_case *cs, int i, bool block, struct task *self)
{
    int r;
    if (cs->op == WEFT_SEND)
        r = k_chan_send(cs->chan, cs->elem, block, self);
    else
        r = k_chan_recv(cs->chan, cs->elem, block, self);
    if (r == WEFT_EAGAIN)
        return r;
    cs->ok = r;
    return i;
}

/* Validates the arguments; 0 or WEFT_EINVAL. */
static int select_check(const weft_case *cases, int n, int flags)
{
    if (n < 0 || n > K_SELECT_MAX || (n > 0 && cases == NULL) || (flags & ~WEFT_NONBLOCK) != 0)
        return WEFT_EINVAL;
    for (int i = 0; i < n; i++) {
        const weft_case *cs = &cases[i];
        if (cs->op != WEFT_SEND && cs->op != WEFT_RECV)
            return WEFT_EINVAL;
        if (cs->op == WEFT_SEND && cs->chan != NULL && cs->elem == NULL && cs->chan->elem_size != 0)
            return WEFT_EINVAL;
    }
    return 0;
}

/*
 * Pass 1: performs the first case in poll order that can proceed, with
 * every channel locked; unlocks them and returns its index. Returns -1,
 * still locked, when none can.
 */
static int select_ready(weft_case *cases, const uint16_t *pollorder, const uint16_t *lockorder,
                        int m)
{
    for (int k = 0; k < m; k++) {
        int i = pollorder[k];
        weft_case *cs = &cases[i];
        struct weft_chan *c = cs->chan;
        /* Relaxed: every channel is locked, and both are written only
         * under its lock. */
        bool closed = atomic_load_explicit(&c->closed, memory_order_relaxed);
        size_t count = atomic_load_explicit(&c->count, memory_order_relaxed);
        struct waiter *w;

        if (cs->op == WEFT_RECV) {
            if (!closed && (w = waitq_dequeue(&c->sendq)) != NULL) {
                chan_recv_from(c, w, cs->elem);
                struct task *t = w->task;
                sel_unlock(cases, lockorder, m);
                k_ready(t);
                cs->ok = 1;
                return i;
            }
            if (count > 0) {
                chan_buf_take(c, cs->elem);
                sel_unlock(cases, lockorder, m);
                cs->ok = 1;
                return i;
            }
            if (closed) {
                size_t size = c->elem_size; /* c is not read once unlocked */
                sel_unlock(cases, lockorder, m);
                if (cs->elem != NULL)
                    memset(cs->elem, 0, size);
                cs->ok = 0;
                return i;
            }
        } else {
            if (closed) {
                sel_unlock(cases, lockorder, m);
                cs->ok = WEFT_ECLOSED;
                return i;
            }
            if ((w = waitq_dequeue(&c->recvq)) != NULL) {
                chan_send_to(c, w, cs->elem);
                struct task *t = w->task;
                sel_unlock(cases, lockorder, m);
                k_ready(t);
                cs->ok = 0;
                return i;
            }
            if (count < c->cap) {
                chan_buf_put(c, cs->elem);
                sel_unlock(cases, lockorder, m);
                cs->ok = 0;
                return i;
            }
        }
    }
    return -1;
}

/*
 * Passes 2 and 3: enqueues a waiter on every channel (all locked), parks,
 * and once woken dequeues the waiters that lost. Returns the index of the
 * case that won, its ok set.
 */
static int select_wait(weft_case *cases, const uint16_t *lockorder, int m, struct task *self)
{
    k_assert(self->waiting == NULL);
    /* Relaxed: our own reset below, earlier on this task. */
    k_assert(atomic_load_explicit(&self->select_done, memory_order_relaxed) == 0);

    struct waiter **nextp = &self->waiting;
    for (int k = 0; k < m; k++) {
        int i = lockorder[k];
        weft_case *cs = &cases[i];
        struct weft_chan *c = cs->chan;
        struct waiter *w = k_waiter_get(self);
        k_assert(w->task == self);
        w->obj = c;
        w->elem = cs->elem;
        w->ticket = (uint32_t)i;
        w->is_select = true;
        w->wait_link = NULL;
        *nextp = w;
        nextp = &w->wait_link;
        waitq_enqueue(cs->op == WEFT_SEND ? &c->sendq : &c->recvq, w);
        /* One reference per distinct channel, dropped by sel_unlock_unref.
         * Relaxed: taken under c's lock with the waiter; weft_chan_free's
         * fetch_or comes later in refs' order, since free first takes c's
         * lock and finds this waiter gone, unlinked under that lock after
         * this section (see weft_chan_free). */
        if (k == 0 || cases[lockorder[k - 1]].chan != c)
            atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    }
    /* Nobody can complete a waiter before the locks are released, so the
     * winner's store of wake_data comes after this one (relaxed: ordered
     * by the channel locks, which the winner takes after our release). */
    atomic_store_explicit(&self->wake_data, NULL, memory_order_relaxed);
    /* A host thread parks its OS thread; it may come back cancelled (the
     * run stops), with or without a case completed (kern/host.h). */
    bool cancelled = false;
    if (K_UNLIKELY(self->host != NULL))
        cancelled = k_host_park(self->host, select_park_unlock, NULL) != 0;
    else
        k_park(select_park_unlock, NULL, WAIT_SELECT, cases);

    sel_lock(cases, lockorder, m);
    /* Every channel with one of our waiters is locked: no waker can be
     * inside waitq_dequeue for us, so select_done can be reset (relaxed:
     * the next CAS on it is a waker's under one of these locks). The
     * winner stored wake_data under one of these locks before k_ready:
     * relaxed is enough, the lock (and the resumption) order it. */
    atomic_store_explicit(&self->select_done, 0, memory_order_relaxed);
    struct waiter *won = atomic_load_explicit(&self->wake_data, memory_order_relaxed);
    if (won == NULL && !cancelled)
        k_panic("select woken without a completed case");

    struct waiter *w = self->waiting;
    self->waiting = NULL;
    while (w != NULL) {
        struct waiter *next = w->wait_link;
        if (w != won) {
            struct weft_chan *c = w->obj;
            int op = cases[w->ticket].op;
            waitq_remove(op == WEFT_SEND ? &c->sendq : &c->recvq, w);
        }
        w->wait_link = NULL;
        w->is_select = false;
        if (w != won)
            k_waiter_put(w);
        w = next;
    }
    if (won == NULL) {
        /* Cancelled with no case done: every waiter is unlinked. */
        sel_unlock_unref(cases, lockorder, m);
        return WEFT_ENOTASK;
    }
    int chosen = (int)won->ticket;
    bool success = won->success;
    k_waiter_put(won);
    /* A receive woken by a close zeroes its element (chan.c: the closer
     * writes to no task's memory); the size is read now, since after
     * sel_unlock_unref the channel may be gone. */
    weft_case *cs = &cases[chosen];
    size_t zero = 0;
    if (cs->op == WEFT_RECV && !success && cs->elem != NULL)
        zero = cs->chan->elem_size;
    sel_unlock_unref(cases, lockorder, m);

    if (cancelled)
        k_host_wait_ready(self->host); /* the winner's k_ready is on its way */
    if (cs->op == WEFT_SEND) {
        cs->ok = success ? 0 : WEFT_ECLOSED;
    } else {
        cs->ok = success ? 1 : 0;
        if (zero != 0)
            memset(cs->elem, 0, zero);
    }
    return chosen;
}

/* weft_select for self, a task or a host thread's stand-in (kern/host.h),
 * whose shuffle draws from *rand. Arguments checked. */
static int select_do(weft_case *cases, int n, bool block, struct task *self, uint64_t *rand)
{
    int r;
    /* Count the cases with a channel; the single-case select is the plain
     * operation. */
    int m = 0, only = -1;
    for (int i = 0; i < n; i++) {
        if (cases[i].chan != NULL) {
            m++;
            only = i;
        }
    }
    if (m == 0) {
        if (!block)
            return WEFT_EAGAIN;
        if (self->host != NULL)
            return k_host_park(self->host, NULL, NULL); /* until the run stops */
        k_park(NULL, NULL, WAIT_SELECT_NO_CASES, NULL);
        k_panic("select with no cases resumed");
    }
    if (m == 1)
        return select_one(&cases[only], only, block, self);

    uint16_t stack_order[2 * K_SELECT_STACK_CASES];
    uint16_t *order = stack_order;
    size_t order_size = 0;
    if (m > K_SELECT_STACK_CASES) {
        order_size = 2 * (size_t)m * sizeof(uint16_t);
        order = k_alloc(order_size);
        if (order == NULL)
            return WEFT_ENOMEM;
    }
    uint16_t *pollorder = order, *lockorder = order + m;

    /* 0: shuffle (inside-out Fisher-Yates), then sort a copy by channel.
     * Starting the sort from the shuffled order makes the order of cases
     * on the same channel random too. */
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (cases[i].chan == NULL)
            continue;
        uint32_t j = k_rand_n(rand, (uint32_t)k + 1);
        if ((int)j != k)
            pollorder[k] = pollorder[j];
        pollorder[j] = (uint16_t)i;
        k++;
    }
    memcpy(lockorder, pollorder, (size_t)m * sizeof(uint16_t));
    sort_by_chan(cases, lockorder, m);

    sel_lock(cases, lockorder, m);
    r = select_ready(cases, pollorder, lockorder, m);
    if (r < 0) {
        if (!block) {
            sel_unlock(cases, lockorder, m);
            r = WEFT_EAGAIN;
        } else {
            r = select_wait(cases, lockorder, m, self);
        }
    }
    if (order != stack_order)
        k_free(order, order_size);
    return r;
}

int weft_select(weft_case *cases, int n, int flags)
{
    int r = select_check(cases, n, flags);
    if (r != 0)
        return r;
    bool block = (flags & WEFT_NONBLOCK) == 0;
    /* k_task_self: not from inside a blocking call (it stops the program
     * there). The thread is used only before any park (its generator). */
    struct task *self = k_task_self();
    if (self != NULL) {
        for (int i = 0; i < n; i++)
            k_chan_check(cases[i].chan, "weft_select");
        return select_do(cases, n, block, self, &k_thread_self()->rand);
    }
    /* A host thread: through the gate, with a stand-in (kern/host.h). The
     * channels are looked at only inside it: after the run their memory
     * is gone. */
    if (!k_host_enter())
        return WEFT_ENOTASK;
    for (int i = 0; i < n; i++)
        k_chan_check(cases[i].chan, "weft_select");
    struct k_host h;
    k_host_init(&h);
    r = select_do(cases, n, block, &h.task, &h.rand);
    k_host_leave();
    return r;
}
