/* SPDX-License-Identifier: MIT */
/*
 * t_kern.c — kern's mechanisms tested from the inside, through
 * kern/ktest.h (Go: the runqueue, heap and size-class tests that
 * export_test.go opens up): the run queue (its counters wrapping past
 * 2^32, stealing half, runnext), the timer heap (order, deletion, changes
 * under churn), the allocator's size classes and proc cache, and the
 * stack cache. Outside weft_run: each case builds the procs, tasks and
 * caches it needs by hand, and the tasks never run (the run queue only
 * moves pointers to them).
 *
 * Also crash_panic_dump: a panic during a run prints every task's state
 * (the hook weft_run gives k_panic).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern/ktest.h"
#include "kern/proc.h"
#include "tests/check.h"

/* ---- helpers ---- */

static uint64_t rnd_state = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    /* xorshift64* */
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 2685821657736338717ull;
}

/* A zeroed proc, as make_procs would have it before its first holder. */
static struct proc *proc_new(int id)
{
    size_t size = K_ROUND_UP(sizeof(struct proc), K_CACHELINE);
#ifdef _WIN32
    struct proc *p = _aligned_malloc(size, K_CACHELINE); /* no aligned_alloc */
#else
    struct proc *p = aligned_alloc(K_CACHELINE, size);
#endif
    CHECK(p != NULL);
    memset(p, 0, size);
    p->id = id;
    return p;
}

static void proc_free(struct proc *p)
{
#ifdef _WIN32
    _aligned_free(p);
#else
    free(p);
#endif
}

/* Puts p's ring counters at start (the ring must be empty). */
static void ring_at(struct proc *p, uint32_t start)
{
    CHECK(k_runq_empty(p));
    atomic_store(&p->runq_head, start);
    atomic_store(&p->runq_tail, start);
}

static uint32_t ring_len(struct proc *p)
{
    return atomic_load(&p->runq_tail) - atomic_load(&p->runq_head);
}

/* The global queue's tasks, in order, into out (at most max); returns how
 * many. Looks without taking them. */
static int global_list(struct task **out, int max)
{
    int n = 0;
    for (struct task *t = k_sched.runq_head; t != NULL && n < max; t = t->schedlink)
        out[n++] = t;
    return n;
}

/* ---- kern_runq_wrap: FIFO while head and tail wrap past 2^32 ---- */

