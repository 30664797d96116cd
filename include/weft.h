/* SPDX-License-Identifier: MIT */
/*
 * weft.h — goroutines for C: the whole public API.
 *
 * One header for C11 and later or C++11 and later, no includes beyond
 * <stddef.h> and <stdint.h>, and no OS types: the ABI is the same on every
 * target.
 *
 * Conventions: a function that can fail returns 0 (or a count) on success
 * and a negative WEFT_E* code on failure. Functions that park the caller
 * ("may park") must be called from a task; called elsewhere they return
 * WEFT_ENOTASK. Host threads (threads weft did not start) may spawn tasks
 * and use channels and timers while a runtime runs (weft_start below).
 * See docs/API.md for the guide.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__cplusplus)
#define WEFT_NORETURN [[noreturn]]
#else
#define WEFT_NORETURN _Noreturn
#endif

/*
 * WEFT_EXTERN marks every function of the API. The library is built with
 * hidden visibility, so these are the only names it exports: the rest of
 * weft (kern's k_*, the port's hal_*) cannot clash with a program's own.
 * Windows: weft.dll exports exactly these names. A program that links its
 * import library (libweft.dll.a) may define WEFT_USING_DLL, so that calls
 * go through the import table directly instead of a thunk; it works
 * without. A static link defines nothing. WEFT_BUILDING_DLL is for a
 * build that compiles weft's sources into a DLL of its own with
 * dllexport (weft's Makefile exports from its static object instead).
 */
#if defined(_WIN32)
#if defined(WEFT_BUILDING_DLL)
#define WEFT_EXTERN __declspec(dllexport)
#elif defined(WEFT_USING_DLL)
#define WEFT_EXTERN __declspec(dllimport)
#else
#define WEFT_EXTERN
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

/* ---- Version ----
 *
 * The one place that sets weft's version: the Makefile reads these lines
 * (the shared library's name and SONAME, weft.pc). MAJOR changes when the
 * ABI does. WEFT_VERSION_HEX is 0xMMmmpp, for #if comparisons. */
#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
#define WEFT_VERSION_HEX                                                                           \
    ((WEFT_VERSION_MAJOR << 16) | (WEFT_VERSION_MINOR << 8) | WEFT_VERSION_PATCH)

/* The version of the library the program runs with, "MAJOR.MINOR.PATCH"
 * (the macros above are the header's, at compile time). Never NULL. */
WEFT_EXTERN const char *weft_version(void);

/* ---- Error codes: distinct negative numbers. ---- */
#define WEFT_EINVAL (-1)    /* bad argument */
#define WEFT_ENOMEM (-2)    /* out of memory or address space */
#define WEFT_EAGAIN (-3)    /* would block (try operations) */
#define WEFT_ECLOSED (-4)   /* channel or descriptor closed */
#define WEFT_ETIMEDOUT (-5) /* deadline passed */
#define WEFT_EDEADLK (-6)   /* every task is blocked forever */
#define WEFT_ENOTASK (-7)   /* called outside a task, or no runtime runs */
#define WEFT_EBADF (-8)     /* not a valid descriptor */
#define WEFT_EIO (-9)       /* other OS error (see weft_errno) */
#define WEFT_EBUSY (-10)    /* the runtime is already running */
#define WEFT_ENOTSUP (-11)  /* not possible on this platform (see each use) */

/* The name of an error code ("WEFT_EINVAL: invalid argument"); never NULL. */
WEFT_EXTERN const char *weft_strerror(int code);

/* ---- Lifecycle ---- */

/*
 * Zero fields mean defaults; the environment overrides a zero field:
 *   procs        CPU count (of the process's affinity mask)  WEFT_PROCS
 *   stack_size   256 KiB, rounded up to whole pages          WEFT_STACK
 *   preempt      1 = on, -1 = off                            WEFT_PREEMPT=0/1
 *   timeslice_ns 10 ms
 */
typedef struct weft_config {
    int procs;
    size_t stack_size;
    int preempt;
    int64_t timeslice_ns;
} weft_config;

