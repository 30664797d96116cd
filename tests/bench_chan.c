/* SPDX-License-Identifier: MIT */
/*
 * bench_chan.c — weft's side of the channel benchmarks: pingpong, buffered
 * and select, the same work as bench/go/chan.go's scenarios of the same
 * names. Each checks its own result and prints it with t_bench_emit.
 */
#include <stdatomic.h>

#include "check.h"

/* ---- pingpong: main sends i, an echo task replies i+1 ---- */

struct pp_ctx {
    int64_t n;
    weft_chan *ping, *pong;
    int64_t good, wall_ns;
    int procs;
};

static void pp_echo(void *arg)
{
    struct pp_ctx *c = arg;
    int64_t v;
    while (weft_chan_recv(c->ping, &v) == 1) {
        v++;
        CHECK_OK(weft_chan_send(c->pong, &v));
    }
}

static void pp_main(void *arg)
{
    struct pp_ctx *c = arg;
    c->procs = weft_procs();
    c->ping = weft_chan_make(sizeof(int64_t), 0);
    c->pong = weft_chan_make(sizeof(int64_t), 0);
    CHECK(c->ping != NULL && c->pong != NULL);
    CHECK_OK(weft_go(pp_echo, c));
    int64_t good = 0;
    int64_t t0 = weft_now();
    for (int64_t i = 0; i < c->n; i++) {
        int64_t v;
        CHECK_OK(weft_chan_send(c->ping, &i));
        CHECK_EQ(weft_chan_recv(c->pong, &v), 1);
        good += v == i + 1;
    }
    c->wall_ns = weft_now() - t0;
    c->good = good;
    CHECK_OK(weft_chan_close(c->ping));
}

/* ns per round trip over n round trips (Go: the same loop). check = good
 * replies. */
void b_pingpong(void)
{
    static struct pp_ctx c;
    c.n = t_param("n", 1000000);
    CHECK_GT(c.n, 0);
    t_run(pp_main, &c, (int)t_param("procs", 1));
    t_bench_emit("pingpong", c.procs, c.n, "ns_per_roundtrip", (double)c.wall_ns / (double)c.n,
                 "ns", "lower", c.good, c.good == c.n);
}

/* ---- buffered: 1 producer, 1 consumer, cap 128 ---- */

struct bf_ctx {
    int64_t n, cap;
    weft_chan *ch;
    weft_waitgroup wg;
    int64_t sum, wall_ns;
    int procs;
};

static void bf_producer(void *arg)
{
    struct bf_ctx *c = arg;
    for (int64_t i = 0; i < c->n; i++)
        CHECK_OK(weft_chan_send(c->ch, &i));
    CHECK_OK(weft_wg_done(&c->wg));
}

static void bf_consumer(void *arg)
{
    struct bf_ctx *c = arg;
    int64_t s = 0, v;
    for (int64_t i = 0; i < c->n; i++) {
        CHECK_EQ(weft_chan_recv(c->ch, &v), 1);
        s += v;
    }
    c->sum = s;
    CHECK_OK(weft_wg_done(&c->wg));
}

static void bf_main(void *arg)
{
    struct bf_ctx *c = arg;
    c->procs = weft_procs();
    c->ch = weft_chan_make(sizeof(int64_t), (size_t)c->cap);
    CHECK(c->ch != NULL);
    CHECK_OK(weft_wg_add(&c->wg, 2));
    int64_t t0 = weft_now();
    CHECK_OK(weft_go(bf_producer, c));
    CHECK_OK(weft_go(bf_consumer, c));
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
}

/* ns per item; check = the sum of the items. */
void b_buffered(void)
{
    static struct bf_ctx c;
    c.n = t_param("n", 10000000);
    c.cap = t_param("cap", 128);
    CHECK_GT(c.n, 0);
    CHECK_GE(c.cap, 0);
    t_run(bf_main, &c, (int)t_param("procs", 2));
    t_bench_emit("buffered", c.procs, c.n, "ns_per_item", (double)c.wall_ns / (double)c.n, "ns",
                 "lower", c.sum, c.sum == c.n * (c.n - 1) / 2);
}

/* ---- select: 4 producers, one 4-way select receiving everything ---- */

#define SEL_K 4

struct sel_ctx {
    int64_t n, m;
    weft_chan *ch[SEL_K];
    weft_waitgroup wg;
    int64_t sum, misrouted, wall_ns;
    int procs;
};

struct sel_producer {
    struct sel_ctx *c;
    int64_t k;
};

static void sel_produce(void *arg)
{
    struct sel_producer *p = arg;
    struct sel_ctx *c = p->c;
    for (int64_t j = 0; j < c->m; j++) {
        int64_t v = p->k * c->m + j;
        CHECK_OK(weft_chan_send(c->ch[p->k], &v));
    }
    CHECK_OK(weft_wg_done(&c->wg));
}

static void sel_receive(void *arg)
{
    struct sel_ctx *c = arg;
    int64_t s = 0, bad = 0, v;
    weft_case cs[SEL_K];
    for (int i = 0; i < SEL_K; i++)
        cs[i] = (weft_case){c->ch[i], WEFT_RECV, &v, 0};
    for (int64_t r = 0; r < c->n; r++) {
        int from = weft_select(cs, SEL_K, 0);
        CHECK(from >= 0 && from < SEL_K);
        if (v / c->m != from)
            bad++;
        s += v;
    }
    c->sum = s;
    c->misrouted = bad;
    CHECK_OK(weft_wg_done(&c->wg));
}

static void sel_main(void *arg)
{
    struct sel_ctx *c = arg;
    static struct sel_producer prod[SEL_K];
    c->procs = weft_procs();
    for (int i = 0; i < SEL_K; i++) {
        c->ch[i] = weft_chan_make(sizeof(int64_t), 0);
        CHECK(c->ch[i] != NULL);
    }
    CHECK_OK(weft_wg_add(&c->wg, SEL_K + 1));
    int64_t t0 = weft_now();
    for (int i = 0; i < SEL_K; i++) {
        prod[i] = (struct sel_producer){c, i};
        CHECK_OK(weft_go(sel_produce, &prod[i]));
    }
    CHECK_OK(weft_go(sel_receive, c));
    CHECK_OK(weft_wg_wait(&c->wg));
    c->wall_ns = weft_now() - t0;
}

/* ns per message; check = the sum of every value received (and none came
 * through the wrong case). */
void b_select(void)
{
    static struct sel_ctx c;
    int64_t n = t_param("n", 1000000);
    CHECK_GE(n, SEL_K);
    c.m = n / SEL_K;
    c.n = c.m * SEL_K;
    t_run(sel_main, &c, (int)t_param("procs", 2));
    t_bench_emit("select", c.procs, c.n, "ns_per_message", (double)c.wall_ns / (double)c.n, "ns",
                 "lower", c.sum, c.sum == c.n * (c.n - 1) / 2 && c.misrouted == 0);
}
