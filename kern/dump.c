/* SPDX-License-Identifier: MIT */
/*
 * dump.c — printing every task's state (weft_dump, a dump asked for from
 * outside, the deadlock report, panics) and naming the task whose stack
 * overflowed (kern_fault).
 *
 * All output goes through k_print: no allocation, async-signal-safe, so
 * the same code serves a panic, a signal handler and a normal call.
 *
 * A task's entry reads, for a human:
 *
 *   task 7 [waiting: chan receive, 120 ms] on chan 0x55e4c2a0, stack 0x7f..-0x7f..
 *     #0 0x55e4c1f1a2b4 /path/to/program+0x1a2b4
 *     #1 0x55e4c1f1c010 /path/to/program+0x1c010
 *     ...
 *     started as 0x55e4c1f20450 /path/to/program+0x20450
 *
 * #0 is where the task switched out (inside weft), each next line where
 * the function of the line above was called from, up to the task's
 * first frame; "started as" is the function it was started with. A task
 * that an interrupt switched out (preemption) has a "preempted at" line
 * first: the interrupted instruction, whose function the frames skip
 * (its caller follows the interrupt's own frames). Each
 * address is followed by the file it is in and its place there
 * (hal_pc_module): scripts/symbolize reads a dump and puts a function,
 * file and line in place of each. Frames are those of suspended tasks
 * only (waiting or runnable): a running task's stack changes under any
 * reader on another thread. The walk (hal_ctx_backtrace) stays inside
 * the task's stack, and the stack stays mapped while it is read
 * (k_stack_peek_begin): a task that wakes meanwhile gives a wrong
 * trace, never a crash.
 */
#include "kern/host.h"
#include "kern/poller.h"
#include "kern/proc.h"

/* Frames shown per task; a deeper stack ends in "...". */
#define DUMP_FRAMES 32
/* Where addresses come from (hal_pc_module, a file read on POSIX), kept
 * for the length of one dump: a few modules cover a program's tasks. */
#define DUMP_MODULES 8
#define DUMP_NAME 256

static struct {
    /* One dump at a time uses the table; a dump that finds it taken (a
     * signal's dump inside weft_dump's, two threads at once) prints bare
     * addresses. Exchange with acquire, store with release: the table's
     * contents pass from one dump to the next through it. */
    _Atomic int busy;
    int n, next;
    struct {
        uintptr_t lo, hi; /* the range hal_pc_module answered for */
        uintptr_t delta;  /* the place in the file of pc is pc + delta */
        char name[DUMP_NAME];
    } mod[DUMP_MODULES];
} where;

static const char *state_str(int s)
{
    switch (s) {
    case TASK_RUNNABLE:
        return "runnable";
    case TASK_RUNNING:
        return "running";
    case TASK_WAITING:
        return "waiting";
    case TASK_DEAD:
        return "dead";
    default:
        return "?";
    }
}

/* print_pc's labels other than frame numbers. */
#define PC_STARTED (-1)
#define PC_PREEMPTED (-2)

/* Prints one address: "#i 0x..." for frame i, "started as 0x..." for
 * PC_STARTED, "preempted at 0x..." for PC_PREEMPTED, with its file and
 * place when known (cache: this dump holds where). */
static void print_pc(int i, uintptr_t pc, bool cache)
{
    char label[16];
    if (i >= 0)
        k_snprint(label, sizeof label, "#%d", i);
    else if (i == PC_STARTED)
        k_snprint(label, sizeof label, "started as");
    else
        k_snprint(label, sizeof label, "preempted at");
    int m = -1;
    if (cache) {
        for (int j = 0; j < where.n && m < 0; j++)
            if (pc >= where.mod[j].lo && pc < where.mod[j].hi)
                m = j;
        uintptr_t off, lo, hi;
        if (m < 0 &&
            hal_pc_module(pc, where.mod[where.next].name, DUMP_NAME, &off, &lo, &hi) == 0) {
            m = where.next;
            where.mod[m].lo = lo;
            where.mod[m].hi = hi;
            where.mod[m].delta = off - pc;
            where.next = (where.next + 1) % DUMP_MODULES;
            if (where.n < DUMP_MODULES)
                where.n++;
        }
    }
    if (m >= 0)
        k_print("    %s 0x%llx %s+0x%llx\n", label, (unsigned long long)pc, where.mod[m].name,
                (unsigned long long)(pc + where.mod[m].delta));
    else
        k_print("    %s 0x%llx\n", label, (unsigned long long)pc);
}

/* Whether t runs on a proc whose thread the monitor found stuck in the OS
 * (monitor.c, "Lending"): then since when (*ms ago) and the spare's
 * number. Relaxed loads: a snapshot, which a dump accepts. */
