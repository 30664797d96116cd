/* SPDX-License-Identifier: MIT */
/*
 * alloc.c — kern's allocator: small objects in size classes, large objects
 * straight from pages, everything given back by k_mem_fini. (Go: malloc.go,
 * mcache.go, mcentral.go, mheap.go, sizeclasses.go; much simplified.)
 *
 * Three layers, each a cache in front of the one below:
 *
 *   per-proc cache (struct k_mcache)   no lock, no atomic: a free list per class
 *        |  batches of about 32 KiB (2 to 32 objects)
 *   central list, one per class        its own k_lock: objects given back, and
 *        |                              the class's current span, carved lazily
 *        |  spans of 64 KiB (up to 192 KiB for the biggest classes)
 *   heap                               one k_lock: arenas of 64 MiB reserved with
 *                                       hal_mem_reserve, committed 1 MiB at a time
 *
 * k_alloc pops from the calling proc's cache; when that list is empty it
 * takes a batch from the central list, which takes objects given back
 * earlier and then carves new ones from its span, which it gets from the
 * heap. k_free pushes onto the cache; past a high mark (two batches) half
 * of the list goes back to the central list. A thread holding no proc
 * (the lookup given to k_mem_init returns NULL: the runtime starting or
 * stopping, a test) uses the central list directly, one object at a time,
 * under its lock.
 *
 * Large objects (> K_SMALL_MAX) get a reservation each, with a 64-byte
 * header in front that links them into the heap's list, so that k_free
 * releases one at once and k_mem_fini releases the ones still live.
 *
 * Departures from Go, and why:
 * - k_free is given the object's size (kern always knows it), so there is
 *   no page map from address to span and small objects carry no header.
 *   The price: nobody knows when a span or an arena is entirely free, so
 *   small-object memory stays with its class until k_mem_fini (Go's
 *   scavenger returns it). Rejected: a span table per arena to count live
 *   objects; it costs a lookup on every free for memory that a run
 *   usually reuses anyway.
 * - No garbage collector, so spans have no mark bits. A span is only a unit
 *   of carving: objects are cut from it a batch at a time, so memory that
 *   is never used is never touched (and on Linux never backed).
 * - The cache gives half a list back when it grows past its high mark,
 *   instead of keeping whole spans until a GC flushes it.
 *
 * Lock order (lock.h): a central lock is taken before the heap lock, and
 * no other lock is taken while either is held; the only calls made under
 * them are the hal_mem_* calls that reserve or commit more memory.
 *
 * DEBUG (WEFT_DEBUG): a freed small object is filled with 0xDB after its
 * link word, and its second word holds a tag derived from its address;
 * k_free finding the tag panics (double free), k_alloc finding the tag
 * checks the fill (a write after free) and clears it. A recycled object
 * thus comes back 0xDB-filled, so reads of uninitialised memory show.
 */
#include "kern/alloc.h"
#include "kern/ktest.h"
#include "kern/list.h"
#include "kern/lock.h"

/* ---- Size classes ---- */

/*
 * Class sizes: multiples of 16 (so every object is 16-byte aligned), and
 * above 1 KiB multiples of 128 (for the lookup table below). Computed from
 * the top down: each class is the smallest allowed size such that a request
 * one byte above it, rounded up to the next class, wastes at most 1/8 of
 * that class. Below 256 bytes the 16-byte steps are what limits, as in Go.
 */
static const uint16_t class_size[K_NCLASS] = {
    16,    32,    48,    64,    80,    96,    112,   128,   144,   160,  176,  192,
    208,   224,   240,   272,   304,   336,   384,   432,   480,   544,  608,  688,
    784,   896,   1008,  1152,  1280,  1408,  1536,  1664,  1792,  1920, 2176, 2432,
    2688,  3072,  3456,  3840,  4352,  4864,  5504,  6272,  7040,  7936, 8960, 10240,
    11648, 13184, 14976, 17024, 19328, 22016, 25088, 28672, 32768,
};
K_STATIC_ASSERT(K_SMALL_MAX == 32768, "class_size ends at K_SMALL_MAX");

