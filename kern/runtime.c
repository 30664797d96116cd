/* SPDX-License-Identifier: MIT */
/*
 * runtime.c — the runtime's lifecycle (weft_run, weft_start, weft_stop)
 * and the public task calls (Go: schedinit, main, newproc's front door).
 *
 * weft_run turns the calling thread into worker thread 0: it holds proc 0
 * and runs the scheduler loop on its own stack until the first task ends
 * (or a deadlock stops the run). Then it joins every other worker,
 * releases all memory and returns, so the host gets back exactly the
 * thread it lent and nothing is left behind; the next weft_run starts
 * from zero.
 *
 * weft_start is the same run without the first task and with worker 0 on
 * a thread of weft's own; the host keeps its thread and reaches the run
 * from any of its threads (kern/host.c). weft_stop ends it as weft_run's
 * end does. Both share set-up (setup) and teardown (teardown); the state
 * machine of the process's runtime is next to its word, state, below.
 * Go has no counterpart: its runtime starts with the process and never
 * ends.
 *
 * A run ends while tasks are in blocking calls
 * --------------------------------------------
 * A worker whose task is inside weft_block_begin/end when the run ends
 * cannot be joined: nobody knows when (or whether) its call returns, and
 * weft_run promises to return. So weft_run abandons it (Go never has to:
 * its main returning ends the process):
 *
 *  - The thread is detached; the OS frees it when it ends.
 *  - What it will touch when its call returns is kept out of the run's
 *    release: its struct thread, which is never the run's memory (a page
 *    of its own from k_thread_alloc, for every worker), and the stack
 *    reservation holding its task's stack (k_stack_keep: the thread runs
 *    on that stack until it leaves). Nothing else: its task struct, its
 *    proc and kern's arenas go with the run.
 *  - Back from its call, weft_block_end looks at thread.call before
 *    anything else, sees CALL_ORPHANED and switches to the thread's own
 *    stack, which leaves the scheduler loop without reading anything of
 *    the run (SW_ORPHAN); the thread lets the stack reservation go (the
 *    last of its keepers releases it), frees its struct thread and ends
 *    (k_orphan_exit). It never looks at k_sched, which by then may be
 *    another run's, and the code after weft_block_end never runs.
 *  - Which threads are in a call is decided per thread by one CAS on
 *    thread.call, against the thread's own CAS in weft_block_end (proc.h
 *    has the states). A thread that is not in a call is joined: it leaves
 *    its loop at its next scheduling decision, and stores CALL_EXITED
 *    when it has; weft_run waits on that word (with a 1 ms timeout, as a
 *    thread that enters a call meanwhile does not wake it), then joins.
 *
 * The limit: weft_run runs on worker 0, the host's thread, and a task's
 * blocking call runs on whichever thread runs the task. When the run ends
 * while weft_run's own thread is in a call, weft_run can only return
 * once that call does; it then returns at once, without running the task
 * any further. Only a call left unannotated (no weft_block_begin) keeps
 * any thread from being abandoned: it holds its proc, and weft_run joins
 * it.
 */
#include "kern/host.h"
#include "kern/poller.h"
#include "kern/proc.h"
#include "kern/sema.h"

/*
 * The runtime's lifecycle (Go keeps no such thing: its runtime starts with
 * the process and never ends). One word, state, for the process:
 *
 *                weft_run / weft_start: CAS
 *   RT_IDLE ---------------------------------> RT_STARTING
 *      ^                                        |       |
 *      | set-up failed: store                   |       | set-up done:
 *      +----------------------------------------+       | store
 *      |                                       weft_run | weft_start
 *      |                                   v                         v
 *      |                              RT_RUN_FG                 RT_RUN_BG
 *      |       weft_run: its first task |                            | weft_stop:
 *      |       returned, or deadlock:   |                            | CAS
 *      |       store                    v                            v
 *      +------------------------------ RT_STOPPING <-----------------+
 *              everything given back: store
 *
 * RT_IDLE      no run: k_sched is zero, the host gate closed; weft_run and
 *              weft_start may begin one (the CAS decides between racing
 *              starters, which get WEFT_EBUSY).
 * RT_STARTING  the starter sets k_sched up on its own thread: nobody else
 *              touches it (the gate is still closed, no worker exists).
 * RT_RUN_FG    weft_run's run: worker 0 is weft_run's calling thread. Only
 *              weft_run ends it (weft_stop refuses: WEFT_EBUSY).
 * RT_RUN_BG    weft_start's run: worker 0 is a thread of weft's own, and
 *              the calling thread went back to the host. Any host thread
 *              may end it with weft_stop (a task may not: WEFT_EDEADLK).
 * RT_STOPPING  the run's end (weft_run's, or the weft_stop that won the
 *              CAS): the host gate is closed and drained, the world
 *              stopped, every thread joined or abandoned, the memory given
 *              back, all on the ender's thread.
 *
 * The host gate (kern/host.h) is open exactly within RUN_FG and RUN_BG
 * (opened last in STARTING, closed first in STOPPING): that is what keeps
 * host threads from seeing a run that is being set up or torn down.
 * Every store and CAS of state is seq_cst: each new run's CAS reads the
 * previous run's final store of RT_IDLE, so its set-up follows everything
 * the previous run did (release/acquire would do; seq_cst costs nothing
 * here).
 */
