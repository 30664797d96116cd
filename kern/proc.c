/* SPDX-License-Identifier: MIT */
/*
 * proc.c — run queues: each proc's lock-free ring with its runnext slot, the
 * global queue, and stealing (Go: runqput, runqget, runqgrab, runqsteal,
 * globrunqput, globrunqget in proc.go).
 *
 * The ring is single-producer (the proc's holder), multi-consumer (the
 * holder and thieves). The producer writes a slot, then publishes it with a
 * release store of runq_tail; a consumer reads head and tail with acquire,
 * reads the slots, and claims them with a CAS on runq_head. A thief copies
 * the task pointers *before* its CAS; if the CAS fails, the copy is thrown
 * away, so a slot being overwritten meanwhile by the producer is harmless:
 * the producer only overwrites slots that consumers have already claimed
 * (it sees head move with acquire before reusing a slot).
 *
 * runnext holds the task readied last by the running task: when the task
 * that readied it blocks, it runs next, on the same proc, with its cache
 * still warm (a channel hand-off). Two tasks passing a token back and
 * forth would then keep the ring waiting forever; every K_GLOBAL_TICK-th
 * run of a proc takes the ring's head first instead (sched.c), so a task
 * queued behind such a pair waits some 61 hand-offs, not forever.
 */
#include "kern/proc.h"

/* Moves half of p's ring and t to the global queue (the ring is full). */
static K_NOINLINE bool runq_put_slow(struct proc *p, struct task *t, uint32_t head, uint32_t tail)
{
    struct task *batch[K_RUNQ_SIZE / 2 + 1];
    uint32_t n = (tail - head) / 2;
    k_assert(n == K_RUNQ_SIZE / 2);
    /* Slots: relaxed, we (the only producer) wrote them. The CAS is a
     * release like every claim of the head (see k_runq_get_ring); its
     * failure value is only retried. */
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&p->runq[(head + i) % K_RUNQ_SIZE], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&p->runq_head, &head, head + n,
                                                 memory_order_release, memory_order_relaxed))
        return false; /* a thief took some: the ring has room again */
    batch[n] = t;
    k_lock(&k_sched.lock);
    for (uint32_t i = 0; i <= n; i++)
        k_globrunq_put(batch[i]);
    k_unlock(&k_sched.lock);
    return true;
}

/* Go: runqput. Only p's holder calls this. With next, t goes to runnext and
 * the task that was there is kicked to the tail of the ring. */
void k_runq_put(struct proc *p, struct task *t, bool next)
{
    if (next) {
        /* Release: publishes t (its saved context, its state) to a thief's
         * acquire load and acq_rel CAS of runnext in runq_grab. The old
         * task was put by p's holder (us, or an earlier holder ordered by
         * the proc's hand-over), so the acquire half guards nothing. */
        struct task *old = atomic_exchange_explicit(&p->runnext, t, memory_order_acq_rel);
        if (!old)
            return;
        t = old;
    }
    for (;;) {
        /* head: acquire, pairs with the release CAS of runq_head in
         * k_runq_get_ring, runq_grab and runq_put_slow: the consumers'
         * reads of the slots we are about to overwrite are done. tail and
         * the slot: relaxed, only the holder writes them. */
        uint32_t head = atomic_load_explicit(&p->runq_head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&p->runq_tail, memory_order_relaxed);
        if (tail - head < K_RUNQ_SIZE) {
            atomic_store_explicit(&p->runq[tail % K_RUNQ_SIZE], t, memory_order_relaxed);
            /* Publishes the slot (pairs with the acquire loads of tail in
             * k_runq_get and runq_grab). */
            atomic_store_explicit(&p->runq_tail, tail + 1, memory_order_release);
            return;
        }
        if (runq_put_slow(p, t, head, tail))
            return;
    }
}

/* Go: runqget. Only p's holder calls this. */
struct task *k_runq_get(struct proc *p)
{
    /* runnext was set by p's holder (as in k_runq_put); the load is
     * relaxed, the CAS only has to win against a thief's. */
    struct task *next = atomic_load_explicit(&p->runnext, memory_order_relaxed);
    if (next && atomic_compare_exchange_strong_explicit(&p->runnext, &next, NULL,
                                                        memory_order_acquire, memory_order_relaxed))
        return next;
    return k_runq_get_ring(p);
}