/*
 * Starts the runtime, runs fn(arg) as the first task and returns when it
 * returns: the other tasks are discarded (not run any further), every
 * thread is joined and all memory is given back. Can be called again
 * afterwards (not concurrently, not from inside a task: WEFT_EBUSY).
 * The calling thread is one of the run's workers, and fn starts on it.
 * A task inside weft_block_begin/end when the run ends is abandoned in
 * its call: weft_run does not wait for it. Its thread is left to the OS
 * (detached), with only the task's stack and weft's record of the thread
 * kept for it; when the call returns, weft_block_end ends that thread
 * without running the task further and without touching anything of the
 * run or of a later one, and the stack goes back then. The exception is a
 * call on weft_run's own thread (a task's call runs on whichever thread
 * runs it): weft_run returns as soon as that call does. A call made
 * without weft_block_begin holds its thread like running code, and
 * weft_run waits for it.
 * Returns 0; WEFT_EDEADLK when every task is blocked forever (a dump of
 * every task is printed first); WEFT_EINVAL for a NULL fn, a negative or
 * absurd config field, or a bad value of a WEFT_* environment variable
 * (WEFT_PREEMPT, WEFT_PROCS, WEFT_POLLER_TIMER: a message names it);
 * WEFT_ENOMEM; WEFT_EBUSY when a run is already going on; WEFT_EIO when
 * the OS refuses a resource the run needs (the poller).
 */
WEFT_EXTERN int weft_run(void (*fn)(void *), void *arg, const weft_config *cfg);

/*
 * Embedding (docs/embedding.md): the runtime in the background of a host
 * that keeps its own threads.
 *
 * weft_start starts the runtime on threads of its own and returns at once;
 * the calling thread goes on with the host's work. No task runs until
 * one is spawned (weft_go works from any thread while a runtime runs).
 * 0; WEFT_EBUSY when a runtime is already running (started by weft_start
 * or weft_run, or called from a task); WEFT_EINVAL, WEFT_ENOMEM, WEFT_EIO
 * as for weft_run. A runtime started so never reports a deadlock: host
 * threads may act at any time.
 *
 * weft_stop ends it as weft_run's end does: remaining tasks are discarded,
 * every thread is joined (or abandoned in a blocking call, see weft_run),
 * all memory is given back, and weft_start or weft_run may run again.
 * Host threads inside a weft call meanwhile are waited for; one parked
 * in a channel operation returns WEFT_ENOTASK with the operation not done
 * (unless a task completed it first), and every call a host makes from
 * then on returns WEFT_ENOTASK (or NULL, or 0: as with no runtime). 0;
 * WEFT_EDEADLK when called from a task (it would wait for its own
 * thread, as pthread_join on oneself does); WEFT_EBUSY when the runtime
 * running is weft_run's (only its first task's return ends it);
 * WEFT_EINVAL when no runtime started by weft_start runs (never started,
 * already stopped, or another weft_stop is ending it).
 *
 * Host threads (threads weft did not start) may call, while a runtime
 * runs: weft_go, weft_go_stack, every channel function and weft_select,
 * the timers, weft_mutex_unlock/trylock, weft_cond_signal/broadcast,
 * weft_wg_add/done, weft_now, weft_procs, weft_stats. A call that must
 * wait (a send nobody takes yet, a select with nothing ready) blocks the
 * host's OS thread, never a proc; Go's channel semantics hold between host
 * threads and tasks. The other calls need a task (WEFT_ENOTASK). The
 * table is in docs/API.md.
 */
WEFT_EXTERN int weft_start(const weft_config *cfg);
WEFT_EXTERN int weft_stop(void);

/* ---- Tasks ---- */

/* Starts a task running fn(arg), from a task or a host thread. 0,
 * WEFT_EINVAL (NULL fn), WEFT_ENOMEM, WEFT_ENOTASK (a host thread while
 * no runtime runs). weft_go_stack takes a stack size (0 = the default); sizes
 * are rounded up to whole pages, minimum 16 KiB, maximum 1 GiB. */
WEFT_EXTERN int weft_go(void (*fn)(void *), void *arg);
WEFT_EXTERN int weft_go_stack(void (*fn)(void *), void *arg, size_t stack_size);

/* Lets other tasks run; a no-op outside a task. */
WEFT_EXTERN void weft_yield(void);
/* Ends the calling task (outside a task: aborts with a message). */
WEFT_NORETURN WEFT_EXTERN void weft_exit(void);
/* The current task's id (1 = the first), 0 outside a task. */
WEFT_EXTERN uint64_t weft_id(void);
/* Procs of the running runtime, 0 if none. */
WEFT_EXTERN int weft_procs(void);
/* Monotonic nanoseconds. */
WEFT_EXTERN int64_t weft_now(void);

