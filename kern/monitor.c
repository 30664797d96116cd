/* SPDX-License-Identifier: MIT */
/*
 * monitor.c — the monitor thread (Go: sysmon, retake, preemptone in
 * proc.go): preempts tasks that overrun their time slice and retakes procs
 * from threads stuck in blocking calls.
 *
 * One OS thread per run, started by weft_run and joined at its end. It
 * holds no proc and runs no task, so it keeps working while every worker
 * is busy or blocked. Each round it looks at every proc:
 *
 *  - RUNNING: the proc's schedtick (bumped per task run) is compared with
 *    the one seen last round (Go: sysmontick). While it has not moved for
 *    a time slice (k_sched.timeslice_ns), the same task has run all that
 *    time: the monitor asks its thread to switch it out (thread->
 *    preempt_req) and interrupts the thread (hal_thread_preempt), at most
 *    once per PREEMPT_RESEND_NS while it keeps overrunning: a signal costs
 *    the worker microseconds, and a request that found an unsafe point
 *    (libc, a kern lock) stays pending until the next scheduler call.
 *  - SYSCALL: its thread is in a blocking call (block.c). If it is the
 *    same call as last round (the same status word: it carries the call's
 *    number, proc.h) and it has lasted RETAKE_NS, the monitor takes the
 *    proc (CAS of that word to IDLE: the thread's own CAS back to RUNNING
 *    then fails, and a CAS of an older call's word fails on a newer call)
 *    and hands it to another thread (k_handoff). When the proc has
 *    nothing queued and other threads spin or procs idle, nobody misses
 *    it: it waits LONG_RETAKE_NS (Go's rule: retaking costs a thread
 *    wake-up and the caller a slow exit).
 *
 *  - RUNNING, the same task for a round or more, and its thread off the
 *    CPU: stuck in the OS in a call nobody annotated. The monitor lends a
 *    spare proc to stand in for it ("Lending" below) and sends no
 *    preemption signal.
 *
 * Sleeping (Go's): 20 µs between rounds; after 50 rounds that did nothing,
 * the sleep doubles each round up to 10 ms. Departures: while some proc
 * runs a task the sleep is capped at an eighth of the time slice, so an
 * overrun is acted on within about 1.25 slices (Go's sysmon can take 10 ms more,
 * which is where its 20 ms preemption latency comes from); a blocking call
 * that begins while the monitor sleeps long kicks it back to 20 µs
 * (k_monitor_kick), so a hand-off never waits for a 10 ms nap. When every
 * proc is idle the monitor parks on a futex word until a proc leaves the
 * idle list (k_monitor_work from sched.c) or the run stops; with a timer
 * pending, only until a grace (an eighth of the slice, the busy nap) after
 * the earliest one. An idle process with no timer uses no CPU.
 *
 * Waking the monitor is a futex wake (microseconds for the waker, and the
 * woken thread competes for the waker's CPU), and the thread that takes a
 * proc off an all-idle list is often on its way from a timer to the task
 * it readied, whose sleep that wake makes late (docs/benchmarks.md,
 * "Figures behind the code"). So the monitor publishes when it
 * will look again by itself (mon.until, before every nap and park), and
 * k_monitor_work wakes it only if that is more than the grace away: a
 * task that starts then waits at most a grace longer for the monitor's
 * first look, as it does anyway while the monitor naps for busy procs. Go's
 * sysmon, too, sleeps until the next timer when every P is idle, and is
 * woken early by syscall exits only.
 *
 * It also keeps timers and the poller from being stranded:
 * run_stranded_timers and poll_network.
 */
#include "kern/poller.h"
#include "kern/proc.h"
#include "kern/timer.h"

#define MIN_SLEEP_NS 20000        /* Go: 20 µs */
#define MAX_SLEEP_NS 10000000     /* Go: 10 ms */
#define IDLE_ROUNDS 50            /* rounds before the sleep doubles */
#define RETAKE_NS 20000           /* a blocking call older than this loses its proc */
#define LONG_RETAKE_NS 10000000   /* ... unless nobody needs the proc (Go: 10 ms) */
#define PREEMPT_RESEND_NS 1000000 /* interrupt an overrunning thread at most this often */
#define KICK_ABOVE_NS 1000000     /* k_monitor_kick wakes a monitor sleeping longer */
#define IN_FLIGHT_NS 10000000     /* an interrupt not seen after this is taken as lost */

/* Why the monitor was woken (mon.wake). A kick restarts the short naps; a
 * proc leaving the idle list or the run stopping only ends a park or a nap:
 * the naps keep their length, because every proc going idle and one coming
 * back is the ordinary rhythm of a server waiting on its network (many
 * times a millisecond), not news that needs 20 µs naps. */
enum { WAKE_NONE = 0, WAKE_LOOK = 1, WAKE_KICK = 2 };

/* What a CPU reading says of the thread running a proc's task (cpu_look). */
enum cpu_verdict {
    CPU_NA,      /* the port cannot read a thread's CPU time */
    CPU_UNKNOWN, /* no reading to compare with yet, or mixed answers */
    CPU_ON,      /* on the CPU at least half of the time, and not blocked now */
    CPU_OFF,     /* off it more than half of the time, and blocked now (or
                    the port does not say) */
};

