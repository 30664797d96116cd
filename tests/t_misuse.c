/* SPDX-License-Identifier: MIT */
/*
 * t_misuse.c — weft used against its rules: each misuse must give the
 * documented code, or, for a rule whose breaking leaves nothing sane to
 * return, a message naming what broke, the dump, and an abort (F_CRASH
 * cases, whose message tests/test_crash.py checks).
 *
 *   misuse_block_call     a weft call that needs a proc between
 *                         weft_block_begin and weft_block_end (the thread
 *                         holds none): abort with the message and the dump
 *                         (it used to be a segfault in the scheduler);
 *   misuse_block_select   the same with weft_select, which took its task
 *                         from the thread without that check;
 *   misuse_block_allowed  the calls allowed there work there;
 *   misuse_chan_freed     a channel used after weft_chan_free: a message
 *                         naming the call, the dump, an abort;
 *   misuse_timer_freed    the same for a timer after weft_timer_free;
 *   misuse_env            a bad value of each WEFT_* variable makes weft_run
 *                         return WEFT_EINVAL (tests/test_misuse.py checks
 *                         that each message names its variable);
 *   misuse_api            the codes of docs/API.md's table that no other
 *                         case asserts directly: calls outside any run,
 *                         wakes owed to tasks a finished run discarded,
 *                         and closes under blocked calls (read, wait_fd,
 *                         write, accept);
 *   misuse_sync_garbage   sync objects never zeroed (three byte patterns):
 *                         every function refuses them with WEFT_EINVAL and
 *                         leaves them as they were, where before a
 *                         waitgroup's wait returned at once or parked for
 *                         ever.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "check.h"
#include "weft.h"

static void block_call_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_make(sizeof(int), 0);
    CHECK(c != NULL);
    int v = 7;
    weft_block_begin();
    fprintf(stderr, "misuse_block_call: sending inside the pair\n");
    int rc = weft_chan_send(c, &v);
    weft_block_end();
    fprintf(stderr, "misuse_block_call: not stopped (%d)\n", rc);
}

void t_misuse_block_call(void)
{
    t_run(block_call_main, NULL, 2);
}

static void block_select_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_make(sizeof(int), 0);
    CHECK(c != NULL);
    int v;
    weft_case cs[1] = {{c, WEFT_RECV, &v, 0}};
    weft_block_begin();
    fprintf(stderr, "misuse_block_select: selecting inside the pair\n");
    int rc = weft_select(cs, 1, 0);
    weft_block_end();
    fprintf(stderr, "misuse_block_select: not stopped (%d)\n", rc);
}

void t_misuse_block_select(void)
{
    t_run(block_select_main, NULL, 2);
}

static void chan_freed_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_make(sizeof(int), 1);
    CHECK(c != NULL);
    weft_chan_free(c);
    int v = 1;
    fprintf(stderr, "misuse_chan_freed: sending on a freed channel\n");
    int rc = weft_chan_try_send(c, &v);
    fprintf(stderr, "misuse_chan_freed: not stopped (%d)\n", rc);
}

void t_misuse_chan_freed(void)
{
    t_run(chan_freed_main, NULL, 2);
}

static void timer_freed_main(void *arg)
{
    (void)arg;
    weft_timer *t = weft_timer_new(3600 * 1000000000ll, 0);
    CHECK(t != NULL);
    weft_timer_free(t);
    fprintf(stderr, "misuse_timer_freed: stopping a freed timer\n");
    int rc = weft_timer_stop(t);
    fprintf(stderr, "misuse_timer_freed: not stopped (%d)\n", rc);
}

void t_misuse_timer_freed(void)
{
    t_run(timer_freed_main, NULL, 2);
}

static void block_allowed_main(void *arg)
{
    (void)arg;
    uint64_t id = weft_id();
    CHECK(id != 0);
    weft_block_begin();
    CHECK_EQ(weft_id(), id);
    CHECK(weft_now() > 0);
    CHECK_EQ(weft_procs(), 2);
    struct weft_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(weft_stats(&st));
    CHECK_GE(st.threads, 1);
    (void)weft_errno();
    weft_dump();
    weft_block_begin(); /* nested: nothing more */
    weft_block_end();
    weft_block_end();
    /* And after the pair, everything again. */
    CHECK_OK(weft_sleep(1000000));
}

