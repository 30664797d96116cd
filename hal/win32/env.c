/* SPDX-License-Identifier: MIT */
/*
 * env.c (win32) — the environment at start-up, the error stream for
 * diagnostics, and abnormal exit.
 *
 * The error stream is the process's STD_ERROR_HANDLE, written with
 * WriteFile directly, never through stdio: kern prints from exception
 * handlers and its output must not sit in a buffer when the process ends.
 */
#include <stdlib.h>
#include <windows.h>

#include "win32.h"

/* The C runtime's getenv (its copy of the environment, which is what the
 * host's putenv/_putenv changes). Called only while the runtime starts. */
const char *hal_getenv(const char *name)
{
    return getenv(name);
}

/* All n bytes, continuing after short writes; gives up silently on an
 * error. The last error is kept. */
void hal_write_err(const char *s, size_t n)
{
    DWORD last = GetLastError();
    HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
    while (n > 0 && h != NULL && h != INVALID_HANDLE_VALUE) {
        DWORD chunk = n > 0x40000000u ? 0x40000000u : (DWORD)n, w = 0;
        if (!WriteFile(h, s, chunk, &w, NULL) || w == 0)
            break;
        s += w;
        n -= w;
    }
    SetLastError(last);
}

/* Ends the process at once with the status the C runtime's abort() uses
 * (3), without its message box, atexit handlers or stdio flush. */
_Noreturn void hal_abort(void)
{
    hal_win32_preempt_stop(); /* no suspension left half done (preempt.c) */
    TerminateProcess(GetCurrentProcess(), 3);
    for (;;)
        ExitProcess(3);
}
