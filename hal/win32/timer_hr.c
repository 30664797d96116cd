/* SPDX-License-Identifier: MIT */
/*
 * timer_hr.c (win32) — the poller's deadline with sub-millisecond
 * resolution: a high-resolution waitable timer whose expiry is queued on
 * the completion port as a packet, so that the thread blocked in
 * GetQueuedCompletionStatusEx wakes when the timer fires, not at the next
 * tick of the port's millisecond timeout (Go: netpollQueueTimer in
 * netpoll_windows.go; docs/platforms.md, "Timer resolution").
 *
 * Three paths, picked once per run by hal_poll_init (poll_iocp.c):
 *
 *   waitpacket  the timer is tied to the port by a wait completion packet
 *               (NtCreateWaitCompletionPacket, NtAssociateWaitCompletionPacket,
 *               NtCancelWaitCompletionPacket: ntdll exports that Windows 10
 *               has and Wine 8 and older Windows lack). The default where
 *               all three exist and the timer accepts the high-resolution
 *               flag.
 *   fallback    no timer: the port's own timeout in milliseconds, rounded
 *               up. The default elsewhere.
 *   emulated    a model of the three exports behind the same function
 *               pointers (below), built on RegisterWaitForSingleObject and
 *               PostQueuedCompletionStatus, which Wine has. It exists so
 *               that every branch of the code that drives the real exports
 *               runs under Wine; tests/t_win32.c counts them.
 *
 * WEFT_POLLER_TIMER=waitpacket|fallback|emulated forces one; any other
 * value, or waitpacket where the exports are missing, fails hal_poll_init
 * with a message (weft_run then returns WEFT_EINVAL).
 *
 * Arming, before every blocking wait with a finite timeout (only one
 * thread does that at a time, hal.h), is timer_arm's sequence:
 *   1. Cancel the previous association. A wait may have ended before its
 *      timer fired (a wake-up, an event), and a packet accepts one
 *      association at a time. SUCCESS: it was still waiting, or its
 *      packet was queued and is now removed. CANCELLED: nothing was
 *      associated any more (the packet fired and was dequeued, or the
 *      packet was never used). PENDING: the packet is being delivered and
 *      cannot be reused yet: this wait goes without the timer and relies
 *      on the port's timeout alone; the next wait cancels again.
 *   2. Arm the timer (relative, in 100 ns units, rounded up).
 *   3. Associate the packet with the port, the timer and KEY_TIMER. If the
 *      timer fired in between (AlreadySignaled), the wait returns at once.
 * Any other status, or a failed SetWaitableTimer, is printed once and the
 * poller uses the fallback for the rest of the run.
 *
 * The timer's packet can be dequeued by any thread, including one that
 * polls with timeout 0 while the blocking waiter sleeps. poll_iocp.c
 * recognises it by its key wherever it arrives and never reports it to
 * kern; a non-blocking poller that takes it (or a wake packet) posts a
 * wake-up instead, so that the blocking waiter still returns on time. A
 * packet that arrives late, after its wait has ended, makes the next
 * blocking wait return early: hal.h allows spurious returns, and kern
 * waits again for what is left of its deadline.
 */
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "win32.h"

#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002 /* missing from mingw-w64 10 */
#endif

/* NTSTATUS values the exports return (ntstatus.h clashes with windows.h). */
#define ST_SUCCESS ((LONG)0x00000000)
#define ST_PENDING ((LONG)0x00000103)
#define ST_CANCELLED ((LONG)0xC0000120)
#define ST_UNSUCCESSFUL ((LONG)0xC0000001)
#define ST_IN_USE ((LONG)0xC00000EF) /* STATUS_INVALID_PARAMETER_1 */

typedef LONG(NTAPI *create_fn)(HANDLE *packet, ACCESS_MASK access, void *attributes);
typedef LONG(NTAPI *assoc_fn)(HANDLE packet, HANDLE port, HANDLE target, void *key, void *apc,
                              LONG io_status, ULONG_PTR io_info, BOOLEAN *already_signaled);
