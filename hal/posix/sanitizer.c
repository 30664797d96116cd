/* SPDX-License-Identifier: MIT */
/*
 * sanitizer.c (posix) — announcing context switches to AddressSanitizer and
 * ThreadSanitizer (docs/design.md "Memory"). Built only with SAN=asan or
 * SAN=tsan (WEFT_SAN_ASAN / WEFT_SAN_TSAN); a release build compiles this
 * file to nothing, and struct hal_context has its sp alone.
 *
 * Why: both sanitizers assume one stack per thread. ASan that does not know
 * a task's stack bounds refuses __asan_handle_no_return ("False positive
 * error reports may follow") and misreads stack addresses; TSan keeps a
 * shadow call stack and a vector clock per thread, and a switch it does not
 * see pops frames another stack pushed until its runtime crashes. So under
 * a sanitizer the arch routines are renamed (hal_ctx_switch_raw,
 * hal_ctx_init_raw: see the top of hal/<arch>/context.c and the .S) and
 * the hal_ctx_* of hal.h are these wrappers:
 *
 * - hal_ctx_init records the stack's bounds, gives the context a TSan fiber
 *   and has the context start in ctx_start, which finishes the first
 *   switch before it calls entry(arg). A context made again (kern reuses a
 *   dead task's struct and stack) gets a fresh fiber in place of the old
 *   one, whose shadow stack still holds the dead task's frames, and its
 *   stack unpoisoned: frames that never returned left their redzones.
 * - hal_ctx_switch calls __sanitizer_start_switch_fiber with the target's
 *   bounds and __tsan_switch_to_fiber (which also orders the two contexts:
 *   they follow each other on one thread) before the raw switch, and
 *   __sanitizer_finish_switch_fiber on the new stack.
 *
 * Contexts hal_ctx_init did not make (a thread's scheduler context, a
 * test's "home") are only ever switched *from* first. Their bounds are
 * learned from finish_switch_fiber's "old" outputs: the switching thread
 * leaves a pointer to the context it left in a thread-local, which the
 * other side reads once it runs. Their fiber is the thread's current one,
 * taken at every switch away from them (a struct may serve different
 * threads). They may be uninitialised memory, so the fibers this file made
 * are kept in a table (fiber_renew); only those are ever destroyed: when
 * their context is made again, or when the memory holding it is released
 * (hal_mem_release at the end of a run calls hal_posix_san_released).
 * The TSan of GCC 12 dies beyond 8128 threads and fibers, so TSan builds
 * use clang (Makefile: TSAN_CC); clang 14's TSan keeps 256 KiB of trace
 * per fiber, which bounds the tasks a case can hold parked at once.
 *
 * Under ASan, preemption switches inside the SIGURG handler through these
 * same wrappers; the handler never interrupts weft's own code (weft_text,
 * which includes this file), so a switch is never announced inside
 * another. A TSan build does not preempt (hal/posix/preempt.c).
 */
#if defined(WEFT_SAN_ASAN) || defined(WEFT_SAN_TSAN)

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hal/hal.h"
#include "posix.h"

#ifdef WEFT_SAN_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef WEFT_SAN_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* The arch routines under their sanitizer-build names. */
void hal_ctx_switch_raw(struct hal_context *from, struct hal_context *to);
void hal_ctx_init_raw(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                      void *arg);

#ifdef WEFT_SAN_ASAN
/* Never inlined, and (GCC) no interprocedural assumptions, so a TLS
 * address computed before a switch is never reused after it: the code
 * after the raw switch may run on another thread (as in thread.c). */
#if defined(__GNUC__) && !defined(__clang__)
#define OPAQUE __attribute__((noinline, noipa))
#else
#define OPAQUE __attribute__((noinline))
#endif

/* The context this thread switched away from last; read by the side that
 * resumes, on the same thread. */
static __thread struct hal_context *left __attribute__((tls_model("initial-exec")));

static OPAQUE void left_set(struct hal_context *ctx)
{
    left = ctx;
}

static OPAQUE struct hal_context *left_get(void)
{
    return left;
}
#endif

#ifdef WEFT_SAN_TSAN
/* The fibers hal_ctx_init made, one entry per context (ctx->san_slot is
 * its index), so that a context made again destroys the fiber it had and
 * the end of a run (hal_mem_release of the memory holding the contexts)
 * destroys the fibers of all its tasks. A context's own san_slot may be
 * stale memory: an entry is the context's only if it names the context. */
struct fiber_entry {
    struct hal_context *ctx;
    void *fiber;
};
static pthread_mutex_t fibers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fiber_entry *fibers; /* protected by fibers_lock */
static size_t nfibers, capfibers;