/* Parks the calling task for at least ns nanoseconds (<= 0: yields). The
 * wake-up has the poller's nanosecond resolution (late by the OS's wake-up
 * latency, tens of microseconds on Linux, never early: docs/benchmarks.md);
 * sleeping uses no CPU. A wake-up time past
 * INT64_MAX (weft_now()'s scale) is INT64_MAX: the task sleeps for the
 * rest of the run, which is not a deadlock. 0 or WEFT_ENOTASK. */
WEFT_EXTERN int weft_sleep(int64_t ns);

/* ---- Preemption, blocking calls and thread affinity ----
 *
 * A task that runs longer than the time slice (weft_config.timeslice_ns)
 * while others wait is preempted: the monitor thread interrupts it
 * (POSIX: SIGURG to its thread) and it is switched out if it was
 * interrupted in the program's own code (not in weft, not in a shared
 * library such as libc), holds no weft-internal lock and has not opted
 * out; otherwise it is switched out at its next weft call that may switch
 * (a park, weft_yield, weft_go, weft_nopreempt_end, ...). Every register
 * survives. With preempt = -1 (or WEFT_PREEMPT=0) only those calls switch.
 * A program that handles or blocks SIGURG itself keeps it: weft prints a
 * note once and schedules cooperatively.
 *
 * Not preempted either, because the point is not the task's own: code of a
 * signal handler of the program (seen as a signal mask other than the
 * thread's normal one; so a task that blocks signals itself is not
 * preempted until it unblocks them). What weft cannot see: program code
 * that a library calls back while the library holds a lock of its own or
 * thread-local state mid-update (a dl_iterate_phdr callback runs under the
 * loader's lock, which belongs to the OS thread). Wrap such calls in
 * weft_nopreempt_begin/end, or weft_lock_thread, so that the task resumes
 * on the thread that holds the lock.
 */

/* Between these, the calling task is never switched out asynchronously
 * (for code that must not be interrupted half-way, e.g. while it holds a
 * lock of its own that other tasks spin on). Nests. A preemption asked
 * for meanwhile happens at the outermost end. 0, WEFT_ENOTASK, or
 * WEFT_EINVAL (end without begin). */
WEFT_EXTERN int weft_nopreempt_begin(void);
WEFT_EXTERN int weft_nopreempt_end(void);

/* Makes the code of the loaded module (shared object) that contains addr
 * preemptible, as the main program's is: for hosts whose task code lives
 * in a plugin. Any address inside the module will do (a function of it).
 * 0, WEFT_EINVAL (addr in no module), WEFT_ENOMEM (too many modules; 16). */
WEFT_EXTERN int weft_preemptible_module(const void *addr);

/* Around a call that may block in the OS (a read of a pipe, a wait on
 * something weft does not poll): the task's proc is handed to another
 * thread if the call lasts more than about 20 µs, so the other tasks keep
 * running; weft_block_end takes a proc back (the task waits in the run
 * queue if none is free). errno set by the call (on Windows, the
 * GetLastError value too) is intact after weft_block_end, even if the
 * task resumes on another thread; so are both across any weft call. Between
 * the two the task's thread holds no proc, and the task may call no weft
 * function but weft_now, weft_id, weft_errno, weft_procs, weft_stats,
 * weft_dump and a nested pair: any other prints a message naming the rule
 * and the dump, and aborts. No-ops outside a task; a nested begin/end pair
 * does nothing. If the run ends
 * during the call, weft_block_end does not return (see weft_run). (Go:
 * entersyscall/exitsyscall.) */
WEFT_EXTERN void weft_block_begin(void);
WEFT_EXTERN void weft_block_end(void);

/* The OS error number (errno) as the last weft_block_end found it, or
 * behind the last weft I/O call that failed with WEFT_EIO, kept with the
 * task: always the task's own, whereas reading errno after a weft
 * call may, in code the compiler optimised, read the previous thread's
 * (glibc's errno address is declared constant within a function). Outside
 * a task: errno. */
WEFT_EXTERN int weft_errno(void);

