/* SPDX-License-Identifier: MIT */
/*
 * bench_sys.c — weft's side of the preemption and blocking-call benches
 * (bench/go/timer.go benchPreempt, bench/go/sys.go benchSyscall).
 *
 * preempt: the 1 ms sleep is an OS sleep inside weft_block_begin/end (a
 * nanosleep; Sleep on Windows, in whole milliseconds), as the scenario was
 * first written, before weft_sleep existed: the monitor retakes the sleeper's proc for the tight
 * loop, and when the sleep ends the sleeper waits in the run queue until the loop is preempted,
 * which is the path Go's timer wake-up takes too (the timer readies the goroutine; the spinner must
 * be preempted for it to run).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#include <io.h>
#include <windows.h>
#else
#include <spawn.h>
#include <sys/wait.h>
extern char **environ;
#endif

#include "check.h"

static void nap(int64_t ns)
{
#ifdef _WIN32
    Sleep((DWORD)((ns + 999999) / 1000000)); /* whole milliseconds, rounded up */
#else
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
#endif
}

/* ---- preempt ---- */

static uint64_t spin_sink; /* keeps the loops' arithmetic alive */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static atomic_uint spin_stop;
static atomic_uint spin_started, spin_done;
static uint64_t spin_iters; /* written before spin_done's release store */

/* The tight loop: no calls (an atomic relaxed load is a plain load). */
static __attribute__((noinline)) void spin(void *arg)
{
    (void)arg;
    atomic_store_explicit(&spin_started, 1, memory_order_relaxed);
    uint64_t x = 1, i = 0;
    while (atomic_load_explicit(&spin_stop, memory_order_relaxed) == 0) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        i++;
    }
    spin_iters = i;
    spin_sink = x;
    /* Release: pairs with preempt_main's acquire load; spin_iters is read
     * after it. */
    atomic_store_explicit(&spin_done, 1, memory_order_release);
}

struct preempt_ctx {
    int64_t n, dur_ns;
    int64_t *late;
    int64_t done;
    int procs;
};

static void preempt_main(void *arg)
{
    struct preempt_ctx *c = arg;
    c->procs = weft_procs();
    CHECK_OK(weft_go(spin, NULL));
    /* The loop is there before the first nap: a nap shorter than a retake
     * (or a machine that runs the monitor late) never lets it in, and
     * then it first ran after the stop and counted nothing (the end
     * below waited for a count for ever: 2 runs of 400 under Wine with
     * the CPUs busy). Back here once a preemption switched it out. */
    while (!atomic_load_explicit(&spin_started, memory_order_relaxed))
        weft_yield();
    for (int64_t i = 0; i < c->n; i++) {
        int64_t t0 = weft_now();
        weft_block_begin();
        nap(c->dur_ns);
        weft_block_end();
        c->late[i] = weft_now() - t0 - c->dur_ns;
        c->done++;
    }
    atomic_store(&spin_stop, 1);
    /* Acquire: pairs with spin's release store (spin_iters). */
    while (!atomic_load_explicit(&spin_done, memory_order_acquire))
        weft_yield();
}

void b_preempt(void)
{
    static struct preempt_ctx c;
    c.n = t_param("n", 50);
    c.dur_ns = t_param("dur_us", 1000) * 1000;
    CHECK_GT(c.n, 0);
    c.late = calloc((size_t)c.n, sizeof *c.late);
    CHECK(c.late != NULL);
    t_run(preempt_main, &c, (int)t_param("procs", 1));
    qsort(c.late, (size_t)c.n, sizeof *c.late, cmp64);
    int ok = c.done == c.n && spin_iters > 0;
    t_bench_emit("preempt", c.procs, c.n, "lateness_p50", c.late[c.n / 2] / 1e6, "ms", "lower",
                 c.done, ok);
    t_bench_emit("preempt", c.procs, c.n, "lateness_max", c.late[c.n - 1] / 1e6, "ms", "lower",
                 c.done, ok);
    free(c.late);
}

/* ---- syscall ---- */

