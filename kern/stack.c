/* SPDX-License-Identifier: MIT */
/*
 * stack.c — task stacks: reserved in big arenas, each with a guard page
 * below it, cached per proc and pooled centrally, given back at k_stack_fini.
 * (Go: stack.go's stackpool and stackcache, with stackcacherefill and
 * stackcacherelease moving half a cache at a time. Go's stacks start small
 * and are copied when the function prologue finds them too short; C code
 * cannot be moved, so a weft stack has its full size from the start and an
 * overflow hits a guard page instead, which kern_fault reports by task.)
 *
 * Preemption headroom. An asynchronous preemption leaves its signal frame
 * on the task's stack for as long as the task is switched out
 * (docs/design.md "Preemption in C"), so that frame is weft's use of the
 * stack, not the task's: every stack gets hal_preempt_headroom() bytes on
 * top of the size asked for (the default included), and a task keeps the
 * room it asked for whatever the machine. The headroom is the machine's,
 * measured by the port: a fixed allowance did not fit arm64 with SVE, whose
 * frame grows with the vector length (13.6 KiB at 2048 bits, more than a
 * 16 KiB stack could spare).
 *
 * Layout. Every reservation starts with one header page (struct region),
 * then its stacks, laid out upward, each [guard][usable]:
 *
 *   | header | guard | usable 0 | guard | usable 1 | ... | guard | usable n-1 |
 *                    ^lo+guard  ^hi = next stack's lo
 *
 * A stack grows down from hi toward its own guard, so an overflow of stack
 * i lands in stack i's guard, never in stack i-1. Stacks of the default
 * size come from arenas of 16 stacks for a run's first arena, doubling up
 * to 1024 (or 256 MiB); an arena is committed whole at once (on Linux a
 * MAP_NORESERVE mapping: pages arrive on first touch, so this costs
 * nothing up front) and each stack's guard is installed when the stack is
 * first carved out. Other sizes get a reservation of their own with the
 * same layout (n = 1), released when the stack is freed.
 *
 * Guards scale only without a mapping per stack. One mmap or one mprotect
 * per stack runs into vm.max_map_count (65,530) near 32k stacks; carving
 * from arenas and guarding with hal_mem_guard (MADV_GUARD_INSTALL, no
 * mapping at all, where the HAL proved it works; mprotect within a budget
 * otherwise) is what lets 1,000,000 tasks park. A stack never loses its
 * guard silently: hal_mem_guard's answer is kept in k_stack.guard_kind,
 * counted (k_stack_counts, weft_stats), and the first unguarded stack of a
 * run prints a warning.
 *
 * Reuse, from warm to cold:
 *   1. the proc's cache (struct k_stack_cache, K_STACK_CACHE stacks, no
 *      lock); full: the older half goes to the pool; empty: half a cache
 *      comes from the pool;
 *   2. the pool, one LIFO list threaded through the top page of each free
 *      stack. Up to HOT_BYTES of its stacks are kept as they were left, so
 *      that stacks flowing from one proc to another (spawned here, exiting
 *      there) cost no system call. Every other stack entering the pool has
 *      its pages below the top one discarded (hal_mem_discard): a burst of
 *      a million tasks keeps one page each (4 GiB for a million 4 KiB
 *      pages), not the pages they touched, and the common reuse finds its
 *      top page, where the task starts, still there.
 * Rejected: discarding the top page too, which makes the end of a burst
 * slower (the madvise then frees a page and shoots down TLBs, for every
 * task: docs/benchmarks.md, "Figures behind the code") and every reuse
 * fault the page in again; discarding on every free, which costs a system
 * call per task exit. Returning the top pages of a large idle pool is left to a
 * scavenger (Go's background scavenger), not written yet.
 *
 * Lock order: pool.lock is a leaf (lock.h); while holding it this file
 * calls only hal_mem_reserve/commit (a new arena, rarely). System calls
 * per stack (guards, discards) are made outside it.
 */
#include "kern/alloc.h"
#include "kern/ktest.h"
#include "kern/list.h"
#include "kern/lock.h"

#define STACK_DEFAULT ((size_t)256 << 10)
/* Smallest size a task gets for its own code; the preemption headroom
 * comes on top (see the top). */
#define STACK_MIN ((size_t)16 << 10)
#define STACK_MAX ((size_t)1 << 40)

#define ARENA_FIRST 16u /* stacks in a run's first arena; each next one doubles */
#define ARENA_MAX_STACKS 1024u
#define ARENA_MAX_BYTES ((size_t)256 << 20)