void t_misuse_block_allowed(void)
{
    t_run(block_allowed_main, NULL, 2);
}

static void env_noop(void *arg)
{
    (void)arg;
}

void t_misuse_env(void)
{
    static const struct {
        const char *name, *bad;
    } vars[] = {
        {"WEFT_PROCS", "abc"},        {"WEFT_STACK", "-1"},           {"WEFT_PREEMPT", "2"},
        {"WEFT_SCHEDTRACE", "0"},     {"WEFT_AUTOBLOCK", "yes"},      {"WEFT_GUARD", "bogus"},
        {"WEFT_GUARD_BUDGET", "-7x"}, {"WEFT_POLLER_TIMER", "bogus"},
#ifdef _WIN32
        {"WEFT_IOCP_SKIP", "maybe"},
#endif
    };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        CHECK_OK(setenv(vars[i].name, vars[i].bad, 1));
        int rc = weft_run(env_noop, NULL, NULL);
        unsetenv(vars[i].name);
        fprintf(stderr, "misuse_env: %s=%s: %d\n", vars[i].name, vars[i].bad, rc);
        CHECK_EQ(rc, WEFT_EINVAL);
        CHECK_OK(weft_run(env_noop, NULL, NULL)); /* and fine again without it */
    }
}

/* Fills *obj with pattern, calls call(obj), which must give WEFT_EINVAL
 * and leave every byte as it was. */
#define GARBAGE(type, pattern, call)                                                               \
    do {                                                                                           \
        type obj_, copy_;                                                                          \
        memset(&obj_, (pattern), sizeof obj_);                                                     \
        memset(&copy_, (pattern), sizeof copy_);                                                   \
        type *o = &obj_;                                                                           \
        int rc_ = (call);                                                                          \
        fprintf(stderr, "misuse_sync_garbage: %02x %s: %d\n", (pattern), #call, rc_);              \
        CHECK_EQ(rc_, WEFT_EINVAL);                                                                \
        CHECK(memcmp(&obj_, &copy_, sizeof obj_) == 0);                                            \
    } while (0)

static void garbage_noop(void *arg)
{
    (void)arg;
}

static void sync_garbage_main(void *arg)
{
    (void)arg;
    static const int patterns[] = {0xa5, 0x5a, 0xff};
    weft_mutex held;
    memset(&held, 0, sizeof held);
    CHECK_OK(weft_mutex_lock(&held));
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        int p = patterns[i];
        GARBAGE(weft_mutex, p, weft_mutex_lock(o));
        GARBAGE(weft_mutex, p, weft_mutex_trylock(o));
        GARBAGE(weft_mutex, p, weft_mutex_unlock(o));
        GARBAGE(weft_rwmutex, p, weft_rwmutex_rlock(o));
        GARBAGE(weft_rwmutex, p, weft_rwmutex_runlock(o));
        GARBAGE(weft_rwmutex, p, weft_rwmutex_lock(o));
        GARBAGE(weft_rwmutex, p, weft_rwmutex_unlock(o));
        GARBAGE(weft_cond, p, weft_cond_wait(o, &held));
        GARBAGE(weft_cond, p, weft_cond_signal(o));
        GARBAGE(weft_cond, p, weft_cond_broadcast(o));
        GARBAGE(weft_waitgroup, p, weft_wg_add(o, 1));
        GARBAGE(weft_waitgroup, p, weft_wg_done(o));
        GARBAGE(weft_waitgroup, p, weft_wg_wait(o));
        GARBAGE(weft_once, p, weft_once_do(o, garbage_noop, NULL));
    }
    CHECK_OK(weft_mutex_unlock(&held));
}

void t_misuse_sync_garbage(void)
{
    t_run(sync_garbage_main, NULL, 2);
}

/* ---- misuse_api ---- */

static struct {
    weft_mutex m;
    weft_cond c;
    weft_waitgroup wg;
    _Atomic int parked;
} dis;

static void dis_mutex(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dis.parked, 1);
    (void)weft_mutex_lock(&dis.m); /* held by the first task: parks */
}

