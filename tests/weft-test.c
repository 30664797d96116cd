/* SPDX-License-Identifier: MIT */
/*
 * weft-test.c — the test binary's main and the harness behind check.h.
 *
 *   weft-test list                     one line per case: name timeout_ms flags
 *   weft-test run NAME                 runs t_NAME(); exit 0 if it returns
 *   weft-test bench-list               one line per scenario: name summary
 *   weft-test bench NAME [key=value]   runs b_NAME(); JSON lines on stdout
 *
 * A passing run ends with the line "weft-test: NAME passed" on stdout.
 * Exit codes: 0 pass, 1 a CHECK failed, 77 skipped (t_skip; the reason is on
 * stderr as "skip: ..."), 2 usage error or unknown name, 3 the watchdog fired
 * (WEFT_TEST_WATCHDOG below). Every case runs in
 * its own process (tests/conftest.py starts one per case), so a case may
 * leave the process in any state.
 *
 * Environment read here (set by the runner):
 *   WEFT_TEST_SCALE     1..10: F_SCALED counts are divided by it (slow targets)
 *   WEFT_TEST_STRESS    >= 1: every t_count() is multiplied by it (make stress)
 *   WEFT_TEST_WATCHDOG  ms: a case or scenario still running then prints what
 *                       the run is doing (watchdog below) and exits 3; the
 *                       runner sets it a little short of its own timeout, so
 *                       that a hang leaves a report instead of a bare kill
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#ifdef _WIN32
#include <windows.h>

#include "hal/win32/win32.h"
#else
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#endif

/* Declarations of every case and scenario. */
#define CASE(name, timeout_ms, flags) void t_##name(void);
#define BENCH(name, summary) void b_##name(void);
#include "cases.h"
#undef CASE
#undef BENCH

struct test_case {
    const char *name;
    void (*fn)(void);
    int timeout_ms;
    unsigned flags;
};

struct bench_case {
    const char *name;
    void (*fn)(void);
    const char *summary;
};

/* Each table ends with a NULL sentinel, so an empty list still compiles. */
static const struct test_case cases[] = {
#define CASE(name, timeout_ms, flags) {#name, t_##name, (timeout_ms), (flags)},
#define BENCH(name, summary)
#include "cases.h"
#undef CASE
#undef BENCH
    {NULL, NULL, 0, 0},
};

static const struct bench_case benches[] = {
#define CASE(name, timeout_ms, flags)
#define BENCH(name, summary) {#name, b_##name, (summary)},
#include "cases.h"
#undef CASE
#undef BENCH
    {NULL, NULL, NULL},
};

/* Flags of the case that is running (t_count looks at F_SCALED). Not in
 * check.h: only t_harness.c touches it, to test t_count itself. */
unsigned t_current_flags;

const int t_procs_list[4] = {1, 2, 4, 8};

/* ---- check.h ------------------------------------------------------------ */

_Noreturn void t_skip(const char *why)
{
    fflush(stdout);
    fprintf(stderr, "skip: %s\n", why);
    fflush(NULL);
    _Exit(77);
}

/* A small positive integer from the environment, or dflt. */
static int64_t env_int(const char *name, int64_t dflt, int64_t lo, int64_t hi)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "weft-test: bad %s=%s (want %lld..%lld)\n", name, s, (long long)lo,
                (long long)hi);
        fflush(NULL);
        _Exit(2);
    }
    return v;
}

int64_t t_count(int64_t n)
{
    if (n <= 0)
        return n;
    if (t_current_flags & F_SCALED) {
        int64_t scale = env_int("WEFT_TEST_SCALE", 1, 1, 10);
        n /= scale;
        if (n < 1)
            n = 1;
    }
    int64_t stress = env_int("WEFT_TEST_STRESS", 1, 1, 1000000);
    if (n > INT64_MAX / stress)
        return INT64_MAX;
    return n * stress;
}

int64_t t_live_stacks(int64_t n)
{
#ifdef _WIN32
    return n > 10000 ? 10000 : n;
#else
    return n;
#endif
}