enum rt_state {
    RT_IDLE = 0,
    RT_STARTING = 1,
    RT_RUN_FG = 2,
    RT_RUN_BG = 3,
    RT_STOPPING = 4,
};
static _Atomic int state;

/* Abandons th, whose task is in a blocking call (weft_run's end, after the
 * CAS of th->call to ORPHANING): keeps its task's stack, then lets it go
 * (ORPHANED). See the top of this file. */
static void orphan(struct thread *th, hal_thread_t handle)
{
    /* th->cur and its stack are as weft_block_begin left them: the CAS's
     * acquire pairs with its release store of CALL_IN. */
    struct task *t = th->cur;
    th->orphan_region = k_stack_keep(&t->stack);
    k_orphan_begin(); /* before the release store below: see there */
    /* Release: pairs with the acquire load in block_orphaned (block.c). No
     * futex wake: th may be gone the moment it sees this; it polls. */
    atomic_store_explicit(&th->call, CALL_ORPHANED, memory_order_release);
    hal_thread_detach(handle);
}

/* Waits for every worker but thread 0 (which runs this) to leave its loop
 * and joins it, or abandons it in its blocking call. Frees the struct of
 * each one joined. */
static void end_threads(struct thread *threads)
{
    struct thread *next;
    for (struct thread *th = threads; th; th = next) {
        /* Read before th may be abandoned: it may then free itself. */
        next = th->all_next;
        hal_thread_t handle = th->handle;
        for (;;) {
            /* Acquire: pairs with thread_main's release store of EXITED. */
            uint32_t c = atomic_load_explicit(&th->call, memory_order_acquire);
            if (c == CALL_EXITED) {
                hal_thread_join(handle);
                k_thread_free(th);
                break;
            }
            if (c == CALL_IN) {
                /* Acquire: pairs with weft_block_begin's release store of
                 * IN (orphan reads th->cur and its stack). Against the
                 * thread's CAS in weft_block_end: exactly one wins. Failure
                 * relaxed: we only loop and load c again (acquire). */
                if (atomic_compare_exchange_strong_explicit(&th->call, &c, CALL_ORPHANING,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)) {
                    orphan(th, handle);
                    break;
                }
                continue;
            }
            /* Running a task or its scheduler on its way out. */
            hal_futex_wait((uint32_t *)&th->call, CALL_OUT, 1000000);
        }
    }
}

#define MIN_STACK (16u * 1024)
#define MAX_STACK (1024u * 1024 * 1024)
#define DEFAULT_STACK (256u * 1024)
#define DEFAULT_TIMESLICE_NS 10000000

/* Rounds a requested stack size to whole pages within the limits; 0 when
 * the request is out of range. */
static size_t stack_round(size_t size)
{
    if (size > MAX_STACK)
        return 0;
    if (size < MIN_STACK)
        size = MIN_STACK;
    return K_ROUND_UP(size, hal_page_size());
}

/* An integer environment override in [lo, hi]; 0 when unset, 1 when set
 * (stored in *out), -1 when malformed (reported). */
static int env_int(const char *name, int64_t lo, int64_t hi, int64_t *out)
{
    const char *s = hal_getenv(name);
    if (!s || !*s)
        return 0;
    int64_t v;
    if (k_parse_int(s, &v) != 0 || v < lo || v > hi) {
        k_print("weft: %s=%s: expected a number from %lld to %lld\n", name, s, (long long)lo,
                (long long)hi);
        return -1;
    }
    *out = v;
    return 1;
}