typedef LONG(NTAPI *cancel_fn)(HANDLE packet, BOOLEAN remove_signaled);
typedef LONG(NTAPI *close_fn)(HANDLE h);

/* The four operations on a packet: ntdll's (close: NtClose), or the
 * model's. Set by hal_win32_timer_init; read by the blocking waiter. */
static struct {
    create_fn create;
    assoc_fn assoc;
    cancel_fn cancel;
    close_fn close;
} ops;

/* HAL_WIN32_TIMER_*: written by init and by give_up (on the blocking
 * waiter's thread); read by anyone (hal_poll_timer_mode). */
static volatile LONG mode;
static HANDLE port, timer, packet;

static volatile LONG64 counters[HAL_WIN32_TC_N];

void hal_win32_timer_count(int which)
{
    InterlockedIncrement64(&counters[which]);
}

int64_t hal_win32_timer_counter(int which)
{
    return which >= 0 && which < HAL_WIN32_TC_N
               ? InterlockedCompareExchange64(&counters[which], 0, 0)
               : -1;
}

/* ---- the model of the three exports (WEFT_POLLER_TIMER=emulated) -------
 *
 * One packet (the poller needs only one). Its state:
 *   IDLE     not associated (never, cancelled, or fired with no wait left)
 *   WAITING  associated: a thread-pool wait on the timer is registered,
 *            and its callback will post the packet to the port
 *   DELIVERING  a cancel found the callback begun: it will post
 *   FIRED    the callback posted the packet (or the timer was signalled
 *            when the association was made)
 * cancel: WAITING and the wait is unregistered before its callback began:
 * SUCCESS, IDLE. WAITING but the callback has begun, or DELIVERING:
 * PENDING (it will post and go to FIRED; under a loaded Wine the thread
 * pool can take milliseconds to run it). IDLE or FIRED: CANCELLED. A real packet that fired
 * but is still in the port's queue is removed by cancel (SUCCESS); the
 * model cannot take a packet back out of a port, so it answers CANCELLED
 * and leaves it there: the late packet the poller must tolerate anyway.
 * associate: WAITING is an error (as a packet in use is to ntdll);
 * otherwise a timer already signalled gives AlreadySignaled and FIRED with
 * no packet queued, and anything else registers the wait.
 *
 * hal_win32_timer_emu_force makes every Nth cancel answer PENDING (leaving
 * the association as it was), every Nth association find the timer
 * firing (it is made due at once and waited for), and every Nth
 * association fail. */

enum { EMU_IDLE, EMU_WAITING, EMU_DELIVERING, EMU_FIRED };

static struct {
    SRWLOCK lock;
    /* Protected by lock: */
    int state;
    unsigned gen; /* which registration a callback belongs to */
    HANDLE wait;  /* RegisterWaitForSingleObject's, until unregistered */
    HANDLE port;
    void *key;
} emu = {SRWLOCK_INIT, EMU_IDLE, 0, NULL, NULL, NULL};

/* Test knobs and call counts (any thread; Interlocked). */
static volatile LONG force_pending, force_signal, force_fail;
static volatile LONG ncancel, nassoc;

void hal_win32_timer_emu_force(int pending_every, int signal_every, int fail_every)
{
    InterlockedExchange(&force_pending, pending_every);
    InterlockedExchange(&force_signal, signal_every);
    InterlockedExchange(&force_fail, fail_every);
}

static int every(volatile LONG *knob, LONG n)
{
    LONG k = InterlockedCompareExchange(knob, 0, 0);
    return k > 0 && n % k == 0;
}

/* The thread pool's callback: the timer fired. */
static void CALLBACK emu_fired(void *ctx, BOOLEAN timed_out)
{
    (void)timed_out;
    AcquireSRWLockExclusive(&emu.lock);
    if ((emu.state == EMU_WAITING || emu.state == EMU_DELIVERING) &&
        emu.gen == (unsigned)(uintptr_t)ctx) {
        emu.state = EMU_FIRED;
        hal_win32_timer_count(HAL_WIN32_TC_EMU_POSTED); /* before the waiter can see it */
        PostQueuedCompletionStatus(emu.port, 0, (ULONG_PTR)emu.key, NULL);
    }
    ReleaseSRWLockExclusive(&emu.lock);
}

