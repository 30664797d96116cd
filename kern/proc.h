/* SPDX-License-Identifier: MIT */
/*
 * proc.h — the scheduler's structures: procs (Go: p), worker threads
 * (Go: m) and the global scheduler state (Go: schedt).
 *
 * Who owns what, in one paragraph: a thread runs tasks only while it holds
 * a proc. A proc has a local run queue that only its holder pushes to (and
 * pops from); other threads may steal from it. Idle procs and idle threads
 * sit on lists in sched, under sched.lock. A task runs on a thread's stack
 * of its own; a thread's scheduler code runs on the thread's own OS stack
 * (Go: g0), reached by switching to thread->sched_ctx.
 */
#ifndef WEFT_KERN_PROC_H
#define WEFT_KERN_PROC_H

#include "kern/alloc.h"
#include "kern/lock.h"
#include "kern/sched.h"
#include "kern/task.h"
#include "kern/timer.h"
#include "kern/waiter.h"

#define K_RUNQ_SIZE 256              /* slots in a proc's ring run queue */
#define K_GLOBAL_TICK 61             /* check the global queue every this many ticks */
#define K_RUNNEXT_STEAL_WAIT_NS 3000 /* a thief's sleep before taking runnext (proc.c) */
#define K_MAX_PROCS 1024
/* Spare procs a run may lend at once to stand in for procs whose threads
 * are stuck in the OS in calls nobody annotated (monitor.c, "Lending"):
 * max(procs, K_SPARE_MIN). */
#define K_SPARE_MIN 8
#define K_TASK_CACHE 64   /* dead tasks (with stacks) kept per proc */
#define K_WAITER_CACHE 64 /* free waiters kept per proc */

/*
 * A proc's status word (proc.status). Its low K_PROC_STATE_BITS bits are
 * the state; the rest is zero, except in SYSCALL, where it is the number
 * of the blocking call (proc.syscall_gen) that gave the proc up:
 *
 *   IDLE     on sched.idle_procs, no thread. Stored under sched.lock
 *            (relaxed: the lock orders it), and by the monitor's CAS
 *            from SYSCALL (acquire-release) just before k_handoff.
 *   RUNNING  held by exactly one thread (p->thread once it has stored it).
 *            Stored by whoever gives the proc to a thread (relaxed: the
 *            proc itself then travels through sched.lock or next_proc,
 *            which order it; sched.c k_handoff), or by the thread's
 *            relaxed CAS from its own SYSCALL word (weft_block_end).
 *   SYSCALL  its holder's task is in a blocking call (block.c), and the
 *            thread holds no proc. The word is SYSCALL | gen << 2 for that
 *            one call, stored by the thread (release). From there exactly
 *            one CAS of that word wins: the thread's, to RUNNING, when the
 *            call ends (Go: exitsyscallfast), or the monitor's, to IDLE,
 *            before k_handoff (Go: retake). A call that lost its proc
 *            cannot take it back from a later call on it: that call's word
 *            has another gen (with the state alone, both words would be
 *            plain SYSCALL: an ABA, tested by block_aba), and gens are 62
 *            bits, never reused in a run.
 *   SPARE    a spare proc (index nprocs and up) that is not lent: on
 *            sched.spares, no thread, nothing queued, not counted in
 *            sched.nactive; the timers its tasks started while it was lent
 *            are run by thieves, as an idle proc's. Stored under
 *            sched.lock (relaxed, as IDLE) by the monitor when the loan
 *            ends while the proc is idle, or by the holder that retires it
 *            (sched.c proc_retire). A spare leaves SPARE only through the
 *            monitor's lend (monitor.c), to RUNNING in k_handoff.
 */
enum proc_status {
    PROC_IDLE = 0,
    PROC_RUNNING = 1,
    PROC_SYSCALL = 2,
    PROC_SPARE = 3,
};
#define K_PROC_STATE_BITS 2
#define K_PROC_STATE(word) ((int)((word) & ((1u << K_PROC_STATE_BITS) - 1)))

struct proc {
    /* Immutable during a run: */
    int id;

    /* status: the status word above; its writers and orderings are listed
     * there. Read by thieves (relaxed: a hint for whom to rob, proc.c) and
     * by the monitor (acquire, pairing with the SYSCALL word's release
     * store). idle_next: under sched.lock. thread: the holder, NULL when
     * idle; every store is release (or a seq_cst plain assignment),
     * pairing with the monitor's acquire load (preempt_one reads th->os). */
    _Atomic uint64_t status;
    struct proc *idle_next;
    struct thread *_Atomic thread;