/* Fills the run's settings from cfg and the environment. 0 or WEFT_EINVAL. */
static int configure(const weft_config *cfg)
{
    weft_config c = {0};
    if (cfg)
        c = *cfg;
    int64_t v;
    int r;

    if (c.procs < 0 || c.procs > K_MAX_PROCS)
        return WEFT_EINVAL;
    if (c.procs == 0) {
        if ((r = env_int("WEFT_PROCS", 1, K_MAX_PROCS, &v)) < 0)
            return WEFT_EINVAL;
        c.procs = r ? (int)v : hal_cpu_count();
    }
    if (c.procs > K_MAX_PROCS)
        c.procs = K_MAX_PROCS;

    if (c.stack_size == 0) {
        if ((r = env_int("WEFT_STACK", MIN_STACK, MAX_STACK, &v)) < 0)
            return WEFT_EINVAL;
        c.stack_size = r ? (size_t)v : DEFAULT_STACK;
    }
    size_t stack = stack_round(c.stack_size);
    if (!stack)
        return WEFT_EINVAL;

    if (c.preempt != 0 && c.preempt != 1 && c.preempt != -1)
        return WEFT_EINVAL;
    if (c.preempt == 0) {
        if ((r = env_int("WEFT_PREEMPT", 0, 1, &v)) < 0)
            return WEFT_EINVAL;
        c.preempt = (r && v == 0) ? -1 : 1;
    }

    if (c.timeslice_ns < 0)
        return WEFT_EINVAL;
    if (c.timeslice_ns == 0)
        c.timeslice_ns = DEFAULT_TIMESLICE_NS;

    /* WEFT_SCHEDTRACE=ms or ms,detail: the monitor's trace lines. */
    k_sched.trace_ns = 0;
    k_sched.trace_detail = false;
    const char *st = hal_getenv("WEFT_SCHEDTRACE");
    if (st && *st) {
        char num[24];
        size_t i = 0;
        while (st[i] && st[i] != ',' && i < sizeof num - 1) {
            num[i] = st[i];
            i++;
        }
        num[i] = 0;
        bool detail = st[i] == ',' && k_strcmp(st + i + 1, "detail") == 0;
        if (k_parse_int(num, &v) != 0 || v < 1 || v > 3600000 || (st[i] && !detail)) {
            k_print("weft: WEFT_SCHEDTRACE=%s: expected a period in ms from 1 to 3600000, "
                    "optionally followed by \",detail\"\n",
                    st);
            return WEFT_EINVAL;
        }
        k_sched.trace_ns = v * 1000000;
        k_sched.trace_detail = detail;
    }

    /* The port's own variables for guards (hal_mem_env_check prints). */
    if (hal_mem_env_check() != 0)
        return WEFT_EINVAL;

    /* Lending procs for threads stuck in calls nobody annotated
     * (monitor.c), on unless WEFT_AUTOBLOCK=0. */
    if ((r = env_int("WEFT_AUTOBLOCK", 0, 1, &v)) < 0)
        return WEFT_EINVAL;
    k_sched.autoblock = !r || v == 1;

    k_sched.nprocs = c.procs;
    k_sched.stack_size = stack;
    k_sched.preempt = c.preempt;
    k_sched.timeslice_ns = c.timeslice_ns;
    return 0;
}

static int make_procs(struct thread *th0)
{
    /* Room for the spares (made when first lent: monitor.c "Lending"),
     * within K_MAX_PROCS in all. */
    k_sched.nspares = K_MIN(K_MAX(k_sched.nprocs, K_SPARE_MIN), K_MAX_PROCS - k_sched.nprocs);
    k_sched.procs = k_zalloc(sizeof(struct proc *) * (size_t)(k_sched.nprocs + k_sched.nspares));
    if (!k_sched.procs)
        return WEFT_ENOMEM;
    for (int i = 0; i < k_sched.nprocs; i++) {
        struct proc *p = k_zalloc(sizeof *p);
        if (!p)
            return WEFT_ENOMEM;
        p->id = i;
        p->clock_ns = hal_now_ns(); /* k_park dates waits by it */
        k_sched.procs[i] = p;
    }
    /* Proc 0 goes to thread 0; the others are idle. The stores of status,
     * nidle_procs and p0->thread (seq_cst by default, more than needed):
     * no other thread of the run exists yet; hal_thread_start publishes
     * them to the monitor and the workers. */
    k_lock(&k_sched.lock);
    for (int i = k_sched.nprocs - 1; i >= 1; i--) {
        struct proc *p = k_sched.procs[i];
        atomic_store(&p->status, PROC_IDLE);
        p->idle_next = k_sched.idle_procs;
        k_sched.idle_procs = p;
    }
    atomic_store(&k_sched.nidle_procs, k_sched.nprocs - 1);
    atomic_store(&k_sched.nactive, k_sched.nprocs);
    atomic_store(&k_sched.nall, k_sched.nprocs);
    k_unlock(&k_sched.lock);
    struct proc *p0 = k_sched.procs[0];
    atomic_store(&p0->status, PROC_RUNNING);
    p0->thread = th0;
    p0->clock_ns = hal_now_ns();
    th0->proc = p0;
    return 0;
}

