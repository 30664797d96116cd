/* SPDX-License-Identifier: MIT */
/*
 * t_sync.c — weft_mutex, weft_rwmutex, weft_cond, weft_waitgroup and
 * weft_once under contention with procs 1, 2, 4 and 8, the mutex's
 * starvation mode, and every documented error code.
 *
 * No case asserts on timing; deadlines inside the cases only turn a hang
 * (a starved writer, a starved mutex waiter) into a failure with a message.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern/sema.h" /* white box: k_sync_starvation_count */
#include "tests/check.h"

/* Generous bound for loops that wait for another task's progress. */
#define HANG_NS (30LL * 1000 * 1000 * 1000)

static void run_procs(void (*fn)(void *), void *arg)
{
    for (size_t i = 0; i < sizeof t_procs_list / sizeof t_procs_list[0]; i++)
        t_run(fn, arg, t_procs_list[i]);
}

/* Spins (running, not parked) for ns nanoseconds. */
static void busy_ns(int64_t ns)
{
    int64_t end = weft_now() + ns;
    while (weft_now() < end) {
    }
}

/* ---- sync_mutex: 64 tasks x 10k increments of a plain counter ---- */

#define MUTEX_TASKS 64

static struct {
    weft_mutex m;
    weft_waitgroup wg;
    int64_t iters;
    long counter;      /* plain: protected by m alone */
    atomic_int inside; /* tasks inside the critical section */
} mx;

static void mutex_worker(void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < mx.iters; i++) {
        if (i % 16 == 0) {
            int rc;
            while ((rc = weft_mutex_trylock(&mx.m)) == WEFT_EAGAIN)
                weft_yield();
            CHECK_OK(rc);
        } else {
            CHECK_OK(weft_mutex_lock(&mx.m));
        }
        CHECK_EQ(atomic_fetch_add_explicit(&mx.inside, 1, memory_order_relaxed), 0);
        mx.counter++;
        if (i % 64 == 0)
            weft_yield(); /* hold the lock across a switch now and then */
        atomic_fetch_sub_explicit(&mx.inside, 1, memory_order_relaxed);
        CHECK_OK(weft_mutex_unlock(&mx.m));
    }
    CHECK_OK(weft_wg_done(&mx.wg));
}

static void mutex_main(void *arg)
{
    (void)arg;
    mx.counter = 0;
    CHECK_OK(weft_wg_add(&mx.wg, MUTEX_TASKS));
    for (int i = 0; i < MUTEX_TASKS; i++)
        CHECK_OK(weft_go(mutex_worker, NULL));
    CHECK_OK(weft_wg_wait(&mx.wg));
    CHECK_EQ(mx.counter, MUTEX_TASKS * mx.iters);
    CHECK_EQ(mx.m.state, 0); /* unlocked, nobody counted as waiting */
}

void t_sync_mutex(void)
{
    mx.iters = t_count(10000);
    run_procs(mutex_main, NULL);
}

/* ---- sync_mutex_starvation: a waiter past 1 ms gets the lock ---- */

#define STARVE_HOGS 2
#define STARVE_ROUNDS 10
#define STARVE_HOLD_NS 2000000 /* each hog holds the lock 2 ms */

static struct {
    weft_mutex m;
    weft_waitgroup wg;
    atomic_int stop;
    atomic_int holding; /* a hog holds the lock right now */
    int victim_rounds;
    uint64_t starvations; /* summed over the procs values */
} sv;

static void starve_hog(void *arg)
{
    (void)arg;
    int64_t deadline = weft_now() + HANG_NS;
    while (!atomic_load(&sv.stop)) {
        CHECK_OK(weft_mutex_lock(&sv.m));
        atomic_store(&sv.holding, 1);
        busy_ns(STARVE_HOLD_NS);
        /* Let the other tasks run while we hold the lock, so that with one
         * proc (or preemption off) the victim queues behind us too. */
        weft_yield();
        atomic_store(&sv.holding, 0);
        CHECK_OK(weft_mutex_unlock(&sv.m));
        if (weft_now() > deadline) {
            fprintf(stderr,
                    "starvation: after 30 s the victim had the lock %d times and "
                    "starvation mode was entered %llu times\n",
                    sv.victim_rounds, (unsigned long long)k_sync_starvation_count());
            CHECK(0);
        }
    }
    CHECK_OK(weft_wg_done(&sv.wg));
}

