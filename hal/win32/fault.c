/* SPDX-License-Identifier: MIT */
/*
 * fault.c (win32) — turning a task's stack overflow into the message that
 * names the task ("task N: stack overflow ..."), as on Linux, and leaving
 * every other exception to whoever else handles it.
 *
 * A task overflowing its stack runs into the guard band below it (mem.c):
 * the first PAGE_GUARD page it touches raises STATUS_GUARD_PAGE_VIOLATION
 * (the NOACCESS page below gives STATUS_ACCESS_VIOLATION, and Windows may
 * report STATUS_STACK_OVERFLOW) while the band still has room for the
 * exception frame. A vectored handler sees it first, before any
 * frame-based handler of the task. It moves to the thread's rescue stack
 * (64 KiB, allocated when the thread entered weft) and calls kern_fault
 * with the faulting address: if the address is in the running task's
 * guard, kern prints and aborts; otherwise kern_fault returns and the
 * handler lets the search continue (EXCEPTION_CONTINUE_SEARCH), so the
 * host's handlers and Windows' default behaviour are untouched.
 *
 * The handler is added once per process, first in the list, and never
 * removed (threads may still run tasks). Threads without a rescue stack
 * (the host's, outside weft) call kern_fault where they are; kern_fault
 * finds no task there and returns.
 */
#include <windows.h>

#include "win32.h"

#define RESCUE_SIZE (64u << 10)

/* Per-thread, in two TLS slots allocated by install(): the rescue stack
 * and how deep hal_thread_enter nests. Not `__thread`: mingw implements it
 * with __emutls_get_address, a helper linked into the program's .text,
 * where a preempted task would look like the program's own code
 * (scripts/check-weft-calls.py). TlsGetValue is a kernel32 call. */
static DWORD slot_rescue = TLS_OUT_OF_INDEXES;
static DWORD slot_depth = TLS_OUT_OF_INDEXES;

static INIT_ONCE install_once = INIT_ONCE_STATIC_INIT;

static void call_kern_fault(void *addr)
{
    kern_fault(addr);
}

static LONG CALLBACK on_exception(EXCEPTION_POINTERS *ep)
{
    DWORD code = ep->ExceptionRecord->ExceptionCode;
    void *addr;
    if (code == STATUS_GUARD_PAGE_VIOLATION || code == STATUS_ACCESS_VIOLATION) {
        if (ep->ExceptionRecord->NumberParameters < 2)
            return EXCEPTION_CONTINUE_SEARCH;
        addr = (void *)ep->ExceptionRecord->ExceptionInformation[1];
    } else if (code == STATUS_STACK_OVERFLOW) {
        /* Raised when the thread's stack, as its TIB describes it (the
         * task's: switch_win64.S), reaches its last pages. */
        addr = ep->ExceptionRecord->NumberParameters >= 2
                   ? (void *)ep->ExceptionRecord->ExceptionInformation[1]
                   : (void *)ep->ContextRecord->Rsp;
    } else {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    DWORD last = GetLastError(); /* TlsGetValue clears it */
    char *rescue = slot_rescue == TLS_OUT_OF_INDEXES ? NULL : TlsGetValue(slot_rescue);
    if (rescue != NULL)
        hal_win32_call_on(call_kern_fault, addr, rescue + RESCUE_SIZE);
    else
        kern_fault(addr);
    SetLastError(last);
    return EXCEPTION_CONTINUE_SEARCH;
}

static BOOL CALLBACK install(INIT_ONCE *once, void *param, void **ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    /* Without slots no thread gets a rescue stack (best effort, below). */
    DWORD r = TlsAlloc(), d = TlsAlloc();
    if (r != TLS_OUT_OF_INDEXES && d != TLS_OUT_OF_INDEXES) {
        slot_rescue = r;
        slot_depth = d;
    }
    AddVectoredExceptionHandler(1, on_exception);
    return TRUE;
}

void hal_win32_fault_install(void)
{
    InitOnceExecuteOnce(&install_once, install, NULL, NULL);
}

/* Best effort: without memory (or TLS slots) the thread has no rescue
 * stack, and an overflow is reported from the band itself, if at all.
 * After hal_win32_fault_install. Both keep the last error. */
void hal_win32_rescue_on(void)
{
    if (slot_depth == TLS_OUT_OF_INDEXES)
        return;
    DWORD last = GetLastError();
    uintptr_t depth = (uintptr_t)TlsGetValue(slot_depth);
    TlsSetValue(slot_depth, (void *)(depth + 1));
    if (depth == 0)
        TlsSetValue(slot_rescue,
                    VirtualAlloc(NULL, RESCUE_SIZE, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE));
    SetLastError(last);
}

void hal_win32_rescue_off(void)
{
    if (slot_depth == TLS_OUT_OF_INDEXES)
        return;
    DWORD last = GetLastError();
    uintptr_t depth = (uintptr_t)TlsGetValue(slot_depth);
    if (depth > 0) {
        TlsSetValue(slot_depth, (void *)(depth - 1));
        char *rescue = TlsGetValue(slot_rescue);
        if (depth == 1 && rescue != NULL) {
            VirtualFree(rescue, 0, MEM_RELEASE);
            TlsSetValue(slot_rescue, NULL);
        }
    }
    SetLastError(last);
}