/* Ties the calling task to its current OS thread until the matching
 * weft_unlock_thread (calls nest): it runs only there, and the thread runs
 * no other task meanwhile (Go's runtime.LockOSThread), for thread-local
 * state of libraries that need it. Costs a thread hand-off each time the
 * task switches out. A task that ends while locked releases its thread.
 * 0, WEFT_ENOTASK, or WEFT_EINVAL (unlock without lock). */
WEFT_EXTERN int weft_lock_thread(void);
WEFT_EXTERN int weft_unlock_thread(void);

/* ---- Synchronisation: zero-initialised values are ready to use. ----
 *
 * Go's sync package for tasks: a task that waits is parked, its thread runs
 * other tasks. None of these may be copied once used, and none is tied to
 * the task that locked it (one task may lock, another unlock).
 *
 * Errors, the same for every type:
 *   WEFT_EINVAL   a NULL argument, or misuse that can be detected: unlocking
 *                 what is not locked, a negative waitgroup counter, an
 *                 object that was never zeroed where its contents show it
 *                 (a reserved field that is not 0, a count out of its
 *                 range; garbage that looks like a used object cannot be
 *                 told from one). The object is left exactly as it was.
 *   WEFT_ENOTASK  outside a task (the host's thread, a thread the runtime
 *                 did not start, or no run at all). Functions that may park
 *                 (lock, rlock, cond_wait, wg_wait, once_do and both rwmutex
 *                 unlocks) always fail there, even when they would not have
 *                 to wait. trylock always works there; mutex unlock, signal,
 *                 broadcast and wg add/done work there too, waking parked
 *                 tasks, while a runtime runs; with none running (or one
 *                 being stopped) they work only as long as they need not
 *                 wake a parked task: if they would have to, they fail with
 *                 WEFT_ENOTASK and change nothing.
 * NULL is checked first; functions that may park check for a task next,
 * before they look at the object.
 */

/* Go's sync.Mutex, with its starvation mode: a task that waited more than
 * 1 ms for the lock makes the mutex hand it to waiters in FIFO order until
 * the queue drains. Not recursive: a task that locks a mutex it holds
 * waits forever. */
typedef struct weft_mutex {
    int32_t state; /* locked, woken, starving bits and a waiter count */
    uint32_t sema; /* semaphore the waiters park on */
} weft_mutex;
/* 0, WEFT_EINVAL, WEFT_ENOTASK. May park. */
WEFT_EXTERN int weft_mutex_lock(weft_mutex *m);
/* Locks m if it is free, never parks: 0, WEFT_EAGAIN (held, or handed to a
 * starving waiter), WEFT_EINVAL. Works outside a task. */
WEFT_EXTERN int weft_mutex_trylock(weft_mutex *m);
/* 0; WEFT_EINVAL (NULL, or m is not locked: m is left unchanged);
 * WEFT_ENOTASK (outside a task, with no runtime running, when a parked
 * task must be woken; m stays locked). Never parks; in starvation mode it
 * yields to the waiter it hands the lock to. */
WEFT_EXTERN int weft_mutex_unlock(weft_mutex *m);

/* Go's sync.RWMutex: many readers or one writer. Writers are preferred:
 * once a writer waits, new readers wait behind it, so a task must not take
 * the read lock twice (the second rlock can wait forever for a writer that
 * waits for the first). At most 2^30 - 1 concurrent readers. All four
 * functions need a task (WEFT_ENOTASK) and return 0 or WEFT_EINVAL:
 * runlock when no reader holds the lock and unlock when no writer does are
 * refused with the state unchanged (an extra runlock while other readers
 * hold the lock cannot be told from a legitimate one, as in Go). */
typedef struct weft_rwmutex {
    weft_mutex w;         /* held by the writer, and by writers that wait for readers */
    uint32_t writer_sem;  /* the writer waits here for departing readers */
    uint32_t reader_sem;  /* readers wait here for the writer */
    int32_t reader_count; /* readers holding or waiting; - 2^30 while a writer is in */
    int32_t reader_wait;  /* readers the waiting writer still waits for */
} weft_rwmutex;
WEFT_EXTERN int weft_rwmutex_rlock(weft_rwmutex *rw); /* may park */
WEFT_EXTERN int weft_rwmutex_runlock(weft_rwmutex *rw);
WEFT_EXTERN int weft_rwmutex_lock(weft_rwmutex *rw);   /* may park */
WEFT_EXTERN int weft_rwmutex_unlock(weft_rwmutex *rw); /* may yield (see weft_mutex_unlock) */

