/* SPDX-License-Identifier: MIT */
/*
 * t_mem.c — kern's memory, white-box through kern/alloc.h: size classes,
 * large objects, reuse, release at k_mem_fini, DEBUG checks, and stacks
 * (guards, the pool and its discards, 200k at once); mem_tasks runs the
 * allocator under weft_run, where the per-proc caches are in play.
 *
 * Every case but mem_tasks calls k_mem_init(NULL)/k_mem_fini itself,
 * outside weft_run, and passes no stack cache to k_stack_alloc/free: no
 * thread has a proc cache then, so these exercise the central lists and
 * the stack pool directly (tests/t_kern.c tests the caches).
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "kern/alloc.h"
#include "tests/check.h"

/* ---- helpers ---- */

static void fill(void *p, size_t n, unsigned char b)
{
    memset(p, b, n);
}

/* Every byte of [p, p+n) is b (the first is b, and each equals the next). */
static int filled(const void *p, size_t n, unsigned char b)
{
    const unsigned char *c = p;
    return n == 0 || (c[0] == b && memcmp(c, c + 1, n - 1) == 0);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    /* xorshift64* */
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * 2685821657736338717ull;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static void mem_begin(void)
{
    CHECK_EQ(k_mem_reserved(), 0);
    CHECK_OK(k_mem_init(NULL));
}

static void mem_end(void)
{
    k_stack_fini(); /* harmless when no stack was made */
    k_mem_fini();
    CHECK_EQ(k_mem_reserved(), 0);
}

#ifdef __linux__
/* Lines of /proc/self/maps (mappings), or -1. */
static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* Resident bytes (/proc/self/statm), or -1. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    long long size, rss;
    int ok = fscanf(f, "%lld %lld", &size, &rss) == 2;
    fclose(f);
    return ok ? rss * (long long)sysconf(_SC_PAGESIZE) : -1;
}
#endif

#ifndef _WIN32
/* Runs fn in a child process with its stderr captured into buf (NUL-
 * terminated, truncated to n - 1). Returns the wait status. */
static int in_child(void (*fn)(void *), void *arg, char *buf, size_t n)
{
    int fds[2];
    CHECK_OK(pipe(fds));
    fflush(NULL);
    pid_t pid = fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    for (;;) {
        char tmp[512];
        ssize_t r = read(fds[0], tmp, sizeof tmp);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && got + 1 < n; i++)
            buf[got++] = tmp[i];
    }
    buf[got] = '\0';
    close(fds[0]);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
    return st;
}
#else
/* Windows: runs this case again as a child process in mode (t_child_mode
 * there picks the child's part) with its stderr captured into buf (NUL-
 * terminated, truncated to n - 1). Returns the child's exit code: 0 for a
 * clean exit, the exception's code for a fault nothing handled. */
static unsigned long in_child(const char *casename, const char *mode, char *buf, size_t n)
{
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, TRUE};
    HANDLE rd, wr;
    CHECK(CreatePipe(&rd, &wr, &sa, 0));
    CHECK(SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0));
    void *proc = t_child_start(casename, mode, wr);
    CloseHandle(wr); /* the child holds its own copy: EOF when it ends */
    size_t got = 0;
    for (;;) {
        char tmp[512];
        DWORD r = 0;
        if (!ReadFile(rd, tmp, sizeof tmp, &r, NULL) || r == 0)
            break;
        for (DWORD i = 0; i < r && got + 1 < n; i++)
            buf[got++] = tmp[i];
    }
    buf[got] = '\0';
    CloseHandle(rd);
    return t_child_wait(proc);
}
#endif

/* ---- mem_classes: every size 1..70000, alignment, no overlap ---- */

struct obj {
    unsigned char *p;
    size_t n;
    unsigned char b;
};

