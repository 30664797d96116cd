/*
 * stack.c — task stacks: reserved in big arenas, each with a guard page
 * below it, cached per proc and pooled centrally, given back at k_mem_fini.
 * (Go: stack.go's stackpool and stackcache, with stackcacherefill and
 * stackcacherelease moving half a cache at a time. Go's stacks start small
 * and are copied when the function prologue finds them too short; C code
 * cannot be moved, so a weft stack has its full size from the start and an
 * overflow hits a guard page instead, which kern_fault reports by task.)
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
 * Measured with a million parked tasks (see the report in docs/): also
 * discarding the top page costs about 2.5 us more per task when the burst
 * ends (freeing the page and a TLB shootdown in every madvise) and makes
 * every reuse fault the page in again; discarding on every free costs a
 * system call per task exit. Returning the top pages of a large idle pool
 * is left to a scavenger (Go's background scavenger), not written yet.
 *
 * Lock order: pool.lock is a leaf (lock.h); while holding it this file
 * calls only hal_mem_reserve/commit (a new arena, rarely). System calls
 * per stack (guards, discards) are made outside it.
 */
#include "kern/alloc.h"
#include "kern/lock.h"

#define STACK_DEFAULT ((size_t)256 << 10)
/* Smallest usable size handed out: a signal frame (preemption runs a
 * handler on the task's stack) takes several KiB with AVX-512 or SVE. */
#define STACK_MIN ((size_t)16 << 10)
#define STACK_MAX ((size_t)1 << 40)

#define ARENA_FIRST 16u /* stacks in a run's first arena; each next one doubles */
#define ARENA_MAX_STACKS 1024u
#define ARENA_MAX_BYTES ((size_t)256 << 20)

#define HOT_BYTES ((size_t)16 << 20) /* the hot list holds this much stack */
#define HOT_MIN 8u
#define HOT_MAX 256u

#define COLD_CHUNK ((size_t)64 << 10)
#define BATCH (K_STACK_CACHE / 2) /* stacks moved between a cache and the pool */

#define REGION_MAGIC 0x6b737461636b2121ull
#define KIND_MASK ((uintptr_t)7) /* a descriptor is lo | guard kind */

/* The first page of every stack reservation. */
struct region {
    uint64_t magic;
    struct region *next, *prev; /* pool.regions (pool.lock) */
    size_t size;                /* bytes of the reservation */
    uint32_t nstacks;           /* 1 for a stack of its own size */
    uint32_t ncarved;           /* stacks cut out so far (pool.lock) */
};

/* A chunk of the cold store: descriptors of free, discarded stacks. */
struct cold_chunk {
    struct cold_chunk *prev; /* the chunk below (fuller) */
    size_t n;                /* descriptors in d[]; >= 1 while in the store */
    uintptr_t d[];
};

static struct {
    /* Set by k_stack_init, read-only during the run: */
    size_t page;
    size_t guard;   /* bytes of guard below each stack */
    size_t usable;  /* the default usable size */
    size_t stride;  /* guard + usable: the distance between stacks in an arena */
    uint32_t hot_cap;
    size_t cold_cap; /* descriptors per cold chunk */

    /* Rank: stack pool, a leaf (nothing is locked after it). Protects the
     * fields below. */
    struct k_lock lock;
    struct region *regions;  /* every reservation, arenas and own-size stacks */
    struct region *carving;  /* the arena new default stacks are cut from */
    uint32_t next_arena;     /* stacks in the next arena */
    uint32_t nhot;
    uintptr_t hot[HOT_MAX];  /* free stacks as they were left; LIFO */
    struct cold_chunk *cold; /* free stacks, discarded; top chunk */
    struct cold_chunk *spare; /* one empty chunk kept to avoid churn */
    size_t ncold;
} pool;

/* Stacks created this run, by guard kind (enum hal_guard_kind). Atomic:
 * bumped by any thread carving a stack, read by weft_stats. */
static _Atomic uint64_t counts[3];
/* Set once the run has printed its warning about an unguarded stack. */
static _Atomic bool warned;

/* ---- Descriptors and guards ---- */

static inline uintptr_t desc_of(const struct k_stack *s)
{
    return (uintptr_t)s->lo | s->guard_kind;
}

static inline void stack_of(uintptr_t d, struct k_stack *out)
{
    out->lo = (char *)(d & ~KIND_MASK);
    out->hi = out->lo + pool.stride;
    out->guard = pool.guard;
    out->guard_kind = (uint8_t)(d & KIND_MASK);
}

/* Installs the guard of a stack being created at lo and fills *out. */
static void guard_new(char *lo, size_t usable, struct k_stack *out)
{
    enum hal_guard_kind kind = hal_mem_guard(lo, pool.guard);
    k_check(kind == HAL_GUARD_NONE || kind == HAL_GUARD_REGION ||
            kind == HAL_GUARD_PROTECT);
    atomic_fetch_add_explicit(&counts[kind], 1, memory_order_relaxed);
    if (kind == HAL_GUARD_NONE &&
        !atomic_exchange_explicit(&warned, true, memory_order_relaxed))
        k_print("weft: warning: no guard page could be installed below a task "
                "stack (out of mappings?); a stack overflow will corrupt memory "
                "silently. weft_stats counts such stacks (stacks_unguarded).\n");
    out->lo = lo;
    out->hi = lo + pool.guard + usable;
    out->guard = pool.guard;
    out->guard_kind = (uint8_t)kind;
}