/* The first half of a run, on the starter's thread (RT_STARTING): the
 * settings, the allocator, stacks, semaphores and the poller. 0, or an
 * error with everything undone and state back to RT_IDLE. */
static int setup(const weft_config *cfg, bool background)
{
    memset(&k_sched, 0, sizeof k_sched);
    int err = configure(cfg);
    if (err) {
        memset(&k_sched, 0, sizeof k_sched);
        atomic_store(&state, RT_IDLE);
        return err;
    }
    k_sched.background = background;
    if (k_mem_init(k_mcache_self) != 0) {
        memset(&k_sched, 0, sizeof k_sched);
        atomic_store(&state, RT_IDLE);
        return WEFT_ENOMEM;
    }
    /* Preemption's signal frames get room of their own on every stack
     * (kern/stack.c); with preemption off nothing is pushed there. */
    k_stack_init(k_sched.stack_size, k_sched.preempt > 0 ? hal_preempt_headroom() : 0);
    k_sema_init();
    int prc = k_poller_init();
    if (prc != 0) {
        k_stack_fini();
        k_mem_fini();
        memset(&k_sched, 0, sizeof k_sched);
        atomic_store(&state, RT_IDLE);
        return prc;
    }
    /* From here until its memory goes, a panic dumps the run's tasks. */
    k_panic_set_dump(k_dump_tasks);
    /* No other thread of the run exists yet (default seq_cst, harmless). */
    atomic_store(&k_sched.last_poll, hal_now_ns());
    atomic_store(&k_sched.next_id, 1);
    return 0;
}

/* The second half of a run, on the ender's thread (RT_STOPPING): err is
 * the run's result so far. Closes the host gate, stops the world (if the
 * run has not stopped itself), stops the monitor, joins every thread on
 * sched.all_threads or abandons it in its blocking call (see the top),
 * and gives everything back; state ends RT_IDLE. Returns err, or the
 * result the run stopped with (a deadlock's). */
static int teardown(int err, bool monitor)
{
    /* Hosts first: from here on none touches the run, and the ones parked
     * in a channel operation return WEFT_ENOTASK (kern/host.c). Tasks may
     * still run meanwhile (weft_stop) or be stopped already (weft_run). */
    k_host_close();
    /* The monitor next: it may still be signalling workers, which must
     * not be joined (gone) while it does. Then every other thread, which
     * leaves its loop once it sees stopping, or is abandoned in its
     * blocking call (see the top). (With err set before any worker was
     * started, only the monitor may exist.) */
    if (monitor) {
        /* stopping: seq_cst default; stop_locked re-checks it under
         * sched.lock, so any order would do. */
        if (!atomic_load(&k_sched.stopping))
            k_stop_the_world(err);
        k_monitor_stop();
    }
    /* result: stored before stopping's seq_cst store, which the load above
     * (or k_sched_loop's acquire load, for weft_run) saw. The first result
     * wins: a deadlock's, or err. */
    if (atomic_load(&k_sched.stopping))
        err = atomic_load(&k_sched.result);
    k_lock(&k_sched.lock);
    struct thread *threads = k_sched.all_threads;
    k_unlock(&k_sched.lock);
    end_threads(threads);

    k_poller_fini();
    if (k_sched.procs)
        for (int i = 0; i < k_sched.nprocs + k_sched.nspares; i++)
            if (k_sched.procs[i])
                k_timers_fini(k_sched.procs[i]);
    k_panic_set_dump(NULL); /* the tasks' memory goes now */
    k_stack_fini();
    k_mem_fini();
    memset(&k_sched, 0, sizeof k_sched);
    /* seq_cst (release is what matters): pairs with the CAS of the next
     * weft_run or weft_start, which may reuse k_sched. */
    atomic_store(&state, RT_IDLE);
    return err;
}

