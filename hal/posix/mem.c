/* SPDX-License-Identifier: MIT */
/*
 * mem.c (posix) — address space for kern: reservations, commit, discard,
 * release and guard pages, all on mmap/mprotect/madvise.
 *
 * A reservation is one PROT_NONE, MAP_NORESERVE anonymous mapping: it
 * costs address space and one entry in the process's mapping table, no
 * memory and no commit charge. Committing makes part of it read-write;
 * Linux gives pages on first touch, and because the mapping was created
 * MAP_NORESERVE, mprotect charges nothing either (so commit fails only
 * when the kernel cannot split the mapping).
 *
 * Guards are the subtle part (docs/platforms.md, "Guard pages at
 * scale"). The mapping table is
 * small: vm.max_map_count is 65,530 by default, and an mprotect'ed page
 * inside a read-write range splits it into three mappings, so guarded
 * stacks run out near 32.7k, and a process that runs out of mappings
 * breaks malloc and pthread_create, not just weft. Three kinds, cheapest
 * first, chosen once by a probe (hal_mem_guard's first call):
 *
 *   region   madvise(MADV_GUARD_INSTALL), Linux 6.13+: a marker in the
 *            page tables, no mapping at all. The call's success proves
 *            nothing (qemu-user 7.2 returns 0 and enforces nothing), so
 *            the probe installs one on a scratch page and asks the kernel
 *            to read it with write(2) into a pipe: EFAULT means enforced.
 *   protect  mprotect(PROT_NONE): two more mappings per guard, so only
 *            within a budget computed from max_map_count and the current
 *            mapping count, minus headroom left for the host.
 *   none     when neither is possible; weft_stats counts these stacks.
 *
 * WEFT_GUARD=region|protect|none forces a kind so tests exercise each path
 * (region only if the probe passed). WEFT_GUARD_BUDGET=n fixes the protect
 * budget at n guards, so a test can exhaust it cheaply.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 uapi; older headers lack it */
#endif

/* Mappings left unused for the host (its malloc arenas, thread stacks,
 * dlopen) when the protect budget is computed. */
#define MAP_HEADROOM 4096
/* Used when /proc/sys/vm/max_map_count cannot be read (the kernel default). */
#define MAP_COUNT_DEFAULT 65530
/* Assumed mappings in use when /proc/self/maps cannot be read. */
#define MAPS_UNKNOWN 1024
/* An exhausted budget is recounted at most this often. */
#define RECOUNT_INTERVAL_NS 1000000000LL

static _Atomic size_t page_size;

/* Set once by probe(), under probe_once; read-only afterwards. */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static enum hal_guard_kind guard_mode; /* the best kind to try first */
static bool budget_fixed;              /* WEFT_GUARD_BUDGET was given */

/* Protect guards that may still be installed. Taken with a CAS loop, so it
 * never goes below zero; refilled only by recount(). */
static _Atomic long protect_budget;
static pthread_mutex_t recount_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_recount_ns;   /* protected by recount_lock */
static unsigned long counted_gen; /* release_gen at the last count; recount_lock */

/* The page size, from sysconf once and cached. Never blocks; not
 * async-signal-safe on the first call only. */
size_t hal_page_size(void)
{
    size_t ps = atomic_load_explicit(&page_size, memory_order_relaxed);
    if (ps == 0) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v >= 4096 ? (size_t)v : 4096;
        atomic_store_explicit(&page_size, ps, memory_order_relaxed);
    }
    return ps;
}

/* mmap of size + (align - page) bytes, then munmap of the misaligned head
 * and the tail: the result is exactly [base, base + size). NULL for a size
 * that is zero or not page-rounded, an align that is not a power of two,
 * overflow, or mmap failing (ENOMEM: address space or mappings). */
void *hal_mem_reserve(size_t size, size_t align)
{
    size_t ps = hal_page_size();
    if (size == 0 || (size & (ps - 1)) != 0 || (align & (align - 1)) != 0)
        return NULL;
    if (align < ps)
        align = ps;
    size_t span = size + (align - ps);
    if (span < size)
        return NULL;
    char *p = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    uintptr_t base = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = base - (uintptr_t)p;
    size_t tail = span - head - size;
    if (head != 0)
        munmap(p, head);
    if (tail != 0)
        munmap((char *)base + size, tail);
    return (void *)base;
}