static void starve_victim(void *arg)
{
    (void)arg;
    /* At least STARVE_ROUNDS rounds, and on until the mutex has entered
     * starvation mode: a woken waiter that finds the lock free (its holder's
     * thread was descheduled by the OS between unlock and relock, as
     * happens on a loaded machine) rightly takes it in normal mode, so one
     * round cannot be sure to need starvation mode. The hogs' deadline
     * bounds this loop. */
    for (int i = 0; i < STARVE_ROUNDS || k_sync_starvation_count() == 0; i++) {
        /* Arrive while a hog holds the lock: we must wait for the rest of
         * its 2 ms, and then the hogs take it again at once. */
        while (!atomic_load(&sv.holding))
            weft_yield();
        CHECK_OK(weft_mutex_lock(&sv.m));
        sv.victim_rounds++;
        CHECK_OK(weft_mutex_unlock(&sv.m));
    }
    atomic_store(&sv.stop, 1);
    CHECK_OK(weft_wg_done(&sv.wg));
}

static void starve_main(void *arg)
{
    (void)arg;
    atomic_store(&sv.stop, 0);
    atomic_store(&sv.holding, 0);
    sv.victim_rounds = 0;
    CHECK_OK(weft_wg_add(&sv.wg, STARVE_HOGS + 1));
    for (int i = 0; i < STARVE_HOGS; i++)
        CHECK_OK(weft_go(starve_hog, NULL));
    CHECK_OK(weft_go(starve_victim, NULL));
    CHECK_OK(weft_wg_wait(&sv.wg));
    CHECK_GE(sv.victim_rounds, STARVE_ROUNDS);
    CHECK_EQ(sv.m.state, 0);
    sv.starvations += k_sync_starvation_count();
}

void t_sync_mutex_starvation(void)
{
    for (size_t i = 0; i < sizeof t_procs_list / sizeof t_procs_list[0]; i++) {
        uint64_t before = sv.starvations;
        t_run(starve_main, NULL, t_procs_list[i]);
        /* The victim went on until the mutex entered starvation mode, so
         * this holds unless the hogs' 30 s deadline failed first. */
        if (sv.starvations == before)
            fprintf(stderr, "procs=%d: no starvation mode\n", t_procs_list[i]);
        CHECK_GT(sv.starvations, before);
    }
}

/* ---- sync_rwmutex: readers see the writers' invariant; writers finish ---- */

#define RW_READERS 16
#define RW_WRITERS 4

static struct {
    weft_rwmutex rw;
    weft_waitgroup writers_wg, readers_wg;
    int64_t writes;     /* per writer */
    long a, b;          /* plain: a == b whenever rw is not write-locked */
    atomic_int writing; /* a writer is inside */
    atomic_int readers_inside;
    atomic_int writers_done;
    atomic_long reads;
} rwt;

static void rw_reader(void *arg)
{
    (void)arg;
    long n = 0;
    while (!atomic_load(&rwt.writers_done)) {
        CHECK_OK(weft_rwmutex_rlock(&rwt.rw));
        atomic_fetch_add(&rwt.readers_inside, 1);
        CHECK_EQ(atomic_load(&rwt.writing), 0);
        CHECK_EQ(rwt.a, rwt.b);
        if (n % 8 == 0)
            weft_yield(); /* hold the read lock across a switch */
        CHECK_EQ(rwt.a, rwt.b);
        atomic_fetch_sub(&rwt.readers_inside, 1);
        CHECK_OK(weft_rwmutex_runlock(&rwt.rw));
        n++;
        weft_yield();
    }
    atomic_fetch_add(&rwt.reads, n);
    CHECK_OK(weft_wg_done(&rwt.readers_wg));
}

static void rw_writer(void *arg)
{
    (void)arg;
    for (int64_t i = 0; i < rwt.writes; i++) {
        CHECK_OK(weft_rwmutex_lock(&rwt.rw));
        CHECK_EQ(atomic_fetch_add(&rwt.writing, 1), 0);
        CHECK_EQ(atomic_load(&rwt.readers_inside), 0);
        rwt.a++;
        if (i % 4 == 0)
            weft_yield(); /* readers must not see a != b meanwhile */
        rwt.b++;
        atomic_fetch_sub(&rwt.writing, 1);
        CHECK_OK(weft_rwmutex_unlock(&rwt.rw));
    }
    CHECK_OK(weft_wg_done(&rwt.writers_wg));
}