#define HOT_BYTES ((size_t)16 << 20) /* the pool keeps this much stack undiscarded */
#define HOT_MIN 8u
#define BATCH (K_STACK_CACHE / 2) /* stacks moved between a cache and the pool */

#define REGION_MAGIC 0x6b737461636b2121ull

/* The first page of every stack reservation. */
struct region {
    uint64_t magic;
    struct k_link link; /* on pool.regions (pool.lock) */
    size_t size;        /* bytes of the reservation */
    uint32_t nstacks;   /* 1 for a stack of its own size */
    uint32_t ncarved;   /* stacks cut out so far (pool.lock) */
    /* Keepers (k_stack_keep): threads abandoned in a blocking call on one
     * of its stacks, plus REGION_RUN_GONE once k_stack_fini has let it go.
     * Whoever takes it to exactly REGION_RUN_GONE releases it (acq_rel
     * read-modify-writes: each side's last use of the region comes before
     * its own and after the other's). */
    _Atomic uint32_t keep;
};
#define REGION_RUN_GONE 0x80000000u

/* A free stack in the pool: this sits at its top, hi - POOLED_AT. Owned by
 * the pool (pool.lock) while the stack is in it. */
struct pooled {
    struct pooled *next;
    uint8_t guard_kind;
    bool discarded; /* pages below the top one were given back */
};
#define POOLED_AT 16
K_STATIC_ASSERT(sizeof(struct pooled) <= POOLED_AT, "pool node fits the top");

static struct {
    /* Set by k_stack_init, read-only during the run: */
    size_t page;
    size_t guard;    /* bytes of guard below each stack */
    size_t headroom; /* added to every size asked for: preemption's frames */
    size_t usable;   /* the default usable size (headroom included) */
    size_t stride;   /* guard + usable: the distance between stacks in an arena */
    size_t hot_cap;  /* undiscarded stacks the pool may hold */

    /* Rank: stack pool, a leaf (nothing is locked after it). Protects the
     * fields below. */
    struct k_lock lock;
    struct k_list regions;  /* every reservation, arenas and own-size stacks */
    struct region *carving; /* the arena new default stacks are cut from */
    uint32_t next_arena;    /* stacks in the next arena */
    struct pooled *free;    /* free default stacks, LIFO */
    size_t nhot;            /* free stacks not discarded */
} pool;

/* Stacks created this run, by guard kind (enum hal_guard_kind). Atomic:
 * bumped by any thread carving a stack, read by weft_stats. Statistics:
 * every access is relaxed. */
static _Atomic uint64_t counts[3];
/* Set once the run has printed its warning about an unguarded stack.
 * Relaxed: the exchange only picks one thread to print; it publishes
 * nothing. */
static _Atomic bool warned;

/* ---- Guards ---- */

/* Installs the guard of a stack being created at lo and fills *out. */
static void guard_new(char *lo, size_t usable, struct k_stack *out)
{
    enum hal_guard_kind kind = hal_mem_guard(lo, pool.guard);
    k_check(kind == HAL_GUARD_NONE || kind == HAL_GUARD_REGION || kind == HAL_GUARD_PROTECT);
    atomic_fetch_add_explicit(&counts[kind], 1, memory_order_relaxed);
    if (kind == HAL_GUARD_NONE && !atomic_exchange_explicit(&warned, true, memory_order_relaxed))
        k_print("weft: warning: no guard page could be installed below a task "
                "stack (out of mappings?); a stack overflow will corrupt memory "
                "silently. weft_stats counts such stacks (stacks_unguarded).\n");
    out->lo = lo;
    out->hi = lo + pool.guard + usable;
    out->guard = pool.guard;
    out->guard_kind = (uint8_t)kind;
    hal_stack_register(lo + pool.guard, out->hi);
}

/* ---- DEBUG: a freed stack carries a tag just below its pool node ---- */

#ifdef WEFT_DEBUG
#define STACK_TAG(s) (0x6b66726565737461ull ^ (uint64_t)(uintptr_t)(s)->lo)
#define TAG_AT(s) ((uint64_t *)((s)->hi - POOLED_AT) - 1)

static void debug_free(const struct k_stack *s)
{
    if (*TAG_AT(s) == STACK_TAG(s)) {
        k_print("weft: k_stack_free: stack [%p, %p) freed twice\n", s->lo, s->hi);
        k_panic("double free of a stack");
    }
    *TAG_AT(s) = STACK_TAG(s);
}

