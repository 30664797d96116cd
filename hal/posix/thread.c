/* SPDX-License-Identifier: MIT */
/*
 * thread.c (posix) — OS threads for kern: starting and joining pthreads,
 * the calling thread's kern pointer, per-thread alternate signal stacks,
 * and the CPU count.
 *
 * Every thread that runs tasks needs an alternate signal stack: a task
 * that overflows its stack faults on the guard page with no stack left to
 * run a handler on, so the SIGSEGV handler (signal.c) must run elsewhere.
 * Threads from hal_thread_start get one for their whole life; a host
 * thread gets one between hal_thread_enter and hal_thread_leave, and its
 * own altstack (if it had one) back afterwards. Each is 64 KiB, or more
 * where the machine's signal frame is large (altstack_size: SVE and SME
 * at long vector lengths), room for the frame plus kern_fault's printing,
 * with a PROT_NONE page below so a runaway handler faults instead of
 * writing over whatever lies under it.
 *
 * The kern pointer is a static __thread in the initial-exec TLS model (no
 * __tls_get_addr call, also inside libweft.so), read and written only
 * through two out-of-line functions: kern itself may not use TLS, and a
 * task that switches threads must not see a pointer cached from before.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "posix.h"

_Static_assert(sizeof(pthread_t) <= sizeof(hal_thread_t), "a pthread_t fits in a hal_thread_t");

#define THREAD_STACK_SIZE (1u << 20) /* for kern's own code: scheduler, monitor */
#define ALTSTACK_MIN (64u << 10)

/* Opaque to the optimizer: never inlined, and (GCC) no interprocedural
 * assumptions such as "pure" that would let a caller reuse a result. */
#if defined(__GNUC__) && !defined(__clang__)
#define OPAQUE __attribute__((noinline, noipa))
#else
#define OPAQUE __attribute__((noinline))
#endif

static __thread void *kern_thread __attribute__((tls_model("initial-exec")));

/* This thread's altstack, when weft installed one. Thread-private. */
struct altstack {
    void *map;                      /* guard page + stack, or NULL */
    size_t size;                    /* bytes of stack above the guard page */
    stack_t prev;                   /* the altstack the thread had before */
    bool segv_blocked, bus_blocked; /* in the mask before; restored */
    uint64_t normal_mask;           /* the kernel's sigset word after entering */
    bool mask_known;
    int depth; /* nesting of hal_thread_enter */
};
static __thread struct altstack altstack;

/* Bytes of altstack: two of the machine's signal frames (a fault inside
 * the handler nests, SA_NODEFER) and 32 KiB for the handler, at least
 * ALTSTACK_MIN; whole pages. */
static size_t altstack_size(void)
{
    size_t ps = hal_page_size();
    size_t n = 2 * hal_posix_signal_frame() + (32u << 10);
    if (n < ALTSTACK_MIN)
        n = ALTSTACK_MIN;
    return (n + ps - 1) / ps * ps;
}

/* Maps a guarded altstack and installs it, remembering the previous one,
 * and makes sure the fault signals are not blocked (a synchronous fault
 * that is blocked kills the process without running any handler). Best
 * effort: without memory the thread runs with no altstack, and a stack
 * overflow then ends the process without weft's message. */
static void altstack_on(struct altstack *a)
{
    size_t ps = hal_page_size();
    sigset_t faults;
    sigemptyset(&faults);
    sigaddset(&faults, SIGSEGV);
    sigaddset(&faults, SIGBUS);
    sigset_t old;
    pthread_sigmask(SIG_UNBLOCK, &faults, &old);
    a->segv_blocked = sigismember(&old, SIGSEGV) == 1;
    a->bus_blocked = sigismember(&old, SIGBUS) == 1;
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    memcpy(&a->normal_mask, &now, sizeof a->normal_mask);
    a->mask_known = true;

    a->map = NULL;
    size_t size = altstack_size();
    char *m = mmap(NULL, ps + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                   -1, 0);
    if (m == MAP_FAILED)
        return;
    mprotect(m, ps, PROT_NONE);
    stack_t ss = {.ss_sp = m + ps, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, &a->prev) != 0) {
        munmap(m, ps + size);
        return;
    }
    a->map = m;
    a->size = size;
}