void t_kern_runq_wrap(void)
{
    enum { N = 3 * K_RUNQ_SIZE };
    struct task *t = calloc(N, sizeof *t);
    CHECK(t != NULL);
    struct proc *p = proc_new(0);
    k_sched.nprocs = 1;

    /* Bursts of puts and gets of every length up to a full ring, starting
     * half a ring short of 2^32: the counters wrap early on, and the
     * ring's index goes round many times. */
    uint32_t start = UINT32_MAX - K_RUNQ_SIZE / 2;
    ring_at(p, start);
    size_t in = 0, out = 0;
    for (int round = 0; round < 300; round++) {
        size_t room = K_RUNQ_SIZE - (in - out);
        size_t puts = 1 + (size_t)(rnd() % room);
        for (size_t i = 0; i < puts; i++, in++)
            k_runq_put(p, &t[in % N], false);
        CHECK_EQ(ring_len(p), in - out);
        size_t gets = 1 + (size_t)(rnd() % (in - out));
        for (size_t i = 0; i < gets; i++, out++)
            CHECK(k_runq_get(p) == &t[out % N]);
        CHECK_EQ(atomic_load(&k_sched.runq_size), 0); /* never overflowed */
    }
    while (out < in)
        CHECK(k_runq_get(p) == &t[out++ % N]);
    CHECK(k_runq_get(p) == NULL);
    CHECK(k_runq_empty(p));
    CHECK_LT(atomic_load(&p->runq_tail), start); /* it did wrap */

    /* A full ring straddling 2^32 holds K_RUNQ_SIZE tasks and no more:
     * the next put moves the older half and the new task to the global
     * queue, in order. */
    ring_at(p, UINT32_MAX - K_RUNQ_SIZE / 3);
    for (int i = 0; i < K_RUNQ_SIZE; i++) {
        k_runq_put(p, &t[i], false);
        CHECK(k_runq_has_room(p)); /* runnext is free */
    }
    CHECK_EQ(ring_len(p), K_RUNQ_SIZE);
    CHECK_EQ(atomic_load(&k_sched.runq_size), 0);
    struct task *extra = &t[N - 1];
    k_runq_put(p, extra, false);
    CHECK_EQ(ring_len(p), K_RUNQ_SIZE / 2);
    CHECK_EQ(atomic_load(&k_sched.runq_size), K_RUNQ_SIZE / 2 + 1);
    struct task *glob[K_RUNQ_SIZE];
    CHECK_EQ(global_list(glob, K_RUNQ_SIZE), K_RUNQ_SIZE / 2 + 1);
    for (int i = 0; i < K_RUNQ_SIZE / 2; i++)
        CHECK(glob[i] == &t[i]);
    CHECK(glob[K_RUNQ_SIZE / 2] == extra);
    for (int i = K_RUNQ_SIZE / 2; i < K_RUNQ_SIZE; i++)
        CHECK(k_runq_get(p) == &t[i]);
    CHECK(k_runq_empty(p));

    /* Back from the global queue: at most half a ring at a time, in
     * order, the first returned and the rest queued on p. */
    k_lock(&k_sched.lock);
    CHECK(k_globrunq_get(p, 0) == &t[0]);
    k_unlock(&k_sched.lock);
    for (int i = 1; i < K_RUNQ_SIZE / 2; i++)
        CHECK(k_runq_get(p) == &t[i]);
    CHECK(k_runq_get(p) == NULL);
    k_lock(&k_sched.lock);
    CHECK(k_globrunq_get(p, 0) == extra);
    CHECK(k_globrunq_get(p, 0) == NULL);
    k_unlock(&k_sched.lock);
    proc_free(p);
    free(t);
}

/* ---- kern_runq_steal: half of the victim's ring, the oldest first ---- */

/* Steal tasks from a victim holding n in its ring, its counters starting
 * at base; checks what each side ends with. */
static void steal_once(struct proc *thief, struct proc *victim, struct task *t, uint32_t n,
                       uint32_t base)
{
    ring_at(victim, base);
    ring_at(thief, base ^ 0x80000000u);
    for (uint32_t i = 0; i < n; i++)
        k_runq_put(victim, &t[i], false);
    struct task *got = k_runq_steal(thief, victim, false);
    uint32_t want = n - n / 2; /* half, rounded up */
    if (n == 0) {
        CHECK(got == NULL);
        return;
    }
    /* The thief has the victim's want oldest, each once: one to run, the
     * rest queued in the victim's order. */
    bool seen[K_RUNQ_SIZE + 1];
    memset(seen, 0, sizeof seen);
    CHECK(got >= &t[0] && got < &t[want]);
    seen[got - t] = true;
    CHECK_EQ(ring_len(thief), want - 1);
    struct task *last = NULL;
    for (struct task *x; (x = k_runq_get(thief)) != NULL; last = x) {
        CHECK(x >= &t[0] && x < &t[want]);
        CHECK(!seen[x - t]);
        CHECK(last == NULL || x > last);
        seen[x - t] = true;
    }
    for (uint32_t i = 0; i < want; i++)
        CHECK(seen[i]);
    /* The victim keeps the newest, in order. */
    CHECK_EQ(ring_len(victim), n / 2);
    for (uint32_t i = want; i < n; i++)
        CHECK(k_runq_get(victim) == &t[i]);
    CHECK(k_runq_empty(victim));
}

/* Under contention: one owner puts (and sometimes takes), thieves steal
 * and run what they stole; every task must be taken exactly once. */
