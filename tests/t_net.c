/*
 * t_net.c — the poller and the socket API: echo at 1000 connections,
 * deadlines (set before and while blocked), close waking blocked tasks,
 * dial timeout, UDP, IPv6, wait_fd on a pipe, addresses and bad input,
 * and reads after a short read (the poller's shortcut).
 * Loopback only.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/check.h"

static const int procs3[3] = {1, 2, 4};

/* Raises the descriptor limit to at least want (or skips). */
static void need_fds(int64_t want)
{
    struct rlimit rl;
    CHECK_OK(getrlimit(RLIMIT_NOFILE, &rl));
    if ((int64_t)rl.rlim_cur >= want)
        return;
    if (rl.rlim_max != RLIM_INFINITY && (int64_t)rl.rlim_max < want)
        t_skip("RLIMIT_NOFILE hard limit too low");
    rl.rlim_cur = (rlim_t)want;
    CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
}

/* ---- net_echo: conns clients x rounds round trips, every byte checked ---- */

struct echo_ctx {
    weft_fd ln;
    char addr[64];
    int64_t conns, rounds;
    weft_waitgroup wg;
    _Atomic int64_t good;
};
static struct echo_ctx echo;

static void echo_conn(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char buf[256];
    for (;;) {
        int64_t n = weft_read(c, buf, sizeof buf);
        if (n <= 0)
            break;
        CHECK_EQ(weft_write(c, buf, (size_t)n), n);
    }
    CHECK_OK(weft_close(c));
}

static void echo_server(void *arg)
{
    (void)arg;
    for (;;) {
        weft_fd c = weft_accept(echo.ln);
        if (c == WEFT_ECLOSED)
            return;
        CHECK_GE(c, 0);
        CHECK_OK(weft_go(echo_conn, (void *)c));
    }
}

static void echo_client(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg;
    weft_fd c = weft_dial("tcp", echo.addr, 10000000000);
    if (c < 0)
        fprintf(stderr, "dial %s: %s errno %d\n", echo.addr, weft_strerror((int)c), weft_errno());
    CHECK_GE(c, 0);
    char out[64], in[64];
    for (int64_t r = 0; r < echo.rounds; r++) {
        memset(out, (int)(id + r), sizeof out);
        memcpy(out, &id, sizeof id);
        memcpy(out + 8, &r, sizeof r);
        CHECK_EQ(weft_write(c, out, sizeof out), sizeof out);
        size_t got = 0;
        while (got < sizeof in) {
            int64_t n = weft_read(c, in + got, sizeof in - got);
            CHECK_GT(n, 0);
            got += (size_t)n;
        }
        if (memcmp(in, out, sizeof out) == 0)
            atomic_fetch_add(&echo.good, 1);
    }
    CHECK_OK(weft_close(c));
    weft_wg_done(&echo.wg);
}

static void echo_main(void *arg)
{
    (void)arg;
    echo.ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(echo.ln, 0);
    CHECK_OK(weft_addr(echo.ln, echo.addr, sizeof echo.addr));
    CHECK_OK(weft_go(echo_server, NULL));
    CHECK_OK(weft_wg_add(&echo.wg, echo.conns));
    for (int64_t i = 0; i < echo.conns; i++)
        CHECK_OK(weft_go(echo_client, (void *)(intptr_t)i));
    CHECK_OK(weft_wg_wait(&echo.wg));
    CHECK_OK(weft_close(echo.ln));
}

void t_net_echo(void)
{
    need_fds(2 * 1000 + 100);
    for (int i = 0; i < 3; i++) {
        memset(&echo, 0, sizeof echo);
        echo.conns = t_count(1000);
        echo.rounds = 20;
        int64_t t0 = weft_now();
        t_run(echo_main, NULL, procs3[i]);
        CHECK_EQ(atomic_load(&echo.good), echo.conns * echo.rounds);
        fprintf(stderr, "procs %d: %lld conns x %lld rounds in %.1f ms\n", procs3[i],
                (long long)echo.conns, (long long)echo.rounds, (weft_now() - t0) / 1e6);
    }
}

/* ---- net_deadline: read and write deadlines, before and while blocked ---- */

static weft_fd dl_a, dl_b;

