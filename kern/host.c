/* SPDX-License-Identifier: MIT */
/*
 * host.c — threads that are not weft's, calling into a running runtime
 * (Go: needm/dropm for C threads entering Go through cgo callbacks; the
 * parking is Go's note, a futex word per waiter).
 *
 * While a runtime runs (weft_start, or weft_run), a host thread may spawn
 * tasks, use channels (select too), timers and the waking side of the sync
 * types (docs/API.md has the table). Two problems:
 *
 * 1. Lifetime. Tasks need no protection from the end of their run: they
 *    run only while it lives. A host thread can call at any moment,
 *    including while weft_stop frees the run's memory. So every host call
 *    passes a gate (k_host_enter / k_host_leave), and the end of a run
 *    closes it (k_host_close) before anything is released:
 *
 *      host (k_host_enter)               the run's end (k_host_close)
 *      1. inside += 1                    1. open = 0
 *      2. load open: 0 -> leave,         2. cancel every parked host
 *         WEFT_ENOTASK                   3. wait until inside == 0
 *
 *    1 and 2 on both sides are sequentially consistent (a Dekker pair):
 *    either the host sees open == 0 and never touches the run, or the run's
 *    end sees the host counted and waits for it. A host that leaves last
 *    while the gate is closed wakes the waiting end (inside is its futex
 *    word; the wait also times out every millisecond).
 *
 * 2. Waiting. A host call that would block cannot park a task (the host
 *    thread runs none) and must not hold a proc. The host puts a stand-in
 *    (struct k_host, on its own stack) on the channel's queue as its
 *    waiter's task and sleeps on a futex word of its own; k_ready sees the
 *    stand-in and sets K_HOST_READY in the word instead of queueing a task.
 *    Everything else of the channel protocol (hand-offs, close, select's
 *    select_done and wake_data) is the tasks' own, so Go's semantics hold
 *    between hosts and tasks alike.
 *
 *    A parked host is on the parked list (under list_lock), so that the
 *    run's end can cancel it: K_HOST_CANCEL in its word, then a wake. The
 *    host then takes the channel lock(s) again (chan.c, select.c): if a
 *    waker completed its operation before (wake_data set, under that
 *    lock), that waker is on its way to k_ready and the host waits for it
 *    (it will touch the stand-in once more); otherwise it unlinks its
 *    waiters and returns WEFT_ENOTASK, the operation not done.
 *
 * The deadlock check (sched.c) treats host threads as actors it cannot
 * see: from the first host call of a run on, it never reports a deadlock
 * (k_hosts_may_act), since a host may call again at any time; with
 * weft_start it never reports one at all. What it misses is written in
 * docs/embedding.md.
 *
 * This state lives outside k_sched, which each run resets: the gate must
 * answer calls made between runs, and while a run is being set up or torn
 * down.
 */
#include "kern/host.h"

#include "kern/proc.h"

static struct {
    /* 1 while a run accepts host calls. Stored by k_host_open/close
     * (seq_cst), loaded by k_host_enter (seq_cst): the gate's Dekker pair
     * with inside. */
    _Atomic uint32_t open;
    /* Host calls between k_host_enter and k_host_leave (counted before
     * open is read). k_host_close's futex word. */
    _Atomic uint32_t inside;
    /* A host passed the gate since k_host_open (k_hosts_may_act). Stored
     * before that host's leave; relaxed is enough for the deadlock check's
     * purpose, see k_hosts_may_act. */
    _Atomic uint32_t seen;
    /* Seeds for the stand-ins' generators (relaxed: uniqueness only). */
    _Atomic uint64_t seed;
    /*
     * list_lock protects parked and every listed stand-in's next, prev
     * and listed. A leaf: taken by a host that holds its channel locks
     * (k_host_park), and by k_host_close, which holds nothing; nothing is
     * taken under it (lock.h).
     */
    struct k_lock list_lock;
    struct k_host *parked;
} host;

void k_host_open(void)
{
    atomic_store_explicit(&host.seen, 0, memory_order_relaxed);
    /* seq_cst: the gate's pair (top of the file). It also publishes the
     * run's set-up to every host that reads open == 1 (a release would do
     * for that). */
    atomic_store(&host.open, 1);
}

static bool gate_enter(bool acts)
{
    /* Both seq_cst: the gate's Dekker pair (top of the file). */
    atomic_fetch_add(&host.inside, 1);
    if (atomic_load(&host.open)) {
        if (acts)
            atomic_store_explicit(&host.seen, 1, memory_order_relaxed);
        return true;
    }
    k_host_leave();
    return false;
}

bool k_host_enter(void)
{
    return gate_enter(true);
}

bool k_host_enter_to_look(void)
{
    return gate_enter(false);
}

void k_host_leave(void)
{
    /* seq_cst, both: the last host out while the gate is closed must wake
     * k_host_close, and k_host_close stored open = 0 before it read inside
     * (so if it waits for this host, the load below sees 0). A host that
     * leaves while the gate is open makes no system call. */
    if (atomic_fetch_sub(&host.inside, 1) == 1 && atomic_load(&host.open) == 0)
        hal_futex_wake((uint32_t *)&host.inside, INT32_MAX);
}