/* Go's sync.Cond; waiters are woken in FIFO order, and only by a signal or
 * broadcast (no spurious wake-ups), though the condition should still be
 * re-checked in a loop. Signal and broadcast need not hold the mutex. */
typedef struct weft_cond {
    uint32_t wait;   /* ticket of the next waiter */
    uint32_t notify; /* ticket of the next to be notified */
    uint32_t lock;   /* unused, kept zero: the runtime guards the list with
                        a lock of its own chosen by the cond's address */
    uint32_t pad_;
    void *head; /* parked waiters, in ticket order (nearly) */
    void *tail;
} weft_cond;
/* Unlocks m, parks until signalled, locks m again. m must be locked by
 * the caller. 0; WEFT_EINVAL (NULL, or m not locked: nothing done);
 * WEFT_ENOTASK. May park. */
WEFT_EXTERN int weft_cond_wait(weft_cond *c, weft_mutex *m);
/* Wake the oldest waiter / every waiter. 0; WEFT_EINVAL (NULL);
 * WEFT_ENOTASK (outside a task, with no runtime running, and a parked
 * waiter: nothing done). With
 * nobody waiting they do nothing, anywhere. */
WEFT_EXTERN int weft_cond_signal(weft_cond *c);
WEFT_EXTERN int weft_cond_broadcast(weft_cond *c);

/* Go's sync.WaitGroup. Adds that raise the counter from 0 must happen
 * before the wait they are for; a waitgroup may be reused once every wait
 * of the previous round has returned. */
typedef struct weft_waitgroup {
    uint64_t state; /* high 32 bits: counter; low 32 bits: waiters */
    uint32_t sema;
    uint32_t pad_;
} weft_waitgroup;
/* Adds delta (may be negative) to the counter; at 0 every waiter is
 * released. 0; WEFT_EINVAL (NULL; the counter would go below 0 or above
 * INT32_MAX; or an add from 0 races with the release of waiters): the
 * counter is unchanged; WEFT_ENOTASK (outside a task, with no runtime
 * running, when waiters would have to be released: unchanged).
 * weft_wg_done is weft_wg_add(wg, -1). */
WEFT_EXTERN int weft_wg_add(weft_waitgroup *wg, int64_t delta);
WEFT_EXTERN int weft_wg_done(weft_waitgroup *wg);
/* Parks until the counter is 0 (returns at once if it is). 0, WEFT_EINVAL,
 * WEFT_ENOTASK. May park. */
WEFT_EXTERN int weft_wg_wait(weft_waitgroup *wg);

/* Go's sync.Once: fn(arg) runs exactly once, in the first caller; the
 * others wait until it has returned, and every caller that returns sees its
 * effects. fn must return (weft_exit in fn leaves the once locked forever)
 * and must not call weft_once_do on the same once (it would wait for
 * itself). 0, WEFT_EINVAL (NULL o or fn), WEFT_ENOTASK. May park. */
typedef struct weft_once {
    uint32_t done;
    uint32_t pad_;
    weft_mutex m;
} weft_once;
WEFT_EXTERN int weft_once_do(weft_once *o, void (*fn)(void *), void *arg);

/* ---- Channels and select (Go's chan and select; docs/channels.md) ----
 *
 * A channel carries elements of a fixed size, copied in and out. Every
 * channel function works in tasks and, while a runtime runs, in host
 * threads (threads weft did not start): there an operation that must wait
 * blocks the OS thread until a task or another host completes it, with the
 * same semantics as between tasks. A host call made while no runtime runs
 * returns WEFT_ENOTASK; so does one blocked when weft_stop ends the
 * runtime (its operation not done, unless a task had completed it).
 * Argument errors (WEFT_EINVAL) are reported before that. A channel
 * belongs to the run that made it: the run's end gives its memory back. */
typedef struct weft_chan weft_chan;

/* A channel of elements of elem_size bytes (0 allowed) with a buffer of cap
 * elements (0 = unbuffered). NULL when elem_size > 65535, cap > 2^40, the
 * buffer would exceed 2^40 bytes, no memory is left, or no runtime is
 * running (call it between weft_run's start and return, from any thread). */
WEFT_EXTERN weft_chan *weft_chan_make(size_t elem_size, size_t cap);

