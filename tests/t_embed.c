/* SPDX-License-Identifier: MIT */
/*
 * t_embed.c — weft in the background of a host: weft_start and weft_stop,
 * and host threads (threads weft did not start) that spawn tasks and use
 * channels while a runtime runs (kern/host.c, docs/embedding.md).
 *
 * The test process's main thread is the host here: it calls weft_start and
 * goes on with its own work, as a game loop or a GUI would.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <windows.h>
/* windows.h first: psapi.h needs its types. */
#include <psapi.h>
#else
#include <sys/resource.h>
#include <unistd.h>
#endif
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "kern/chan.h" /* white box: how many waiters a channel has */
#include "kern/lock.h"
#include "tests/check.h"

/* ---- helpers ---- */

static void host_nap_us(int64_t us)
{
#ifdef _WIN32
    Sleep((DWORD)((us + 999) / 1000));
#else
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
#endif
}

static void start_bg(int procs)
{
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.procs = procs;
    int rc = weft_start(&cfg);
    if (rc != 0)
        fprintf(stderr, "weft_start(procs=%d): %s\n", procs, weft_strerror(rc));
    CHECK_EQ(rc, 0);
}

/* Waiters queued on c's receive (send = 0) or send side, counted under
 * the channel lock (a k_lock works on any thread). */
static int queued(weft_chan *c, int send)
{
    struct weft_chan *k = c;
    int n = 0;
    k_lock(&k->lock);
    struct waitq *q = send ? &k->sendq : &k->recvq;
    for (struct waiter *w = atomic_load_explicit(&q->first, memory_order_relaxed); w; w = w->next)
        n++;
    k_unlock(&k->lock);
    return n;
}

/* Waits (on the host, napping) until c has n waiters on that side. */
static void wait_queued(weft_chan *c, int send, int n)
{
    int64_t deadline = weft_now() + 20000000000LL * t_slack();
    while (queued(c, send) != n) {
        CHECK_LT(weft_now(), deadline);
        host_nap_us(200);
    }
}

/* The process's memory and threads. Linux: resident memory and threads
 * from /proc/self/status, and the address space mapped, summed from
 * /proc/self/maps (under qemu-user that file shows the guest's mappings,
 * while the status lines are qemu's own process). Windows: the working
 * set and private bytes; threads -1. */
struct memfig {
    int64_t rss_kib;
    int64_t vm_kib;
    int64_t threads;
};

static struct memfig mem_now(void)
{
    struct memfig m = {-1, -1, -1};
#ifdef _WIN32
    PROCESS_MEMORY_COUNTERS pmc;
    if (K32GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) {
        m.rss_kib = (int64_t)(pmc.WorkingSetSize / 1024);
        m.vm_kib = (int64_t)(pmc.PagefileUsage / 1024);
    }
#else
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "VmRSS: %lld kB", &v) == 1)
                m.rss_kib = v;
            else if (sscanf(line, "Threads: %lld", &v) == 1)
                m.threads = v;
        }
        fclose(f);
    }
    f = fopen("/proc/self/maps", "r");
    if (f) {
        char line[512];
        unsigned long long lo, hi, sum = 0;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "%llx-%llx", &lo, &hi) == 2)
                sum += hi - lo;
        fclose(f);
        m.vm_kib = (int64_t)(sum / 1024);
    }
#endif
    return m;
}

/* ---- embed_spawn: a host spawns 100k tasks over time and collects ----
 *
 * The runtime runs in the background; the host thread spawns in batches,
 * between them takes what is ready with non-blocking receives and naps,
 * and at the end waits for the rest with blocking receives (tasks blocked
 * sending on the full channel are woken by the host's receives). */

#define SPAWN_BATCH 500
#define SPAWN_LIVE 2000
#define SPAWN_MOD 1000003

static weft_chan *spawn_results;

static int64_t spawn_f(int64_t i)
{
    return (i * i + 7) % SPAWN_MOD;
}

static void spawn_task(void *arg)
{
    int64_t i = (int64_t)(intptr_t)arg;
    if (i % 7 == 0)
        weft_yield();
    if (i % 5000 == 0)
        CHECK_OK(weft_sleep(20000));
    int64_t r[2] = {i, spawn_f(i)};
    CHECK_OK(weft_chan_send(spawn_results, r));
}

/* The last one: makes the host's final receive wait for sure. */
static void spawn_late_task(void *arg)
{
    int64_t i = (int64_t)(intptr_t)arg;
    CHECK_OK(weft_sleep(20000000));
    int64_t r[2] = {i, spawn_f(i)};
    CHECK_OK(weft_chan_send(spawn_results, r));
}

struct spawn_seen {
    char *seen;
    int64_t n, got;
};

static void spawn_record(struct spawn_seen *s, const int64_t r[2])
{
    CHECK(r[0] >= 0 && r[0] < s->n);
    CHECK_EQ(s->seen[r[0]], 0);
    s->seen[r[0]] = 1;
    CHECK_EQ(r[1], spawn_f(r[0]));
    s->got++;
}