#ifdef _WIN32
/* ---- child processes (Windows has no fork) ---- */

/* The unhandled-exception filter the C runtime installed at start-up. */
static LPTOP_LEVEL_EXCEPTION_FILTER crt_filter;

/* Ends the process with the exception's code, as Windows does with an
 * unhandled exception when no debugger is configured. Wine would start
 * winedbg there whatever the error mode, and a debugger changes how a
 * crash ends; the C runtime's own filter (its signal() handlers) runs
 * first. */
static LONG WINAPI child_unhandled(EXCEPTION_POINTERS *ep)
{
    LONG r = crt_filter != NULL ? crt_filter(ep) : EXCEPTION_CONTINUE_SEARCH;
    if (r != EXCEPTION_CONTINUE_SEARCH)
        return r;
    fflush(NULL);
    TerminateProcess(GetCurrentProcess(), ep->ExceptionRecord->ExceptionCode);
    return EXCEPTION_EXECUTE_HANDLER;
}

/* Which part of a case this process runs: NULL in the case itself, the
 * value of WEFT_T_CHILD in a child it started (which then dies of an
 * unhandled exception as described at child_unhandled). */
const char *t_child_mode(void)
{
    const char *m = getenv("WEFT_T_CHILD");
    if (m == NULL || *m == '\0')
        return NULL;
    crt_filter = SetUnhandledExceptionFilter(child_unhandled);
    return m;
}

/* Starts `weft-test.exe run CASE` again with WEFT_T_CHILD=mode, our
 * stdin and stdout, and its stderr on err (NULL: ours). Returns the
 * process's handle, for child_wait. */
