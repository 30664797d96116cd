/* SPDX-License-Identifier: MIT */
/*
 * kern.h — what every kern file needs: assertions, panics, printing,
 * atomics shorthand, and the freestanding rule.
 *
 * kern/ is freestanding C11: it includes only the compiler's freestanding
 * headers, kern/ headers and hal/hal.h, and calls the OS only through hal_*.
 * `make check-freestanding` proves it for every target. See docs/HACKING.md.
 */
#ifndef WEFT_KERN_H
#define WEFT_KERN_H

#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal/hal.h"
#include "include/weft.h" /* the WEFT_E* codes and public types */

#define K_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define K_LIKELY(x) __builtin_expect(!!(x), 1)
#define K_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define K_NOINLINE __attribute__((noinline))
/* A function that reads what other threads change, without their locks,
 * on purpose (the dump's snapshot of tasks and their stacks): the
 * sanitizers would report each read as a race or a stray access. */
#define K_RACY_READER __attribute__((no_sanitize("address", "thread")))
/* A read of x, inside a K_RACY_READER, that another thread may be writing
 * with plain stores: volatile, so that it is made once and as it stands
 * (a sanitizer would still check an atomic load against those stores). */
#define K_RACY_LOAD(x) (*(volatile __typeof__(x) *)&(x))
#define K_CACHELINE 64
#define K_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define K_MIN(a, b) ((a) < (b) ? (a) : (b))
#define K_MAX(a, b) ((a) > (b) ? (a) : (b))
#define K_CONTAINER_OF(p, type, field) ((type *)((char *)(p)-offsetof(type, field)))

/* Round x up to a multiple of a (a power of two). */
#define K_ROUND_UP(x, a) (((x) + ((a)-1)) & ~((size_t)(a)-1))

/* The four functions a freestanding compiler may emit calls to; the port
 * provides them (from libc on hosted ports). */
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Atomics shorthand. Orders are explicit at every use in the hot paths;
 * these are for the common cases. */
#define k_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define k_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define k_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define k_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

/* A full (StoreLoad) fence; every caller names the fence it pairs with.
 * ThreadSanitizer does not model fences, so its
 * builds use a sequentially consistent read-modify-write instead, which it
 * does understand (and which is a full barrier on every target). */
#ifdef WEFT_SAN_TSAN
static inline void k_fence_seq_cst(void)
{
    static _Atomic int fence_word;
    atomic_fetch_add_explicit(&fence_word, 0, memory_order_seq_cst);
}
#else
static inline void k_fence_seq_cst(void)
{
    atomic_thread_fence(memory_order_seq_cst);
}
#endif

/* Time arithmetic: a time (hal_now_ns()'s scale) plus a duration,
 * saturated at INT64_MAX (and INT64_MIN). A deadline past the end of time
 * stays "never" instead of wrapping round to the past, where a timer
 * would be due for ever. Every sum of a time and a duration in kern goes
 * through it. */
static inline int64_t k_add_sat(int64_t t, int64_t d)
{
    if (d > 0 && t > INT64_MAX - d)
        return INT64_MAX;
    if (d < 0 && t < INT64_MIN - d)
        return INT64_MIN;
    return t + d;
}

/* Printing to the error stream, async-signal-safe, no allocation.
 * Formats: %s %c %d %i %u %x %p %% with optional l/ll/z length, and an
 * optional width with zero padding (%08x). Output is built in a stack
 * buffer and written with one hal_write_err per call (up to 512 bytes). */
void k_print(const char *fmt, ...);
void k_vprint(const char *fmt, va_list ap);
int k_snprint(char *buf, size_t n, const char *fmt, ...);
int k_vsnprint(char *buf, size_t n, const char *fmt, va_list ap);

/* A broken invariant: prints "weft: fatal: <what>", then calls the dump
 * function set by k_panic_set_dump (once, even when the dump panics too),
 * and aborts (Go's throw). Print details with k_print before calling it. */
_Noreturn void k_panic(const char *what);
/* Sets what k_panic calls after its message: weft_run sets the dump of
 * every task's state (dump.c) for the time of a run and clears it (NULL)
 * at the end. A hook, so that print.c, at the bottom of kern, needs
 * nothing of the scheduler (docs/HACKING.md, "Layers"). */
void k_panic_set_dump(void (*dump)(void));

/* Assertions. k_assert is live in DEBUG builds only; k_check always. */
#define k_check(cond)                                                                              \
    do {                                                                                           \
        if (K_UNLIKELY(!(cond)))                                                                   \
            k_panic_at(__FILE__, __LINE__, #cond);                                                 \
    } while (0)
#ifdef WEFT_DEBUG
#define k_assert(cond) k_check(cond)
#else
#define k_assert(cond) ((void)0)
#endif
_Noreturn void k_panic_at(const char *file, int line, const char *what);

/* Small string helpers (kern has no libc). */
size_t k_strlen(const char *s);
int k_strcmp(const char *a, const char *b);
/* Parses a decimal integer with an optional K/M/G suffix (powers of 1024).
 * Returns 0 and stores *out, or -1 on anything malformed or overflowing. */
int k_parse_int(const char *s, int64_t *out);

/* A fast per-thread pseudo-random generator (wyrand). */
uint64_t k_rand_next(uint64_t *state);
/* Uniform in [0, n), n > 0. */
uint32_t k_rand_n(uint64_t *state, uint32_t n);

#endif /* WEFT_KERN_H */