/* size -> class: small_class[(size + 15) / 16] up to 1 KiB, then
 * big_class[(size - 1024 + 127) / 128]. O(1), 314 bytes. */
#define SMALL_LIMIT 1024
#define SMALL_INDEX(size) (((size) + 15) >> 4)
#define BIG_INDEX(size) (((size)-SMALL_LIMIT + 127) >> 7)

#define SPAN_MIN (64 * 1024)    /* a span is a multiple of this */
#define BATCH_BYTES (32 * 1024) /* a cache refill is about this much */
#define BATCH_MAX 32
#define BATCH_MIN 2

#define ARENA_SIZE ((size_t)64 << 20)
#define ARENA_COMMIT ((size_t)1 << 20)    /* commit granularity in an arena */
#define ARENA_MAGIC 0x6b617265616e6121ull /* "!anaerak" */
#define LARGE_MAGIC 0x6b6c61726765216bull
#define LARGE_HDR 64 /* bytes in front of a large object; keeps it 64-aligned */

/* The heap's arenas: a header in the first page, spans after it. */
struct arena {
    uint64_t magic;
    struct arena *next; /* older arenas */
    char *bump;         /* the next span starts here */
    char *committed;    /* [arena, committed) is committed */
    char *end;          /* arena + ARENA_SIZE */
};

/* A large object's header, LARGE_HDR bytes before the object. */
struct large {
    uint64_t magic;
    size_t size;        /* what k_alloc was given */
    size_t reserved;    /* bytes of the reservation, header included */
    struct k_link link; /* on mem.large (heap_lock) */
};
K_STATIC_ASSERT(sizeof(struct large) <= LARGE_HDR, "large header fits");

/* One per class (Go: mcentral), each on its own cache lines. */
struct central {
    /* Rank: alloc central. Taken after channel locks (select), a proc's
     * timers_lock and the poller's locks (lock.h), before heap_lock.
     * Protects the fields below. */
    alignas(K_CACHELINE) struct k_lock lock;
    void *free;      /* objects given back, linked through their first word */
    char *span_next; /* the uncarved part of the class's current span */
    char *span_end;
};

static struct {
    /* Set by k_mem_init, read-only until k_mem_fini: */
    struct k_mcache *(*cache_self)(void); /* NULL: no thread has a cache */
    size_t page;
    uint32_t span_bytes[K_NCLASS];
    uint32_t batch[K_NCLASS]; /* objects per cache refill */
    uint32_t high[K_NCLASS];  /* a cache list past this gives half back */
    uint8_t small_class[SMALL_INDEX(SMALL_LIMIT) + 1];
    uint8_t big_class[BIG_INDEX(K_SMALL_MAX) + 1];

    struct central central[K_NCLASS];

    /* Rank: alloc heap, a leaf (taken after a central lock, nothing taken
     * after it). Protects the fields below. */
    struct k_lock heap_lock;
    struct arena *arenas; /* newest (the one being carved) first */
    struct k_list large;  /* every live large object */
} mem;

/* Bytes reserved through k_mem_reserve and not released. Atomic: updated
 * by any thread, read by weft_stats. A statistic: every access is
 * relaxed. */
static _Atomic uint64_t reserved;

/* The calling thread's proc cache, or NULL (k_mem_init). */
static inline struct k_mcache *cache_self(void)
{
    return mem.cache_self ? mem.cache_self() : NULL;
}

static inline unsigned size_class(size_t size)
{
    if (size <= SMALL_LIMIT)
        return mem.small_class[SMALL_INDEX(size)];
    return mem.big_class[BIG_INDEX(size)];
}

/* ---- Reservations ---- */

void *k_mem_reserve(size_t size, size_t align)
{
    void *p = hal_mem_reserve(size, align);
    if (p)
        atomic_fetch_add_explicit(&reserved, size, memory_order_relaxed);
    return p;
}

void k_mem_release(void *p, size_t size)
{
    hal_mem_release(p, size);
    atomic_fetch_sub_explicit(&reserved, size, memory_order_relaxed);
}