/* A connected pair through a listener. */
static void pair(weft_fd *a, weft_fd *b)
{
    weft_fd ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(ln, 0);
    char addr[64];
    CHECK_OK(weft_addr(ln, addr, sizeof addr));
    *a = weft_dial("tcp", addr, 0);
    CHECK_GE(*a, 0);
    *b = weft_accept(ln);
    CHECK_GE(*b, 0);
    CHECK_OK(weft_close(ln));
}

static void set_later(void *arg)
{
    int which = (int)(intptr_t)arg;
    CHECK_OK(weft_sleep(20000000));
    int64_t d = weft_now() + 10000000;
    CHECK_OK(weft_set_deadline(dl_a, which == 0 ? d : 0, which == 1 ? d : 0));
}

static void deadline_main(void *arg)
{
    (void)arg;
    pair(&dl_a, &dl_b);
    char buf[1 << 16];
    /* Read deadline set before: times out, not early. */
    int64_t t0 = weft_now();
    CHECK_OK(weft_set_deadline(dl_a, t0 + 30000000, 0));
    CHECK_EQ(weft_read(dl_a, buf, 1), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, 30000000);
    /* Expired stays expired; clearing it lets data through. */
    CHECK_EQ(weft_read(dl_a, buf, 1), WEFT_ETIMEDOUT);
    CHECK_OK(weft_set_deadline(dl_a, 0, 0));
    CHECK_EQ(weft_write(dl_b, "x", 1), 1);
    CHECK_EQ(weft_read(dl_a, buf, 1), 1);
    /* A deadline in the past. */
    CHECK_OK(weft_set_deadline(dl_a, weft_now() - 1, 0));
    CHECK_EQ(weft_read(dl_a, buf, 1), WEFT_ETIMEDOUT);
    CHECK_OK(weft_set_deadline(dl_a, 0, 0));
    /* Read deadline set while blocked (by another task). */
    CHECK_OK(weft_go(set_later, (void *)0));
    t0 = weft_now();
    CHECK_EQ(weft_read(dl_a, buf, 1), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, 20000000);
    CHECK_OK(weft_set_deadline(dl_a, 0, 0));
    /* Write deadline: the peer never reads, so writes fill the buffers. */
    CHECK_OK(weft_set_deadline(dl_a, 0, weft_now() + 50000000));
    int64_t r;
    while ((r = weft_write(dl_a, buf, sizeof buf)) > 0)
        ;
    CHECK_EQ(r, WEFT_ETIMEDOUT);
    /* Write deadline set while blocked. */
    CHECK_OK(weft_set_deadline(dl_a, 0, 0));
    CHECK_OK(weft_go(set_later, (void *)1));
    while ((r = weft_write(dl_a, buf, sizeof buf)) > 0)
        ;
    CHECK_EQ(r, WEFT_ETIMEDOUT);
    /* A deadline pushed back while blocked: still waits, then data wins. */
    CHECK_OK(weft_close(dl_a));
    CHECK_OK(weft_close(dl_b));
}

void t_net_deadline(void)
{
    for (int i = 0; i < 3; i++)
        t_run(deadline_main, NULL, procs3[i]);
}

/* ---- net_close_wakes: close wakes a blocked reader and writer ---- */

static weft_waitgroup cw_wg;
static _Atomic int cw_codes[2];

static void cw_reader(void *arg)
{
    char b[16];
    atomic_store(&cw_codes[0], (int)weft_read((weft_fd)arg, b, sizeof b));
    weft_wg_done(&cw_wg);
}

static void cw_writer(void *arg)
{
    static char buf[1 << 16];
    int64_t r;
    while ((r = weft_write((weft_fd)arg, buf, sizeof buf)) > 0)
        ;
    atomic_store(&cw_codes[1], (int)r);
    weft_wg_done(&cw_wg);
}