static void check_no_overlap(size_t size, int count)
{
    uintptr_t *v = malloc(sizeof *v * (size_t)count);
    CHECK(v != NULL);
    for (int i = 0; i < count; i++) {
        unsigned char *p = k_alloc(size);
        CHECK(p != NULL);
        CHECK_EQ((uintptr_t)p % 16, 0);
        fill(p, size, (unsigned char)(i * 151 + 1));
        v[i] = (uintptr_t)p;
    }
    for (int i = 0; i < count; i++)
        CHECK(filled((void *)v[i], size, (unsigned char)(i * 151 + 1)));
    qsort(v, (size_t)count, sizeof *v, cmp_ptr);
    for (int i = 0; i + 1 < count; i++)
        CHECK_GE(v[i + 1] - v[i], size);
    for (int i = 0; i < count; i++)
        k_free((void *)v[i], size);
    free(v);
}

void t_mem_classes(void)
{
    mem_begin();
    enum { RING = 61 };
    struct obj ring[RING];
    memset(ring, 0, sizeof ring);
    /* Large sizes cost a reservation each; step through them on slow
     * targets. */
    int64_t scaled = t_count(10);
    size_t big_step = scaled >= 10 ? 1 : (size_t)(10 / scaled);
    unsigned k = 0;
    for (size_t size = 1; size <= 70000; size += size < K_SMALL_MAX ? 1 : big_step) {
        struct obj *o = &ring[k % RING];
        if (o->p) {
            CHECK(filled(o->p, o->n, o->b));
            k_free(o->p, o->n);
        }
        o->p = k_alloc(size);
        CHECK(o->p != NULL);
        CHECK_EQ((uintptr_t)o->p % 16, 0);
        o->n = size;
        o->b = (unsigned char)(k * 151 + 1);
        fill(o->p, size, o->b);
        k++;
    }
    for (int i = 0; i < RING; i++) {
        CHECK(filled(ring[i].p, ring[i].n, ring[i].b));
        k_free(ring[i].p, ring[i].n);
    }
    /* Many live objects at class edges: sorted, none overlaps the next. */
    static const size_t edges[] = {1,    15,   16,   17,   240,  241,  1008,  1009,
                                   1024, 1025, 4096, 4097, 8960, 8961, 32767, 32768};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_no_overlap(edges[i], edges[i] > 4096 ? 300 : 3000);
    /* Zero and NULL. */
    void *z = k_alloc(0);
    CHECK(z != NULL);
    k_free(z, 0);
    k_free(NULL, 100);
    k_free(NULL, 100000);
    mem_end();
}

/* ---- mem_zalloc: zeroed after dirty frees, small and large ---- */

void t_mem_zalloc(void)
{
    mem_begin();
    static const size_t sizes[] = {1, 16, 33, 500, 4000, 32768, 32769, 300000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        for (int round = 0; round < 3; round++) {
            unsigned char *d = k_alloc(n);
            CHECK(d != NULL);
            fill(d, n, 0xA5);
            k_free(d, n);
            unsigned char *z = k_zalloc(n);
            CHECK(z != NULL);
            CHECK(filled(z, n, 0));
            fill(z, n, 0x5A);
            k_free(z, n);
        }
    }
    mem_end();
}

/* ---- mem_large: reservations come and go with the objects ---- */

