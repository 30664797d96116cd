/* SPDX-License-Identifier: MIT */
/*
 * host.c — weft in the background of a host that keeps its main thread.
 *
 * The main thread runs the host's own loop: a "frame" of its own work
 * every millisecond, as a game engine or a GUI would. weft_start puts the
 * runtime on threads of its own; the loop feeds jobs to a pool of worker
 * tasks over a channel and collects the results, never blocking a frame:
 * try_send and try_recv only. Once every job is out, it closes the job
 * channel (the workers' loops end) and waits for the last results with
 * blocking receives, which park the main thread, not a proc. Then
 * weft_stop gives everything back.
 *
 * The answer is checked against the same work done serially.
 * docs/embedding.md walks through it.
 */
#include <stdio.h>
#include <time.h>
#ifdef _WIN32
#include <windows.h>
#endif

#include "weft.h"

#define NJOBS 400
#define NWORKERS 4

struct job {
    int id;
    int64_t n;
};

struct result {
    int id;
    int64_t steps;
};

static weft_chan *jobs, *results;

/* The work: steps of the Collatz sequence from n down to 1. */
static int64_t collatz(int64_t n)
{
    int64_t steps = 0;
    while (n != 1) {
        n = n % 2 ? 3 * n + 1 : n / 2;
        steps++;
    }
    return steps;
}

static int64_t job_input(int id)
{
    return 1 + (int64_t)id * 7919 % 1000003;
}

/* A worker task: jobs until the channel is closed and drained. */
static void worker(void *arg)
{
    (void)arg;
    struct job j;
    while (weft_chan_recv(jobs, &j) == 1) {
        struct result r = {j.id, collatz(j.n)};
        if (weft_chan_send(results, &r) != 0)
            return;
    }
}

/* One frame of the host's own work (here: sleeping 1 ms). */
static void host_frame(void)
{
#ifdef _WIN32
    Sleep(1);
#else
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
#endif
}

int main(void)
{
    int rc = weft_start(NULL);
    if (rc != 0) {
        fprintf(stderr, "host: weft_start: %s\n", weft_strerror(rc));
        return 1;
    }
    jobs = weft_chan_make(sizeof(struct job), 16);
    results = weft_chan_make(sizeof(struct result), 16);
    if (!jobs || !results) {
        fprintf(stderr, "host: out of memory\n");
        return 1;
    }
    for (int i = 0; i < NWORKERS; i++) {
        if ((rc = weft_go(worker, NULL)) != 0) {
            fprintf(stderr, "host: weft_go: %s\n", weft_strerror(rc));
            return 1;
        }
    }

    int next = 0, done = 0, frames = 0, waited = 0;
    int64_t total = 0;
    struct result r;
    /* The host's loop: a frame, then whatever the channels allow now. */
    while (next < NJOBS) {
        host_frame();
        frames++;
        while (next < NJOBS) {
            struct job j = {next, job_input(next)};
            if (weft_chan_try_send(jobs, &j) != 0)
                break; /* full: the rest next frame */
            next++;
        }
        while (weft_chan_try_recv(results, &r) == 1) {
            total += r.steps;
            done++;
        }
    }
    /* Every job is out: the workers stop when they have drained it. */
    weft_chan_close(jobs);
    while (done < NJOBS) {
        if (weft_chan_recv(results, &r) != 1) /* blocks this thread only */
            break;
        total += r.steps;
        done++;
        waited++;
    }
    rc = weft_stop();

    int64_t want = 0;
    for (int i = 0; i < NJOBS; i++)
        want += collatz(job_input(i));
    printf("host: %d jobs over %d frames of the host's own loop (%d results\n"
           "      collected by try_recv between frames, %d by blocking recv at the end)\n",
           done, frames, done - waited, waited);
    printf("host: total Collatz steps %lld (serial: %lld): %s; weft_stop: %s\n", (long long)total,
           (long long)want, total == want ? "OK" : "MISMATCH", rc == 0 ? "0" : weft_strerror(rc));
    return total == want && done == NJOBS && rc == 0 ? 0 : 1;
}