static void debug_alloc(const struct k_stack *s)
{
    *TAG_AT(s) = 0;
}
#else
#define debug_free(s) ((void)0)
#define debug_alloc(s) ((void)0)
#endif

/* ---- Regions ---- */

/* Links a new region's header (pool.lock held). */
static void region_link(struct region *r, size_t size, uint32_t nstacks)
{
    r->magic = REGION_MAGIC;
    r->size = size;
    r->nstacks = nstacks;
    r->ncarved = 0;
    atomic_store_explicit(&r->keep, 0, memory_order_relaxed);
    k_list_push(&pool.regions, &r->link);
}

/* Reserves and commits bytes for a region, or NULL. */
static struct region *region_new(size_t bytes)
{
    char *base = k_mem_reserve(bytes, pool.page);
    if (base == NULL)
        return NULL;
    if (hal_mem_commit(base, bytes) != 0) {
        k_mem_release(base, bytes);
        return NULL;
    }
    return (struct region *)base;
}

/* Cuts a new default stack out of the current arena, starting a new arena
 * when it is full. 0 or HAL_ENOMEM. */
static int carve(struct k_stack *out)
{
    k_lock(&pool.lock);
    struct region *r = pool.carving;
    if (r == NULL || r->ncarved == r->nstacks) {
        size_t n = K_MIN((size_t)pool.next_arena, ARENA_MAX_BYTES / pool.stride);
        if (n == 0)
            n = 1;
        r = region_new(pool.page + n * pool.stride);
        if (r == NULL && n > 1) { /* short of address space: try one stack */
            n = 1;
            r = region_new(pool.page + pool.stride);
        }
        if (r == NULL) {
            k_unlock(&pool.lock);
            return HAL_ENOMEM;
        }
        region_link(r, pool.page + n * pool.stride, (uint32_t)n);
        pool.carving = r;
        if (pool.next_arena < ARENA_MAX_STACKS)
            pool.next_arena *= 2;
    }
    uint32_t i = r->ncarved++;
    k_unlock(&pool.lock);
    guard_new((char *)r + pool.page + i * pool.stride, pool.usable, out);
    return 0;
}

/* ---- The pool ---- */

static inline struct pooled *node_of(const struct k_stack *s)
{
    return (struct pooled *)(s->hi - POOLED_AT);
}

/* Pushes s onto the pool (pool.lock held). */
static inline void pool_push(const struct k_stack *s, bool discarded)
{
    struct pooled *p = node_of(s);
    p->next = pool.free;
    p->guard_kind = s->guard_kind;
    p->discarded = discarded;
    pool.free = p;
}

/* Takes up to want free stacks from the pool, most recently freed first.
 * Returns how many. */
static uint32_t pool_take(struct k_stack *out, uint32_t want)
{
    uint32_t n = 0;
    k_lock(&pool.lock);
    for (; n < want && pool.free != NULL; n++) {
        struct pooled *p = pool.free;
        pool.free = p->next;
        if (!p->discarded)
            pool.nhot--;
        out[n].hi = (char *)p + POOLED_AT;
        out[n].lo = out[n].hi - pool.stride;
        out[n].guard = pool.guard;
        out[n].guard_kind = p->guard_kind;
    }
    k_unlock(&pool.lock);
    return n;
}

/* Gives n free stacks to the pool: as they are while it holds fewer than
 * hot_cap such, the rest with their pages below the top one discarded
 * first (outside the lock: nobody can take them before they are pushed). */
static void pool_put(const struct k_stack *s, uint32_t n)
{
    uint32_t i = 0;
    k_lock(&pool.lock);
    for (; i < n && pool.nhot < pool.hot_cap; i++, pool.nhot++)
        pool_push(&s[i], false);
    k_unlock(&pool.lock);
    if (i == n)
        return;
    if (pool.usable > pool.page)
        for (uint32_t j = i; j < n; j++)
            (void)hal_mem_discard(s[j].lo + pool.guard, pool.usable - pool.page);
    k_lock(&pool.lock);
    for (; i < n; i++)
        pool_push(&s[i], true);
    k_unlock(&pool.lock);
}

/* ---- Default-size stacks: proc cache, then pool, then a new one ---- */

