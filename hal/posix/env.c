/* SPDX-License-Identifier: MIT */
/*
 * env.c (posix) — what kern needs from the process around it: the
 * environment at start-up, the error stream for diagnostics (k_print,
 * k_panic, the stack-overflow message, weft_dump) and abnormal exit.
 *
 * The error stream is file descriptor 2, written with write(2) directly,
 * never through stdio: kern prints from signal handlers and from threads
 * that may hold no stdio lock, and its output must not sit in a buffer
 * when the process aborts.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "posix.h"

/* getenv(3). The pointer stays valid until the host changes that variable.
 * Not thread-safe against a concurrent setenv by the host, and not
 * async-signal-safe; kern calls it only while weft_run starts. */
const char *hal_getenv(const char *name)
{
    return getenv(name);
}

/* Writes all n bytes to fd 2, continuing after short writes and EINTR,
 * and waiting with poll when stderr is non-blocking (EAGAIN). Gives up
 * silently on any other error (there is nowhere to report it). Blocks
 * while stderr is full; async-signal-safe (write and poll are). */
void hal_write_err(const char *s, size_t n)
{
    int saved_errno = errno;
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w > 0) {
            s += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = STDERR_FILENO, .events = POLLOUT};
            poll(&p, 1, -1);
        } else if (!(w < 0 && errno == EINTR)) {
            break;
        }
    }
    errno = saved_errno;
}

/* abort(3): SIGABRT, a core dump where enabled, no atexit handlers and no
 * stdio flush. Async-signal-safe. */
_Noreturn void hal_abort(void)
{
    abort();
}