/* Lock held. Drops a registration whose callback has run or must not. */
static void emu_unregister(void)
{
    if (emu.wait != NULL)
        UnregisterWait(emu.wait); /* non-blocking; a running callback finds the state changed */
    emu.wait = NULL;
}

static LONG NTAPI emu_create(HANDLE *out, ACCESS_MASK access, void *attributes)
{
    (void)access;
    (void)attributes;
    AcquireSRWLockExclusive(&emu.lock);
    emu.state = EMU_IDLE;
    emu.wait = NULL;
    ReleaseSRWLockExclusive(&emu.lock);
    *out = (HANDLE)&emu; /* never given to the OS */
    return ST_SUCCESS;
}

static LONG NTAPI emu_cancel(HANDLE h, BOOLEAN remove_signaled)
{
    (void)h;
    (void)remove_signaled;
    LONG n = InterlockedIncrement(&ncancel);
    LONG st;
    AcquireSRWLockExclusive(&emu.lock);
    if (every(&force_pending, n)) {
        st = ST_PENDING;
    } else if (emu.state == EMU_WAITING) {
        if (UnregisterWait(emu.wait)) {
            emu.state = EMU_IDLE;
            st = ST_SUCCESS;
        } else {
            /* The callback has begun: it will post the packet. */
            hal_win32_timer_count(HAL_WIN32_TC_EMU_RACE);
            emu.state = EMU_DELIVERING;
            st = ST_PENDING;
        }
        emu.wait = NULL;
    } else if (emu.state == EMU_DELIVERING) {
        st = ST_PENDING;
    } else {
        emu_unregister();
        emu.state = EMU_IDLE;
        st = ST_CANCELLED;
    }
    ReleaseSRWLockExclusive(&emu.lock);
    return st;
}

static LONG NTAPI emu_assoc(HANDLE h, HANDLE p, HANDLE target, void *key, void *apc, LONG io_status,
                            ULONG_PTR io_info, BOOLEAN *already_signaled)
{
    (void)h;
    (void)apc;
    (void)io_status;
    (void)io_info;
    LONG n = InterlockedIncrement(&nassoc);
    LONG st = ST_SUCCESS;
    BOOLEAN fired = FALSE;
    AcquireSRWLockExclusive(&emu.lock);
    if (emu.state == EMU_WAITING || emu.state == EMU_DELIVERING) {
        st = ST_IN_USE;
    } else if (every(&force_fail, n)) {
        st = ST_UNSUCCESSFUL;
    } else {
        emu_unregister();
        emu.port = p;
        emu.key = key;
        if (every(&force_signal, n)) {
            /* The timer fires while the association is being made. */
            LARGE_INTEGER now = {.QuadPart = -1};
            SetWaitableTimer(target, &now, 0, NULL, NULL, FALSE);
            WaitForSingleObject(target, INFINITE);
            fired = TRUE;
        } else {
            fired = WaitForSingleObject(target, 0) == WAIT_OBJECT_0;
        }
        if (fired) {
            emu.state = EMU_FIRED;
        } else {
            emu.gen++;
            emu.state = EMU_WAITING;
            if (!RegisterWaitForSingleObject(&emu.wait, target, emu_fired,
                                             (void *)(uintptr_t)emu.gen, INFINITE,
                                             WT_EXECUTEONLYONCE)) {
                emu.wait = NULL;
                emu.state = EMU_IDLE;
                st = ST_UNSUCCESSFUL;
            }
        }
    }
    ReleaseSRWLockExclusive(&emu.lock);
    if (already_signaled != NULL)
        *already_signaled = fired;
    return st;
}