/* Puts the previous altstack back, re-blocks the fault signals that were
 * blocked before (the rest of the mask is the caller's business), and
 * frees ours. Must not run on the altstack (only signal handlers do). */
static void altstack_off(struct altstack *a)
{
    if (a->map != NULL) {
        stack_t prev = a->prev;
        if (prev.ss_flags & SS_ONSTACK)
            prev.ss_flags &= ~SS_ONSTACK;
        if (sigaltstack(&prev, NULL) != 0) {
            stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
            sigaltstack(&off, NULL);
        }
        munmap(a->map, hal_page_size() + a->size);
        a->map = NULL;
    }
    sigset_t faults;
    sigemptyset(&faults);
    if (a->segv_blocked)
        sigaddset(&faults, SIGSEGV);
    if (a->bus_blocked)
        sigaddset(&faults, SIGBUS);
    pthread_sigmask(SIG_BLOCK, &faults, NULL);
}

/*
 * State files. The monitor asks whether a thread is blocked in the kernel
 * and how long it waited for a CPU (hal_thread_cpu, preempt.c), which
 * Linux tells in /proc/self/task/TID/stat and schedstat. Each thread opens
 * its own files once, when it
 * starts (thread_main, hal_thread_enter), and closes it when it leaves:
 * opened by the monitor at each look, a descriptor would come and go every
 * millisecond in some other thread's way (a program that closes a
 * descriptor and counts on the next open reusing its number, as POSIX
 * promises a single thread; net_close_reuse failed 2 runs in 30 so). The
 * files are found by pthread_t in an open-addressed table under a mutex;
 * a full table (more threads than STAT_SLOTS / 2) leaves the rest without
 * one (hal_thread_cpu then says "does not say").
 */
#define STAT_SLOTS 4096 /* a power of 2 */
enum { SLOT_FREE = 0, SLOT_USED, SLOT_GONE };
static struct {
    pthread_mutex_t lock;
    int used; /* SLOT_USED and SLOT_GONE slots */
    struct {
        pthread_t t;
        int fd, sched_fd; /* stat, schedstat (-1: none) */
        int state;
    } slot[STAT_SLOTS];
} stats = {.lock = PTHREAD_MUTEX_INITIALIZER};
static _Thread_local int stat_slot = -1;

static size_t stat_hash(pthread_t t)
{
    uintptr_t h = (uintptr_t)t;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (STAT_SLOTS - 1);
}

