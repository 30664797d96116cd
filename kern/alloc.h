/* SPDX-License-Identifier: MIT */
/*
 * alloc.h — kern's memory: a size-class allocator and task stacks, both
 * built on hal_mem_* alone. See alloc.c and stack.c.
 *
 * Every byte kern takes from the OS is recorded, so k_stack_fini() and
 * k_mem_fini() give all of it back when weft_run returns.
 */
#ifndef WEFT_KERN_ALLOC_H
#define WEFT_KERN_ALLOC_H

#include "kern/kern.h"

/* ---- Allocator ---- */

/* Number of small size classes (alloc.c's class_size table: 16-byte steps
 * at first, then classes at most 12.5% apart, as in Go's sizeclasses.go);
 * objects above K_SMALL_MAX bytes go straight to pages. */
#define K_NCLASS 57
#define K_SMALL_MAX 32768

/*
 * Per-proc cache (Go: mcache). Only the thread holding the proc touches it,
 * so the fast path takes no lock and no atomic. Each class keeps a singly
 * linked free list; when it runs empty a batch is taken from the central
 * list, when it grows past a limit half is given back.
 */
struct k_mcache {
    /* Owned by the thread holding the proc: */
    void *free[K_NCLASS];
    uint32_t count[K_NCLASS];
};

/* Sets up the allocator. Called once by weft_run before anything else.
 * cache_self is how k_alloc and k_free find the calling thread's proc
 * cache: it returns it, or NULL when the thread holds no proc (then the
 * central lists serve it). The scheduler passes its lookup (task.c); NULL
 * makes every thread use the central lists (the tests'). A function
 * given, not one called by name, so that the allocator knows nothing of
 * procs (docs/HACKING.md, "Layers"). */
int k_mem_init(struct k_mcache *(*cache_self)(void));
/* Gives every reservation back to the OS. Called last by weft_run, after
 * k_stack_fini (every other reservation must be released by then); no
 * object may be used afterwards. */
void k_mem_fini(void);

/* Allocates size bytes (> 0), 16-byte aligned, contents unspecified.
 * NULL when out of memory. Any thread; uses the calling thread's proc
 * cache when it holds a proc (k_mem_init), the central lists otherwise. */
void *k_alloc(size_t size);
/* The same, zero-filled. */
void *k_zalloc(size_t size);
/* Frees an object; size must be the size it was allocated with.
 * NULL is ignored. */
void k_free(void *p, size_t size);

/* Bytes of address space currently reserved (for weft_stats): heap arenas,
 * large objects and stacks. */
uint64_t k_mem_reserved(void);

/* hal_mem_reserve / hal_mem_release with the bookkeeping behind
 * k_mem_reserved. Every reservation kern makes goes through these (stack.c
 * uses them); whoever reserves must release before k_mem_fini. */
void *k_mem_reserve(size_t size, size_t align);
void k_mem_release(void *p, size_t size);
/* Stops counting a reservation that outlives the run (a stack region kept
 * for a thread abandoned in a blocking call): whoever lets it go last
 * releases it with hal_mem_release. */
void k_mem_forget(size_t size);

/* ---- Stacks ---- */

/*
 * A task stack: [lo, lo + guard) is the guard, [lo + guard, hi) is usable.
 * Stacks are carved out of large reservations, committed lazily by the OS
 * (Linux) and cached per proc for reuse.
 */
struct k_stack {
    char *lo;
    char *hi;
    size_t guard;       /* bytes of guard below the usable part */
    uint8_t guard_kind; /* enum hal_guard_kind */
};

/* Per-proc cache of stacks of the default size. */
#define K_STACK_CACHE 16
struct k_stack_cache {
    /* Owned by the thread holding the proc: */
    struct k_stack stacks[K_STACK_CACHE];
    uint32_t n;
};

/* Sets the default stack size (0 = 256 KiB) and the headroom added to
 * every stack (hal_preempt_headroom when tasks may be preempted, else 0;
 * sizes are rounded up to pages here) for this run, and resets the stack
 * pool and counts. Call after k_mem_init. */
void k_stack_init(size_t default_size, size_t headroom);
/* Releases every stack reservation, in use or not. weft_run calls it
 * just before k_mem_fini; calling it again is harmless. */
void k_stack_fini(void);
/* Gets a stack with size bytes for the task (0 = the default) plus the
 * headroom. c is the stack cache of the proc the calling thread holds, or
 * NULL when it holds none (then the pool serves it directly): an argument,
 * so that stack.c knows nothing of procs (docs/HACKING.md, "Layers").
 * 0 or HAL_ENOMEM. */
int k_stack_alloc(struct k_stack_cache *c, size_t size, struct k_stack *out);
/* Returns a stack for reuse, to c (as for k_stack_alloc) or the pool; its
 * pages may be discarded. */
void k_stack_free(struct k_stack_cache *c, struct k_stack *s);
/* Whether s is a stack of the run's default size (what a spawn with size 0
 * gets, preemption headroom included), as opposed to one of its own size. */
bool k_stack_is_default(const struct k_stack *s);
/* Brackets reads of the stack s (a copy of a task's k_stack, taken
 * racily) from a thread that does not own it: true when s's memory stays
 * mapped until k_stack_peek_end, which the caller then calls with the same
 * s; false when that cannot be promised (s is gone, or its lock is busy).
 * Async-signal-safe. */
bool k_stack_peek_begin(const struct k_stack *s);
void k_stack_peek_end(const struct k_stack *s);
/* Keeps the reservation that holds s (in use by a task whose thread
 * weft_run abandons in a blocking call) out of k_stack_fini's release, and
 * returns a handle to it. Any thread, before k_stack_fini. */
void *k_stack_keep(const struct k_stack *s);
/* Lets a kept reservation go; the last of its keepers and the run's end
 * releases it. Any thread, during or after the run that kept it: it
 * touches nothing but the reservation itself. */
void k_stack_unkeep(void *region);
/* Counts of stacks by guard kind since the run started (weft_stats): each
 * stack is counted once, when it is created and its guard installed; reuse
 * does not count again. */
void k_stack_counts(uint64_t *region, uint64_t *protect, uint64_t *none);

#endif /* WEFT_KERN_ALLOC_H */
