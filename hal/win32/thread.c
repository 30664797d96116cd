/* SPDX-License-Identifier: MIT */
/*
 * thread.c (win32) — OS threads for kern: CreateThread, joining and
 * detaching, the calling thread's kern pointer, the error number kern
 * carries with a task, and the CPU count.
 *
 * The kern pointer lives in a TLS slot (TlsAlloc), read straight from the
 * TEB's TlsSlots array: TlsGetValue would do the same but also clears the
 * thread's last error, which kern carries with each task and must not
 * change behind its back. The slot is allocated once per copy of weft,
 * before the first thread enters it, and freed when that copy is unloaded
 * (a DLL's FreeLibrary, or the process's exit) if no thread is still in
 * it: the rescue stacks' slots and the fault handler go the same way
 * (fault.c), so that a plugin leaves nothing behind.
 */
#include <errno.h>
#include <intrin.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <windows.h>

#include "win32.h"

#define THREAD_STACK_SIZE (1u << 20) /* kern's own code: scheduler, monitor */
#define TEB_TLS_SLOTS 0x1480         /* TEB.TlsSlots[64] on x86_64 */

#define HAL_OPAQUE __attribute__((noinline, noipa))

/* What a hal_thread_t points to. Two references: the new thread's, until
 * it has read fn and arg, and the starter's, until it joins or detaches;
 * whoever drops the last frees it. */
struct thread {
    HANDLE h;
    void (*fn)(void *);
    void *arg;
    volatile LONG refs;
};

static void thread_unref(struct thread *t)
{
    if (InterlockedDecrement(&t->refs) == 0)
        free(t);
}

static DWORD slot = TLS_OUT_OF_INDEXES; /* written once, under slot_once */
/* Threads inside this copy of weft: its workers and monitor until their
 * function returns, and threads between hal_thread_enter and leave. */
static volatile LONG live;

int hal_win32_threads_live(void)
{
    return (int)InterlockedOr(&live, 0);
}
static INIT_ONCE slot_once = INIT_ONCE_STATIC_INIT;

static BOOL CALLBACK slot_alloc(INIT_ONCE *once, void *param, void **ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    slot = TlsAlloc();
    if (slot == TLS_OUT_OF_INDEXES) {
        static const char msg[] = "weft: no TLS slot left for the runtime\n";
        hal_write_err(msg, sizeof msg - 1);
        hal_abort();
    }
    return TRUE;
}

static void setup(void)
{
    InitOnceExecuteOnce(&slot_once, slot_alloc, NULL, NULL);
    hal_win32_fault_install();
}

static DWORD WINAPI thread_main(void *p)
{
    struct thread *t = p;
    void (*fn)(void *) = t->fn;
    void *arg = t->arg;
    thread_unref(t);
    InterlockedIncrement(&live);
    hal_win32_rescue_on();
    fn(arg);
    hal_win32_rescue_off();
    InterlockedDecrement(&live);
    return 0;
}

/* CreateThread with a 1 MiB stack reservation. HAL_ENOMEM when Windows is
 * out of memory or handles, HAL_EFAIL otherwise. Blocks briefly. */
int hal_thread_start(void (*fn)(void *), void *arg, hal_thread_t *out)
{
    setup();
    struct thread *t = malloc(sizeof *t);
    if (t == NULL)
        return HAL_ENOMEM;
    t->fn = fn;
    t->arg = arg;
    t->refs = 2;
    DWORD last = GetLastError();
    t->h = CreateThread(NULL, THREAD_STACK_SIZE, thread_main, t, STACK_SIZE_PARAM_IS_A_RESERVATION,
                        NULL);
    if (t->h == NULL) {
        DWORD e = GetLastError();
        free(t);
        SetLastError(last);
        return e == ERROR_NOT_ENOUGH_MEMORY || e == ERROR_OUTOFMEMORY ? HAL_ENOMEM : HAL_EFAIL;
    }
    *out = (hal_thread_t)t;
    return 0;
}

void hal_thread_join(hal_thread_t ht)
{
    struct thread *t = (struct thread *)ht;
    WaitForSingleObject(t->h, INFINITE);
    CloseHandle(t->h);
    thread_unref(t);
}

/* Closing the handle lets Windows free the thread when it exits. */
void hal_thread_detach(hal_thread_t ht)
{
    struct thread *t = (struct thread *)ht;
    CloseHandle(t->h);
    thread_unref(t);
}

void hal_thread_enter(void)
{
    setup();
    InterlockedIncrement(&live);
    hal_win32_rescue_on();
}

void hal_thread_leave(void)
{
    hal_win32_rescue_off();
    InterlockedDecrement(&live);
}

/* This copy of weft is unloaded, or the process exits: its slot goes back
 * unless a thread may still read it (exit() called while a run goes on). */
__attribute__((destructor)) static void unload(void)
{
    if (slot != TLS_OUT_OF_INDEXES && hal_win32_threads_live() == 0) {
        TlsFree(slot);
        slot = TLS_OUT_OF_INDEXES;
    }
}