    /*
     * The run queue (Go: runqhead, runqtail, runq, runnext).
     * Only the holder writes runq_tail (release store) and the slots in
     * [tail, head + K_RUNQ_SIZE); anyone may take from the head with a CAS
     * on runq_head (acquire-release). runnext: only the holder sets it to a
     * task; a thief may CAS it to NULL (to steal it).
     */
    _Alignas(K_CACHELINE) _Atomic uint32_t runq_head;
    _Alignas(K_CACHELINE) _Atomic uint32_t runq_tail;
    struct task *_Atomic runq[K_RUNQ_SIZE];
    struct task *_Atomic runnext;

    /* Written by the holder (relaxed), read by the monitor: */
    _Alignas(K_CACHELINE) _Atomic uint32_t schedtick; /* incremented per task run */
    _Atomic uint64_t cur_id; /* the id of the task it last started (the dump) */

    /* Lending (monitor.c). retire: a lent spare whose loan has ended while
     * a thread holds it; set under sched.lock by the monitor, read by the
     * holder at its next scheduling decision (relaxed: a stale false
     * retires it one decision later; proc_retire re-reads it under the
     * lock). lent: the spare this proc's stuck thread is covered by, or
     * NULL; and stuck_ns, since when (hal_now_ns); both written by the
     * monitor only, read by the dump (relaxed: a snapshot). spare_next:
     * sched.spares, under sched.lock. */
    _Atomic bool retire;
    struct proc *_Atomic lent;
    _Atomic int64_t stuck_ns;
    struct proc *spare_next;
    /* Owned by the holder (no lock, no atomic needed): */
    uint64_t syscall_gen; /* blocking calls begun on this proc (its SYSCALL words) */
    int64_t clock_ns;     /* recent hal_now_ns: set when the proc leaves the idle list
                             or a spare is lent, refreshed every 64 ticks */
    struct k_mcache mcache;
    struct k_stack_cache stack_cache;
    struct task *dead; /* dead tasks with default stacks, for reuse */
    uint32_t ndead;
    struct waiter *waiters[K_WAITER_CACHE];
    uint32_t nwaiters;

    /* Timers (timer.c): a 4-ary heap ordered by when. timers_lock protects
     * the heap and its timers' when/idx/proc; anyone may run due timers
     * (the holder, a thief, the poller's thread). Rank: after a poll
     * descriptor's lock and a weft_timer's, before alloc's. timer0 is the
     * heap's earliest when (0: empty), stored under the lock, read by
     * anyone without it. When it becomes earlier (k_timer_start) it is
     * stored seq_cst, and k_timers_earliest loads it seq_cst: with
     * sched.last_poll's seq_cst exchange in poll_or_stop and load in
     * k_poll_wake_for, either the starter sees the poller blocked and
     * wakes it, or the poller sees the new time (timer.c, k_timer_start).
     * When it becomes later (a fire, a stop) nobody needs waking: a
     * release store, read with acquire by thieves (steal_work) and
     * relaxed by hints that lock the heap before acting. */
    struct k_lock timers_lock;
    struct k_timer_slot *timers; /* when copied from the timer, for sifting */
    uint32_t ntimers, timers_cap;
    _Atomic int64_t timer0;

    /* Statistics: written by the holder with relaxed stores, read by anyone: */
    _Atomic uint64_t nswitch;
    _Atomic uint64_t nsteal;
    _Atomic uint64_t npreempt; /* tasks switched out by preemption */
};

/* Why a task switched to its thread's scheduler stack. */
enum switch_why {
    SW_NONE = 0,
    SW_YIELD,   /* runnable again: back of the local run queue */
    SW_PARK,    /* WAITING: call thread->park_fn, then forget the task */
    SW_EXIT,    /* DEAD: recycle */
    SW_PREEMPT, /* preempted (signal or pending request): back of the queue */
    SW_BLOCKED, /* ended a blocking call and found no proc: queue it, park */
    SW_DISCARD, /* ended a blocking call in a stopping run: dropped, and the
                   thread leaves its loop (it holds no proc) */
    SW_ORPHAN,  /* ended a blocking call after weft_run abandoned the thread:
                   leave without touching anything of the run (runtime.c) */
};