int weft_run(void (*fn)(void *), void *arg, const weft_config *cfg)
{
    if (!fn)
        return WEFT_EINVAL;
    if (hal_thread_get() != NULL)
        return WEFT_EBUSY; /* called from inside a run */
    int expect = RT_IDLE;
    if (!atomic_compare_exchange_strong(&state, &expect, RT_STARTING))
        return WEFT_EBUSY;
    int err = setup(cfg, false);
    if (err)
        return err;

    /* Worker 0 is this thread: it holds proc 0 and runs the first task. */
    struct thread th0_storage;
    struct thread *th0 = &th0_storage;
    memset(th0, 0, sizeof *th0);
    th0->rand = (uint64_t)hal_now_ns() * 0x9e3779b97f4a7c15ull;
    k_sched.nthreads = 1; /* thread 0 counts but is not on all_threads */

    hal_thread_enter();
    hal_thread_set(th0);
    th0->os = hal_thread_self();
    k_preempt_setup();
    err = make_procs(th0);
    bool monitor = false;
    if (!err) {
        err = k_monitor_start();
        monitor = err == 0;
    }
    struct task *main_task = NULL;
    if (!err) {
        main_task = k_task_new(th0->proc, 0);
        if (!main_task)
            err = WEFT_ENOMEM;
    }
    if (!err) {
        main_task->fn = fn;
        main_task->arg = arg;
        k_sched.main_task = main_task;
        k_runq_put(th0->proc, main_task, false);
        atomic_store(&state, RT_RUN_FG);
        k_host_open();
        k_sched_loop(th0);
        atomic_store(&state, RT_STOPPING);
        /* result: k_sched_loop's acquire load of stopping on its way out
         * saw the store that published it (teardown reads it). */
    } else {
        atomic_store(&state, RT_STOPPING);
    }
    err = teardown(err, monitor);
    hal_thread_set(NULL);
    hal_thread_leave();
    return err;
}

/*
 * weft_start: the run of weft_run without its first task, on threads of
 * weft's own. Which thread plays worker 0's part, the one that holds proc
 * 0 when the run begins? Not the caller: it goes back to the host at once.
 * A worker of weft's own, started here like any other (k_thread_alloc, on
 * sched.all_threads): it looks for work, finds none and parks, so it costs
 * nothing until the host spawns a task, and weft_stop joins it (or
 * abandons it in a blocking call) like every worker. Starting it here,
 * rather than leaving every proc idle until the first spawn, makes a
 * failure to start threads weft_start's error (WEFT_ENOMEM) instead of a
 * warning on the first spawn, and keeps the run's shape weft_run's: one
 * thread holding proc 0, the others idle.
 */
int weft_start(const weft_config *cfg)
{
    int expect = RT_IDLE;
    if (hal_thread_get() != NULL || !atomic_compare_exchange_strong(&state, &expect, RT_STARTING))
        return WEFT_EBUSY;
    int err = setup(cfg, true);
    if (err)
        return err;
    k_preempt_setup();
    struct thread *th0 = k_thread_alloc(); /* not the run's memory: k_thread_alloc */
    if (!th0)
        err = WEFT_ENOMEM;
    if (!err)
        err = make_procs(th0);
    if (!err) {
        /* Give proc 0 to th0 the way startm hands a proc to a new thread:
         * thread_main takes next_proc (and stores p->thread) itself. */
        struct proc *p0 = k_sched.procs[0];
        /* Relaxed: no other thread of the run exists yet (the monitor
         * starts below); thread_main's release store of p->thread, once
         * th0 runs, pairs with the monitor's acquire load. */
        atomic_store_explicit(&p0->thread, NULL, memory_order_relaxed);
        th0->proc = NULL;
        th0->next_proc = p0;
        th0->rand = (uint64_t)hal_now_ns() * 0x9e3779b97f4a7c15ull;
    }
    bool monitor = false;
    if (!err) {
        err = k_monitor_start();
        monitor = err == 0;
    }
    if (!err) {
        k_sched.nthreads = 0; /* th0 is counted as it joins all_threads */
        err = k_thread_start(th0);
        if (err == 0)
            th0 = NULL; /* on all_threads: teardown joins it */
    }
    if (th0)
        k_thread_free(th0);
    if (err) {
        atomic_store(&state, RT_STOPPING);
        return teardown(err, monitor);
    }
    atomic_store(&state, RT_RUN_BG);
    k_host_open();
    return 0;
}