static void rw_main(void *arg)
{
    (void)arg;
    rwt.a = rwt.b = 0;
    atomic_store(&rwt.writers_done, 0);
    atomic_store(&rwt.reads, 0);
    CHECK_OK(weft_wg_add(&rwt.readers_wg, RW_READERS));
    CHECK_OK(weft_wg_add(&rwt.writers_wg, RW_WRITERS));
    /* Readers first, so the writers arrive at a lock readers keep busy. */
    for (int i = 0; i < RW_READERS; i++)
        CHECK_OK(weft_go(rw_reader, NULL));
    for (int i = 0; i < RW_WRITERS; i++)
        CHECK_OK(weft_go(rw_writer, NULL));
    /* Readers loop until the writers are done: if writers could starve,
     * this wait would hang (and the case time out). */
    CHECK_OK(weft_wg_wait(&rwt.writers_wg));
    atomic_store(&rwt.writers_done, 1);
    CHECK_OK(weft_wg_wait(&rwt.readers_wg));
    CHECK_EQ(rwt.a, RW_WRITERS * rwt.writes);
    CHECK_EQ(rwt.b, rwt.a);
    CHECK_GT(atomic_load(&rwt.reads), 0);
    CHECK_EQ(rwt.rw.reader_count, 0);
    CHECK_EQ(rwt.rw.w.state, 0);
}

void t_sync_rwmutex(void)
{
    rwt.writes = t_count(2000);
    run_procs(rw_main, NULL);
}

/* ---- sync_cond: producer/consumer queue, signal and broadcast ---- */

#define COND_PRODUCERS 4
#define COND_CONSUMERS 4
#define COND_QCAP 8
#define COND_GATE_TASKS 50

static struct {
    weft_mutex m;
    weft_cond not_empty, not_full;
    int64_t q[COND_QCAP]; /* ring, protected by m */
    int qhead, qlen;
    int done; /* no more items will come (m) */
    int64_t per_producer;
    atomic_int *seen; /* per item: times consumed */
    atomic_long consumed;
    weft_waitgroup producers_wg, consumers_wg;

    /* The broadcast gate: */
    weft_cond gate;
    int arrived, passed, open; /* m */
    weft_waitgroup gate_wg;
} cq;

static void cond_producer(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg;
    for (int64_t k = 0; k < cq.per_producer; k++) {
        int64_t v = id * cq.per_producer + k;
        CHECK_OK(weft_mutex_lock(&cq.m));
        while (cq.qlen == COND_QCAP)
            CHECK_OK(weft_cond_wait(&cq.not_full, &cq.m));
        cq.q[(cq.qhead + cq.qlen) % COND_QCAP] = v;
        cq.qlen++;
        /* Vary the wake-up: signal under the lock, signal after unlocking,
         * and broadcast now and then. */
        if (k % 8 == 0) {
            CHECK_OK(weft_cond_broadcast(&cq.not_empty));
            CHECK_OK(weft_mutex_unlock(&cq.m));
        } else if (k % 2 == 0) {
            CHECK_OK(weft_cond_signal(&cq.not_empty));
            CHECK_OK(weft_mutex_unlock(&cq.m));
        } else {
            CHECK_OK(weft_mutex_unlock(&cq.m));
            CHECK_OK(weft_cond_signal(&cq.not_empty));
        }
    }
    CHECK_OK(weft_wg_done(&cq.producers_wg));
}

static void cond_consumer(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&cq.m));
    for (;;) {
        while (cq.qlen == 0 && !cq.done)
            CHECK_OK(weft_cond_wait(&cq.not_empty, &cq.m));
        if (cq.qlen == 0)
            break; /* done and drained */
        int64_t v = cq.q[cq.qhead];
        cq.qhead = (cq.qhead + 1) % COND_QCAP;
        cq.qlen--;
        CHECK_OK(weft_cond_signal(&cq.not_full));
        CHECK_OK(weft_mutex_unlock(&cq.m));
        CHECK(v >= 0 && v < COND_PRODUCERS * cq.per_producer);
        atomic_fetch_add(&cq.seen[v], 1);
        atomic_fetch_add(&cq.consumed, 1);
        CHECK_OK(weft_mutex_lock(&cq.m));
    }
    CHECK_OK(weft_mutex_unlock(&cq.m));
    CHECK_OK(weft_wg_done(&cq.consumers_wg));
}