/* One load from the TEB (slots beyond the 64 in the TEB, which weft gets
 * only if the host used them all, go through TlsGetValue with the last
 * error kept). Never blocks; safe in any context. */
HAL_OPAQUE void *hal_thread_get(void)
{
    if (slot < 64)
        return (void *)__readgsqword(TEB_TLS_SLOTS + slot * 8);
    if (slot == TLS_OUT_OF_INDEXES)
        return NULL;
    DWORD last = GetLastError();
    void *v = TlsGetValue(slot);
    SetLastError(last);
    return v;
}

HAL_OPAQUE void hal_thread_set(void *kern_thread)
{
    setup();
    DWORD last = GetLastError();
    TlsSetValue(slot, kern_thread);
    SetLastError(last);
}

/* The thread's id: hal_thread_preempt opens the thread by it for each
 * suspension (preempt.c). */
hal_thread_t hal_thread_self(void)
{
    return (hal_thread_t)GetCurrentThreadId();
}

/*
 * QueryThreadCycleTime: the cycles the thread has run, counted by the
 * processor's time-stamp counter at each switch, so exact where
 * GetThreadTimes counts in clock ticks (15.6 ms). Converted to ns with the
 * counter's rate, measured once against QueryPerformanceCounter while
 * this thread spins for 2 ms (the first call, usually on the monitor's
 * thread; the monitor only compares readings with each other and with its wall
 * clock, so a rate a few percent off changes nothing). Whether the thread
 * is blocked: not asked (-1; the thread list of NtQuerySystemInformation
 * says, at the price of a snapshot of every process). Wine does not implement
 * QueryThreadCycleTime (ERROR_CALL_NOT_IMPLEMENTED): -1 there, and the
 * monitor lends no proc (docs/platforms.md).
 */
/* Cycles per ns times 2^20: 0 not measured yet, -1 no cycle counts.
 * Relaxed: whoever measures first stores it; a second measure at the same
 * time stores a value as good. */
static _Atomic int64_t cycle_rate_fp;

static int64_t cycle_rate(void)
{
    ULONG64 c0, c1;
    LARGE_INTEGER f, t0, t1;
    if (!QueryThreadCycleTime(GetCurrentThread(), &c0) || !QueryPerformanceFrequency(&f))
        return -1;
    QueryPerformanceCounter(&t0);
    do
        QueryPerformanceCounter(&t1);
    while ((t1.QuadPart - t0.QuadPart) * 1000 < f.QuadPart * 2);
    if (!QueryThreadCycleTime(GetCurrentThread(), &c1) || c1 <= c0)
        return -1;
    double ns = (double)(t1.QuadPart - t0.QuadPart) * 1e9 / (double)f.QuadPart;
    int64_t fp = (int64_t)((double)(c1 - c0) / ns * 1048576.0);
    return fp > 0 ? fp : -1;
}

int hal_thread_cpu(hal_thread_t t, int64_t *run_ns, int *blocked)
{
    *run_ns = 0;
    *blocked = -1;
    int64_t rate = atomic_load_explicit(&cycle_rate_fp, memory_order_relaxed);
    if (rate == 0) {
        rate = cycle_rate();
        atomic_store_explicit(&cycle_rate_fp, rate, memory_order_relaxed);
    }
    if (rate < 0)
        return -1;
    HANDLE h = OpenThread(THREAD_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)t);
    if (!h)
        return -1;
    ULONG64 cycles;
    BOOL ok = QueryThreadCycleTime(h, &cycles);
    CloseHandle(h);
    if (!ok)
        return -1;
    *run_ns = (int64_t)((double)cycles * 1048576.0 / (double)rate);
    return 0;
}

/* The C runtime's errno. */
HAL_OPAQUE int hal_errno_get(void)
{
    return errno;
}

HAL_OPAQUE void hal_errno_set(int err)
{
    errno = err;
}

/* errno and the last-error value, both per thread on Windows, so both
 * travel with a task. GetLastError first: reading errno calls the CRT's
 * _errno(), which need not preserve the last-error value. */
HAL_OPAQUE void hal_oserr_save(struct hal_oserr *e)
{
    e->word = GetLastError();
    e->err = errno;
}

HAL_OPAQUE void hal_oserr_restore(const struct hal_oserr *e)
{
    errno = e->err;
    SetLastError(e->word);
}

/* CPUs in the process's affinity mask (one processor group: up to 64). */
int hal_cpu_count(void)
{
    DWORD_PTR proc, sys;
    if (GetProcessAffinityMask(GetCurrentProcess(), &proc, &sys) && proc != 0) {
        /* A loop, not __builtin_popcountll: without -mpopcnt GCC calls
         * libgcc's __popcountdi2, linked into the program's .text
         * (scripts/check-weft-calls.py). */
        int n = 0;
        for (; proc != 0; proc &= proc - 1)
            n++;
        return n;
    }
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors > 0 ? (int)si.dwNumberOfProcessors : 1;
}