static void close_main(void *arg)
{
    (void)arg;
    weft_fd a, b;
    pair(&a, &b);
    atomic_store(&cw_codes[0], 1);
    atomic_store(&cw_codes[1], 1);
    CHECK_OK(weft_wg_add(&cw_wg, 2));
    CHECK_OK(weft_go(cw_reader, (void *)a));
    CHECK_OK(weft_go(cw_writer, (void *)a));
    CHECK_OK(weft_sleep(50000000)); /* both block */
    CHECK_OK(weft_close(a));
    CHECK_OK(weft_wg_wait(&cw_wg));
    CHECK_EQ(atomic_load(&cw_codes[0]), WEFT_ECLOSED);
    CHECK_EQ(atomic_load(&cw_codes[1]), WEFT_ECLOSED);
    /* Using it afterwards. */
    char c;
    CHECK_EQ(weft_read(a, &c, 1), WEFT_EBADF);
    CHECK_EQ(weft_write(a, &c, 1), WEFT_EBADF);
    CHECK_EQ(weft_close(a), WEFT_EBADF);
    /* The peer sees end of stream. */
    char buf[1 << 16];
    int64_t r;
    while ((r = weft_read(b, buf, sizeof buf)) > 0)
        ;
    CHECK(r == 0 || r == WEFT_EIO);
    CHECK_OK(weft_close(b));
}

void t_net_close_wakes(void)
{
    for (int i = 0; i < 3; i++) {
        memset(&cw_wg, 0, sizeof cw_wg);
        t_run(close_main, NULL, procs3[i]);
    }
}

/* ---- net_short_read: reads after a short read (kern/poller.c "Short
 * reads": weft may park before such a read instead of making it). Nothing
 * may be missed: data that comes later, data and a FIN together, urgent
 * data (a read stops at its mark), deadlines and close. ---- */

#define SR_CONNS 64

static struct {
    weft_waitgroup wg;
    _Atomic int64_t sent, echoed, served, eofs;
} sr;

/* Echoes whatever comes, in reads bigger than any message, until EOF;
 * not the last message (bytes 0xff), which the client does not read: an
 * echo to a closed socket would make its kernel reset the connection. */
static void sr_server(void *arg)
{
    weft_fd c = (weft_fd)arg;
    char buf[4096];
    int64_t r;
    while ((r = weft_read(c, buf, sizeof buf)) > 0) {
        atomic_fetch_add(&sr.served, r);
        if (memchr(buf, 0xff, (size_t)r) == NULL)
            CHECK_EQ(weft_write(c, buf, (size_t)r), r);
    }
    CHECK_EQ(r, 0);
    atomic_fetch_add(&sr.eofs, 1);
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_wg_done(&sr.wg));
}

static int sr_read_full(weft_fd c, char *buf, int64_t n)
{
    for (int64_t got = 0; got < n;) {
        int64_t r = weft_read(c, buf + got, (size_t)(n - got));
        if (r <= 0)
            return -1;
        got += r;
    }
    return 0;
}

/* Rounds of a message of random length echoed back (each server read is
 * short), some after a pause (the server parks first, data comes later),
 * then a last message written together with the close (data and FIN in
 * one report, or a FIN after a short read). */
static void sr_client(void *arg)
{
    weft_fd c = (weft_fd)arg;
    uint64_t seed = (uint64_t)c * 0x9e3779b97f4a7c15ull + 1;
    char out[300], in[300];
    for (int round = 0; round < 20; round++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int64_t n = 1 + (int64_t)((seed >> 33) % 256);
        for (int64_t i = 0; i < n; i++)
            out[i] = (char)('a' + (seed >> (i % 56)) % 26);
        if ((seed >> 20) % 4 == 0)
            CHECK_OK(weft_sleep(200000));
        CHECK_EQ(weft_write(c, out, (size_t)n), n);
        atomic_fetch_add(&sr.sent, n);
        CHECK_OK(sr_read_full(c, in, n));
        CHECK_EQ(memcmp(in, out, (size_t)n), 0);
        atomic_fetch_add(&sr.echoed, n);
    }
    CHECK_EQ(weft_write(c, "\xff\xff\xff\xff", 4), 4);
    atomic_fetch_add(&sr.sent, 4);
    CHECK_OK(weft_close(c));
    CHECK_OK(weft_wg_done(&sr.wg));
}

static weft_fd sr_late_fd;

static void sr_write_late(void *arg)
{
    (void)arg;
    CHECK_OK(weft_sleep(10000000));
    CHECK_EQ(weft_write(sr_late_fd, "z", 1), 1);
}