/*
 * A thread's blocking-call state (thread.call): how weft_run's end tells a
 * thread it can join from one it must abandon in the OS (runtime.c, "A run
 * ends while tasks are in blocking calls").
 *
 *   CALL_OUT        not in a blocking call (the initial state).
 *   CALL_IN         its task is between weft_block_begin and weft_block_end.
 *   CALL_ORPHANING  weft_run's end is abandoning it; the thread, if its call
 *                   returns meanwhile, waits for ORPHANED.
 *   CALL_ORPHANED   abandoned: what it needs was kept out of the run's
 *                   release; back from its call it leaves (SW_ORPHAN).
 *   CALL_EXITED     it has left its scheduler loop; weft_run may join it.
 *
 * OUT -> IN: the thread, in weft_block_begin (release store).
 * IN -> OUT: the thread's CAS in weft_block_end. IN -> ORPHANING: weft_run's
 * CAS. Exactly one of the two wins. ORPHANING -> ORPHANED: weft_run (release
 * store). OUT -> EXITED: thread_main (release store), then a futex wake.
 */
enum thread_call {
    CALL_OUT = 0,
    CALL_IN = 1,
    CALL_ORPHANING = 2,
    CALL_ORPHANED = 3,
    CALL_EXITED = 4,
};

struct thread {
    /* First, where lock.c finds it through hal_thread_get() (lock.h).
     * Owned by this thread: */
    struct k_lock_count locks;

    /* Immutable after start: */
    int id;
    hal_thread_t handle;     /* for joining; unused for thread 0 */
    struct thread *all_next; /* sched.all_threads (append under sched.lock) */

    /* Owned by this thread: */
    struct hal_context sched_ctx; /* its scheduler loop, on its OS stack */
    struct task *cur;             /* the task it runs, NULL on its scheduler stack */
    struct proc *proc;            /* the proc it holds, NULL when idle */
    bool spinning;                /* counted in sched.nspinning */
    bool preempted;               /* its last task was preempted (find_runnable) */
    bool hold_wakep;              /* k_ready counts in held_wakes, no k_wakep */
    int held_wakes;
    hal_thread_t os;       /* for hal_thread_preempt */
    struct task *locked;   /* the task locked to this thread (weft_lock_thread) */
    struct proc *old_proc; /* the proc held before a blocking call (Go: oldp) */
    uint64_t syscall_word; /* the SYSCALL word that call stored in old_proc */
    uint64_t rand;         /* k_rand_next state */
    enum switch_why why;   /* set by the task before switching out */
    k_unlock_fn park_fn;   /* with SW_PARK */
    void *park_arg;
    struct task *prev;        /* a direct switch's old task, whose park or
                                 yield the task switched to finishes (sched.c) */
    enum switch_why prev_why; /* SW_PARK or SW_YIELD, with prev */

    /* Protected by sched.lock: */
    struct thread *idle_next;
    struct proc *next_proc; /* proc handed over by the waker (Go: nextp) */
    bool locked_idle;       /* waiting for its locked task (counted in
                               sched.nidle_locked, on sched.locked_threads) */
    struct thread *locked_next;

    /* Set by the monitor (relaxed) to ask the running task to switch out;
     * cleared when the thread starts a task. Read by the thread. */
    _Atomic int preempt_req;
    /* Interrupts the monitor sent to this thread (it stores it before
     * hal_thread_preempt), and the last of them kern_preempt_ok has seen
     * (it copies sig_sent on this thread, or on the monitor's for a port
     * that suspends). Different: one is still on its way, and the monitor
     * sends no other (monitor.c preempt_one). Relaxed both: a hint. */
    _Atomic uint32_t sig_sent, sig_seen;

    /* The parking word: 0 parked/about to park, 1 woken. The waker stores 1
     * (release) after setting next_proc under sched.lock, then futex-wakes. */
    _Atomic uint32_t wake;

    /* enum thread_call, with its transitions above; weft_run's end waits on
     * it as a futex word. */
    _Atomic uint32_t call;
    /* Set by weft_run before it stores CALL_ORPHANED, read by the thread
     * after it loads that (acquire): the stack region kept for its task
     * (k_stack_keep), which the thread lets go when it leaves. */
    void *orphan_region;
};