/* Sends a copy of *elem (elem_size bytes; elem may be NULL when elem_size
 * is 0), blocking until a receiver takes it or the buffer has room.
 * 0; WEFT_ECLOSED (closed before or while blocked); WEFT_EINVAL (NULL elem
 * with elem_size > 0); WEFT_ENOTASK. A NULL channel blocks forever. */
WEFT_EXTERN int weft_chan_send(weft_chan *c, const void *elem);

/* Receives into *elem (elem may be NULL: the value is dropped), blocking
 * until a value is there or the channel is closed. 1 with a value; 0 when
 * the channel is closed and drained (elem is zeroed); WEFT_ENOTASK. Values
 * buffered before a close are still received. A NULL channel blocks
 * forever. */
WEFT_EXTERN int weft_chan_recv(weft_chan *c, void *elem);

/* As weft_chan_send / weft_chan_recv (so also WEFT_ECLOSED, WEFT_EINVAL,
 * WEFT_ENOTASK as those say), but WEFT_EAGAIN where they would block
 * (always for a NULL channel). */
WEFT_EXTERN int weft_chan_try_send(weft_chan *c, const void *elem);
WEFT_EXTERN int weft_chan_try_recv(weft_chan *c, void *elem);

/* Closes c and wakes every blocked task: receivers get 0, senders
 * WEFT_ECLOSED. 0; WEFT_ECLOSED (already closed); WEFT_EINVAL (NULL);
 * WEFT_ENOTASK. */
WEFT_EXTERN int weft_chan_close(weft_chan *c);

/* Elements in the buffer now / buffer capacity; 0 for NULL. Any thread. */
WEFT_EXTERN size_t weft_chan_len(weft_chan *c);
WEFT_EXTERN size_t weft_chan_cap(weft_chan *c);

/* Frees c; call it when no task will use it again. NULL: no-op. A task
 * blocked on c whose operation was completed (by a close, or by a partner
 * taking or giving a value) does not use c any more, even in a select: so
 * weft_chan_close(c) then weft_chan_free(c) is fine while tasks are blocked
 * on c (a select still on its way out keeps c's memory until it is done
 * with it). Not allowed: freeing c while a task may run or start an
 * operation on it that nothing completed, such as the other channels of a
 * select that has not returned (docs/channels.md). If tasks are still
 * blocked on c it prints a warning and does not free it. After weft_run
 * returned it does nothing (the memory is already gone). A channel
 * function or select given c after its free (or a pointer weft_chan_make
 * did not return) prints a message naming the call and the dump, and
 * aborts, as long as the memory is still weft's; once the allocator has
 * reused it for another channel, nothing can tell. */
WEFT_EXTERN void weft_chan_free(weft_chan *c);

#define WEFT_SEND 1     /* weft_case.op: send *elem on chan */
#define WEFT_RECV 2     /* weft_case.op: receive into elem (may be NULL) */
#define WEFT_NONBLOCK 1 /* weft_select flag: never block (Go's default:) */

typedef struct weft_case {
    weft_chan *chan; /* NULL: the case is never ready */
    int op;          /* WEFT_SEND or WEFT_RECV */
    void *elem;      /* the value to send, or where to receive */
    int ok;          /* set on the chosen case: recv 1 value / 0 closed;
                        send 0 or WEFT_ECLOSED */
} weft_case;

/* Go's select: blocks until one of the n cases can proceed, picks one
 * uniformly at random among those that can, performs it, sets its ok and
 * returns its index. A send on a closed channel can proceed (ok =
 * WEFT_ECLOSED), as can a receive on one (ok = 0, elem zeroed). The same
 * channel may appear in several cases, for sending and receiving.
 * flags: 0 or WEFT_NONBLOCK, which returns WEFT_EAGAIN instead of
 * blocking. n == 0, or only NULL channels, blocks forever (unless
 * WEFT_NONBLOCK). Errors: WEFT_EINVAL (n < 0 or > 65536, cases NULL with
 * n > 0, unknown flags or op, NULL elem in a send case with elem_size > 0);
 * WEFT_ENOTASK; WEFT_ENOMEM (n > 128 needs memory). */
WEFT_EXTERN int weft_select(weft_case *cases, int n, int flags);

