/* SPDX-License-Identifier: MIT */
/*
 * floor_echo.c — the raw OS floor for the echo scenario: the same TCP
 * loopback exchange as weft-test's and weft-bench-go's echo (conns clients,
 * each sending rounds messages of size bytes to an echo server in the same
 * process and timing the answer), written as hand-made epoll loops with no
 * runtime in between:
 *
 *   floor_echo list
 *   floor_echo echo [conns=100] [rounds=2000] [size=64] [procs=N]
 *
 * It is the best case for the kernel interface every side uses: procs
 * threads, each owning both ends of its share of the connections (so no
 * wake-up ever crosses threads), level-triggered epoll, and reads of exactly
 * the bytes still expected, so no read ever returns EAGAIN. Per round trip
 * that is the minimum: two writes, two reads and a share of an epoll_wait.
 * A runtime that does its job through read/write/epoll cannot beat it; the
 * ratio of Go to this floor says how much room a runtime has above Go.
 *
 * Prints round trips/s and the latency p50/p99 as JSON lines with
 * "impl":"os-floor"; check = round trips whose echo matched byte for byte.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "floor_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* One end of a connection. The client's and the server's ends of
 * connection k belong to thread k % procs. */
struct end {
    int fd;
    int is_client;
    int64_t id;     /* the connection's number */
    int64_t round;  /* client: the round in flight */
    int64_t got;    /* bytes of the current message received */
    int64_t t0;     /* client: when the round's message was written */
    char *out, *in; /* client: what was sent, what came back; server: in */
};

static struct end *ends; /* 2k: connection k's client end, 2k+1: its server end */
static int64_t conns = 100, rounds = 2000, size = 64, procs = 1;
static int64_t *lat, *good;
static pthread_barrier_t start;

static void write_all(int fd, const char *buf, int64_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, (size_t)n);
        if (w < 0 && errno == EAGAIN)
            continue; /* 64 B never fills a loopback socket; be correct anyway */
        if (w <= 0)
            die("write");
        buf += w;
        n -= w;
    }
}

static void client_send(struct end *e)
{
    memcpy(e->out, &e->id, 8);
    memcpy(e->out + 8, &e->round, 8);
    e->got = 0;
    e->t0 = now_ns();
    write_all(e->fd, e->out, size);
}

static void *worker(void *arg)
{
    int64_t w = (int64_t)(intptr_t)arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    int64_t clients = 0;
    for (int64_t k = w; k < conns; k += procs) {
        for (int side = 0; side < 2; side++) {
            struct end *e = &ends[2 * k + side];
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = e};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, e->fd, &ev) != 0)
                die("epoll_ctl");
        }
        clients++;
    }
    pthread_barrier_wait(&start);
    for (int64_t k = w; k < conns; k += procs)
        client_send(&ends[2 * k]);
    int64_t done = 0;
    struct epoll_event evs[256];
    while (done < clients) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct end *e = evs[i].data.ptr;
            ssize_t r = read(e->fd, e->in + e->got, (size_t)(size - e->got));
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0)
                die("read");
            e->got += r;
            if (e->got < size)
                continue;
            if (!e->is_client) {
                e->got = 0;
                write_all(e->fd, e->in, size);
                continue;
            }
            lat[e->id * rounds + e->round] = now_ns() - e->t0;
            if (memcmp(e->in, e->out, (size_t)size) == 0)
                good[e->id]++;
            if (++e->round < rounds)
                client_send(e);
            else
                done++;
        }
    }
    close(ep);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t pct(const int64_t *s, int64_t n, double q)
{
    int64_t i = (int64_t)(q * (double)n + 0.5) - 1;
    if (i < 0)
        i = 0;
    if (i >= n)
        i = n - 1;
    return s[i];
}

