/* SPDX-License-Identifier: MIT */
/*
 * poll_iocp.c (win32) — the poller: one I/O completion port per process,
 * where an idle thread waits for completions, a wake-up, or the next
 * timer (Go: netpoll_windows.go).
 *
 * Waiting is GetQueuedCompletionStatusEx, which takes batches. A wake-up
 * is a packet posted with a key of the poller's own (KEY_WAKE); repeated
 * wakes before one is dequeued are coalesced into one packet. Whichever
 * thread dequeues it (also another thread's timeout-0 poll) clears the
 * flag, and the packet is not reported to kern: hal_poll_wait then returns
 * 0, which kern takes as "look again".
 *
 * The timeout. GQCSEx takes milliseconds, so a timeout is rounded up
 * (never early; kern fires timers that are due when the wait returns).
 * hal.h asks for nanosecond resolution; Windows gives it with a
 * high-resolution waitable timer associated with the port through the wait
 * completion packets of ntdll (docs/platforms.md, "Timer resolution"),
 * which this file does not do yet: the millisecond timeout is the fallback
 * such a port keeps for systems without those exports, and the only path
 * here. WEFT_POLLER_TIMER=fallback selects it explicitly; any other value
 * is an error (waitpacket and emulated name the paths still to come).
 *
 * Sockets (hal_poll_register) are not yet supported (sock.c).
 */
#include <string.h>
#include <windows.h>

#include "win32.h"

#define KEY_WAKE ((ULONG_PTR)1)
#define MAX_EVENTS 128

static HANDLE port;
static volatile LONG wake_pending; /* a wake packet is queued and not dequeued */

int hal_poll_init(void)
{
    const char *m = getenv("WEFT_POLLER_TIMER");
    if (m != NULL && strcmp(m, "fallback") != 0) {
        static const char bad[] = "weft: WEFT_POLLER_TIMER: only 'fallback' is available "
                                  "on this port (waitpacket and emulated are not yet)\n";
        hal_write_err(bad, sizeof bad - 1);
        return HAL_EINVAL;
    }
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL)
        return HAL_EFAIL;
    wake_pending = 0;
    return 0;
}

void hal_poll_fini(void)
{
    if (port != NULL)
        CloseHandle(port);
    port = NULL;
}

/* Sockets come with part 2 of the port: nothing can be registered yet. */
int hal_poll_register(intptr_t h, void *key)
{
    (void)h;
    (void)key;
    return HAL_EINVAL;
}

int hal_poll_unregister(intptr_t h)
{
    (void)h;
    return HAL_EFAIL;
}

int hal_poll_short_read_drains(void)
{
    return 0;
}

/* Coalesced: one packet until some thread dequeues it. Any thread, never
 * blocks. */
void hal_poll_wake(void)
{
    if (InterlockedCompareExchange(&wake_pending, 1, 0) != 0)
        return;
    DWORD last = GetLastError();
    if (!PostQueuedCompletionStatus(port, 0, KEY_WAKE, NULL))
        wake_pending = 0; /* nothing queued: let the next wake try */
    SetLastError(last);
}

/* Milliseconds for GQCSEx: 0 stays 0, < 0 is INFINITE, the rest rounded
 * up. */
static DWORD timeout_ms(int64_t ns)
{
    if (ns < 0)
        return INFINITE;
    int64_t ms = (ns + 999999) / 1000000;
    return ms >= (int64_t)INFINITE ? INFINITE - 1 : (DWORD)ms;
}

int hal_poll_wait(struct hal_poll_event *ev, int max, int64_t timeout_ns)
{
    OVERLAPPED_ENTRY ents[MAX_EVENTS];
    if (max > MAX_EVENTS)
        max = MAX_EVENTS;
    if (max <= 0)
        return 0;
    DWORD last = GetLastError();
    ULONG n = 0;
    int out = 0;
    if (!GetQueuedCompletionStatusEx(port, ents, (ULONG)max, &n, timeout_ms(timeout_ns), FALSE)) {
        DWORD e = GetLastError();
        SetLastError(last);
        return e == WAIT_TIMEOUT ? 0 : HAL_EFAIL;
    }
    for (ULONG i = 0; i < n; i++) {
        if (ents[i].lpCompletionKey == KEY_WAKE) {
            wake_pending = 0;
            continue;
        }
        ev[out].key = (void *)ents[i].lpCompletionKey;
        ev[out].events = HAL_POLL_READ | HAL_POLL_WRITE;
        ev[out].op = NULL;
        out++;
    }
    SetLastError(last);
    return out;
}

/* For tests/t_timer.c's report only (not part of hal.h): the timeout path
 * in use, 2 = the millisecond fallback (1 and 3 are kept for the wait
 * packet and its emulation). */
int hal_poll_timer_mode(void);
int hal_poll_timer_mode(void)
{
    return 2;
}