static int default_alloc(struct k_stack_cache *c, struct k_stack *out)
{
    if (c != NULL) {
        if (c->n == 0) {
            struct k_stack got[BATCH];
            uint32_t n = pool_take(got, BATCH);
            /* The most recently freed (got[0]) goes on top, to be used first. */
            while (n > 0)
                c->stacks[c->n++] = got[--n];
        }
        if (c->n > 0) {
            *out = c->stacks[--c->n];
            debug_alloc(out);
            return 0;
        }
    } else if (pool_take(out, 1) == 1) {
        debug_alloc(out);
        return 0;
    }
    return carve(out);
}

/* Moves the older half of a full cache to the pool. */
static K_NOINLINE void cache_spill(struct k_stack_cache *c)
{
    struct k_stack old[BATCH];
    memcpy(old, c->stacks, sizeof old);
    memmove(&c->stacks[0], &c->stacks[BATCH], (c->n - BATCH) * sizeof c->stacks[0]);
    c->n -= BATCH;
    /* pool_put keeps the first ones hot: give the newer ones first. */
    struct k_stack rev[BATCH];
    for (uint32_t i = 0; i < BATCH; i++)
        rev[i] = old[BATCH - 1 - i];
    pool_put(rev, BATCH);
}

static void default_free(struct k_stack_cache *c, struct k_stack *s)
{
    if (c != NULL) {
        if (c->n == K_STACK_CACHE)
            cache_spill(c);
        c->stacks[c->n++] = *s;
        return;
    }
    pool_put(s, 1);
}

/* ---- Stacks of their own size ---- */

static int own_alloc(size_t usable, struct k_stack *out)
{
    size_t bytes = pool.page + pool.guard + usable;
    struct region *r = region_new(bytes);
    if (r == NULL)
        return HAL_ENOMEM;
    k_lock(&pool.lock);
    region_link(r, bytes, 1);
    r->ncarved = 1;
    k_unlock(&pool.lock);
    guard_new((char *)r + pool.page, usable, out);
    return 0;
}

static void own_free(struct k_stack *s)
{
    struct region *r = (struct region *)(s->lo - pool.page);
    if (r->magic != REGION_MAGIC || r->nstacks != 1) {
        k_print("weft: k_stack_free: [%p, %p) is not a stack\n", s->lo, s->hi);
        k_panic("bad k_stack_free");
    }
    k_lock(&pool.lock);
    k_list_remove(&pool.regions, &r->link);
    k_unlock(&pool.lock);
    r->magic = 0;
    k_mem_release(r, r->size);
}

/* ---- The API ---- */

int k_stack_alloc(struct k_stack_cache *c, size_t size, struct k_stack *out)
{
    k_assert(pool.usable != 0); /* k_stack_init was called */
    if (size == 0)
        return default_alloc(c, out);
    if (size > STACK_MAX)
        return HAL_ENOMEM;
    size_t usable = K_ROUND_UP(K_MAX(size, STACK_MIN) + pool.headroom, pool.page);
    if (usable == pool.usable)
        return default_alloc(c, out);
    return own_alloc(usable, out);
}

bool k_stack_is_default(const struct k_stack *s)
{
    return s->lo != NULL && (size_t)(s->hi - s->lo) == pool.stride;
}

void k_stack_free(struct k_stack_cache *c, struct k_stack *s)
{
    if (s->lo == NULL)
        return;
    k_assert(s->guard == pool.guard);
    debug_free(s);
    if (k_stack_is_default(s))
        default_free(c, s);
    else
        own_free(s);
}

/* ---- Looking at another task's stack (the dump) ----
 *
 * A default stack lives in an arena, which stays mapped until the run
 * ends, whatever happens to the task on it. A stack of its own size is
 * released when its task ends (own_free), so a reader from another thread
 * holds pool.lock while it reads, after checking that the reservation is
 * still listed and still as large: own_free unlists it under that lock
 * before it releases it. A trylock, bounded: the caller may be a signal
 * handler on a thread that holds the lock already. */

bool k_stack_peek_begin(const struct k_stack *s)
{
    if (s->lo == NULL)
        return false;
    if (k_stack_is_default(s))
        return true;
    bool locked = false;
    for (int i = 0; i < 1000 && !(locked = k_trylock(&pool.lock)); i++)
        hal_cpu_relax();
    if (!locked)
        return false;
    for (struct k_link *n = pool.regions.first; n != NULL; n = n->next) {
        struct region *r = K_LIST_ENTRY(n, struct region, link);
        if (r->nstacks == 1 && s->lo == (char *)r + pool.page && s->hi <= (char *)r + r->size)
            return true;
    }
    k_unlock(&pool.lock);
    return false;
}