enum { THIEVES = 2 };
static struct {
    struct proc *victim;
    struct task *tasks;
    _Atomic uint32_t *taken;
    int64_t n;
    _Atomic bool done;
    _Atomic int64_t count;  /* tasks taken */
    _Atomic int64_t stolen; /* of them, by thieves */
} race;

static void race_take(struct task *t)
{
    size_t i = (size_t)(t - race.tasks);
    CHECK_LT(i, race.n);
    CHECK_EQ(atomic_fetch_add(&race.taken[i], 1), 0);
    atomic_fetch_add(&race.count, 1);
}

static void *race_thief(void *arg)
{
    struct proc *mine = arg;
    uint64_t r = (uint64_t)(uintptr_t)arg;
    for (;;) {
        struct task *t = k_runq_get(mine);
        if (t == NULL) {
            r = r * 6364136223846793005ull + 1;
            t = k_runq_steal(mine, race.victim, (r >> 33) & 1);
        }
        if (t != NULL) {
            race_take(t);
            atomic_fetch_add(&race.stolen, 1);
        } else if (atomic_load(&race.done) && k_runq_empty(race.victim))
            return NULL;
    }
}

static void steal_race(void)
{
    race.n = t_count(200000);
    race.victim = proc_new(1);
    atomic_store(&race.victim->status, PROC_RUNNING); /* thieves wait on its runnext */
    ring_at(race.victim, UINT32_MAX - 1000);
    race.tasks = calloc((size_t)race.n, sizeof *race.tasks);
    race.taken = calloc((size_t)race.n, sizeof *race.taken);
    CHECK(race.tasks != NULL && race.taken != NULL);
    pthread_t th[THIEVES];
    struct proc *tp[THIEVES];
    for (int i = 0; i < THIEVES; i++) {
        tp[i] = proc_new(2 + i);
        CHECK_OK(pthread_create(&th[i], NULL, race_thief, tp[i]));
    }
    for (int64_t i = 0; i < race.n; i++) {
        uint64_t r = rnd();
        k_runq_put(race.victim, &race.tasks[i], (r & 7) == 0);
        /* The owner runs tasks too, always when its ring is nearly full:
         * thieves then race it for the head instead of the overflow
         * taking most tasks (a few still overflow, kicked from runnext). */
        if ((r >> 8) % 3 == 0 || ring_len(race.victim) > K_RUNQ_SIZE - 8) {
            struct task *t = k_runq_get(race.victim);
            if (t != NULL)
                race_take(t);
        }
    }
    atomic_store(&race.done, true);
    for (int i = 0; i < THIEVES; i++)
        CHECK_OK(pthread_join(th[i], NULL));
    /* What overflowed from a full ring waits in the global queue. */
    for (struct task *t = k_sched.runq_head; t != NULL; t = t->schedlink)
        race_take(t);
    CHECK_EQ(atomic_load(&race.count), race.n);
    fprintf(stderr, "kern_runq_steal: %lld tasks, %lld stolen by %d thieves, %d overflowed\n",
            (long long)race.n, (long long)atomic_load(&race.stolen), THIEVES,
            (int)atomic_load(&k_sched.runq_size));
    CHECK_GT(atomic_load(&race.stolen), 0);
    for (int i = 0; i < THIEVES; i++)
        proc_free(tp[i]);
    proc_free(race.victim);
    free(race.taken);
    free(race.tasks);
}

void t_kern_runq_steal(void)
{
    enum { N = K_RUNQ_SIZE + 1 };
    struct task *t = calloc(N, sizeof *t);
    CHECK(t != NULL);
    struct proc *victim = proc_new(0), *thief = proc_new(1);
    k_sched.nprocs = 2;
    /* Every length, half of them straddling 2^32. */
    for (uint32_t n = 0; n <= K_RUNQ_SIZE; n++)
        steal_once(thief, victim, t, n, n & 1 ? UINT32_MAX - n / 2 : n * 7);

    /* runnext: stolen only when asked and the ring is empty. */
    ring_at(victim, 5);
    ring_at(thief, 5);
    k_runq_put(victim, &t[0], true);
    CHECK(k_runq_steal(thief, victim, false) == NULL);
    CHECK(atomic_load(&victim->runnext) == &t[0]);
    k_runq_put(victim, &t[1], false);
    CHECK(k_runq_steal(thief, victim, true) == &t[1]); /* the ring first */
    CHECK(atomic_load(&victim->runnext) == &t[0]);
    CHECK(k_runq_steal(thief, victim, true) == &t[0]);
    CHECK(atomic_load(&victim->runnext) == NULL);
    CHECK(k_runq_empty(victim));
    CHECK(k_runq_steal(thief, victim, true) == NULL);
    proc_free(victim);
    proc_free(thief);
    free(t);

    steal_race();
}

