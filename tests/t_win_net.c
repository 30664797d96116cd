/* SPDX-License-Identifier: MIT */
/*
 * t_win_net.c — the Windows port's sockets on the completion port
 * (hal/win32/sock.c), for what the portable cases of t_net.c cannot see
 * (F_WINONLY in cases.h; elsewhere they skip):
 *   iocp_skip_sync   reads of data already queued complete at once and,
 *                    on TCP with the skip mode, dequeue no packet; UDP
 *                    reads still take theirs; with the mode forced off
 *                    (WEFT_IOCP_SKIP=0) or a provider without IFS handles
 *                    injected into the check, the same traffic works and
 *                    takes a packet per read. Counted by
 *                    hal_win32_sock_counter, so removing the mechanism
 *                    fails the case.
 *   iocp_cancel_race deadlines and closes racing completions, thousands
 *                    of times, with every released operation poisoned
 *                    (k_pollfd_poison): a completion for a released
 *                    operation aborts the process, a byte the kernel
 *                    delivered before a cancel must be returned or still
 *                    be in the socket, never lost.
 *   iocp_fini_drain  a run that ends with operations in flight (tasks
 *                    parked in reads, accepts and a dial, discarded):
 *                    hal_poll_fini waits for their completions before
 *                    the stacks go, and the next run works.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check.h"

#ifdef _WIN32
#include <winsock2.h> /* before windows.h, in a block of its own */

#include <windows.h>

#include "hal/win32/win32.h"
#include "kern/poller.h" /* white box: k_pollfd_poison, k_poll_inflight */

#define MS 1000000LL

static int64_t sc(int which)
{
    return hal_win32_sock_counter(which);
}

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

/* ---- iocp_skip_sync ---- */

enum { SS_READS = 1000, SS_DGRAMS = 100 };

static struct {
    int64_t tcp_skipped, tcp_packets, tcp_waited; /* counter deltas over the TCP reads */
    int64_t udp_skipped, udp_packets, udp_waited; /* ... over the UDP reads */
    int allowed;
} ss;

static void skip_main(void *arg)
{
    (void)arg;
    ss.allowed = hal_win32_sock_skip_allowed();
    /* TCP: every message is queued before the first read. */
    weft_fd a, b;
    pair(&a, &b);
    static char out[SS_READS * 8], in[8];
    for (int i = 0; i < SS_READS; i++)
        memcpy(out + 8 * i, &(int64_t){i}, 8);
    CHECK_EQ(weft_write(b, out, sizeof out), (int64_t)sizeof out);
    CHECK_OK(weft_sleep(50 * MS * t_slack())); /* all of it arrives */
    int64_t s0 = sc(HAL_WIN32_SC_SYNC_SKIPPED), p0 = sc(HAL_WIN32_SC_PACKETS),
            w0 = sc(HAL_WIN32_SC_SYNC_PACKET);
    for (int i = 0; i < SS_READS; i++) {
        CHECK_EQ(weft_read(a, in, 8), 8);
        int64_t v;
        memcpy(&v, in, 8);
        CHECK_EQ(v, i);
    }
    ss.tcp_skipped = sc(HAL_WIN32_SC_SYNC_SKIPPED) - s0;
    ss.tcp_packets = sc(HAL_WIN32_SC_PACKETS) - p0;
    ss.tcp_waited = sc(HAL_WIN32_SC_SYNC_PACKET) - w0;
    CHECK_OK(weft_close(a));
    CHECK_OK(weft_close(b));

    /* UDP: datagrams queued, then read. */
    char addr[64], buf[64];
    weft_fd u = weft_listen("udp", "127.0.0.1:0");
    CHECK_GE(u, 0);
    CHECK_OK(weft_addr(u, addr, sizeof addr));
    weft_fd d = weft_dial("udp", addr, 0);
    CHECK_GE(d, 0);
    for (int i = 0; i < SS_DGRAMS; i++)
        CHECK_EQ(weft_write(d, &(int64_t){i}, 8), 8);
    CHECK_OK(weft_sleep(50 * MS * t_slack()));
    s0 = sc(HAL_WIN32_SC_SYNC_SKIPPED);
    p0 = sc(HAL_WIN32_SC_PACKETS);
    w0 = sc(HAL_WIN32_SC_SYNC_PACKET);
    for (int i = 0; i < SS_DGRAMS; i++) {
        CHECK_EQ(weft_read(u, buf, sizeof buf), 8);
        int64_t v;
        memcpy(&v, buf, 8);
        CHECK_EQ(v, i);
    }
    ss.udp_skipped = sc(HAL_WIN32_SC_SYNC_SKIPPED) - s0;
    ss.udp_packets = sc(HAL_WIN32_SC_PACKETS) - p0;
    ss.udp_waited = sc(HAL_WIN32_SC_SYNC_PACKET) - w0;
    CHECK_OK(weft_close(d));
    CHECK_OK(weft_close(u));
}