static void cond_gate_task(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&cq.m));
    cq.arrived++;
    while (!cq.open)
        CHECK_OK(weft_cond_wait(&cq.gate, &cq.m));
    cq.passed++;
    CHECK_OK(weft_mutex_unlock(&cq.m));
    CHECK_OK(weft_wg_done(&cq.gate_wg));
}

static void cond_main(void *arg)
{
    (void)arg;
    int64_t nitems = COND_PRODUCERS * cq.per_producer;
    for (int64_t i = 0; i < nitems; i++)
        atomic_store(&cq.seen[i], 0);
    atomic_store(&cq.consumed, 0);
    cq.qhead = cq.qlen = cq.done = 0;

    CHECK_OK(weft_wg_add(&cq.consumers_wg, COND_CONSUMERS));
    CHECK_OK(weft_wg_add(&cq.producers_wg, COND_PRODUCERS));
    for (int i = 0; i < COND_CONSUMERS; i++)
        CHECK_OK(weft_go(cond_consumer, NULL));
    for (int i = 0; i < COND_PRODUCERS; i++)
        CHECK_OK(weft_go(cond_producer, (void *)(intptr_t)i));
    CHECK_OK(weft_wg_wait(&cq.producers_wg));
    CHECK_OK(weft_mutex_lock(&cq.m));
    cq.done = 1;
    CHECK_OK(weft_cond_broadcast(&cq.not_empty));
    CHECK_OK(weft_mutex_unlock(&cq.m));
    CHECK_OK(weft_wg_wait(&cq.consumers_wg));

    CHECK_EQ(atomic_load(&cq.consumed), nitems);
    for (int64_t i = 0; i < nitems; i++) {
        if (atomic_load(&cq.seen[i]) != 1)
            fprintf(stderr, "item %lld consumed %d times\n", (long long)i,
                    atomic_load(&cq.seen[i]));
        CHECK_EQ(atomic_load(&cq.seen[i]), 1);
    }

    /* One broadcast releases every task waiting at the gate. */
    cq.arrived = cq.passed = cq.open = 0;
    CHECK_OK(weft_wg_add(&cq.gate_wg, COND_GATE_TASKS));
    for (int i = 0; i < COND_GATE_TASKS; i++)
        CHECK_OK(weft_go(cond_gate_task, NULL));
    int64_t deadline = weft_now() + HANG_NS;
    for (;;) {
        CHECK_OK(weft_mutex_lock(&cq.m));
        int all = cq.arrived == COND_GATE_TASKS;
        if (all) {
            /* Every gate task took its ticket (under m) before we got m. */
            CHECK_EQ(cq.passed, 0);
            cq.open = 1;
            CHECK_OK(weft_cond_broadcast(&cq.gate));
        }
        CHECK_OK(weft_mutex_unlock(&cq.m));
        if (all)
            break;
        CHECK_LT(weft_now(), deadline);
        weft_yield();
    }
    CHECK_OK(weft_wg_wait(&cq.gate_wg));
    CHECK_EQ(cq.passed, COND_GATE_TASKS);
    /* Everyone was notified: the tickets are all used up. */
    CHECK_EQ(cq.gate.wait, cq.gate.notify);
    CHECK(cq.gate.head == NULL && cq.gate.tail == NULL);
}

void t_sync_cond(void)
{
    cq.per_producer = t_count(20000);
    cq.seen = calloc((size_t)(COND_PRODUCERS * cq.per_producer), sizeof *cq.seen);
    CHECK(cq.seen != NULL);
    run_procs(cond_main, NULL);
    free(cq.seen);
}

/* ---- sync_waitgroup: 1000 tasks, several waiters, reuse ---- */

#define WG_TASKS 1000
#define WG_WAITERS 8
#define WG_ROUNDS 3

static struct {
    weft_waitgroup wg, waiters_wg;
    int flags[WG_TASKS + WG_TASKS / 100]; /* plain: written before done */
    int round;
} wgt;