int weft_stop(void)
{
    /* From a task (or any thread of a run): weft_stop joins every worker,
     * the caller's own among them: it would wait for itself (as
     * pthread_join does for the calling thread, EDEADLK). */
    if (hal_thread_get() != NULL)
        return WEFT_EDEADLK;
    int expect = RT_RUN_BG;
    if (!atomic_compare_exchange_strong(&state, &expect, RT_STOPPING))
        return expect == RT_RUN_FG ? WEFT_EBUSY : WEFT_EINVAL;
    /* A run in the background ends only here: nothing stopped it before. */
    return teardown(0, true);
}

/* A spawn from a host thread: through the gate (kern/host.h). */
static int go_host(void (*fn)(void *), void *arg, size_t size)
{
    if (!k_host_enter())
        return WEFT_ENOTASK;
    int rc = k_spawn_host(fn, arg, size);
    k_host_leave();
    return rc;
}

int weft_go(void (*fn)(void *), void *arg)
{
    if (!fn)
        return WEFT_EINVAL;
    if (!k_task_self())
        return go_host(fn, arg, 0);
    k_preempt_point();
    return k_spawn(fn, arg, 0);
}

int weft_go_stack(void (*fn)(void *), void *arg, size_t stack_size)
{
    if (!fn)
        return WEFT_EINVAL;
    size_t size = 0;
    if (stack_size) {
        size = stack_round(stack_size);
        if (!size)
            return WEFT_EINVAL;
    }
    if (!k_task_self())
        return go_host(fn, arg, size);
    return k_spawn(fn, arg, size);
}

void weft_yield(void)
{
    k_yield();
}

_Noreturn void weft_exit(void)
{
    if (!k_task_self()) {
        k_print("weft: weft_exit called outside a task\n");
        hal_abort();
    }
    k_task_exit();
}

uint64_t weft_id(void)
{
    struct task *t = k_task_here();
    return t ? t->id : 0;
}

int weft_procs(void)
{
    if (k_task_here())
        return k_sched.nprocs; /* a task's thread saw nprocs set */
    if (!k_host_enter())
        return 0;
    int n = k_sched.nprocs;
    k_host_leave();
    return n;
}

int64_t weft_now(void)
{
    return hal_now_ns();
}

static void stats_fill(struct weft_stats *s);

int weft_stats(struct weft_stats *s)
{
    if (!s)
        return WEFT_EINVAL;
    memset(s, 0, sizeof *s);
    /* Outside a task, through the host gate: the run cannot end under us. */
    bool host = k_task_here() == NULL;
    if (host && !k_host_enter())
        return 0;
    if (k_sched.procs)
        stats_fill(s);
    if (host)
        k_host_leave();
    return 0;
}

/* weft_stats' snapshot of a running run. */
static void stats_fill(struct weft_stats *s)
{
    /* Every counter relaxed (the seq_cst defaults too: more than needed):
     * a snapshot of independent statistics, none of which publishes
     * anything; the values need not be consistent with each other. */
    s->tasks = atomic_load_explicit(&k_sched.ntasks_live, memory_order_relaxed);
    s->tasks_created = atomic_load_explicit(&k_sched.next_id, memory_order_relaxed) - 1;
    k_lock(&k_sched.lock); /* nthreads: written by startm under it */
    s->threads = (uint64_t)k_sched.nthreads;
    k_unlock(&k_sched.lock);
    s->procs = (uint64_t)k_sched.nprocs;
    s->idle_procs = (uint64_t)atomic_load(&k_sched.nidle_procs);
    s->spinning_threads = (uint64_t)atomic_load(&k_sched.nspinning);
    int n = k_procs_all(); /* and the spares' counts */
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        s->context_switches += atomic_load_explicit(&p->nswitch, memory_order_relaxed);
        s->steals += atomic_load_explicit(&p->nsteal, memory_order_relaxed);
        s->preemptions += atomic_load_explicit(&p->npreempt, memory_order_relaxed);
    }
    s->timers = k_timers_count();
    s->poller_wakeups = k_poll_wakeups();
    s->syscall_retakes = atomic_load_explicit(&k_sched.nretake, memory_order_relaxed);
    s->auto_handoffs = atomic_load_explicit(&k_sched.nlend, memory_order_relaxed);
    s->lent_procs =
        (uint64_t)(atomic_load_explicit(&k_sched.nactive, memory_order_relaxed) - k_sched.nprocs);
    k_stack_counts(&s->stacks_guard_region, &s->stacks_guard_protect, &s->stacks_unguarded);
    s->mem_reserved = k_mem_reserved();
}