/* What the monitor saw of one proc last round (Go: sysmontick). Owned by
 * the monitor thread. */
struct montick {
    uint32_t schedtick;
    int64_t sched_when;
    uint64_t syscall_word; /* the SYSCALL status word (one blocking call) */
    int64_t syscall_when;
    int64_t signalled; /* when it last interrupted this proc's thread */
    int64_t sent_when; /* when that interrupt was sent (0: none since the tick moved) */
    /* The CPU time of the proc's thread (hal_thread_cpu) at cpu_when
     * (0: none yet since the task started), taken each round while the
     * same task runs (without lending: from three quarters of a slice on),
     * and whose it was. */
    int64_t cpu_seen, cpu_when;
    struct thread *cpu_thread;
    enum cpu_verdict cpu_v; /* what the last reading told (cpu_look) */
    bool cpu_fresh;         /* whether this round's cpu_look took it */
    int64_t cpu_prev;       /* the reading before (the window's start) */
    struct proc *lent;      /* the spare standing in for this proc, or NULL */
};

static struct {
    hal_thread_t handle;
    struct montick *ticks; /* one per proc */
    /* The futex word the monitor sleeps on: anyone who wants it awake
     * stores a WAKE_* reason and wakes it (k_monitor_wake, k_monitor_work,
     * k_monitor_kick). The monitor exchanges it with 0 after each nap. */
    _Atomic uint32_t wake;
    _Atomic int parked;       /* 1 while parked (every proc idle) */
    _Atomic int64_t sleep_ns; /* its current sleep, for k_monitor_kick */
    /* When it looks again by itself (hal_now_ns), 0 when unknown (awake,
     * or parked with no timer). Stored before every nap and park, seq_cst:
     * pairs with the nidle_procs store in proc_idle_get (k_monitor_work). */
    _Atomic int64_t until;
    /* Whether the port reads threads' CPU time (until a reading says it
     * cannot: hal_thread_cpu -1), so that stuck threads are seen and
     * covered ("Lending" below); and whether the limit was reported. */
    bool lending;
    bool exhausted;
    /* WEFT_SCHEDTRACE (sched_trace): when the next line is due, when the
     * run began, and the counters the last line showed. */
    int64_t trace_next, trace_start;
    uint64_t trace_last[6];
    /* When the last round began (relaxed: for the dump, k_monitor_print). */
    _Atomic int64_t round_ns;
} mon;

/* The shortest time between two CPU readings that tells anything: a task
 * between two calls is on the CPU for microseconds, which is most of a
 * window shorter than this. */
static int64_t window_ns(void)
{
    return K_MAX(k_sched.timeslice_ns / 8, MIN_SLEEP_NS * 5);
}

/* How much later than at once the monitor may first look at a proc that
 * leaves the idle list: its nap while a task runs. */
static int64_t grace_ns(void)
{
    return K_MAX(k_sched.timeslice_ns / 8, MIN_SLEEP_NS);
}

/* Timers that are due while no thread looks at them (their procs are
 * idle, or busy with a task that has not reached the scheduler): wake a
 * thread, which runs due timers of every proc as it searches for work
 * (Go: sysmon's startm when the next timer is due). Threads blocked in
 * the poller wake by themselves at the earliest timer. Returns 1 if it
 * woke one. */
static int run_stranded_timers(int64_t now)
{
    int64_t when = k_timers_earliest();
    /* nidle_procs relaxed: a hint. A stale 0 leaves the timer to the next
     * round; a stale non-zero costs a k_wakep that finds no proc. */
    if (when == 0 || when > now ||
        atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) == 0)
        return 0;
    k_wakep();
    return 1;
}

/* When nobody has polled the network for 10 ms, poll it without blocking
 * and queue the tasks it readied (Go: sysmon's netpoll and injectglist).
 * The CAS on last_poll makes this one poll of the 10 ms window, and keeps
 * the monitor off the poller while a thread blocks in it (last_poll 0).
 * Returns how many tasks it readied. */
static int poll_network(int64_t now)
{
    /* Relaxed: a hint; the CAS below decides. seq_cst on the CAS, like
     * every write of last_poll: it is in the total order with the poller's
     * swap to 0 and the timer0/last_poll Dekker pair (sched.c poll_or_stop,
     * timer.c); a failed CAS publishes nothing (relaxed). */
    int64_t last = atomic_load_explicit(&k_sched.last_poll, memory_order_relaxed);
    if (last == 0 || now - last < MAX_SLEEP_NS || k_poll_waiters() == 0)
        return 0;
    if (!atomic_compare_exchange_strong_explicit(&k_sched.last_poll, &last, now,
                                                 memory_order_seq_cst, memory_order_relaxed))
        return 0;
    int n = 0;
    struct task *list = k_poll(0, &n);
    if (list)
        k_sched_inject(list);
    return n;
}