static bool stuck_in_os(struct task *t, int64_t now, int64_t *ms, int *lent)
{
    int n = k_procs_all();
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        int64_t since = atomic_load_explicit(&p->stuck_ns, memory_order_relaxed);
        struct proc *q = atomic_load_explicit(&p->lent, memory_order_relaxed);
        if (since && q && atomic_load_explicit(&p->cur_id, memory_order_relaxed) == t->id) {
            *ms = (now - since) / 1000000;
            *lent = q->id;
            return true;
        }
    }
    return false;
}

/* The proc whose thread last started t and is not idle, or -1. */
static int running_on(struct task *t)
{
    int n = k_procs_all();
    for (int i = 0; i < n; i++) {
        struct proc *p = k_sched.procs[i];
        if (atomic_load_explicit(&p->cur_id, memory_order_relaxed) == t->id)
            return p->id;
    }
    return -1;
}

/* What a waiting task waits on, after its reason: " on chan 0x...",
 * " on fd 5", or nothing when the reason says it all. */
K_RACY_READER static void wait_what(enum wait_reason r, void *obj, char *buf, size_t n)
{
    buf[0] = '\0';
    if (obj == NULL)
        return;
    switch (r) {
    case WAIT_CHAN_SEND:
    case WAIT_CHAN_RECV:
        k_snprint(buf, n, " on chan %p", obj);
        break;
    case WAIT_MUTEX:
        k_snprint(buf, n, " on mutex %p", obj);
        break;
    case WAIT_RWMUTEX_R:
    case WAIT_RWMUTEX_W:
        k_snprint(buf, n, " on rwmutex %p", obj);
        break;
    case WAIT_COND:
        k_snprint(buf, n, " on cond %p", obj);
        break;
    case WAIT_WAITGROUP:
        k_snprint(buf, n, " on waitgroup %p", obj);
        break;
    case WAIT_IO_READ:
    case WAIT_IO_WRITE:
    case WAIT_IO_CLOSE:
    case WAIT_IO_CANCEL:
        /* The descriptor is held by the waiting operation, and a
         * descriptor's memory lasts the run (poller.h): its fd is set. */
        k_snprint(buf, n, " on fd %lld", (long long)((struct k_pollfd *)obj)->fd);
        break;
    case WAIT_SELECT: /* obj is the task's own case array */
        break;
    default:
        k_snprint(buf, n, " on %p", obj);
        break;
    }
}

/* The frames of suspended task t (s: its state as read by the caller). */
K_RACY_READER static void dump_frames(struct task *t, bool cache)
{
    if (K_RACY_LOAD(t->fresh)) {
        k_print("    (not started yet)\n");
        return;
    }
    struct k_stack st = t->stack;
    uintptr_t pcs[DUMP_FRAMES + 1];
    int n = 0;
    if (k_stack_peek_begin(&st)) {
        n = hal_ctx_backtrace(&t->ctx, st.lo + st.guard, st.hi, pcs, DUMP_FRAMES + 1);
        k_stack_peek_end(&st);
    } else {
        k_print("    (its stack cannot be read now)\n");
    }
    for (int i = 0; i < n && i < DUMP_FRAMES; i++)
        print_pc(i, pcs[i], cache);
    if (n > DUMP_FRAMES)
        k_print("    ...\n");
}

/* One task: a line for its state, then (frames) its frames and start.
 * Every field is read racily: each may be stale by the time it prints,
 * which a dump accepts. */
K_RACY_READER static void dump_task(struct task *t, int s, int64_t now, bool frames, bool cache)
{
    char what[64];
    int64_t ms;
    int lent;
    const void *slo = t->stack.lo, *shi = t->stack.hi;
    if (s == TASK_WAITING) {
        enum wait_reason r =
            (enum wait_reason)atomic_load_explicit(&t->wait_reason, memory_order_relaxed);
        int64_t since = atomic_load_explicit(&t->wait_since_ns, memory_order_relaxed);
        wait_what(r, atomic_load_explicit(&t->wait_obj, memory_order_relaxed), what, sizeof what);
        k_print("  task %llu [waiting: %s, %lld ms]%s, stack %p-%p\n", (unsigned long long)t->id,
                k_wait_reason_str(r), (long long)(since ? (now - since) / 1000000 : -1), what, slo,
                shi);
    } else if (s == TASK_RUNNING && stuck_in_os(t, now, &ms, &lent)) {
        k_print(
            "  task %llu [running: in the OS, not annotated, %lld ms or more; proc %d stands in "
            "for its proc], stack %p-%p\n",
            (unsigned long long)t->id, (long long)ms, lent, slo, shi);
    } else if (s == TASK_RUNNING && K_RACY_LOAD(t->blocking)) {
        int64_t since = atomic_load_explicit(&t->wait_since_ns, memory_order_relaxed);
        k_print("  task %llu [running: in a blocking call (weft_block_begin), %lld ms], "
                "stack %p-%p\n",
                (unsigned long long)t->id, (long long)(since ? (now - since) / 1000000 : -1), slo,
                shi);
    } else if (s == TASK_RUNNING && (lent = running_on(t)) >= 0) {
        k_print("  task %llu [running on proc %d], stack %p-%p\n", (unsigned long long)t->id, lent,
                slo, shi);
    } else {
        k_print("  task %llu [%s], stack %p-%p\n", (unsigned long long)t->id, state_str(s), slo,
                shi);
    }
    if (!frames)
        return;
    uintptr_t ppc = atomic_load_explicit(&t->preempted_pc, memory_order_relaxed);
    if (s == TASK_RUNNABLE && ppc != 0)
        print_pc(PC_PREEMPTED, ppc, cache);
    if (s == TASK_WAITING || s == TASK_RUNNABLE)
        dump_frames(t, cache);
    print_pc(PC_STARTED, (uintptr_t)t->fn, cache);
}

