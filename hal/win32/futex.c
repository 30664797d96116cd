/* SPDX-License-Identifier: MIT */
/*
 * futex.c (win32) — the thread-level wait kern builds its locks and idle
 * parking on: WaitOnAddress / WakeByAddressSingle / WakeByAddressAll
 * (Windows 8+, -lsynchronization), which compare and sleep atomically with
 * respect to the wakes, like Linux's futex, and a sleep for backoff.
 *
 * WaitOnAddress takes milliseconds. A timeout is rounded up, so a wait
 * never ends before the time kern asked for (kern re-checks its deadline
 * and waits again if it ends early, but rounding down to 0 would make
 * that a busy loop). Finer waits belong to the poller's timer.
 */
#include <windows.h>

#include "win32.h"

/* Milliseconds for a timeout in ns, rounded up; INFINITE for < 0. */
static DWORD to_ms(int64_t ns)
{
    if (ns < 0)
        return INFINITE;
    int64_t ms = (ns + 999999) / 1000000;
    return ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
}

/* 0 (woken, spurious, or *addr != expect) or HAL_ETIMEDOUT. The thread's
 * last error is kept. Blocks the thread. */
int hal_futex_wait(uint32_t *addr, uint32_t expect, int64_t timeout_ns)
{
    DWORD last = GetLastError();
    int r = 0;
    if (!WaitOnAddress(addr, &expect, sizeof expect, to_ms(timeout_ns)) &&
        GetLastError() == ERROR_TIMEOUT)
        r = HAL_ETIMEDOUT;
    SetLastError(last);
    return r;
}

void hal_futex_wake(uint32_t *addr, int32_t n)
{
    if (n <= 0)
        return;
    if (n == 1) {
        WakeByAddressSingle(addr);
    } else if (n == INT32_MAX) {
        WakeByAddressAll(addr);
    } else {
        for (int32_t i = 0; i < n; i++)
            WakeByAddressSingle(addr);
    }
}

/* Sleep() has millisecond granularity (about 1.1 ms under Wine), far more
 * than the microseconds kern's backoff asks for: shorter sleeps yield the
 * processor until the time has passed instead. Blocks the thread. */
void hal_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    DWORD last = GetLastError();
    if (ns >= 1000000) {
        Sleep(to_ms(ns));
    } else {
        int64_t end = hal_now_ns() + ns;
        do
            SwitchToThread();
        while (hal_now_ns() < end);
    }
    SetLastError(last);
}