struct sched {
    /* sched.lock protects the idle lists, the global queue and the thread
     * list. Order (lock.h): may be taken while holding a channel or sema
     * lock, never the other way round; alloc's locks may be taken under it. */
    struct k_lock lock;
    struct proc *idle_procs;
    _Atomic int32_t nidle_procs; /* written under lock, read without */
    struct thread *idle_threads;
    int32_t nidle_threads;
    struct thread *locked_threads; /* threads waiting for their locked task */
    int32_t nidle_locked;
    struct thread *all_threads;
    int32_t nthreads;
    struct task *runq_head, *runq_tail; /* global queue, linked by schedlink */
    _Atomic int32_t runq_size;          /* written under lock, read without */
    /* Dead task structs without stacks, linked by schedlink. Changed under
     * lock; k_task_new peeks at it without the lock (relaxed: a stale peek
     * costs at most a fresh allocation, the list is read again under the
     * lock). */
    struct task *_Atomic free_tasks;

    /* The poller (sched.c, poller.c). last_poll: when a thread last
     * returned from a blocking poll; 0 while one blocks in it (Go:
     * sched.lastpoll; whoever swaps it to 0 is the one that may block).
     * poll_until: when that thread will wake by itself, 0 unknown (Go:
     * sched.pollUntil). */
    _Atomic int64_t last_poll;
    _Atomic int64_t poll_until;

    /* Threads looking for work (Go: nmspinning). See sched.c's protocol. */
    _Atomic int32_t nspinning;

    /* Immutable during a run: */
    int nprocs;          /* the procs asked for (weft_config.procs) */
    int nspares;         /* room for spares after them (K_SPARE_MIN) */
    struct proc **procs; /* nprocs + nspares slots; spares filled lazily */
    size_t stack_size;   /* default usable stack bytes */
    int preempt;         /* 1 on, -1 off */
    bool preempt_async;  /* the port can interrupt threads */
    int64_t timeslice_ns;
    bool background;   /* started by weft_start: no first task, no deadlock report */
    bool autoblock;    /* lend procs for stuck threads (WEFT_AUTOBLOCK, monitor.c) */
    int64_t trace_ns;  /* WEFT_SCHEDTRACE's period, 0 off (monitor.c sched_trace) */
    bool trace_detail; /* WEFT_SCHEDTRACE=ms,detail: the tasks too */

    /* Lending (monitor.c). nall: the procs that exist, nprocs plus every
     * spare made so far (it only grows); loops over procs go to nall.
     * Stored by the monitor with release after it filled procs[nall - 1];
     * loaded with acquire by the loops. spares: the made spares not lent
     * (PROC_SPARE), linked by spare_next, under sched.lock. nactive: the
     * procs that count as procs now, nprocs plus the spares lent; written
     * under sched.lock, read without (a hint) or under it. */
    _Atomic int32_t nall;
    struct proc *spares;
    _Atomic int32_t nactive;
    _Atomic uint64_t nlend;      /* loans made (weft_stats auto_handoffs) */
    _Atomic bool lend_exhausted; /* the limit message was printed */

    _Atomic bool stopping; /* weft_run is ending: threads leave */
    _Atomic int result;    /* weft_run's return value */
    struct task *main_task;

    /* Every task struct ever allocated in this run (never freed before the
     * run ends; dead ones are reused), for the dump. Append-only under
     * alltasks_lock; readers walk it under the same lock. */
    struct k_lock alltasks_lock;
    struct task *alltasks;
    _Atomic uint64_t ntasks_live;
    _Atomic uint64_t next_id;

    /* Counters for weft_stats. */
    _Atomic uint64_t nretake; /* procs retaken from blocking calls */
    /* Overruns not interrupted because the thread was in the OS
     * (monitor.c cpu_look; tests read it). */
    _Atomic uint64_t npreempt_os;
};

K_STATIC_ASSERT(offsetof(struct thread, locks) == 0,
                "lock.c reads the lock count at the thread pointer");

extern struct sched k_sched;

/* The calling thread's kern thread, or NULL for foreign threads. */
static inline struct thread *k_thread_self(void)
{
    return (struct thread *)hal_thread_get();
}

/* ---- proc.c: run queues ---- */
void k_runq_put(struct proc *p, struct task *t, bool next);
struct task *k_runq_get(struct proc *p);
/* The ring's head, leaving runnext alone (the fairness turn in sched.c). */
struct task *k_runq_get_ring(struct proc *p);
bool k_runq_empty(struct proc *p);
/* Whether k_runq_put(p, t, true) keeps every task on p: runnext is free or
 * the ring has a slot (else half the ring overflows to the global queue).
 * Only p's holder calls this. */