/*
 * Whether the thread running p's task was mostly off the CPU, and not
 * waiting for one, since the last reading (m): then it sits in the OS, in
 * a call nobody annotated with weft_block_begin (a sleep, a poll, a read
 * of a pipe). An interrupt now would only make that call fail with EINTR
 * (a sleep or a poll fail so even with SA_RESTART), so the monitor sends
 * none (preempt_one), and asks again at its next look: a thread back in
 * its task's code uses its CPU again; and the proc's other tasks get a
 * spare proc (lend). "Mostly": less than half of the time since the last
 * reading. A port that does not count the time a thread waits for a CPU
 * (the wait 0) takes a thread that the machine does not run for one in
 * the OS, too. A new reading is taken once a window has passed; with none
 * to compare with (the thread changed, or none was taken since the task
 * started), the answer is UNKNOWN: the interrupt waits one round for a
 * reading that can tell (sent blind, it hit a nanosleep in block_no_eintr
 * under qemu: docs/scheduler.md). Ports that cannot read a thread's CPU
 * time (-1) get CPU_NA: the interrupt as before, no loans.
 */
static enum cpu_verdict cpu_look(struct thread *th, struct montick *m)
{
    /* Two readings close together tell nothing: a task between two calls
     * is on the CPU for microseconds, which is most of a window that
     * short. Keep the older reading, and answer with what it told (the
     * monitor naps 20 us while it acts, far less than a window; the CPU
     * clock is a system call, so it is not read then). (A poll got EINTR
     * natively once, in a CI run, and was not reproduced; this and the
     * clock below are the two ways to it found by reading.) */
    m->cpu_fresh = false;
    if (m->cpu_thread == th && m->cpu_when != 0 && hal_now_ns() - m->cpu_when < window_ns())
        return m->cpu_v;
    int64_t cpu;
    int blocked;
    if (hal_thread_cpu(th->os, &cpu, &blocked) != 0)
        return CPU_NA;
    /* The wall clock next to the CPU clock, not the round's: a monitor
     * descheduled between the two would measure the CPU over more time
     * than the wall and take a thread in the OS for a running one. */
    int64_t now = hal_now_ns();
    enum cpu_verdict v = CPU_UNKNOWN;
    if (m->cpu_thread == th && m->cpu_when != 0 && now > m->cpu_when) {
        bool busy = (cpu - m->cpu_seen) * 2 >= now - m->cpu_when;
        /* Mixed answers (on the CPU but in a call now: it computes between
         * short calls; off it but runnable now: just woken, or the machine
         * does not run it) tell neither: UNKNOWN. */
        if (busy && blocked != 1)
            v = CPU_ON;
        else if (!busy && blocked != 0)
            v = CPU_OFF;
    }
    m->cpu_prev = m->cpu_thread == th ? m->cpu_when : 0;
    m->cpu_thread = th;
    m->cpu_seen = cpu;
    m->cpu_when = now;
    m->cpu_v = v;
    m->cpu_fresh = true;
    return v;
}

/* Asks th, the thread running on p, to switch out its task (Go:
 * preemptone), unless it is in the OS: v, this round's cpu_look of it
 * (CPU_NA when none was taken). An interrupt goes only on a reading taken
 * this round: the verdict of an older one may be a window old, and the
 * thread may have entered a call since (a sleep got EINTR so under qemu).
 * Returns false when it waits for such a reading (the next round), true
 * when it acted or decided. */
static bool preempt_one(struct proc *p, struct thread *th, struct montick *m, int64_t now,
                        enum cpu_verdict v)
{
    /* The last interrupt has not reached its thread yet (kern_preempt_ok
     * did not see it): a second one would land after it, when the first
     * may have switched the task out, on the next task, maybe in a call
     * it makes (EINTR). Under qemu-user an interrupt takes milliseconds to
     * arrive, longer than the resend period. One not seen in IN_FLIGHT_NS
     * counts as lost (a port may drop one: hal.h). Relaxed: hints. */
    uint32_t sent = atomic_load_explicit(&th->sig_sent, memory_order_relaxed);
    if (k_sched.preempt_async && m->sent_when != 0 && now - m->sent_when < IN_FLIGHT_NS &&
        sent != atomic_load_explicit(&th->sig_seen, memory_order_relaxed))
        return true;
    if (k_sched.preempt_async && v == CPU_ON && !m->cpu_fresh)
        return false;
    if (k_sched.preempt_async && v != CPU_NA && v != CPU_ON) {
        /* Relaxed: a statistic (tests). */
        atomic_fetch_add_explicit(&k_sched.npreempt_os, 1, memory_order_relaxed);
        return true;
    }
    /* The task the monitor meant may have been switched out while it
     * read the clock (a system call; tens of microseconds under qemu):
     * then the next task may already sit in a call that the signal would
     * interrupt. Relaxed: as in retake; what is left is the window between
     * this load and the signal's delivery. */
    if (atomic_load_explicit(&p->schedtick, memory_order_relaxed) != m->schedtick)
        return true;
    /* Relaxed: a request that publishes nothing; the thread reads it at its
     * next safe point or in the signal handler (preempt.c), and a request
     * seen late is resent after PREEMPT_RESEND_NS. */
    atomic_store_explicit(&th->preempt_req, 1, memory_order_relaxed);
    if (k_sched.preempt_async) {
        atomic_store_explicit(&th->sig_sent, sent + 1, memory_order_relaxed);
        m->sent_when = now;
        /* Not sent (a port's floor between two suspensions): nothing is
         * on its way. */
        if (hal_thread_preempt(th->os, th) != 0)
            atomic_store_explicit(&th->sig_seen, sent + 1, memory_order_relaxed);
    }
    return true;
}