void t_embed_spawn(void)
{
    int64_t n = t_count(100000);
    start_bg(4);
    spawn_results = weft_chan_make(2 * sizeof(int64_t), 64);
    CHECK(spawn_results != NULL);
    struct spawn_seen s = {calloc((size_t)n + 1, 1), n + 1, 0};
    CHECK(s.seen != NULL);
    int64_t nonblocking = 0, blocking = 0, r[2];
    int rc;
    int64_t t0 = weft_now();
    for (int64_t i = 0; i < n;) {
        for (int k = 0; k < SPAWN_BATCH && i < n; k++, i++)
            CHECK_OK(weft_go(spawn_task, (void *)(intptr_t)i));
        while ((rc = weft_chan_try_recv(spawn_results, r)) == 1) {
            spawn_record(&s, r);
            nonblocking++;
        }
        CHECK_EQ(rc, WEFT_EAGAIN);
        /* A host that keeps its backlog bounded: at most SPAWN_LIVE tasks
         * not yet collected (each has a stack while it waits to send). */
        while (i - s.got > SPAWN_LIVE) {
            CHECK_EQ(weft_chan_recv(spawn_results, r), 1);
            spawn_record(&s, r);
            blocking++;
        }
        if ((i / SPAWN_BATCH) % 10 == 0)
            host_nap_us(500); /* the host's own work */
    }
    /* Some results by non-blocking receives for sure (a slow machine may
     * have run no task yet at every look above). */
    while (nonblocking == 0) {
        rc = weft_chan_try_recv(spawn_results, r);
        if (rc == 1) {
            spawn_record(&s, r);
            nonblocking++;
        } else {
            CHECK_EQ(rc, WEFT_EAGAIN);
            host_nap_us(1000);
        }
    }
    CHECK_OK(weft_go_stack(spawn_late_task, (void *)(intptr_t)n, 64 * 1024));
    while (s.got < n + 1) {
        CHECK_EQ(weft_chan_recv(spawn_results, r), 1);
        spawn_record(&s, r);
        blocking++;
    }
    CHECK_EQ(weft_chan_try_recv(spawn_results, r), WEFT_EAGAIN);
    for (int64_t i = 0; i <= n; i++)
        CHECK_EQ(s.seen[i], 1);
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    CHECK_GE((int64_t)st.tasks_created, n + 1);
    CHECK_EQ(weft_procs(), 4);
    printf("embed_spawn: %lld tasks in %.1f ms; %lld results by try_recv, %lld by recv\n",
           (long long)(n + 1), (double)(weft_now() - t0) / 1e6, (long long)nonblocking,
           (long long)blocking);
    CHECK_GT(nonblocking, 0);
    CHECK_GT(blocking, 0);
    CHECK_OK(weft_stop());
    /* Afterwards: no runtime. */
    CHECK_EQ(weft_stop(), WEFT_EINVAL);
    CHECK_EQ(weft_go(spawn_task, NULL), WEFT_ENOTASK);
    CHECK(weft_chan_make(8, 1) == NULL);
    CHECK_EQ(weft_procs(), 0);
    free(s.seen);
}

/* ---- embed_hosts_send: four host threads into one unbuffered channel ----
 *
 * Four host threads send 50k values each into an unbuffered channel read
 * by one task: the sum matches, and each sender's values arrive in its
 * order. Then a close from a host wakes every waiter: tasks and host
 * threads blocked in receives, selects and sends. */

#define NHOSTS 4

static struct {
    weft_chan *c, *res;
    int64_t per;
} hs;

static void hs_reader(void *arg)
{
    (void)arg;
    int64_t total = NHOSTS * hs.per, sum = 0, v;
    int64_t last[NHOSTS] = {0};
    for (int64_t k = 0; k < total; k++) {
        CHECK_EQ(weft_chan_recv(hs.c, &v), 1);
        int from = (int)((v - 1) % NHOSTS);
        CHECK_GT(v, last[from]); /* each sender's values in its order */
        last[from] = v;
        sum += v;
    }
    int64_t out[2] = {sum, total};
    CHECK_OK(weft_chan_send(hs.res, out));
}

static void *hs_sender(void *arg)
{
    int64_t k = (int64_t)(intptr_t)arg;
    for (int64_t i = 0; i < hs.per; i++) {
        int64_t v = i * NHOSTS + k + 1;
        CHECK_OK(weft_chan_send(hs.c, &v));
    }
    return NULL;
}

/* Close wake-ups. d: receivers; e: senders. Every waiter reports. */
static struct {
    weft_chan *d, *e, *never, *reports;
} cw;

struct cw_report {
    int kind; /* 0 recv, 1 select, 2 send */
    int rc;
    int64_t v;
};

static void cw_task_recv(void *arg)
{
    (void)arg;
    struct cw_report r = {0, 0, 99};
    r.rc = weft_chan_recv(cw.d, &r.v);
    CHECK_OK(weft_chan_send(cw.reports, &r));
}

static void cw_task_select(void *arg)
{
    (void)arg;
    int64_t v = 99, w = 0;
    weft_case cs[2] = {{cw.never, WEFT_RECV, &w, 0}, {cw.d, WEFT_RECV, &v, 0}};
    struct cw_report r = {1, weft_select(cs, 2, 0), v};
    if (r.rc == 1)
        r.rc = cs[1].ok;
    else
        r.rc = 100 + r.rc; /* the wrong case */
    CHECK_OK(weft_chan_send(cw.reports, &r));
}

static void cw_task_send(void *arg)
{
    (void)arg;
    int64_t v = 5;
    struct cw_report r = {2, weft_chan_send(cw.e, &v), 0};
    CHECK_OK(weft_chan_send(cw.reports, &r));
}

static void *cw_host(void *arg)
{
    struct cw_report *r = arg;
    r->v = 99;
    if (r->kind == 0) {
        r->rc = weft_chan_recv(cw.d, &r->v);
    } else if (r->kind == 1) {
        int64_t w = 0;
        weft_case cs[2] = {{cw.d, WEFT_RECV, &r->v, 0}, {cw.never, WEFT_RECV, &w, 0}};
        r->rc = weft_select(cs, 2, 0);
        r->rc = r->rc == 0 ? cs[0].ok : 100 + r->rc;
    } else {
        int64_t v = 6;
        r->rc = weft_chan_send(cw.e, &v);
    }
    return NULL;
}