static void wg_child(void *arg)
{
    int i = (int)(intptr_t)arg;
    wgt.flags[i] = wgt.round;
    CHECK_OK(weft_wg_done(&wgt.wg));
}

static void wg_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i % 100 == 0) {
        /* Adding while the counter is above zero is always allowed. */
        CHECK_OK(weft_wg_add(&wgt.wg, 1));
        CHECK_OK(weft_go(wg_child, (void *)(intptr_t)(WG_TASKS + i / 100)));
    }
    if (i % 3 == 0)
        weft_yield();
    wgt.flags[i] = wgt.round;
    CHECK_OK(weft_wg_done(&wgt.wg));
}

static void wg_check_all(void)
{
    for (int i = 0; i < WG_TASKS + WG_TASKS / 100; i++) {
        if (wgt.flags[i] != wgt.round)
            fprintf(stderr, "round %d: task %d not done after wait\n", wgt.round, i);
        CHECK_EQ(wgt.flags[i], wgt.round);
    }
}

static void wg_waiter(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_wait(&wgt.wg));
    wg_check_all();
    CHECK_OK(weft_wg_done(&wgt.waiters_wg));
}

static void wg_main(void *arg)
{
    (void)arg;
    memset(wgt.flags, 0, sizeof wgt.flags);
    /* The same two waitgroups are reused round after round. */
    for (wgt.round = 1; wgt.round <= WG_ROUNDS; wgt.round++) {
        CHECK_OK(weft_wg_add(&wgt.wg, WG_TASKS));
        CHECK_OK(weft_wg_add(&wgt.waiters_wg, WG_WAITERS));
        for (int i = 0; i < WG_WAITERS; i++)
            CHECK_OK(weft_go(wg_waiter, NULL));
        for (int i = 0; i < WG_TASKS; i++)
            CHECK_OK(weft_go(wg_worker, (void *)(intptr_t)i));
        CHECK_OK(weft_wg_wait(&wgt.wg));
        wg_check_all();
        CHECK_OK(weft_wg_wait(&wgt.waiters_wg));
        CHECK_EQ(wgt.wg.state, 0);
        CHECK_EQ(wgt.waiters_wg.state, 0);
        /* A wait on a zero counter returns at once. */
        CHECK_OK(weft_wg_wait(&wgt.wg));
    }
}

void t_sync_waitgroup(void)
{
    run_procs(wg_main, NULL);
}

/* ---- sync_once: 100 tasks race; fn runs once and all see its effect ---- */

#define ONCE_TASKS 100
#define ONCE_ROUNDS 20

static struct {
    weft_once once;
    weft_waitgroup wg;
    atomic_int calls;
    int value; /* plain: written by fn, read after once_do returns */
} ot;

static void once_fn(void *arg)
{
    CHECK(arg == &ot);
    atomic_fetch_add(&ot.calls, 1);
    /* Give the other tasks time to pile up on the once. */
    for (int i = 0; i < 3; i++)
        weft_yield();
    ot.value = 42;
}

static void once_task(void *arg)
{
    (void)arg;
    CHECK_OK(weft_once_do(&ot.once, once_fn, &ot));
    CHECK_EQ(ot.value, 42);
    CHECK_OK(weft_wg_done(&ot.wg));
}

static void once_main(void *arg)
{
    (void)arg;
    for (int r = 0; r < ONCE_ROUNDS; r++) {
        memset(&ot.once, 0, sizeof ot.once);
        atomic_store(&ot.calls, 0);
        ot.value = 0;
        CHECK_OK(weft_wg_add(&ot.wg, ONCE_TASKS));
        for (int i = 0; i < ONCE_TASKS; i++)
            CHECK_OK(weft_go(once_task, NULL));
        CHECK_OK(weft_wg_wait(&ot.wg));
        CHECK_EQ(atomic_load(&ot.calls), 1);
        /* Later calls do nothing. */
        CHECK_OK(weft_once_do(&ot.once, once_fn, &ot));
        CHECK_EQ(atomic_load(&ot.calls), 1);
    }
}

void t_sync_once(void)
{
    run_procs(once_main, NULL);
}

/* ---- sync_errors: every documented error code ---- */

static int dummy_calls;
static void dummy_fn(void *arg)
{
    (void)arg;
    dummy_calls++;
}

