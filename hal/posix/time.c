/* SPDX-License-Identifier: MIT */
/*
 * time.c (posix) — the two clocks kern reads: monotonic for everything
 * it times (timers, deadlines, the monitor's ticks), wall for what it
 * reports to people.
 *
 * clock_gettime is a vDSO call on Linux (no system call) and
 * async-signal-safe per POSIX.1-2008, which the preemption handler needs.
 * CLOCK_MONOTONIC (not CLOCK_MONOTONIC_RAW) because it is the clock
 * futex and epoll timeouts are measured on, so a deadline computed from
 * hal_now_ns agrees with the kernel's sleeps. It does not advance while
 * the machine is suspended, like Go's nanotime.
 */
#include <stdint.h>
#include <time.h>

#include "posix.h"

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Nanoseconds of CLOCK_MONOTONIC (its origin is the boot). Never blocks;
 * async-signal-safe. */
int64_t hal_now_ns(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

/* Nanoseconds since 1970-01-01 UTC (CLOCK_REALTIME; may jump). Never
 * blocks; async-signal-safe. */
int64_t hal_wall_ns(void)
{
    return read_clock(CLOCK_REALTIME);
}