static void check_report(const struct cw_report *r)
{
    if (r->kind == 2) {
        CHECK_EQ(r->rc, WEFT_ECLOSED);
    } else {
        CHECK_EQ(r->rc, 0); /* closed: receive 0 / case ok 0 */
        CHECK_EQ(r->v, 0);  /* and the element zeroed */
    }
}

void t_embed_hosts_send(void)
{
    hs.per = t_count(50000);
    start_bg(2);
    hs.c = weft_chan_make(sizeof(int64_t), 0);
    hs.res = weft_chan_make(2 * sizeof(int64_t), 0);
    CHECK(hs.c && hs.res);
    CHECK_OK(weft_go(hs_reader, NULL));
    pthread_t th[NHOSTS];
    for (int k = 0; k < NHOSTS; k++)
        CHECK_EQ(pthread_create(&th[k], NULL, hs_sender, (void *)(intptr_t)k), 0);
    int64_t out[2];
    CHECK_EQ(weft_chan_recv(hs.res, out), 1); /* the main thread blocks meanwhile */
    for (int k = 0; k < NHOSTS; k++)
        CHECK_EQ(pthread_join(th[k], NULL), 0);
    int64_t total = NHOSTS * hs.per;
    CHECK_EQ(out[1], total);
    CHECK_EQ(out[0], total * (total + 1) / 2);
    printf("embed_hosts_send: %d hosts x %lld values, sum %lld\n", NHOSTS, (long long)hs.per,
           (long long)out[0]);

    /* Close from a host wakes every waiter. */
    cw.d = weft_chan_make(sizeof(int64_t), 0);
    cw.e = weft_chan_make(sizeof(int64_t), 0);
    cw.never = weft_chan_make(sizeof(int64_t), 0);
    cw.reports = weft_chan_make(sizeof(struct cw_report), 16);
    CHECK(cw.d && cw.e && cw.never && cw.reports);
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_go(cw_task_recv, NULL));
    for (int i = 0; i < 2; i++)
        CHECK_OK(weft_go(cw_task_select, NULL));
    for (int i = 0; i < 2; i++)
        CHECK_OK(weft_go(cw_task_send, NULL));
    struct cw_report hr[4] = {{0, 12345, 0}, {0, 12345, 0}, {1, 12345, 0}, {2, 12345, 0}};
    pthread_t hth[4];
    for (int i = 0; i < 4; i++)
        CHECK_EQ(pthread_create(&hth[i], NULL, cw_host, &hr[i]), 0);
    wait_queued(cw.d, 0, 3 + 2 + 2 + 1);
    wait_queued(cw.e, 1, 2 + 1);
    CHECK_OK(weft_chan_close(cw.e));
    CHECK_OK(weft_chan_close(cw.d));
    CHECK_EQ(weft_chan_close(cw.d), WEFT_ECLOSED);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(pthread_join(hth[i], NULL), 0);
        check_report(&hr[i]);
    }
    int kinds[3] = {0, 0, 0};
    for (int i = 0; i < 7; i++) {
        struct cw_report r;
        CHECK_EQ(weft_chan_recv(cw.reports, &r), 1);
        check_report(&r);
        kinds[r.kind]++;
    }
    CHECK_EQ(kinds[0], 3);
    CHECK_EQ(kinds[1], 2);
    CHECK_EQ(kinds[2], 2);
    CHECK_EQ(queued(cw.d, 0) + queued(cw.e, 1), 0);
    CHECK_OK(weft_stop());
}

/* ---- embed_start_stop: 200 cycles with tasks blocked at each stop ----
 *
 * Each cycle starts a runtime, leaves tasks blocked in a receive, a
 * select, a mutex, a sleep, plus a pending timer and a host thread
 * blocked in a receive, and stops it. Memory after cycle 200 must be
 * within a few MiB of cycle 20, and (Linux) no thread may be left. */

#define SS_CYCLES 200
#define SS_TASKS 20

static struct {
    weft_chan *c;
    weft_mutex m;
    _Atomic int blocked;
    int first_cycle;
} ss;

static void ss_recv(void *arg)
{
    (void)arg;
    int64_t v;
    atomic_fetch_add(&ss.blocked, 1);
    weft_chan_recv(ss.c, &v);
    CHECK(0); /* nobody sends: it must be discarded while blocked */
}

static void ss_select(void *arg)
{
    (void)arg;
    int64_t v, w;
    /* Two receive cases on the same channel: a select of two waiters. */
    weft_case cs[2] = {{ss.c, WEFT_RECV, &v, 0}, {ss.c, WEFT_RECV, &w, 0}};
    atomic_fetch_add(&ss.blocked, 1);
    (void)weft_select(cs, 2, 0);
    CHECK(0);
}

static void ss_mutex(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ss.blocked, 1);
    weft_mutex_lock(&ss.m); /* the host holds it */
    CHECK(0);
}

static void ss_sleep(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ss.blocked, 1);
    weft_sleep(3600LL * 1000000000);
    CHECK(0);
}

/* Calls that a task may not make. */
static void ss_task_calls(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_stop(), WEFT_EDEADLK);
    CHECK_EQ(weft_start(NULL), WEFT_EBUSY);
    CHECK_EQ(weft_run(ss_recv, NULL, NULL), WEFT_EBUSY);
    atomic_fetch_add(&ss.blocked, 1);
}

static void *ss_host(void *arg)
{
    int *rc = arg;
    int64_t v = 77;
    *rc = weft_chan_recv(ss.c, &v);
    CHECK_EQ(v, 77); /* not received into */
    return NULL;
}

static void ss_noop(void *arg)
{
    (void)arg;
}

