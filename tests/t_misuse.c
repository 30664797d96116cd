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
 *   misuse_block_allowed  the calls allowed there work there;
 *   misuse_env            a bad value of each WEFT_* variable makes weft_run
 *                         return WEFT_EINVAL (tests/test_misuse.py checks
 *                         that each message names its variable);
 *   misuse_sync_garbage   sync objects never zeroed (two byte patterns):
 *                         every function refuses them with WEFT_EINVAL and
 *                         leaves them as they were, where before a
 *                         waitgroup's wait returned at once or parked for
 *                         ever.
 */
#include <stdatomic.h>
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
