/* SPDX-License-Identifier: MIT */
/*
 * floor_timerfd.c — the raw OS floor for the sleep scenario: a bare
 * timerfd wait, no runtime in between. Same interface and output as
 * weft-test's and weft-bench-go's sleep scenario (docs/benchmarks.md):
 *
 *   floor_timerfd list
 *   floor_timerfd sleep [dur_us=100] [n=500] [procs=N]
 *
 * Each sample arms a one-shot relative timerfd for dur_us, blocks in read()
 * until it expires, and records actual minus requested. Prints the overshoot
 * p50 and p99 in µs as JSON lines with "impl":"os-floor". procs is accepted
 * and echoed (one thread here); check = samples that did not return early.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted s[0..n). */
static int64_t pct(const int64_t *s, int64_t n, double q)
{
    int64_t i = (int64_t)(q * (double)n + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return s[i];
}

static void emit(int procs, int64_t n, const char *metric, double value, int64_t check, int ok)
{
    printf("{\"scenario\":\"sleep\",\"impl\":\"os-floor\",\"procs\":%d,\"n\":%lld,"
           "\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"us\",\"better\":\"lower\","
           "\"check\":%lld,\"ok\":%s}\n",
           procs, (long long)n, metric, value, (long long)check, ok ? "true" : "false");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        puts("sleep\tbare timerfd wait of dur_us, n times: overshoot p50/p99");
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "sleep") != 0) {
        fprintf(stderr, "usage: floor_timerfd list | sleep [dur_us=N] [n=N] [procs=N]\n");
        return 2;
    }
    int64_t dur_us = 100, n = 500, procs = 1;
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "floor_timerfd: %s is not key=value\n", argv[i]);
            return 2;
        }
        int64_t v = strtoll(eq + 1, NULL, 10);
        size_t k = (size_t)(eq - argv[i]);
        if (k == 6 && strncmp(argv[i], "dur_us", k) == 0)
            dur_us = v;
        else if (k == 1 && argv[i][0] == 'n')
            n = v;
        else if (k == 5 && strncmp(argv[i], "procs", k) == 0)
            procs = v;
        else {
            fprintf(stderr, "floor_timerfd: unknown parameter %s\n", argv[i]);
            return 2;
        }
    }
    if (n < 1 || dur_us < 1)
        return 2;
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    int64_t *over = malloc((size_t)n * sizeof *over);
    if (fd < 0 || !over) {
        perror("floor_timerfd");
        return 1;
    }
    int64_t d = dur_us * 1000, not_early = 0;
    struct itimerspec its = {.it_value = {.tv_sec = d / 1000000000, .tv_nsec = d % 1000000000}};
    for (int64_t i = 0; i < n; i++) {
        uint64_t fired;
        int64_t t0 = now_ns();
        if (timerfd_settime(fd, 0, &its, NULL) != 0 || read(fd, &fired, sizeof fired) != 8) {
            perror("floor_timerfd");
            return 1;
        }
        over[i] = now_ns() - t0 - d;
        not_early += over[i] >= 0;
    }
    qsort(over, (size_t)n, sizeof *over, cmp_i64);
    emit((int)procs, n, "overshoot_p50", (double)pct(over, n, 0.50) / 1e3, not_early,
         not_early == n);
    emit((int)procs, n, "overshoot_p99", (double)pct(over, n, 0.99) / 1e3, not_early,
         not_early == n);
    return 0;
}
