/* SPDX-License-Identifier: MIT */
/*
 * signal.c (posix) — the process-wide SIGSEGV/SIGBUS handler that turns a
 * task's stack overflow into a message naming the task, and hands every
 * other fault on to the handler the host had; and the SIGQUIT handler
 * that prints every task (the end of this comment).
 *
 * One handler for the whole process, installed at the first
 * hal_thread_enter or hal_thread_start and removed only when weft's code
 * itself leaves the process: a shared object (a plugin) with weft inside
 * that is dlclose'd, whose destructor (unload below) puts the host's
 * disposition back if ours is still in place, so that no handler points
 * into unmapped code. A plugin stops its runtime before it is unloaded
 * (docs/embedding.md), so no task runs then. At the exit of a program
 * the same destructor runs; faults after it get the host's disposition.
 * Flags:
 *   SA_ONSTACK  a stack overflow leaves no room on the task's stack; the
 *               handler runs on the thread's altstack (thread.c).
 *   SA_SIGINFO  for si_addr and si_code.
 *   SA_NODEFER  the signal stays unblocked inside the handler, so the
 *               re-executed fault after chaining to SIG_DFL (below) kills
 *               the process instead of being held pending.
 *
 * Chaining. kern_fault(addr) returns when the fault is not a guard hit
 * (hal.h), and then the fault belongs to the host:
 *   - its handler was SA_SIGINFO: call sa_sigaction(sig, info, uc);
 *   - a plain handler: call it with sig;
 *   - SIG_DFL or SIG_IGN: put SIG_DFL back for that signal and return.
 *     A fault re-executes the faulting instruction, which now kills the
 *     process exactly as it would have without weft. (The kernel, too,
 *     treats an ignored synchronous fault as fatal.)
 * The host's sa_mask is not applied around its handler, and its
 * SA_RESETHAND is not honoured: a handler chained to from here runs with
 * this handler's (empty) mask. A SIGSEGV or SIGBUS sent by kill(2)
 * (si_code <= 0: si_addr means nothing) skips kern_fault; if the host
 * ignored it, it is still ignored, and if the host left it at SIG_DFL it is
 * raised again at default so the process dies as before.
 *
 * SIGQUIT (Go prints its goroutines on it): the same installation and
 * chaining, with kern_dump_request("SIGQUIT") first, on the altstack of
 * a weft thread (a task's stack may be small) and with every other
 * signal but the synchronous faults held off. Then, as without weft: the
 * host's handler runs, or at SIG_DFL the process dies of SIGQUIT (and
 * dumps core where that is on), or, when the host ignores SIGQUIT (a
 * background job of a shell without job control), the program goes on:
 * the dump was all it did.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>

#include "posix.h"

static pthread_once_t install_once = PTHREAD_ONCE_INIT;

/* The host's handlers before ours; written once by install(), before our
 * handler can run, and only read afterwards. */
static struct sigaction prev_segv, prev_bus, prev_quit;

static struct sigaction *prev_for(int sig)
{
    return sig == SIGBUS ? &prev_bus : sig == SIGQUIT ? &prev_quit : &prev_segv;
}

static void set_default(int sig)
{
    struct sigaction dfl;
    dfl.sa_handler = SIG_DFL;
    dfl.sa_flags = 0;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

/* Hands the signal to the host's previous disposition (see the top). */
static void chain(int sig, siginfo_t *info, void *uc)
{
    struct sigaction *prev = prev_for(sig);
    bool sent = info == NULL || info->si_code <= 0;

    if (prev->sa_flags & SA_SIGINFO) {
        prev->sa_sigaction(sig, info, uc);
    } else if (prev->sa_handler == SIG_IGN) {
        if (!sent)
            set_default(sig);
    } else if (prev->sa_handler == SIG_DFL) {
        set_default(sig);
        if (sent)
            raise(sig);
    } else {
        prev->sa_handler(sig);
    }
}

/* Runs on the altstack of the faulting thread. Async-signal-safe: only
 * kern_fault (which is, by contract), sigaction and raise. */
static void on_fault(int sig, siginfo_t *info, void *uc)
{
    int saved_errno = errno;
    if (info != NULL && info->si_code > 0)
        kern_fault(info->si_addr);
    chain(sig, info, uc);
    errno = saved_errno;
}

/* SIGQUIT: the dump, then what the host would have had (see the top). */
static void on_quit(int sig, siginfo_t *info, void *uc)
{
    int saved_errno = errno;
    kern_dump_request("SIGQUIT");
    chain(sig, info, uc);
    errno = saved_errno;
}

static void install(void)
{
    struct sigaction sa;
    sa.sa_sigaction = on_fault;
    /* SA_RESTART: a fault is synchronous and interrupts no call, but one
     * sent with kill(2) may land in a system call; every handler of weft's
     * restarts what it interrupted where the kernel can (docs/API.md). */
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);

    /* Read the old disposition first, then install: if a fault on another
     * thread reached on_fault between the two halves of one
     * sigaction(sig, &sa, &prev) call, it would see prev half-written. */
    sigaction(SIGSEGV, NULL, &prev_segv);
    sigaction(SIGBUS, NULL, &prev_bus);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    struct sigaction q;
    q.sa_sigaction = on_quit;
    q.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    sigfillset(&q.sa_mask);
    static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
        sigdelset(&q.sa_mask, faults[i]);
    sigaction(SIGQUIT, NULL, &prev_quit);
    sigaction(SIGQUIT, &q, NULL);
}

void hal_posix_fault_install(void)
{
    pthread_once(&install_once, install);
}

/* Puts back what install replaced, where our handler is still the one in
 * place (a host that installed its own since keeps it). */
static void restore(int sig, const struct sigaction *prev)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        (cur.sa_sigaction == on_fault || cur.sa_sigaction == on_quit))
        sigaction(sig, prev, NULL);
}

/* When this copy of weft is unloaded (see the top). install ran if the
 * handler is ours; restore checks that. */
__attribute__((destructor)) static void unload(void)
{
    restore(SIGSEGV, &prev_segv);
    restore(SIGBUS, &prev_bus);
    restore(SIGQUIT, &prev_quit);
}