void k_mem_forget(size_t size)
{
    atomic_fetch_sub_explicit(&reserved, size, memory_order_relaxed);
}

uint64_t k_mem_reserved(void)
{
    return atomic_load_explicit(&reserved, memory_order_relaxed);
}

/* ---- DEBUG checks ---- */

#ifdef WEFT_DEBUG
#define FREE_TAG(p) (0x6b66726565646462ull ^ (uint64_t)(uintptr_t)(p))
#define POISON 0xDB

/* Marks a small object free: tag in its second word, 0xDB after it. Panics
 * if it carries the tag already (freed twice). */
static void debug_free(void *p, unsigned cls)
{
    uint64_t *w = p;
    if (((uintptr_t)p & 15) != 0 || w[1] == FREE_TAG(p)) {
        k_print("weft: k_free(%p, class %u of %u bytes): %s\n", p, cls, (unsigned)class_size[cls],
                ((uintptr_t)p & 15) ? "misaligned pointer" : "double free");
        k_panic("bad k_free");
    }
    memset(w + 2, POISON, class_size[cls] - 16);
    w[1] = FREE_TAG(p);
}

/* A small object leaves the free lists: if it was freed before, its fill
 * must be intact. */
static void debug_alloc(void *p, unsigned cls)
{
    uint64_t *w = p;
    if (w[1] != FREE_TAG(p))
        return; /* carved fresh from a span */
    /* All 0xDB: the first is, and each byte equals the next. */
    const unsigned char *b = (const unsigned char *)(w + 2);
    size_t n = class_size[cls] - 16u;
    if (n != 0 && (b[0] != POISON || memcmp(b, b + 1, n - 1) != 0)) {
        size_t i = 0;
        while (b[i] == POISON)
            i++;
        k_print("weft: object %p (class %u of %u bytes) written at offset "
                "%zu after it was freed\n",
                p, cls, (unsigned)class_size[cls], i + 16);
        k_panic("write after free");
    }
    w[1] = 0;
}
#else
#define debug_free(p, cls) ((void)0)
#define debug_alloc(p, cls) ((void)0)
#endif

/* ---- Heap: arenas and spans (Go: mheap) ---- */

/* Returns a fresh span of bytes bytes (a multiple of SPAN_MIN), committed,
 * or NULL when out of memory. Takes heap_lock; may reserve and commit. */
static char *heap_span(size_t bytes)
{
    k_lock(&mem.heap_lock);
    struct arena *a = mem.arenas;
    if (a == NULL || (size_t)(a->end - a->bump) < bytes) {
        char *base = k_mem_reserve(ARENA_SIZE, mem.page);
        if (base == NULL || hal_mem_commit(base, ARENA_COMMIT) != 0) {
            if (base)
                k_mem_release(base, ARENA_SIZE);
            k_unlock(&mem.heap_lock);
            return NULL;
        }
        a = (struct arena *)base;
        a->magic = ARENA_MAGIC;
        a->next = mem.arenas;
        a->bump = base + K_MAX(mem.page, (size_t)K_CACHELINE);
        a->committed = base + ARENA_COMMIT;
        a->end = base + ARENA_SIZE;
        mem.arenas = a; /* the old one's tail is wasted, under 192 KiB */
    }
    char *span = a->bump;
    if (span + bytes > a->committed) {
        char *to = (char *)K_ROUND_UP((uintptr_t)(span + bytes), ARENA_COMMIT);
        if (to > a->end)
            to = a->end;
        if (hal_mem_commit(a->committed, (size_t)(to - a->committed)) != 0) {
            k_unlock(&mem.heap_lock);
            return NULL;
        }
        a->committed = to;
    }
    a->bump = span + bytes;
    k_unlock(&mem.heap_lock);
    return span;
}

/* ---- Central lists (Go: mcentral) ---- */

/* Takes up to want objects of class cls, linked into a chain, and stores
 * how many in *got (0 only when out of memory). Objects given back come
 * first; the rest are carved from the class's span in address order. Takes
 * the class's lock and, for a new span, the heap lock. */