void t_mem_large(void)
{
    mem_begin();
    static const size_t sizes[] = {32769, 65536, 100001, (size_t)1 << 20, (size_t)64 << 20};
    enum { N = sizeof sizes / sizeof sizes[0] };
    unsigned char *p[N];
    uint64_t base = k_mem_reserved();
    uint64_t before[N];
    for (int i = 0; i < N; i++) {
        before[i] = k_mem_reserved();
        p[i] = k_alloc(sizes[i]);
        CHECK(p[i] != NULL);
        CHECK_EQ((uintptr_t)p[i] % 16, 0);
        CHECK_GE(k_mem_reserved() - before[i], sizes[i]);
        CHECK_LE(k_mem_reserved() - before[i], sizes[i] + 2 * 65536);
        p[i][0] = 1;
        p[i][sizes[i] - 1] = 2;
    }
    /* Free in a different order than allocated (list unlinking). */
    k_free(p[2], sizes[2]);
    k_free(p[0], sizes[0]);
    k_free(p[4], sizes[4]);
    k_free(p[1], sizes[1]);
    k_free(p[3], sizes[3]);
    CHECK_EQ(k_mem_reserved(), base);

    /* Churn: every reservation goes back. */
    int64_t n = t_count(20000);
    for (int64_t i = 0; i < n; i++) {
        size_t size = 32769 + (size_t)(rnd() % 300000);
        unsigned char *q = k_alloc(size);
        CHECK(q != NULL);
        q[size / 2] = 7;
        k_free(q, size);
    }
    CHECK_EQ(k_mem_reserved(), base);

    /* Absurd sizes fail cleanly. */
    CHECK(k_alloc(SIZE_MAX) == NULL);
    CHECK(k_alloc(SIZE_MAX - 4096) == NULL);
    CHECK(k_alloc((size_t)1 << 62) == NULL);
    CHECK_EQ(k_mem_reserved(), base);

    /* Live large objects at fini are released by it. */
    for (int i = 0; i < N; i++)
        CHECK(k_alloc(sizes[i]) != NULL);
    mem_end();
}

/* ---- mem_reuse: 10M allocs and frees stay within bounded memory ---- */

void t_mem_reuse(void)
{
    mem_begin();
    enum { LIVE = 1024 };
    struct obj live[LIVE];
    memset(live, 0, sizeof live);
    int64_t n = t_count(10000000);
#ifdef WEFT_DEBUG
    n /= 10; /* every free fills and every alloc checks the whole object */
#endif
    int64_t warm = n / 10;
    uint64_t after_warm = 0;
    for (int64_t i = 0; i < n; i++) {
        struct obj *o = &live[rnd() % LIVE];
        if (o->p) {
            CHECK_EQ(o->p[0], o->b);
            CHECK_EQ(o->p[o->n - 1], o->b);
            k_free(o->p, o->n);
        }
        /* Sizes spread over every class, biased small. */
        uint64_t r = rnd();
        size_t size = (r & 3) ? 1 + (size_t)((r >> 8) % 512) : 1 + (size_t)((r >> 8) % K_SMALL_MAX);
        o->p = k_alloc(size);
        CHECK(o->p != NULL);
        o->n = size;
        o->b = (unsigned char)i;
        o->p[0] = o->b;
        o->p[size - 1] = o->b;
        if (i == warm)
            after_warm = k_mem_reserved();
    }
    /* At most LIVE * 32 KiB is ever live, and freed objects are reused, so
     * after the warm-up no more arenas may be needed. */
    uint64_t end = k_mem_reserved();
    fprintf(stderr, "mem_reuse: %lld ops, reserved %llu after warm-up, %llu at end\n", (long long)n,
            (unsigned long long)after_warm, (unsigned long long)end);
    CHECK_LE(end, after_warm);
    CHECK_LE(end, (uint64_t)128 << 20);
    for (int i = 0; i < LIVE; i++)
        k_free(live[i].p, live[i].n);
    mem_end();
}

/* ---- mem_fini_releases: init/use/fini 100 times, nothing survives ---- */

