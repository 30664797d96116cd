/* SPDX-License-Identifier: MIT */
/*
 * bench_core.c — weft's side of the task benchmarks: spawn and yield.
 *
 * Each b_NAME does the same work as the Go program's scenario of the same
 * name (bench/go/core.go), checks its own result and prints it with
 * t_bench_emit. scripts/bench.py runs both sides A B A B and prints ratios;
 * docs/benchmarks.md says how to read them and how to add a scenario.
 */
#include <stdatomic.h>

#include "check.h"

/* ---- spawn: n tasks started and finished ---- */

struct spawn_ctx {
    int64_t n;
    _Atomic int64_t ran;
    weft_waitgroup wg;
    int64_t wall_ns;
    int procs;
};

static void spawn_task(void *arg)
{
    struct spawn_ctx *c = arg;
    atomic_fetch_add_explicit(&c->ran, 1, memory_order_relaxed);
    CHECK_OK(weft_wg_done(&c->wg));
}

static void spawn_main(void *arg)
{
    struct spawn_ctx *c = arg;
    c->procs = weft_procs();
    CHECK_OK(weft_wg_add(&c->wg, c->n));
    int64_t t0 = weft_now();
    for (int64_t i = 0; i < c->n; i++)
        CHECK_OK(weft_go(spawn_task, c));
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
}

/* Wall from the first weft_go to the WaitGroup's return, per task (Go: the
 * first `go` to wg.Wait()). check = tasks that ran. */
void b_spawn(void)
{
    static struct spawn_ctx c; /* static: zeroed, off the main stack */
    c.n = t_param("n", 1000000);
    CHECK_GT(c.n, 0);
    t_run(spawn_main, &c, (int)t_param("procs", 0));
    int64_t ran = atomic_load(&c.ran);
    t_bench_emit("spawn", c.procs, c.n, "ns_per_task", (double)c.wall_ns / (double)c.n, "ns",
                 "lower", ran, ran == c.n);
}

/* ---- yield: two tasks switching ---- */

struct yielder {
    struct yield_ctx *ctx;
    int64_t count;
    char pad[48]; /* each counter on its own cache line */
};

struct yield_ctx {
    int64_t n;
    weft_waitgroup wg;
    struct yielder task[2];
    int64_t wall_ns;
    int procs;
};

static void yield_task(void *arg)
{
    struct yielder *y = arg;
    for (int64_t i = 0; i < y->ctx->n; i++) {
        y->count++;
        weft_yield();
    }
    CHECK_OK(weft_wg_done(&y->ctx->wg));
}

static void yield_main(void *arg)
{
    struct yield_ctx *c = arg;
    c->procs = weft_procs();
    CHECK_OK(weft_wg_add(&c->wg, 2));
    int64_t t0 = weft_now();
    for (int i = 0; i < 2; i++) {
        c->task[i].ctx = c;
        CHECK_OK(weft_go(yield_task, &c->task[i]));
    }
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
}

/* Two tasks yielding n times each (default procs 1, as Go was measured):
 * ns per switch = wall / (2n); check = yields counted (2n). */
void b_yield(void)
{
    static struct yield_ctx c;
    c.n = t_param("n", 5000000);
    CHECK_GT(c.n, 0);
    t_run(yield_main, &c, (int)t_param("procs", 1));
    int64_t total = c.task[0].count + c.task[1].count;
    t_bench_emit("yield", c.procs, c.n, "ns_per_switch", (double)c.wall_ns / (double)(2 * c.n),
                 "ns", "lower", total, total == 2 * c.n);
}