/* mprotect to read-write. Must not cover a protect-kind guard (that would
 * remove it); region-kind guards survive it. Fails only when the kernel
 * cannot split the mapping (out of mappings): HAL_ENOMEM. */
int hal_mem_commit(void *addr, size_t size)
{
    return mprotect(addr, size, PROT_READ | PROT_WRITE) == 0 ? 0 : HAL_ENOMEM;
}

/* madvise(MADV_DONTNEED): the pages read back as zero on next touch.
 * Guards in the range (either kind) stay in place. */
int hal_mem_discard(void *addr, size_t size)
{
    return madvise(addr, size, MADV_DONTNEED) == 0 ? 0 : HAL_EFAIL;
}

/* Bumped by every release: a recount of the mappings is worth making only
 * if something was released since the last one. */
static _Atomic unsigned long release_gen;

/* munmap; removes any guards with it. */
void hal_mem_release(void *addr, size_t size)
{
    hal_posix_stacks_released(addr, size);
#ifdef WEFT_SAN_TSAN
    hal_posix_san_released(addr, size);
#endif
#ifdef __SANITIZE_ADDRESS__
    /* Tasks discarded at the end of a run leave their frames' redzones
     * poisoned; the next mapping at this address must start clean. */
    __asan_unpoison_memory_region(addr, size);
#endif
    munmap(addr, size);
    atomic_fetch_add_explicit(&release_gen, 1, memory_order_relaxed);
}

/* ---- The guard probe and the mapping budget ---- */

/* Counts the newlines of a /proc file (its line count), or -1. */
static long count_lines(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    long lines = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    close(fd);
    return lines;
}

/* Reads one decimal number from a /proc file, or dflt. */
static long read_number(const char *path, long dflt)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dflt;
    char buf[32];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return dflt;
    buf[n] = '\0';
    char *end;
    long v = strtol(buf, &end, 10);
    return end != buf && v > 0 ? v : dflt;
}