/* Every function with NULL: WEFT_EINVAL, inside or outside a task. */
static void errors_null(void)
{
    weft_mutex m = {0};
    weft_once o = {0};
    CHECK_EQ(weft_mutex_lock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_trylock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_mutex_unlock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_rwmutex_rlock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_rwmutex_runlock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_rwmutex_lock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_rwmutex_unlock(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_wait(NULL, &m), WEFT_EINVAL);
    weft_cond c = {0};
    CHECK_EQ(weft_cond_wait(&c, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_signal(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_cond_broadcast(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(NULL, 1), WEFT_EINVAL);
    CHECK_EQ(weft_wg_done(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_wg_wait(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_once_do(NULL, dummy_fn, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_once_do(&o, NULL, NULL), WEFT_EINVAL);
    CHECK_EQ(o.done, 0);
}

/* Outside a task (no runtime, or a foreign thread with nothing to wake). */
static void errors_outside(void)
{
    weft_mutex m = {0};
    weft_rwmutex rw = {0};
    weft_cond c = {0};
    weft_waitgroup wg = {0};
    weft_once o = {0};

    /* Functions that may park: WEFT_ENOTASK, whatever the state. */
    CHECK_EQ(weft_mutex_lock(&m), WEFT_ENOTASK);
    CHECK_EQ(m.state, 0);
    CHECK_EQ(weft_rwmutex_rlock(&rw), WEFT_ENOTASK);
    CHECK_EQ(weft_rwmutex_lock(&rw), WEFT_ENOTASK);
    CHECK_EQ(weft_rwmutex_runlock(&rw), WEFT_ENOTASK);
    CHECK_EQ(weft_rwmutex_unlock(&rw), WEFT_ENOTASK);
    CHECK_EQ(rw.reader_count, 0);
    CHECK_EQ(rw.w.state, 0);
    CHECK_EQ(weft_wg_wait(&wg), WEFT_ENOTASK);
    dummy_calls = 0;
    CHECK_EQ(weft_once_do(&o, dummy_fn, NULL), WEFT_ENOTASK);
    CHECK_EQ(dummy_calls, 0);
    CHECK_EQ(o.done, 0);

    /* trylock/unlock work outside a task while nobody waits. */
    CHECK_OK(weft_mutex_trylock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), WEFT_EAGAIN);
    CHECK_EQ(weft_cond_wait(&c, &m), WEFT_ENOTASK);
    CHECK_OK(weft_mutex_unlock(&m));
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_EINVAL); /* not locked */
    CHECK_EQ(m.state, 0);

    /* signal/broadcast with nobody waiting: nothing to do. */
    CHECK_OK(weft_cond_signal(&c));
    CHECK_OK(weft_cond_broadcast(&c));
    CHECK_EQ(c.wait, 0);
    CHECK_EQ(c.notify, 0);

    /* add/done work; the counter never goes negative. */
    CHECK_OK(weft_wg_add(&wg, 2));
    CHECK_EQ(weft_wg_add(&wg, -3), WEFT_EINVAL);
    CHECK_EQ(wg.state >> 32, 2);
    CHECK_OK(weft_wg_done(&wg));
    CHECK_OK(weft_wg_done(&wg));
    CHECK_EQ(weft_wg_done(&wg), WEFT_EINVAL);
    CHECK_EQ(wg.state, 0);
    CHECK_OK(weft_wg_add(&wg, 0));
    /* The counter is 32 bits: no overflow. */
    CHECK_OK(weft_wg_add(&wg, INT32_MAX));
    CHECK_EQ(weft_wg_add(&wg, 1), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, INT64_MIN), WEFT_EINVAL);
    CHECK_EQ(weft_wg_add(&wg, INT64_MAX), WEFT_EINVAL);
    CHECK_EQ(wg.state >> 32, INT32_MAX);
    CHECK_OK(weft_wg_add(&wg, -(int64_t)INT32_MAX));
    CHECK_EQ(wg.state, 0);
    CHECK_EQ(weft_wg_add(&wg, -1), WEFT_EINVAL);
    CHECK_EQ(wg.state, 0);
}

static void *outside_thread(void *arg)
{
    (void)arg;
    errors_null();
    errors_outside();
    return NULL;
}

/* A foreign thread's call that would have to wake a parked task. */
enum foreign_op { FOREIGN_UNLOCK, FOREIGN_SIGNAL, FOREIGN_BROADCAST, FOREIGN_DONE };

static struct {
    weft_mutex m;
    weft_cond c;
    weft_waitgroup wg;
    weft_waitgroup done_wg;
    atomic_int parked_stage;
    int cond_flag; /* m */
} fe;

struct foreign_call {
    enum foreign_op op;
    int rc;
};

static void *foreign_thread(void *arg)
{
    struct foreign_call *fc = arg;
    switch (fc->op) {
    case FOREIGN_UNLOCK:
        fc->rc = weft_mutex_unlock(&fe.m);
        break;
    case FOREIGN_SIGNAL:
        fc->rc = weft_cond_signal(&fe.c);
        break;
    case FOREIGN_BROADCAST:
        fc->rc = weft_cond_broadcast(&fe.c);
        break;
    case FOREIGN_DONE:
        fc->rc = weft_wg_done(&fe.wg);
        break;
    }
    return NULL;
}

static int call_foreign(enum foreign_op op)
{
    struct foreign_call fc = {op, 12345};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, foreign_thread, &fc), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    return fc.rc;
}

static void foreign_mutex_waiter(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&fe.m));
    CHECK_OK(weft_mutex_unlock(&fe.m));
    CHECK_OK(weft_wg_done(&fe.done_wg));
}

static void foreign_cond_waiter(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&fe.m));
    while (!fe.cond_flag)
        CHECK_OK(weft_cond_wait(&fe.c, &fe.m));
    CHECK_OK(weft_mutex_unlock(&fe.m));
    CHECK_OK(weft_wg_done(&fe.done_wg));
}