void t_embed_start_stop(void)
{
#ifdef __GLIBC__
    /* One malloc arena: glibc reserves 64 MiB of address space for each
     * new arena whenever threads contend in malloc, which would be noise
     * in the figures that measure weft. */
    mallopt(M_ARENA_MAX, 1);
#endif
    struct memfig before = mem_now(), at20 = {0, 0, 0}, at200 = {0, 0, 0};
    CHECK_EQ(weft_stop(), WEFT_EINVAL); /* nothing started */
    for (int cycle = 0; cycle < SS_CYCLES; cycle++) {
        start_bg(1 + cycle % 4);
        memset(&ss.m, 0, sizeof ss.m);
        atomic_store(&ss.blocked, 0);
        ss.c = weft_chan_make(sizeof(int64_t), 0);
        CHECK(ss.c != NULL);
        int want = 0;
        if (cycle == 0) {
            CHECK_EQ(weft_start(NULL), WEFT_EBUSY);
            CHECK_EQ(weft_run(ss_noop, NULL, NULL), WEFT_EBUSY);
            CHECK_OK(weft_go(ss_task_calls, NULL));
            want++;
        }
        CHECK_OK(weft_mutex_trylock(&ss.m));
        for (int i = 0; i < SS_TASKS; i++) {
            static void (*const fns[4])(void *) = {ss_select, ss_mutex, ss_sleep, ss_recv};
            void (*fn)(void *) = fns[i % 4];
            CHECK_OK(weft_go(fn, NULL));
            want++;
        }
        weft_timer *tm = weft_timer_new(3600LL * 1000000000, 0);
        CHECK(tm != NULL);
        int host_rc = 12345;
        pthread_t th;
        CHECK_EQ(pthread_create(&th, NULL, ss_host, &host_rc), 0);
        int64_t deadline = weft_now() + 20000000000LL * t_slack();
        while (atomic_load(&ss.blocked) != want) {
            CHECK_LT(weft_now(), deadline);
            host_nap_us(100);
        }
        if (cycle % 2 == 0)
            wait_queued(ss.c, 0, 1 + SS_TASKS / 4 * 3); /* the host, selects (2 each), receivers */
        CHECK_OK(weft_stop());
        CHECK_EQ(pthread_join(th, NULL), 0);
        /* The host was blocked (or about to block) when the run stopped. */
        CHECK_EQ(host_rc, WEFT_ENOTASK);
        if (getenv("EMBED_DEBUG") && cycle % 10 == 9) {
            struct memfig m = mem_now();
            printf("cycle %d mapped %lld rss %lld\n", cycle + 1, (long long)m.vm_kib,
                   (long long)m.rss_kib);
        }
        if (cycle == 19)
            at20 = mem_now();
        if (cycle == SS_CYCLES - 1)
            at200 = mem_now();
    }
    printf("embed_start_stop: before: rss %lld KiB, mapped %lld KiB, threads %lld\n",
           (long long)before.rss_kib, (long long)before.vm_kib, (long long)before.threads);
    printf("embed_start_stop: after cycle 20: rss %lld KiB, mapped %lld KiB, threads %lld\n",
           (long long)at20.rss_kib, (long long)at20.vm_kib, (long long)at20.threads);
    printf("embed_start_stop: after cycle %d: rss %lld KiB, mapped %lld KiB, threads %lld\n",
           SS_CYCLES, (long long)at200.rss_kib, (long long)at200.vm_kib, (long long)at200.threads);
#ifdef WEFT_SAN_TSAN
    /* TSan's runtime maps memory of its own (per fiber, per thread) at
     * any time: the cycles ran, the figures say nothing about weft. */
    return;
#endif
    CHECK_GT(at20.rss_kib, 0);
    CHECK_GT(at20.vm_kib, 0);
    /* A few MiB: what a run leaks per cycle would show 180 times over. The
     * address space is the program's own everywhere. Resident memory and
     * threads only natively: qemu-user's own process keeps about 240 KiB
     * per guest thread ever created (a plain pthread_create/join loop
     * shows it), and its thread count lags the guest's joins. */
    CHECK_LT(at200.vm_kib - at20.vm_kib, 4096);
#ifndef WEFT_SAN_ASAN /* ASan's quarantine keeps freed malloc blocks resident */
    if (t_slack() == 1) {
        CHECK_LT(at200.rss_kib - at20.rss_kib, 4096);
        if (before.threads > 0) {
            CHECK_EQ(at20.threads, before.threads);
            CHECK_EQ(at200.threads, before.threads);
        }
    }
#endif
}

/* ---- embed_stop_race: host calls racing weft_stop ----
 *
 * Host threads send, select, try to send and spawn in loops while the
 * host's main thread stops the runtime at a random moment: every one of
 * them ends with WEFT_ENOTASK (the documented code), none crashes or
 * hangs, and no send reports success without the reader having taken its
 * value (the reader, discarded at the stop, may hold one it had no time
 * to count). */

#define SR_HOSTS 5

static struct {
    weft_chan *c, *never;
    _Atomic int64_t received;
    _Atomic int64_t sent;
    _Atomic int stop_rc[2];
} sr;

static void sr_reader(void *arg)
{
    (void)arg;
    int64_t v;
    for (;;) {
        if (weft_chan_recv(sr.c, &v) != 1)
            return;
        atomic_fetch_add(&sr.received, 1);
        if (v % 16 == 0)
            weft_yield();
    }
}

static void sr_noop(void *arg)
{
    (void)arg;
    weft_yield();
}

