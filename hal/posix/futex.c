/* SPDX-License-Identifier: MIT */
/*
 * futex.c (posix: Linux) — the thread-level wait kern builds its locks
 * and idle parking on: futex(2) on a 32-bit word, private to the process,
 * and a plain sleep for backoff.
 *
 * FUTEX_WAIT_PRIVATE takes a relative timeout measured on CLOCK_MONOTONIC,
 * which is what kern passes (a duration), so no clock is read here. A
 * signal (preemption is signal-driven) may end a wait early with EINTR;
 * that is reported as a spurious wake-up, which hal.h allows and every
 * caller loops on. A BSD port would use umtx (FreeBSD) or
 * __ulock_wait (macOS) behind the same two functions.
 */
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

/* Sleeps while *addr == expect, up to timeout_ns (< 0: forever). The
 * kernel compares and sleeps atomically with respect to hal_futex_wake.
 * Returns HAL_ETIMEDOUT when the timeout ran out, else 0: woken, the word
 * differed (EAGAIN), interrupted (EINTR) or any other error (EFAULT or
 * EINVAL would be kern bugs, and the caller re-checks its condition
 * anyway). Blocks the thread. A bare system call, so async-signal-safe,
 * though kern never waits in a handler. */
int hal_futex_wait(uint32_t *addr, uint32_t expect, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, expect, tsp, NULL, 0);
    if (r == -1 && errno == ETIMEDOUT)
        return HAL_ETIMEDOUT;
    return 0;
}

/* Wakes up to n waiters (n <= 0: none; INT32_MAX: all). Never blocks;
 * a single system call, async-signal-safe. */
void hal_futex_wake(uint32_t *addr, int32_t n)
{
    if (n <= 0)
        return;
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* nanosleep for ns (<= 0: returns at once), continuing with the remainder
 * after a signal, so the whole time passes. Blocks the thread. */
void hal_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec req = {
        .tv_sec = (time_t)(ns / 1000000000),
        .tv_nsec = (long)(ns % 1000000000),
    };
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
}