void *t_child_start(const char *casename, const char *mode, void *err)
{
    char exe[MAX_PATH], cmd[2 * MAX_PATH];
    DWORD n = GetModuleFileNameA(NULL, exe, sizeof exe);
    CHECK(n > 0 && n < sizeof exe);
    snprintf(cmd, sizeof cmd, "\"%s\" run %s", exe, casename);
    HANDLE self = GetCurrentProcess(), std[3];
    DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    for (int i = 0; i < 3; i++) {
        HANDLE h = i == 2 && err != NULL ? err : GetStdHandle(which[i]);
        std[i] = NULL;
        if (h != NULL && h != INVALID_HANDLE_VALUE)
            DuplicateHandle(self, h, self, &std[i], 0, TRUE, DUPLICATE_SAME_ACCESS);
    }
    STARTUPINFOA si;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = std[0];
    si.hStdOutput = std[1];
    si.hStdError = std[2];
    PROCESS_INFORMATION pi;
    fflush(NULL);
    CHECK(SetEnvironmentVariableA("WEFT_T_CHILD", mode));
    BOOL ok = CreateProcessA(exe, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
    SetEnvironmentVariableA("WEFT_T_CHILD", NULL);
    for (int i = 0; i < 3; i++)
        if (std[i] != NULL)
            CloseHandle(std[i]);
    CHECK(ok);
    CloseHandle(pi.hThread);
    return pi.hProcess;
}

/* Waits for a child to end and returns its exit code. */
unsigned long t_child_wait(void *proc)
{
    CHECK_EQ(WaitForSingleObject(proc, INFINITE), WAIT_OBJECT_0);
    DWORD code = 0;
    CHECK(GetExitCodeProcess(proc, &code));
    CloseHandle(proc);
    return code;
}

/* Runs a child (child_start) to its end: its exit code. */
unsigned long t_child_run(const char *casename, const char *mode)
{
    return t_child_wait(t_child_start(casename, mode, NULL));
}
#endif

bool t_async_preempt(void)
{
#ifdef WEFT_SAN_TSAN
    return false;
#else
    const char *pre = getenv("WEFT_PREEMPT");
    return !(pre && strcmp(pre, "0") == 0);
#endif
}

void t_need_async_preempt(void)
{
    if (!t_async_preempt())
        t_skip("needs asynchronous preemption (off: WEFT_PREEMPT=0 or a TSan build)");
}

void t_skip_if_tsan_maps(void)
{
#ifdef WEFT_SAN_TSAN
    t_skip("counts the process's mappings, and TSan's runtime maps memory of its own");
#endif
}

int64_t t_slack(void)
{
    return env_int("WEFT_TEST_TIMEOUT_MULT", 1, 1, 100);
}

void t_run(void (*fn)(void *), void *arg, int procs)
{
    weft_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.procs = procs;
    int rc = weft_run(fn, arg, &cfg);
    if (rc != 0)
        fprintf(stderr, "weft_run(procs=%d): %s\n", procs, weft_strerror(rc));
    CHECK_EQ(rc, 0);
}

/* Bench parameters from the command line. */
#define MAX_PARAMS 32
static struct {
    const char *key;
    const char *value;
    int used;
} params[MAX_PARAMS];
static int nparams;

/* Parses "123", "-5", "10k", "2M", "1G" (decimal multipliers). */
static int parse_param(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    int64_t mul = 1;
    if (*end == 'k' || *end == 'K')
        mul = 1000, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1000000, end++;
    else if (*end == 'g' || *end == 'G')
        mul = 1000000000, end++;
    if (*end != '\0')
        return -1;
    if (v > INT64_MAX / mul || v < INT64_MIN / mul)
        return -1;
    *out = (int64_t)v * mul;
    return 0;
}

int64_t t_param(const char *key, int64_t dflt)
{
    for (int i = nparams - 1; i >= 0; i--) {
        if (strcmp(params[i].key, key) != 0)
            continue;
        int64_t v;
        if (parse_param(params[i].value, &v) != 0) {
            fprintf(stderr, "weft-test: bad value %s=%s (an integer, optional k/M/G)\n", key,
                    params[i].value);
            fflush(NULL);
            _Exit(2);
        }
        params[i].used = 1;
        return v;
    }
    return dflt;
}

/* Writes s as a JSON string. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s != NULL && *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

void t_bench_emit(const char *scenario, int procs, int64_t n, const char *metric, double value,
                  const char *unit, const char *better, int64_t check, int ok)
{
    FILE *f = stdout;
    fputs("{\"scenario\":", f);
    json_str(f, scenario);
    fprintf(f, ",\"impl\":\"weft\",\"procs\":%d,\"n\":%" PRId64 ",\"metric\":", procs, n);
    json_str(f, metric);
    /* NaN and infinities are not JSON. */
    if (value == value && value - value == 0)
        fprintf(f, ",\"value\":%.9g,\"unit\":", value);
    else
        fputs(",\"value\":null,\"unit\":", f);
    json_str(f, unit);
    fputs(",\"better\":", f);
    json_str(f, better);
    fprintf(f, ",\"check\":%" PRId64 ",\"ok\":%s}\n", check, ok ? "true" : "false");
    fflush(f);
}

/* ---- the watchdog ------------------------------------------------------- */

/* A hang in a case is a bug to find, and the runner's kill says nothing
 * about it. So a plain OS thread (not a task: the run may be wedged) wakes
 * at WEFT_TEST_WATCHDOG ms and prints the run's counters twice, a second
 * apart (whether the scheduler and the monitor still move), the port's
 * suspension counts on Windows, and weft_dump (every task and where it
 * waits), then ends the process with status 3. */

static int64_t watchdog_ms;

/* watchdog_stop's signal: the thread waits on it with its deadline, so
 * that it can be joined before the process ends (a live thread at exit
 * costs a second in TSan builds, which sleep then to catch races at
 * exit: 60 s of tests took 200). */
#ifdef _WIN32
static HANDLE watchdog_thread, watchdog_done;
#else
static pthread_t watchdog_thread;
static pid_t watchdog_pid; /* a fork()ed child has no watchdog to join */
static pthread_mutex_t watchdog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t watchdog_cond;
static bool watchdog_stopped; /* under watchdog_lock */
#endif

