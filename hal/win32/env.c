/* SPDX-License-Identifier: MIT */
/*
 * env.c (win32) — the environment at start-up, the error stream for
 * diagnostics, and abnormal exit.
 *
 * The error stream is the process's STD_ERROR_HANDLE, written with
 * WriteFile directly, never through stdio: kern prints from exception
 * handlers and its output must not sit in a buffer when the process ends.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <windows.h>

#include "win32.h"

/* The C runtime's getenv (its copy of the environment, which is what the
 * host's putenv/_putenv changes). Called only while the runtime starts. */
const char *hal_getenv(const char *name)
{
    return getenv(name);
}

/* Whether h is a pipe in PIPE_NOWAIT mode, whose writes return at once. */
static bool pipe_nowait(HANDLE h)
{
    DWORD state = 0;
    return GetNamedPipeHandleState(h, &state, NULL, NULL, NULL, NULL, 0) &&
           (state & PIPE_NOWAIT) != 0;
}

/* All n bytes, continuing after short writes; gives up silently on an
 * error. The last error is kept.
 *
 * A pipe in PIPE_NOWAIT mode (the Windows form of a non-blocking stderr)
 * takes a write whole or not at all: a write larger than the room left
 * in its buffer takes nothing, however long the reader is waited for. So
 * when nothing was taken, the pieces shrink (to 512 bytes) and, once
 * small, wait a millisecond for the reader, as the POSIX port waits in
 * poll. Any other handle that takes nothing ends the write. */
void hal_write_err(const char *s, size_t n)
{
    DWORD last = GetLastError();
    HANDLE h = GetStdHandle(STD_ERROR_HANDLE);
    DWORD cap = 0x40000000u;
    int nowait = -1; /* unknown until a write takes nothing */
    while (n > 0 && h != NULL && h != INVALID_HANDLE_VALUE) {
        DWORD chunk = n > cap ? cap : (DWORD)n, w = 0;
        if (!WriteFile(h, s, chunk, &w, NULL))
            break;
        if (w == 0) {
            if (nowait < 0)
                nowait = pipe_nowait(h);
            if (!nowait)
                break;
            if (chunk > 512)
                cap = chunk / 2 > 512 ? chunk / 2 : 512;
            else
                Sleep(1);
            continue;
        }
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