void k_stack_peek_end(const struct k_stack *s)
{
    if (!k_stack_is_default(s))
        k_unlock(&pool.lock);
}

void k_stack_counts(uint64_t *region, uint64_t *protect, uint64_t *none)
{
    *region = atomic_load_explicit(&counts[HAL_GUARD_REGION], memory_order_relaxed);
    *protect = atomic_load_explicit(&counts[HAL_GUARD_PROTECT], memory_order_relaxed);
    *none = atomic_load_explicit(&counts[HAL_GUARD_NONE], memory_order_relaxed);
}

void k_stack_init(size_t default_size, size_t headroom)
{
    k_stack_fini(); /* nothing left from an earlier run, normally */
    pool.page = hal_page_size();
    pool.guard = pool.page * HAL_STACK_GUARD_PAGES;
    if (default_size == 0)
        default_size = STACK_DEFAULT;
    if (default_size > STACK_MAX)
        default_size = STACK_MAX;
    pool.headroom = headroom;
    pool.usable = K_ROUND_UP(K_MAX(default_size, STACK_MIN) + headroom, pool.page);
    pool.stride = pool.guard + pool.usable;
    pool.hot_cap = K_MAX(HOT_BYTES / pool.stride, (size_t)HOT_MIN);
    pool.next_arena = ARENA_FIRST;
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&counts[i], 0, memory_order_relaxed);
    atomic_store_explicit(&warned, false, memory_order_relaxed);
}

/* ---- Stacks of threads abandoned in blocking calls ----
 *
 * weft_run may return while a task is inside a blocking call (runtime.c):
 * its thread is still running on the task's stack, and will run on it
 * again when the call returns, so the reservation that holds that stack
 * must outlive the run. It is kept whole (an arena with its other stacks:
 * carving the one stack out is not worth it for a rare event; only pages
 * that were touched cost memory), and released by whichever comes last:
 * the run's end (k_stack_fini) or the last of its abandoned threads
 * (k_stack_unkeep). */

void *k_stack_keep(const struct k_stack *s)
{
    k_lock(&pool.lock);
    struct region *r = NULL;
    for (struct k_link *n = pool.regions.first; n != NULL && r == NULL; n = n->next) {
        struct region *x = K_LIST_ENTRY(n, struct region, link);
        if (s->lo >= (char *)x && s->lo < (char *)x + x->size)
            r = x;
    }
    if (r != NULL)
        atomic_fetch_add_explicit(&r->keep, 1, memory_order_relaxed);
    k_unlock(&pool.lock);
    if (r == NULL) {
        k_print("weft: k_stack_keep: [%p, %p) is not a stack\n", s->lo, s->hi);
        k_panic("bad k_stack_keep");
    }
    return r;
}

void k_stack_unkeep(void *region)
{
    struct region *r = region;
    size_t size = r->size; /* before the decrement: after it, r may be gone */
    if (atomic_fetch_sub_explicit(&r->keep, 1, memory_order_acq_rel) == (REGION_RUN_GONE | 1))
        hal_mem_release(r, size);
}

void k_stack_fini(void)
{
    for (struct k_link *n; (n = k_list_pop(&pool.regions)) != NULL;) {
        struct region *r = K_LIST_ENTRY(n, struct region, link);
        /* Acquire: pairs with a keeper's decrement (k_stack_unkeep), which
         * comes after that thread's last use of its stack. */
        if (atomic_load_explicit(&r->keep, memory_order_acquire) == 0) {
            k_mem_release(r, r->size);
            continue;
        }
        /* Kept: from here on the keepers' (k_stack_keep), not the run's. */
        size_t size = r->size;
        k_mem_forget(size);
        if (atomic_fetch_add_explicit(&r->keep, REGION_RUN_GONE, memory_order_acq_rel) == 0)
            hal_mem_release(r, size); /* the last keeper left since the load */
    }
    memset(&pool, 0, sizeof pool); /* zero: the lock unlocked, lists empty */
}

/* ---- White-box hooks for the tests (kern/ktest.h) ---- */

uint32_t k_stack_pooled(uint32_t *hot)
{
    uint32_t n = 0;
    k_lock(&pool.lock);
    for (struct pooled *p = pool.free; p != NULL; p = p->next)
        n++;
    *hot = (uint32_t)pool.nhot;
    k_unlock(&pool.lock);
    return n;
}
