/* SPDX-License-Identifier: MIT */
/*
 * demo.c — a short tour of weft through its public API (include/weft.h)
 * only: a million tasks, task switches, channel round trips, a contended
 * mutex, sleep precision, and a TCP echo server with a crowd of clients in
 * the same process, each checked and timed. `make demo` builds and runs it.
 *
 * Usage: demo [tasks]   (default 1000000)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

/* A weft call that must succeed. */
#define MUST(call)                                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ < 0) {                                                                             \
            fprintf(stderr, "demo: %s: %s\n", #call, weft_strerror(rc_));                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "demo: FAILED: %s\n", what);
        exit(1);
    }
}

static double per(int64_t ns, int64_t n)
{
    return n > 0 ? (double)ns / (double)n : 0.0;
}

static void run(void (*fn)(void *), void *arg, int procs)
{
    weft_config cfg = {0};
    cfg.procs = procs;
    MUST(weft_run(fn, arg, &cfg));
}

/* ---- 1. spawn: many short tasks, joined with a wait group per batch ---- */

struct spawn {
    int64_t tasks;
    int64_t batch;
    weft_waitgroup wg;
    _Atomic int64_t sum;
    int64_t ns;
    int procs;
};

static void spawn_task(void *arg)
{
    struct spawn *s = arg;
    atomic_fetch_add_explicit(&s->sum, (int64_t)weft_id() > 0, memory_order_relaxed);
    MUST(weft_wg_done(&s->wg));
}

static void spawn_main(void *arg)
{
    struct spawn *s = arg;
    s->procs = weft_procs();
    int64_t t0 = weft_now();
    for (int64_t done = 0; done < s->tasks; done += s->batch) {
        int64_t n = s->tasks - done < s->batch ? s->tasks - done : s->batch;
        MUST(weft_wg_add(&s->wg, n));
        for (int64_t i = 0; i < n; i++)
            MUST(weft_go(spawn_task, s));
        MUST(weft_wg_wait(&s->wg));
    }
    s->ns = weft_now() - t0;
}

/* ---- 2. yield: two tasks taking turns on one proc ---- */

struct yield {
    int64_t rounds;
    weft_waitgroup wg;
    int64_t ns;
};

static void yield_task(void *arg)
{
    struct yield *y = arg;
    for (int64_t i = 0; i < y->rounds; i++)
        weft_yield();
    MUST(weft_wg_done(&y->wg));
}

static void yield_main(void *arg)
{
    struct yield *y = arg;
    MUST(weft_wg_add(&y->wg, 2));
    int64_t t0 = weft_now();
    MUST(weft_go(yield_task, y));
    MUST(weft_go(yield_task, y));
    MUST(weft_wg_wait(&y->wg));
    y->ns = weft_now() - t0;
}

/* ---- 3. channels: ping-pong over two unbuffered channels ---- */

struct pingpong {
    int64_t rounds;
    weft_chan *ping, *pong;
    weft_waitgroup echo_done;
    int ok;
    int64_t ns;
};

static void echo_task(void *arg)
{
    struct pingpong *p = arg;
    int64_t v;
    while (weft_chan_recv(p->ping, &v) == 1) {
        v++;
        MUST(weft_chan_send(p->pong, &v));
    }
    MUST(weft_wg_done(&p->echo_done));
}

static void pingpong_main(void *arg)
{
    struct pingpong *p = arg;
    p->ping = weft_chan_make(sizeof(int64_t), 0);
    p->pong = weft_chan_make(sizeof(int64_t), 0);
    check(p->ping != NULL && p->pong != NULL, "weft_chan_make");
    MUST(weft_wg_add(&p->echo_done, 1));
    MUST(weft_go(echo_task, p));
    p->ok = 1;
    int64_t t0 = weft_now();
    for (int64_t i = 0; i < p->rounds; i++) {
        int64_t v = i, back = -1;
        MUST(weft_chan_send(p->ping, &v));
        MUST(weft_chan_recv(p->pong, &back));
        p->ok &= back == i + 1;
    }
    p->ns = weft_now() - t0;
    MUST(weft_chan_close(p->ping));
    MUST(weft_wg_wait(&p->echo_done));
    weft_chan_free(p->ping);
    weft_chan_free(p->pong);
}

