/* SPDX-License-Identifier: MIT */
/*
 * httpd.c — a minimal HTTP/1.1 server on weft that answers "hello" to
 * every request, with keep-alive: one task per connection, requests parsed
 * just enough to find their end (headers end at CRLFCRLF; bodies are not
 * supported: a Content-Length other than 0 closes the connection).
 *
 * Usage: httpd HOST:PORT   (e.g. httpd 127.0.0.1:8080)
 * Try:   wrk -t2 -c100 -d5s http://127.0.0.1:8080/
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "weft.h"

static const char reply_keep[] = "HTTP/1.1 200 OK\r\n"
                                 "Content-Type: text/plain\r\n"
                                 "Content-Length: 5\r\n"
                                 "\r\n"
                                 "hello";
static const char reply_close[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: text/plain\r\n"
                                  "Content-Length: 5\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "hello";

/* Whether the request head [h, h+n) asks to close the connection
 * (HTTP/1.0 without keep-alive, or "Connection: close"). */
static int wants_close(const char *h, size_t n)
{
    int v10 = 0;
    const char *eol = memchr(h, '\n', n);
    if (eol && eol - h >= 9 && memcmp(eol - 9, "HTTP/1.0", 8) == 0)
        v10 = 1;
    int keep = 0, close = 0;
    for (const char *p = h; p && p < h + n;) {
        const char *e = memchr(p, '\n', (size_t)(h + n - p));
        if (!e)
            break;
        if (e - p > 11 && strncasecmp(p, "connection:", 11) == 0) {
            for (const char *q = p + 11; q + 5 <= e; q++) {
                if (strncasecmp(q, "close", 5) == 0)
                    close = 1;
                if (q + 10 <= e && strncasecmp(q, "keep-alive", 10) == 0)
                    keep = 1;
            }
        }
        p = e + 1;
    }
    return close || (v10 && !keep);
}

/* The end of a request's header in buf[0..n), or NULL (memmem is not
 * everywhere: Windows' C runtime lacks it). */
static char *header_end(char *buf, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    return NULL;
}

static void serve(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        /* Complete requests already buffered (pipelining). */
        char *end;
        while (have >= 4 && (end = header_end(buf, have)) != NULL) {
            size_t len = (size_t)(end + 4 - buf);
            int close = wants_close(buf, len);
            const char *r = close ? reply_close : reply_keep;
            size_t rn = close ? sizeof reply_close - 1 : sizeof reply_keep - 1;
            if (weft_write(c, r, rn) != (int64_t)rn || close)
                goto out;
            memmove(buf, buf + len, have - len);
            have -= len;
        }
        if (have == sizeof buf)
            goto out; /* a head larger than the buffer */
        int64_t n = weft_read(c, buf + have, sizeof buf - have);
        if (n <= 0)
            goto out;
        have += (size_t)n;
    }
out:
    weft_close(c);
}

static void server(void *arg)
{
    const char *addr = arg;
    weft_fd ln = weft_listen("tcp", addr);
    if (ln < 0) {
        fprintf(stderr, "httpd: listen %s: %s (errno %d)\n", addr, weft_strerror((int)ln),
                weft_errno());
        return;
    }
    char where[64];
    weft_addr(ln, where, sizeof where);
    printf("httpd: listening on http://%s/\n", where);
    fflush(stdout);
    for (;;) {
        weft_fd c = weft_accept(ln);
        if (c < 0) {
            weft_sleep(10000000);
            continue;
        }
        if (weft_go(serve, (void *)c) != 0)
            weft_close(c);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: httpd HOST:PORT\n");
        return 2;
    }
    int rc = weft_run(server, argv[1], NULL);
    if (rc != 0)
        fprintf(stderr, "httpd: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
