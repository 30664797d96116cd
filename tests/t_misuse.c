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
 *                         that each message names its variable).
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
