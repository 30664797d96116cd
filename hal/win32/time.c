/* SPDX-License-Identifier: MIT */
/*
 * time.c (win32) — the two clocks kern reads: QueryPerformanceCounter for
 * everything it times (monotonic, and like Go's nanotime on Windows it
 * keeps counting while the machine sleeps), and the precise system time
 * for what it reports to people.
 *
 * QueryPerformanceFrequency is constant from boot; it is read once. The
 * conversion splits the count into seconds and remainder so that the
 * multiplication cannot overflow for centuries of uptime.
 */
#include <windows.h>

#include "win32.h"

static int64_t freq; /* ticks per second; racing first reads store the same value */

int64_t hal_now_ns(void)
{
    LARGE_INTEGER c;
    if (freq == 0) {
        LARGE_INTEGER f;
        QueryPerformanceFrequency(&f);
        freq = f.QuadPart;
    }
    QueryPerformanceCounter(&c);
    int64_t s = c.QuadPart / freq, rem = c.QuadPart % freq;
    return s * 1000000000 + rem * 1000000000 / freq;
}

/* FILETIME counts 100 ns units since 1601-01-01 UTC. */
int64_t hal_wall_ns(void)
{
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    int64_t t = (int64_t)(((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime);
    return (t - 116444736000000000LL) * 100;
}
