/* SPDX-License-Identifier: MIT */
/*
 * echo.c — a TCP echo server on weft: one task per connection, each a plain
 * blocking-style loop; the poller parks tasks, never threads.
 *
 * Usage: echo [HOST:PORT]   (default 127.0.0.1:7777; port 0 picks one)
 */
#include <stdio.h>

#include "weft.h"

static void serve(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char buf[4096];
    int64_t n;
    while ((n = weft_read(c, buf, sizeof buf)) > 0)
        if (weft_write(c, buf, (size_t)n) != n)
            break;
    weft_close(c);
}

static void server(void *arg)
{
    const char *addr = arg;
    weft_fd ln = weft_listen("tcp", addr);
    if (ln < 0) {
        fprintf(stderr, "echo: listen %s: %s\n", addr, weft_strerror((int)ln));
        return;
    }
    char where[64];
    weft_addr(ln, where, sizeof where);
    printf("echo: listening on %s\n", where);
    fflush(stdout);
    for (;;) {
        weft_fd c = weft_accept(ln);
        if (c < 0) {
            fprintf(stderr, "echo: accept: %s (errno %d)\n", weft_strerror((int)c), weft_errno());
            weft_sleep(10000000); /* e.g. out of descriptors: back off */
            continue;
        }
        if (weft_go(serve, (void *)c) != 0)
            weft_close(c);
    }
}

int main(int argc, char **argv)
{
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1:7777";
    int rc = weft_run(server, (void *)addr, NULL);
    if (rc != 0)
        fprintf(stderr, "echo: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