/* ---- 4. mutex: a counter contended by tasks on every proc ---- */

struct counter {
    int tasks;
    int64_t incs;
    weft_mutex mu;
    int64_t value; /* protected by mu */
    weft_waitgroup wg;
    int64_t ns;
    int procs;
};

static void counter_task(void *arg)
{
    struct counter *c = arg;
    for (int64_t i = 0; i < c->incs; i++) {
        MUST(weft_mutex_lock(&c->mu));
        c->value++;
        MUST(weft_mutex_unlock(&c->mu));
    }
    MUST(weft_wg_done(&c->wg));
}

static void counter_main(void *arg)
{
    struct counter *c = arg;
    c->procs = weft_procs();
    c->tasks = 4 * c->procs;
    MUST(weft_wg_add(&c->wg, c->tasks));
    int64_t t0 = weft_now();
    for (int i = 0; i < c->tasks; i++)
        MUST(weft_go(counter_task, c));
    MUST(weft_wg_wait(&c->wg));
    c->ns = weft_now() - t0;
}

/* ---- 5. sleep precision ---- */

struct sleeper {
    int64_t over_ns[3];
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void sleep_main(void *arg)
{
    struct sleeper *s = arg;
    static const int64_t durs[3] = {10000, 100000, 1000000};
    for (int d = 0; d < 3; d++) {
        int64_t over[101];
        for (int i = 0; i < 101; i++) {
            int64_t t0 = weft_now();
            MUST(weft_sleep(durs[d]));
            over[i] = weft_now() - t0 - durs[d];
        }
        qsort(over, 101, sizeof over[0], cmp_i64);
        s->over_ns[d] = over[50];
    }
}

/* ---- 6. network: an echo server and many clients in one process ---- */

struct net {
    int conns, rounds;
    weft_fd ln;
    char addr[64];
    weft_waitgroup ready, done;
    weft_chan *start;
    int64_t *lat; /* conns * rounds round-trip times */
    _Atomic int64_t good;
    int64_t ns;
};

static void net_serve(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char buf[1024];
    int64_t n;
    while ((n = weft_read(c, buf, sizeof buf)) > 0)
        if (weft_write(c, buf, (size_t)n) != n)
            break;
    weft_close(c);
}

static void net_accept(void *arg)
{
    struct net *w = arg;
    weft_fd c;
    while ((c = weft_accept(w->ln)) >= 0)
        MUST(weft_go(net_serve, (void *)c));
}

struct net_client {
    struct net *w;
    int id;
};

static void net_client(void *arg)
{
    struct net_client *cl = arg;
    struct net *w = cl->w;
    weft_fd c = weft_dial("tcp", w->addr, 5000000000);
    MUST(c);
    MUST(weft_wg_done(&w->ready));
    weft_chan_recv(w->start, NULL); /* closed when every client is connected */
    char out[64], in[64];
    for (int r = 0; r < w->rounds; r++) {
        memset(out, 'a' + (cl->id + r) % 26, sizeof out);
        memcpy(out, &r, sizeof r);
        int64_t t0 = weft_now();
        MUST(weft_write(c, out, sizeof out));
        size_t got = 0;
        while (got < sizeof in) {
            int64_t n = weft_read(c, in + got, sizeof in - got);
            MUST(n);
            check(n > 0, "the echo server closed early");
            got += (size_t)n;
        }
        w->lat[(int64_t)cl->id * w->rounds + r] = weft_now() - t0;
        if (memcmp(in, out, sizeof out) == 0)
            atomic_fetch_add_explicit(&w->good, 1, memory_order_relaxed);
    }
    weft_close(c);
    MUST(weft_wg_done(&w->done));
}

static void net_main(void *arg)
{
    struct net *w = arg;
    w->ln = weft_listen("tcp", "127.0.0.1:0");
    MUST(w->ln);
    MUST(weft_addr(w->ln, w->addr, sizeof w->addr));
    MUST(weft_go(net_accept, w));
    w->start = weft_chan_make(0, 0);
    check(w->start != NULL, "channel");
    static struct net_client cls[100000];
    MUST(weft_wg_add(&w->ready, w->conns));
    MUST(weft_wg_add(&w->done, w->conns));
    for (int i = 0; i < w->conns; i++) {
        cls[i] = (struct net_client){w, i};
        MUST(weft_go(net_client, &cls[i]));
    }
    MUST(weft_wg_wait(&w->ready));
    int64_t t0 = weft_now();
    MUST(weft_chan_close(w->start));
    MUST(weft_wg_wait(&w->done));
    w->ns = weft_now() - t0;
    weft_close(w->ln);
}

int main(int argc, char **argv)
{
    int64_t tasks = argc > 1 ? atoll(argv[1]) : 1000000;
    if (tasks <= 0) {
        fprintf(stderr, "usage: demo [tasks]\n");
        return 2;
    }
    printf("weft demo: goroutines for C (public API only, examples/demo.c)\n");

    static struct spawn s; /* wait groups and mutexes are ready when zeroed */
    s.tasks = tasks;
    s.batch = tasks < 10000 ? tasks : 10000;
    run(spawn_main, &s, 0);
    check(atomic_load(&s.sum) == tasks, "every spawned task ran once");
    printf("  spawn    %lld tasks in batches of %lld on %d procs: %.3f s, %.2fM tasks/s, "
           "%.0f ns per task\n",
           (long long)tasks, (long long)s.batch, s.procs, (double)s.ns / 1e9,
           (double)tasks / ((double)s.ns / 1e9) / 1e6, per(s.ns, tasks));

    static struct yield y;
    y.rounds = tasks;
    run(yield_main, &y, 1);
    printf("  yield    2 tasks x %lld yields on 1 proc: %.1f ns per switch\n", (long long)y.rounds,
           per(y.ns, 2 * y.rounds));

    for (int procs = 1; procs <= 2; procs++) {
        static struct pingpong p;
        p = (struct pingpong){.rounds = tasks / 10 > 0 ? tasks / 10 : 1};
        run(pingpong_main, &p, procs);
        check(p.ok, "every channel reply was the request plus one");
        printf("  channel  %lld ping-pong round trips, unbuffered, %d proc%s: %.1f ns per round "
               "trip\n",
               (long long)p.rounds, procs, procs > 1 ? "s" : "", per(p.ns, p.rounds));
    }

    static struct counter c;
    c.incs = tasks / 10 > 0 ? tasks / 10 : 1;
    run(counter_main, &c, 0);
    check(c.value == (int64_t)c.tasks * c.incs, "the mutex-protected counter lost no increment");
    printf("  mutex    %d tasks x %lld increments on %d procs: counter %lld (correct), "
           "%.1f ns per lock+unlock\n",
           c.tasks, (long long)c.incs, c.procs, (long long)c.value,
           per(c.ns, (int64_t)c.tasks * c.incs));

    static struct sleeper sl;
    run(sleep_main, &sl, 0);
    printf("  sleep    10 us / 100 us / 1 ms, 101 each: median overshoot %.0f / %.0f / %.0f us\n",
           sl.over_ns[0] / 1e3, sl.over_ns[1] / 1e3, sl.over_ns[2] / 1e3);

    static struct net w;
    w.conns = 500;
    w.rounds = 200;
    w.lat = calloc((size_t)w.conns * (size_t)w.rounds, sizeof *w.lat);
    check(w.lat != NULL, "memory for latencies");
    run(net_main, &w, 0);
    int64_t total = (int64_t)w.conns * w.rounds;
    check(atomic_load(&w.good) == total, "every echoed byte came back intact");
    qsort(w.lat, (size_t)total, sizeof *w.lat, cmp_i64);
    printf("  echo     server + %d client connections in one process, 64 B x %d rounds each: "
           "%lld round trips, %.0f round trips/s, latency p50 %.0f us, p90 %.0f us, "
           "p99 %.0f us\n",
           w.conns, w.rounds, (long long)total, (double)total / ((double)w.ns / 1e9),
           w.lat[total / 2] / 1e3, w.lat[total * 9 / 10] / 1e3, w.lat[total * 99 / 100] / 1e3);
    free(w.lat);

    printf("demo: OK\n");
    return 0;
}