static void *central_take(unsigned cls, uint32_t want, uint32_t *got)
{
    struct central *ce = &mem.central[cls];
    size_t size = class_size[cls];
    void *head = NULL;
    uint32_t n = 0;

    k_lock(&ce->lock);
    while (n < want && ce->free != NULL) {
        void *p = ce->free;
        ce->free = *(void **)p;
        *(void **)p = head;
        head = p;
        n++;
    }
    while (n < want) {
        size_t left = (size_t)(ce->span_end - ce->span_next) / size;
        if (left == 0) {
            char *s = heap_span(mem.span_bytes[cls]);
            if (s == NULL)
                break;
            ce->span_next = s;
            ce->span_end = s + mem.span_bytes[cls];
            continue;
        }
        size_t k = K_MIN(left, (size_t)(want - n));
        char *first = ce->span_next;
        for (size_t i = 0; i + 1 < k; i++)
            *(void **)(first + i * size) = first + (i + 1) * size;
        *(void **)(first + (k - 1) * size) = head;
        head = first;
        ce->span_next = first + k * size;
        n += (uint32_t)k;
    }
    k_unlock(&ce->lock);
    *got = n;
    return head;
}

/* Gives back a chain of objects, head to tail, to class cls's list. */
static void central_put(unsigned cls, void *head, void *tail)
{
    struct central *ce = &mem.central[cls];
    k_lock(&ce->lock);
    *(void **)tail = ce->free;
    ce->free = head;
    k_unlock(&ce->lock);
}

/* ---- Per-proc caches (Go: mcache) ---- */

/* c's list for cls is empty: refill it with a batch and return one object,
 * or NULL when out of memory. */
static K_NOINLINE void *cache_refill(struct k_mcache *c, unsigned cls)
{
    uint32_t got;
    void *p = central_take(cls, mem.batch[cls], &got);
    if (got == 0)
        return NULL;
    c->free[cls] = *(void **)p;
    c->count[cls] = got - 1;
    return p;
}

/* c's list for cls grew past its high mark: keep the batch freed last
 * (the warmest in the CPU cache) and give the rest back. */
static K_NOINLINE void cache_release(struct k_mcache *c, unsigned cls)
{
    uint32_t keep = mem.batch[cls];
    void *cut = c->free[cls];
    for (uint32_t i = 1; i < keep; i++)
        cut = *(void **)cut;
    void *head = *(void **)cut;
    *(void **)cut = NULL;
    void *tail = head;
    size_t n = 1;
    while (*(void **)tail != NULL) {
        tail = *(void **)tail;
        n++;
    }
    k_assert(n == c->count[cls] - keep);
    (void)n; /* counted for the assertion (DEBUG builds) */
    c->count[cls] = keep;
    central_put(cls, head, tail);
}

/* ---- Large objects ---- */

static K_NOINLINE void *large_alloc(size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size_t total = K_ROUND_UP(size + LARGE_HDR, mem.page);
    char *base = k_mem_reserve(total, mem.page);
    if (base == NULL)
        return NULL;
    if (hal_mem_commit(base, total) != 0) {
        k_mem_release(base, total);
        return NULL;
    }
    struct large *l = (struct large *)base;
    l->magic = LARGE_MAGIC;
    l->size = size;
    l->reserved = total;
    k_lock(&mem.heap_lock);
    k_list_push(&mem.large, &l->link);
    k_unlock(&mem.heap_lock);
    return base + LARGE_HDR;
}

static K_NOINLINE void large_free(void *p, size_t size)
{
    struct large *l = (struct large *)((char *)p - LARGE_HDR);
    if (l->magic != LARGE_MAGIC || l->size != size) {
        k_print("weft: k_free(%p, %zu): not a live large object%s\n", p, size,
                l->magic == LARGE_MAGIC ? " of that size" : "");
        k_panic("bad k_free");
    }
    k_lock(&mem.heap_lock);
    k_list_remove(&mem.large, &l->link);
    k_unlock(&mem.heap_lock);
    l->magic = 0;
    k_mem_release(l, l->reserved);
}