void t_mem_fini_releases(void)
{
    t_skip_if_tsan_maps();
#ifdef __linux__
    long maps0 = -1;
#endif
    CHECK_EQ(k_mem_reserved(), 0);
    for (int run = 0; run < 100; run++) {
        CHECK_OK(k_mem_init(NULL));
        k_stack_init(run % 2 ? 64 * 1024 : 0, 0);
        void *small[200];
        for (int i = 0; i < 200; i++) {
            small[i] = k_alloc((size_t)(i * 97 % 5000) + 1);
            CHECK(small[i] != NULL);
        }
        for (int i = 0; i < 200; i += 2) /* half stay live */
            k_free(small[i], (size_t)(i * 97 % 5000) + 1);
        CHECK(k_alloc(100000) != NULL);
        void *l = k_alloc(40000);
        CHECK(l != NULL);
        k_free(l, 40000);
        struct k_stack s[6];
        for (int i = 0; i < 6; i++)
            CHECK_OK(k_stack_alloc(NULL, i == 5 ? 100000 : 0, &s[i]));
        k_stack_free(NULL, &s[0]);
        k_stack_free(NULL, &s[5]);
        CHECK_GT(k_mem_reserved(), 0);
        k_stack_fini();
        k_mem_fini();
        CHECK_EQ(k_mem_reserved(), 0);
#ifdef __linux__
        /* Not one mapping more than after the first run (which may set
         * up the HAL's guard probe and libc's stdio). */
        if (run == 0)
            maps0 = map_count();
        else
            CHECK_EQ(map_count(), maps0);
#endif
    }
}

/* ---- mem_debug: double free and write after free panic (DEBUG) ---- */

#if defined(WEFT_DEBUG) && !defined(_WIN32)
static void double_free_child(void *arg)
{
    (void)arg;
    k_mem_init(NULL);
    void *p = k_alloc(64);
    k_free(p, 64);
    k_free(p, 64);
}

static void write_after_free_child(void *arg)
{
    (void)arg;
    k_mem_init(NULL);
    unsigned char *p = k_alloc(100);
    k_free(p, 100);
    p[40] = 1;
    (void)k_alloc(100); /* the same object comes back: its fill is broken */
}

static void stack_double_free_child(void *arg)
{
    (void)arg;
    k_mem_init(NULL);
    k_stack_init(0, 0);
    struct k_stack s;
    k_stack_alloc(NULL, 0, &s);
    struct k_stack copy = s;
    k_stack_free(NULL, &s);
    k_stack_free(NULL, &copy);
}
#endif

void t_mem_debug(void)
{
#if !defined(WEFT_DEBUG)
    t_skip("the checks exist in DEBUG=1 builds only");
#elif defined(_WIN32)
    t_skip("needs fork");
#else
    static const struct {
        void (*fn)(void *);
        const char *msg;
    } c[] = {
        {double_free_child, "double free"},
        {write_after_free_child, "after it was freed"},
        {stack_double_free_child, "freed twice"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char out[4096];
        int st = in_child(c[i].fn, NULL, out, sizeof out);
        CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 0));
        if (strstr(out, c[i].msg) == NULL) {
            fprintf(stderr, "child said: %s\n", out);
            CHECK(!"missing panic message");
        }
    }
#endif
}

/* ---- stack_basic: sizes, reuse, own-size stacks, bad sizes ---- */