/* Waits until the watchdog's time: true, or until watchdog_stop: false. */
static bool watchdog_wait(void)
{
#ifdef _WIN32
    return WaitForSingleObject(watchdog_done, (DWORD)watchdog_ms) == WAIT_TIMEOUT;
#else
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += watchdog_ms / 1000;
    until.tv_nsec += watchdog_ms % 1000 * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&watchdog_lock);
    int e = 0;
    while (!watchdog_stopped && e != ETIMEDOUT)
        e = pthread_cond_timedwait(&watchdog_cond, &watchdog_lock, &until);
    bool fire = !watchdog_stopped;
    pthread_mutex_unlock(&watchdog_lock);
    return fire;
#endif
}

static void nap_ms(int64_t ms)
{
#ifdef _WIN32
    Sleep((DWORD)ms);
#else
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
#endif
}

static void watchdog_counts(const char *when)
{
    struct weft_stats s;
    memset(&s, 0, sizeof s);
    weft_stats(&s);
    fprintf(stderr,
            "weft-test: watchdog %s: tasks=%llu threads=%llu procs=%llu idle=%llu "
            "spinning=%llu switches=%llu steals=%llu preemptions=%llu retakes=%llu "
            "lent=%llu pollwakeups=%llu timers=%llu\n",
            when, (unsigned long long)s.tasks, (unsigned long long)s.threads,
            (unsigned long long)s.procs, (unsigned long long)s.idle_procs,
            (unsigned long long)s.spinning_threads, (unsigned long long)s.context_switches,
            (unsigned long long)s.steals, (unsigned long long)s.preemptions,
            (unsigned long long)s.syscall_retakes, (unsigned long long)s.lent_procs,
            (unsigned long long)s.poller_wakeups, (unsigned long long)s.timers);
#ifdef _WIN32
    fprintf(stderr, "weft-test: watchdog %s: suspensions redirected=%lld declined=%lld\n", when,
            (long long)hal_win32_preempt_count(HAL_WIN32_PC_REDIRECTED),
            (long long)hal_win32_preempt_count(HAL_WIN32_PC_DECLINED));
#endif
    fflush(stderr);
}

#ifdef _WIN32
static DWORD WINAPI watchdog_main(void *arg)
#else
static void *watchdog_main(void *arg)
#endif
{
    (void)arg;
    if (!watchdog_wait()) {
#ifdef _WIN32
        return 0;
#else
        return NULL;
#endif
    }
    fprintf(stderr, "weft-test: watchdog: still running after %lld ms; what the run is doing:\n",
            (long long)watchdog_ms);
    watchdog_counts("at");
    nap_ms(1000);
    watchdog_counts("1 s later");
    weft_dump();
    fflush(NULL);
#ifdef _WIN32
    /* As exit's handler does: no suspension may be under way when the
     * process ends (hal/win32/preempt.c), and _Exit skips that handler. */
    hal_win32_preempt_stop();
#endif
    _Exit(3);
#ifdef _WIN32
    return 0;
#else
    return NULL;
#endif
}

/* Starts the watchdog when WEFT_TEST_WATCHDOG asks for one. */
static void watchdog_start(void)
{
    watchdog_ms = env_int("WEFT_TEST_WATCHDOG", 0, 0, INT32_MAX);
    if (watchdog_ms == 0)
        return;
#ifdef _WIN32
    watchdog_done = CreateEventW(NULL, TRUE, FALSE, NULL);
    watchdog_thread = watchdog_done ? CreateThread(NULL, 0, watchdog_main, NULL, 0, NULL) : NULL;
    if (watchdog_thread == NULL) {
        fprintf(stderr, "weft-test: the watchdog thread: error %lu\n", GetLastError());
        _Exit(2);
    }
#else
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&watchdog_cond, &a);
    pthread_condattr_destroy(&a);
    watchdog_pid = getpid();
    int e = pthread_create(&watchdog_thread, NULL, watchdog_main, NULL);
    if (e != 0) {
        fprintf(stderr, "weft-test: the watchdog thread: %s\n", strerror(e));
        _Exit(2);
    }
