/* SPDX-License-Identifier: MIT */
/*
 * t_dump.c — the dump of a program whose tasks wait in every way weft
 * knows: a channel send and a receive that nobody answers, a mutex held by
 * another task, a long sleep, a read of a socket that stays silent, and a
 * blocking call (weft_block_begin) that lasts; and, where tasks can be
 * preempted, one that spins. One proc. Each is a function of its own, so that the
 * dump's "started as" line and its frames name it.
 *
 * The cases print the dump and check nothing of it themselves:
 * tests/test_dump.py reads their stderr, runs scripts/symbolize on it and
 * checks each task's wait, start function and first frame. They differ
 * in who asks for the dump:
 *   dump_waits             weft_dump() from the first task;
 *   dump_sigquit           SIGQUIT, with a handler of the host's installed
 *                          before weft_run: it must run after the dump;
 *   dump_sigquit_ignored   SIGQUIT while the host ignores it: the dump,
 *                          and the program goes on;
 *   dump_sigquit_default   SIGQUIT at SIG_DFL: the dump, then the process
 *                          dies of SIGQUIT as it would without weft (F_CRASH:
 *                          tests/test_crash.py);
 *   dump_ctrl_break        Windows: the console handler on Ctrl-Break.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "weft.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>
#endif

#define WAITERS 6

static struct {
    weft_chan *to_nobody, *from_nobody;
    weft_mutex mu;
    weft_fd server, client, ln;
    _Atomic int started;      /* waiters about to wait */
    _Atomic int back;         /* waiters whose wait ended (none should) */
    _Atomic int release;      /* the blocking call may return */
    _Atomic int64_t block_t0; /* weft_now() just before the blocking call */
    weft_waitgroup block_done;
} dw;

/* noinline, and work after the wait: each must keep a frame of its own
 * to be named in its task's frames. */
__attribute__((noinline)) static void dw_chan_send(void *arg)
{
    (void)arg;
    int v = 1;
    atomic_fetch_add(&dw.started, 1);
    (void)weft_chan_send(dw.to_nobody, &v); /* never returns: the run ends */
    atomic_fetch_add(&dw.back, 1);          /* not a tail call: this frame stays */
}

__attribute__((noinline)) static void dw_chan_recv(void *arg)
{
    (void)arg;
    int v;
    atomic_fetch_add(&dw.started, 1);
    (void)weft_chan_recv(dw.from_nobody, &v);
    atomic_fetch_add(&dw.back, 1); /* not a tail call: this frame stays */
}

__attribute__((noinline)) static void dw_mutex(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dw.started, 1);
    (void)weft_mutex_lock(&dw.mu);
    atomic_fetch_add(&dw.back, 1); /* not a tail call: this frame stays */
}

__attribute__((noinline)) static void dw_sleep(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dw.started, 1);
    (void)weft_sleep(3600 * 1000000000ll);
    atomic_fetch_add(&dw.back, 1); /* not a tail call: this frame stays */
}

__attribute__((noinline)) static void dw_read(void *arg)
{
    (void)arg;
    char buf[16];
    atomic_fetch_add(&dw.started, 1);
    (void)weft_read(dw.server, buf, sizeof buf);
    atomic_fetch_add(&dw.back, 1); /* not a tail call: this frame stays */
}

/* The blocking call comes after 200 ms of work that passes through no
 * scheduler (preemption held off, so it stays on the proc): the call's
 * age in the dump must count from the call, not from the proc's last
 * scheduling decision (it did, and said "326 ms" of a 102 ms call). */
#define DW_BLOCK_WORK_NS 200000000ll

__attribute__((noinline)) static void dw_block(void *arg)
{
    (void)arg;
    CHECK_OK(weft_nopreempt_begin());
    int64_t t0 = weft_now();
    while (weft_now() - t0 < DW_BLOCK_WORK_NS) {
    }
    atomic_store(&dw.block_t0, weft_now());
    atomic_fetch_add(&dw.started, 1);
    weft_block_begin();
    while (!atomic_load(&dw.release)) {
#ifdef _WIN32
        Sleep(1);
#else
        usleep(1000);
#endif
    }
    weft_block_end();
    CHECK_OK(weft_nopreempt_end());
    CHECK_OK(weft_wg_done(&dw.block_done));
}

