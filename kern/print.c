/* SPDX-License-Identifier: MIT */
/*
 * print.c — formatted output without libc, panics, and small string and
 * random-number helpers.
 *
 * k_print formats into a stack buffer and writes it with one
 * hal_write_err, so it is async-signal-safe and allocates nothing: the
 * dump, the deadlock report and the stack-overflow message all use it,
 * the last one from a signal handler.
 */
#include "kern/kern.h"

struct out {
    char *buf;
    size_t cap; /* bytes available, excluding the terminating NUL */
    size_t len; /* bytes that would have been written */
};

static void put(struct out *o, char c)
{
    if (o->len < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void put_str(struct out *o, const char *s, int width)
{
    if (!s)
        s = "(null)";
    int n = (int)k_strlen(s);
    for (; width > n; width--)
        put(o, ' ');
    while (*s)
        put(o, *s++);
}

static void put_uint(struct out *o, uint64_t v, unsigned base, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v);
    for (; width > n; width--)
        put(o, pad);
    while (n)
        put(o, tmp[--n]);
}

int k_vsnprint(char *buf, size_t n, const char *fmt, va_list ap)
{
    struct out o = {buf, n ? n - 1 : 0, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        f++;
        char pad = ' ';
        int width = 0;
        if (*f == '0') {
            pad = '0';
            f++;
        }
        while (*f >= '0' && *f <= '9')
            width = width * 10 + (*f++ - '0');
        int lng = 0;
        while (*f == 'l') {
            lng++;
            f++;
        }
        if (*f == 'z') {
            lng = 2;
            f++;
        }
        switch (*f) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            if (v < 0) {
                put(&o, '-');
                put_uint(&o, (uint64_t)0 - (uint64_t)v, 10, width ? width - 1 : 0, pad);
            } else {
                put_uint(&o, (uint64_t)v, 10, width, pad);
            }
            break;
        }
        case 'u':
            put_uint(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, pad);
            break;
        case 'x':
            put_uint(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, pad);
            break;
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_uint(&o, (uintptr_t)va_arg(ap, void *), 16, width, pad);
            break;
        case 's':
            put_str(&o, va_arg(ap, const char *), width);
            break;
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case '%':
            put(&o, '%');
            break;
        case '\0':
            f--;
            break;
        default:
            put(&o, '%');
            put(&o, *f);
            break;
        }
    }
    if (n)
        buf[o.len < o.cap ? o.len : o.cap] = '\0';
    return (int)o.len;
}

int k_snprint(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = k_vsnprint(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

void k_vprint(const char *fmt, va_list ap)
{
    char buf[512];
    int n = k_vsnprint(buf, sizeof buf, fmt, ap);
    if (n > (int)sizeof buf - 1)
        n = (int)sizeof buf - 1;
    hal_write_err(buf, (size_t)n);
}

void k_print(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    k_vprint(fmt, ap);
    va_end(ap);
}

/* k_panic's dump (k_panic_set_dump). Release store, acquire load: a
 * panicking thread that sees the function sees what weft_run set up
 * before it. */
static void (*_Atomic panic_dump)(void);

void k_panic_set_dump(void (*dump)(void))
{
    atomic_store_explicit(&panic_dump, dump, memory_order_release);
}

/* Go: throw. Prints, dumps once (a panic inside the dump must not
 * recurse), aborts. */
_Noreturn void k_panic(const char *what)
{
    static _Atomic int panicking;
    k_print("weft: fatal: %s\n", what);
    /* seq_cst by default, but no pair: only the read-modify-write's
     * atomicity matters (exactly one caller sees 0 and dumps; the others,
     * a nested panic in the dump included, go straight to abort). */
    if (atomic_fetch_add(&panicking, 1) == 0) {
        void (*dump)(void) = atomic_load_explicit(&panic_dump, memory_order_acquire);
        if (dump)
            dump();
    }
    hal_abort();
}

_Noreturn void k_panic_at(const char *file, int line, const char *what)
{
    k_print("weft: %s:%d: assertion failed: %s\n", file, line, what);
    k_panic("broken invariant");
}

size_t k_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int k_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

int k_parse_int(const char *s, int64_t *out)
{
    if (!s || !*s)
        return -1;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    if (*s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > (uint64_t)INT64_MAX)
            return -1;
    }
    uint64_t mult = 1;
    switch (*s) {
    case 'K':
    case 'k':
        mult = 1ull << 10;
        s++;
        break;
    case 'M':
    case 'm':
        mult = 1ull << 20;
        s++;
        break;
    case 'G':
    case 'g':
        mult = 1ull << 30;
        s++;
        break;
    default:
        break;
    }
    if (*s)
        return -1;
    if (v > (uint64_t)INT64_MAX / mult)
        return -1;
    v *= mult;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

uint64_t k_rand_next(uint64_t *state)
{
    /* wyrand: one multiply, passes BigCrush; plenty for victim order and
     * select shuffles. */
    *state += 0xa0761d6478bd642full;
    __uint128_t m = (__uint128_t)*state * (*state ^ 0xe7037ed1a0b428dbull);
    return (uint64_t)(m >> 64) ^ (uint64_t)m;
}

uint32_t k_rand_n(uint64_t *state, uint32_t n)
{
    /* Lemire's multiply-shift: unbiased enough for n << 2^32. */
    return (uint32_t)(((k_rand_next(state) & 0xffffffffull) * n) >> 32);
}