/* Every live task (at most 1000 of them). Takes alltasks_lock if it can
 * get it (a panic may come from a thread that holds it: then the list is
 * walked without, which is racy but better than no dump). */
static void dump_tasks(bool frames)
{
    bool locked = false;
    for (int i = 0; i < 1000 && !(locked = k_trylock(&k_sched.alltasks_lock)); i++)
        hal_cpu_relax();
    bool cache = frames && atomic_exchange_explicit(&where.busy, 1, memory_order_acquire) == 0;
    if (cache)
        where.n = where.next = 0; /* what was mapped last time may have moved */
    int64_t now = hal_now_ns();
    uint64_t shown = 0;
    for (struct task *t = k_sched.alltasks; t; t = t->all_next) {
        int s = atomic_load_explicit(&t->state, memory_order_relaxed);
        if (s == TASK_DEAD || s == 0)
            continue;
        if (shown++ < 1000)
            dump_task(t, s, now, frames, cache);
    }
    if (shown > 1000)
        k_print("  ... and %llu more tasks\n", (unsigned long long)(shown - 1000));
    if (cache)
        atomic_store_explicit(&where.busy, 0, memory_order_release);
    if (locked)
        k_unlock(&k_sched.alltasks_lock);
}

void k_dump_tasks(void)
{
    dump_tasks(true);
}

void k_dump_tasks_brief(void)
{
    dump_tasks(false);
}

/* The dump's first line, then every task. Inside the gate, or on a thread
 * of the run. */
K_RACY_READER static void dump(const char *what)
{
    /* Statistics for a human: any order would do. nthreads is written by
     * startm under sched.lock: read without it, as a signal's dump may
     * come from a thread that holds it. */
    int nthreads = K_RACY_LOAD(k_sched.nthreads);
    k_print("weft: %s: %llu tasks, %d procs (%d idle, %d lent), %d threads\n", what,
            (unsigned long long)atomic_load(&k_sched.ntasks_live), k_sched.nprocs,
            (int)atomic_load(&k_sched.nidle_procs),
            (int)atomic_load(&k_sched.nactive) - k_sched.nprocs, nthreads);
    k_monitor_print();
    dump_tasks(true);
}

void weft_dump(void)
{
    /* A host thread goes through the gate: the run cannot end under the
     * dump (kern/host.h). It only looks: the deadlock check stays on. */
    bool host = k_task_here() == NULL;
    if (host && !k_host_enter_to_look()) {
        k_print("weft: dump: no run is active\n");
        return;
    }
    dump("dump");
    if (host)
        k_host_leave();
}

void kern_dump_request(const char *what)
{
    /* Any thread, inside a signal handler: the gate, whatever the thread
     * (a worker's handler may interrupt the run's end too). */
    if (!k_host_enter_to_look()) {
        k_print("weft: %s: no run is active\n", what);
        return;
    }
    char head[64];
    k_snprint(head, sizeof head, "%s: dump", what);
    dump(head);
    k_host_leave();
}

/* Called by the port's fault handler (alternate signal stack). */
void kern_fault(void *addr)
{
    struct thread *th = k_thread_self();
    if (!th || !th->cur)
        return;
    struct task *t = th->cur;
    char *a = addr;
    /* The guard, and a little below it: a frame larger than the guard can
     * jump past it, but not far. */
    char *guard_lo = t->stack.lo;
    char *guard_hi = t->stack.lo + t->stack.guard;
    if (a >= guard_hi || a + 64 * 1024 < guard_lo)
        return;
    size_t usable = (size_t)(t->stack.hi - guard_hi);
    k_print("weft: task %llu: stack overflow (fault at %p; its stack is %p-%p, %llu bytes; "
            "give it more with weft_go_stack or WEFT_STACK)\n",
            (unsigned long long)t->id, addr, (void *)guard_hi, (void *)t->stack.hi,
            (unsigned long long)usable);
    hal_abort();
}