#endif
}

/* The case or scenario returned: the watchdog ends, and is joined. */
static void watchdog_stop(void)
{
    if (watchdog_ms == 0)
        return;
#ifdef _WIN32
    SetEvent(watchdog_done);
    WaitForSingleObject(watchdog_thread, INFINITE);
    CloseHandle(watchdog_thread);
    CloseHandle(watchdog_done);
#else
    if (getpid() != watchdog_pid)
        return;
    pthread_mutex_lock(&watchdog_lock);
    watchdog_stopped = true;
    pthread_cond_signal(&watchdog_cond);
    pthread_mutex_unlock(&watchdog_lock);
    pthread_join(watchdog_thread, NULL);
#endif
    watchdog_ms = 0;
}

/* ---- main --------------------------------------------------------------- */

static void print_flags(unsigned flags)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{F_SCALED, "scaled"},
                 {F_STRESS, "stress"},
                 {F_NOWINE, "nowine"},
                 {F_CRASH, "crash"},
                 {F_WINONLY, "winonly"}};
    const char *sep = "";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (flags & names[i].bit) {
            printf("%s%s", sep, names[i].name);
            sep = ",";
            flags &= ~names[i].bit;
        }
    }
    if (flags != 0) {
        printf("%s0x%x", sep, flags);
        sep = ",";
    }
    if (*sep == '\0')
        printf("-");
}

static int usage(void)
{
    fprintf(stderr, "usage: weft-test list\n"
                    "       weft-test run CASE\n"
                    "       weft-test bench-list\n"
                    "       weft-test bench SCENARIO [key=value ...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *cmd = argv[1];

    if (strcmp(cmd, "list") == 0 && argc == 2) {
        for (const struct test_case *c = cases; c->name != NULL; c++) {
            printf("%s %d ", c->name, c->timeout_ms);
            print_flags(c->flags);
            printf("\n");
        }
        return 0;
    }

    if (strcmp(cmd, "bench-list") == 0 && argc == 2) {
        for (const struct bench_case *b = benches; b->name != NULL; b++)
            printf("%s %s\n", b->name, b->summary);
        return 0;
    }

    if (strcmp(cmd, "run") == 0 && argc == 3) {
        for (const struct test_case *c = cases; c->name != NULL; c++) {
            if (strcmp(c->name, argv[2]) != 0)
                continue;
            t_current_flags = c->flags;
            watchdog_start();
            c->fn();
            watchdog_stop();
            /* The closing line: the runner passes a case only when it sees
             * it, never on the exit status alone (under Wine a crash can
             * end with status 0). */
            printf("weft-test: %s passed\n", c->name);
            fflush(NULL);
            return 0;
        }
        fprintf(stderr, "weft-test: unknown case '%s' (weft-test list)\n", argv[2]);
        return 2;
    }

    if (strcmp(cmd, "bench") == 0 && argc >= 3) {
        const struct bench_case *b = benches;
        while (b->name != NULL && strcmp(b->name, argv[2]) != 0)
            b++;
        if (b->name == NULL) {
            fprintf(stderr, "weft-test: unknown scenario '%s' (weft-test bench-list)\n", argv[2]);
            return 2;
        }
        for (int i = 3; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (eq == NULL || eq == argv[i] || nparams == MAX_PARAMS) {
                fprintf(stderr, "weft-test: bad parameter '%s' (key=value)\n", argv[i]);
                return 2;
            }
            *eq = '\0';
            params[nparams].key = argv[i];
            params[nparams].value = eq + 1;
            nparams++;
        }
        watchdog_start();
        b->fn();
        watchdog_stop();
        for (int i = 0; i < nparams; i++)
            if (!params[i].used)
                fprintf(stderr, "weft-test: warning: parameter '%s' not used by %s\n",
                        params[i].key, b->name);
        fflush(NULL);
        return 0;
    }

    return usage();
}
