/* SPDX-License-Identifier: MIT */
/*
 * timer.h — kern's timers: per-proc 4-ary heaps (Go 1.14+'s design, time.go).
 *
 * A pending timer lives in exactly one proc's heap: the proc of the thread
 * that started it. Whoever holds a proc runs its own proc's due timers in
 * find_runnable; a spinning thread runs a victim's due timers while it
 * steals (so an idle proc's timers still fire); a thread with nothing to do
 * blocks in the poller until the earliest timer of all procs. A timer's
 * function runs on a scheduler stack (no task), with no kern lock held, on
 * a thread that holds a proc; it must not park.
 */
#ifndef WEFT_KERN_TIMER_H
#define WEFT_KERN_TIMER_H

#include "kern/kern.h"

struct proc;
struct k_timer;

/* Called when t fires. seq is t->seq as it was when the timer was taken
 * off the heap (a stale fire of a timer that was reset since can be told
 * by comparing). now is the time the timers were run. */
typedef void (*k_timer_fn)(struct k_timer *t, uint64_t seq, int64_t now);

struct k_timer {
    /* Set by the owner while the timer is not pending: */
    k_timer_fn fn;
    void *arg;
    int64_t period_ns; /* 0: once */
    uint64_t seq;      /* bumped by the owner on every (re)start */

    /* Protected by the lock of the heap it is in (proc->timers_lock): */
    int64_t when; /* absolute hal_now_ns() time */
    int32_t idx;  /* its slot in the heap */
    /* The proc whose heap holds it, NULL when not pending. Written under
     * that heap's lock; read without it to find the lock (then checked).
     * The store of NULL when a fire takes a one-shot timer off its heap is
     * a release: it pairs with k_timer_stop's acquire load, so an owner
     * that finds NULL there also sees running set by that fire. */
    struct proc *_Atomic proc;
    /*
     * Which thread is calling fn: at most one at a time (Go: the
     * timerRunning state of its 1.14-1.22 timers). Two states:
     *
     *   0  nobody is in fn.
     *   1  the thread that set it is in fn, or about to enter or just
     *      leaving it.
     *
     * 0 -> 1: only by a thread that runs the heap t is in (k_timers_run),
     *      holding that heap's lock, with t due at the top, and before it
     *      takes t off the heap or moves it (so before proc goes NULL).
     *      A thread that finds t due with running already 1 does not call
     *      fn: it moves t later instead (k_timers_run).
     * 1 -> 0: by the same thread, after fn returned, with a release store
     *      (pairs with the acquire loads in k_timers_run, k_timer_quiesce
     *      and weft_timer_reset). After it the thread touches t no more.
     *
     * The only ways to be due while 1 are a periodic timer whose fn
     * outlasts its period, and a one-shot timer its owner started again
     * while its previous fire runs (a poll descriptor's deadline). So
     * once k_timer_stop returned and running is 0, nobody is in fn and
     * nobody will enter it: k_timer_quiesce waits for that.
     */
    _Atomic int32_t running;
};

/* How much later a thread tries again to fire a one-shot timer that it
 * found due while another thread still runs the timer's previous fire
 * (k_timers_run). A fire is a non-blocking call: microseconds. */
#define K_TIMER_BUSY_RETRY_NS 10000

/* A heap slot (timer.c): the timer and a copy of its when. */
struct k_timer_slot {
    int64_t when;
    struct k_timer *t;
};

/* Starts t to fire at when (absolute ns), in the calling thread's proc's
 * heap. t must not be pending. Caller holds a proc (a task or a scheduler
 * stack), or is a host thread inside the gate (kern/host.h: then a heap
 * chosen by t's address, and a worker is woken), and no timer lock. Wakes
 * the poller if t is now the earliest. */
void k_timer_start(struct k_timer *t, int64_t when);
/* Takes t off its heap. True if it was pending (so it will not fire
 * again; a fire already begun may still be running: k_timer_quiesce). */
bool k_timer_stop(struct k_timer *t);
/* Waits (yielding when called from a task, spinning otherwise) until t's
 * function is not running. Call after k_timer_stop, before freeing t or
 * changing its fn, arg or period: then no thread is in t's function and
 * none will enter it until t is started again. */
void k_timer_quiesce(struct k_timer *t);

/* Runs p's timers that are due at now; the caller holds a proc (its
 * own or any, when p is a victim). A due timer whose function another
 * thread is running is not run again at once: a periodic one skips to its
 * next tick after now (the tick is dropped, as one the reader has not
 * taken), a one-shot one waits K_TIMER_BUSY_RETRY_NS more. A caller with
 * a proc stops early when its run queue has no room left (what the timers
 * ready would overflow to the global queue); the rest stay due. Returns
 * p's earliest remaining time (<= now when some were left), 0 if none.
 * The monitor holds no proc and never calls it: for due timers that no
 * thread looks at it wakes a thread with k_wakep (monitor.c,
 * run_stranded_timers), which runs them as it searches for work. */
int64_t k_timers_run(struct proc *p, int64_t now);
/* The earliest pending timer of every proc, 0 if none. Any thread. */
int64_t k_timers_earliest(void);
/* Pending timers in every heap (statistics; takes each heap's lock: the
 * caller holds no timer lock). */
uint64_t k_timers_count(void);
/* Frees p's heap at the end of a run. */
void k_timers_fini(struct proc *p);

#endif /* WEFT_KERN_TIMER_H */