void t_stack_basic(void)
{
    mem_begin();
    k_stack_init(0, 0);
    size_t page = hal_page_size();
    struct k_stack s;
    CHECK_OK(k_stack_alloc(NULL, 0, &s));
    CHECK_EQ((uintptr_t)s.lo % page, 0);
    CHECK_GE(s.guard, page);
    CHECK_EQ((size_t)(s.hi - s.lo) - s.guard, 256 * 1024);
    fill(s.lo + s.guard, (size_t)(s.hi - s.lo) - s.guard, 0xAB);
    char *lo = s.lo;
    k_stack_free(NULL, &s);
    CHECK_OK(k_stack_alloc(NULL, 0, &s)); /* the pool is LIFO */
    CHECK(s.lo == lo);
    /* The default size asked for explicitly is the default. */
    struct k_stack d;
    CHECK_OK(k_stack_alloc(NULL, 256 * 1024, &d));
    CHECK_EQ((size_t)(d.hi - d.lo) - d.guard, 256 * 1024);
    CHECK_GE((size_t)(d.lo - s.lo), (size_t)(s.hi - s.lo)); /* same arena, next slot */

    /* Own sizes: rounded to pages, released when freed. */
    static const size_t sizes[] = {1, 5000, 100000, (size_t)3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t before = k_mem_reserved();
        struct k_stack o;
        CHECK_OK(k_stack_alloc(NULL, sizes[i], &o));
        size_t usable = (size_t)(o.hi - o.lo) - o.guard;
        CHECK_GE(usable, sizes[i]);
        CHECK_EQ(usable % page, 0);
        CHECK_EQ((uintptr_t)o.lo % page, 0);
        CHECK_GT(k_mem_reserved(), before);
        fill(o.lo + o.guard, usable, 0xCD);
        k_stack_free(NULL, &o);
        CHECK_EQ(k_mem_reserved(), before);
    }
    struct k_stack bad;
    CHECK_EQ(k_stack_alloc(NULL, SIZE_MAX, &bad), HAL_ENOMEM);

    uint64_t region, protect, none;
    k_stack_counts(&region, &protect, &none);
    CHECK_EQ(region + protect + none, 2 + 4); /* two default, four own */
    k_stack_free(NULL, &s);
    k_stack_free(NULL, &d);
    mem_end();

    /* A non-default default. */
    mem_begin();
    k_stack_init(100000, 0);
    CHECK_OK(k_stack_alloc(NULL, 0, &s));
    CHECK_GE((size_t)(s.hi - s.lo) - s.guard, 100000);
    CHECK_EQ(((size_t)(s.hi - s.lo) - s.guard) % page, 0);
    mem_end();

    /* Preemption headroom comes on top of every size asked for, the
     * default and the minimum included. */
    size_t head = 3 * page + 100;
    mem_begin();
    k_stack_init(64 * 1024, head);
    CHECK_OK(k_stack_alloc(NULL, 0, &s));
    CHECK_GE((size_t)(s.hi - s.lo) - s.guard, 64 * 1024 + head);
    CHECK_OK(k_stack_alloc(NULL, 1, &d));
    CHECK_GE((size_t)(d.hi - d.lo) - d.guard, 16 * 1024 + head);
    CHECK_EQ(((size_t)(d.hi - d.lo) - d.guard) % page, 0);
    k_stack_free(NULL, &s);
    k_stack_free(NULL, &d);
    mem_end();
}

/* ---- stack_guard: a write just below a stack's usable area faults ---- */

struct guard_case {
    const char *force; /* WEFT_GUARD, or NULL */
    size_t size;       /* stack size, 0 = default */
    int index;         /* which of the first few stacks to fault in */
};

static void guard_child(void *arg)
{
    struct guard_case *g = arg;
    if (g->force)
        setenv("WEFT_GUARD", g->force, 1);
    k_mem_init(NULL);
    k_stack_init(0, 0);
    struct k_stack s[4];
    for (int i = 0; i <= g->index; i++)
        if (k_stack_alloc(NULL, g->size, &s[i]) != 0)
            _exit(3);
    struct k_stack *t = &s[g->index];
    if (t->guard_kind == HAL_GUARD_NONE)
        _exit(4);
    volatile char *usable = t->lo + t->guard;
    signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler: die by the signal */
    usable[0] = 1;            /* the lowest usable byte is fine */
    usable[-1] = 1;           /* the byte below it is the guard */
    _exit(5);
}

