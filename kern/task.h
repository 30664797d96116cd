/* SPDX-License-Identifier: MIT */
/*
 * task.h — a task (Go: g) and its state machine.
 *
 * A task is a function running on its own stack with a saved context. It is
 * created by weft_go, runs on whichever worker thread picks it up, parks
 * when it waits, and ends when its function returns or calls weft_exit.
 */
#ifndef WEFT_KERN_TASK_H
#define WEFT_KERN_TASK_H

#include "kern/alloc.h"
#include "kern/kern.h"

/*
 * Task states (Go: _Grunnable, _Grunning, _Gwaiting, _Gdead).
 *
 *            weft_go                      k_ready
 *   (free) ---------> RUNNABLE <----------------------------- WAITING
 *                       |   ^                                    ^
 *           schedule()  |   | yield / preempted                  | k_park
 *                       v   |                                    |
 *                     RUNNING -----------------------------------+
 *                       |
 *                       | fn returns / weft_exit
 *                       v
 *                     DEAD ---> stack and struct go back to the caches
 *
 * RUNNABLE  on exactly one run queue (a proc's runnext or ring, or the
 *           global queue), or in the hands of the thread that just took it
 *           off one. Nobody runs on its stack; its context is saved.
 * RUNNING   owned by exactly one thread, which runs on its stack. Only that
 *           thread changes the state (to RUNNABLE, WAITING or DEAD), and
 *           only after the task's context is saved (on the thread's
 *           scheduler stack, see sched.c), never before.
 * WAITING   parked: not on any run queue. It is recorded in exactly one wait
 *           structure (a channel's or semaphore's waiter list, a timer);
 *           whoever removes it from there calls k_ready, which makes it
 *           RUNNABLE. The store that makes a task WAITING happens after its
 *           context is saved and before the wait structure's lock is
 *           released, so k_ready never sees a task still running.
 * DEAD      finished; its stack is being recycled.
 *
 * The state field is atomic so that the dump and the deadlock check can read
 * it from any thread; transitions are made only by the owner named above.
 */
enum task_state {
    TASK_RUNNABLE = 1,
    TASK_RUNNING = 2,
    TASK_WAITING = 3,
    TASK_DEAD = 4,
};

/* Why a task waits, printed by the dump. Add new ones at the end; each
 * string is the dump's text (Go: waitReason). */
#define K_WAIT_REASONS(X)                                                                          \
    X(WAIT_NONE, "")                                                                               \
    X(WAIT_CHAN_SEND, "chan send")                                                                 \
    X(WAIT_CHAN_RECV, "chan receive")                                                              \
    X(WAIT_CHAN_NIL_SEND, "chan send (nil chan)")                                                  \
    X(WAIT_CHAN_NIL_RECV, "chan receive (nil chan)")                                               \
    X(WAIT_SELECT, "select")                                                                       \
    X(WAIT_SELECT_NO_CASES, "select (no cases)")                                                   \
    X(WAIT_MUTEX, "mutex lock")                                                                    \
    X(WAIT_RWMUTEX_R, "rwmutex read lock")                                                         \
    X(WAIT_RWMUTEX_W, "rwmutex write lock")                                                        \
    X(WAIT_COND, "cond wait")                                                                      \
    X(WAIT_WAITGROUP, "waitgroup wait")                                                            \
    X(WAIT_SEMA, "semaphore")                                                                      \
    X(WAIT_SLEEP, "sleep")                                                                         \
    X(WAIT_TIMER, "timer")                                                                         \
    X(WAIT_IO_READ, "I/O read")                                                                    \
    X(WAIT_IO_WRITE, "I/O write")                                                                  \
    X(WAIT_TEST, "test")                                                                           \
    X(WAIT_IO_CLOSE, "I/O close")                                                                  \
    X(WAIT_IO_CANCEL, "I/O cancel (completion owed)")

enum wait_reason {
#define K_WAIT_ENUM(name, str) name,
    K_WAIT_REASONS(K_WAIT_ENUM)
#undef K_WAIT_ENUM
        WAIT_NREASONS
};
const char *k_wait_reason_str(enum wait_reason r);

struct thread;
struct k_host;

struct task {
    /* Owned by the thread running the task (or, while it is not running,
     * by whoever holds it per the state machine above): */
    struct hal_context ctx; /* saved context while not running */
    struct k_stack stack;
    void (*fn)(void *);
    void *arg;
    struct task *schedlink;   /* next in the global run queue (sched.lock) */
    bool fresh;               /* never ran: no context yet, maybe no stack */
    int nopreempt;            /* weft_nopreempt_begin depth */
    bool blocking;            /* between weft_block_begin and _end */
    int nlocked;              /* weft_lock_thread depth */
    int os_errno;             /* weft_errno: errno at the last weft_block_end, or the
                                 OS error of the last weft I/O call that failed */
    struct thread *locked_to; /* runs only on this thread (nlocked > 0) */

    /* Immutable after spawn (until it is recycled): */
    uint64_t id;
    /* Non-NULL only in a host thread's stand-in (kern/host.h), which is
     * never on a run queue and never runs: k_ready wakes that thread. */
    struct k_host *host;

    /* Written by the owner; read by the dump from any thread: */
    _Atomic int state;              /* enum task_state */
    _Atomic int wait_reason;        /* enum wait_reason, while WAITING */
    _Atomic int64_t wait_since_ns;  /* since when, WAITING or in a blocking call */
    void *_Atomic wait_obj;         /* the channel, lock, ... it waits on */
    _Atomic uintptr_t preempted_pc; /* where an interrupt switched it out, while it is (0) */

    /* Protected by sched.alltasks_lock: */
    struct task *all_next;

    /* Set by the waker before k_ready, read by the task after it resumes;
     * free for the subsystem it waits in (e.g. the select case that won). */
    void *_Atomic wake_data;
    /* Waiters of this task in a blocking select (select.c; owned by the task). */
    struct waiter *waiting;
    /* Set while the task is in a select and some case may win (select.c,
     * chan.h). */
    _Atomic uint32_t select_done;
};

/* The task running on the calling thread, or NULL (scheduler stack, or a
 * thread that is not a kern worker). Never cache it across a park. Every
 * public function that needs a proc calls it, so it is where a task that
 * calls weft between weft_block_begin and weft_block_end (its thread holds
 * no proc) is stopped: a message naming the rule, the dump, an abort. */
struct task *k_task_self(void);
/* The same without that check: for the public functions a task may call
 * inside a blocking call (weft_id, weft_errno, weft_procs, weft_stats,
 * weft_dump; weft_now needs no task). */
struct task *k_task_here(void);

#endif /* WEFT_KERN_TASK_H */