/* ---- Timers (Go's time.Timer and time.Ticker) ----
 *
 * A timer sends the time it fired (int64_t, weft_now() nanoseconds) into
 * its channel of capacity 1, delay_ns from now, then every period_ns if
 * period_ns > 0 (a tick the reader has not taken yet makes the next one be
 * dropped, as with Go's Ticker; so is a tick due while the previous one is
 * still being sent, when the period is shorter than a send). A fire time
 * past INT64_MAX (weft_now()'s scale) is INT64_MAX: that fire never comes,
 * and the timer stays pending (weft_timer_stop returns 1). */
typedef struct weft_timer weft_timer;

/* A started timer; NULL for a negative period, without memory, or on a
 * host thread while no runtime runs. A delay <= 0 fires at once. */
WEFT_EXTERN weft_timer *weft_timer_new(int64_t delay_ns, int64_t period_ns);
/* Its channel (the same for the timer's life); NULL for NULL. */
WEFT_EXTERN weft_chan *weft_timer_chan(weft_timer *t);
/* Stops it: 1 if that stopped a pending fire, 0 if it had fired (once) or
 * was stopped already; a value already in the channel stays there.
 * WEFT_EINVAL for NULL. */
WEFT_EXTERN int weft_timer_stop(weft_timer *t);
/* Restarts it with a new delay and period: 1 if it was pending, 0 if not;
 * WEFT_EINVAL (NULL, negative period), WEFT_ENOTASK (a host thread while
 * no runtime runs). */
WEFT_EXTERN int weft_timer_reset(weft_timer *t, int64_t delay_ns, int64_t period_ns);
/* Stops and frees it (and its channel). NULL: no-op. A timer function
 * given t afterwards prints a message naming the call and the dump, and
 * aborts, while the memory is still weft's (as a freed channel does). */
WEFT_EXTERN void weft_timer_free(weft_timer *t);

/* ---- Network I/O through the poller ----
 *
 * Descriptors are the OS's (a POSIX fd, a Windows SOCKET); every socket
 * weft opens is non-blocking and registered with the poller. Tasks that
 * would block are parked, never their thread.
 *
 * network: "tcp" (IPv4 or IPv6 by the address), "tcp4", "tcp6", "udp",
 * "udp4", "udp6". address: "host:port" with host an IPv4 dotted quad, a
 * bracketed IPv6 literal ("[::1]:80"), "localhost", or empty (listen: every
 * address; dial: localhost); port 0..65535 (listen: 0 = any free port). No
 * DNS: other names are WEFT_EINVAL.
 *
 * Deadlines are absolute weft_now() times: 0 is none, a time already
 * past has expired (WEFT_ETIMEDOUT at once), a negative one is WEFT_EINVAL.
 *
 * Errors: WEFT_EINVAL (unknown network, malformed address, port out of
 * range, NULL, a negative deadline), WEFT_EBADF (not a descriptor weft
 * knows, or the wrong kind: accept on a connection), WEFT_ECLOSED (closed by
 * weft_close while the call was in progress, blocked or about to submit
 * again; a call made after the close gets WEFT_EBADF: the OS may already
 * have reused the number), WEFT_ETIMEDOUT (deadline or dial timeout), WEFT_ENOTASK,
 * WEFT_ENOMEM, WEFT_EIO (any other OS error: weft_errno() has its number,
 * e.g. ECONNREFUSED). */
typedef intptr_t weft_fd;

#define WEFT_READABLE 1
#define WEFT_WRITABLE 2

/* A listening TCP socket (backlog 4096, SO_REUSEADDR), or a bound UDP one. */
WEFT_EXTERN weft_fd weft_listen(const char *network, const char *address);
/* A connected socket; timeout_ns > 0 bounds the connect (WEFT_ETIMEDOUT),
 * 0 = none. TCP sockets get TCP_NODELAY. May park. */
WEFT_EXTERN weft_fd weft_dial(const char *network, const char *address, int64_t timeout_ns);
/* The next connection on a listener (TCP_NODELAY set). May park. */
WEFT_EXTERN weft_fd weft_accept(weft_fd listener);
/* Up to n bytes (a datagram on UDP); 0 at end of stream. May park. For
 * both: WEFT_EINVAL for a NULL buf with n > 0, or n > INT64_MAX. */
WEFT_EXTERN int64_t weft_read(weft_fd fd, void *buf, size_t n);
/* All n bytes, parking as needed (UDP: one datagram); returns n, or an
 * error (bytes already written are lost to the count). May park. */