struct task *k_runq_get_ring(struct proc *p)
{
    /* Only p's holder calls this, the ring's producer: tail and the slot
     * it wrote itself (relaxed). head: acquire, pairs with a thief's
     * release CAS. The CAS is a release: our read of the slot comes before
     * the producer's reuse of it (pairs with k_runq_put's acquire load of
     * head; here the producer is us, but the order costs nothing). */
    for (;;) {
        uint32_t head = atomic_load_explicit(&p->runq_head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&p->runq_tail, memory_order_relaxed);
        if (tail == head)
            return NULL;
        struct task *t = atomic_load_explicit(&p->runq[head % K_RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&p->runq_head, &head, head + 1,
                                                  memory_order_release, memory_order_relaxed))
            return t;
    }
}

bool k_runq_has_room(struct proc *p)
{
    /* Only the holder adds; thieves only take (runnext, or the ring's head
     * forward): room the holder sees stays until it puts. Relaxed
     * runnext and tail: only the holder sets them; head: acquire, as in
     * k_runq_put. */
    if (atomic_load_explicit(&p->runnext, memory_order_relaxed) == NULL)
        return true;
    uint32_t head = atomic_load_explicit(&p->runq_head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&p->runq_tail, memory_order_relaxed);
    return tail - head < K_RUNQ_SIZE;
}

bool k_runq_empty(struct proc *p)
{
    /* Go: runqempty. Reads head, tail, runnext, then tail again: a task
     * moving from runnext to the ring between the reads is not missed.
     * Acquire, pairing with the release stores of tail and runnext: the
     * re-read of tail must come after the read of runnext. Callers that
     * race with a readier (any_work) order these loads after their own
     * store with a seq_cst fence; this publishes no task. */
    for (;;) {
        uint32_t head = atomic_load_explicit(&p->runq_head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&p->runq_tail, memory_order_acquire);
        struct task *next = atomic_load_explicit(&p->runnext, memory_order_acquire);
        if (tail == atomic_load_explicit(&p->runq_tail, memory_order_acquire))
            return head == tail && next == NULL;
    }
}

/* Go: runqgrab. Copies up to half of victim's tasks into batch (at most
 * K_RUNQ_SIZE / 2) and claims them. Returns how many. */