void t_stack_guard(void)
{
    static struct guard_case cases[] = {
        {NULL, 0, 0},      {NULL, 0, 2},      {NULL, 100000, 0},
        {"protect", 0, 0}, {"protect", 0, 2}, {"protect", 100000, 1},
    };
    enum { N = sizeof cases / sizeof cases[0] };
#ifdef _WIN32
    /* The child: WEFT_T_CHILD is the index of its case. */
    const char *m = t_child_mode();
    if (m != NULL) {
        int i = atoi(m);
        CHECK(i >= 0 && i < N);
        guard_child(&cases[i]);
    }
#endif
    for (size_t i = 0; i < N; i++) {
        char out[1024];
#ifdef _WIN32
        /* The guard band's first page is PAGE_GUARD (a guard page
         * violation), the rest NOACCESS (an access violation): either is
         * the guard doing its work. */
        char mode[16];
        snprintf(mode, sizeof mode, "%zu", i);
        unsigned long st = in_child("stack_guard", mode, out, sizeof out);
        bool faulted = st == STATUS_GUARD_PAGE_VIOLATION || st == STATUS_ACCESS_VIOLATION;
        bool unguarded = st == 4;
#else
        int st = in_child(guard_child, &cases[i], out, sizeof out);
        bool faulted = WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
        bool unguarded = WIFEXITED(st) && WEXITSTATUS(st) == 4;
#endif
        if (!faulted) {
            fprintf(stderr, "case %zu (WEFT_GUARD=%s size %zu index %d): status %#lx%s\n%s", i,
                    cases[i].force ? cases[i].force : "", cases[i].size, cases[i].index,
                    (unsigned long)st, unguarded ? " (unguarded)" : "", out);
            CHECK(!"a write into the guard did not fault");
        }
    }
}

/* ---- stack_unguarded: counted, flagged, and warned about once ---- */

static void unguarded_child(void *arg)
{
    (void)arg;
    setenv("WEFT_GUARD", "none", 1);
    k_mem_init(NULL);
    k_stack_init(0, 0);
    struct k_stack s[3];
    for (int i = 0; i < 3; i++) {
        if (k_stack_alloc(NULL, i == 2 ? 50000 : 0, &s[i]) != 0)
            _exit(3);
        if (s[i].guard_kind != HAL_GUARD_NONE)
            _exit(4);
    }
    uint64_t region, protect, none;
    k_stack_counts(&region, &protect, &none);
    if (region != 0 || protect != 0 || none != 3)
        _exit(5);
    /* A new run warns again. */
    k_stack_fini();
    k_mem_fini();
    k_mem_init(NULL);
    k_stack_init(0, 0);
    if (k_stack_alloc(NULL, 0, &s[0]) != 0)
        _exit(6);
    k_stack_fini();
    k_mem_fini();
    _exit(k_mem_reserved() == 0 ? 0 : 7);
}

void t_stack_unguarded(void)
{
    char out[4096];
#ifdef _WIN32
    if (t_child_mode() != NULL)
        unguarded_child(NULL);
    unsigned long st = in_child("stack_unguarded", "child", out, sizeof out);
    bool ok = st == 0;
#else
    int st = in_child(unguarded_child, NULL, out, sizeof out);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
#endif
    if (!ok) {
        fprintf(stderr, "child status %#lx, said: %s\n", (unsigned long)st, out);
        CHECK(!"unguarded child failed");
    }
    int warnings = 0;
    for (const char *p = out; (p = strstr(p, "weft: warning:")) != NULL; p++)
        warnings++;
    CHECK_EQ(warnings, 2); /* once per run */
}

/* ---- stack_many: 200k default stacks at once ---- */