static void sr_main(void *arg)
{
    (void)arg;
    CHECK_OK(weft_wg_add(&sr.wg, 2 * SR_CONNS));
    for (int i = 0; i < SR_CONNS; i++) {
        weft_fd a, b;
        pair(&a, &b);
        CHECK_OK(weft_go(sr_server, (void *)b));
        CHECK_OK(weft_go(sr_client, (void *)a));
    }
    CHECK_OK(weft_wg_wait(&sr.wg));
    CHECK_EQ(atomic_load(&sr.served), atomic_load(&sr.sent));
    CHECK_EQ(atomic_load(&sr.eofs), SR_CONNS);

    /* Urgent data: the read before the mark comes back short although
     * more is queued; the next read must still get it (no new report
     * comes: everything arrived at once). */
    weft_fd a, b;
    pair(&a, &b);
    char buf[64];
    CHECK_EQ(weft_write(a, "ab", 2), 2);
    CHECK_EQ(weft_read(b, buf, sizeof buf), 2); /* short: b is "empty" now */
    CHECK_EQ(send((int)a, "cd", 2, 0), 2);
    CHECK_EQ(send((int)a, "U", 1, MSG_OOB), 1);
    CHECK_EQ(send((int)a, "ef", 2, 0), 2);
    CHECK_OK(weft_sleep(20000000)); /* all of it arrives before b reads */
    int64_t got = 0;
    while (got < 4) {
        int64_t r = weft_read(b, buf + got, sizeof buf - (size_t)got);
        CHECK_GT(r, 0);
        got += r;
    }
    CHECK_EQ(memcmp(buf, "cdef", 4), 0);

    /* A deadline and a close still end a read that parks first. */
    CHECK_EQ(weft_write(a, "x", 1), 1);
    CHECK_EQ(weft_read(b, buf, sizeof buf), 1);
    int64_t t0 = weft_now();
    CHECK_OK(weft_set_deadline(b, t0 + 20000000, 0));
    CHECK_EQ(weft_read(b, buf, sizeof buf), WEFT_ETIMEDOUT);
    CHECK_GE(weft_now() - t0, 20000000);
    CHECK_OK(weft_set_deadline(b, 0, 0));
    CHECK_EQ(weft_write(a, "yz", 2), 2);
    CHECK_EQ(sr_read_full(b, buf, 2), 0);
    CHECK_EQ(memcmp(buf, "yz", 2), 0);
    CHECK_OK(weft_close(a));
    CHECK_EQ(weft_read(b, buf, sizeof buf), 0);
    CHECK_OK(weft_close(b));

    /* Full reads (hal.h: drained, TCP_INQ on Linux), on a fresh pair (the
     * urgent data above switched the shortcut off for b). One that leaves
     * bytes queued behind it must not wait for a report that never comes
     * (all of it arrived at once); one that empties the socket exactly
     * waits first, and must still wake for data that comes later. */
    weft_fd fa, fb;
    pair(&fa, &fb);
    CHECK_EQ(weft_write(fa, "123456789abc", 12), 12);
    CHECK_OK(weft_sleep(20000000)); /* all 12 bytes are queued at fb */
    for (int i = 0; i < 3; i++) /* 3: the first wait uses up the report */
        CHECK_EQ(weft_read(fb, buf + 4 * i, 4), 4);
    CHECK_EQ(memcmp(buf, "123456789abc", 12), 0);
    sr_late_fd = fa;
    CHECK_OK(weft_go(sr_write_late, NULL));
    CHECK_EQ(weft_read(fb, buf, 1), 1);
    CHECK_EQ(buf[0], 'z');
    CHECK_OK(weft_close(fa));
    CHECK_EQ(weft_read(fb, buf, sizeof buf), 0);
    CHECK_OK(weft_close(fb));
}

void t_net_short_read(void)
{
    need_fds(2 * SR_CONNS + 64);
    for (int i = 0; i < 3; i++) {
        memset(&sr, 0, sizeof sr);
        t_run(sr_main, NULL, procs3[i]);
    }
}

/* ---- net_dial_timeout: a listener that never accepts, backlog full ---- */