static void foreign_wg_waiter(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_wait(&fe.wg));
    CHECK_OK(weft_wg_done(&fe.done_wg));
}

/* Waits (yielding) until cond() holds. */
static void wait_until(int (*cond)(void))
{
    int64_t deadline = weft_now() + HANG_NS;
    while (!cond()) {
        CHECK_LT(weft_now(), deadline);
        weft_yield();
    }
}

static int mutex_has_waiter(void)
{
    return (atomic_load((_Atomic int32_t *)&fe.m.state) >> 3) != 0;
}
static int cond_has_waiter(void)
{
    return atomic_load((void *_Atomic *)&fe.c.head) != NULL;
}
static int wg_has_waiter(void)
{
    return (uint32_t)atomic_load((_Atomic uint64_t *)&fe.wg.state) != 0;
}

static void errors_foreign(void)
{
    memset(&fe, 0, sizeof fe);

    /* A foreign thread may trylock/unlock an uncontended mutex. */
    CHECK_EQ(call_foreign(FOREIGN_UNLOCK), WEFT_EINVAL);
    CHECK_OK(weft_mutex_trylock(&fe.m));
    CHECK_OK(call_foreign(FOREIGN_UNLOCK));
    CHECK_EQ(fe.m.state, 0);

    /* While a run runs, a foreign (host) thread may also wake parked
     * tasks (kern/host.c): the waiter gets the lock. */
    CHECK_OK(weft_mutex_lock(&fe.m));
    CHECK_OK(weft_wg_add(&fe.done_wg, 1));
    CHECK_OK(weft_go(foreign_mutex_waiter, NULL));
    wait_until(mutex_has_waiter);
    CHECK_OK(call_foreign(FOREIGN_UNLOCK));
    CHECK_OK(weft_wg_wait(&fe.done_wg));
    CHECK_EQ(fe.m.state, 0);

    /* signal, then broadcast, wake parked cond waiters. */
    CHECK_OK(weft_wg_add(&fe.done_wg, 1));
    CHECK_OK(weft_go(foreign_cond_waiter, NULL));
    wait_until(cond_has_waiter);
    CHECK_OK(weft_mutex_lock(&fe.m));
    fe.cond_flag = 1;
    CHECK_OK(weft_mutex_unlock(&fe.m));
    CHECK_OK(call_foreign(FOREIGN_SIGNAL));
    CHECK_OK(weft_wg_wait(&fe.done_wg));
    CHECK_EQ(fe.c.notify, 1);
    fe.cond_flag = 0;
    CHECK_OK(weft_wg_add(&fe.done_wg, 2));
    CHECK_OK(weft_go(foreign_cond_waiter, NULL));
    CHECK_OK(weft_go(foreign_cond_waiter, NULL));
    wait_until(cond_has_waiter);
    while (atomic_load((_Atomic uint32_t *)&fe.c.wait) != 3)
        weft_yield();
    CHECK_OK(weft_mutex_lock(&fe.m));
    fe.cond_flag = 1;
    CHECK_OK(weft_mutex_unlock(&fe.m));
    CHECK_OK(call_foreign(FOREIGN_BROADCAST));
    CHECK_OK(weft_wg_wait(&fe.done_wg));
    CHECK_EQ(fe.c.notify, 3);

    /* A done that releases a parked waiter. */
    CHECK_OK(weft_wg_add(&fe.wg, 2));
    CHECK_OK(call_foreign(FOREIGN_DONE)); /* 2 -> 1: nobody to wake */
    CHECK_OK(weft_wg_add(&fe.done_wg, 1));
    CHECK_OK(weft_go(foreign_wg_waiter, NULL));
    wait_until(wg_has_waiter);
    CHECK_OK(call_foreign(FOREIGN_DONE));
    CHECK_OK(weft_wg_wait(&fe.done_wg));
    CHECK_EQ(fe.wg.state, 0);
}

