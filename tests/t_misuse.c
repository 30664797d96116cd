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
 *   misuse_block_allowed  the calls allowed there work there.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

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