static void *sr_host(void *arg)
{
    int mode = (int)(intptr_t)arg;
    int64_t v = mode, n = 0;
    int rc;
    for (;;) {
        v++;
        if (mode == 0) {
            rc = weft_chan_send(sr.c, &v);
        } else if (mode == 1) {
            weft_case cs[2] = {{sr.never, WEFT_RECV, NULL, 0}, {sr.c, WEFT_SEND, &v, 0}};
            rc = weft_select(cs, 2, 0);
            CHECK_NE(rc, 0); /* never is never ready */
            if (rc == 1) {
                CHECK_EQ(cs[1].ok, 0);
                rc = 0;
            }
        } else if (mode == 2) {
            rc = weft_chan_try_send(sr.c, &v);
            if (rc == WEFT_EAGAIN)
                continue;
        } else if (mode == 3) {
            rc = weft_go(sr_noop, NULL);
            if (rc == 0)
                continue; /* not a send */
        } else {
            rc = weft_chan_recv(sr.never, NULL); /* blocked until the stop */
            CHECK_EQ(rc, WEFT_ENOTASK);
            break;
        }
        if (rc != 0)
            break;
        n++;
    }
    CHECK_EQ(rc, WEFT_ENOTASK);
    atomic_fetch_add(&sr.sent, n);
    return NULL;
}

static void *sr_stopper(void *arg)
{
    (void)arg;
    atomic_store(&sr.stop_rc[1], weft_stop());
    return NULL;
}

void t_embed_stop_race(void)
{
    int rounds = (int)t_count(60);
    uint64_t seed = (uint64_t)weft_now();
    int64_t total_sent = 0;
    for (int round = 0; round < rounds; round++) {
        start_bg(1 + round % 3);
        sr.c = weft_chan_make(sizeof(int64_t), 0);
        sr.never = weft_chan_make(0, 0);
        CHECK(sr.c && sr.never);
        atomic_store(&sr.received, 0);
        atomic_store(&sr.sent, 0);
        CHECK_OK(weft_go(sr_reader, NULL));
        pthread_t th[SR_HOSTS], stopper;
        for (int k = 0; k < SR_HOSTS; k++)
            CHECK_EQ(pthread_create(&th[k], NULL, sr_host, (void *)(intptr_t)k), 0);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        host_nap_us((int64_t)((seed >> 33) % 3000));
        bool two = round % 4 == 3; /* two weft_stop calls race too */
        if (two)
            CHECK_EQ(pthread_create(&stopper, NULL, sr_stopper, NULL), 0);
        atomic_store(&sr.stop_rc[0], weft_stop());
        if (two) {
            CHECK_EQ(pthread_join(stopper, NULL), 0);
            int a = atomic_load(&sr.stop_rc[0]), b = atomic_load(&sr.stop_rc[1]);
            CHECK((a == 0 && b == WEFT_EINVAL) || (a == WEFT_EINVAL && b == 0));
        } else {
            CHECK_EQ(atomic_load(&sr.stop_rc[0]), 0);
        }
        for (int k = 0; k < SR_HOSTS; k++)
            CHECK_EQ(pthread_join(th[k], NULL), 0);
        int64_t sent = atomic_load(&sr.sent), received = atomic_load(&sr.received);
        CHECK_LE(received, sent);
        CHECK_LE(sent - received, 1);
        total_sent += sent;
    }
    printf("embed_stop_race: %d rounds, %lld values handed over before the stops\n", rounds,
           (long long)total_sent);
    CHECK_GT(total_sent, 0);
}

/* ---- embed_run_hosts: host threads beside weft_run; no false deadlock ----
 *
 * weft_run's first task waits for a host thread that itself waits for
 * another host thread: every task is blocked for a while, yet no deadlock
 * is reported (hosts may act). A runtime started by weft_start never
 * reports one either. weft_stop and weft_start from a host during
 * weft_run: WEFT_EBUSY. */

static struct {
    weft_chan *c, *d;
    pthread_t h1, h2;
} rh;

static void *rh_h1(void *arg)
{
    (void)arg;
    int64_t v = 0;
    CHECK_EQ(weft_chan_recv(rh.d, &v), 1); /* blocks until h2 sends */
    v++;
    CHECK_OK(weft_chan_send(rh.c, &v));
    return NULL;
}

static void *rh_h2(void *arg)
{
    (void)arg;
    CHECK_EQ(weft_stop(), WEFT_EBUSY);
    CHECK_EQ(weft_start(NULL), WEFT_EBUSY);
    host_nap_us(100000); /* every task and h1 blocked meanwhile */
    int64_t v = 41;
    CHECK_OK(weft_chan_send(rh.d, &v));
    return NULL;
}

static void rh_main(void *arg)
{
    (void)arg;
    rh.c = weft_chan_make(sizeof(int64_t), 0);
    rh.d = weft_chan_make(sizeof(int64_t), 0);
    CHECK(rh.c && rh.d);
    CHECK_EQ(pthread_create(&rh.h1, NULL, rh_h1, NULL), 0);
    /* h1 is in its receive (inside weft) before the task blocks: */
    while (queued(rh.d, 0) != 1)
        weft_yield();
    CHECK_EQ(pthread_create(&rh.h2, NULL, rh_h2, NULL), 0);
    int64_t v = 0;
    CHECK_EQ(weft_chan_recv(rh.c, &v), 1);
    CHECK_EQ(v, 42);
}

static void rh_bg_task(void *arg)
{
    weft_chan **ch = arg;
    int64_t v;
    CHECK_EQ(weft_chan_recv(ch[0], &v), 1);
    v *= 2;
    CHECK_OK(weft_chan_send(ch[1], &v));
}

void t_embed_run_hosts(void)
{
    t_run(rh_main, NULL, 2);
    CHECK_EQ(pthread_join(rh.h1, NULL), 0);
    CHECK_EQ(pthread_join(rh.h2, NULL), 0);

    start_bg(2);
    weft_chan *ch[2] = {weft_chan_make(sizeof(int64_t), 0), weft_chan_make(sizeof(int64_t), 0)};
    CHECK(ch[0] && ch[1]);
    CHECK_OK(weft_go(rh_bg_task, ch));
    host_nap_us(100000); /* the task is blocked, every worker idle */
    int64_t v = 21;
    CHECK_OK(weft_chan_send(ch[0], &v));
    CHECK_EQ(weft_chan_recv(ch[1], &v), 1);
    CHECK_EQ(v, 42);
    CHECK_OK(weft_stop());
}