/* Waits for a callback still running, so that nothing outlives the run. */
static LONG NTAPI emu_close(HANDLE h)
{
    (void)h;
    AcquireSRWLockExclusive(&emu.lock);
    HANDLE w = emu.wait;
    emu.wait = NULL;
    emu.state = EMU_IDLE;
    emu.gen++;
    ReleaseSRWLockExclusive(&emu.lock);
    if (w != NULL)
        UnregisterWaitEx(w, INVALID_HANDLE_VALUE);
    return ST_SUCCESS;
}

/* ---- set-up -------------------------------------------------------------- */

static void say(const char *msg)
{
    hal_write_err(msg, strlen(msg));
}

/* Looks the three exports up in ntdll: 1 if all three exist. */
static int resolve_ntdll(void)
{
    HMODULE nt = GetModuleHandleW(L"ntdll.dll");
    if (nt == NULL)
        return 0;
    FARPROC c = GetProcAddress(nt, "NtCreateWaitCompletionPacket");
    FARPROC a = GetProcAddress(nt, "NtAssociateWaitCompletionPacket");
    FARPROC x = GetProcAddress(nt, "NtCancelWaitCompletionPacket");
    FARPROC cl = GetProcAddress(nt, "NtClose");
    if (c == NULL || a == NULL || x == NULL || cl == NULL)
        return 0;
    /* The casts go through void (*)(void): FARPROC's own type differs. */
    ops.create = (create_fn)(void (*)(void))c;
    ops.assoc = (assoc_fn)(void (*)(void))a;
    ops.cancel = (cancel_fn)(void (*)(void))x;
    ops.close = (close_fn)(void (*)(void))cl;
    return 1;
}

/* A high-resolution timer if Windows takes the flag (10 1803 and later),
 * else an ordinary one (*hires = 0), or NULL. */
static HANDLE make_timer(int *hires)
{
    HANDLE t =
        CreateWaitableTimerExW(NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
    *hires = t != NULL;
    if (t == NULL)
        t = CreateWaitableTimerExW(NULL, NULL, 0, TIMER_ALL_ACCESS);
    return t;
}

int hal_win32_timer_init(void *iocp)
{
    const char *m = getenv("WEFT_POLLER_TIMER");
    int want;
    if (m == NULL || m[0] == '\0')
        want = 0;
    else if (strcmp(m, "waitpacket") == 0)
        want = HAL_WIN32_TIMER_WAITPACKET;
    else if (strcmp(m, "fallback") == 0)
        want = HAL_WIN32_TIMER_FALLBACK;
    else if (strcmp(m, "emulated") == 0)
        want = HAL_WIN32_TIMER_EMULATED;
    else {
        say("weft: WEFT_POLLER_TIMER: unknown value (waitpacket, fallback or emulated)\n");
        return HAL_EINVAL;
    }
    port = iocp;
    timer = packet = NULL;
    memset(&ops, 0, sizeof ops);
    int have =
        want != HAL_WIN32_TIMER_FALLBACK && want != HAL_WIN32_TIMER_EMULATED && resolve_ntdll();
    if (want == HAL_WIN32_TIMER_WAITPACKET && !have) {
        say("weft: WEFT_POLLER_TIMER=waitpacket: ntdll lacks the wait completion packets "
            "(NtCreateWaitCompletionPacket and the rest)\n");
        return HAL_EINVAL;
    }
    if (want == HAL_WIN32_TIMER_FALLBACK || (want == 0 && !have)) {
        InterlockedExchange(&mode, HAL_WIN32_TIMER_FALLBACK);
        return 0;
    }
    if (want == HAL_WIN32_TIMER_EMULATED) {
        ops.create = emu_create;
        ops.assoc = emu_assoc;
        ops.cancel = emu_cancel;
        ops.close = emu_close;
    }
    int hires;
    timer = make_timer(&hires);
    if (timer == NULL)
        return HAL_EFAIL;
    if (!hires && want == 0) {
        /* A timer of the tick's resolution is no better than the port's
         * own timeout. */
        CloseHandle(timer);
        timer = NULL;
        InterlockedExchange(&mode, HAL_WIN32_TIMER_FALLBACK);
        return 0;
    }
    if (ops.create(&packet, GENERIC_ALL, NULL) != ST_SUCCESS || packet == NULL) {
        CloseHandle(timer);
        timer = packet = NULL;
        return HAL_EFAIL;
    }
    InterlockedExchange(&mode, want == 0 ? HAL_WIN32_TIMER_WAITPACKET : want);
    return 0;
}

void hal_win32_timer_fini(void)
{
    if (packet != NULL) {
        ops.cancel(packet, TRUE);
        ops.close(packet);
    }
    if (timer != NULL) {
        CancelWaitableTimer(timer);
        CloseHandle(timer);
    }
    packet = timer = NULL;
}

int hal_poll_timer_mode(void)
{
    return (int)InterlockedCompareExchange(&mode, 0, 0);
}

/* ---- arming --------------------------------------------------------------- */

/* Something unexpected: say what, once per run, and use the fallback. */
static void give_up(const char *what, unsigned long code)
{
    /* No snprintf: mingw's is __mingw_vsnprintf, in the program's .text
     * (scripts/check-weft-calls.py). One write, so that lines of other
     * threads do not cut into it. */
    char hex[2 + 2 * sizeof code + 1], *h = hex + sizeof hex - 1;
    *h = 0;
    do {
        *--h = "0123456789abcdef"[code & 15];
        code >>= 4;
    } while (code != 0);
    *--h = 'x';
    *--h = '0';
    const char *parts[] = {"weft: ", what, " failed (", h,
                           "); the poller's timeouts fall back to milliseconds\n"};
    char buf[160];
    size_t n = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        size_t len = strlen(parts[i]);
        if (len > sizeof buf - 1 - n)
            len = sizeof buf - 1 - n;
        memcpy(buf + n, parts[i], len);
        n += len;
    }
    buf[n] = 0;
    say(buf);
    hal_win32_timer_count(HAL_WIN32_TC_GAVE_UP);
    InterlockedExchange(&mode, HAL_WIN32_TIMER_FALLBACK);
}