void t_stack_many(void)
{
    mem_begin();
    k_stack_init(0, 0);
    int64_t n = t_count(200000);
    if (n > 1000000)
        n = 1000000; /* a page each once freed: keep `make stress` within RAM */
    n = t_live_stacks(n);
    struct k_stack *s = calloc((size_t)n, sizeof *s);
    CHECK(s != NULL);
#ifdef __linux__
    long maps_before = map_count();
#endif
    for (int64_t i = 0; i < n; i++) {
        CHECK_OK(k_stack_alloc(NULL, 0, &s[i]));
        if (i % 64 == 0) { /* touch a sample: top and bottom of the usable part */
            s[i].hi[-1] = 1;
            s[i].lo[s[i].guard] = 1;
        }
    }
    uint64_t region, protect, none;
    k_stack_counts(&region, &protect, &none);
    fprintf(stderr,
            "stack_many: %lld stacks: region %llu, protect %llu, none %llu; reserved %llu MiB\n",
            (long long)n, (unsigned long long)region, (unsigned long long)protect,
            (unsigned long long)none, (unsigned long long)(k_mem_reserved() >> 20));
    CHECK_EQ(region + protect + none, (uint64_t)n);
    if (s[0].guard_kind == HAL_GUARD_REGION) {
        /* The kernel enforces guard regions (native Linux >= 6.13): every
         * stack must have one, at no cost in mappings. */
        CHECK_EQ(none, 0);
        CHECK_EQ(protect, 0);
#ifdef __linux__
        long maps_after = map_count();
        fprintf(stderr, "stack_many: mappings %ld before, %ld after\n", maps_before, maps_after);
        CHECK_LT(maps_after - maps_before, 1000);
#endif
    } else {
        fprintf(stderr,
                "stack_many: guard regions not in use here (old kernel, emulator or WEFT_GUARD)\n");
    }
    /* No two stacks overlap. */
    uintptr_t *lo = malloc(sizeof *lo * (size_t)n);
    CHECK(lo != NULL);
    for (int64_t i = 0; i < n; i++)
        lo[i] = (uintptr_t)s[i].lo;
    qsort(lo, (size_t)n, sizeof *lo, cmp_ptr);
    size_t stride = (size_t)(s[0].hi - s[0].lo);
    for (int64_t i = 0; i + 1 < n; i++)
        CHECK_GE(lo[i + 1] - lo[i], stride);
    free(lo);

    /* All back, all again: reused, nothing new is created or reserved
     * beyond the pool's own bookkeeping. */
    uint64_t reserved = k_mem_reserved();
    for (int64_t i = 0; i < n; i++)
        k_stack_free(NULL, &s[i]);
    for (int64_t i = 0; i < n; i++)
        CHECK_OK(k_stack_alloc(NULL, 0, &s[i]));
    uint64_t r2, p2, n2;
    k_stack_counts(&r2, &p2, &n2);
    CHECK_EQ(r2 + p2 + n2, (uint64_t)n);
    CHECK_LE(k_mem_reserved(), reserved + (uint64_t)(n / 1000 + 2) * 65536);
    free(s);
    mem_end();
}

/* ---- stack_discard: stacks past the hot list give their memory back ---- */

void t_stack_discard(void)
{
#ifndef __linux__
    t_skip("measures RSS through /proc");
#else
    mem_begin();
    k_stack_init(0, 0);
    enum { N = 600, DEEP = 64 * 1024 };
    static struct k_stack s[N];
    for (int i = 0; i < N; i++) {
        CHECK_OK(k_stack_alloc(NULL, 0, &s[i]));
        fill(s[i].lo + s[i].guard, DEEP, 0xEE); /* the deep end of the stack */
    }
    long long rss_used = rss_bytes();
    for (int i = 0; i < N; i++)
        k_stack_free(NULL, &s[i]);
    long long rss_freed = rss_bytes();
    fprintf(stderr, "stack_discard: RSS %lld MiB with %d stacks used, %lld MiB after freeing\n",
            rss_used >> 20, N, rss_freed >> 20);
    /* At most HOT_MAX (256) stay hot; the rest give back DEEP each. */
    CHECK_LE(rss_freed, rss_used - (long long)(N - 256) * DEEP + (4 << 20));
    /* Taken again: the discarded ones read back as zero (Linux). */
    int zeroed = 0, kept = 0;
    for (int i = 0; i < N; i++) {
        CHECK_OK(k_stack_alloc(NULL, 0, &s[i]));
        unsigned char *deep = (unsigned char *)s[i].lo + s[i].guard;
        if (filled(deep, DEEP, 0))
            zeroed++;
        else if (filled(deep, DEEP, 0xEE))
            kept++;
    }
    CHECK_EQ(zeroed + kept, N);
    CHECK_GE(zeroed, N - 256);
    CHECK_GE(kept, 1);
    mem_end();
#endif
}