static void skip_run(const char *how)
{
    memset(&ss, 0, sizeof ss);
    t_run(skip_main, NULL, 2);
    fprintf(stderr,
            "%s: skip %s; TCP reads: %lld taken at once, %lld packets, %lld waited for; "
            "UDP reads: %lld, %lld, %lld\n",
            how, ss.allowed ? "on" : "off", (long long)ss.tcp_skipped, (long long)ss.tcp_packets,
            (long long)ss.tcp_waited, (long long)ss.udp_skipped, (long long)ss.udp_packets,
            (long long)ss.udp_waited);
    /* UDP never skips: each synchronous success still takes its packet. */
    CHECK_EQ(ss.udp_skipped, 0);
    CHECK_EQ(ss.udp_waited, SS_DGRAMS);
    CHECK_EQ(ss.udp_packets, SS_DGRAMS);
}

void t_iocp_skip_sync(void)
{
    /* The check itself: every provider must have IFS handles. */
    WSAPROTOCOL_INFOW p[2];
    memset(p, 0, sizeof p);
    p[0].dwServiceFlags1 = XP1_IFS_HANDLES | XP1_GUARANTEED_DELIVERY;
    p[1].dwServiceFlags1 = XP1_IFS_HANDLES;
    CHECK_EQ(hal_win32_skip_check(p, 2), 1);
    p[1].dwServiceFlags1 = XP1_GUARANTEED_DELIVERY;
    CHECK_EQ(hal_win32_skip_check(p, 2), 0);
    CHECK_EQ(hal_win32_skip_check(p, 0), 0);

    /* The mode on (Wine's TCP providers all have IFS handles): the reads
     * of queued data take no packet at all. */
    skip_run("default");
    CHECK_EQ(ss.allowed, 1);
    CHECK_EQ(ss.tcp_skipped, SS_READS);
    CHECK_EQ(ss.tcp_packets, 0);
    CHECK_EQ(ss.tcp_waited, 0);

    /* Forced off: the same traffic, a packet per read. */
    setenv("WEFT_IOCP_SKIP", "0", 1);
    skip_run("WEFT_IOCP_SKIP=0");
    unsetenv("WEFT_IOCP_SKIP");
    CHECK_EQ(ss.allowed, 0);
    CHECK_EQ(ss.tcp_skipped, 0);
    CHECK_EQ(ss.tcp_waited, SS_READS);
    CHECK_EQ(ss.tcp_packets, SS_READS);

    /* A provider without IFS handles: off as well. */
    hal_win32_sock_test_non_ifs(1);
    skip_run("non-IFS provider");
    hal_win32_sock_test_non_ifs(0);
    CHECK_EQ(ss.allowed, 0);
    CHECK_EQ(ss.tcp_skipped, 0);
    CHECK_EQ(ss.tcp_waited, SS_READS);
    CHECK_EQ(ss.tcp_packets, SS_READS);
}

/* ---- iocp_cancel_race ---- */

static struct {
    weft_fd a, b, ln;
    char addr[64];
    _Atomic int64_t jitter; /* ns the sender waits, per round */
    weft_waitgroup wg;
    int64_t got, timed_out, late;  /* deadline rounds: outcomes */
    int64_t rd_closed, rd_own;     /* close rounds: the reader's outcomes */
    int64_t acc_closed, acc_conns; /* accept rounds */
} cx;

/* Spins for ns without parking (so that the race is at the port, not in
 * the timer heap). */