/* ---- The API ---- */

void *k_alloc(size_t size)
{
    if (K_UNLIKELY(size > K_SMALL_MAX))
        return large_alloc(size);
    unsigned cls = size_class(size);
    struct k_mcache *c = cache_self();
    void *p;
    if (K_LIKELY(c != NULL)) {
        p = c->free[cls];
        if (K_LIKELY(p != NULL)) {
            c->free[cls] = *(void **)p;
            c->count[cls]--;
        } else {
            p = cache_refill(c, cls);
        }
    } else {
        uint32_t got;
        p = central_take(cls, 1, &got);
    }
    if (p)
        debug_alloc(p, cls);
    return p;
}

void *k_zalloc(size_t size)
{
    /* Large objects are fresh pages, but hal.h does not promise that a
     * commit reads as zero, so they are cleared too. */
    void *p = k_alloc(size);
    if (p)
        memset(p, 0, size);
    return p;
}

void k_free(void *p, size_t size)
{
    if (p == NULL)
        return;
    if (K_UNLIKELY(size > K_SMALL_MAX)) {
        large_free(p, size);
        return;
    }
    unsigned cls = size_class(size);
    debug_free(p, cls);
    struct k_mcache *c = cache_self();
    if (K_LIKELY(c != NULL)) {
        *(void **)p = c->free[cls];
        c->free[cls] = p;
        if (K_UNLIKELY(++c->count[cls] > mem.high[cls]))
            cache_release(c, cls);
        return;
    }
    central_put(cls, p, p);
}

/* ---- Life cycle ---- */

int k_mem_init(struct k_mcache *(*cache_self_fn)(void))
{
    /* Zero is the initial state of every lock and list. */
    memset(&mem, 0, sizeof mem);
    mem.cache_self = cache_self_fn;
    mem.page = hal_page_size();

    unsigned cls = 0;
    for (size_t i = 0; i < K_ARRAY_LEN(mem.small_class); i++) {
        size_t size = i * 16;
        while (class_size[cls] < size)
            cls++;
        mem.small_class[i] = (uint8_t)cls;
    }
    for (size_t i = 0; i < K_ARRAY_LEN(mem.big_class); i++) {
        size_t size = SMALL_LIMIT + i * 128;
        while (class_size[cls] < size)
            cls++;
        mem.big_class[i] = (uint8_t)cls;
    }
    for (cls = 0; cls < K_NCLASS; cls++) {
        size_t size = class_size[cls];
        /* The smallest multiple of SPAN_MIN (and of the page) whose tail
         * after the last whole object is at most 1/8 of it. */
        size_t unit = K_MAX((size_t)SPAN_MIN, mem.page);
        size_t span = unit;
        while ((span % size) * 8 > span)
            span += unit;
        mem.span_bytes[cls] = (uint32_t)span;
        size_t b = BATCH_BYTES / size;
        mem.batch[cls] = (uint32_t)K_MIN(K_MAX(b, (size_t)BATCH_MIN), (size_t)BATCH_MAX);
        mem.high[cls] = 2 * mem.batch[cls];
    }
    return 0;
}

void k_mem_fini(void)
{
    for (struct k_link *n; (n = k_list_pop(&mem.large)) != NULL;) {
        struct large *l = K_LIST_ENTRY(n, struct large, link);
        k_mem_release(l, l->reserved);
    }
    while (mem.arenas != NULL) {
        struct arena *a = mem.arenas;
        mem.arenas = a->next;
        k_mem_release(a, ARENA_SIZE);
    }
    k_assert(k_mem_reserved() == 0);
    memset(&mem, 0, sizeof mem);
}

/* ---- White-box hooks for the tests (kern/ktest.h) ---- */

unsigned k_alloc_class_of(size_t size)
{
    return size_class(size);
}

size_t k_alloc_class_size(unsigned cls)
{
    return class_size[cls];
}

uint32_t k_alloc_class_batch(unsigned cls)
{
    return mem.batch[cls];
}