/* ---- embed_timers: the timers from a host thread ---- */

void t_embed_timers(void)
{
    start_bg(2);
    int64_t t0 = weft_now();
    weft_timer *once = weft_timer_new(20000000, 0);
    weft_timer *tick = weft_timer_new(5000000, 5000000);
    weft_timer *stopped = weft_timer_new(3600LL * 1000000000, 0);
    CHECK(once && tick && stopped);
    CHECK_EQ(weft_timer_stop(stopped), 1);
    int64_t when = 0;
    CHECK_EQ(weft_chan_recv(weft_timer_chan(once), &when), 1); /* parks the host */
    CHECK_GE(when - t0, 20000000);
    CHECK_GE(weft_now() - t0, 20000000);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_recv(weft_timer_chan(tick), &when), 1);
    CHECK_EQ(weft_timer_stop(tick), 1);
    CHECK_EQ(weft_timer_reset(once, 1000000, 0), 0); /* it had fired */
    weft_case cs[2] = {{weft_timer_chan(stopped), WEFT_RECV, &when, 0},
                       {weft_timer_chan(once), WEFT_RECV, &when, 0}};
    CHECK_EQ(weft_select(cs, 2, 0), 1);
    CHECK_EQ(weft_chan_try_recv(weft_timer_chan(stopped), &when), WEFT_EAGAIN);
    weft_timer_free(once);
    weft_timer_free(tick);
    weft_timer_free(stopped);
    CHECK_OK(weft_stop());
}

/* ---- embed_select_fair: a host's select picks uniformly ----
 *
 * Two channels always ready: the host's blocking select must pick each
 * about half the time (Go's uniform choice among ready cases), as a
 * task's does; a task's select over channels that host threads feed, the
 * same. */

#define SF_N 4000

static void sf_task(void *arg)
{
    weft_chan **ch = arg; /* a, b, counts out */
    int64_t v, counts[2] = {0, 0};
    for (int i = 0; i < SF_N; i++) {
        weft_case cs[2] = {{ch[0], WEFT_RECV, &v, 0}, {ch[1], WEFT_RECV, &v, 0}};
        int r = weft_select(cs, 2, 0);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(cs[r].ok, 1);
        CHECK_EQ(v, r + 1);
        counts[r]++;
    }
    CHECK_OK(weft_chan_send(ch[2], counts));
}

static void *sf_feeder(void *arg)
{
    weft_chan **ch = arg;
    int64_t v;
    for (;;) {
        /* Keep one value buffered in each: both cases stay ready. */
        for (int k = 0; k < 2; k++) {
            v = k + 1;
            int rc = weft_chan_try_send(ch[k], &v);
            if (rc == WEFT_ECLOSED)
                return NULL;
            CHECK(rc == 0 || rc == WEFT_EAGAIN);
        }
    }
}

static void sf_check(const int64_t counts[2], const char *who)
{
    printf("embed_select_fair: %s picked %lld / %lld\n", who, (long long)counts[0],
           (long long)counts[1]);
    CHECK_EQ(counts[0] + counts[1], SF_N);
    /* Binomial(4000, 1/2): sd 32; 40%..60% is six sd away. */
    CHECK_GT(counts[0], SF_N * 2 / 5);
    CHECK_GT(counts[1], SF_N * 2 / 5);
}

void t_embed_select_fair(void)
{
    start_bg(2);
    weft_chan *a = weft_chan_make(sizeof(int64_t), 1), *b = weft_chan_make(sizeof(int64_t), 1);
    CHECK(a && b);
    int64_t counts[2] = {0, 0}, v = 1;
    for (int i = 0; i < SF_N; i++) {
        v = 1;
        CHECK(weft_chan_try_send(a, &v) == 0 || weft_chan_len(a) == 1);
        v = 2;
        CHECK(weft_chan_try_send(b, &v) == 0 || weft_chan_len(b) == 1);
        weft_case cs[2] = {{a, WEFT_RECV, &v, 0}, {b, WEFT_RECV, &v, 0}};
        int r = weft_select(cs, 2, 0);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(v, r + 1);
        counts[r]++;
    }
    sf_check(counts, "a host's select");

    /* A task selects over channels a host thread keeps full. */
    weft_chan *ch[3] = {a, b, weft_chan_make(2 * sizeof(int64_t), 1)};
    CHECK(ch[2] != NULL);
    int64_t drop;
    while (weft_chan_try_recv(a, &drop) == 1 || weft_chan_try_recv(b, &drop) == 1)
        ;
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, sf_feeder, ch), 0);
    CHECK_OK(weft_go(sf_task, ch));
    CHECK_EQ(weft_chan_recv(ch[2], counts), 1);
    CHECK_OK(weft_chan_close(a));
    CHECK_OK(weft_chan_close(b));
    CHECK_EQ(pthread_join(th, NULL), 0);
    sf_check(counts, "a task's select, fed by a host,");
    CHECK_OK(weft_stop());
}

/* ---- embed_idle_cpu: an idle background runtime uses no CPU ----
 *
 * With no task runnable (one blocked on a channel, one asleep for an
 * hour) the workers and the monitor park, and nothing reports a deadlock:
 * the process's CPU time stays well below the wall time while the host
 * naps. Then a host send still reaches the blocked task. */