static uint32_t runq_grab(struct proc *victim, struct task **batch, bool steal_next)
{
    for (;;) {
        /* tail: acquire, pairs with the release store of runq_tail in
         * k_runq_put and k_runq_steal: the slots below and the tasks they
         * point to (saved contexts) are visible. head: acquire, pairs with
         * other consumers' release CAS (a head read first is never ahead
         * of tail). */
        uint32_t head = atomic_load_explicit(&victim->runq_head, memory_order_acquire);
        uint32_t tail = atomic_load_explicit(&victim->runq_tail, memory_order_acquire);
        uint32_t n = tail - head;
        n -= n / 2;
        if (n == 0) {
            if (!steal_next)
                return 0;
            /* Acquire: pairs with k_runq_put's release exchange of runnext,
             * which publishes next; so does the CAS below (acq_rel). */
            struct task *next = atomic_load_explicit(&victim->runnext, memory_order_acquire);
            if (!next)
                return 0;
            /* The victim is likely about to run runnext itself (it readied
             * it just before blocking): as Go does (runqgrab), sleep a
             * moment first, so that hand-offs between two tasks are not
             * bounced between procs. A sleep, not a spin: the victim's
             * thread may need this CPU. While the thief sleeps it still
             * counts as spinning, so readiers on the victim do not wake yet
             * another thread (k_wakep): that, more than the steal, is what
             * the sleep saves. A short sleep is asked for; Linux's timer
             * slack makes it longer, which did not matter (the figures,
             * against a pause loop and longer sleeps: docs/benchmarks.md,
             * "Figures behind the code"). status: a relaxed hint, it only
             * decides whether to sleep. */
            if (atomic_load_explicit(&victim->status, memory_order_relaxed) == PROC_RUNNING)
                hal_sleep_ns(K_RUNNEXT_STEAL_WAIT_NS);
            if (!atomic_compare_exchange_strong_explicit(
                    &victim->runnext, &next, NULL, memory_order_acq_rel, memory_order_relaxed))
                continue;
            batch[0] = next;
            return 1;
        }
        if (n > K_RUNQ_SIZE / 2)
            continue; /* inconsistent head and tail: read again */
        /* Slots: relaxed, ordered by the acquire load of tail. The CAS:
         * release, pairs with k_runq_put's acquire load of head (our slot
         * reads come before the producer reuses them); its acquire half
         * pairs with other consumers' claims. */
        for (uint32_t i = 0; i < n; i++)
            batch[i] =
                atomic_load_explicit(&victim->runq[(head + i) % K_RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&victim->runq_head, &head, head + n,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return n;
    }
}

/* Go: runqsteal. Steals from victim into p's ring; returns one task to
 * run now, or NULL. Only p's holder calls this (p's ring is empty). */
struct task *k_runq_steal(struct proc *p, struct proc *victim, bool steal_next)
{
    struct task *batch[K_RUNQ_SIZE / 2];
    uint32_t n = runq_grab(victim, batch, steal_next);
    if (n == 0)
        return NULL;
    struct task *t = batch[--n];
    if (n == 0)
        return t;
    /* As in k_runq_put: we are p's producer (tail and slots relaxed); the
     * release store of tail publishes the stolen tasks to p's thieves.
     * The acquire load of head that orders p's consumers' slot reads
     * before our writes is the caller's: it found p's ring empty with
     * k_runq_get (the assert's load is DEBUG only). */
    uint32_t tail = atomic_load_explicit(&p->runq_tail, memory_order_relaxed);
    k_assert(tail - atomic_load_explicit(&p->runq_head, memory_order_acquire) + n <= K_RUNQ_SIZE);
    for (uint32_t i = 0; i < n; i++)
        atomic_store_explicit(&p->runq[(tail + i) % K_RUNQ_SIZE], batch[i], memory_order_relaxed);
    atomic_store_explicit(&p->runq_tail, tail + n, memory_order_release);
    return t;
}

/* Go: globrunqput. sched.lock held. */
void k_globrunq_put(struct task *t)
{
    k_lock_assert_held(&k_sched.lock);
    t->schedlink = NULL;
    if (k_sched.runq_tail)
        k_sched.runq_tail->schedlink = t;
    else
        k_sched.runq_head = t;
    k_sched.runq_tail = t;
    /* runq_size: written only under sched.lock (hence load + store, and
     * relaxed: the lock orders it). Lock-free readers take it as a hint
     * and re-check under the lock, or order it with a seq_cst fence
     * (any_work). */
    atomic_store_explicit(&k_sched.runq_size,
                          atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Go: globrunqget. sched.lock held. Takes a fair share of the global queue
 * (at most max when max > 0, and at most half a ring) into p's ring and
 * returns one to run. */
struct task *k_globrunq_get(struct proc *p, int max)
{
    k_lock_assert_held(&k_sched.lock);
    /* Relaxed: under sched.lock (see k_globrunq_put). */
    int32_t size = atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed);
    if (size == 0)
        return NULL;
    int32_t n = size / k_sched.nprocs + 1;
    if (n > size)
        n = size;
    if (max > 0 && n > max)
        n = max;
    if (n > K_RUNQ_SIZE / 2)
        n = K_RUNQ_SIZE / 2;
    atomic_store_explicit(&k_sched.runq_size, size - n, memory_order_relaxed);
    struct task *t = k_sched.runq_head;
    k_sched.runq_head = t->schedlink;
    if (!k_sched.runq_head)
        k_sched.runq_tail = NULL;
    t->schedlink = NULL;
    for (int32_t i = 1; i < n; i++) {
        struct task *x = k_sched.runq_head;
        k_sched.runq_head = x->schedlink;
        if (!k_sched.runq_head)
            k_sched.runq_tail = NULL;
        x->schedlink = NULL;
        k_runq_put(p, x, false);
    }
    return t;
}