/* Misuse inside a task. */
static void errors_inside(void)
{
    weft_mutex m = {0};
    weft_rwmutex rw = {0};
    weft_cond c = {0};
    weft_waitgroup wg = {0};

    /* Unlocking an unlocked mutex: EINVAL, the state untouched, and the
     * mutex still works. */
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_EINVAL);
    CHECK_EQ(m.state, 0);
    CHECK_OK(weft_mutex_lock(&m));
    CHECK_EQ(weft_mutex_trylock(&m), WEFT_EAGAIN);
    CHECK_OK(weft_mutex_unlock(&m));
    CHECK_EQ(weft_mutex_unlock(&m), WEFT_EINVAL);
    CHECK_EQ(m.state, 0);

    /* cond_wait with a mutex nobody holds: EINVAL, no ticket spent. */
    CHECK_EQ(weft_cond_wait(&c, &m), WEFT_EINVAL);
    CHECK_EQ(c.wait, 0);
    CHECK_EQ(m.state, 0);

    /* rwmutex: runlock without rlock, unlock without lock, and the
     * crossed pairs. */
    CHECK_EQ(weft_rwmutex_runlock(&rw), WEFT_EINVAL);
    CHECK_EQ(weft_rwmutex_unlock(&rw), WEFT_EINVAL);
    CHECK_OK(weft_rwmutex_rlock(&rw));
    CHECK_EQ(weft_rwmutex_unlock(&rw), WEFT_EINVAL);
    CHECK_EQ(rw.reader_count, 1);
    CHECK_OK(weft_rwmutex_runlock(&rw));
    CHECK_EQ(weft_rwmutex_runlock(&rw), WEFT_EINVAL);
    CHECK_OK(weft_rwmutex_lock(&rw));
    CHECK_EQ(weft_rwmutex_runlock(&rw), WEFT_EINVAL);
    CHECK_OK(weft_rwmutex_unlock(&rw));
    CHECK_EQ(weft_rwmutex_unlock(&rw), WEFT_EINVAL);
    CHECK_EQ(rw.reader_count, 0);
    CHECK_EQ(rw.reader_wait, 0);
    CHECK_EQ(rw.w.state, 0);

    /* A negative waitgroup counter: EINVAL, the counter unchanged. */
    CHECK_OK(weft_wg_add(&wg, 1));
    CHECK_EQ(weft_wg_add(&wg, -2), WEFT_EINVAL);
    CHECK_EQ(wg.state >> 32, 1);
    CHECK_OK(weft_wg_done(&wg));
    CHECK_EQ(weft_wg_done(&wg), WEFT_EINVAL);
    CHECK_OK(weft_wg_wait(&wg));
    CHECK_EQ(wg.state, 0);
}

static void errors_main(void *arg)
{
    (void)arg;
    errors_null();
    errors_inside();
    errors_foreign();
    /* A foreign thread during a run behaves as outside a task. */
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, outside_thread, NULL), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
}

void t_sync_errors(void)
{
    /* Before any run, on the host's thread. */
    errors_null();
    errors_outside();
    run_procs(errors_main, NULL);
    /* And after. */
    errors_outside();
}
