/* SPDX-License-Identifier: MIT */
/*
 * bench_net.c — weft's side of the time and network benchmarks: sleep,
 * timers and echo, the same work, parameters and checks as bench/go's
 * timer.go and net.go (docs/benchmarks.md).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <sys/resource.h>
#endif

#include "check.h"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Go's percentile: sorts s, nearest rank. */
static int64_t percentile(int64_t *s, int64_t n, double q)
{
    if (n == 0)
        return 0;
    qsort(s, (size_t)n, sizeof *s, cmp_i64);
    int64_t i = (int64_t)(q * (double)n + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return s[i];
}

/* ---- sleep: n sleeps of dur_us; overshoot p50/p99 ---- */

struct sleep_ctx {
    int64_t n, dur_ns, not_early;
    int64_t *over;
    int procs;
};

static void sleep_main(void *arg)
{
    struct sleep_ctx *c = arg;
    c->procs = weft_procs();
    for (int64_t i = 0; i < c->n; i++) {
        int64_t t0 = weft_now();
        CHECK_OK(weft_sleep(c->dur_ns));
        int64_t o = weft_now() - t0 - c->dur_ns;
        if (o >= 0)
            c->not_early++;
        c->over[i] = o;
    }
}

void b_sleep(void)
{
    static struct sleep_ctx c;
    c.n = t_param("n", 500);
    c.dur_ns = t_param("dur_us", 100) * 1000;
    CHECK_GT(c.n, 0);
    c.over = calloc((size_t)c.n, sizeof *c.over);
    t_run(sleep_main, &c, (int)t_param("procs", 0));
    int ok = c.not_early == c.n;
    t_bench_emit("sleep", c.procs, c.n, "overshoot_p50", percentile(c.over, c.n, 0.50) / 1e3, "us",
                 "lower", c.not_early, ok);
    t_bench_emit("sleep", c.procs, c.n, "overshoot_p99", percentile(c.over, c.n, 0.99) / 1e3, "us",
                 "lower", c.not_early, ok);
    free(c.over);
}

/* ---- timers: n tasks sleeping random 0..span_ms; max lateness ---- */

struct timers_ctx {
    int64_t n, span_ns, base, spawn_end;
    int64_t *deadline, *late;
    _Atomic int64_t not_early;
    weft_waitgroup wg;
    int procs;
};
static struct timers_ctx tc;

static void timers_task(void *arg)
{
    int64_t i = (int64_t)(intptr_t)arg;
    int64_t d = tc.deadline[i]; /* the delay, replaced by the deadline */
    int64_t start = weft_now() - tc.base;
    CHECK_OK(weft_sleep(d));
    int64_t l = weft_now() - tc.base - start - d;
    tc.deadline[i] = start + d;
    tc.late[i] = l;
    if (l >= 0)
        atomic_fetch_add_explicit(&tc.not_early, 1, memory_order_relaxed);
    weft_wg_done(&tc.wg);
}

static void timers_main(void *arg)
{
    (void)arg;
    tc.procs = weft_procs();
    tc.base = weft_now();
    CHECK_OK(weft_wg_add(&tc.wg, tc.n));
    uint64_t seed = 1;
    for (int64_t i = 0; i < tc.n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tc.deadline[i] = (int64_t)((seed >> 33) % (uint64_t)tc.span_ns);
        CHECK_OK(weft_go(timers_task, (void *)(intptr_t)i));
    }
    tc.spawn_end = weft_now() - tc.base;
    CHECK_OK(weft_wg_wait(&tc.wg));
}

void b_timers(void)
{
    tc.n = t_param("n", 100000);
    tc.span_ns = t_param("span_ms", 1000) * 1000000;
    CHECK_GT(tc.n, 0);
    tc.deadline = calloc((size_t)tc.n, sizeof *tc.deadline);
    tc.late = calloc((size_t)tc.n, sizeof *tc.late);
    t_run(timers_main, NULL, (int)t_param("procs", 0));
    int64_t max_all = 0, max_after = 0;
    for (int64_t i = 0; i < tc.n; i++) {
        if (tc.late[i] > max_all)
            max_all = tc.late[i];
        if (tc.deadline[i] >= tc.spawn_end && tc.late[i] > max_after)
            max_after = tc.late[i];
    }
    int64_t ne = atomic_load(&tc.not_early);
    int ok = ne == tc.n;
    t_bench_emit("timers", tc.procs, tc.n, "max_lateness", max_all / 1e6, "ms", "lower", ne, ok);
    t_bench_emit("timers", tc.procs, tc.n, "max_lateness_after_spawn", max_after / 1e6, "ms",
                 "lower", ne, ok);
}

/* ---- echo: a server and conns clients over loopback ---- */

struct echo_ctx {
    int64_t conns, rounds, size;
    weft_fd ln;
    char addr[64];
    int64_t *lat, *good;
    weft_waitgroup ready, finished;
    weft_chan *start;
    int64_t wall;
    int procs;
};
static struct echo_ctx ec;

static int read_full(weft_fd c, char *buf, int64_t n)
{
    int64_t got = 0;
    while (got < n) {
        int64_t r = weft_read(c, buf + got, (size_t)(n - got));
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

static void echo_conn(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char *buf = malloc((size_t)ec.size);
    while (read_full(c, buf, ec.size) == 0)
        if (weft_write(c, buf, (size_t)ec.size) != ec.size)
            break;
    weft_close(c);
    free(buf);
}

static void echo_accept(void *arg)
{
    (void)arg;
    weft_fd c;
    while ((c = weft_accept(ec.ln)) >= 0)
        CHECK_OK(weft_go(echo_conn, (void *)c));
}

static void echo_client(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg;
    weft_fd c = weft_dial("tcp", ec.addr, 0);
    weft_wg_done(&ec.ready);
    if (c < 0) {
        fprintf(stderr, "dial: %s (errno %d)\n", weft_strerror((int)c), weft_errno());
        exit(1);
    }
    char *out = calloc(1, (size_t)ec.size), *in = calloc(1, (size_t)ec.size);
    weft_chan_recv(ec.start, NULL);
    for (int64_t r = 0; r < ec.rounds; r++) {
        memcpy(out, &id, 8);
        memcpy(out + 8, &r, 8);
        int64_t t0 = weft_now();
        if (weft_write(c, out, (size_t)ec.size) != ec.size)
            break;
        if (read_full(c, in, ec.size) != 0)
            break;
        ec.lat[id * ec.rounds + r] = weft_now() - t0;
        if (memcmp(in, out, (size_t)ec.size) == 0)
            ec.good[id]++;
    }
    weft_close(c);
    free(out);
    free(in);
    weft_wg_done(&ec.finished);
}

static void echo_main(void *arg)
{
    (void)arg;
    ec.procs = weft_procs();
    ec.ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(ec.ln, 0);
    CHECK_OK(weft_addr(ec.ln, ec.addr, sizeof ec.addr));
    CHECK_OK(weft_go(echo_accept, NULL));
    ec.start = weft_chan_make(0, 0);
    CHECK_OK(weft_wg_add(&ec.ready, ec.conns));
    CHECK_OK(weft_wg_add(&ec.finished, ec.conns));
    for (int64_t i = 0; i < ec.conns; i++)
        CHECK_OK(weft_go(echo_client, (void *)(intptr_t)i));
    CHECK_OK(weft_wg_wait(&ec.ready));
    int64_t t0 = weft_now();
    CHECK_OK(weft_chan_close(ec.start));
    CHECK_OK(weft_wg_wait(&ec.finished));
    ec.wall = weft_now() - t0;
    weft_close(ec.ln);
}

void b_echo(void)
{
    ec.conns = t_param("conns", 100);
    ec.rounds = t_param("rounds", 2000);
    ec.size = t_param("size", 64);
    CHECK_GT(ec.conns, 0);
    CHECK_GE(ec.size, 16);
#ifndef _WIN32 /* Windows has no descriptor limit to raise */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (int64_t)rl.rlim_cur < 2 * ec.conns + 100 &&
        (rl.rlim_max == RLIM_INFINITY || (int64_t)rl.rlim_max >= 2 * ec.conns + 100)) {
        rl.rlim_cur = (rlim_t)(2 * ec.conns + 100);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
#endif
    int64_t n = ec.conns * ec.rounds;
    ec.lat = calloc((size_t)n, sizeof *ec.lat);
    ec.good = calloc((size_t)ec.conns, sizeof *ec.good);
    t_run(echo_main, NULL, (int)t_param("procs", 2));
    int64_t total = 0;
    for (int64_t i = 0; i < ec.conns; i++)
        total += ec.good[i];
    int ok = total == n;
    t_bench_emit("echo", ec.procs, n, "roundtrips_per_s", (double)total / (ec.wall / 1e9), "rt/s",
                 "higher", total, ok);
    t_bench_emit("echo", ec.procs, n, "latency_p50", percentile(ec.lat, n, 0.50) / 1e3, "us",
                 "lower", total, ok);
    t_bench_emit("echo", ec.procs, n, "latency_p99", percentile(ec.lat, n, 0.99) / 1e3, "us",
                 "lower", total, ok);
}