static void dial_timeout_main(void *arg)
{
    (void)arg;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_GE(s, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_OK(bind(s, (struct sockaddr *)&sa, sizeof sa));
    CHECK_OK(listen(s, 0));
    socklen_t sl = sizeof sa;
    CHECK_OK(getsockname(s, (struct sockaddr *)&sa, &sl));
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
    weft_fd held[16];
    int nheld = 0, timed_out = 0;
    for (int i = 0; i < 16 && !timed_out; i++) {
        int64_t t0 = weft_now();
        weft_fd c = weft_dial("tcp", addr, 100000000);
        if (c >= 0) {
            held[nheld++] = c;
            continue;
        }
        CHECK_EQ(c, WEFT_ETIMEDOUT);
        CHECK_GE(weft_now() - t0, 100000000);
        timed_out = 1;
    }
    CHECK(timed_out);
    for (int i = 0; i < nheld; i++)
        CHECK_OK(weft_close(held[i]));
    close(s);
}

void t_net_dial_timeout(void)
{
    for (int i = 0; i < 3; i++)
        t_run(dial_timeout_main, NULL, procs3[i]);
}

/* ---- net_udp_ipv6: UDP datagrams, IPv6 loopback ---- */

static void udp_main(void *arg)
{
    (void)arg;
    char addr[64], buf[64];
    weft_fd u = weft_listen("udp", "127.0.0.1:0");
    CHECK_GE(u, 0);
    CHECK_OK(weft_addr(u, addr, sizeof addr));
    weft_fd d = weft_dial("udp", addr, 0);
    CHECK_GE(d, 0);
    CHECK_EQ(weft_write(d, "ping", 4), 4);
    CHECK_EQ(weft_read(u, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);
    CHECK_OK(weft_close(d));
    CHECK_OK(weft_close(u));

    weft_fd ln = weft_listen("tcp6", "[::1]:0");
    if (ln < 0) {
        fprintf(stderr, "no IPv6 loopback here (%s); skipping that part\n",
                weft_strerror((int)ln));
        return;
    }
    CHECK_OK(weft_addr(ln, addr, sizeof addr));
    CHECK(strncmp(addr, "[::1]:", 6) == 0);
    weft_fd c = weft_dial("tcp", addr, 0);
    CHECK_GE(c, 0);
    weft_fd s = weft_accept(ln);
    CHECK_GE(s, 0);
    CHECK_EQ(weft_write(c, "six", 3), 3);
    CHECK_EQ(weft_read(s, buf, sizeof buf), 3);
    CHECK_OK(weft_close(c));
    CHECK_EQ(weft_read(s, buf, sizeof buf), 0);
    CHECK_OK(weft_close(s));
    CHECK_OK(weft_close(ln));
}

void t_net_udp_ipv6(void)
{
    for (int i = 0; i < 3; i++)
        t_run(udp_main, NULL, procs3[i]);
}

/* ---- net_wait_fd: any pollable descriptor ---- */

static int wf_pipe[2];

static void wf_writer(void *arg)
{
    (void)arg;
    weft_sleep(20000000);
    CHECK_EQ(write(wf_pipe[1], "z", 1), 1);
}

static void wait_fd_main(void *arg)
{
    (void)arg;
    CHECK_OK(pipe(wf_pipe));
    CHECK_EQ(weft_wait_fd(wf_pipe[0], WEFT_READABLE, weft_now() + 10000000), WEFT_ETIMEDOUT);
    CHECK_OK(weft_go(wf_writer, NULL));
    CHECK_OK(weft_wait_fd(wf_pipe[0], WEFT_READABLE, 0));
    char c;
    CHECK_EQ(read(wf_pipe[0], &c, 1), 1);
    CHECK_OK(weft_wait_fd(wf_pipe[1], WEFT_WRITABLE, 0));
    CHECK_EQ(weft_wait_fd(wf_pipe[0], 0, 0), WEFT_EINVAL);
    CHECK_EQ(weft_wait_fd(-1, WEFT_READABLE, 0), WEFT_EBADF);
    close(wf_pipe[0]);
    close(wf_pipe[1]);
}

void t_net_wait_fd(void)
{
    for (int i = 0; i < 3; i++)
        t_run(wait_fd_main, NULL, procs3[i]);
}

/* ---- net_bad_input ---- */

static void bad_main(void *arg)
{
    (void)arg;
    static const char *bad_addr[] = {
        "", "127.0.0.1", "127.0.0.1:", ":", "127.0.0.1:65536", "127.0.0.1:-1",
        "127.0.0.1:99999999", "127.0.0.1:8x", "256.0.0.1:80", "1.2.3:80", "1.2.3.4.5:80",
        "example.com:80", "[::1:80", "::1:80", "[::1]80", "[1:2:3:4:5:6:7:8:9]:80",
        "[1::2::3]:80", "[:::]:80", "[g::1]:80", "1..2.3:80", "1.2.3.04444:80"};
    for (size_t i = 0; i < sizeof bad_addr / sizeof bad_addr[0]; i++) {
        weft_fd r = weft_listen("tcp", bad_addr[i]);
        if (r != WEFT_EINVAL)
            fprintf(stderr, "address '%s' gave %lld\n", bad_addr[i], (long long)r);
        CHECK_EQ(r, WEFT_EINVAL);
        CHECK_EQ(weft_dial("tcp", bad_addr[i], 0), WEFT_EINVAL);
    }
    CHECK_EQ(weft_listen("sctp", "127.0.0.1:0"), WEFT_EINVAL);
    CHECK_EQ(weft_listen(NULL, "127.0.0.1:0"), WEFT_EINVAL);
    CHECK_EQ(weft_listen("tcp", NULL), WEFT_EINVAL);
    CHECK_EQ(weft_listen("tcp4", "[::1]:0"), WEFT_EINVAL);
    CHECK_EQ(weft_listen("tcp6", "127.0.0.1:0"), WEFT_EINVAL);
    CHECK_EQ(weft_dial("tcp", "127.0.0.1:1", -1), WEFT_EINVAL);

    /* Good forms. */
    char addr[64];
    weft_fd l = weft_listen("tcp", ":0");
    CHECK_GE(l, 0);
    CHECK_OK(weft_addr(l, addr, sizeof addr));
    CHECK(strncmp(addr, "0.0.0.0:", 8) == 0);
    CHECK_EQ(weft_addr(l, addr, 4), WEFT_EINVAL);
    CHECK_OK(weft_close(l));
    l = weft_listen("tcp", "localhost:0");
    CHECK_GE(l, 0);
    CHECK_OK(weft_addr(l, addr, sizeof addr));
    CHECK(strncmp(addr, "127.0.0.1:", 10) == 0);
    /* Accept needs a listener; read/write need a connection. */
    char b[4];
    CHECK_EQ(weft_read(l, b, 1), WEFT_EBADF);
    CHECK_OK(weft_close(l));
    l = weft_listen("tcp6", "[0:0::1]:0");
    if (l >= 0) {
        CHECK_OK(weft_addr(l, addr, sizeof addr));
        CHECK(strncmp(addr, "[::1]:", 6) == 0);
        CHECK_OK(weft_close(l));
    }

    /* Refused: nothing listens on a port we just released. */
    l = weft_listen("tcp", "127.0.0.1:0");
    CHECK_OK(weft_addr(l, addr, sizeof addr));
    CHECK_OK(weft_close(l));
    weft_fd c = weft_dial("tcp", addr, 0);
    CHECK_EQ(c, WEFT_EIO);
    CHECK_EQ(weft_errno(), ECONNREFUSED);

    /* Descriptors weft does not know. */
    int p[2];
    CHECK_OK(pipe(p));
    CHECK_EQ(weft_read(p[0], b, 1), WEFT_EBADF);
    CHECK_EQ(weft_write(p[1], b, 1), WEFT_EBADF);
    CHECK_EQ(weft_accept(p[0]), WEFT_EBADF);
    CHECK_EQ(weft_close(p[0]), WEFT_EBADF);
    CHECK_EQ(weft_set_deadline(p[0], 0, 0), WEFT_EBADF);
    CHECK_EQ(weft_read(-1, b, 1), WEFT_EBADF);
    CHECK_EQ(weft_read(1 << 30, b, 1), WEFT_EBADF);
    close(p[0]);
    close(p[1]);
    CHECK_EQ(weft_read(0, NULL, 1), WEFT_EINVAL);
}

void t_net_bad_input(void)
{
    CHECK_EQ(weft_listen("tcp", "127.0.0.1:0"), WEFT_ENOTASK);
    CHECK_EQ(weft_read(0, NULL, 0), WEFT_ENOTASK);
    for (int i = 0; i < 3; i++)
        t_run(bad_main, NULL, procs3[i]);
}