/*
 * Lending: a thread stuck in the OS in a call nobody annotated.
 *
 * weft_block_begin gives its proc up before the call, so the monitor can
 * hand it on (retake). A task that calls read() or fsync() or
 * getaddrinfo() bare keeps its proc, and its thread may be anywhere when
 * the monitor looks: in the task's code, in a library, or inside kern
 * itself (an mmap in the allocator, a futex in a kern lock). Taking the
 * proc from a thread that may be inside kern would need every entry into
 * kern to check, at a cost to every call, that its proc is still its own.
 * So the monitor leaves the stuck thread its proc and lends the run a
 * spare one instead, which it hands to a spinning thread (k_spare_lend):
 * that thread steals the stuck proc's queue and runs its due timers, as
 * thieves always may, and the proc's other tasks keep running. The stuck
 * thread, back from the OS, goes on with its task and its proc as if
 * nothing happened; kern state is only ever touched by the holder of a
 * proc.
 *
 * The loan ends when the stuck task comes back to the scheduler (the
 * proc's tick moves), when its thread is seen on the CPU again, or when
 * the proc stops running (idle, in an annotated call): k_spare_end sends
 * the spare back to the spares, at once if it is idle, else at its
 * holder's next scheduling decision, which puts what is queued on it on
 * the global queue. While a loan lasts, one task more than procs may run
 * C code: the stuck one, which is in the OS or just back from it.
 *
 * When: each round, while the same task runs on a proc, its thread's CPU
 * time is read (cpu_look). A window of at least window_ns() with less
 * than half of it on the CPU means the thread is in the OS: lent after
 * two rounds, a quarter of a slice. Go's rule for retaking a proc from a
 * blocking call applies too: not while the proc has nothing queued and
 * other threads spin or procs idle (they will find any new work), unless
 * it lasts LONG_RETAKE_NS. The spares are at most max(procs, K_SPARE_MIN)
 * (they bound the threads such calls can take); when all are lent, the
 * other stuck procs' tasks wait for their threads, and the first time
 * that happens the monitor says so.
 */
static int lend(struct proc *p, struct montick *m, int64_t now)
{
    /* nspinning, nidle_procs relaxed: a heuristic, as in retake. */
    if (k_runq_empty(p) &&
        atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed) +
                atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) >
            0 &&
        now - m->sched_when < LONG_RETAKE_NS)
        return 0;
    struct proc *q = k_spare_lend();
    if (!q) {
        /* stopping relaxed: a hint, only for the message. */
        if (!mon.exhausted && !atomic_load_explicit(&k_sched.stopping, memory_order_relaxed)) {
            mon.exhausted = true;
            k_print("weft: more threads are stuck in the OS in calls not bracketed by "
                    "weft_block_begin/weft_block_end than there are spare procs (%d, all lent): "
                    "the tasks queued behind the others wait for their calls (docs/API.md, "
                    "\"System calls in a task, and EINTR\")\n",
                    k_sched.nspares);
        }
        return 0;
    }
    m->lent = q;
    /* Relaxed: for the dump and weft_stats (statistics). */
    atomic_store_explicit(&p->stuck_ns, m->cpu_prev ? m->cpu_prev : now, memory_order_relaxed);
    atomic_store_explicit(&p->lent, q, memory_order_relaxed);
    atomic_fetch_add_explicit(&k_sched.nlend, 1, memory_order_relaxed);
    return 1;
}

static void lend_end(struct proc *p, struct montick *m)
{
    k_spare_end(m->lent);
    m->lent = NULL;
    /* Relaxed: as in lend. */
    atomic_store_explicit(&p->lent, NULL, memory_order_relaxed);
    atomic_store_explicit(&p->stuck_ns, 0, memory_order_relaxed);
}

