/* SPDX-License-Identifier: MIT */
/*
 * fault.c (win32) — turning a task's stack overflow into the message that
 * names the task ("task N: stack overflow ..."), as on Linux, and leaving
 * every other exception to whoever else handles it.
 *
 * A task overflowing its stack runs into the guard band below it (mem.c)
 * while the band still has room for the exception frame. Since the TIB
 * describes the task's stack (switch_win64.S), the band's PAGE_GUARD pages
 * count as the stack's own: the first touch moves the stack's limit down
 * a page and the next raises STATUS_STACK_OVERFLOW (hal_stack_overflow in
 * tests/t_hal_win32.c checks it); with the TIB elsewhere it would be
 * STATUS_GUARD_PAGE_VIOLATION, and the NOACCESS page gives
 * STATUS_ACCESS_VIOLATION. All three are handled alike. A vectored
 * handler sees the exception first, before any frame-based handler of the
 * task. It moves to the thread's rescue stack (64 KiB, allocated when the
 * thread entered weft) and calls kern_fault with the faulting address:
 * if the address is in the running task's guard, kern prints and aborts;
 * otherwise kern_fault returns and the handler lets the search continue
 * (EXCEPTION_CONTINUE_SEARCH), so the host's handlers and Windows' default
 * behaviour are untouched.
 *
 * The handler is added once per process, first in the list, and never
 * removed (threads may still run tasks). Threads without a rescue stack
 * (the host's, outside weft) call kern_fault where they are; kern_fault
 * finds no task there and returns.
 *
 * An exception that nothing in a task handles reaches the task's bottom
 * frame, hal_ctx_start's, whose handler (hal_win32_task_unhandled, below)
 * calls UnhandledExceptionFilter as a thread's start routine would.
 *
 * Ctrl-Break in the console (Windows' nearest to SIGQUIT) prints every
 * task (kern_dump_request) from the thread Windows starts for console
 * events, then returns FALSE: the next handler, the host's or Windows'
 * default (which ends the process), runs as it would have without weft.
 * Added with the exception handler and removed with it. Wine gives a
 * program whose output is not a terminal no console (GenerateConsoleCtrlEvent
 * and AllocConsole fail there), so the suite calls the handler itself
 * (tests/t_dump.c, dump_ctrl_break).
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
static void *veh; /* AddVectoredExceptionHandler's handle */

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

/*
 * The language handler of hal_ctx_start (hal/x86_64/switch_win64.S), the
 * bottom frame of every task's stack. Windows runs each thread's start
 * routine under __except(UnhandledExceptionFilter(...)): that filter runs
 * the host's SetUnhandledExceptionFilter filter (and through the C
 * runtime's, its signal() handlers) and then ends the process. A task's
 * stack has no such frame below it, so an exception that no frame of the
 * task handled would end the process without any of them. This is that
 * frame for tasks: the filter's EXCEPTION_CONTINUE_EXECUTION resumes the
 * task; EXCEPTION_CONTINUE_SEARCH (a debugger is attached) gives the
 * debugger its second chance at once, as the end of the search would,
 * rather than walk on past the stack's top; EXCEPTION_EXECUTE_HANDLER ends
 * the process with the exception's code, as the thread's start routine
 * would. Runs on the task's stack, during dispatch only (not during
 * unwinding).
 */
NTSTATUS NTAPI NtRaiseException(EXCEPTION_RECORD *rec, CONTEXT *ctx, BOOLEAN first_chance);

EXCEPTION_DISPOSITION hal_win32_task_unhandled(EXCEPTION_RECORD *rec, void *frame, CONTEXT *ctx,
                                               void *dispatch);
EXCEPTION_DISPOSITION hal_win32_task_unhandled(EXCEPTION_RECORD *rec, void *frame, CONTEXT *ctx,
                                               void *dispatch)
{
    (void)frame;
    (void)dispatch;
    if (rec->ExceptionFlags & (EXCEPTION_UNWINDING | EXCEPTION_EXIT_UNWIND))
        return ExceptionContinueSearch;
    EXCEPTION_POINTERS ep = {rec, ctx};
    switch (UnhandledExceptionFilter(&ep)) {
    case EXCEPTION_CONTINUE_EXECUTION:
        return ExceptionContinueExecution;
    case EXCEPTION_CONTINUE_SEARCH:
        NtRaiseException(rec, ctx, FALSE);
        return ExceptionContinueSearch;
    default:
        TerminateProcess(GetCurrentProcess(), rec->ExceptionCode);
        return ExceptionContinueSearch;
    }
}

BOOL WINAPI hal_win32_console_event(DWORD event)
{
    if (event == CTRL_BREAK_EVENT)
        kern_dump_request("Ctrl-Break");
    return FALSE;
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
    veh = AddVectoredExceptionHandler(1, on_exception);
    SetConsoleCtrlHandler(hal_win32_console_event, TRUE);
    return TRUE;
}

/* This copy of weft is unloaded (a plugin's FreeLibrary) or the process
 * exits: the handler would point into unmapped code, and the slots would
 * be lost to the process. Left alone while a thread is still inside weft
 * (exit() during a run). */
__attribute__((destructor)) static void unload(void)
{
    if (hal_win32_threads_live() != 0)
        return;
    if (veh) {
        RemoveVectoredExceptionHandler(veh);
        SetConsoleCtrlHandler(hal_win32_console_event, FALSE);
    }
    veh = NULL;
    if (slot_rescue != TLS_OUT_OF_INDEXES)
        TlsFree(slot_rescue);
    if (slot_depth != TLS_OUT_OF_INDEXES)
        TlsFree(slot_depth);
    slot_rescue = slot_depth = TLS_OUT_OF_INDEXES;
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

/* Tests only (win32.h): the calling thread's rescue stack, or NULL. */
void *hal_win32_rescue_stack(void)
{
    if (slot_rescue == TLS_OUT_OF_INDEXES)
        return NULL;
    DWORD last = GetLastError(); /* TlsGetValue clears it */
    void *r = TlsGetValue(slot_rescue);
    SetLastError(last);
    return r;
}
