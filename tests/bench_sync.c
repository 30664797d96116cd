/* SPDX-License-Identifier: MIT */
/*
 * bench_sync.c — weft's side of park_memory, mutex and workers, doing the
 * same work as bench/go/core.go and sync.go with the same parameters and
 * checks (docs/benchmarks.md).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* VmRSS of this process in bytes (Linux), or -1. */
static int64_t vm_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int64_t kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNd64 " kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- park_memory: RSS per task blocked on one channel receive ---- */

struct park_ctx {
    int64_t n;
    weft_chan *ch;
    _Atomic int64_t parked, woke;
    weft_waitgroup wg;
    int64_t rss0, rss1;
    int procs;
};

static void park_task(void *arg)
{
    struct park_ctx *c = arg;
    atomic_fetch_add(&c->parked, 1);
    CHECK_EQ(weft_chan_recv(c->ch, NULL), 0); /* closed, never a value */
    atomic_fetch_add(&c->woke, 1);
    CHECK_OK(weft_wg_done(&c->wg));
}

static void park_main(void *arg)
{
    struct park_ctx *c = arg;
    c->procs = weft_procs();
    c->ch = weft_chan_make(0, 0);
    CHECK(c->ch != NULL);
    c->rss0 = vm_rss();
    CHECK_OK(weft_wg_add(&c->wg, c->n));
    for (int64_t i = 0; i < c->n; i++)
        CHECK_OK(weft_go(park_task, c));
    while (atomic_load(&c->parked) < c->n)
        weft_yield();
    for (int i = 0; i < 100; i++) /* the last ones reach the receive */
        weft_yield();
    c->rss1 = vm_rss();
    CHECK_OK(weft_chan_close(c->ch));
    CHECK_OK(weft_wg_wait(&c->wg));
    weft_chan_free(c->ch);
}

/* VmRSS delta while n tasks wait, per task (Go: the same after runtime.GC).
 * check = tasks that woke after the close. */
void b_park_memory(void)
{
    static struct park_ctx c;
    c.n = t_param("n", 100000);
    CHECK_GT(c.n, 0);
    t_run(park_main, &c, (int)t_param("procs", 0));
    CHECK(c.rss0 > 0 && c.rss1 > 0);
    int64_t woke = atomic_load(&c.woke);
    t_bench_emit("park_memory", c.procs, c.n, "bytes_per_task",
                 (double)(c.rss1 - c.rss0) / (double)c.n, "B", "lower", woke, woke == c.n);
}

/* ---- mutex: 4 tasks contending on one lock ---- */

struct mutex_ctx {
    int64_t per;
    int64_t tasks;
    weft_mutex mu;
    int64_t counter; /* protected by mu */
    weft_waitgroup wg;
    int64_t wall_ns;
    int procs;
};

static void mutex_task(void *arg)
{
    struct mutex_ctx *c = arg;
    for (int64_t i = 0; i < c->per; i++) {
        weft_mutex_lock(&c->mu);
        c->counter++;
        weft_mutex_unlock(&c->mu);
    }
    CHECK_OK(weft_wg_done(&c->wg));
}

static void mutex_main(void *arg)
{
    struct mutex_ctx *c = arg;
    c->procs = weft_procs();
    CHECK_OK(weft_wg_add(&c->wg, c->tasks));
    int64_t t0 = weft_now();
    for (int64_t t = 0; t < c->tasks; t++)
        CHECK_OK(weft_go(mutex_task, c));
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
}

/* ns per lock+unlock pair (wall / n); check = the counter. */
void b_mutex(void)
{
    static struct mutex_ctx c;
    int64_t n = t_param("n", 10000000);
    c.tasks = t_param("tasks", 4);
    CHECK_GT(c.tasks, 0);
    c.per = n / c.tasks;
    n = c.per * c.tasks;
    CHECK_GT(n, 0);
    t_run(mutex_main, &c, (int)t_param("procs", 2));
    t_bench_emit("mutex", c.procs, n, "ns_per_op", (double)c.wall_ns / (double)n, "ns", "lower",
                 c.counter, c.counter == n);
}

/* ---- workers: 8 workers draining a pre-filled channel of jobs ---- */

/* One unit of work: 137 rounds of xorshift64 (bench/go/sync.go's job). */
static uint64_t job(uint64_t x)
{
    for (int r = 0; r < 137; r++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

struct worker_sum {
    uint64_t s;
    int64_t c;
    char pad[48];
};

struct workers_ctx {
    int64_t n;
    int64_t workers;
    weft_chan *jobs;
    struct worker_sum *sums;
    weft_waitgroup wg;
    int64_t wall_ns;
    int procs;
};

struct worker_arg {
    struct workers_ctx *c;
    int64_t w;
};

static void worker_task(void *arg)
{
    struct worker_arg *a = arg;
    uint64_t seed, s = 0;
    int64_t count = 0;
    while (weft_chan_recv(a->c->jobs, &seed) == 1) {
        s += job(seed);
        count++;
    }
    a->c->sums[a->w].s = s;
    a->c->sums[a->w].c = count;
    CHECK_OK(weft_wg_done(&a->c->wg));
}

static void workers_main(void *arg)
{
    struct workers_ctx *c = arg;
    c->procs = weft_procs();
    c->jobs = weft_chan_make(sizeof(uint64_t), (size_t)c->n);
    CHECK(c->jobs != NULL);
    for (int64_t i = 1; i <= c->n; i++) {
        uint64_t seed = (uint64_t)i;
        CHECK_OK(weft_chan_send(c->jobs, &seed));
    }
    CHECK_OK(weft_chan_close(c->jobs));
    struct worker_arg *args = calloc((size_t)c->workers, sizeof *args);
    CHECK(args != NULL);
    CHECK_OK(weft_wg_add(&c->wg, c->workers));
    int64_t t0 = weft_now();
    for (int64_t w = 0; w < c->workers; w++) {
        args[w] = (struct worker_arg){c, w};
        CHECK_OK(weft_go(worker_task, &args[w]));
    }
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
    weft_chan_free(c->jobs);
    free(args);
}

/* Jobs per second; check = the sum of every job's result, compared with a
 * sequential run after timing, and every job counted once. */
void b_workers(void)
{
    static struct workers_ctx c;
    c.n = t_param("n", 1000000);
    c.workers = t_param("workers", 8);
    CHECK(c.n > 0 && c.workers > 0);
    c.sums = calloc((size_t)c.workers, sizeof *c.sums);
    CHECK(c.sums != NULL);
    t_run(workers_main, &c, (int)t_param("procs", 0));
    uint64_t got = 0, want = 0;
    int64_t count = 0;
    for (int64_t w = 0; w < c.workers; w++) {
        got += c.sums[w].s;
        count += c.sums[w].c;
    }
    for (int64_t i = 1; i <= c.n; i++)
        want += job((uint64_t)i);
    free(c.sums);
    t_bench_emit("workers", c.procs, c.n, "jobs_per_s", (double)c.n * 1e9 / (double)c.wall_ns,
                 "jobs/s", "higher", (int64_t)got, got == want && count == c.n);
}
