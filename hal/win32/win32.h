/* SPDX-License-Identifier: MIT */
/*
 * win32.h — what the files of the Windows port share with each other, and
 * nothing kern sees. Each file of hal/win32 owns one mechanism:
 *
 *   mem.c      address space: VirtualAlloc reservations, commit, discard,
 *              the guard band of task stacks
 *   fault.c    the vectored exception handler that names a task whose
 *              stack overflowed, and the per-thread rescue stacks
 *   thread.c   CreateThread, the current-thread pointer, errno, CPUs
 *   futex.c    WaitOnAddress / WakeByAddress and sleeping
 *   time.c     QueryPerformanceCounter and the wall clock
 *   env.c      environment, the error stream, abort
 *   poll_iocp.c the poller: an I/O completion port
 *   timer_hr.c the poller's high-resolution deadline on that port
 *   sock.c     sockets and their operations on the completion port
 *   preempt.c  preemption by SuspendThread, and code ranges
 *   text_bounds.S the markers around weft's own code
 *   call_on.S  running a function on another stack (fault.c)
 */
#ifndef WEFT_HAL_WIN32_H
#define WEFT_HAL_WIN32_H

#include "hal/hal.h"

/* fault.c: installs the vectored handler once per process (later calls do
 * nothing) and gives the calling thread a rescue stack (nesting: only the
 * outermost call allocates, the matching off frees). Thread-safe. */
void hal_win32_fault_install(void);
void hal_win32_rescue_on(void);
void hal_win32_rescue_off(void);
/* Tests only (tests/t_hal_win32.c), not part of hal.h: the calling
 * thread's rescue stack (64 KiB), or NULL when it has none. */
void *hal_win32_rescue_stack(void);
/* The console handler (Ctrl-Break prints the dump); returns FALSE, so the
 * next handler runs. Called by Windows; tests call it too (Wine has no
 * console to send the event through). */
int __stdcall hal_win32_console_event(unsigned long event);

/* thread.c: how many threads are inside this copy of weft (its workers and
 * monitor, and threads between hal_thread_enter and leave). The unload
 * destructors free what a thread would still use only at 0. */
int hal_win32_threads_live(void);

/* preempt.c: takes the suspension lock for good (exit, abort), so no
 * thread is left suspended or gets suspended while the process ends.
 * Waits at most one suspension cycle; returns at once on the thread that
 * holds it. */
void hal_win32_preempt_stop(void);

/* preempt.c: counts of the suspensions, for tests (any thread). */
enum {
    HAL_WIN32_PC_REDIRECTED, /* the thread was sent into the trampoline */
    HAL_WIN32_PC_DECLINED,   /* found at an unsafe point, resumed as it was */
    HAL_WIN32_PC_FOREIGN,    /* redirected at a RIP outside the program's image:
                              * never (a DLL, Wine's code, a JIT buffer) */
    HAL_WIN32_PC_N
};
int64_t hal_win32_preempt_count(int which);

/* preempt.c, tests only (the negative control of preempt_regs): the next
 * redirection whose interrupted RIP lies in [lo, hi) flips one bit of a
 * saved register before the trampoline restores it, as a broken save
 * would: bit 8 of r8, or bit 4 of xmm3's lowest byte (in the XSAVE or
 * FXSAVE area). */
enum { HAL_WIN32_FLIP_R8, HAL_WIN32_FLIP_XMM3 };
void hal_win32_preempt_test_flip(int which, uintptr_t lo, uintptr_t hi);

/* call_on.S: calls fn(arg) with rsp at stack_top (16-aligned), and returns
 * to the caller's stack afterwards. */
void hal_win32_call_on(void (*fn)(void *), void *arg, void *stack_top);

/* Completion keys of the poller's own packets (kern's keys are pointers
 * to its objects, never these small values). */
#define HAL_WIN32_KEY_WAKE ((uintptr_t)1)
#define HAL_WIN32_KEY_TIMER ((uintptr_t)2)

/* sock.c, for poll_iocp.c: Winsock's start-up, its extension functions and
 * the decision to skip packets of synchronous completions (0 or
 * HAL_EFAIL), and its end. */
int hal_win32_sock_init(void);
void hal_win32_sock_fini(void);
/* Associates socket h with the port under kern's key and sets its
 * completion modes (hal_poll_register's contract). */
int hal_win32_sock_register(intptr_t h, void *port, void *key, unsigned flags, uintptr_t *cookie);
/* The poller dequeued the completion of the operation whose OVERLAPPED is
 * overlapped: checks that it is live, marks it done (the last access) and
 * returns the side to report (HAL_POLL_READ or HAL_POLL_WRITE). Aborts
 * with a message on a released one. */
uint32_t hal_win32_sock_completed(void *overlapped);
/* Started operations whose completion has not been dequeued yet. */
long hal_win32_sock_owed(void);
/* Whether this run skips packets for synchronous completions on TCP. */
int hal_win32_sock_skip_allowed(void);