/* One pass over the procs (Go: retake). Returns how many it acted on. */
static int retake(int64_t now, bool *running)
{
    int acted = 0;
    *running = false;
    /* Relaxed: the monitor is the only writer of nall. */
    int n = atomic_load_explicit(&k_sched.nall, memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        struct montick *m = &mon.ticks[i];
        /* Acquire: pairs with the release store of a SYSCALL word in
         * weft_block_begin (the proc's queue as its thread left it). */
        uint64_t s = atomic_load_explicit(&p->status, memory_order_acquire);
        if (s != PROC_RUNNING && m->lent)
            lend_end(p, m); /* the proc is idle, in a blocking call, or retired */
        if (s == PROC_RUNNING) {
            *running = true;
            /* Relaxed: a clock compared for change only (sched.c
             * begin_run); a stale tick delays a preemption by a round. */
            uint32_t tick = atomic_load_explicit(&p->schedtick, memory_order_relaxed);
            if (tick != m->schedtick) {
                m->schedtick = tick;
                m->sched_when = now;
                m->signalled = 0;
                m->sent_when = 0;
                m->cpu_when = 0;
                if (m->lent)
                    lend_end(p, m); /* the stuck task came back to the scheduler */
                continue;
            }
            /* The same task for at least a round. A CPU reading of its
             * thread each round while the port can read one (for lending),
             * else from three quarters of the slice on (for preemption). */
            bool preempt = k_sched.preempt > 0 && now - m->sched_when >= k_sched.timeslice_ns &&
                           now - m->signalled >= K_MIN(PREEMPT_RESEND_NS, k_sched.timeslice_ns);
            /* Acquire: pairs with the release stores of p->thread, so the
             * thread's fields written before it took p (its OS handle) are
             * visible. NULL: p is changing hands. */
            struct thread *th = atomic_load_explicit(&p->thread, memory_order_acquire);
            if (!th)
                continue;
            enum cpu_verdict v = CPU_NA;
            if (mon.lending || (k_sched.preempt > 0 && k_sched.preempt_async &&
                                now - m->sched_when >= k_sched.timeslice_ns / 4 * 3)) {
                v = cpu_look(th, m);
                if (v == CPU_NA)
                    mon.lending = false; /* this port cannot tell */
            }
            if (mon.lending && v == CPU_OFF && !m->lent)
                acted += lend(p, m, now);
            else if (v == CPU_ON && m->lent)
                lend_end(p, m); /* back in its task's code */
            if (preempt && preempt_one(p, th, m, now, v)) {
                m->signalled = now;
                acted++;
            }
        } else if (K_PROC_STATE(s) == PROC_SYSCALL) {
            if (s != m->syscall_word) {
                m->syscall_word = s;
                m->syscall_when = now;
                /* A new blocking call on a proc that has work queued: it
                 * is retaken in RETAKE_NS, so look again that soon (as if
                 * acted: the next nap is the shortest). */
                if (!k_runq_empty(p))
                    acted++;
                continue;
            }
            int64_t held = now - m->syscall_when;
            if (held < RETAKE_NS)
                continue;
            /* nspinning, nidle_procs relaxed: a heuristic for whether the
             * proc is needed; a stale value retakes it a little early or
             * leaves it until LONG_RETAKE_NS. */
            if (k_runq_empty(p) &&
                atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed) +
                        atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed) >
                    0 &&
                held < LONG_RETAKE_NS)
                continue;
            /* Acquire: pairs with the release store of s in
             * weft_block_begin; whoever k_handoff gives the proc to
             * inherits it from here. Release: nothing of ours to publish,
             * kept from before. */
            uint64_t expect = s;
            if (atomic_compare_exchange_strong_explicit(
                    &p->status, &expect, PROC_IDLE, memory_order_acq_rel, memory_order_relaxed)) {
                /* Relaxed: a statistic (weft_stats). */
                atomic_fetch_add_explicit(&k_sched.nretake, 1, memory_order_relaxed);
                k_handoff(p);
                acted++;
            }
        }
    }
    return acted;
}

/*
 * WEFT_SCHEDTRACE=ms[,detail]: one line every ms milliseconds (Go's
 * schedtrace), on stderr, from this thread:
 *
 *   weft: SCHED 120ms: procs=4 idleprocs=3 threads=5 spinningthreads=0
 *   lentprocs=0 runqueue=0 [0 2 0 0] switches=+812 steals=+4
 *   preemptions=+1 handoffs=+0 autohandoffs=+0 pollwakeups=+3
 *
 * (one line): the time since the run began; the procs asked for, how many
 * are idle, the threads started, those spinning, the spares lent; the
 * global queue's length and each proc's (spares after the procs); and how
 * much each counter grew since the last line. With detail, the task dump
 * follows each line (Go's scheddetail). Every figure is read without
 * locks but the thread count (sched.lock): a snapshot, not a consistent
 * cut. The monitor's naps and parks end in time for the next line.
 */
static void sched_trace(int64_t now)
{
    if (k_sched.trace_ns == 0 || now < mon.trace_next)
        return;
    mon.trace_next = now + k_sched.trace_ns;
    k_lock(&k_sched.lock);
    int nthreads = k_sched.nthreads;
    k_unlock(&k_sched.lock);
    uint64_t c[6] = {0};
    int n = k_procs_all();
    /* Relaxed, all: statistics (as weft_stats). */
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        c[0] += atomic_load_explicit(&p->nswitch, memory_order_relaxed);
        c[1] += atomic_load_explicit(&p->nsteal, memory_order_relaxed);
        c[2] += atomic_load_explicit(&p->npreempt, memory_order_relaxed);
    }
    c[3] = atomic_load_explicit(&k_sched.nretake, memory_order_relaxed);
    c[4] = atomic_load_explicit(&k_sched.nlend, memory_order_relaxed);
    c[5] = k_poll_wakeups();
    char q[256];
    int len = 0;
    for (int i = 0; i < n && len < (int)sizeof q - 24; i++) {
        struct proc *p = k_sched.procs[i];
        uint32_t h = atomic_load_explicit(&p->runq_head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&p->runq_tail, memory_order_relaxed);
        uint32_t size = t - h <= K_RUNQ_SIZE ? t - h : 0;
        if (atomic_load_explicit(&p->runnext, memory_order_relaxed))
            size++;
        len += k_snprint(q + len, sizeof q - (size_t)len, i ? " %u" : "%u", size);
    }
    if (len >= (int)sizeof q - 24)
        k_snprint(q + len, sizeof q - (size_t)len, " ...");
    k_print("weft: SCHED %lldms: procs=%d idleprocs=%d threads=%d spinningthreads=%d "
            "lentprocs=%d runqueue=%d [%s] switches=+%llu steals=+%llu preemptions=+%llu "
            "handoffs=+%llu autohandoffs=+%llu pollwakeups=+%llu\n",
            (long long)((now - mon.trace_start) / 1000000), k_sched.nprocs,
            (int)atomic_load_explicit(&k_sched.nidle_procs, memory_order_relaxed), nthreads,
            (int)atomic_load_explicit(&k_sched.nspinning, memory_order_relaxed),
            (int)atomic_load_explicit(&k_sched.nactive, memory_order_relaxed) - k_sched.nprocs,
            (int)atomic_load_explicit(&k_sched.runq_size, memory_order_relaxed), q,
            (unsigned long long)(c[0] - mon.trace_last[0]),
            (unsigned long long)(c[1] - mon.trace_last[1]),
            (unsigned long long)(c[2] - mon.trace_last[2]),
            (unsigned long long)(c[3] - mon.trace_last[3]),
            (unsigned long long)(c[4] - mon.trace_last[4]),
            (unsigned long long)(c[5] - mon.trace_last[5]));
    for (int i = 0; i < 6; i++)
        mon.trace_last[i] = c[i];
    if (k_sched.trace_detail) {
        k_monitor_print();
        k_dump_tasks_brief();
    }
}

