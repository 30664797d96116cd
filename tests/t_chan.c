/* SPDX-License-Identifier: MIT */
/*
 * t_chan.c — channels and select: semantics (ordering, close, NULL
 * channels, element sizes, fairness, a select on both ends of a channel),
 * bad input, stress with procs 1, 2, 4 and 8 (producers and consumers,
 * 3-way select, a prime sieve, a 64-way select) and randomized model tests
 * (one task against a queue model; many tasks checked for exactly-once
 * delivery and per-producer FIFO order).
 *
 * Randomized cases print their seed on stderr; WEFT_TEST_SEED=n replays one.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kern/task.h" /* white box: a task's state (chan_select_close_free) */
#include "tests/check.h"

#ifdef WEFT_SAN_ASAN
#include <sanitizer/asan_interface.h>
#endif

/* ---- helpers ---- */

static weft_chan *mk(size_t elem_size, size_t cap)
{
    weft_chan *c = weft_chan_make(elem_size, cap);
    CHECK(c != NULL);
    return c;
}

static void go(void (*fn)(void *), void *arg)
{
    CHECK_OK(weft_go(fn, arg));
}

static void send64(weft_chan *c, int64_t v)
{
    CHECK_OK(weft_chan_send(c, &v));
}

static int64_t recv64(weft_chan *c)
{
    int64_t v = -1;
    CHECK_EQ(weft_chan_recv(c, &v), 1);
    return v;
}

/* "Done" signals travel on channels of zero-size elements. */
static void done_signal(weft_chan *d)
{
    CHECK_OK(weft_chan_send(d, NULL));
}

static void done_wait(weft_chan *d, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_EQ(weft_chan_recv(d, NULL), 1);
}

/* Runs fn under procs 1, 2, 4 and 8. */
static void run_all_procs(void (*fn)(void *), void *arg)
{
    for (int i = 0; i < 4; i++)
        t_run(fn, arg, t_procs_list[i]);
}

/* splitmix64: the tests' own generator. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rnd_n(uint64_t *s, uint64_t n)
{
    return rnd(s) % n;
}

/* A seed from WEFT_TEST_SEED, else from the clock; printed for replays. */
static uint64_t test_seed(const char *name)
{
    const char *e = getenv("WEFT_TEST_SEED");
    uint64_t seed = e != NULL ? strtoull(e, NULL, 10) : (uint64_t)weft_now();
    fprintf(stderr, "%s: seed %llu\n", name, (unsigned long long)seed);
    return seed;
}

/* ---- chan_buffered_order: FIFO, wrap-around, full/empty, sizes ---- */

#define BO_N 1000

static void bo_producer(void *arg)
{
    weft_chan *c = arg;
    for (int64_t i = 0; i < BO_N; i++)
        send64(c, i);
    CHECK_OK(weft_chan_close(c));
}

static void buffered_order_main(void *arg)
{
    (void)arg;
    weft_chan *c = mk(sizeof(int), 5);
    CHECK_EQ(weft_chan_cap(c), 5);
    CHECK_EQ(weft_chan_len(c), 0);
    int next_send = 0, next_recv = 0;
    for (int round = 0; round < 12; round++) {
        int k = round % 5 + 1; /* fills of 1..5 walk the ring around */
        for (int i = 0; i < k; i++) {
            int v = next_send++;
            CHECK_OK((i & 1) ? weft_chan_try_send(c, &v) : weft_chan_send(c, &v));
        }
        CHECK_EQ(weft_chan_len(c), k);
        if (k == 5) {
            int v = -1;
            CHECK_EQ(weft_chan_try_send(c, &v), WEFT_EAGAIN);
        }
        for (int i = 0; i < k; i++) {
            int v = -1;
            CHECK_EQ((i & 1) ? weft_chan_try_recv(c, &v) : weft_chan_recv(c, &v), 1);
            CHECK_EQ(v, next_recv++);
        }
        int v;
        CHECK_EQ(weft_chan_try_recv(c, &v), WEFT_EAGAIN);
        CHECK_EQ(weft_chan_len(c), 0);
    }
    weft_chan_free(c);

    /* An odd element size: exact copies, nothing written past the element. */
    weft_chan *o = mk(7, 3);
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 3; i++) {
            unsigned char e[7];
            for (int b = 0; b < 7; b++)
                e[b] = (unsigned char)(round * 31 + i * 7 + b);
            CHECK_OK(weft_chan_send(o, e));
        }
        for (int i = 0; i < 3; i++) {
            unsigned char buf[9];
            memset(buf, 0xee, sizeof buf);
            CHECK_EQ(weft_chan_recv(o, buf + 1), 1);
            CHECK_EQ(buf[0], 0xee);
            CHECK_EQ(buf[8], 0xee);
            for (int b = 0; b < 7; b++)
                CHECK_EQ(buf[1 + b], (unsigned char)(round * 31 + i * 7 + b));
        }
    }
    weft_chan_free(o);

    /* Zero-size elements: only the count matters. */
    weft_chan *z = mk(0, 3);
    for (int i = 0; i < 3; i++)
        CHECK_OK(weft_chan_send(z, NULL));
    CHECK_EQ(weft_chan_try_send(z, NULL), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(z), 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(weft_chan_recv(z, NULL), 1);
    CHECK_EQ(weft_chan_try_recv(z, NULL), WEFT_EAGAIN);
    weft_chan_free(z);

    /* A producer running ahead of a slow consumer blocks on the full buffer;
     * each receive then takes the head and moves a blocked sender's value
     * in. Order must hold throughout. */
    weft_chan *p = mk(sizeof(int64_t), 4);
    go(bo_producer, p);
    for (int64_t i = 0; i < BO_N; i++) {
        if (i % 7 == 0)
            weft_yield();
        CHECK_EQ(recv64(p), i);
        CHECK_LE(weft_chan_len(p), 4);
    }
    int64_t v = 99;
    CHECK_EQ(weft_chan_recv(p, &v), 0);
    CHECK_EQ(v, 0);
    weft_chan_free(p);

    /* Many channels made and freed. */
    for (int i = 0; i < 2000; i++) {
        weft_chan *t = mk((size_t)(i % 33), (size_t)(i % 17));
        if (i % 33 != 0 && i % 17 != 0) {
            char buf[33];
            memset(buf, i & 0xff, sizeof buf);
            CHECK_OK(weft_chan_send(t, buf));
        }
        weft_chan_free(t);
    }
}

void t_chan_buffered_order(void)
{
    t_run(buffered_order_main, NULL, 1);
    t_run(buffered_order_main, NULL, 4);
}

/* ---- chan_unbuffered: hand-off, try ops against parked partners ---- */

struct unb {
    weft_chan *ping, *pong, *c, *done;
};

static void unb_echo(void *arg)
{
    struct unb *u = arg;
    int64_t v;
    while (weft_chan_recv(u->ping, &v) == 1)
        send64(u->pong, v + 1);
    done_signal(u->done);
}

static void unb_recv42(void *arg)
{
    struct unb *u = arg;
    CHECK_EQ(recv64(u->c), 42);
    done_signal(u->done);
}

static void unb_send43(void *arg)
{
    struct unb *u = arg;
    send64(u->c, 43);
    done_signal(u->done);
}