static void emit(int64_t n, const char *metric, double value, const char *unit,
                 const char *better, int64_t check, int ok)
{
    printf("{\"scenario\":\"echo\",\"impl\":\"os-floor\",\"procs\":%lld,\"n\":%lld,"
           "\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\",\"better\":\"%s\","
           "\"check\":%lld,\"ok\":%s}\n",
           (long long)procs, (long long)n, metric, value, unit, better, (long long)check,
           ok ? "true" : "false");
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        puts("echo\tTCP loopback echo by bare epoll loops: round trips/s, latency p50/p99");
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "echo") != 0) {
        fprintf(stderr, "usage: floor_echo list | echo [conns=N] [rounds=N] [size=N] [procs=N]\n");
        return 2;
    }
    procs = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "floor_echo: %s is not key=value\n", argv[i]);
            return 2;
        }
        int64_t v = strtoll(eq + 1, NULL, 10);
        size_t k = (size_t)(eq - argv[i]);
        if (k == 5 && strncmp(argv[i], "conns", k) == 0)
            conns = v;
        else if (k == 6 && strncmp(argv[i], "rounds", k) == 0)
            rounds = v;
        else if (k == 4 && strncmp(argv[i], "size", k) == 0)
            size = v;
        else if (k == 5 && strncmp(argv[i], "procs", k) == 0)
            procs = v;
        else {
            fprintf(stderr, "floor_echo: unknown parameter %s\n", argv[i]);
            return 2;
        }
    }
    if (conns < 1 || rounds < 1 || size < 16 || procs < 1) {
        fprintf(stderr, "floor_echo: need conns >= 1, rounds >= 1, size >= 16, procs >= 1\n");
        return 2;
    }
    if (procs > conns)
        procs = conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (int64_t)rl.rlim_cur < 2 * conns + 100 &&
        (rl.rlim_max == RLIM_INFINITY || (int64_t)rl.rlim_max >= 2 * conns + 100)) {
        rl.rlim_cur = (rlim_t)(2 * conns + 100);
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int ln = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (ln < 0 || bind(ln, (struct sockaddr *)&a, sizeof a) != 0 || listen(ln, 4096) != 0 ||
        getsockname(ln, (struct sockaddr *)&a, &alen) != 0)
        die("listen");
    ends = calloc((size_t)(2 * conns), sizeof *ends);
    lat = calloc((size_t)(conns * rounds), sizeof *lat);
    good = calloc((size_t)conns, sizeof *good);
    if (!ends || !lat || !good)
        die("calloc");
    int one = 1;
    for (int64_t k = 0; k < conns; k++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
            die("connect");
        int s = accept4(ln, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (s < 0)
            die("accept");
        if (setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
            die("setsockopt");
        struct end *ce = &ends[2 * k], *se = &ends[2 * k + 1];
        ce->fd = c;
        ce->is_client = 1;
        ce->id = se->id = k;
        se->fd = s;
        ce->out = calloc(1, (size_t)size);
        ce->in = calloc(1, (size_t)size);
        se->in = calloc(1, (size_t)size);
        if (!ce->out || !ce->in || !se->in)
            die("calloc");
    }
    /* The client ends block on connect above; the loops want them
     * non-blocking like the server ends. */
    for (int64_t k = 0; k < conns; k++) {
        if (fcntl(ends[2 * k].fd, F_SETFL, O_NONBLOCK) != 0)
            die("fcntl");
    }

    pthread_t *th = calloc((size_t)procs, sizeof *th);
    if (!th || pthread_barrier_init(&start, NULL, (unsigned)procs + 1) != 0)
        die("threads");
    for (int64_t w = 0; w < procs; w++)
        if (pthread_create(&th[w], NULL, worker, (void *)(intptr_t)w) != 0)
            die("pthread_create");
    pthread_barrier_wait(&start);
    int64_t t0 = now_ns();
    for (int64_t w = 0; w < procs; w++)
        pthread_join(th[w], NULL);
    int64_t wall = now_ns() - t0;

    int64_t n = conns * rounds, total = 0;
    for (int64_t k = 0; k < conns; k++)
        total += good[k];
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    int ok = total == n;
    emit(n, "roundtrips_per_s", (double)total / ((double)wall / 1e9), "rt/s", "higher", total,
         ok);
    emit(n, "latency_p50", (double)pct(lat, n, 0.50) / 1e3, "us", "lower", total, ok);
    emit(n, "latency_p99", (double)pct(lat, n, 0.99) / 1e3, "us", "lower", total, ok);
    return ok ? 0 : 1;
}