#ifdef _WIN32
static int64_t cpu_ns(void)
{
    FILETIME c, e, k, u;
    GetProcessTimes(GetCurrentProcess(), &c, &e, &k, &u);
    uint64_t t = ((uint64_t)k.dwHighDateTime << 32 | k.dwLowDateTime) +
                 ((uint64_t)u.dwHighDateTime << 32 | u.dwLowDateTime);
    return (int64_t)t * 100;
}
#else
static int64_t cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}
#endif

static void ic_sleeper(void *arg)
{
    (void)arg;
    weft_sleep(3600LL * 1000000000);
}

void t_embed_idle_cpu(void)
{
    start_bg(4);
    weft_chan *ch[2] = {weft_chan_make(sizeof(int64_t), 0), weft_chan_make(sizeof(int64_t), 0)};
    CHECK(ch[0] && ch[1]);
    CHECK_OK(weft_go(rh_bg_task, ch));
    CHECK_OK(weft_go(ic_sleeper, NULL));
    wait_queued(ch[0], 0, 1);
    /* Settle: the sleeper's timer pending, every proc idle, nobody
     * spinning (on a loaded emulator, starting the workers alone can take
     * tens of milliseconds of CPU). */
    int64_t deadline = weft_now() + 20000000000LL * t_slack();
    for (;;) {
        struct weft_stats st;
        CHECK_OK(weft_stats(&st));
        if (st.timers == 1 && st.idle_procs == st.procs && st.spinning_threads == 0)
            break;
        CHECK_LT(weft_now(), deadline);
        host_nap_us(1000);
    }
    host_nap_us(20000);
    int64_t c0 = cpu_ns(), w0 = weft_now();
    host_nap_us(300000);
    int64_t used = cpu_ns() - c0, wall = weft_now() - w0;
    printf("embed_idle_cpu: cpu %.2f ms over %.1f ms\n", used / 1e6, wall / 1e6);
    CHECK_LT(used * 10, wall);
    int64_t v = 4;
    CHECK_OK(weft_chan_send(ch[0], &v));
    CHECK_EQ(weft_chan_recv(ch[1], &v), 1);
    CHECK_EQ(v, 8);
    CHECK_OK(weft_stop());
}

/* ---- embed_plugin: dlopen a plugin with weft inside, run, stop, dlclose ----
 *
 * tests/plugin/plugin.c, built as weft-plugin.so beside weft-test with its
 * own copy of weft, is loaded, runs a pipeline (weft_start ... weft_stop),
 * and is unloaded, 20 times. After each dlclose: the object is no longer
 * mapped (/proc/self/maps), no thread is left (/proc/self/task), and the
 * SIGURG, SIGSEGV and SIGBUS dispositions are the host's again; from
 * cycle 10 on the host has a SIGURG handler of its own, which weft leaves
 * alone and which is still there after the unload.
 *
 * On Windows the plugin is weft-plugin.dll, loaded with LoadLibrary and
 * unloaded with FreeLibrary. After each unload: the module is gone, no
 * thread is left (a Toolhelp snapshot), the TLS slots it took are free
 * again, and its vectored exception handler is gone (an exception raised
 * then, which a handler of the test's answers, would otherwise run the
 * unloaded handler first and crash); the private memory committed after
 * the last cycle is within 4 MiB of the first's; and the process still
 * exits cleanly (msvcrt's exit table holds weft's exit handler stub, which
 * must not jump into the unloaded DLL: pytest sees the exit code). */

#ifdef _WIN32
#include <tlhelp32.h>

static int threads_now(void)
{
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    CHECK(snap != INVALID_HANDLE_VALUE);
    THREADENTRY32 te = {.dwSize = sizeof te};
    int n = 0;
    DWORD pid = GetCurrentProcessId();
    for (BOOL ok = Thread32First(snap, &te); ok; ok = Thread32Next(snap, &te))
        n += te.th32OwnerProcessID == pid;
    CloseHandle(snap);
    return n;
}

/* TLS slots free now (taken one by one, then given back). */
static int tls_free_slots(void)
{
    static DWORD got[2048];
    int n = 0;
    while (n < 2048 && (got[n] = TlsAlloc()) != TLS_OUT_OF_INDEXES)
        n++;
    for (int i = 0; i < n; i++)
        TlsFree(got[i]);
    return n;
}

/* Private memory committed in the process, in bytes. */
static int64_t committed(void)
{
    int64_t sum = 0;
    MEMORY_BASIC_INFORMATION mbi;
    for (char *p = NULL; VirtualQuery(p, &mbi, sizeof mbi) == sizeof mbi;
         p = (char *)mbi.BaseAddress + mbi.RegionSize)
        if (mbi.State == MEM_COMMIT && mbi.Type == MEM_PRIVATE)
            sum += (int64_t)mbi.RegionSize;
    return sum;
}

static _Atomic int test_exceptions;

static LONG CALLBACK test_handler(EXCEPTION_POINTERS *ep)
{
    if (ep->ExceptionRecord->ExceptionCode != 0xE0577E57u)
        return EXCEPTION_CONTINUE_SEARCH;
    atomic_fetch_add(&test_exceptions, 1);
    return EXCEPTION_CONTINUE_EXECUTION;
}