/* ---- DEBUG: a freed stack's top word carries a tag ---- */

#ifdef WEFT_DEBUG
#define STACK_TAG(s) (0x6b66726565737461ull ^ (uint64_t)(uintptr_t)(s)->lo)

static void debug_free(const struct k_stack *s)
{
    uint64_t *top = (uint64_t *)s->hi - 1;
    if (*top == STACK_TAG(s)) {
        k_print("weft: k_stack_free: stack [%p, %p) freed twice\n", s->lo, s->hi);
        k_panic("double free of a stack");
    }
    *top = STACK_TAG(s);
}

static void debug_alloc(const struct k_stack *s)
{
    *((uint64_t *)s->hi - 1) = 0;
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
    r->prev = NULL;
    r->next = pool.regions;
    if (r->next)
        r->next->prev = r;
    pool.regions = r;
}

/* Reserves and commits header + n stacks' worth of address space, or NULL. */
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
        uint32_t n = pool.next_arena;
        size_t max = ARENA_MAX_BYTES / pool.stride;
        if (n > max)
            n = max > 0 ? (uint32_t)max : 1;
        r = region_new(pool.page + n * pool.stride);
        if (r == NULL && n > 1) { /* short of address space: try one stack */
            n = 1;
            r = region_new(pool.page + pool.stride);
        }
        if (r == NULL) {
            k_unlock(&pool.lock);
            return HAL_ENOMEM;
        }
        region_link(r, pool.page + n * pool.stride, n);
        pool.carving = r;
        if (pool.next_arena < ARENA_MAX_STACKS)
            pool.next_arena *= 2;
    }
    uint32_t i = r->ncarved++;
    k_unlock(&pool.lock);
    guard_new((char *)r + pool.page + i * pool.stride, pool.usable, out);
    return 0;
}

/* ---- The pool: hot list and cold store ---- */

/* Pushes a descriptor onto the cold store (pool.lock held). false when no
 * chunk could be had: the stack then stays out of circulation until
 * k_mem_fini releases its arena. */
static bool cold_push(uintptr_t d)
{
    struct cold_chunk *c = pool.cold;
    if (c == NULL || c->n == pool.cold_cap) {
        size_t bytes = K_MAX(COLD_CHUNK, pool.page);
        if (pool.spare) {
            c = pool.spare;
            pool.spare = NULL;
        } else {
            c = k_mem_reserve(bytes, pool.page);
            if (c == NULL)
                return false;
            if (hal_mem_commit(c, bytes) != 0) {
                k_mem_release(c, bytes);
                return false;
            }
        }
        c->prev = pool.cold;
        c->n = 0;
        pool.cold = c;
    }
    c->d[c->n++] = d;
    pool.ncold++;
    return true;
}

/* Pops a descriptor from the non-empty cold store (pool.lock held). */
static uintptr_t cold_pop(void)
{
    struct cold_chunk *c = pool.cold;
    uintptr_t d = c->d[--c->n];
    pool.ncold--;
    if (c->n == 0) {
        pool.cold = c->prev;
        if (pool.spare)
            k_mem_release(pool.spare, K_MAX(COLD_CHUNK, pool.page));
        pool.spare = c;
    }
    return d;
}

/* Takes up to want free stacks from the pool, warmest first (hot list,
 * then cold store). Returns how many. */
static uint32_t pool_take(uintptr_t *d, uint32_t want)
{
    uint32_t n = 0;
    k_lock(&pool.lock);
    while (n < want && pool.nhot > 0)
        d[n++] = pool.hot[--pool.nhot];
    while (n < want && pool.cold != NULL)
        d[n++] = cold_pop();
    k_unlock(&pool.lock);
    return n;
}

/* Gives n free stacks to the pool: into the hot list while it has room,
 * the rest discarded (outside the lock) and into the cold store. */
static void pool_put(const uintptr_t *d, uint32_t n)
{
    uint32_t i = 0;
    k_lock(&pool.lock);
    while (i < n && pool.nhot < pool.hot_cap)
        pool.hot[pool.nhot++] = d[i++];
    k_unlock(&pool.lock);
    if (i == n)
        return;
    for (uint32_t j = i; j < n; j++)
        (void)hal_mem_discard((char *)(d[j] & ~KIND_MASK) + pool.guard, pool.usable);
    k_lock(&pool.lock);
    while (i < n && cold_push(d[i]))
        i++;
    k_unlock(&pool.lock);
}

/* ---- Default-size stacks: proc cache, then pool, then a new one ---- */