/* Every active proc idle: the procs asked for and the spares lent now
 * (nactive), as proc_idle_get counts when it decides to wake us. Counted
 * against the procs asked for alone, a lent spare gone idle beside a
 * running proc looked like "all idle": the monitor parked for good and
 * the running proc was never preempted again (tests/t_autoblock.c
 * block_auto_park).
 * seq_cst: pairs with the seq_cst store of nidle_procs in proc_idle_get
 * (sched.c) against our seq_cst stores of parked and until: either this
 * load sees the proc taken, or its taker sees us parked (k_monitor_work).
 * nactive is read first: besides us (lend, loan end), only the holder of
 * a spare whose loan we ended changes it, down, and that spare is not on
 * the idle list. So the count read is at least the one when nidle_procs
 * is read, and equal counts mean every active proc was idle then. (Read
 * after, a spare retired in between could pair a smaller count with an
 * older idle count, from before a proc was taken.) */
static bool all_idle(void)
{
    int32_t active = atomic_load_explicit(&k_sched.nactive, memory_order_seq_cst);
    return atomic_load_explicit(&k_sched.nidle_procs, memory_order_seq_cst) == active;
}

static void monitor_main(void *arg)
{
    (void)arg;
    int idle = 0;
    int64_t sleep_ns = MIN_SLEEP_NS;
    bool busy = true;
    /* Acquire: pairs with the seq_cst store in stop_locked (sched.c). The
     * monitor reads nothing published with it; stop_locked then wakes us. */
    while (!atomic_load_explicit(&k_sched.stopping, memory_order_acquire)) {
        if (idle == 0)
            sleep_ns = MIN_SLEEP_NS;
        else if (idle > IDLE_ROUNDS)
            sleep_ns = K_MIN(sleep_ns * 2, MAX_SLEEP_NS);
        /* A task is running: look again within an eighth of a slice. */
        int64_t nap = sleep_ns;
        if (busy && (k_sched.preempt > 0 || mon.lending) && nap > k_sched.timeslice_ns / 8)
            nap = K_MAX(k_sched.timeslice_ns / 8, MIN_SLEEP_NS);
        if (k_sched.trace_ns)
            nap = K_MAX(K_MIN(nap, mon.trace_next - hal_now_ns()), MIN_SLEEP_NS);
        /* sleep_ns relaxed: a hint for k_monitor_kick only (a stale value
         * costs a needless kick, or leaves us to the end of this nap).
         * until seq_cst, before the nap and 0 after it: see mon.until. */
        atomic_store_explicit(&mon.sleep_ns, nap, memory_order_relaxed);
        atomic_store_explicit(&mon.until, k_add_sat(hal_now_ns(), nap), memory_order_seq_cst);
        hal_futex_wait((uint32_t *)&mon.wake, 0, nap);
        atomic_store_explicit(&mon.until, 0, memory_order_seq_cst);
        /* Acquire: pairs with the seq_cst stores of wake in k_monitor_wake
         * and k_monitor_kick, so the round sees what the waker did before
         * (a proc taken, a call begun, stopping). The futex compares the
         * word in the kernel, so a wake stored before our wait is not lost. */
        if (atomic_exchange_explicit(&mon.wake, WAKE_NONE, memory_order_acquire) == WAKE_KICK) {
            /* A blocking call began while the naps were long: back to
             * short naps at once (resetting idle alone would keep this nap
             * length until the next round, e.g. 10 ms before the call
             * can be retaken). */
            idle = 0;
            sleep_ns = MIN_SLEEP_NS;
        }

        if (all_idle()) {
            /* Park until a proc leaves the idle list, or a grace after the
             * earliest timer (whose thread may leave us asleep). Publish
             * until first, then look again (pairs with the seq_cst store
             * of nidle_procs in proc_idle_get: either we see the proc
             * taken, or its taker sees until and wakes us if it is far). */
            atomic_store_explicit(&mon.parked, 1, memory_order_seq_cst);
            for (;;) {
                int64_t now = hal_now_ns();
                int64_t next = k_timers_earliest();
                /* Saturated: a timer at INT64_MAX (a sleep of for ever)
                 * must not wrap until round to the past. */
                int64_t until = next ? k_add_sat(K_MAX(next, now), grace_ns()) : 0;
                if (k_sched.trace_ns && (until == 0 || until > mon.trace_next))
                    until = K_MAX(mon.trace_next, now + MIN_SLEEP_NS); /* the next line */
                /* sleep_ns relaxed, until seq_cst: as before a nap. Then
                 * the checks: all_idle (seq_cst, see there); stopping and
                 * wake acquire, as at the top of the loop and after a nap
                 * (a wake stored after these loads makes the futex wait
                 * return at once). */
                atomic_store_explicit(&mon.sleep_ns, until ? until - now : INT64_MAX,
                                      memory_order_relaxed);
                atomic_store_explicit(&mon.until, until, memory_order_seq_cst);
                if (!all_idle() || atomic_load_explicit(&k_sched.stopping, memory_order_acquire) ||
                    atomic_load_explicit(&mon.wake, memory_order_acquire))
                    break;
                hal_futex_wait((uint32_t *)&mon.wake, 0, until ? until - now : -1);
                if (until && hal_now_ns() >= until)
                    break; /* its time: a round, then maybe park again */
            }
            /* until 0 (seq_cst, see mon.until) before parked 0. parked
             * relaxed: clearing it only spares k_monitor_work a wake; one
             * that still sees 1 wakes a monitor already awake (harmless),
             * and we are about to make a round that sees every proc. The
             * exchange: acquire, as after a nap. */
            atomic_store_explicit(&mon.until, 0, memory_order_seq_cst);
            atomic_store_explicit(&mon.parked, 0, memory_order_relaxed);
            if (atomic_exchange_explicit(&mon.wake, WAKE_NONE, memory_order_acquire) == WAKE_KICK) {
                idle = 0;
                sleep_ns = MIN_SLEEP_NS;
            }
            /* Straight to a round: a timer's grace ran out, or a proc left
             * the idle list (the round sees it running, so the next nap is
             * the busy one). The naps keep their length otherwise. */
        }

        int64_t now = hal_now_ns();
        atomic_store_explicit(&mon.round_ns, now, memory_order_relaxed);
        bool running;
        int acted = retake(now, &running);
        acted += run_stranded_timers(now);
        sched_trace(now);
        /* A poll that found something is not a reason for 20 µs naps (Go's
         * sysmon does not count it either): a server whose threads are
         * busy would otherwise get 50 short naps, each taking a CPU from
         * them, after every poll the monitor makes for them
         * (docs/benchmarks.md, "Figures behind the code"). */
        poll_network(now);
        if (acted)
            idle = 0;
        else
            idle++;
        busy = running;
    }
}