static void spin(int64_t ns)
{
    int64_t end = weft_now() + ns;
    while (weft_now() < end)
        ;
}

static void cx_sender(void *arg)
{
    char c = (char)(intptr_t)arg;
    spin(atomic_load(&cx.jitter));
    CHECK_EQ(weft_write(cx.b, &c, 1), 1);
    CHECK_OK(weft_wg_done(&cx.wg));
}

static void cx_closer(void *arg)
{
    weft_fd fd = (weft_fd)arg;
    spin(atomic_load(&cx.jitter));
    int rc = weft_close(fd);
    CHECK(rc == 0 || rc == WEFT_ECLOSED);
    CHECK_OK(weft_wg_done(&cx.wg));
}

static void cx_connector(void *arg)
{
    (void)arg;
    spin(atomic_load(&cx.jitter));
    weft_fd c = weft_dial("tcp", cx.addr, 0);
    /* The listener may be gone by now: refused, or connected and then
     * reset (nobody accepts). Either way nothing is lost or leaked. */
    if (c >= 0)
        CHECK_OK(weft_close(c));
    CHECK_OK(weft_wg_done(&cx.wg));
}

static void race_main(void *arg)
{
    (void)arg;
    uint64_t seed = 88172645463325252ull;
    int64_t rounds = t_count(2000);
    /* A read deadline against the byte that would complete the read: the
     * read returns the byte, or WEFT_ETIMEDOUT and the byte is read next. */
    pair(&cx.a, &cx.b);
    for (int64_t i = 0; i < rounds; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        atomic_store(&cx.jitter, (int64_t)(seed % 400000));
        char want = (char)('a' + i % 26), c = 0;
        CHECK_OK(weft_wg_add(&cx.wg, 1));
        CHECK_OK(weft_set_deadline(cx.a, weft_now() + (int64_t)((seed >> 20) % 400000), 0));
        CHECK_OK(weft_go(cx_sender, (void *)(intptr_t)want));
        int64_t r = weft_read(cx.a, &c, 1);
        CHECK_OK(weft_set_deadline(cx.a, 0, 0));
        if (r == 1) {
            cx.got++;
        } else {
            CHECK_EQ(r, WEFT_ETIMEDOUT);
            cx.timed_out++;
            CHECK_EQ(weft_read(cx.a, &c, 1), 1); /* still there */
        }
        CHECK_EQ(c, want);
        CHECK_OK(weft_wg_wait(&cx.wg));
    }
    CHECK_OK(weft_close(cx.a));
    CHECK_OK(weft_close(cx.b));

    /* A close against the byte that would complete a parked read: the
     * reader returns that byte or WEFT_ECLOSED. */
    for (int64_t i = 0; i < rounds / 4; i++) {
        pair(&cx.a, &cx.b);
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        atomic_store(&cx.jitter, (int64_t)(seed % 300000));
        CHECK_OK(weft_wg_add(&cx.wg, 2));
        CHECK_OK(weft_go(cx_sender, (void *)(intptr_t)'z'));
        CHECK_OK(weft_go(cx_closer, (void *)cx.a));
        char c = 0;
        int64_t r = weft_read(cx.a, &c, 1);
        if (r == 1) {
            CHECK_EQ(c, 'z');
            cx.rd_own++;
        } else {
            /* WEFT_EBADF: the close came before the read looked it up. */
            CHECK(r == WEFT_ECLOSED || r == WEFT_EBADF);
            cx.rd_closed++;
        }
        CHECK_OK(weft_wg_wait(&cx.wg));
        CHECK_OK(weft_close(cx.b));
    }

    /* A close against a connection that would complete a parked accept:
     * the accept returns a working socket or WEFT_ECLOSED. */
    for (int64_t i = 0; i < rounds / 4; i++) {
        cx.ln = weft_listen("tcp", "127.0.0.1:0");
        CHECK_GE(cx.ln, 0);
        CHECK_OK(weft_addr(cx.ln, cx.addr, sizeof cx.addr));
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        atomic_store(&cx.jitter, (int64_t)(seed % 300000));
        CHECK_OK(weft_wg_add(&cx.wg, 2));
        CHECK_OK(weft_go(cx_connector, NULL));
        CHECK_OK(weft_go(cx_closer, (void *)cx.ln));
        weft_fd c = weft_accept(cx.ln);
        if (c >= 0) {
            char addr[64];
            CHECK_OK(weft_addr(c, addr, sizeof addr));
            CHECK_OK(weft_close(c));
            cx.acc_conns++;
        } else {
            CHECK(c == WEFT_ECLOSED || c == WEFT_EBADF);
            cx.acc_closed++;
        }
        CHECK_OK(weft_wg_wait(&cx.wg));
    }
    CHECK_EQ(k_poll_inflight(), 0);
}