void t_embed_plugin(void)
{
    wchar_t path[MAX_PATH + 32];
    DWORD len = GetModuleFileNameW(NULL, path, MAX_PATH);
    CHECK(len > 0 && len < MAX_PATH);
    wchar_t *slash = wcsrchr(path, L'\\');
    CHECK(slash != NULL);
    wcscpy(slash + 1, L"weft-plugin.dll");
    /* Last in line: a handler the plugin left behind would run first. */
    void *mine = AddVectoredExceptionHandler(0, test_handler);
    CHECK(mine != NULL);
    int threads0 = threads_now(), slots0 = tls_free_slots();
    int64_t n = t_count(2000), want = 0, mem1 = 0;
    for (int64_t i = 0; i < n; i++)
        want += i * i + 1;
    for (int cycle = 0; cycle < 20; cycle++) {
        HMODULE h = LoadLibraryW(path);
        if (!h)
            fprintf(stderr, "LoadLibrary: error %lu\n", GetLastError());
        CHECK(h != NULL);
        int (*run)(int64_t, int64_t *) =
            (int (*)(int64_t, int64_t *))(void (*)(void))GetProcAddress(h, "plugin_run");
        CHECK(run != NULL);
        int64_t sum = -1;
        CHECK_OK(run(n, &sum));
        CHECK_EQ(sum, want);
        CHECK(tls_free_slots() < slots0); /* taken while loaded: the check below can fail */
        CHECK(FreeLibrary(h));
        CHECK(GetModuleHandleW(L"weft-plugin.dll") == NULL);
        int64_t deadline = weft_now() + 2000000000LL * t_slack();
        while (threads_now() != threads0) {
            if (weft_now() >= deadline)
                fprintf(stderr, "cycle %d: %d threads, %d before the first\n", cycle, threads_now(),
                        threads0);
            CHECK_LT(weft_now(), deadline);
            host_nap_us(1000);
        }
        CHECK_EQ(tls_free_slots(), slots0);
        int before = atomic_load(&test_exceptions);
        RaiseException(0xE0577E57u, 0, 0, NULL);
        CHECK_EQ(atomic_load(&test_exceptions), before + 1);
        if (cycle == 0)
            mem1 = committed();
    }
    int64_t mem20 = committed();
    RemoveVectoredExceptionHandler(mine);
    printf("embed_plugin: 20 cycles of LoadLibrary, %lld values through the pipeline, "
           "weft_stop, FreeLibrary; %d threads, %d TLS slots free, committed private memory "
           "%.1f MiB after cycle 1 and %.1f MiB after cycle 20\n",
           (long long)n, threads0, slots0, mem1 / 1048576.0, mem20 / 1048576.0);
    CHECK_LT(mem20 - mem1, 4 << 20);
}
#else
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>

static int maps_with(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    CHECK(f != NULL);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void *handler_of(int sig)
{
    struct sigaction sa;
    CHECK_OK(sigaction(sig, NULL, &sa));
    return (sa.sa_flags & SA_SIGINFO) ? (void *)sa.sa_sigaction : (void *)sa.sa_handler;
}

static _Atomic int host_urgs;
static void host_urg(int sig)
{
    (void)sig;
    atomic_fetch_add(&host_urgs, 1);
}

static void *noop_thread(void *arg)
{
    return arg;
}

void t_embed_plugin(void)
{
    char path[4096];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 32);
    CHECK_GT(len, 0);
    path[len] = 0;
    char *slash = strrchr(path, '/');
    CHECK(slash != NULL);
    strcpy(slash + 1, "weft-plugin.so");
    /* ThreadSanitizer's runtime starts a thread of its own (its background
     * thread) at the process's first pthread_create, and keeps it: one
     * thread started and joined here first, so that the count below is
     * the process's own (cycle 0 failed under TSan: 2 threads, 1 before). */
    pthread_t first;
    CHECK_OK(pthread_create(&first, NULL, noop_thread, NULL));
    CHECK_OK(pthread_join(first, NULL));
    int threads0 = threads_now();
    void *urg0 = handler_of(SIGURG), *segv0 = handler_of(SIGSEGV), *bus0 = handler_of(SIGBUS);
    int64_t n = t_count(2000);
    int64_t want = 0;
    for (int64_t i = 0; i < n; i++)
        want += i * i + 1;
    for (int cycle = 0; cycle < 20; cycle++) {
        if (cycle == 10) {
            /* From now on the host handles SIGURG itself. */
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = host_urg;
            sigemptyset(&sa.sa_mask);
            CHECK_OK(sigaction(SIGURG, &sa, NULL));
            urg0 = handler_of(SIGURG);
        }
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            fprintf(stderr, "dlopen: %s\n", dlerror());
        CHECK(h != NULL);
        CHECK_EQ(maps_with("weft-plugin.so") > 0, 1);
        int (*run)(int64_t, int64_t *);
        *(void **)&run = dlsym(h, "plugin_run");
        CHECK(run != NULL);
        int64_t sum = -1;
        CHECK_OK(run(n, &sum));
        CHECK_EQ(sum, want);
        /* Stopped, still loaded: its fault handler is in place, and its
         * SIGURG handler where the host had none (and preemption is
         * asynchronous): so the checks below can fail. */
        CHECK(handler_of(SIGSEGV) != segv0);
        if (cycle < 10 && t_async_preempt())
            CHECK(handler_of(SIGURG) != urg0);
        if (cycle >= 10)
            CHECK(handler_of(SIGURG) == urg0); /* the host's is never taken */
        CHECK_EQ(dlclose(h), 0);
        CHECK_EQ(maps_with("weft-plugin.so"), 0);
        /* Every thread was joined in weft_stop; under qemu-user the OS
         * thread may outlive the guest's join by a moment. */
        int64_t deadline = weft_now() + 2000000000LL * t_slack();
        while (threads_now() != threads0) {
            if (weft_now() >= deadline)
                fprintf(stderr, "cycle %d: %d threads, %d before the first\n", cycle, threads_now(),
                        threads0);
            CHECK_LT(weft_now(), deadline);
            host_nap_us(1000);
        }
        CHECK(handler_of(SIGURG) == urg0);
        CHECK(handler_of(SIGSEGV) == segv0);
        CHECK(handler_of(SIGBUS) == bus0);
    }
    printf("embed_plugin: 20 cycles of dlopen, %lld values through the pipeline, weft_stop, "
           "dlclose; %d threads, no mapping of the plugin, the host's handlers back\n",
           (long long)n, threads0);
}
#endif