struct sys_ctx {
    int fd, wfd;
    int64_t warm_ms, delay_ms;
    atomic_uint done;
    int64_t max_gap, iters;
    weft_waitgroup wg;
    ssize_t got;
    char buf[8];
    int64_t read_ns;
    int procs;
    bool bare; /* autoblock: the read without weft_block_begin/end */
};

static void sys_counter(void *arg)
{
    struct sys_ctx *c = arg;
    uint64_t x = 1;
    int64_t prev = weft_now();
    while (!atomic_load(&c->done)) {
        for (int k = 0; k < 50; k++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        weft_yield();
        int64_t now = weft_now();
        if (now - prev > c->max_gap)
            c->max_gap = now - prev;
        prev = now;
        c->iters++;
    }
    spin_sink = x;
    CHECK_OK(weft_wg_done(&c->wg));
}

static void sys_main(void *arg)
{
    struct sys_ctx *c = arg;
    c->procs = weft_procs();
    CHECK_OK(weft_wg_add(&c->wg, 1));
    CHECK_OK(weft_go(sys_counter, c));
    weft_block_begin();
    nap(c->warm_ms * 1000000); /* the counter runs alone meanwhile */
    weft_block_end();
    int64_t t0 = weft_now();
    if (!c->bare)
        weft_block_begin();
    c->got = read(c->fd, c->buf, sizeof c->buf);
    if (!c->bare)
        weft_block_end();
    c->read_ns = weft_now() - t0;
    atomic_store(&c->done, 1);
    CHECK_OK(weft_wg_wait(&c->wg));
}

/* The writer: another process on POSIX (a shell that sleeps, then prints),
 * a thread on Windows; either way the pipe's read end stays empty for
 * warm_ms + delay_ms. */
#ifdef _WIN32
static DWORD WINAPI late_writer(void *arg)
{
    struct sys_ctx *c = arg;
    Sleep((DWORD)(c->warm_ms + c->delay_ms));
    return _write(c->wfd, "x", 1) == 1 ? 0 : 1;
}
#endif

static void sys_bench(const char *scenario, bool bare)
{
    static struct sys_ctx c;
    c.bare = bare;
    c.delay_ms = t_param("delay_ms", 500);
    c.warm_ms = t_param("warm_ms", 100);
    int fds[2];
#ifdef _WIN32
    CHECK_OK(_pipe(fds, 4096, _O_BINARY | _O_NOINHERIT));
    c.wfd = fds[1];
    HANDLE w = CreateThread(NULL, 0, late_writer, &c, 0, NULL);
    CHECK(w != NULL);
    c.fd = fds[0];
    t_run(sys_main, &c, (int)t_param("procs", 1));
    CHECK_EQ(WaitForSingleObject(w, INFINITE), WAIT_OBJECT_0);
    DWORD wrc = 1;
    CHECK(GetExitCodeThread(w, &wrc));
    CHECK_EQ(wrc, 0);
    CloseHandle(w);
    close(fds[1]);
#else
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    char cmd[64];
    snprintf(cmd, sizeof cmd, "sleep %.3f; printf x", (double)(c.warm_ms + c.delay_ms) / 1e3);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    pid_t pid;
    CHECK_OK(posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ));
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    c.fd = fds[0];
    t_run(sys_main, &c, (int)t_param("procs", 1));
    int status;
    waitpid(pid, &status, 0);
#endif
    close(fds[0]);
    int ok = c.got == 1 && c.buf[0] == 'x' && c.iters > 0 && c.read_ns > c.delay_ms * 1000000 / 2;
    t_bench_emit(scenario, c.procs, 1, "max_stall", c.max_gap / 1e6, "ms", "lower", c.got, ok);
}

void b_syscall(void)
{
    sys_bench("syscall", false);
}

/* ---- autoblock: syscall's read without the annotation; the monitor sees
 * the thread stuck in the OS and lends a spare proc (kern/monitor.c,
 * "Lending"). Go's peer is the same raw read, which Go hands off itself. */
void b_autoblock(void)
{
    sys_bench("autoblock", true);
}