static const char *verdict_str(enum cpu_verdict v)
{
    switch (v) {
    case CPU_ON:
        return "on the CPU";
    case CPU_OFF:
        return "in the OS";
    case CPU_NA:
        return "not read";
    default:
        return "unknown";
    }
}

static const char *status_str(uint64_t s)
{
    switch (K_PROC_STATE(s)) {
    case PROC_IDLE:
        return "idle";
    case PROC_RUNNING:
        return "running";
    case PROC_SYSCALL:
        return "in a blocking call";
    default:
        return "spare";
    }
}

/*
 * For the dump (dump.c) and the detail lines of WEFT_SCHEDTRACE: the
 * monitor's last round, then a line per proc (Go's scheddetail P and M
 * lines in one): its status, its thread, and what the monitor knows of
 * it: how long the same task has run, the last interrupt, the last CPU
 * verdict, and the thread's preemption state (request, interrupts sent
 * and seen, kern locks held). It answers "why is this task not being
 * preempted?". Read racily from any thread, inside the host gate or on
 * a thread of the run: a snapshot for a human (threads and the ticks
 * table live as long as the run).
 */
K_RACY_READER void k_monitor_print(void)
{
    struct montick *ticks = K_RACY_LOAD(mon.ticks);
    if (!ticks)
        return;
    int64_t now = hal_now_ns();
    int64_t round = atomic_load_explicit(&mon.round_ns, memory_order_relaxed);
    /* A round that began after our clock read (racing) is 0 us ago. */
    int64_t ago = round ? K_MAX(now - round, 0) / 1000 : -1;
    k_print("  monitor: last round %lld us ago, ", (long long)ago);
    /* Parked: every proc was idle at its last look (all_idle). */
    if (atomic_load_explicit(&mon.parked, memory_order_relaxed))
        k_print("parked");
    else
        k_print("naps of %lld us",
                (long long)(atomic_load_explicit(&mon.sleep_ns, memory_order_relaxed) / 1000));
    k_print(", lending %s\n", K_RACY_LOAD(mon.lending) ? "on" : "off");
    int n = atomic_load_explicit(&k_sched.nall, memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        struct montick *m = &ticks[i];
        uint64_t s = atomic_load_explicit(&p->status, memory_order_relaxed);
        struct thread *th = atomic_load_explicit(&p->thread, memory_order_relaxed);
        int64_t since = K_RACY_LOAD(m->sched_when), sig = K_RACY_LOAD(m->signalled);
        k_print("  proc %d: %s, thread %d", p->id, status_str(s), th ? th->id : -1);
        /* The monitor's look applies to a running proc only (retake). */
        if (K_PROC_STATE(s) == PROC_RUNNING) {
            k_print(", task %llu for %lld ms; ",
                    (unsigned long long)atomic_load_explicit(&p->cur_id, memory_order_relaxed),
                    (long long)(since ? (now - since) / 1000000 : -1));
            if (sig)
                k_print("interrupted %lld ms ago", (long long)((now - sig) / 1000000));
            else
                k_print("not interrupted");
            k_print(", cpu %s", verdict_str(K_RACY_LOAD(m->cpu_v)));
        }
        if (th) {
            /* The task the thread runs now: p's own task if p->thread
             * is current. Task memory is never unmapped during a run. */
            struct task *t = K_RACY_LOAD(th->cur);
            k_print("; thread %d: task %lld, proc %d, preempt_req %d, interrupts sent %u seen "
                    "%u, locks %d",
                    th->id, t ? (long long)K_RACY_LOAD(t->id) : -1LL,
                    K_RACY_LOAD(th->proc) ? K_RACY_LOAD(th->proc)->id : -1,
                    atomic_load_explicit(&th->preempt_req, memory_order_relaxed),
                    atomic_load_explicit(&th->sig_sent, memory_order_relaxed),
                    atomic_load_explicit(&th->sig_seen, memory_order_relaxed),
                    K_RACY_LOAD(th->locks.held));
        }
        k_print("\n");
    }
}