/* A task that spins without calling weft (where preemption works): the
 * runs have one proc, so whenever the first task runs (to dump, say) the
 * spinner waits for the proc, switched out by an interrupt, and the dump
 * says where it was interrupted. */
static _Atomic int dw_spinning, dw_spinner_in;

__attribute__((noinline)) static void dw_spin_loop(void)
{
    atomic_store(&dw_spinner_in, 1);
    while (atomic_load_explicit(&dw_spinning, memory_order_relaxed)) {
    }
}

__attribute__((noinline)) static void dw_spin(void *arg)
{
    (void)arg;
    dw_spin_loop();
    atomic_fetch_add(&dw.back, 1);
}

/* Sets the waiters up and waits until they wait. */
static void dw_setup(void)
{
    dw.to_nobody = weft_chan_make(sizeof(int), 0);
    dw.from_nobody = weft_chan_make(sizeof(int), 0);
    CHECK(dw.to_nobody != NULL && dw.from_nobody != NULL);
    dw.ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(dw.ln, 0);
    char addr[64];
    CHECK_OK(weft_addr(dw.ln, addr, sizeof addr));
    dw.client = weft_dial("tcp", addr, 10000000000ll);
    CHECK_GE(dw.client, 0);
    dw.server = weft_accept(dw.ln);
    CHECK_GE(dw.server, 0);
    CHECK_OK(weft_mutex_lock(&dw.mu));
    CHECK_OK(weft_wg_add(&dw.block_done, 1));
    void (*const fns[WAITERS])(void *) = {dw_chan_send, dw_chan_recv, dw_mutex,
                                          dw_sleep,     dw_read,      dw_block};
    for (int i = 0; i < WAITERS; i++)
        CHECK_OK(weft_go(fns[i], NULL));
    if (t_async_preempt()) {
        atomic_store(&dw_spinner_in, 0);
        atomic_store(&dw_spinning, 1);
        CHECK_OK(weft_go(dw_spin, NULL));
        fprintf(stderr, "dump: a spinner\n");
    }
    /* Every waiter counted itself, and the spinner has run: from then on
     * it waits, switched out by preemption (it never calls weft), whenever
     * this task runs on the one proc. */
    int64_t t0 = weft_now();
    while (atomic_load(&dw.started) < WAITERS ||
           atomic_load(&dw_spinner_in) < atomic_load(&dw_spinning)) {
        CHECK_LT(weft_now() - t0, 10000000000ll * t_slack());
        CHECK_OK(weft_sleep(1000000));
    }
    /* Each called its waiting function right after counting itself. */
    CHECK_OK(weft_sleep(100000000ll * t_slack()));
}

/* Lets the blocking call return (the other waiters are discarded when the
 * run ends), and closes the sockets. */
static void dw_teardown(void)
{
    atomic_store(&dw_spinning, 0);
    atomic_store(&dw.release, 1);
    CHECK_OK(weft_wg_wait(&dw.block_done));
    CHECK_OK(weft_mutex_unlock(&dw.mu));
    CHECK_OK(weft_close(dw.client));
    CHECK_OK(weft_close(dw.ln));
}

static void dw_reset(void)
{
    memset(&dw, 0, sizeof dw);
}

static void dump_waits_main(void *arg)
{
    (void)arg;
    dw_setup();
    /* For tests/test_dump.py: the dump's age of the call may not exceed
     * this by more than the dump's own time. */
    fprintf(stderr, "dump: the blocking call began %lld ms before the dump\n",
            (long long)((weft_now() - atomic_load(&dw.block_t0)) / 1000000));
    weft_dump();
    dw_teardown();
}

void t_dump_waits(void)
{
    dw_reset();
    t_run(dump_waits_main, NULL, 1);
}

#ifndef _WIN32
static _Atomic int host_quits; /* the host's SIGQUIT handler ran */

static void host_on_quit(int sig)
{
    (void)sig;
    static const char msg[] = "host: SIGQUIT handler ran\n";
    (void)!write(2, msg, sizeof msg - 1);
    atomic_fetch_add(&host_quits, 1);
}

/* The first task: the waiters, then SIGQUIT to the process (any thread may
 * take it); expect says whether the host's handler should run. */