static int default_alloc(struct k_stack *out)
{
    struct k_stack_cache *c = k_stack_cache_self();
    if (c != NULL) {
        if (c->n == 0) {
            uintptr_t d[BATCH];
            uint32_t got = pool_take(d, BATCH);
            /* The warmest (d[0]) goes on top, to be used first. */
            while (got > 0)
                stack_of(d[--got], &c->stacks[c->n++]);
        }
        if (c->n > 0) {
            *out = c->stacks[--c->n];
            debug_alloc(out);
            return 0;
        }
    } else {
        uintptr_t d;
        if (pool_take(&d, 1) == 1) {
            stack_of(d, out);
            debug_alloc(out);
            return 0;
        }
    }
    return carve(out);
}

/* Moves the older half of a full cache to the pool. */
static K_NOINLINE void cache_spill(struct k_stack_cache *c)
{
    uintptr_t d[BATCH];
    for (uint32_t i = 0; i < BATCH; i++)
        d[i] = desc_of(&c->stacks[i]);
    memmove(&c->stacks[0], &c->stacks[BATCH], (c->n - BATCH) * sizeof c->stacks[0]);
    c->n -= BATCH;
    pool_put(d, BATCH);
}

static void default_free(struct k_stack *s)
{
    struct k_stack_cache *c = k_stack_cache_self();
    if (c != NULL) {
        if (c->n == K_STACK_CACHE)
            cache_spill(c);
        c->stacks[c->n++] = *s;
        return;
    }
    uintptr_t d = desc_of(s);
    pool_put(&d, 1);
}

void k_stack_cache_flush(struct k_stack_cache *c)
{
    uintptr_t d[K_STACK_CACHE];
    for (uint32_t i = 0; i < c->n; i++)
        d[i] = desc_of(&c->stacks[i]);
    /* Newest last in the cache, but pool_put fills the hot list from the
     * front: reverse, so the warmest stay hot. */
    for (uint32_t i = 0; i < c->n / 2; i++) {
        uintptr_t t = d[i];
        d[i] = d[c->n - 1 - i];
        d[c->n - 1 - i] = t;
    }
    pool_put(d, c->n);
    c->n = 0;
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
    if (r->prev)
        r->prev->next = r->next;
    else
        pool.regions = r->next;
    if (r->next)
        r->next->prev = r->prev;
    k_unlock(&pool.lock);
    r->magic = 0;
    k_mem_release(r, r->size);
}

/* ---- The API ---- */

int k_stack_alloc(size_t size, struct k_stack *out)
{
    k_assert(pool.usable != 0); /* k_stack_init was called */
    if (size == 0)
        return default_alloc(out);
    if (size > STACK_MAX)
        return HAL_ENOMEM;
    size_t usable = K_ROUND_UP(K_MAX(size, STACK_MIN), pool.page);
    if (usable == pool.usable)
        return default_alloc(out);
    return own_alloc(usable, out);
}

void k_stack_free(struct k_stack *s)
{
    if (s->lo == NULL)
        return;
    k_assert(s->guard == pool.guard);
    debug_free(s);
    if ((size_t)(s->hi - s->lo) == pool.stride)
        default_free(s);
    else
        own_free(s);
}

void k_stack_counts(uint64_t *region, uint64_t *protect, uint64_t *none)
{
    *region = atomic_load_explicit(&counts[HAL_GUARD_REGION], memory_order_relaxed);
    *protect = atomic_load_explicit(&counts[HAL_GUARD_PROTECT], memory_order_relaxed);
    *none = atomic_load_explicit(&counts[HAL_GUARD_NONE], memory_order_relaxed);
}

void k_stack_init(size_t default_size)
{
    k_stack_fini(); /* nothing left from an earlier run, normally */
    pool.page = hal_page_size();
    pool.guard = pool.page;
    if (default_size == 0)
        default_size = STACK_DEFAULT;
    if (default_size > STACK_MAX)
        default_size = STACK_MAX;
    pool.usable = K_ROUND_UP(K_MAX(default_size, STACK_MIN), pool.page);
    pool.stride = pool.guard + pool.usable;
    size_t hot = HOT_BYTES / pool.stride;
    pool.hot_cap = (uint32_t)K_MIN(K_MAX(hot, (size_t)HOT_MIN), (size_t)HOT_MAX);
    pool.cold_cap = (K_MAX(COLD_CHUNK, pool.page) - sizeof(struct cold_chunk)) /
                    sizeof(uintptr_t);
    pool.next_arena = ARENA_FIRST;
    for (int i = 0; i < 3; i++)
        atomic_store_explicit(&counts[i], 0, memory_order_relaxed);
    atomic_store_explicit(&warned, false, memory_order_relaxed);
}

void k_stack_fini(void)
{
    size_t chunk = K_MAX(COLD_CHUNK, pool.page);
    while (pool.cold != NULL) {
        struct cold_chunk *c = pool.cold;
        pool.cold = c->prev;
        k_mem_release(c, chunk);
    }
    if (pool.spare != NULL)
        k_mem_release(pool.spare, chunk);
    while (pool.regions != NULL) {
        struct region *r = pool.regions;
        pool.regions = r->next;
        k_mem_release(r, r->size);
    }
    memset(&pool, 0, sizeof pool); /* zero: every lock unlocked, lists empty */
}
