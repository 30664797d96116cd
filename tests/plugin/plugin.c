/* SPDX-License-Identifier: MIT */
/*
 * plugin.c — a plugin that uses weft: a shared object with its own copy of
 * weft inside (linked from libweft's relocatable object), loaded with
 * dlopen by tests/t_embed.c's embed_plugin, which runs it, then unloads it
 * with dlclose and checks that nothing of it is left (docs/embedding.md,
 * "Pattern 3").
 *
 * plugin_run starts a runtime in the background, makes the plugin's own
 * code preemptible (weft_preemptible_module), runs a two-stage pipeline of
 * tasks fed and drained by the calling (host) thread, and stops the
 * runtime.
 */
#include <stdint.h>

#include "weft.h"

static weft_chan *in, *mid, *out;

/* Stage 1: squares. */
static void square(void *arg)
{
    (void)arg;
    int64_t v;
    while (weft_chan_recv(in, &v) == 1) {
        v *= v;
        if (weft_chan_send(mid, &v) != 0)
            return;
    }
    weft_chan_close(mid);
}

/* Stage 2: adds one, with a busy loop the monitor may preempt (the
 * plugin's code is preemptible). */
static void add_one(void *arg)
{
    (void)arg;
    int64_t v;
    while (weft_chan_recv(mid, &v) == 1) {
        volatile int64_t spin = 0;
        for (int i = 0; i < 1000; i++)
            spin += i;
        v += 1 + spin - spin;
        if (weft_chan_send(out, &v) != 0)
            return;
    }
}

/* Runs n values through the pipeline; *sum gets the sum of i*i + 1 for i
 * in [0, n). Returns 0 or the first weft error. */
#ifdef _WIN32
#define PLUGIN_EXPORT __declspec(dllexport)
#else
#define PLUGIN_EXPORT __attribute__((visibility("default")))
#endif

PLUGIN_EXPORT int plugin_run(int64_t n, int64_t *sum)
{
    weft_config cfg = {.procs = 2};
    int rc = weft_start(&cfg);
    if (rc != 0)
        return rc;
    if ((rc = weft_preemptible_module((const void *)plugin_run)) != 0)
        goto stop;
    in = weft_chan_make(sizeof(int64_t), 8);
    mid = weft_chan_make(sizeof(int64_t), 0);
    out = weft_chan_make(sizeof(int64_t), 8);
    if (!in || !mid || !out) {
        rc = WEFT_ENOMEM;
        goto stop;
    }
    if ((rc = weft_go(square, NULL)) != 0 || (rc = weft_go(add_one, NULL)) != 0)
        goto stop;
    *sum = 0;
    int64_t sent = 0, got = 0, v;
    int closed = 0;
    /* Feed and drain from this (host) thread, never blocking on one side
     * while the other is full. */
    while (got < n) {
        while (sent < n && weft_chan_try_send(in, &sent) == 0)
            sent++;
        if (sent == n && !closed) {
            weft_chan_close(in);
            closed = 1;
        }
        if ((rc = weft_chan_recv(out, &v)) != 1)
            goto stop;
        *sum += v;
        got++;
    }
    rc = 0;
stop:;
    int src = weft_stop();
    return rc != 0 ? rc : src;
}