/* How many protect guards fit now: each adds two mappings. */
static long compute_budget(void)
{
    long max = read_number("/proc/sys/vm/max_map_count", MAP_COUNT_DEFAULT);
    long cur = count_lines("/proc/self/maps");
    if (cur < 0)
        cur = MAPS_UNKNOWN;
    long b = (max - cur - MAP_HEADROOM) / 2;
    return b > 0 ? b : 0;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The budget ran out: guards may have been released since (kern gives
 * every reservation back when weft_run returns, and weft_run may be
 * called again), so count the mappings again, if anything was released
 * since the last count, at most once a second and by one thread at a
 * time (reading /proc/self/maps with tens of thousands of mappings is
 * slow, very slow under qemu). Returns whether the budget is positive. */
static bool recount(void)
{
    if (budget_fixed || pthread_mutex_trylock(&recount_lock) != 0)
        return false;
    int64_t now = mono_ns();
    unsigned long gen = atomic_load_explicit(&release_gen, memory_order_relaxed);
    bool due = gen != counted_gen &&
               (last_recount_ns == 0 || now - last_recount_ns >= RECOUNT_INTERVAL_NS);
    if (due) {
        last_recount_ns = now;
        counted_gen = gen;
        atomic_store_explicit(&protect_budget, compute_budget(), memory_order_relaxed);
    }
    pthread_mutex_unlock(&recount_lock);
    return due && atomic_load_explicit(&protect_budget, memory_order_relaxed) > 0;
}

/* Takes one guard from the budget, or returns false when it is spent. */
static bool budget_take(void)
{
    long b = atomic_load_explicit(&protect_budget, memory_order_relaxed);
    for (;;) {
        if (b <= 0) {
            if (!recount())
                return false;
            b = atomic_load_explicit(&protect_budget, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&protect_budget, &b, b - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Does the kernel enforce MADV_GUARD_INSTALL? Installs a guard on the
 * second page of a scratch mapping and has the kernel read it: write(2)
 * from a guard page fails with EFAULT only if the guard is real. */
static bool region_enforced(void)
{
    size_t ps = hal_page_size();
    char *m = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return false;
    bool enforced = false;
    int fds[2];
    if (madvise(m + ps, ps, MADV_GUARD_INSTALL) == 0 && pipe(fds) == 0) {
        ssize_t n;
        do
            n = write(fds[1], m + ps, 1);
        while (n < 0 && errno == EINTR);
        enforced = n < 0 && errno == EFAULT;
        close(fds[0]);
        close(fds[1]);
    }
    munmap(m, 2 * ps);
    return enforced;
}

/* WEFT_GUARD: unset or empty (the cheapest kind the probe proves), region
 * (the same: a region guard where the kernel enforces one), protect or
 * none. WEFT_GUARD_BUDGET: how many protected guards to allow, a decimal
 * count >= 0, in place of the one computed from vm.max_map_count. */
int hal_mem_env_check(void)
{
    const char *g = getenv("WEFT_GUARD");
    if (g != NULL && *g != '\0' && strcmp(g, "region") != 0 && strcmp(g, "protect") != 0 &&
        strcmp(g, "none") != 0) {
        static const char msg[] = "weft: WEFT_GUARD: expected region, protect or none\n";
        hal_write_err(msg, sizeof msg - 1);
        return HAL_EINVAL;
    }
    const char *b = getenv("WEFT_GUARD_BUDGET");
    if (b != NULL && *b != '\0') {
        const char *c = b;
        while (*c >= '0' && *c <= '9' && c - b < 18) /* 18 digits fit a long */
            c++;
        if (*c != '\0') {
            static const char msg[] =
                "weft: WEFT_GUARD_BUDGET: expected a count of protected guards, 0 or more\n";
            hal_write_err(msg, sizeof msg - 1);
            return HAL_EINVAL;
        }
    }
    return 0;
}

/* Runs once, at the first hal_mem_guard: picks guard_mode and sets the
 * protect budget (hal_mem_env_check has vetted the variables). */
static void probe(void)
{
    const char *force = getenv("WEFT_GUARD");
    const char *fixed = getenv("WEFT_GUARD_BUDGET");
    bool region = region_enforced();

    if (force != NULL && strcmp(force, "none") == 0)
        guard_mode = HAL_GUARD_NONE;
    else if (force != NULL && strcmp(force, "protect") == 0)
        guard_mode = HAL_GUARD_PROTECT;
    else
        guard_mode = region ? HAL_GUARD_REGION : HAL_GUARD_PROTECT;

    long budget = compute_budget();
    if (fixed != NULL && fixed[0] != '\0') {
        char *end;
        long n = strtol(fixed, &end, 10);
        if (*end == '\0' && n >= 0) {
            budget = n;
            budget_fixed = true;
        }
    }
    atomic_store_explicit(&protect_budget, budget, memory_order_relaxed);
}

/* Region when the probe proved it works (and madvise succeeds here: it
 * fails on mlock'ed memory); else protect while the budget lasts; else
 * none. Thread-safe; never blocks, except that the first call probes and
 * a call that finds the budget spent may reread /proc/self/maps. */
enum hal_guard_kind hal_mem_guard(void *addr, size_t size)
{
    pthread_once(&probe_once, probe);
    if (guard_mode == HAL_GUARD_NONE)
        return HAL_GUARD_NONE;
    if (guard_mode == HAL_GUARD_REGION && madvise(addr, size, MADV_GUARD_INSTALL) == 0)
        return HAL_GUARD_REGION;
    if (!budget_take())
        return HAL_GUARD_NONE;
    if (mprotect(addr, size, PROT_NONE) == 0)
        return HAL_GUARD_PROTECT;
    /* Out of mappings before the budget said so (the host mapped more
     * since the last count): stop trying until the next recount. */
    atomic_store_explicit(&protect_budget, 0, memory_order_relaxed);
    return HAL_GUARD_NONE;
}