/* Gives ctx a new fiber, destroying the one it had. */
static void fiber_renew(struct hal_context *ctx)
{
    void *fiber = __tsan_create_fiber(0);
    pthread_mutex_lock(&fibers_lock);
    size_t i = ctx->san_slot;
    if (i < nfibers && fibers[i].ctx == ctx) {
        __tsan_destroy_fiber(fibers[i].fiber);
    } else {
        if (nfibers == capfibers) {
            size_t cap = capfibers ? capfibers * 2 : 1024;
            struct fiber_entry *n = realloc(fibers, cap * sizeof *n);
            if (!n) {
                fputs("weft: sanitizer.c: no memory for the fiber table\n", stderr);
                abort();
            }
            fibers = n;
            capfibers = cap;
        }
        i = nfibers++;
        fibers[i].ctx = ctx;
        ctx->san_slot = i;
    }
    fibers[i].fiber = fiber;
    pthread_mutex_unlock(&fibers_lock);
    ctx->san_fiber = fiber;
}

/* hal_mem_release is about to unmap [addr, addr + size): destroys the
 * fibers of the contexts in it. One of them may still be running: the
 * task of a thread that weft_run abandoned in a blocking call (its stack
 * is kept, its struct is not). That fiber is left alive, out of the
 * table: the thread comes back to it, leaves it for its own fiber
 * (block.c, block_orphaned) and ends, and one fiber is lost per
 * abandoned thread. */
void hal_posix_san_released(void *addr, size_t size)
{
    uintptr_t a = (uintptr_t)addr, b = a + size;
    pthread_mutex_lock(&fibers_lock);
    for (size_t i = 0; i < nfibers;) {
        uintptr_t c = (uintptr_t)fibers[i].ctx;
        if (c >= a && c < b) {
            if (!__atomic_load_n(&fibers[i].ctx->san_running, __ATOMIC_RELAXED))
                __tsan_destroy_fiber(fibers[i].fiber);
            fibers[i] = fibers[--nfibers];
            if (i < nfibers)
                fibers[i].ctx->san_slot = i;
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&fibers_lock);
}
#endif

/* Finishes a switch on the new stack: tells ASan it is there, and records
 * the bounds of the stack just left in the context just left. */
static void finish(void *fake_stack)
{
#ifdef WEFT_SAN_ASAN
    const void *lo = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &lo, &size);
    struct hal_context *prev = left_get();
    prev->san_stack_lo = lo;
    prev->san_stack_size = size;
#else
    (void)fake_stack;
#endif
}

/* Where every context made by hal_ctx_init starts (hal_ctx_init_raw's
 * entry): the first switch to it returns here rather than into
 * hal_ctx_switch, so the switch is finished here. */
static void ctx_start(void *arg)
{
    struct hal_context *ctx = arg;
    finish(NULL);
    ctx->san_entry(ctx->san_arg);
}

void hal_ctx_init(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                  void *arg)
{
#ifdef WEFT_SAN_ASAN
    __asan_unpoison_memory_region(stack_lo, size);
#endif
#ifdef WEFT_SAN_TSAN
    fiber_renew(ctx);
#else
    ctx->san_fiber = NULL;
#endif
    ctx->san_running = 0;
    ctx->san_stack_lo = stack_lo;
    ctx->san_stack_size = size;
    ctx->san_fake_stack = NULL;
    ctx->san_entry = entry;
    ctx->san_arg = arg;
    hal_ctx_init_raw(ctx, stack_lo, size, ctx_start, ctx);
}

void hal_ctx_switch(struct hal_context *from, struct hal_context *to)
{
#ifdef WEFT_SAN_ASAN
    left_set(from);
    __sanitizer_start_switch_fiber(&from->san_fake_stack, to->san_stack_lo, to->san_stack_size);
#endif
#ifdef WEFT_SAN_TSAN
    /* The same fiber for a context hal_ctx_init made; the thread's own
     * (or the one it runs now) for any other. */
    from->san_fiber = __tsan_get_current_fiber();
    /* Relaxed, never an edge TSan would see: hal_posix_san_released only
     * needs to know whether a thread still runs on a context's fiber, and
     * learns it after weft_run has settled every thread's state. */
    __atomic_store_n(&to->san_running, 1, __ATOMIC_RELAXED);
    __tsan_switch_to_fiber(to->san_fiber, 0);
    __atomic_store_n(&from->san_running, 0, __ATOMIC_RELAXED);
#endif
    hal_ctx_switch_raw(from, to);
    /* Resumed, perhaps on another thread, by a switch to from. */
    finish(from->san_fake_stack);
}

#endif /* WEFT_SAN_ASAN || WEFT_SAN_TSAN */
