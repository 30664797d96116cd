/* SPDX-License-Identifier: MIT */
/*
 * poll_iocp.c (win32) — the poller: one I/O completion port per process,
 * where an idle thread waits for completions, a wake-up, or the next
 * timer (Go: netpoll_windows.go).
 *
 * Waiting is GetQueuedCompletionStatusEx, which takes batches. A wake-up
 * is a packet posted with a key of the poller's own (KEY_WAKE); repeated
 * wakes before one is dequeued are coalesced into one packet. Neither it
 * nor the timer's packet (KEY_TIMER, below) is reported to kern:
 * hal_poll_wait then returns 0, which kern takes as "look again". Any
 * thread may dequeue either, also one polling with timeout 0 while another
 * blocks; that one posts a wake-up in its place, so that the blocking
 * waiter still returns (Go forwards its break the same way).
 *
 * The timeout. GQCSEx takes milliseconds, which are rounded up here (never
 * early; kern fires timers that are due when the wait returns), and the
 * port's clock ticks every 15.6 ms on Windows. hal.h asks for nanosecond
 * resolution: timer_hr.c arms a high-resolution timer whose expiry is
 * queued on the port, where the exports it needs exist (or as a model of
 * them, for tests), and the millisecond timeout alone is the fallback.
 * With the timer armed, GQCSEx still gets a timeout, TIMER_SLACK_MS later
 * than the rounded one: a backstop for a packet that never arrives, late
 * enough that the timer wins wherever it works (under Wine both tick at
 * about 1 ms, and the timer's packet goes through a thread-pool thread in
 * the emulation).
 *
 * Sockets are associated with the port under kern's key (sock.c); each
 * packet with another key than the two above is the completion of one of
 * their operations, which sock.c marks done before the side is reported.
 * A run's end: kern has closed every socket (which cancels what was in
 * flight), and hal_poll_fini dequeues the completions still owed before
 * the task stacks that hold their OVERLAPPEDs go.
 */
#include <windows.h>

#include "win32.h"

#define KEY_WAKE ((ULONG_PTR)HAL_WIN32_KEY_WAKE)
#define KEY_TIMER ((ULONG_PTR)HAL_WIN32_KEY_TIMER)
/* Entries per GQCSEx call, on the caller's stack: 64 x 32 bytes stays
 * under the 4 KiB above which mingw probes the frame with ___chkstk_ms, a
 * helper in the program's .text (scripts/check-weft-calls.py). */
#define MAX_EVENTS 64
#define TIMER_SLACK_MS 2

static HANDLE port;
static volatile LONG wake_pending; /* a wake packet is queued and not dequeued */

/* How long hal_poll_fini waits for completions still owed. The closes
 * before it cancelled every one, so they come at once; the bound only
 * keeps a broken driver from hanging the end of a run. */
#define FINI_DRAIN_MS 10000

int hal_poll_init(void)
{
    port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 0);
    if (port == NULL)
        return HAL_EFAIL;
    wake_pending = 0;
    int err = hal_win32_sock_init();
    if (err != 0) {
        CloseHandle(port);
        port = NULL;
        return err;
    }
    err = hal_win32_timer_init(port);
    if (err != 0) {
        hal_win32_sock_fini();
        CloseHandle(port);
        port = NULL;
    }
    return err;
}

/* The completions still owed: their OVERLAPPEDs are on the stacks of
 * discarded tasks, which kern releases after this returns. */
static void drain_owed(void)
{
    OVERLAPPED_ENTRY ents[MAX_EVENTS];
    DWORD t0 = GetTickCount();
    while (hal_win32_sock_owed() > 0) {
        DWORD spent = GetTickCount() - t0;
        if (spent >= FINI_DRAIN_MS) {
            static const char msg[] = "weft: warning: I/O completions still owed at the end "
                                      "of the run after 10 s; the kernel may write to "
                                      "released memory\n";
            hal_write_err(msg, sizeof msg - 1);
            return;
        }
        ULONG n = 0;
        if (!GetQueuedCompletionStatusEx(port, ents, MAX_EVENTS, &n, FINI_DRAIN_MS - spent, FALSE))
            continue;
        for (ULONG i = 0; i < n; i++)
            if (ents[i].lpCompletionKey != KEY_WAKE && ents[i].lpCompletionKey != KEY_TIMER &&
                ents[i].lpOverlapped)
                hal_win32_sock_completed(ents[i].lpOverlapped);
    }
}

void hal_poll_fini(void)
{
    if (port != NULL)
        drain_owed();
    hal_win32_timer_fini();
    if (port != NULL) {
        CloseHandle(port);
        hal_win32_sock_fini();
    }
    port = NULL;
}

int hal_poll_register(intptr_t h, void *key, unsigned flags, uintptr_t *cookie)
{
    return hal_win32_sock_register(h, port, key, flags, cookie);
}

/* Nothing to undo: only kern's own sockets are registered (foreign
 * handles are refused), and closing one ends its association. */
int hal_poll_unregister(intptr_t h)
{
    (void)h;
    return HAL_ENOTSUP;
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
    DWORD ms = timeout_ms(timeout_ns);
    int arm = hal_win32_timer_arm(timeout_ns);
    if (arm == HAL_WIN32_ARM_FIRED) {
        SetLastError(last);
        return 0; /* the deadline passed while the timer was being armed */
    }
    if (arm == HAL_WIN32_ARM_ON && ms < INFINITE - 1 - TIMER_SLACK_MS)
        ms += TIMER_SLACK_MS;
    ULONG n = 0;
    int out = 0;
    if (!GetQueuedCompletionStatusEx(port, ents, (ULONG)max, &n, ms, FALSE)) {
        DWORD e = GetLastError();
        SetLastError(last);
        if (e != WAIT_TIMEOUT)
            return HAL_EFAIL;
        if (timeout_ns != 0)
            hal_win32_timer_count(arm == HAL_WIN32_ARM_ON ? HAL_WIN32_TC_WOKE_BACKSTOP
                                                          : HAL_WIN32_TC_WOKE_TIMEOUT);
        return 0;
    }
    for (ULONG i = 0; i < n; i++) {
        ULONG_PTR key = ents[i].lpCompletionKey;
        if (key == KEY_WAKE || key == KEY_TIMER) {
            if (key == KEY_WAKE)
                wake_pending = 0;
            if (timeout_ns == 0) {
                /* Perhaps the blocking waiter's: hand it on. */
                hal_win32_timer_count(key == KEY_WAKE ? HAL_WIN32_TC_STOLEN_WAKE
                                                      : HAL_WIN32_TC_STOLEN_TIMER);
                hal_poll_wake();
            } else {
                hal_win32_timer_count(key == KEY_WAKE ? HAL_WIN32_TC_WOKE_WAKE
                                                      : HAL_WIN32_TC_WOKE_TIMER);
            }
            continue;
        }
        if (!ents[i].lpOverlapped)
            continue; /* only the port's own packets come without one */
        ev[out].key = (void *)key;
        ev[out].events = hal_win32_sock_completed(ents[i].lpOverlapped);
        out++;
    }
    SetLastError(last);
    return out;
}