/* sock.c: counts, for tests (any thread). */
enum {
    HAL_WIN32_SC_PACKETS,      /* completions of operations dequeued */
    HAL_WIN32_SC_PENDING,      /* operations that went pending */
    HAL_WIN32_SC_SYNC_SKIPPED, /* done at once and taken at once: no packet */
    HAL_WIN32_SC_SYNC_PACKET,  /* done at once, and the packet was waited for */
    HAL_WIN32_SC_CANCELS,      /* hal_io_cancel on a started operation */
    HAL_WIN32_SC_CANCEL_LOST,  /* ... which had completed first: its result was returned */
    HAL_WIN32_SC_SKIP_SOCKETS, /* sockets registered with the skip mode */
    HAL_WIN32_SC_N
};
int64_t hal_win32_sock_counter(int which);
/* Tests only: whether every provider of an array of n WSAPROTOCOL_INFOW
 * has IFS handles (the skip condition), and a switch that makes the next
 * run's check see one more TCP provider, without them. */
int hal_win32_skip_check(const void *protocols, int n);
void hal_win32_sock_test_non_ifs(int on);

/* timer_hr.c: the timeout paths (hal_poll_timer_mode's values). */
enum {
    HAL_WIN32_TIMER_WAITPACKET = 1, /* ntdll's wait completion packets */
    HAL_WIN32_TIMER_FALLBACK = 2,   /* the port's millisecond timeout */
    HAL_WIN32_TIMER_EMULATED = 3,   /* a model of the wait packets (tests) */
};

/* Picks the path (WEFT_POLLER_TIMER) for the port iocp (a HANDLE) and makes
 * the timer and its packet. 0, HAL_EINVAL (a bad WEFT_POLLER_TIMER, or
 * waitpacket without the exports; a message says which) or HAL_EFAIL.
 * Called by hal_poll_init only; hal_win32_timer_fini undoes it. */
int hal_win32_timer_init(void *iocp);
void hal_win32_timer_fini(void);

/* What hal_win32_timer_arm did. */
enum {
    HAL_WIN32_ARM_OFF = 0,   /* no timer for this wait: the port's timeout alone */
    HAL_WIN32_ARM_ON = 1,    /* the timer's packet will arrive with KEY_TIMER */
    HAL_WIN32_ARM_FIRED = 2, /* the timer fired during association: return now */
};

/* Arms the timer for a blocking wait of timeout_ns (> 0; otherwise
 * HAL_WIN32_ARM_OFF). Only the one thread that blocks in hal_poll_wait
 * calls it (hal.h). Never blocks, except under the emulation's forced
 * firing (about a tick). */
int hal_win32_timer_arm(int64_t timeout_ns);

/* Counts of the branches taken, for tests/t_win32.c (any thread). */
enum {
    HAL_WIN32_TC_CANCEL_SUCCESS,   /* cancel: a live association ended */
    HAL_WIN32_TC_CANCEL_CANCELLED, /* cancel: nothing was associated */
    HAL_WIN32_TC_CANCEL_PENDING,   /* cancel: in delivery; this wait goes without */
    HAL_WIN32_TC_ASSOC_ARMED,      /* associated; the packet will come */
    HAL_WIN32_TC_ASSOC_FIRED,      /* fired during association (AlreadySignaled) */
    HAL_WIN32_TC_GAVE_UP,          /* an unexpected status: fallback for the run */
    HAL_WIN32_TC_WOKE_TIMER,       /* a blocking wait got the timer's packet */
    HAL_WIN32_TC_WOKE_TIMEOUT,     /* a wait without the timer ran out the port's timeout */
    HAL_WIN32_TC_WOKE_BACKSTOP,    /* a wait with the timer armed ran out the port's
                                      timeout first: the timer came late or not at all */
    HAL_WIN32_TC_WOKE_WAKE,        /* a blocking wait got a wake packet */
    HAL_WIN32_TC_STOLEN_TIMER,     /* a timeout-0 poll got the timer's packet */
    HAL_WIN32_TC_STOLEN_WAKE,      /* a timeout-0 poll got a wake packet */
    HAL_WIN32_TC_EMU_POSTED,       /* the model's timer fired and posted */
    HAL_WIN32_TC_EMU_RACE,         /* the model's cancel met its callback running */
    HAL_WIN32_TC_N
};
void hal_win32_timer_count(int which);

/* Tests only (tests/t_win32.c), not part of hal.h. The count of one
 * HAL_WIN32_TC_* since the process started (-1 for a bad index). */
int64_t hal_win32_timer_counter(int which);
/* The emulation's knobs (0: off): every Nth cancel answers PENDING, every
 * Nth association finds the timer firing, every Nth association fails. */
void hal_win32_timer_emu_force(int pending_every, int signal_every, int fail_every);
/* The path in use now: HAL_WIN32_TIMER_* (also tests/t_timer.c). */
int hal_poll_timer_mode(void);

#endif /* WEFT_HAL_WIN32_H */