/* ---- kern_runq_runnext: the slot in front of the ring ---- */

void t_kern_runq_runnext(void)
{
    enum { N = K_RUNQ_SIZE + 4 };
    struct task *t = calloc(N, sizeof *t);
    CHECK(t != NULL);
    struct proc *p = proc_new(0);
    k_sched.nprocs = 1;
    struct task *a = &t[0], *b = &t[1], *c = &t[2];

    k_runq_put(p, a, true);
    CHECK(atomic_load(&p->runnext) == a);
    CHECK_EQ(ring_len(p), 0);
    CHECK(!k_runq_empty(p)); /* runnext counts */
    k_runq_put(p, b, true);  /* a is kicked to the ring's tail */
    CHECK(atomic_load(&p->runnext) == b);
    CHECK_EQ(ring_len(p), 1);
    k_runq_put(p, c, false);
    CHECK(k_runq_get_ring(p) == a); /* the fairness turn skips runnext */
    CHECK(atomic_load(&p->runnext) == b);
    CHECK(k_runq_get(p) == b); /* runnext before the ring */
    CHECK(atomic_load(&p->runnext) == NULL);
    CHECK(k_runq_get(p) == c);
    CHECK(k_runq_get(p) == NULL);
    CHECK(k_runq_empty(p));

    /* Room: with runnext free there is always room; with it taken, only
     * while the ring has a slot. A task kicked out of runnext into a full
     * ring overflows with the older half. */
    ring_at(p, UINT32_MAX - 7);
    for (int i = 0; i < K_RUNQ_SIZE; i++)
        k_runq_put(p, &t[3 + i], false);
    CHECK(k_runq_has_room(p));
    struct task *x = &t[N - 1];
    k_runq_put(p, x, true);
    CHECK(!k_runq_has_room(p));
    CHECK_EQ(atomic_load(&k_sched.runq_size), 0);
    k_runq_put(p, a, true);
    CHECK(atomic_load(&p->runnext) == a);
    CHECK_EQ(atomic_load(&k_sched.runq_size), K_RUNQ_SIZE / 2 + 1);
    struct task *glob[K_RUNQ_SIZE];
    CHECK_EQ(global_list(glob, K_RUNQ_SIZE), K_RUNQ_SIZE / 2 + 1);
    CHECK(glob[0] == &t[3]);
    CHECK(glob[K_RUNQ_SIZE / 2] == x);
    CHECK(k_runq_has_room(p));
    proc_free(p);
    free(t);
}

/* ---- the timer heap: a proc and a thread of the test's own ----
 *
 * k_timer_start puts a timer in the calling thread's proc's heap, and
 * k_timers_run gives what fires to the caller's proc: the test makes the
 * main thread a kern thread holding one proc. last_poll != 0 says nobody
 * blocks in the poller, so that starting the earliest timer wakes no
 * one. */

struct ttimer {
    struct k_timer kt;
    int64_t when; /* the latest time it was started for */
    uint64_t seq; /* kt.seq then */
    bool pending; /* started and neither fired nor stopped */
    int fired;
};

static struct {
    struct proc *p;
    struct thread *th;
    int64_t now;       /* the time k_timers_run was given */
    int64_t last_fire; /* when of the last timer fired */
    int64_t fires;
} heap;