static void sigquit_main(void *arg)
{
    bool expect = arg != NULL;
    dw_setup();
    CHECK_OK(kill(getpid(), SIGQUIT));
    /* The handler runs on whichever thread took the signal: wait for the
     * host's part of it, or give an ignored signal time to have done
     * anything it wrongly would. */
    int64_t t0 = weft_now();
    if (expect) {
        while (atomic_load(&host_quits) == 0) {
            CHECK_LT(weft_now() - t0, 10000000000ll * t_slack());
            CHECK_OK(weft_sleep(1000000));
        }
    } else {
        CHECK_OK(weft_sleep(200000000ll * t_slack()));
    }
    CHECK_EQ(atomic_load(&host_quits), expect ? 1 : 0);
    dw_teardown();
}

static void sigquit_set(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    CHECK_OK(sigaction(SIGQUIT, &sa, NULL));
}

void t_dump_sigquit(void)
{
    dw_reset();
    sigquit_set(host_on_quit); /* before weft installs its own */
    t_run(sigquit_main, (void *)1, 1);
    CHECK_EQ(atomic_load(&host_quits), 1);
}

void t_dump_sigquit_ignored(void)
{
    dw_reset();
    sigquit_set(SIG_IGN);
    t_run(sigquit_main, NULL, 1);
    fprintf(stderr, "dump_sigquit_ignored: the program went on\n");
}

static void sigquit_default_main(void *arg)
{
    (void)arg;
    dw_setup();
    fprintf(stderr, "dump_sigquit_default: sending SIGQUIT\n");
    CHECK_OK(kill(getpid(), SIGQUIT));
    CHECK_OK(weft_sleep(30 * 1000000000ll * t_slack()));
    fprintf(stderr, "dump_sigquit_default: still alive\n");
}

void t_dump_sigquit_default(void)
{
    dw_reset();
    /* No core file in the test's directory. */
    struct rlimit no_core = {0, 0};
    CHECK_OK(setrlimit(RLIMIT_CORE, &no_core));
    sigquit_set(SIG_DFL);
    t_run(sigquit_default_main, NULL, 1);
}

T_NOT_BUILT(t_dump_ctrl_break, "Ctrl-Break is Windows' (SIGQUIT here)")
#else
T_NOT_BUILT(t_dump_sigquit, "SIGQUIT is POSIX's; Windows' Ctrl-Break goes through the same kern "
                            "entry (hal/win32/fault.c)")
T_NOT_BUILT(t_dump_sigquit_ignored, "SIGQUIT is POSIX's")
T_NOT_BUILT(t_dump_sigquit_default, "SIGQUIT is POSIX's")

/* Ctrl-Break: Wine gives no console to a program whose output is a pipe,
 * so the case calls the port's console handler as Windows would, from a
 * thread of its own (Windows starts one per console event). The handler
 * must print the dump and return FALSE (the next handler runs); other
 * events print nothing. */
#include "hal/win32/win32.h"

static DWORD WINAPI console_thread(void *arg)
{
    return (DWORD)hal_win32_console_event((DWORD)(uintptr_t)arg);
}

static int console_event(DWORD event)
{
    HANDLE h = CreateThread(NULL, 0, console_thread, (void *)(uintptr_t)event, 0, NULL);
    CHECK(h != NULL);
    CHECK_EQ(WaitForSingleObject(h, 30000 * (DWORD)t_slack()), WAIT_OBJECT_0);
    DWORD rc = 1;
    CHECK(GetExitCodeThread(h, &rc));
    CloseHandle(h);
    return (int)rc;
}

static void ctrl_break_main(void *arg)
{
    (void)arg;
    dw_setup();
    fprintf(stderr, "dump_ctrl_break: Ctrl-C first\n");
    CHECK_EQ(console_event(CTRL_C_EVENT), FALSE);
    fprintf(stderr, "dump_ctrl_break: Ctrl-Break\n");
    CHECK_EQ(console_event(CTRL_BREAK_EVENT), FALSE);
    dw_teardown();
}

void t_dump_ctrl_break(void)
{
    dw_reset();
    t_run(ctrl_break_main, NULL, 1);
}
#endif