static void dis_cond(void *arg)
{
    (void)arg;
    weft_mutex cm;
    memset(&cm, 0, sizeof cm);
    CHECK_OK(weft_mutex_lock(&cm));
    atomic_fetch_add(&dis.parked, 1);
    (void)weft_cond_wait(&dis.c, &cm);
}

static void dis_wg(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dis.parked, 1);
    (void)weft_wg_wait(&dis.wg);
}

/* Leaves a task parked on each of dis's objects when the run ends (they
 * are discarded, as weft_run says). */
static void discard_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_mutex_lock(&dis.m));
    CHECK_OK(weft_wg_add(&dis.wg, 1));
    CHECK_OK(weft_go(dis_mutex, NULL));
    CHECK_OK(weft_go(dis_cond, NULL));
    CHECK_OK(weft_go(dis_wg, NULL));
    while (atomic_load(&dis.parked) < 3)
        CHECK_OK(weft_sleep(1000000));
    CHECK_OK(weft_sleep(20000000ll * t_slack())); /* each is parked by now */
}

static struct {
    weft_fd ln, a, b;
    _Atomic int stage;
} cl;

static void closed_reader(void *arg)
{
    (void)arg;
    char buf[8];
    atomic_store(&cl.stage, 1);
    CHECK_EQ(weft_read(cl.a, buf, sizeof buf), WEFT_ECLOSED);
    atomic_store(&cl.stage, 2);
}

static void closed_acceptor(void *arg)
{
    (void)arg;
    atomic_store(&cl.stage, 1);
    CHECK_EQ(weft_accept(cl.ln), WEFT_ECLOSED);
    atomic_store(&cl.stage, 2);
}

static void closed_writer(void *arg)
{
    (void)arg;
    /* More than any socket buffer holds, to a peer that never reads. */
    size_t n = 64u << 20;
    char *big = calloc(1, n);
    CHECK(big != NULL);
    atomic_store(&cl.stage, 1);
    CHECK_EQ(weft_write(cl.a, big, n), WEFT_ECLOSED);
    free(big);
    atomic_store(&cl.stage, 2);
}

static void closed_waiter(void *arg)
{
    (void)arg;
    atomic_store(&cl.stage, 1);
    CHECK_EQ(weft_wait_fd(cl.a, WEFT_READABLE, 0), WEFT_ECLOSED);
    atomic_store(&cl.stage, 2);
}

/* Starts fn, lets it block on its call, closes fd under it, and waits for
 * fn to have checked its WEFT_ECLOSED. */
static void close_under(void (*fn)(void *), weft_fd fd)
{
    atomic_store(&cl.stage, 0);
    CHECK_OK(weft_go(fn, NULL));
    while (atomic_load(&cl.stage) < 1)
        CHECK_OK(weft_sleep(1000000));
    CHECK_OK(weft_sleep(20000000ll * t_slack()));
    CHECK_OK(weft_close(fd));
    int64_t t0 = weft_now();
    while (atomic_load(&cl.stage) < 2) {
        CHECK_LT(weft_now() - t0, 10000000000ll * t_slack());
        CHECK_OK(weft_sleep(1000000));
    }
}

static void pair(void)
{
    cl.ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(cl.ln, 0);
    char addr[64];
    CHECK_OK(weft_addr(cl.ln, addr, sizeof addr));
    cl.b = weft_dial("tcp", addr, 10000000000ll);
    CHECK_GE(cl.b, 0);
    cl.a = weft_accept(cl.ln);
    CHECK_GE(cl.a, 0);
}