bool k_runq_has_room(struct proc *p);
/* Steals about half of victim's queue into p's; returns one task to run. */
struct task *k_runq_steal(struct proc *p, struct proc *victim, bool steal_next);
/* Global queue; sched.lock held. */
void k_globrunq_put(struct task *t);
struct task *k_globrunq_get(struct proc *p, int max);

/* ---- sched.c ---- */
void k_sched_loop(struct thread *th); /* a thread's scheduler loop */
void k_wakep(void);
void k_sched_inject(struct task *list); /* tasks from a poll, any thread */
/* k_wakep for a thread that holds no proc and made work visible through
 * sched.lock or a timer heap (a host thread): fences first (sched.c,
 * wakep_for_global). */
void k_wakep_global(void);
void k_stop_the_world(int result); /* begin shutdown (any thread) */

/* Worker threads' structs, and threads left in the OS (runtime.c). */
/* A zeroed struct thread for a worker, or NULL. Its memory is not the
 * run's (it outlives the run when weft_run abandons the thread). */
struct thread *k_thread_alloc(void);
void k_thread_free(struct thread *th);
/* Starts th (from k_thread_alloc; next_proc and rand set) as a worker on
 * sched.all_threads, numbered next: weft_start's thread 0. 0 or
 * WEFT_ENOMEM. */
int k_thread_start(struct thread *th);
/* weft_run abandons a thread in its blocking call (counted until it ends). */
void k_orphan_begin(void);
/* The end of an abandoned thread, on its own stack, its kern pointer
 * cleared: lets its task's stack go and frees th (thread_main). */
void k_orphan_exit(struct thread *th);
/* Threads abandoned in blocking calls by any run of this process that
 * have not come back yet. */
uint32_t k_orphans_live(void);

/* ---- task.c ---- */
struct task *k_task_new(struct proc *p, size_t stack_size);
void k_task_recycle(struct proc *p, struct task *t);
void k_task_first_run(struct task *t);
_Noreturn void k_task_exit(void);
/* The calling thread's proc's allocator cache, NULL when it holds no proc:
 * the allocator's lookup (k_mem_init). */
struct k_mcache *k_mcache_self(void);

/* ---- sched.c, for block.c, monitor.c and preempt.c ---- */
/* Switches the calling task to its thread's scheduler stack for why;
 * returns when it runs again (maybe on another thread), with the task's
 * errno back in place. */
void k_switch(enum switch_why why);
/* First thing wherever a task resumes: finishes the park of the task that
 * switched straight to this one, if any (sched.c, "Direct switches"). */
void k_switched_in(void);
/* Go: handoffp. Gives p (status not IDLE-listed, held by nobody) to a
 * thread if it has work or nobody looks for work, else to the idle list. */
void k_handoff(struct proc *p);
/* An idle proc, now RUNNING and unowned, or NULL. */
struct proc *k_proc_idle_take(void);
/* The procs that exist now (sched.nall, acquire): loops over procs. */
static inline int k_procs_all(void)
{
    /* Acquire: pairs with the monitor's release store after it made
     * procs[nall - 1] (monitor.c lend). */
    return atomic_load_explicit(&k_sched.nall, memory_order_acquire);
}
/* Lending, for the monitor (sched.c): a spare lent (made, or taken off
 * sched.spares; counted in nactive) handed to a thread, or NULL when
 * every spare is lent; the end of a loan. */
struct proc *k_spare_lend(void);
void k_spare_end(struct proc *q);

/* ---- monitor.c ---- */
int k_monitor_start(void);
void k_monitor_stop(void); /* after sched.stopping is set */
void k_monitor_wake(void); /* wake it now (stopping) */
/* A proc left the idle list while every proc was idle: wake the monitor
 * unless it looks again by itself within a grace (monitor.c). */
void k_monitor_work(void);
void k_monitor_kick(void);  /* a blocking call began: shorten its sleep */
void k_monitor_print(void); /* its view of each proc, for the dump */

/* ---- preempt.c ---- */
void k_preempt_setup(void); /* at weft_run: text ranges, the port */
/* Honours a pending preemption request if the task may switch here. */
void k_preempt_point(void);

/* ---- dump.c ---- */
/* Every live task: a line each, then its frames and start function. */
void k_dump_tasks(void);
/* A line per task, no frames (WEFT_SCHEDTRACE's detail). */
void k_dump_tasks_brief(void);

#endif /* WEFT_KERN_PROC_H */