static void heap_fire(struct k_timer *kt, uint64_t seq, int64_t now)
{
    struct ttimer *t = K_CONTAINER_OF(kt, struct ttimer, kt);
    CHECK(t->pending);
    CHECK_EQ(now, heap.now);
    CHECK_LE(t->when, now);            /* not early */
    CHECK_GE(t->when, heap.last_fire); /* in order */
    CHECK_EQ(seq, t->seq);             /* the latest start's */
    if (kt->period_ns == 0) {
        CHECK(atomic_load(&kt->proc) == NULL); /* off the heap first */
        t->pending = false;
    }
    CHECK_EQ(atomic_load(&kt->running), 1);
    heap.last_fire = t->when;
    t->fired++;
    heap.fires++;
}

static void heap_begin(void)
{
    CHECK_OK(k_mem_init(NULL));
    static struct proc *procs[1];
    heap.p = procs[0] = proc_new(0);
    k_sched.nprocs = 1;
    k_sched.procs = procs;
    atomic_store(&k_sched.nall, 1); /* the loops over procs go to nall */
    atomic_store(&k_sched.last_poll, 1);
    heap.th = calloc(1, sizeof *heap.th);
    CHECK(heap.th != NULL);
    heap.th->proc = heap.p;
    hal_thread_set(heap.th);
}

static void heap_end(void)
{
    CHECK_EQ(heap.p->ntimers, 0);
    hal_thread_set(NULL);
    k_timers_fini(heap.p);
    k_mem_fini();
    CHECK_EQ(k_mem_reserved(), 0);
    free(heap.th);
    proc_free(heap.p);
}

static void heap_check(void)
{
    int bad = k_timers_check(heap.p);
    if (bad >= 0)
        fprintf(stderr, "timer heap of %u broken at slot %d\n", heap.p->ntimers, bad);
    CHECK_EQ(bad, -1);
}

static void tt_start(struct ttimer *t, int64_t when)
{
    CHECK(!t->pending);
    t->kt.fn = heap_fire;
    t->kt.seq++;
    t->seq = t->kt.seq;
    t->when = when;
    t->pending = true;
    k_timer_start(&t->kt, when);
    CHECK_EQ(t->kt.when, when);
}

/* The earliest when among the pending, 0 if none. */
static int64_t tt_earliest(struct ttimer *t, int n)
{
    int64_t best = 0;
    for (int i = 0; i < n; i++)
        if (t[i].pending && (best == 0 || t[i].when < best))
            best = t[i].when;
    return best;
}

/* Runs the heap at now; checks what it says is next. */
static void tt_run(struct ttimer *t, int n, int64_t now)
{
    heap.now = now;
    int64_t next = k_timers_run(heap.p, now);
    heap_check();
    int64_t want = tt_earliest(t, n);
    CHECK_EQ(next, want);
    CHECK(want == 0 || want > now);
    CHECK_EQ(k_timers_earliest(), want);
}

/* Runs the heap forward until it is empty. */
static void tt_drain(struct ttimer *t, int n)
{
    int64_t now = heap.now;
    while (heap.p->ntimers > 0) {
        now += 1 + (int64_t)(rnd() % 40000);
        tt_run(t, n, now);
    }
}

/* ---- kern_timerheap_order: timers fire in the order of their times ---- */

void t_kern_timerheap_order(void)
{
    heap_begin();
    int n = (int)t_count(4000);
    struct ttimer *t = calloc((size_t)n, sizeof *t);
    CHECK(t != NULL);
    /* Times with many equal ones, started in random order. */
    for (int i = 0; i < n; i++) {
        tt_start(&t[i], 1 + (int64_t)(rnd() % 3000) * 300);
        heap_check();
        CHECK_EQ(k_timers_earliest(), tt_earliest(t, n));
    }
    CHECK_EQ(heap.p->ntimers, n);
    tt_drain(t, n);
    for (int i = 0; i < n; i++)
        CHECK_EQ(t[i].fired, 1);
    CHECK_EQ(heap.fires, n);

    /* A periodic timer skips the ticks it missed and stays on its grid. */
    struct ttimer per;
    memset(&per, 0, sizeof per);
    per.kt.period_ns = 1000;
    int64_t at = heap.now + 5000;
    tt_start(&per, at);
    heap.now = at + 3500; /* due 4 times over: fires once */
    CHECK_EQ(k_timers_run(heap.p, heap.now), at + 4000);
    CHECK_EQ(per.fired, 1);
    CHECK_EQ(per.kt.when, at + 4000);
    CHECK_EQ(k_timers_earliest(), at + 4000);
    heap_check();
    CHECK(k_timer_stop(&per.kt));
    heap_end();
    free(t);
}