int hal_win32_timer_arm(int64_t timeout_ns)
{
    if (mode == HAL_WIN32_TIMER_FALLBACK || timeout_ns <= 0)
        return HAL_WIN32_ARM_OFF;
    LONG st = ops.cancel(packet, TRUE);
    if (st == ST_SUCCESS) {
        hal_win32_timer_count(HAL_WIN32_TC_CANCEL_SUCCESS);
    } else if (st == ST_CANCELLED) {
        hal_win32_timer_count(HAL_WIN32_TC_CANCEL_CANCELLED);
    } else if (st == ST_PENDING) {
        hal_win32_timer_count(HAL_WIN32_TC_CANCEL_PENDING);
        return HAL_WIN32_ARM_OFF;
    } else {
        give_up("NtCancelWaitCompletionPacket", (unsigned long)st);
        return HAL_WIN32_ARM_OFF;
    }
    /* Relative due times are negative, in 100 ns units; never early. */
    int64_t units = timeout_ns / 100 + (timeout_ns % 100 != 0);
    LARGE_INTEGER due = {.QuadPart = -units};
    if (!SetWaitableTimer(timer, &due, 0, NULL, NULL, FALSE)) {
        give_up("SetWaitableTimer", GetLastError());
        return HAL_WIN32_ARM_OFF;
    }
    BOOLEAN fired = FALSE;
    st = ops.assoc(packet, port, timer, (void *)HAL_WIN32_KEY_TIMER, NULL, 0, 0, &fired);
    if (st != ST_SUCCESS) {
        give_up("NtAssociateWaitCompletionPacket", (unsigned long)st);
        return HAL_WIN32_ARM_OFF;
    }
    if (fired) {
        hal_win32_timer_count(HAL_WIN32_TC_ASSOC_FIRED);
        return HAL_WIN32_ARM_FIRED;
    }
    hal_win32_timer_count(HAL_WIN32_TC_ASSOC_ARMED);
    return HAL_WIN32_ARM_ON;
}