int k_monitor_start(void)
{
    mon.ticks = k_zalloc(sizeof(struct montick) * (size_t)(k_sched.nprocs + k_sched.nspares));
    if (!mon.ticks)
        return WEFT_ENOMEM;
    mon.lending = k_sched.autoblock;
    mon.trace_start = hal_now_ns();
    mon.trace_next = mon.trace_start + k_sched.trace_ns;
    for (int i = 0; i < 6; i++)
        mon.trace_last[i] = 0;
    mon.exhausted = false;
    /* Before the monitor thread exists: hal_thread_start publishes these
     * (the seq_cst default is more than needed). */
    atomic_store(&mon.wake, 0);
    atomic_store(&mon.parked, 0);
    atomic_store(&mon.sleep_ns, MIN_SLEEP_NS);
    atomic_store(&mon.until, 0);
    if (hal_thread_start(monitor_main, NULL, &mon.handle) != 0) {
        k_free(mon.ticks, sizeof(struct montick) * (size_t)(k_sched.nprocs + k_sched.nspares));
        mon.ticks = NULL;
        return WEFT_ENOMEM;
    }
    return 0;
}

void k_monitor_stop(void)
{
    k_monitor_wake();
    hal_thread_join(mon.handle);
    k_free(mon.ticks, sizeof(struct montick) * (size_t)(k_sched.nprocs + k_sched.nspares));
    mon.ticks = NULL;
}

/* seq_cst store (release would do): pairs with the monitor's acquire
 * exchange of wake after a nap or park, and its acquire load in the park
 * loop; the futex wake after it ends a wait that started before. */
void k_monitor_wake(void)
{
    atomic_store_explicit(&mon.wake, WAKE_LOOK, memory_order_seq_cst);
    hal_futex_wake((uint32_t *)&mon.wake, 1);
}

void k_monitor_work(void)
{
    /* seq_cst: pairs with the monitor's seq_cst stores of until (see
     * mon.until), after our caller's seq_cst store of nidle_procs. */
    int64_t until = atomic_load_explicit(&mon.until, memory_order_seq_cst);
    /* In the past: it is waking now, and its next round sees the proc. */
    if (until != 0 && until - hal_now_ns() <= grace_ns())
        return;
    /* until 0: awake between naps (its next round sees the proc), or
     * parked with no timer. parked is stored seq_cst before the monitor's
     * last all_idle() check, nidle_procs seq_cst before these loads: one
     * of the two sides sees the other. */
    if (until == 0 && !atomic_load_explicit(&mon.parked, memory_order_seq_cst))
        return;
    k_monitor_wake();
}

void k_monitor_kick(void)
{
    /* sleep_ns and wake loaded relaxed: hints; a kick missed here leaves
     * the monitor to the end of its current nap, which retake already
     * tolerates (a call is retaken after RETAKE_NS at the earliest). The
     * sleep_ns store (relaxed) only spares other callers a second kick;
     * the monitor stores its own before its next nap. The wake store:
     * seq_cst as in k_monitor_wake, paired with the monitor's acquire
     * exchange (nothing else is published with a kick). */
    if (atomic_load_explicit(&mon.sleep_ns, memory_order_relaxed) > KICK_ABOVE_NS &&
        !atomic_load_explicit(&mon.wake, memory_order_relaxed)) {
        atomic_store_explicit(&mon.sleep_ns, MIN_SLEEP_NS, memory_order_relaxed);
        atomic_store_explicit(&mon.wake, WAKE_KICK, memory_order_seq_cst);
        hal_futex_wake((uint32_t *)&mon.wake, 1);
    }
}