/* ---- kern_timerheap_delete: stopped timers leave the heap, and only they ---- */

void t_kern_timerheap_delete(void)
{
    heap_begin();
    int n = (int)t_count(4000);
    struct ttimer *t = calloc((size_t)n, sizeof *t);
    int *order = calloc((size_t)n, sizeof *order);
    CHECK(t != NULL && order != NULL);
    for (int i = 0; i < n; i++) {
        tt_start(&t[i], 1 + (int64_t)(rnd() % 100000) * 10);
        order[i] = i;
    }
    for (int i = n - 1; i > 0; i--) { /* a random order to stop them in */
        int j = (int)(rnd() % (uint64_t)(i + 1));
        int x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    /* Stop the earliest first (timer0 must follow), then half at random. */
    int first = 0;
    for (int i = 1; i < n; i++)
        if (t[i].when < t[first].when)
            first = i;
    CHECK(k_timer_stop(&t[first].kt));
    t[first].pending = false;
    heap_check();
    CHECK_EQ(k_timers_earliest(), tt_earliest(t, n));
    for (int k = 0; k < n / 2; k++) {
        struct ttimer *x = &t[order[k]];
        CHECK_EQ(k_timer_stop(&x->kt), x->pending);
        x->pending = false;
        CHECK(atomic_load(&x->kt.proc) == NULL);
        CHECK(!k_timer_stop(&x->kt)); /* stopping again: not pending */
        heap_check();
        CHECK_EQ(k_timers_earliest(), tt_earliest(t, n));
    }
    int left = 0;
    for (int i = 0; i < n; i++)
        left += t[i].pending;
    CHECK_EQ(heap.p->ntimers, left);
    tt_drain(t, n);
    for (int i = 0; i < n; i++) {
        bool stopped = i == first;
        for (int k = 0; k < n / 2; k++)
            stopped |= order[k] == i;
        CHECK_EQ(t[i].fired, stopped ? 0 : 1);
    }
    CHECK_EQ(heap.fires, left);
    heap_end();
    free(order);
    free(t);
}

/* ---- kern_timerheap_modify: started, stopped, moved and fired at random ---- */

void t_kern_timerheap_modify(void)
{
    heap_begin();
    enum { K = 1000 };
    struct ttimer *t = calloc(K, sizeof *t);
    CHECK(t != NULL);
    int64_t ops = t_count(60000);
    int64_t moved = 0, stopped = 0, started = 0;
    heap.now = 1000;
    for (int64_t op = 0; op < ops; op++) {
        struct ttimer *x = &t[rnd() % K];
        uint64_t r = rnd();
        /* New times land before and after the current ones, so that a
         * moved timer sifts both ways. */
        int64_t when = heap.now + 1 + (int64_t)((r >> 8) % 200000);
        if (x->pending && (r & 3) != 0) {
            /* Moved, as weft_timer_reset does: stop, then start again. */
            CHECK(k_timer_stop(&x->kt));
            x->pending = false;
            tt_start(x, when);
            moved++;
        } else if (x->pending) {
            CHECK(k_timer_stop(&x->kt));
            x->pending = false;
            stopped++;
        } else {
            tt_start(x, when);
            started++;
        }
        heap_check();
        if (op % 64 == 63) /* time passes: the due ones fire */
            tt_run(t, K, heap.now + (int64_t)(rnd() % 20000));
    }
    fprintf(stderr, "kern_timerheap_modify: %lld started, %lld moved, %lld stopped, %lld fired\n",
            (long long)started, (long long)moved, (long long)stopped, (long long)heap.fires);
    CHECK_GT(heap.fires, 0);
    CHECK_GT(moved, 0);
    tt_drain(t, K);
    for (int i = 0; i < K; i++)
        CHECK(!t[i].pending);
    CHECK_EQ(heap.fires + stopped, started);
    heap_end();
    free(t);
}

/* ---- kern_alloc_classes: the size classes and the proc cache ---- */

static struct k_mcache test_cache;
static struct k_mcache *test_cache_self(void)
{
    return &test_cache;
}

void t_kern_alloc_classes(void)
{
    CHECK_OK(k_mem_init(test_cache_self));

    /* The table: multiples of 16 (alignment), above 1 KiB of 128 (the
     * lookup's step), increasing up to K_SMALL_MAX, each step at most
     * 1/8 of the class above it (or 16 bytes, at the bottom). */
    size_t prev = 0;
    for (unsigned c = 0; c < K_NCLASS; c++) {
        size_t size = k_alloc_class_size(c);
        CHECK_GT(size, prev);
        CHECK_EQ(size % 16, 0);
        if (size > 1024)
            CHECK_EQ(size % 128, 0);
        CHECK_LE(size - prev - 1, K_MAX(size / 8, (size_t)15));
        uint32_t b = k_alloc_class_batch(c);
        CHECK(b >= 2 && b <= 32);
        CHECK(b == 2 || b * size <= 32768);       /* about 32 KiB a batch */
        CHECK(b == 32 || (b + 1) * size > 32768); /* and no less */
        prev = size;
    }
    CHECK_EQ(prev, K_SMALL_MAX);
    /* Every size gets the smallest class it fits. */
    for (size_t size = 1; size <= K_SMALL_MAX; size++) {
        unsigned c = k_alloc_class_of(size);
        CHECK_LT(c, K_NCLASS);
        CHECK_GE(k_alloc_class_size(c), size);
        if (c > 0)
            CHECK_LT(k_alloc_class_size(c - 1), size);
    }

    /* Through the allocator, class by class: the first allocation fills
     * the empty cache with a batch carved from a fresh span (which holds
     * at least one batch), so the batch comes out in address order, one
     * class size apart, whatever size in the class is asked for. Freeing
     * past twice the batch gives all but the batch freed last back. */
    for (unsigned c = 0; c < K_NCLASS; c++) {
        size_t size = k_alloc_class_size(c);
        size_t low = c ? k_alloc_class_size(c - 1) + 1 : 1;
        uint32_t b = k_alloc_class_batch(c);
        uint32_t n = 2 * b + 1;
        char **v = calloc(n, sizeof *v);
        CHECK(v != NULL);
        CHECK(test_cache.free[c] == NULL);
        for (uint32_t i = 0; i < n; i++) {
            v[i] = k_alloc(i % 2 ? low : size);
            CHECK(v[i] != NULL);
            if (i == 0)
                CHECK_EQ(test_cache.count[c], b - 1);
            if (i > 0 && i < b)
                CHECK(v[i] == v[i - 1] + size);
        }
        /* The third batch's first object is v[n - 1]: b - 1 stay in the
         * cache. Each free adds one; past 2b the list drops to b. */
        CHECK_EQ(test_cache.count[c], b - 1);
        uint32_t count = b - 1, give_backs = 0;
        for (uint32_t i = 0; i < n; i++) {
            k_free(v[i], i % 2 ? low : size);
            if (++count > 2 * b) {
                count = b;
                give_backs++;
            }
            CHECK_EQ(test_cache.count[c], count);
        }
        CHECK_GT(give_backs, 0);
        CHECK_EQ(test_cache.count[c], count);
        CHECK(test_cache.free[c] == v[n - 1]); /* the warmest stays */
        free(v);
    }
    k_mem_fini();
    CHECK_EQ(k_mem_reserved(), 0);
}

/* ---- kern_stack_cache: a proc's stacks, and the pool behind them ---- */

void t_kern_stack_cache(void)
{
    enum { HALF = K_STACK_CACHE / 2, N = K_STACK_CACHE + 1 };
    CHECK_OK(k_mem_init(NULL));
    k_stack_init(0, 0);
    struct k_stack_cache c, c2;
    memset(&c, 0, sizeof c);
    memset(&c2, 0, sizeof c2);
    struct k_stack s[N];
    uint32_t hot;

    /* An empty cache and pool: every stack is a new one. */
    for (int i = 0; i < N; i++) {
        CHECK_OK(k_stack_alloc(&c, 0, &s[i]));
        CHECK(k_stack_is_default(&s[i]));
        CHECK_EQ(c.n, 0);
    }
    CHECK_EQ(k_stack_pooled(&hot), 0);
    /* Freed stacks stay in the cache until it is full; one more sends the
     * older half to the pool, as they were (hot). */
    for (int i = 0; i < K_STACK_CACHE; i++) {
        k_stack_free(&c, &s[i]);
        CHECK_EQ(c.n, i + 1);
    }
    CHECK_EQ(k_stack_pooled(&hot), 0);
    k_stack_free(&c, &s[N - 1]);
    CHECK_EQ(c.n, K_STACK_CACHE - HALF + 1);
    CHECK_EQ(k_stack_pooled(&hot), HALF);
    CHECK_EQ(hot, HALF);
    for (int i = 0; i < K_STACK_CACHE - HALF; i++)
        CHECK(c.stacks[i].lo == s[HALF + i].lo);
    /* The cache is LIFO: the last freed comes back first. */
    struct k_stack x;
    CHECK_OK(k_stack_alloc(&c, 0, &x));
    CHECK(x.lo == s[N - 1].lo);
    CHECK_OK(k_stack_alloc(&c, 0, &x));
    CHECK(x.lo == s[K_STACK_CACHE - 1].lo);
    k_stack_free(&c, &x);

    /* Another proc's empty cache takes half a cache from the pool, the
     * one pooled last on top. */
    struct k_stack y;
    CHECK_OK(k_stack_alloc(&c2, 0, &y));
    CHECK_EQ(c2.n, HALF - 1);
    CHECK_EQ(k_stack_pooled(&hot), 0);
    CHECK(y.lo == s[0].lo);
    for (int i = 0; i < HALF - 1; i++)
        CHECK(c2.stacks[i].lo == s[HALF - 1 - i].lo);
    k_stack_free(&c2, &y);

    /* A stack of its own size bypasses the caches: its reservation goes
     * with it. */
    uint64_t before = k_mem_reserved();
    struct k_stack own;
    CHECK_OK(k_stack_alloc(&c, 100000, &own));
    CHECK(!k_stack_is_default(&own));
    CHECK_GT(k_mem_reserved(), before);
    uint32_t n = c.n;
    k_stack_free(&c, &own);
    CHECK_EQ(c.n, n);
    CHECK_EQ(k_mem_reserved(), before);

    k_stack_fini();
    k_mem_fini();
    CHECK_EQ(k_mem_reserved(), 0);
}

/* ---- crash_panic_dump: a panic in a run dumps its tasks ---- */

static weft_chan *pd_chan;

static void pd_receiver(void *arg)
{
    (void)arg;
    int v;
    (void)weft_chan_recv(pd_chan, &v); /* blocks: nobody sends */
}

static void pd_main(void *arg)
{
    (void)arg;
    pd_chan = weft_chan_make(sizeof(int), 0);
    CHECK(pd_chan != NULL);
    CHECK_OK(weft_go(pd_receiver, NULL));
    weft_yield(); /* procs 1: the receiver runs and blocks */
    k_panic("planted by crash_panic_dump");
}

void t_crash_panic_dump(void)
{
    t_run(pd_main, NULL, 1);
}