WEFT_EXTERN int64_t weft_write(weft_fd fd, const void *buf, size_t n);
/* Absolute weft_now() deadlines for reads and writes, 0 = none; an expired
 * one makes blocked and later calls return WEFT_ETIMEDOUT until changed.
 * 0, WEFT_EBADF, WEFT_ENOTASK, or WEFT_EINVAL (a negative deadline; neither
 * is changed). */
WEFT_EXTERN int weft_set_deadline(weft_fd fd, int64_t read_deadline, int64_t write_deadline);
/* Closes fd: calls in progress on it return WEFT_ECLOSED (a blocked one at
 * once; one running on another thread when it next checks, before it
 * submits again), later calls WEFT_EBADF. Parks until every call in
 * progress on fd has returned, then closes the OS descriptor, so its
 * number is reused only after they are done with it. 0, WEFT_EBADF,
 * WEFT_ECLOSED (another task is closing it), WEFT_EIO, WEFT_ENOTASK. May
 * park. */
WEFT_EXTERN int weft_close(weft_fd fd);
/* The local address as "host:port" ("[::1]:80" for IPv6) in buf[n]. */
WEFT_EXTERN int weft_addr(weft_fd fd, char *buf, size_t n);
/* Parks until fd (any pollable descriptor, or a weft socket) is readable /
 * writable per events, or until deadline (absolute, 0 none, past: expired).
 * The deadline is this wait's own: a weft socket's deadlines
 * (weft_set_deadline) are left as they are and end the wait too, whichever
 * comes first. One task at a time may wait per descriptor and direction;
 * a descriptor weft does not own is registered with the poller while
 * tasks wait on it. 0, WEFT_ETIMEDOUT, WEFT_EBADF (not pollable, negative
 * or beyond the poller's table, or a weft socket being closed),
 * WEFT_ECLOSED (a weft socket closed meanwhile), WEFT_EINVAL (events
 * neither WEFT_READABLE nor WEFT_WRITABLE, a negative deadline, or another
 * task waits on that side), WEFT_ENOTSUP (Windows: a handle that is not a
 * weft socket, since its association with the completion port could not
 * be undone), WEFT_ENOMEM, WEFT_EIO, WEFT_ENOTASK. May park. */
WEFT_EXTERN int weft_wait_fd(weft_fd fd, int events, int64_t deadline);
/* (weft_errno, declared above with the blocking calls, gives the OS error
 * number behind a WEFT_EIO.) */

/* ---- Diagnostics ---- */

/* The struct has no typedef: its name is the function's (C keeps one namespace
 * for both), so it is spelled `struct weft_stats`. */
struct weft_stats {
    uint64_t tasks;         /* live tasks */
    uint64_t tasks_created; /* since weft_run started */
    uint64_t threads;       /* OS threads started */
    uint64_t procs;
    uint64_t idle_procs;
    uint64_t spinning_threads;
    uint64_t context_switches;
    uint64_t steals; /* successful steals */
    uint64_t preemptions;
    uint64_t syscall_retakes;
    /* Procs lent to stand in for procs whose thread was found stuck in the
     * OS in a call not bracketed by weft_block_begin/end (since the start),
     * and the ones lent now (docs/scheduler.md, "Blocking calls nobody
     * annotated"). */
    uint64_t auto_handoffs;
    uint64_t lent_procs;
    uint64_t poller_wakeups;       /* times a thread blocked in the poller was woken early */
    uint64_t timers;               /* pending timers (sleeps, timers, deadlines) */
    uint64_t stacks_guard_region;  /* stacks guarded by a guard region (no extra mapping) */
    uint64_t stacks_guard_protect; /* stacks guarded by a protected page (one mapping each) */
    uint64_t stacks_unguarded;     /* stacks that got no guard (mapping budget exhausted) */
    uint64_t mem_reserved;         /* bytes of address space held by the allocator and stacks */
};

/* Fills *s. 0, WEFT_EINVAL (NULL). Outside a run the counts are zero. */
WEFT_EXTERN int weft_stats(struct weft_stats *s);

/* Prints every task to stderr: id, state, what it waits on and since
 * when, a suspended task's frames and the function each was started with
 * (docs/API.md "Diagnostics"; scripts/symbolize names the frames). */
WEFT_EXTERN void weft_dump(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