void k_host_close(void)
{
    atomic_store(&host.open, 0); /* seq_cst: the gate's pair */
    /* A host that parks after this section finds open == 0 under the lock
     * (k_host_park) and does not sleep. */
    k_lock(&host.list_lock);
    for (struct k_host *h = host.parked; h; h = h->next) {
        /* Release: nothing is published through it but the bit; the host's
         * acquire load pairs with it. The host unlists itself under
         * list_lock before it returns, so h is alive here. */
        atomic_fetch_or_explicit(&h->word, K_HOST_CANCEL, memory_order_release);
        hal_futex_wake((uint32_t *)&h->word, 1);
    }
    k_unlock(&host.list_lock);
    uint32_t n;
    /* seq_cst: pairs with k_host_leave's decrement then load of open. */
    while ((n = atomic_load(&host.inside)) != 0)
        hal_futex_wait((uint32_t *)&host.inside, n, 1000000);
}

bool k_hosts_may_act(void)
{
    /* Called by the last worker going idle, under sched.lock. A host that
     * is in a call now has counted itself in inside before it can have
     * touched anything of the run (and stays counted until it is done); one
     * that called before left seen set. Relaxed loads: a host call whose
     * effect (a spawn, a send) this thread has not seen yet is counted in
     * inside or has readied a task under sched.lock or a channel lock,
     * which orders it before this check. seq_cst on inside costs nothing
     * here and keeps the argument simple. */
    return atomic_load(&host.inside) != 0 ||
           atomic_load_explicit(&host.seen, memory_order_relaxed) != 0;
}

void k_host_init(struct k_host *h)
{
    memset(h, 0, sizeof *h);
    h->task.host = h;
    /* Nobody runs it; WAITING keeps k_ready's view of it consistent.
     * Relaxed: h is on this thread's stack and nobody else sees it until
     * it is on a wait queue, under that queue's lock. */
    atomic_store_explicit(&h->task.state, TASK_WAITING, memory_order_relaxed);
    uint64_t s = atomic_fetch_add_explicit(&host.seed, 0x9e3779b97f4a7c15ull, memory_order_relaxed);
    h->rand = s ^ (uint64_t)hal_now_ns();
}

static void unlist(struct k_host *h)
{
    k_lock(&host.list_lock);
    if (h->listed) {
        if (h->prev)
            h->prev->next = h->next;
        else
            host.parked = h->next;
        if (h->next)
            h->next->prev = h->prev;
        h->next = h->prev = NULL;
        h->listed = false;
    }
    k_unlock(&host.list_lock);
}

int k_host_park(struct k_host *h, k_unlock_fn unlock, void *arg)
{
    k_lock(&host.list_lock);
    /* Relaxed: open's store of 0 precedes k_host_close's section of this
     * lock; if that came first, the lock orders it before this load, and
     * if it comes later, it finds h listed. */
    if (atomic_load_explicit(&host.open, memory_order_relaxed)) {
        h->prev = NULL;
        h->next = host.parked;
        if (host.parked)
            host.parked->prev = h;
        host.parked = h;
        h->listed = true;
    } else {
        /* Relaxed: not listed, so nobody but a waker touches the word, and
         * we read it ourselves below. */
        atomic_fetch_or_explicit(&h->word, K_HOST_CANCEL, memory_order_relaxed);
    }
    k_unlock(&host.list_lock);

    /* From the unlock on, a waker may complete and ready us. */
    if (unlock && !unlock(&h->task, arg))
        /* The park was declined: nobody can ready us. Relaxed: our own
         * word, read by us below. */
        atomic_fetch_or_explicit(&h->word, K_HOST_READY, memory_order_relaxed);
    uint32_t v;
    /* Acquire: pairs with the release fetch_or of K_HOST_READY in
     * k_host_ready (what the waker wrote into our element and waiter is
     * visible) and of K_HOST_CANCEL in k_host_close. */
    while ((v = atomic_load_explicit(&h->word, memory_order_acquire)) == 0)
        hal_futex_wait((uint32_t *)&h->word, 0, -1);
    unlist(h);
    return (v & K_HOST_READY) ? 0 : WEFT_ENOTASK;
}

void k_host_wait_ready(struct k_host *h)
{
    uint32_t v;
    /* Acquire: as in k_host_park. The waker is between its channel unlock
     * and its k_ready: microseconds. */
    while (((v = atomic_load_explicit(&h->word, memory_order_acquire)) & K_HOST_READY) == 0)
        hal_futex_wait((uint32_t *)&h->word, v, -1);
}

void k_host_ready(struct task *t)
{
    struct k_host *h = t->host;
    uint32_t *word = (uint32_t *)&h->word;
    /* Release: pairs with the host's acquire loads; the waker's writes to
     * the host's element and waiter (under the channel lock, before this)
     * are visible to it. After this the host may return and its stack be
     * reused: only the word's address is used below. A futex wake on an
     * address that now holds something else is harmless (a spurious wake
     * for whoever waits there, which every futex waiter allows: hal.h). */
    atomic_fetch_or_explicit(&h->word, K_HOST_READY, memory_order_release);
    hal_futex_wake(word, 1);
}