static void unbuffered_main(void *arg)
{
    (void)arg;
    struct unb u = {mk(8, 0), mk(8, 0), mk(8, 0), mk(0, 0)};
    int64_t v = 5;
    CHECK_EQ(weft_chan_try_send(u.ping, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_try_recv(u.ping, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(u.ping), 0);
    CHECK_EQ(weft_chan_cap(u.ping), 0);

    go(unb_echo, &u);
    for (int64_t i = 0; i < 2000; i++) {
        send64(u.ping, i);
        CHECK_EQ(recv64(u.pong), i + 1);
    }
    CHECK_OK(weft_chan_close(u.ping));
    done_wait(u.done, 1);

    /* try_send succeeds once a receiver is parked. */
    go(unb_recv42, &u);
    int r;
    long spins = 0;
    v = 42;
    while ((r = weft_chan_try_send(u.c, &v)) == WEFT_EAGAIN) {
        weft_yield();
        CHECK_LT(++spins, 10000000);
    }
    CHECK_EQ(r, 0);
    done_wait(u.done, 1);

    /* try_recv succeeds once a sender is parked. */
    go(unb_send43, &u);
    spins = 0;
    v = 0;
    while ((r = weft_chan_try_recv(u.c, &v)) == WEFT_EAGAIN) {
        weft_yield();
        CHECK_LT(++spins, 10000000);
    }
    CHECK_EQ(r, 1);
    CHECK_EQ(v, 43);
    done_wait(u.done, 1);

    /* A NULL elem discards the value. */
    go(unb_send43, &u);
    CHECK_EQ(weft_chan_recv(u.c, NULL), 1);
    done_wait(u.done, 1);
}

void t_chan_unbuffered(void)
{
    t_run(unbuffered_main, NULL, 1);
    t_run(unbuffered_main, NULL, 4);
}

/* ---- chan_close_wakes: close readies every blocked receiver and sender ---- */

#define CW_N 10

struct cw {
    weft_chan *r, *s, *res;
    _Atomic int started;
};

static void cw_recv(void *arg)
{
    struct cw *x = arg;
    int64_t v = 0x5a5a5a5a;
    atomic_fetch_add(&x->started, 1);
    int r = weft_chan_recv(x->r, &v);
    send64(x->res, r == 0 && v == 0 ? 1 : 100 + r);
}

static void cw_send(void *arg)
{
    struct cw *x = arg;
    int64_t v = 7;
    atomic_fetch_add(&x->started, 1);
    int r = weft_chan_send(x->s, &v);
    send64(x->res, r == WEFT_ECLOSED ? 2 : r == 0 ? 3 : 200 + r);
}

static void close_wakes_main(void *arg)
{
    (void)arg;
    for (size_t cap = 0; cap <= 2; cap += 2) {
        struct cw x = {mk(8, cap), mk(8, cap), mk(8, 2 * CW_N), 0};
        for (int i = 0; i < CW_N; i++) {
            go(cw_recv, &x);
            go(cw_send, &x);
        }
        while (atomic_load(&x.started) < 2 * CW_N)
            weft_yield();
        for (int i = 0; i < 100; i++)
            weft_yield();
        CHECK_OK(weft_chan_close(x.r));
        CHECK_OK(weft_chan_close(x.s));
        CHECK_EQ(weft_chan_close(x.s), WEFT_ECLOSED);
        int count[4] = {0};
        for (int i = 0; i < 2 * CW_N; i++) {
            int64_t code = recv64(x.res);
            CHECK(code >= 1 && code <= 3);
            count[code]++;
        }
        /* With a buffer, cap senders got their value in before the close. */
        CHECK_EQ(count[1], CW_N);
        CHECK_EQ(count[2], CW_N - (int)cap);
        CHECK_EQ(count[3], (int)cap);
        /* Those values are still delivered, then the end. */
        for (size_t i = 0; i < cap; i++)
            CHECK_EQ(recv64(x.s), 7);
        CHECK_EQ(weft_chan_recv(x.s, NULL), 0);
        weft_chan_free(x.r);
        weft_chan_free(x.s);
        weft_chan_free(x.res);
    }
}

void t_chan_close_wakes(void)
{
    run_all_procs(close_wakes_main, NULL);
}

/* ---- chan_closed_drain: buffered values first, then 0 with a zeroed elem ---- */

static void closed_drain_main(void *arg)
{
    (void)arg;
    weft_chan *c = mk(sizeof(int64_t), 4);
    for (int64_t i = 1; i <= 3; i++)
        send64(c, i);
    CHECK_OK(weft_chan_close(c));
    CHECK_EQ(weft_chan_close(c), WEFT_ECLOSED);
    int64_t v = 9;
    CHECK_EQ(weft_chan_send(c, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_try_send(c, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_len(c), 3);
    CHECK_EQ(weft_chan_cap(c), 4);

    CHECK_EQ(weft_chan_recv(c, &v), 1);
    CHECK_EQ(v, 1);
    CHECK_EQ(weft_chan_try_recv(c, &v), 1);
    CHECK_EQ(v, 2);
    weft_case cs[2] = {{c, WEFT_RECV, &v, -9}, {NULL, WEFT_RECV, NULL, -9}};
    CHECK_EQ(weft_select(cs, 2, 0), 0);
    CHECK_EQ(cs[0].ok, 1);
    CHECK_EQ(v, 3);
    CHECK_EQ(weft_chan_len(c), 0);

    for (int i = 0; i < 3; i++) {
        v = 0x77;
        CHECK_EQ(weft_chan_recv(c, &v), 0);
        CHECK_EQ(v, 0);
        v = 0x77;
        CHECK_EQ(weft_chan_try_recv(c, &v), 0);
        CHECK_EQ(v, 0);
        CHECK_EQ(weft_chan_recv(c, NULL), 0);
    }
    /* Select: a closed channel is ready for both directions. */
    weft_chan *never = mk(8, 0);
    int64_t w = 0x77;
    weft_case rc[2] = {{never, WEFT_RECV, &w, -9}, {c, WEFT_RECV, &w, -9}};
    CHECK_EQ(weft_select(rc, 2, 0), 1);
    CHECK_EQ(rc[1].ok, 0);
    CHECK_EQ(w, 0);
    weft_case sc[2] = {{never, WEFT_SEND, &w, -9}, {c, WEFT_SEND, &w, -9}};
    CHECK_EQ(weft_select(sc, 2, WEFT_NONBLOCK), 1);
    CHECK_EQ(sc[1].ok, WEFT_ECLOSED);

    /* Unbuffered. */
    weft_chan *u = mk(sizeof(int64_t), 0);
    CHECK_OK(weft_chan_close(u));
    v = 5;
    CHECK_EQ(weft_chan_recv(u, &v), 0);
    CHECK_EQ(v, 0);
    CHECK_EQ(weft_chan_send(u, &v), WEFT_ECLOSED);
    weft_chan_free(u);
    weft_chan_free(never);
    weft_chan_free(c);
}

void t_chan_closed_drain(void)
{
    t_run(closed_drain_main, NULL, 1);
}

/* ---- chan_nil: NULL channels block forever, try ops would block ---- */

static _Atomic int nil_returned;

static void nil_send(void *arg)
{
    (void)arg;
    int64_t v = 1;
    weft_chan_send(NULL, &v);
    atomic_store(&nil_returned, 1);
}

static void nil_recv(void *arg)
{
    (void)arg;
    weft_chan_recv(NULL, NULL);
    atomic_store(&nil_returned, 1);
}

static void nil_select0(void *arg)
{
    (void)arg;
    weft_select(NULL, 0, 0);
    atomic_store(&nil_returned, 1);
}

static void nil_select_all_null(void *arg)
{
    (void)arg;
    int64_t v = 0;
    weft_case cs[2] = {{NULL, WEFT_SEND, &v, 0}, {NULL, WEFT_RECV, &v, 0}};
    weft_select(cs, 2, 0);
    atomic_store(&nil_returned, 1);
}

static void nil_main(void *arg)
{
    (void)arg;
    int64_t v = 3;
    CHECK_EQ(weft_chan_try_send(NULL, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_try_recv(NULL, &v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(NULL), 0);
    CHECK_EQ(weft_chan_cap(NULL), 0);
    weft_chan_free(NULL);
    CHECK_EQ(weft_chan_close(NULL), WEFT_EINVAL);

    weft_case none[2] = {{NULL, WEFT_SEND, &v, 0}, {NULL, WEFT_RECV, &v, 0}};
    CHECK_EQ(weft_select(none, 2, WEFT_NONBLOCK), WEFT_EAGAIN);
    CHECK_EQ(weft_select(NULL, 0, WEFT_NONBLOCK), WEFT_EAGAIN);
    CHECK_EQ(weft_select(none, 0, WEFT_NONBLOCK), WEFT_EAGAIN);

    /* A NULL case is never chosen, even among several real ones. */
    weft_chan *a = mk(8, 1), *b = mk(8, 0);
    for (int i = 0; i < 200; i++) {
        send64(a, i);
        int64_t got = -1;
        weft_case cs[4] = {{NULL, WEFT_RECV, &got, 0},
                           {a, WEFT_RECV, &got, 0},
                           {NULL, WEFT_SEND, &v, 0},
                           {b, WEFT_RECV, &got, 0}};
        CHECK_EQ(weft_select(cs, 4, 0), 1);
        CHECK_EQ(cs[1].ok, 1);
        CHECK_EQ(got, i);
    }

    /* Blocked forever; the run ends when this task returns. */
    go(nil_send, NULL);
    go(nil_recv, NULL);
    go(nil_select0, NULL);
    go(nil_select_all_null, NULL);
    for (int i = 0; i < 200; i++)
        weft_yield();
    CHECK_EQ(atomic_load(&nil_returned), 0);
}

void t_chan_nil(void)
{
    t_run(nil_main, NULL, 1);
    t_run(nil_main, NULL, 2);
    CHECK_EQ(atomic_load(&nil_returned), 0);
}

/* ---- chan_select_fair: uniform choice among ready cases ---- */

#define FAIR_ROUNDS 20000

static void select_fair_main(void *arg)
{
    (void)arg;
    weft_chan *a = mk(4, 1), *b = mk(4, 1), *c3 = mk(4, 1);
    int x = 1, va, vb, vc;

    /* Two receives always ready: each 50% +- 5%. */
    CHECK_OK(weft_chan_send(a, &x));
    CHECK_OK(weft_chan_send(b, &x));
    int count[3] = {0};
    weft_case rc[2] = {{a, WEFT_RECV, &va, 0}, {b, WEFT_RECV, &vb, 0}};
    for (int i = 0; i < FAIR_ROUNDS; i++) {
        int r = weft_select(rc, 2, (i & 1) ? WEFT_NONBLOCK : 0);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(rc[r].ok, 1);
        count[r]++;
        CHECK_OK(weft_chan_send(r == 0 ? a : b, &x));
    }
    fprintf(stderr, "recv: %d / %d\n", count[0], count[1]);
    CHECK_GE(count[0], FAIR_ROUNDS * 45 / 100);
    CHECK_LE(count[0], FAIR_ROUNDS * 55 / 100);
    CHECK_EQ(weft_chan_recv(a, &va), 1);
    CHECK_EQ(weft_chan_recv(b, &vb), 1);

    /* Two sends always ready. */
    count[0] = count[1] = 0;
    weft_case sc[2] = {{a, WEFT_SEND, &x, 0}, {b, WEFT_SEND, &x, 0}};
    for (int i = 0; i < FAIR_ROUNDS; i++) {
        int r = weft_select(sc, 2, 0);
        CHECK(r == 0 || r == 1);
        CHECK_EQ(sc[r].ok, 0);
        count[r]++;
        CHECK_EQ(weft_chan_recv(r == 0 ? a : b, NULL), 1);
    }
    fprintf(stderr, "send: %d / %d\n", count[0], count[1]);
    CHECK_GE(count[0], FAIR_ROUNDS * 45 / 100);
    CHECK_LE(count[0], FAIR_ROUNDS * 55 / 100);

    /* Three ready cases, one of them a send: each a third +- 5%. */
    count[0] = count[1] = count[2] = 0;
    CHECK_OK(weft_chan_send(a, &x));
    CHECK_OK(weft_chan_send(b, &x));
    weft_case mc[3] = {{a, WEFT_RECV, &va, 0}, {b, WEFT_RECV, &vb, 0}, {c3, WEFT_SEND, &x, 0}};
    for (int i = 0; i < FAIR_ROUNDS; i++) {
        int r = weft_select(mc, 3, 0);
        CHECK(r >= 0 && r <= 2);
        count[r]++;
        if (r == 2)
            CHECK_EQ(weft_chan_recv(c3, &vc), 1);
        else
            CHECK_OK(weft_chan_send(r == 0 ? a : b, &x));
    }
    fprintf(stderr, "mixed: %d / %d / %d\n", count[0], count[1], count[2]);
    for (int k = 0; k < 3; k++) {
        CHECK_GE(count[k], FAIR_ROUNDS * 28 / 100);
        CHECK_LE(count[k], FAIR_ROUNDS * 38 / 100);
    }
}

void t_chan_select_fair(void)
{
    t_run(select_fair_main, NULL, 1);
}

/* ---- chan_select_same: one select sends and receives on one channel ---- */

#define SAME_N 2000

static void same_partner(void *arg)
{
    weft_chan **ch = arg;
    for (int64_t i = 0; i < SAME_N; i++) {
        if (i % 2 == 0)
            CHECK_EQ(recv64(ch[0]), 1000 + i);
        else
            send64(ch[0], 2000 + i);
    }
    done_signal(ch[1]);
}

static void select_same_main(void *arg)
{
    (void)arg;
    /* Unbuffered: the partner alternates receiving and sending, so exactly
     * one of the two cases can ever match. */
    weft_chan *ch[2] = {mk(8, 0), mk(0, 0)};
    go(same_partner, ch);
    for (int64_t i = 0; i < SAME_N; i++) {
        int64_t out = 1000 + i, in = -1;
        weft_case cs[2] = {{ch[0], WEFT_SEND, &out, -9}, {ch[0], WEFT_RECV, &in, -9}};
        if (i % 3 == 0) { /* the other order too */
            weft_case t = cs[0];
            cs[0] = cs[1];
            cs[1] = t;
        }
        int r = weft_select(cs, 2, 0);
        CHECK(r == 0 || r == 1);
        if (i % 2 == 0) {
            CHECK_EQ(cs[r].op, WEFT_SEND);
            CHECK_EQ(cs[r].ok, 0);
        } else {
            CHECK_EQ(cs[r].op, WEFT_RECV);
            CHECK_EQ(cs[r].ok, 1);
            CHECK_EQ(in, 2000 + i);
        }
    }
    done_wait(ch[1], 1);

    /* Buffered, cap 1: empty -> only the send is ready; full -> only the
     * receive. */
    weft_chan *b = mk(8, 1);
    for (int64_t i = 0; i < 200; i++) {
        int64_t out = i, in = -1;
        weft_case cs[2] = {{b, WEFT_RECV, &in, -9}, {b, WEFT_SEND, &out, -9}};
        CHECK_EQ(weft_select(cs, 2, WEFT_NONBLOCK), 1);
        CHECK_EQ(weft_select(cs, 2, 0), 0);
        CHECK_EQ(in, i);
    }
    /* Two receive cases on the same channel: one value, one case. */
    weft_chan *u = ch[0];
    for (int64_t i = 0; i < 200; i++) {
        go(unb_send43, &(struct unb){NULL, NULL, u, ch[1]});
        int64_t x = -1, y = -1;
        weft_case cs[2] = {{u, WEFT_RECV, &x, -9}, {u, WEFT_RECV, &y, -9}};
        int r = weft_select(cs, 2, 0);
        CHECK_EQ(cs[r].ok, 1);
        CHECK_EQ(r == 0 ? x : y, 43);
        CHECK_EQ(r == 0 ? y : x, -1);
        done_wait(ch[1], 1);
    }
}

void t_chan_select_same(void)
{
    t_run(select_same_main, NULL, 1);
    t_run(select_same_main, NULL, 4);
}

/* ---- chan_select_block: parked selects woken by a send, a receive, a close ---- */

struct sb {
    weft_chan *c;
    int64_t v;
    weft_chan *res;
};

static void sb_delayed_send(void *arg)
{
    struct sb *s = arg;
    for (int i = 0; i < (int)(s->v % 4); i++)
        weft_yield();
    send64(s->c, s->v);
}

static void sb_delayed_recv(void *arg)
{
    struct sb *s = arg;
    for (int i = 0; i < (int)(s->v % 4); i++)
        weft_yield();
    send64(s->res, recv64(s->c));
}

static void sb_delayed_close(void *arg)
{
    struct sb *s = arg;
    for (int i = 0; i < (int)(s->v % 4); i++)
        weft_yield();
    CHECK_OK(weft_chan_close(s->c));
}

#define SB_BIG 200

static void select_block_main(void *arg)
{
    (void)arg;
    weft_chan *ch[3] = {mk(8, 0), mk(8, 0), mk(8, 0)};
    weft_chan *res = mk(8, 1);
    struct sb s[1];

    /* A receive select woken by a sender on one channel. */
    for (int64_t round = 0; round < 300; round++) {
        int k = (int)(round % 3);
        s[0] = (struct sb){ch[k], round, res};
        go(sb_delayed_send, &s[0]);
        int64_t v[3] = {-1, -1, -1};
        weft_case cs[3] = {{ch[0], WEFT_RECV, &v[0], -9},
                           {ch[1], WEFT_RECV, &v[1], -9},
                           {ch[2], WEFT_RECV, &v[2], -9}};
        CHECK_EQ(weft_select(cs, 3, 0), k);
        CHECK_EQ(cs[k].ok, 1);
        CHECK_EQ(v[k], round);
        CHECK_EQ(v[(k + 1) % 3], -1);
    }
    /* A send select woken by a receiver. */
    for (int64_t round = 0; round < 300; round++) {
        int k = (int)(round % 3);
        s[0] = (struct sb){ch[k], round, res};
        go(sb_delayed_recv, &s[0]);
        int64_t out[3] = {100, 101, 102};
        weft_case cs[3] = {{ch[0], WEFT_SEND, &out[0], -9},
                           {ch[1], WEFT_SEND, &out[1], -9},
                           {ch[2], WEFT_SEND, &out[2], -9}};
        CHECK_EQ(weft_select(cs, 3, 0), k);
        CHECK_EQ(cs[k].ok, 0);
        CHECK_EQ(recv64(res), 100 + k);
    }
    /* Woken by a close: a receive case gets 0 and a zeroed elem, a send
     * case WEFT_ECLOSED. */
    for (int64_t round = 0; round < 100; round++) {
        weft_chan *x = mk(8, 0), *y = mk(8, 0);
        s[0] = (struct sb){(round & 1) ? x : y, round, NULL};
        go(sb_delayed_close, &s[0]);
        int64_t vx = 5, vy = 5;
        weft_case cs[2] = {{x, WEFT_SEND, &vx, -9}, {y, WEFT_RECV, &vy, -9}};
        int r = weft_select(cs, 2, 0);
        if (round & 1) {
            CHECK_EQ(r, 0);
            CHECK_EQ(cs[0].ok, WEFT_ECLOSED);
            CHECK_EQ(vy, 5);
        } else {
            CHECK_EQ(r, 1);
            CHECK_EQ(cs[1].ok, 0);
            CHECK_EQ(vy, 0);
        }
        weft_chan_free(x);
        weft_chan_free(y);
    }
    /* More cases than fit on the stack. */
    static weft_chan *big[SB_BIG];
    static weft_case bc[SB_BIG];
    static int64_t bv[SB_BIG];
    for (int i = 0; i < SB_BIG; i++)
        big[i] = mk(8, 1);
    for (int64_t round = 0; round < 50; round++) {
        int k = (int)((round * 37) % SB_BIG);
        for (int i = 0; i < SB_BIG; i++)
            bc[i] = (weft_case){big[i], WEFT_RECV, &bv[i], -9};
        CHECK_EQ(weft_select(bc, SB_BIG, WEFT_NONBLOCK), WEFT_EAGAIN);
        if (round & 1) {
            send64(big[k], round);
        } else {
            s[0] = (struct sb){big[k], round, NULL};
            go(sb_delayed_send, &s[0]);
        }
        CHECK_EQ(weft_select(bc, SB_BIG, 0), k);
        CHECK_EQ(bv[k], round);
    }
    /* Many cases on few channels (each locked once, whatever the sort).
     * Channel k holds a value, the others are empty: the ready cases are
     * the receives on k and the sends on the others. */
    for (int64_t round = 0; round < 100; round++) {
        int k = (int)(round % 10);
        for (int i = 0; i < 150; i++) {
            int op = (i / 10) % 3 ? WEFT_RECV : WEFT_SEND;
            bv[i] = op == WEFT_SEND ? 1000 + i : -1;
            bc[i] = (weft_case){big[i % 10], op, &bv[i], -9};
        }
        send64(big[k], round);
        int r = weft_select(bc, 150, round & 1 ? WEFT_NONBLOCK : 0);
        CHECK(r >= 0 && r < 150);
        if (bc[r].op == WEFT_RECV) {
            CHECK_EQ(r % 10, k);
            CHECK_EQ(bc[r].ok, 1);
            CHECK_EQ(bv[r], round);
        } else {
            CHECK_NE(r % 10, k);
            CHECK_EQ(bc[r].ok, 0);
            CHECK_EQ(recv64(big[r % 10]), 1000 + r);
            CHECK_EQ(recv64(big[k]), round);
        }
        for (int i = 0; i < 10; i++)
            CHECK_EQ(weft_chan_len(big[i]), 0);
    }
}

void t_chan_select_block(void)
{
    t_run(select_block_main, NULL, 1);
    t_run(select_block_main, NULL, 4);
}

/* ---- chan_elem_sizes: 0 .. 65535-byte elements, both kinds ---- */

#define ES_N 20

static const size_t es_sizes[] = {0, 1, 3, 8, 24, 100, 4096, 65535};

struct es {
    weft_chan *c, *done;
    size_t size;
};

static void es_fill(unsigned char *p, size_t size, int i)
{
    for (size_t b = 0; b < size; b++)
        p[b] = (unsigned char)(i * 131 + b * 7 + size);
}

static void es_producer(void *arg)
{
    struct es *e = arg;
    unsigned char *buf = malloc(e->size + 1);
    CHECK(buf != NULL);
    for (int i = 0; i < ES_N; i++) {
        es_fill(buf, e->size, i);
        CHECK_OK(weft_chan_send(e->c, buf));
    }
    free(buf);
    done_signal(e->done);
}

static void elem_sizes_main(void *arg)
{
    (void)arg;
    weft_chan *done = mk(0, 1);
    for (size_t k = 0; k < sizeof es_sizes / sizeof es_sizes[0]; k++) {
        for (size_t cap = 0; cap <= 3; cap += 3) {
            size_t size = es_sizes[k];
            struct es e = {mk(size, cap), done, size};
            go(es_producer, &e);
            unsigned char *got = malloc(size + 2), *want = malloc(size + 1);
            CHECK(got != NULL && want != NULL);
            for (int i = 0; i < ES_N; i++) {
                memset(got, 0xee, size + 2);
                CHECK_EQ(weft_chan_recv(e.c, got + 1), 1);
                es_fill(want, size, i);
                CHECK_EQ(got[0], 0xee);
                CHECK_EQ(got[size + 1], 0xee);
                CHECK(memcmp(got + 1, want, size) == 0);
            }
            done_wait(done, 1);
            free(got);
            free(want);
            weft_chan_free(e.c);
        }
    }
}

void t_chan_elem_sizes(void)
{
    t_run(elem_sizes_main, NULL, 2);
}

/* ---- chan_errors: every function's bad input gets its code ---- */

struct err_ctx {
    weft_chan *c;
    int64_t v;
    _Atomic int ok;
};

/* A thread that is not a task, while a run is going on: a host thread,
 * which may use channels (kern/host.c). c (capacity 2) holds 5 on entry
 * and again on return; nothing here has to wait for a task (the main task
 * is stuck in pthread_join). t_embed.c has the cases that do. */
static void *err_thread(void *arg)
{
    struct err_ctx *e = arg;
    int64_t x = 0, five = 5;
    CHECK_OK(weft_chan_try_send(e->c, &e->v)); /* 5 3 */
    CHECK_EQ(weft_chan_try_send(e->c, &e->v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_len(e->c), 2);
    CHECK_EQ(weft_chan_try_recv(e->c, &x), 1);
    CHECK_EQ(x, 5);
    CHECK_EQ(weft_chan_recv(e->c, &x), 1); /* buffered: no wait */
    CHECK_EQ(x, 3);
    CHECK_EQ(weft_chan_try_recv(e->c, &x), WEFT_EAGAIN);
    weft_case cs[2] = {{e->c, WEFT_RECV, &x, 0}, {NULL, WEFT_SEND, &x, 0}};
    CHECK_EQ(weft_select(cs, 2, WEFT_NONBLOCK), WEFT_EAGAIN);
    CHECK_OK(weft_chan_send(e->c, &five)); /* buffered: no wait */
    CHECK_EQ(weft_select(cs, 2, 0), 0);
    CHECK_EQ(cs[0].ok, 1);
    CHECK_EQ(x, 5);
    CHECK_OK(weft_chan_send(e->c, &five));
    CHECK_EQ(weft_chan_try_send(NULL, &e->v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_try_recv(NULL, &e->v), WEFT_EAGAIN);
    CHECK_EQ(weft_chan_cap(e->c), 2);
    CHECK_EQ(weft_chan_len(e->c), 1);
    /* Making, closing and freeing work on any thread while the run lasts. */
    weft_chan *c2 = weft_chan_make(8, 8);
    CHECK(c2 != NULL);
    CHECK_OK(weft_chan_close(c2));
    CHECK_EQ(weft_chan_close(c2), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_send(c2, &five), WEFT_ECLOSED);
    x = 7;
    CHECK_EQ(weft_chan_recv(c2, &x), 0); /* closed and drained */
    CHECK_EQ(x, 0);
    weft_chan_free(c2);
    e->ok = 1;
    return NULL;
}

static void err_blocked_recv(void *arg)
{
    struct err_ctx *e = arg;
    int64_t v;
    CHECK_EQ(weft_chan_recv(e->c, &v), 0);
    e->ok = 2;
}

static void errors_main(void *arg)
{
    (void)arg;
    /* make */
    CHECK(weft_chan_make(65536, 0) == NULL);
    CHECK(weft_chan_make(65536, 1) == NULL);
    CHECK(weft_chan_make(1, SIZE_MAX) == NULL);
    CHECK(weft_chan_make(0, SIZE_MAX) == NULL);
    CHECK(weft_chan_make(65535, SIZE_MAX / 65535 + 1) == NULL);
    CHECK(weft_chan_make(4096, (size_t)1 << 40) == NULL);
    weft_chan *c = weft_chan_make(65535, 1);
    CHECK(c != NULL);
    weft_chan_free(c);

    c = mk(sizeof(int64_t), 2);
    weft_chan *z = mk(0, 0);
    int64_t v = 1;
    /* NULL elem with elem_size > 0 */
    CHECK_EQ(weft_chan_send(c, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(c, NULL), WEFT_EINVAL);
    CHECK_EQ(weft_chan_try_send(z, NULL), WEFT_EAGAIN); /* fine for size 0 */
    CHECK_EQ(weft_chan_try_recv(c, NULL), WEFT_EAGAIN);
    /* select */
    weft_case ok1[2] = {{c, WEFT_SEND, &v, 0}, {z, WEFT_RECV, NULL, 0}};
    CHECK_EQ(weft_select(ok1, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 2, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(ok1, 65537, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(ok1, 2, 2), WEFT_EINVAL);
    CHECK_EQ(weft_select(ok1, 2, -1), WEFT_EINVAL);
    weft_case badop[2] = {{c, WEFT_SEND, &v, 0}, {z, 0, NULL, 0}};
    CHECK_EQ(weft_select(badop, 2, 0), WEFT_EINVAL);
    badop[1].op = 3;
    CHECK_EQ(weft_select(badop, 2, 0), WEFT_EINVAL);
    badop[1].chan = NULL; /* an op is checked even on a NULL channel */
    CHECK_EQ(weft_select(badop, 2, 0), WEFT_EINVAL);
    weft_case nullelem[2] = {{c, WEFT_SEND, NULL, 0}, {z, WEFT_RECV, NULL, 0}};
    CHECK_EQ(weft_select(nullelem, 2, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(nullelem, 1, WEFT_NONBLOCK), WEFT_EINVAL);
    weft_case zsend[1] = {{z, WEFT_SEND, NULL, 0}}; /* size 0: NULL is fine */
    CHECK_EQ(weft_select(zsend, 1, WEFT_NONBLOCK), WEFT_EAGAIN);
    /* Nothing happened to c through all that. */
    CHECK_EQ(weft_chan_len(c), 0);
    /* close */
    CHECK_EQ(weft_chan_close(NULL), WEFT_EINVAL);

    /* Outside a task. */
    send64(c, 5);
    struct err_ctx e = {c, 3, 0};
    pthread_t th;
    CHECK_EQ(pthread_create(&th, NULL, err_thread, &e), 0);
    CHECK_EQ(pthread_join(th, NULL), 0);
    CHECK_EQ(e.ok, 1);
    CHECK_EQ(recv64(c), 5);

    /* Freeing a channel a task is blocked on: refused with a warning. */
    weft_chan *b = mk(8, 0);
    struct err_ctx eb = {b, 0, 0};
    go(err_blocked_recv, &eb);
    for (int i = 0; i < 100; i++)
        weft_yield();
    if (weft_procs() == 1) {
        weft_chan_free(b); /* the receiver is parked: not freed */
        CHECK_EQ(weft_chan_cap(b), 0);
    }
    CHECK_OK(weft_chan_close(b));
    CHECK_EQ(weft_chan_close(b), WEFT_ECLOSED);
    while (atomic_load(&eb.ok) != 2)
        weft_yield();
    weft_chan_free(b);

    CHECK_OK(weft_chan_close(c));
    CHECK_EQ(weft_chan_send(c, &v), WEFT_ECLOSED);
    CHECK_EQ(weft_chan_close(c), WEFT_ECLOSED);
    weft_chan_free(c);
    weft_chan_free(z);
}

void t_chan_errors(void)
{
    /* No run: nothing can be made, and everything else is refused. */
    CHECK(weft_chan_make(8, 1) == NULL);
    int64_t v = 0;
    CHECK_EQ(weft_chan_send(NULL, &v), WEFT_ENOTASK);
    CHECK_EQ(weft_chan_recv(NULL, &v), WEFT_ENOTASK);
    CHECK_EQ(weft_chan_try_send(NULL, &v), WEFT_ENOTASK);
    CHECK_EQ(weft_chan_try_recv(NULL, &v), WEFT_ENOTASK);
    CHECK_EQ(weft_chan_close(NULL), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 0, 0), WEFT_ENOTASK);
    /* Argument errors come first, outside a task too. */
    CHECK_EQ(weft_select(NULL, 1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, -1, 0), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, INT_MIN, WEFT_NONBLOCK), WEFT_EINVAL);
    CHECK_EQ(weft_select(NULL, 0, 2), WEFT_EINVAL);
    CHECK_EQ(weft_chan_len(NULL), 0);
    CHECK_EQ(weft_chan_cap(NULL), 0);
    weft_chan_free(NULL);
    t_run(errors_main, NULL, 1);
    t_run(errors_main, NULL, 2);
}

/* ---- chan_select_close_free: free a channel a woken select still had ---- */

/*
 * A select parked on a and b is woken; before it runs again, the program
 * frees a at once (right after closing it, or after completing a select
 * case on it) and makes channels of the same allocation size class with
 * larger elements, which would take a's memory if it were released. The
 * select must not touch a's memory after it was reused: it must return
 * the right case, write nothing beyond its 4-byte element (the guard after
 * it; under ASan the guard is poisoned), and a's memory must not come back
 * from the allocator until the select is done with it.
 *
 *   SCF_CLOSE_WON   a closed: the select's receive on a wins (ok 0, zeroed)
 *   SCF_CLOSE_LOST  b's sender wins, then a is closed (its waiter loses)
 *   SCF_SEND_WON    a's receiver completes the select's send on a; a is
 *                   freed without a close
 *   SCF_SAME_CHAN   two cases on a (receive and send), a closed
 */
enum { SCF_CLOSE_WON, SCF_CLOSE_LOST, SCF_SEND_WON, SCF_SAME_CHAN, SCF_N };

#define SCF_GUARD 60
#define SCF_REUSE 4

struct scf {
    weft_chan *a, *b, *done;
    int scenario;
    struct task *_Atomic task; /* the selector, once it runs */
    int r, ok;
    struct {
        int32_t v;                      /* the element of a's receive case */
        unsigned char guard[SCF_GUARD]; /* must stay 0xA5 */
    } buf;
    int32_t vb;
};

static void scf_selector(void *arg)
{
    struct scf *s = arg;
    atomic_store(&s->task, k_task_self());
    int32_t out = 5;
    weft_case cs[3];
    int n = 2;
    switch (s->scenario) {
    case SCF_SEND_WON:
        cs[0] = (weft_case){s->a, WEFT_SEND, &out, -9};
        cs[1] = (weft_case){s->b, WEFT_RECV, &s->vb, -9};
        break;
    case SCF_SAME_CHAN:
        cs[0] = (weft_case){s->a, WEFT_RECV, &s->buf.v, -9};
        cs[1] = (weft_case){s->b, WEFT_RECV, &s->vb, -9};
        cs[2] = (weft_case){s->a, WEFT_SEND, &out, -9};
        n = 3;
        break;
    default:
        cs[0] = (weft_case){s->a, WEFT_RECV, &s->buf.v, -9};
        cs[1] = (weft_case){s->b, WEFT_RECV, &s->vb, -9};
        break;
    }
    s->r = weft_select(cs, n, 0);
    s->ok = s->r >= 0 ? cs[s->r].ok : -99;
    done_signal(s->done);
}

/* Yields until the selector is parked in its select (white box). */
static void scf_wait_parked(struct scf *s)
{
    struct task *t;
    while ((t = atomic_load(&s->task)) == NULL || atomic_load(&t->state) != TASK_WAITING)
        weft_yield();
}

static void scf_round(int scenario, bool forced)
{
    static struct scf s; /* one round at a time */
    memset(&s, 0, sizeof s);
    s.scenario = scenario;
    s.a = mk(sizeof(int32_t), 0);
    s.b = mk(sizeof(int32_t), 0);
    s.done = mk(0, 1);
    s.buf.v = 7;
    s.vb = -1;
    memset(s.buf.guard, 0xA5, SCF_GUARD);
#ifdef WEFT_SAN_ASAN
    ASAN_POISON_MEMORY_REGION(s.buf.guard, SCF_GUARD);
#endif
    go(scf_selector, &s);
    scf_wait_parked(&s);

    /* Forced: the selector is readied into this proc (procs 1) and runs
     * only once this task blocks in done_wait, after a was freed and the
     * reuse channels were made. */
    CHECK_OK(weft_nopreempt_begin());
    int32_t got = -1;
    switch (scenario) {
    case SCF_CLOSE_WON:
    case SCF_SAME_CHAN:
        CHECK_OK(weft_chan_close(s.a));
        break;
    case SCF_CLOSE_LOST: {
        int32_t v = 42;
        CHECK_OK(weft_chan_send(s.b, &v));
        CHECK_OK(weft_chan_close(s.a));
        break;
    }
    case SCF_SEND_WON:
        CHECK_EQ(weft_chan_recv(s.a, &got), 1);
        break;
    }
    weft_chan_free(s.a);
    weft_chan *x[SCF_REUSE];
    for (int i = 0; i < SCF_REUSE; i++)
        x[i] = mk(64, 0); /* same size class as a: no buffer */
    CHECK_OK(weft_nopreempt_end());
    done_wait(s.done, 1);

#ifdef WEFT_SAN_ASAN
    ASAN_UNPOISON_MEMORY_REGION(s.buf.guard, SCF_GUARD);
#endif
    for (int i = 0; i < SCF_GUARD; i++)
        CHECK_EQ(s.buf.guard[i], 0xA5);
    switch (scenario) {
    case SCF_CLOSE_WON:
        CHECK_EQ(s.r, 0);
        CHECK_EQ(s.ok, 0);
        CHECK_EQ(s.buf.v, 0);
        CHECK_EQ(s.vb, -1);
        break;
    case SCF_CLOSE_LOST:
        CHECK_EQ(s.r, 1);
        CHECK_EQ(s.ok, 1);
        CHECK_EQ(s.vb, 42);
        CHECK_EQ(s.buf.v, 7);
        break;
    case SCF_SEND_WON:
        CHECK_EQ(got, 5);
        CHECK_EQ(s.r, 0);
        CHECK_EQ(s.ok, 0);
        CHECK_EQ(s.vb, -1);
        break;
    case SCF_SAME_CHAN:
        if (s.r == 0) {
            CHECK_EQ(s.ok, 0);
            CHECK_EQ(s.buf.v, 0);
        } else {
            CHECK_EQ(s.r, 2);
            CHECK_EQ(s.ok, WEFT_ECLOSED);
            CHECK_EQ(s.buf.v, 7);
        }
        CHECK_EQ(s.vb, -1);
        break;
    }
    if (forced) {
        /* a's memory was not handed out while the select could still
         * touch it... */
        for (int i = 0; i < SCF_REUSE; i++)
            CHECK(x[i] != s.a);
        /* ...and it was given back once the select was done with it (the
         * select ran on this proc, whose cache hands out the object freed
         * last first; the bound only allows for batches moving). */
        static weft_chan *y[1024];
        int ny = 0;
        bool back = false;
        while (ny < 1024 && !back) {
            y[ny] = mk(sizeof(int32_t), 0);
            back = y[ny++] == s.a;
        }
        CHECK(back);
        for (int i = 0; i < ny; i++)
            weft_chan_free(y[i]);
    }
    for (int i = 0; i < SCF_REUSE; i++) {
        /* The reuse channels work. */
        CHECK_EQ(weft_chan_len(x[i]), 0);
        CHECK_EQ(weft_chan_try_recv(x[i], NULL), WEFT_EAGAIN);
        weft_chan_free(x[i]);
    }
    weft_chan_free(s.b);
    weft_chan_free(s.done);
}

static void select_close_free_main(void *arg)
{
    int rounds = *(int *)arg;
    bool forced = weft_procs() == 1;
    for (int round = 0; round < rounds; round++)
        scf_round(round % SCF_N, forced);
}

void t_chan_select_close_free(void)
{
    int rounds = 40;
    t_run(select_close_free_main, &rounds, 1);
    rounds = 400;
    t_run(select_close_free_main, &rounds, 2);
    t_run(select_close_free_main, &rounds, 4);
}

/* ---- chan_stress_mpmc: producers and consumers, exactly once, FIFO ---- */

#define MP_P 8
#define MP_C 8

struct mp {
    weft_chan *c, *quit, *pdone, *cdone;
    int64_t n;
    _Atomic unsigned char *seen;
    _Atomic int64_t total;
};

struct mp_worker {
    struct mp *m;
    int id;
};

static void mp_producer(void *arg)
{
    struct mp_worker *w = arg;
    struct mp *m = w->m;
    for (int64_t seq = 0; seq < m->n; seq++) {
        int64_t v = ((int64_t)w->id << 32) | seq;
        switch (w->id % 3) {
        case 0:
            CHECK_OK(weft_chan_send(m->c, &v));
            break;
        case 1: {
            int r;
            while ((r = weft_chan_try_send(m->c, &v)) == WEFT_EAGAIN)
                weft_yield();
            CHECK_OK(r);
            break;
        }
        default: {
            weft_case cs[2] = {{m->quit, WEFT_RECV, NULL, 0}, {m->c, WEFT_SEND, &v, -9}};
            CHECK_EQ(weft_select(cs, 2, 0), 1);
            CHECK_EQ(cs[1].ok, 0);
            break;
        }
        }
    }
    done_signal(m->pdone);
}

static void mp_consumer(void *arg)
{
    struct mp_worker *w = arg;
    struct mp *m = w->m;
    int64_t last[MP_P];
    for (int p = 0; p < MP_P; p++)
        last[p] = -1;
    int64_t count = 0;
    for (;;) {
        int64_t v = -1;
        int r;
        switch (w->id % 3) {
        case 0:
            r = weft_chan_recv(m->c, &v);
            break;
        case 1:
            while ((r = weft_chan_try_recv(m->c, &v)) == WEFT_EAGAIN)
                weft_yield();
            break;
        default: {
            weft_case cs[2] = {{m->c, WEFT_RECV, &v, -9}, {m->quit, WEFT_RECV, NULL, 0}};
            CHECK_EQ(weft_select(cs, 2, 0), 0);
            r = cs[0].ok;
            break;
        }
        }
        if (r == 0)
            break;
        CHECK_EQ(r, 1);
        int p = (int)(v >> 32);
        int64_t seq = v & 0xffffffff;
        CHECK(p >= 0 && p < MP_P && seq < m->n);
        CHECK_GT(seq, last[p]);
        last[p] = seq;
        CHECK_EQ(atomic_fetch_add(&m->seen[p * m->n + seq], 1), 0);
        count++;
    }
    atomic_fetch_add(&m->total, count);
    done_signal(m->cdone);
}

static void mpmc_main(void *arg)
{
    int64_t n = *(int64_t *)arg;
    static const size_t caps[] = {0, 1, 64};
    for (size_t k = 0; k < 3; k++) {
        struct mp m = {mk(8, caps[k]), mk(0, 0), mk(0, MP_P), mk(0, MP_C), n, NULL, 0};
        m.seen = calloc((size_t)(MP_P * n), 1);
        CHECK(m.seen != NULL);
        struct mp_worker pw[MP_P], cw[MP_C];
        for (int i = 0; i < MP_C; i++) {
            cw[i] = (struct mp_worker){&m, i};
            go(mp_consumer, &cw[i]);
        }
        for (int i = 0; i < MP_P; i++) {
            pw[i] = (struct mp_worker){&m, i};
            go(mp_producer, &pw[i]);
        }
        done_wait(m.pdone, MP_P);
        CHECK_OK(weft_chan_close(m.c));
        done_wait(m.cdone, MP_C);
        CHECK_EQ(atomic_load(&m.total), MP_P * n);
        for (int64_t i = 0; i < MP_P * n; i++)
            CHECK_EQ(m.seen[i], 1);
        free((void *)m.seen);
        weft_chan_free(m.c);
        weft_chan_free(m.quit);
        weft_chan_free(m.pdone);
        weft_chan_free(m.cdone);
    }
}

void t_chan_stress_mpmc(void)
{
    int64_t n = t_count(10000);
    run_all_procs(mpmc_main, &n);
}

/* ---- chan_stress_select3: 3-way select senders ---- */

#define S3_S 6
#define S3_R 5 /* 3 bound to one channel each, 2 selecting over all */

struct s3 {
    weft_chan *ch[3], *sdone, *rdone;
    int64_t n;
    _Atomic unsigned char *seen;
    _Atomic int64_t total;
};

struct s3_worker {
    struct s3 *s;
    int id;
};

static void s3_sender(void *arg)
{
    struct s3_worker *w = arg;
    struct s3 *s = w->s;
    for (int64_t seq = 0; seq < s->n; seq++) {
        int64_t v = ((int64_t)w->id << 32) | seq;
        weft_case cs[3] = {{s->ch[0], WEFT_SEND, &v, -9},
                           {s->ch[1], WEFT_SEND, &v, -9},
                           {s->ch[2], WEFT_SEND, &v, -9}};
        int r = weft_select(cs, 3, 0);
        CHECK(r >= 0 && r < 3);
        CHECK_EQ(cs[r].ok, 0);
    }
    done_signal(s->sdone);
}

static void s3_receiver(void *arg)
{
    struct s3_worker *w = arg;
    struct s3 *s = w->s;
    int64_t last[3][S3_S];
    for (int k = 0; k < 3; k++)
        for (int p = 0; p < S3_S; p++)
            last[k][p] = -1;
    int64_t v, count = 0;
    weft_case cs[3];
    int open = 3;
    for (int k = 0; k < 3; k++)
        cs[k] = (weft_case){s->ch[k], WEFT_RECV, &v, -9};
    if (w->id < 3) { /* bound to one channel */
        for (int k = 0; k < 3; k++)
            if (k != w->id)
                cs[k].chan = NULL;
        open = 1;
    }
    while (open > 0) {
        int r = weft_select(cs, 3, 0);
        CHECK(r >= 0 && r < 3);
        if (cs[r].ok == 0) {
            cs[r].chan = NULL;
            open--;
            continue;
        }
        CHECK_EQ(cs[r].ok, 1);
        int p = (int)(v >> 32);
        int64_t seq = v & 0xffffffff;
        CHECK(p >= 0 && p < S3_S && seq < s->n);
        CHECK_GT(seq, last[r][p]);
        last[r][p] = seq;
        CHECK_EQ(atomic_fetch_add(&s->seen[p * s->n + seq], 1), 0);
        count++;
    }
    atomic_fetch_add(&s->total, count);
    done_signal(s->rdone);
}

static void select3_main(void *arg)
{
    int64_t n = *(int64_t *)arg;
    struct s3 s = {{mk(8, 0), mk(8, 0), mk(8, 2)}, mk(0, S3_S), mk(0, S3_R), n, NULL, 0};
    s.seen = calloc((size_t)(S3_S * n), 1);
    CHECK(s.seen != NULL);
    struct s3_worker sw[S3_S], rw[S3_R];
    for (int i = 0; i < S3_R; i++) {
        rw[i] = (struct s3_worker){&s, i};
        go(s3_receiver, &rw[i]);
    }
    for (int i = 0; i < S3_S; i++) {
        sw[i] = (struct s3_worker){&s, i};
        go(s3_sender, &sw[i]);
    }
    done_wait(s.sdone, S3_S);
    for (int k = 0; k < 3; k++)
        CHECK_OK(weft_chan_close(s.ch[k]));
    done_wait(s.rdone, S3_R);
    CHECK_EQ(atomic_load(&s.total), S3_S * n);
    for (int64_t i = 0; i < S3_S * n; i++)
        CHECK_EQ(s.seen[i], 1);
    free((void *)s.seen);
}

void t_chan_stress_select3(void)
{
    int64_t n = t_count(10000);
    run_all_procs(select3_main, &n);
}

/* ---- chan_sieve: the prime sieve with 300 filter tasks ---- */

#define SIEVE_N 300

struct filter {
    weft_chan *in, *out;
    int64_t prime;
};

static void sieve_generate(void *arg)
{
    weft_chan *c = arg;
    for (int64_t i = 2;; i++)
        if (weft_chan_send(c, &i) != 0)
            return;
}

static void sieve_filter(void *arg)
{
    struct filter *f = arg;
    int64_t v;
    while (weft_chan_recv(f->in, &v) == 1)
        if (v % f->prime != 0 && weft_chan_send(f->out, &v) != 0)
            return;
}

static void sieve_main(void *arg)
{
    struct filter *f = arg; /* SIEVE_N of them, one set per run */
    int64_t want[SIEVE_N];
    int np = 0;
    for (int64_t x = 2; np < SIEVE_N; x++) {
        int prime = 1;
        for (int i = 0; i < np && want[i] * want[i] <= x; i++)
            if (x % want[i] == 0)
                prime = 0;
        if (prime)
            want[np++] = x;
    }
    CHECK_EQ(want[SIEVE_N - 1], 1987);

    weft_chan *c = mk(8, 0);
    go(sieve_generate, c);
    for (int i = 0; i < SIEVE_N; i++) {
        int64_t p = recv64(c);
        CHECK_EQ(p, want[i]);
        f[i] = (struct filter){c, mk(8, 0), p};
        go(sieve_filter, &f[i]);
        c = f[i].out;
    }
    /* The generator and the filters stay blocked; the run ends here. */
}

void t_chan_sieve(void)
{
    static struct filter f[4][SIEVE_N];
    for (int i = 0; i < 4; i++)
        t_run(sieve_main, f[i], t_procs_list[i]);
}

/* ---- chan_select64: one select over 64 channels ---- */

#define S64 64

struct s64 {
    weft_chan *ch[S64];
    int64_t n;
};

struct s64_worker {
    struct s64 *s;
    int id;
};

static void s64_producer(void *arg)
{
    struct s64_worker *w = arg;
    for (int64_t seq = 0; seq < w->s->n; seq++)
        send64(w->s->ch[w->id], ((int64_t)w->id << 32) | seq);
    CHECK_OK(weft_chan_close(w->s->ch[w->id]));
}

static void select64_main(void *arg)
{
    struct s64 s;
    s.n = *(int64_t *)arg;
    static struct s64_worker w[S64];
    weft_case cs[S64];
    int64_t v, next[S64] = {0};
    for (int i = 0; i < S64; i++) {
        s.ch[i] = mk(8, (size_t)(i % 4 == 3 ? 2 : 0));
        cs[i] = (weft_case){s.ch[i], WEFT_RECV, &v, -9};
    }
    for (int i = 0; i < S64; i++) {
        w[i] = (struct s64_worker){&s, i};
        go(s64_producer, &w[i]);
    }
    int open = S64;
    int64_t total = 0;
    while (open > 0) {
        int r = weft_select(cs, S64, 0);
        CHECK(r >= 0 && r < S64);
        if (cs[r].ok == 0) {
            cs[r].chan = NULL;
            open--;
            continue;
        }
        CHECK_EQ(cs[r].ok, 1);
        CHECK_EQ(v >> 32, r);
        CHECK_EQ(v & 0xffffffff, next[r]);
        next[r]++;
        total++;
    }
    CHECK_EQ(total, S64 * s.n);
    for (int i = 0; i < S64; i++) {
        CHECK_EQ(next[i], s.n);
        weft_chan_free(s.ch[i]);
    }
}

void t_chan_select64(void)
{
    int64_t n = t_count(1000);
    run_all_procs(select64_main, &n);
}

/* ---- chan_model_seq: one task against a queue model ---- */

/* The model of one channel as seen by a single task (so an unbuffered
 * channel never has a partner). Values are counters; an element's bytes
 * are derived from its counter. */
struct model {
    size_t cap, size;
    int64_t q[8];
    size_t head, len;
    int closed;
};

static void model_fill(unsigned char *p, size_t size, int64_t v)
{
    for (size_t b = 0; b < size; b++)
        p[b] = (unsigned char)(v * 29 + (int64_t)b * 3 + 1);
}

static int model_send_ready(const struct model *m)
{
    return m->closed || m->len < m->cap;
}

static int model_recv_ready(const struct model *m)
{
    return m->len > 0 || m->closed;
}

/* Applies a send the model says can proceed; returns the expected code. */
static int model_send(struct model *m, int64_t v)
{
    if (m->closed)
        return WEFT_ECLOSED;
    m->q[(m->head + m->len) % 8] = v;
    m->len++;
    return 0;
}

/* Applies a receive that can proceed; checks what was received. */
static int model_recv(struct model *m, int r, const unsigned char *got)
{
    unsigned char want[16];
    if (m->len > 0) {
        CHECK_EQ(r, 1);
        model_fill(want, m->size, m->q[m->head]);
        CHECK(memcmp(got, want, m->size) == 0);
        m->head = (m->head + 1) % 8;
        m->len--;
    } else {
        CHECK(m->closed);
        CHECK_EQ(r, 0);
        memset(want, 0, sizeof want);
        CHECK(memcmp(got, want, m->size) == 0);
    }
    return r;
}

static void model_seq_main(void *arg)
{
    uint64_t seed = *(uint64_t *)arg;
    static const size_t sizes[] = {0, 1, 4, 13};
    int64_t counter = 0;
    for (int iter = 0; iter < 300; iter++) {
        struct model m = {0};
        m.cap = (size_t)rnd_n(&seed, 7);
        m.size = sizes[rnd_n(&seed, 4)];
        weft_chan *c = mk(m.size, m.cap);
        for (int op = 0; op < 200; op++) {
            unsigned char in[16], out[16], in2[16];
            int64_t v = counter++;
            model_fill(out, m.size, v);
            memset(in, 0xcc, sizeof in);
            int r;
            switch (rnd_n(&seed, 9)) {
            case 0: /* try_send */
                r = weft_chan_try_send(c, out);
                CHECK_EQ(r, model_send_ready(&m) ? model_send(&m, v) : WEFT_EAGAIN);
                break;
            case 1: /* try_recv */
                r = weft_chan_try_recv(c, in);
                if (model_recv_ready(&m))
                    model_recv(&m, r, in);
                else
                    CHECK_EQ(r, WEFT_EAGAIN);
                break;
            case 2: /* blocking send, when it cannot block */
                if (model_send_ready(&m))
                    CHECK_EQ(weft_chan_send(c, out), model_send(&m, v));
                break;
            case 3: /* blocking receive, when it cannot block */
                if (model_recv_ready(&m))
                    model_recv(&m, weft_chan_recv(c, in), in);
                break;
            case 4:
                CHECK_EQ(weft_chan_len(c), m.len);
                CHECK_EQ(weft_chan_cap(c), m.cap);
                break;
            case 5:
            case 6:
            case 7: { /* select over 1-4 cases on c and NULL channels */
                int n = 1 + (int)rnd_n(&seed, 4), any = 0;
                weft_case cs[4];
                for (int k = 0; k < n; k++) {
                    int op2 = rnd_n(&seed, 2) ? WEFT_SEND : WEFT_RECV;
                    weft_chan *ch = rnd_n(&seed, 4) ? c : NULL;
                    cs[k] = (weft_case){ch, op2, op2 == WEFT_SEND ? (void *)out : (void *)in2, -9};
                    if (ch != NULL &&
                        (op2 == WEFT_SEND ? model_send_ready(&m) : model_recv_ready(&m)))
                        any = 1;
                }
                int nb = !any || rnd_n(&seed, 2);
                memset(in2, 0xcc, sizeof in2);
                r = weft_select(cs, n, nb ? WEFT_NONBLOCK : 0);
                if (!any) {
                    CHECK_EQ(r, WEFT_EAGAIN);
                    break;
                }
                CHECK(r >= 0 && r < n);
                CHECK(cs[r].chan == c);
                if (cs[r].op == WEFT_SEND) {
                    CHECK(model_send_ready(&m));
                    CHECK_EQ(cs[r].ok, model_send(&m, v));
                } else {
                    CHECK(model_recv_ready(&m));
                    model_recv(&m, cs[r].ok, in2);
                }
                break;
            }
            default: /* close, rarely */
                if (rnd_n(&seed, 20) == 0) {
                    CHECK_EQ(weft_chan_close(c), m.closed ? WEFT_ECLOSED : 0);
                    m.closed = 1;
                }
                break;
            }
        }
        weft_chan_free(c);
    }
}

void t_chan_model_seq(void)
{
    uint64_t seed = test_seed("chan_model_seq");
    t_run(model_seq_main, &seed, 1);
}

/* ---- chan_model_multi: random operations by many tasks ---- */

/*
 * Producers and consumers pick at random among every way to send or
 * receive (blocking, try with retry, select over a random subset of the
 * channels, non-blocking select with retry). The reference is what channel
 * semantics promise whatever the interleaving: every value is received
 * exactly once, a consumer sees each producer's values on each channel in
 * the order they were sent, len never exceeds cap, and after the close
 * every consumer drains and stops.
 */
#define MM_CH 3
#define MM_P 4
#define MM_C 4

struct mm {
    weft_chan *ch[MM_CH], *pdone, *cdone;
    int64_t n;
    uint64_t seed;
    _Atomic unsigned char *seen;
    _Atomic int64_t total;
};

struct mm_worker {
    struct mm *m;
    int id;
};

/*
 * Progress: a producer may block on one channel, so a consumer blocks only
 * in a select over every channel still open; retry loops pick a new
 * channel (or subset) on every attempt. No interleaving can then leave
 * every task waiting on a channel nobody serves.
 */
static void mm_producer(void *arg)
{
    struct mm_worker *w = arg;
    struct mm *m = w->m;
    uint64_t rs = m->seed ^ (uint64_t)(w->id + 1) * 0x51ed27;
    for (int64_t seq = 0; seq < m->n; seq++) {
        int64_t v = ((int64_t)w->id << 32) | seq;
        int op = (int)rnd_n(&rs, 4), r;
        if (op == 0) {
            CHECK_OK(weft_chan_send(m->ch[rnd_n(&rs, MM_CH)], &v));
        } else if (op == 1) {
            while ((r = weft_chan_try_send(m->ch[rnd_n(&rs, MM_CH)], &v)) == WEFT_EAGAIN)
                weft_yield();
            CHECK_OK(r);
        } else {
            int nb = op == 3;
            for (;;) {
                weft_case cs[MM_CH + 1];
                int n = 0, k = (int)rnd_n(&rs, MM_CH);
                for (int j = 0; j < MM_CH; j++)
                    if (j == k || rnd_n(&rs, 2))
                        cs[n++] = (weft_case){m->ch[j], WEFT_SEND, &v, -9};
                if (rnd_n(&rs, 4) == 0)
                    cs[n++] = (weft_case){NULL, WEFT_RECV, NULL, -9};
                r = weft_select(cs, n, nb ? WEFT_NONBLOCK : 0);
                if (r == WEFT_EAGAIN) {
                    weft_yield();
                    continue;
                }
                CHECK(r >= 0 && r < n);
                CHECK(cs[r].chan != NULL);
                CHECK_EQ(cs[r].ok, 0);
                break;
            }
        }
        int k = (int)rnd_n(&rs, MM_CH);
        CHECK_LE(weft_chan_len(m->ch[k]), weft_chan_cap(m->ch[k]));
    }
    done_signal(m->pdone);
}

static void mm_consumer(void *arg)
{
    struct mm_worker *w = arg;
    struct mm *m = w->m;
    uint64_t rs = m->seed ^ (uint64_t)(w->id + 1) * 0x7f4a7c15;
    int64_t last[MM_CH][MM_P];
    int closed[MM_CH] = {0}, open = MM_CH;
    for (int k = 0; k < MM_CH; k++)
        for (int p = 0; p < MM_P; p++)
            last[k][p] = -1;
    int64_t count = 0;
    while (open > 0) {
        int64_t v = -1;
        int k, r = WEFT_EAGAIN, op = (int)rnd_n(&rs, 3), tries = 0;
        while (r == WEFT_EAGAIN) {
            if (tries++ > 0)
                weft_yield();
            do
                k = (int)rnd_n(&rs, MM_CH);
            while (closed[k]);
            if (op == 1) {
                r = weft_chan_try_recv(m->ch[k], &v);
                continue;
            }
            /* op 0: a blocking select over every open channel, in a random
             * case order; op 2: a non-blocking one over a random subset. */
            weft_case cs[MM_CH];
            int which[MM_CH], n = 0;
            for (int j0 = 0; j0 < MM_CH; j0++) {
                int j = (j0 + k) % MM_CH;
                if (!closed[j] && (op == 0 || j == k || rnd_n(&rs, 2))) {
                    which[n] = j;
                    cs[n++] = (weft_case){m->ch[j], WEFT_RECV, &v, -9};
                }
            }
            int idx = weft_select(cs, n, op == 2 ? WEFT_NONBLOCK : 0);
            if (idx == WEFT_EAGAIN)
                continue;
            CHECK(idx >= 0 && idx < n);
            k = which[idx];
            r = cs[idx].ok;
        }
        if (r == 0) {
            CHECK_EQ(v, 0);
            closed[k] = 1;
            open--;
            continue;
        }
        CHECK_EQ(r, 1);
        int p = (int)(v >> 32);
        int64_t seq = v & 0xffffffff;
        CHECK(p >= 0 && p < MM_P && seq < m->n);
        CHECK_GT(seq, last[k][p]);
        last[k][p] = seq;
        CHECK_EQ(atomic_fetch_add(&m->seen[p * m->n + seq], 1), 0);
        count++;
    }
    atomic_fetch_add(&m->total, count);
    done_signal(m->cdone);
}

static void model_multi_main(void *arg)
{
    struct mm *m = arg;
    static const size_t caps[MM_CH] = {0, 1, 4};
    for (int k = 0; k < MM_CH; k++)
        m->ch[k] = mk(8, caps[k]);
    m->pdone = mk(0, MM_P);
    m->cdone = mk(0, MM_C);
    atomic_store(&m->total, 0);
    memset((void *)m->seen, 0, (size_t)(MM_P * m->n));
    struct mm_worker pw[MM_P], cw[MM_C];
    for (int i = 0; i < MM_C; i++) {
        cw[i] = (struct mm_worker){m, i};
        go(mm_consumer, &cw[i]);
    }
    for (int i = 0; i < MM_P; i++) {
        pw[i] = (struct mm_worker){m, i};
        go(mm_producer, &pw[i]);
    }
    done_wait(m->pdone, MM_P);
    for (int k = 0; k < MM_CH; k++)
        CHECK_OK(weft_chan_close(m->ch[k]));
    done_wait(m->cdone, MM_C);
    CHECK_EQ(atomic_load(&m->total), MM_P * m->n);
    for (int64_t i = 0; i < MM_P * m->n; i++)
        CHECK_EQ(m->seen[i], 1);
}

void t_chan_model_multi(void)
{
    static struct mm m;
    m.n = t_count(5000);
    m.seed = test_seed("chan_model_multi");
    m.seen = calloc((size_t)(MM_P * m.n), 1);
    CHECK(m.seen != NULL);
    for (int i = 0; i < 4; i++) {
        m.seed += (uint64_t)i;
        t_run(model_multi_main, &m, t_procs_list[i]);
    }
    free((void *)m.seen);
}

/* ---- chan_handoff_fair: a hand-off pair does not starve its proc's queue ----
 *
 * Two tasks pass a token back and forth. Each hand-off readies the partner
 * into runnext, so without a rule against it the pair would run forever
 * and a task queued behind them on the same proc would never run. The
 * third task yields 1000 times, each time going to the back of the ring
 * while the pair keeps going (the pair stops when the third is done, or
 * after a bound that fails the test). Every 61st switch serves the ring
 * before runnext (sched.c), so the wait is some 61,000 hand-offs; the
 * bound is generous so that only starvation trips it. */

struct hf {
    weft_chan *ping, *pong, *done;
    _Atomic int third_ran;
    int64_t rounds, deadline;
    int third_in_time; /* it had run when the pair stopped */
};

static void hf_third(void *arg)
{
    struct hf *h = arg;
    /* Each yield puts it at the back of the ring, behind the pair. */
    for (int i = 0; i < 1000; i++)
        weft_yield();
    atomic_store(&h->third_ran, 1);
    done_signal(h->done);
}

static void hf_echo(void *arg)
{
    struct hf *h = arg;
    int64_t v;
    while (weft_chan_recv(h->ping, &v) == 1)
        send64(h->pong, v);
    done_signal(h->done);
}

static void hf_driver(void *arg)
{
    struct hf *h = arg;
    send64(h->ping, 0); /* the pair is running */
    CHECK_EQ(recv64(h->pong), 0);
    go(hf_third, h);
    int64_t i = 1;
    while (!atomic_load(&h->third_ran) && weft_now() < h->deadline) {
        send64(h->ping, i);
        CHECK_EQ(recv64(h->pong), i);
        i++;
    }
    h->rounds = i;
    h->third_in_time = atomic_load(&h->third_ran);
    CHECK_OK(weft_chan_close(h->ping));
    done_signal(h->done);
}

static void handoff_fair_main(void *arg)
{
    struct hf *h = arg;
    h->ping = mk(8, 0);
    h->pong = mk(8, 0);
    h->done = mk(0, 0);
    atomic_store(&h->third_ran, 0);
    h->deadline = weft_now() + 2000000000LL * t_slack();
    go(hf_echo, h);
    go(hf_driver, h);
    done_wait(h->done, 3);
    fprintf(stderr, "procs %d: %lld hand-offs; the queued task %s\n", weft_procs(),
            (long long)h->rounds, h->third_in_time ? "ran meanwhile" : "starved");
    CHECK(h->third_in_time);
}

void t_chan_handoff_fair(void)
{
    static struct hf h;
    t_run(handoff_fair_main, &h, 1);
    t_run(handoff_fair_main, &h, 2);
}