static void stat_open(void)
{
    char path[64];
    long tid = (long)syscall(SYS_gettid);
    snprintf(path, sizeof path, "/proc/self/task/%ld/stat", tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    snprintf(path, sizeof path, "/proc/self/task/%ld/schedstat", tid);
    int sfd = open(path, O_RDONLY | O_CLOEXEC); /* -1 without schedstats */
    pthread_t me = pthread_self();
    pthread_mutex_lock(&stats.lock);
    if (stats.used < STAT_SLOTS / 2) {
        size_t i = stat_hash(me);
        while (stats.slot[i].state == SLOT_USED)
            i = (i + 1) & (STAT_SLOTS - 1);
        if (stats.slot[i].state == SLOT_FREE)
            stats.used++;
        stats.slot[i].t = me;
        stats.slot[i].fd = fd;
        stats.slot[i].sched_fd = sfd;
        stats.slot[i].state = SLOT_USED;
        stat_slot = (int)i;
        fd = sfd = -1;
    }
    pthread_mutex_unlock(&stats.lock);
    if (fd >= 0)
        close(fd);
    if (sfd >= 0)
        close(sfd);
}

static void stat_close(void)
{
    if (stat_slot < 0)
        return;
    pthread_mutex_lock(&stats.lock);
    int fd = stats.slot[stat_slot].fd, sfd = stats.slot[stat_slot].sched_fd;
    stats.slot[stat_slot].state = SLOT_GONE;
    stats.slot[stat_slot].fd = stats.slot[stat_slot].sched_fd = -1;
    pthread_mutex_unlock(&stats.lock);
    stat_slot = -1;
    close(fd);
    if (sfd >= 0)
        close(sfd);
}

ssize_t hal_posix_stat_read(pthread_t t, bool sched, char *buf, size_t size)
{
    ssize_t n = -1;
    pthread_mutex_lock(&stats.lock);
    for (size_t i = stat_hash(t), k = 0; k < STAT_SLOTS && stats.slot[i].state != SLOT_FREE;
         i = (i + 1) & (STAT_SLOTS - 1), k++)
        if (stats.slot[i].state == SLOT_USED && pthread_equal(stats.slot[i].t, t)) {
            int fd = sched ? stats.slot[i].sched_fd : stats.slot[i].fd;
            if (fd >= 0)
                n = pread(fd, buf, size - 1, 0);
            break;
        }
    pthread_mutex_unlock(&stats.lock);
    if (n >= 0)
        buf[n] = 0;
    return n;
}

struct start {
    void (*fn)(void *);
    void *arg;
};

static void *thread_main(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    altstack_on(&altstack);
    stat_open();
    s.fn(s.arg);
    stat_close();
    altstack_off(&altstack);
    return NULL;
}

/* pthread_create with a 1 MiB stack (kern's scheduler code runs there;
 * tasks have their own stacks). The new thread inherits the caller's
 * signal mask, minus SIGSEGV/SIGBUS, and gets an altstack. Errors:
 * HAL_ENOMEM (EAGAIN: no memory or thread limit), HAL_EFAIL otherwise.
 * Blocks briefly (clone). Not async-signal-safe. */
int hal_thread_start(void (*fn)(void *), void *arg, hal_thread_t *out)
{
    hal_posix_fault_install();
    struct start *s = malloc(sizeof *s);
    if (s == NULL)
        return HAL_ENOMEM;
    s->fn = fn;
    s->arg = arg;

    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(s);
        return HAL_ENOMEM;
    }
    pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
    pthread_t t;
    int err = pthread_create(&t, &attr, thread_main, s);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        free(s);
        return err == EAGAIN || err == ENOMEM ? HAL_ENOMEM : HAL_EFAIL;
    }
    *out = (hal_thread_t)t;
    return 0;
}

/* pthread_join: blocks until the thread's fn has returned, then frees its
 * stack. Each thread is joined exactly once. */
void hal_thread_join(hal_thread_t t)
{
    pthread_join((pthread_t)t, NULL);
}

/* pthread_detach: the thread's stack goes back when its fn returns. */
void hal_thread_detach(hal_thread_t t)
{
    pthread_detach((pthread_t)t);
}

/* Installs the fault handler (once per process) and this thread's
 * altstack. Nests: only the outermost enter/leave pair does anything.
 * Not async-signal-safe. */
void hal_thread_enter(void)
{
    hal_posix_fault_install();
    if (altstack.depth++ == 0) {
        altstack_on(&altstack);
        stat_open();
    }
}

/* Restores the altstack and fault-signal mask the thread had before
 * hal_thread_enter. The fault handler stays installed for the process:
 * it chains to the host's, and other threads may still run tasks. */
void hal_thread_leave(void)
{
    if (altstack.depth > 0 && --altstack.depth == 0) {
        stat_close();
        altstack_off(&altstack);
    }
}

bool hal_posix_mask_is_normal(const sigset_t *mask)
{
    if (!altstack.mask_known)
        return true;
    uint64_t word;
    memcpy(&word, mask, sizeof word);
    return word == altstack.normal_mask;
}

/* One TLS load: async-signal-safe, never blocks. */
OPAQUE void *hal_thread_get(void)
{
    return kern_thread;
}

OPAQUE void hal_thread_set(void *kern_thread_ptr)
{
    kern_thread = kern_thread_ptr;
}

/* CPUs in this process's affinity mask (sched_getaffinity), growing the
 * set for machines with more than CPU_SETSIZE CPUs; falls back to the
 * online count, and never returns less than 1. Later: the cgroup quota. */
int hal_cpu_count(void)
{
    for (int ncpu = CPU_SETSIZE; ncpu <= (1 << 16); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL)
            break;
        size_t sz = CPU_ALLOC_SIZE(ncpu);
        CPU_ZERO_S(sz, set);
        if (sched_getaffinity(0, sz, set) == 0) {
            int n = CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return n > 0 ? n : 1;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            break;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