/* ---- mem_tasks: per-proc caches, objects freed on other procs ---- */

struct msg {
    unsigned char *p;
    size_t n;
    unsigned char b;
};

static weft_chan *tasks_ch;
static weft_waitgroup tasks_producers, tasks_consumers;
static int64_t tasks_n;
static atomic_long tasks_freed;

static void tasks_producer(void *arg)
{
    uint64_t r = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    struct msg local[64];
    memset(local, 0, sizeof local);
    for (int64_t i = 0; i < tasks_n; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        size_t n =
            (r % 100 == 0) ? 32769 + (size_t)(r >> 40) % 70000 : 1 + (size_t)(r >> 40) % 3000;
        struct msg m = {k_alloc(n), n, (unsigned char)(r >> 8)};
        CHECK(m.p != NULL);
        fill(m.p, n, m.b);
        if (r & 1) { /* freed by a consumer, likely on another proc */
            CHECK_OK(weft_chan_send(tasks_ch, &m));
        } else { /* kept a while, freed here */
            struct msg *l = &local[(r >> 16) % 64];
            if (l->p) {
                CHECK(filled(l->p, l->n, l->b));
                k_free(l->p, l->n);
            }
            *l = m;
        }
        if (i % 256 == 0)
            weft_yield();
    }
    for (int i = 0; i < 64; i++)
        if (local[i].p) {
            CHECK(filled(local[i].p, local[i].n, local[i].b));
            k_free(local[i].p, local[i].n);
        }
    weft_wg_done(&tasks_producers);
}

static void tasks_consumer(void *arg)
{
    (void)arg;
    struct msg m;
    while (weft_chan_recv(tasks_ch, &m) == 1) {
        CHECK(filled(m.p, m.n, m.b));
        k_free(m.p, m.n);
        atomic_fetch_add(&tasks_freed, 1);
    }
    weft_wg_done(&tasks_consumers);
}

static void tasks_main(void *arg)
{
    (void)arg;
    enum { PRODUCERS = 4, CONSUMERS = 3 };
    tasks_ch = weft_chan_make(sizeof(struct msg), 32);
    CHECK(tasks_ch != NULL);
    memset(&tasks_producers, 0, sizeof tasks_producers);
    memset(&tasks_consumers, 0, sizeof tasks_consumers);
    CHECK_OK(weft_wg_add(&tasks_producers, PRODUCERS));
    CHECK_OK(weft_wg_add(&tasks_consumers, CONSUMERS));
    for (int i = 0; i < PRODUCERS; i++)
        CHECK_OK(weft_go(tasks_producer, (void *)(uintptr_t)(i + 1)));
    for (int i = 0; i < CONSUMERS; i++)
        CHECK_OK(weft_go(tasks_consumer, NULL));
    CHECK_OK(weft_wg_wait(&tasks_producers));
    CHECK_OK(weft_chan_close(tasks_ch));
    CHECK_OK(weft_wg_wait(&tasks_consumers));
    weft_chan_free(tasks_ch);
    struct weft_stats st;
    CHECK_OK(weft_stats(&st));
    fprintf(stderr, "mem_tasks: procs %d: %ld objects freed by consumers, reserved %llu MiB\n",
            weft_procs(), atomic_load(&tasks_freed), (unsigned long long)(st.mem_reserved >> 20));
}

void t_mem_tasks(void)
{
    tasks_n = t_count(300000);
    for (int i = 0; i < 4; i++) {
        atomic_store(&tasks_freed, 0);
        t_run(tasks_main, NULL, t_procs_list[i]);
        CHECK_GT(atomic_load(&tasks_freed), 0);
        CHECK_EQ(k_mem_reserved(), 0);
    }
}
