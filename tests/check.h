/* SPDX-License-Identifier: MIT */
/*
 * check.h — what every test case uses: checks that print both values and
 * file:line, skipping, scaling counts for slow targets, and the bench output.
 *
 * A case is `void t_NAME(void)` listed in cases.h. It passes by returning;
 * a failed CHECK prints and exits 1; t_skip() exits 77 with a reason.
 */
#ifndef WEFT_TEST_CHECK_H
#define WEFT_TEST_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#ifdef _WIN32
/* The C runtime's environment, which getenv (and so weft) reads. */
#define setenv(name, value, overwrite) _putenv_s((name), (value))
#define unsetenv(name) _putenv_s((name), "")
#endif

/* A case or scenario whose file is not built on this target (its cases
 * carry F_NOWINE in cases.h, with the reason): a stub that skips. */
#define T_NOT_BUILT(fn, why)                                                                       \
    void fn(void)                                                                                  \
    {                                                                                              \
        t_skip(why);                                                                               \
    }

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            fflush(NULL);                                                                          \
            _Exit(1);                                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_OP_(a, op, b)                                                                        \
    do {                                                                                           \
        int64_t a_ = (int64_t)(a), b_ = (int64_t)(b);                                              \
        if (!(a_ op b_)) {                                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s %s %s (%" PRId64 " vs %" PRId64 ")\n",        \
                    __FILE__, __LINE__, #a, #op, #b, a_, b_);                                      \
            fflush(NULL);                                                                          \
            _Exit(1);                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_EQ(a, b) CHECK_OP_(a, ==, b)
#define CHECK_NE(a, b) CHECK_OP_(a, !=, b)
#define CHECK_LT(a, b) CHECK_OP_(a, <, b)
#define CHECK_LE(a, b) CHECK_OP_(a, <=, b)
#define CHECK_GT(a, b) CHECK_OP_(a, >, b)
#define CHECK_GE(a, b) CHECK_OP_(a, >=, b)
/* A weft call that must return 0. */
#define CHECK_OK(call) CHECK_EQ((call), 0)

/* Case flags (cases.h). */
#define F_NONE 0
#define F_SCALED 1u /* counts go through t_count(), divided by up to 10 on slow targets */
#define F_STRESS 2u /* only in `make stress` */
#define F_NOWINE 4u /* not on windows-x86_64 (reason in cases.h) */
#define F_CRASH                                                                                    \
    8u                /* must end the process abnormally: run by test_crash.py, which              \
                         checks the exit status and the message, not by the generic runner */
#define F_WINONLY 16u /* only on windows-x86_64 (the port's own cases) */

/* Skips the case (exit 77) with a reason. */
_Noreturn void t_skip(const char *why);

/* n, or n divided by WEFT_TEST_SCALE (1..10, set by the runner for slow
 * targets such as qemu) when the running case has F_SCALED. Multiplied by
 * WEFT_TEST_STRESS (>= 1) in `make stress`. */
int64_t t_count(int64_t n);

/* n, capped where the host limits how many task stacks can live at once:
 * under Wine every reserved, committed or guarded range is a Linux mapping
 * of its own, and the host's vm.max_map_count (65530 by default) ends a
 * run early (measured: ENOMEM near 33k default stacks in sched_park_1m,
 * between 12.5k and 16.7k of timer_many's 16 KiB stacks); Windows itself
 * has no such limit. 10,000 there, n elsewhere. */
int64_t t_live_stacks(int64_t n);

#ifdef _WIN32
/* Windows has no fork: a case that must run something in a process of
 * its own (a crash, a fresh environment) starts weft-test.exe again for
 * itself. t_child_mode() is NULL in the case and the mode string in such a
 * child, which also ends with the exception's code (e.g. 0xC0000005) if
 * one goes unhandled, as Windows does without a debugger.
 * t_child_start(case, mode, err) starts one with our stdin and stdout and
 * its stderr on the HANDLE err (NULL: ours) and returns its process
 * HANDLE; t_child_wait(proc) waits for it and returns its exit code;
 * t_child_run(case, mode) is both with our stderr. HANDLEs are void *
 * here so that this header needs no windows.h. */
const char *t_child_mode(void);
void *t_child_start(const char *casename, const char *mode, void *err);
unsigned long t_child_wait(void *proc);
unsigned long t_child_run(const char *casename, const char *mode);
#endif

/* Whether tasks can be preempted asynchronously in this process: not with
 * WEFT_PREEMPT=0, nor in a ThreadSanitizer build (hal/posix/preempt.c says
 * why). A case whose tasks spin without a scheduler call skips otherwise. */
bool t_async_preempt(void);

/* Skips the case unless t_async_preempt(). */
void t_need_async_preempt(void);

/* Skips the case in a ThreadSanitizer build, whose runtime maps memory of
 * its own at any time: for the cases that count the process's mappings. */
void t_skip_if_tsan_maps(void);

/* How much slower than native the target runs (WEFT_TEST_TIMEOUT_MULT: 1
 * natively, 8 under qemu): a timing bound that checks against starvation
 * is multiplied by it, so that emulation does not make it flaky. */
int64_t t_slack(void);

/* Runs fn under weft_run with the given procs (0 = default/env) and
 * CHECKs that it returned 0. */
void t_run(void (*fn)(void *), void *arg, int procs);

/* Procs values that contention cases loop over: 1, 2, 4, 8. */
extern const int t_procs_list[4];

/* Bench output: one JSON line on stdout.
 *   metric  what value measures ("ns_per_task")
 *   better  "lower" or "higher"
 *   check   the scenario's own result check (a count or checksum), so a
 *           bench that does nothing fails instead of winning; ok = 1 if it
 *           matched the expected value. */
void t_bench_emit(const char *scenario, int procs, int64_t n, const char *metric, double value,
                  const char *unit, const char *better, int64_t check, int ok);

/* Bench parameters: key=value from the command line, or dflt. */
int64_t t_param(const char *key, int64_t dflt);

#endif /* WEFT_TEST_CHECK_H */