static void in_run_main(void *arg)
{
    (void)arg;
    /* An address in no module. */
    CHECK_EQ(weft_preemptible_module((const void *)(uintptr_t)16), WEFT_EINVAL);

    pair();
    char buf[8];
    CHECK_EQ(weft_write(cl.a, NULL, 1), WEFT_EINVAL);
    /* A size no buffer has, whose count the int64_t result could not carry. */
    CHECK_EQ(weft_write(cl.a, buf, SIZE_MAX), WEFT_EINVAL);
    CHECK_EQ(weft_read(cl.a, buf, (size_t)INT64_MAX + 1), WEFT_EINVAL);
    /* A buffer too small for the address; a negative dial timeout. */
    CHECK_EQ(weft_addr(cl.a, buf, 4), WEFT_EINVAL);
    CHECK_EQ(weft_dial("tcp", "127.0.0.1:1", -1), WEFT_EINVAL);
    CHECK_EQ(weft_addr(cl.a, NULL, 0), WEFT_EINVAL);
    /* An expired deadline on the listener. */
    CHECK_OK(weft_set_deadline(cl.ln, 1, 1));
    CHECK_EQ(weft_accept(cl.ln), WEFT_ETIMEDOUT);
    CHECK_OK(weft_set_deadline(cl.ln, 0, 0));
    /* Closed under a blocked call: read, then wait_fd, then accept. */
    close_under(closed_reader, cl.a);
    CHECK_EQ(weft_read(cl.a, buf, 1), WEFT_EBADF); /* after the close */
    CHECK_EQ(weft_addr(cl.a, buf, sizeof buf), WEFT_EBADF);
    CHECK_OK(weft_close(cl.b));
    CHECK_OK(weft_close(cl.ln));
    pair();
    close_under(closed_waiter, cl.a);
    CHECK_OK(weft_close(cl.b));
    CHECK_OK(weft_close(cl.ln));
    pair();
    close_under(closed_writer, cl.a);
    CHECK_OK(weft_close(cl.b));
    close_under(closed_acceptor, cl.ln);
}

void t_misuse_api(void)
{
    /* No run at all: every call that needs a task or a run. */
    char buf[8];
    int dummy[16] = {0};
    CHECK_EQ(weft_dial("tcp", "127.0.0.1:1", 0), WEFT_ENOTASK);
    CHECK_EQ(weft_accept(3), WEFT_ENOTASK);
    CHECK_EQ(weft_read(3, buf, sizeof buf), WEFT_ENOTASK);
    CHECK_EQ(weft_write(3, buf, sizeof buf), WEFT_ENOTASK);
    CHECK_EQ(weft_set_deadline(3, 0, 0), WEFT_ENOTASK);
    CHECK_EQ(weft_close(3), WEFT_ENOTASK);
    CHECK_EQ(weft_addr(3, buf, sizeof buf), WEFT_ENOTASK);
    CHECK_EQ(weft_wait_fd(3, WEFT_READABLE, 0), WEFT_ENOTASK);
    CHECK_EQ(weft_chan_close((weft_chan *)dummy), WEFT_ENOTASK);
    CHECK_EQ(weft_timer_reset((weft_timer *)dummy, 1, 0), WEFT_ENOTASK);
    CHECK_EQ(weft_nopreempt_end(), WEFT_ENOTASK);
    CHECK_EQ(weft_unlock_thread(), WEFT_ENOTASK);
    weft_config bad = {.procs = -1};
    CHECK_EQ(weft_start(&bad), WEFT_EINVAL);
    for (size_t i = 0; i < sizeof dummy / sizeof dummy[0]; i++)
        CHECK_EQ(dummy[i], 0); /* nothing was touched */

    /* Wakes owed to tasks the last run discarded: with no run, nothing
     * can be woken, so each call refuses and changes nothing. */
    memset(&dis, 0, sizeof dis);
    t_run(discard_main, NULL, 2);
    weft_mutex m0 = dis.m;
    CHECK_EQ(weft_mutex_unlock(&dis.m), WEFT_ENOTASK);
    CHECK(memcmp(&m0, &dis.m, sizeof m0) == 0);
    weft_cond c0 = dis.c;
    CHECK_EQ(weft_cond_signal(&dis.c), WEFT_ENOTASK);
    CHECK_EQ(weft_cond_broadcast(&dis.c), WEFT_ENOTASK);
    CHECK(memcmp(&c0, &dis.c, sizeof c0) == 0);
    weft_waitgroup w0 = dis.wg;
    CHECK_EQ(weft_wg_done(&dis.wg), WEFT_ENOTASK);
    CHECK_EQ(weft_wg_add(&dis.wg, -1), WEFT_ENOTASK);
    CHECK(memcmp(&w0, &dis.wg, sizeof w0) == 0);

    t_run(in_run_main, NULL, 2);
}