void t_iocp_cancel_race(void)
{
    if (t_child_mode()) {
        /* The negative control of the port's check: a completion for an
         * operation that kern has released (and poisoned) must abort. */
        struct hal_io op;
        memset(&op, 0xa5, sizeof op);
        hal_win32_sock_completed(op.port);
        exit(50); /* must not get here */
    }
    unsigned long code = t_child_run("iocp_cancel_race", "released");
    fprintf(stderr, "a completion for a released operation: exit code %lu\n", code);
    CHECK_EQ(code, 3); /* hal_abort's */
    k_pollfd_poison = true;
    static const int procs[3] = {1, 2, 4};
    for (int i = 0; i < 3; i++) {
        memset(&cx, 0, sizeof cx);
        int64_t c0 = sc(HAL_WIN32_SC_CANCELS), l0 = sc(HAL_WIN32_SC_CANCEL_LOST);
        t_run(race_main, NULL, procs[i]);
        fprintf(stderr,
                "procs %d: deadline rounds %lld read / %lld timed out; close rounds %lld read / "
                "%lld closed; accept rounds %lld accepted / %lld closed; %lld cancels, %lld of "
                "them after the operation had completed\n",
                procs[i], (long long)cx.got, (long long)cx.timed_out, (long long)cx.rd_own,
                (long long)cx.rd_closed, (long long)cx.acc_conns, (long long)cx.acc_closed,
                (long long)(sc(HAL_WIN32_SC_CANCELS) - c0),
                (long long)(sc(HAL_WIN32_SC_CANCEL_LOST) - l0));
        CHECK_EQ(hal_win32_sock_owed(), 0);
    }
    k_pollfd_poison = false;
}

/* ---- iocp_fini_drain ---- */

static weft_fd fd_ln;

static void fd_reader(void *arg)
{
    char buf[64];
    weft_read((weft_fd)arg, buf, sizeof buf); /* never returns: discarded */
    CHECK(0);
}

static void fd_acceptor(void *arg)
{
    (void)arg;
    weft_accept(fd_ln); /* never returns */
    CHECK(0);
}

static void drain_main(void *arg)
{
    (void)arg;
    fd_ln = weft_listen("tcp", "127.0.0.1:0");
    CHECK_GE(fd_ln, 0);
    for (int i = 0; i < 50; i++) {
        weft_fd a, b;
        pair(&a, &b);
        CHECK_OK(weft_go(fd_reader, (void *)a));
        CHECK_OK(weft_go(fd_reader, (void *)b));
    }
    CHECK_OK(weft_go(fd_acceptor, NULL));
    int64_t t0 = weft_now();
    while (k_poll_inflight() < 101) {
        CHECK_LT(weft_now() - t0, 10000 * MS * t_slack());
        CHECK_OK(weft_sleep(MS));
    }
    CHECK_GE(hal_win32_sock_owed(), 101);
}

void t_iocp_fini_drain(void)
{
    k_pollfd_poison = true;
    for (int i = 0; i < 3; i++) {
        t_run(drain_main, NULL, 1 + i);
        /* Every completion was dequeued before weft_run returned. */
        CHECK_EQ(hal_win32_sock_owed(), 0);
    }
    k_pollfd_poison = false;
}

#else /* not Windows: F_WINONLY cases */
T_NOT_BUILT(t_iocp_skip_sync, "Windows-only case (hal/win32/sock.c)")
T_NOT_BUILT(t_iocp_cancel_race, "Windows-only case (hal/win32/sock.c)")
T_NOT_BUILT(t_iocp_fini_drain, "Windows-only case (hal/win32/sock.c)")
#endif
