/* SPDX-License-Identifier: MIT */
/*
 * poll_epoll.c (posix: Linux) — the poller backend: epoll, an eventfd to
 * wake a blocked waiter, and a nanosecond timeout (Go: netpoll_epoll.go).
 *
 * Registration is edge-triggered (EPOLLET) for read and write at once, for
 * the descriptor's whole life: kern keeps a "ready" flag per direction and
 * retries the operation until it would block again, so each readiness
 * change costs one event and no epoll_ctl.
 *
 * The timeout: epoll_wait's is in milliseconds (a 100 µs sleep would take
 * 1.1 ms, as in Go). Two ways to nanoseconds, chosen at init:
 *   pwait2   epoll_pwait2 with a timespec; the thread's timer slack is set
 *            to 1 ns first (PR_SET_TIMERSLACK), or the kernel adds 50 µs.
 *   timerfd  a timerfd in the epoll set, armed for the timeout before a
 *            blocking epoll_wait(-1); hrtimers behind a timerfd are not
 *            subject to timer slack.
 * WEFT_POLLER_TIMER=timerfd|pwait2 forces one; the default is pwait2, and
 * when the kernel lacks it (ENOSYS: kernels before 5.11, qemu-user 7.2)
 * the first wait switches to timerfd for good.
 *
 * Only the blocking waiter (kern allows one) consumes the eventfd and the
 * timerfd; a non-blocking poll skips their events (both are level-
 * triggered), so it can never swallow the blocking waiter's wake-up.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

#ifdef WEFT_SAN_TSAN
#include <sanitizer/tsan_interface.h>
/* ThreadSanitizer sees epoll_ctl's registration happen before the
 * epoll_wait that reports it (its interceptors order the two on the
 * epoll descriptor), but not the epoll_pwait2 made through syscall(2).
 * The kernel orders them all the same: say so, on the same address. */
#define SAN_REGISTERED() __tsan_release(&epfd)
#define SAN_REPORTED() __tsan_acquire(&epfd)
#else
#define SAN_REGISTERED() ((void)0)
#define SAN_REPORTED() ((void)0)
#endif

enum { MODE_PWAIT2 = 1, MODE_TIMERFD = 2 };

/* Keys of the poller's own descriptors (kern's keys are pointers to its
 * objects, never these small values). */
#define KEY_WAKE ((void *)1)
#define KEY_TIMER ((void *)2)
#define MAX_EVENTS 128

static int epfd = -1, wakefd = -1, timerfd = -1;
static _Atomic int mode;
static _Atomic int wake_pending; /* a wake was written and not yet read */
static int timer_armed;          /* owned by the blocking waiter */
static __thread int slack_set;   /* PR_SET_TIMERSLACK done on this thread */

int hal_poll_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epfd < 0 || wakefd < 0 || timerfd < 0) {
        hal_poll_fini();
        return HAL_EFAIL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = KEY_WAKE};
    struct epoll_event tv = {.events = EPOLLIN, .data.ptr = KEY_TIMER};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) != 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd, &tv) != 0) {
        hal_poll_fini();
        return HAL_EFAIL;
    }
    /* Unset or empty: pwait2 (which falls back to timerfd by itself). */
    const char *m = getenv("WEFT_POLLER_TIMER");
    if (m && *m && strcmp(m, "timerfd") != 0 && strcmp(m, "pwait2") != 0) {
        static const char msg[] = "weft: WEFT_POLLER_TIMER: not a timer mode of this port "
                                  "(timerfd or pwait2)\n";
        hal_write_err(msg, sizeof msg - 1);
        hal_poll_fini();
        return HAL_EINVAL;
    }
    atomic_store(&mode, m && strcmp(m, "timerfd") == 0 ? MODE_TIMERFD : MODE_PWAIT2);
    atomic_store(&wake_pending, 0);
    timer_armed = 0;
    return 0;
}

void hal_poll_fini(void)
{
    if (epfd >= 0)
        close(epfd);
    if (wakefd >= 0)
        close(wakefd);
    if (timerfd >= 0)
        close(timerfd);
    epfd = wakefd = timerfd = -1;
}

int hal_poll_register(intptr_t h, void *key, unsigned flags, uintptr_t *cookie)
{
    (void)flags; /* epoll takes any pollable descriptor and gives it back */
    *cookie = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET,
                             .data.ptr = key};
    SAN_REGISTERED();
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, (int)h, &ev) == 0)
        return 0;
    return errno == EPERM ? HAL_EINVAL : HAL_EFAIL; /* EPERM: not pollable */
}

int hal_poll_unregister(intptr_t h)
{
    return epoll_ctl(epfd, EPOLL_CTL_DEL, (int)h, NULL) == 0 ? 0 : HAL_EFAIL;
}

void hal_poll_wake(void)
{
    /* Coalesced: one write until the blocking waiter reads it. */
    int zero = 0;
    if (!atomic_compare_exchange_strong(&wake_pending, &zero, 1))
        return;
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(wakefd, &one, sizeof one);
    while (r < 0 && errno == EINTR);
}

/* Arms (or with ns < 0 disarms) the timerfd for a relative timeout. */
static void timer_arm(int64_t ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (ns >= 0) {
        if (ns == 0)
            ns = 1; /* it_value 0 would disarm */
        its.it_value.tv_sec = (time_t)(ns / 1000000000);
        its.it_value.tv_nsec = (long)(ns % 1000000000);
    } else if (!timer_armed) {
        return;
    }
    timerfd_settime(timerfd, 0, &its, NULL);
    timer_armed = ns >= 0;
}

static int wait_events(struct epoll_event *evs, int max, int64_t timeout_ns)
{
    if (timeout_ns == 0)
        return epoll_wait(epfd, evs, max, 0);
    if (atomic_load_explicit(&mode, memory_order_relaxed) == MODE_PWAIT2) {
        if (!slack_set) {
            prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
            slack_set = 1;
        }
        struct timespec ts, *tsp = NULL;
        if (timeout_ns > 0) {
            ts.tv_sec = (time_t)(timeout_ns / 1000000000);
            ts.tv_nsec = (long)(timeout_ns % 1000000000);
            tsp = &ts;
        }
        long n = syscall(SYS_epoll_pwait2, epfd, evs, max, tsp, NULL, 0);
        if (n > 0)
            SAN_REPORTED();
        if (n >= 0 || errno != ENOSYS)
            return (int)n;
        atomic_store(&mode, MODE_TIMERFD); /* the kernel lacks it: fall back */
    }
    timer_arm(timeout_ns > 0 ? timeout_ns : -1);
    return epoll_wait(epfd, evs, max, -1);
}

int hal_poll_wait(struct hal_poll_event *ev, int max, int64_t timeout_ns)
{
    struct epoll_event evs[MAX_EVENTS];
    if (max > MAX_EVENTS)
        max = MAX_EVENTS;
    int n = wait_events(evs, max, timeout_ns);
    if (n < 0)
        return errno == EINTR ? 0 : HAL_EFAIL;
    int out = 0;
    for (int i = 0; i < n; i++) {
        void *key = evs[i].data.ptr;
        if (key == KEY_WAKE || key == KEY_TIMER) {
            if (timeout_ns == 0)
                continue; /* the blocking waiter's, not ours */
            uint64_t v;
            if (key == KEY_WAKE) {
                while (read(wakefd, &v, sizeof v) < 0 && errno == EINTR)
                    ;
                atomic_store(&wake_pending, 0);
            } else {
                while (read(timerfd, &v, sizeof v) < 0 && errno == EINTR)
                    ;
                timer_armed = 0;
            }
            continue;
        }
        uint32_t e = evs[i].events, k = 0;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI))
            k |= HAL_POLL_READ;
        if (e & EPOLLOUT)
            k |= HAL_POLL_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            k |= HAL_POLL_ERR | HAL_POLL_READ | HAL_POLL_WRITE;
        /* A hang-up ends the stream at a FIN a read stops at; urgent data
         * stops a read at its mark; after either a short read proves
         * nothing (hal_poll_short_read_drains). */
        if (e & (EPOLLRDHUP | EPOLLPRI | EPOLLERR | EPOLLHUP))
            k |= HAL_POLL_NODRAIN;
        ev[out].key = key;
        ev[out].events = k;
        out++;
    }
    return out;
}

/* TCP's receive path copies until its queue is empty, stopping early only
 * at a FIN, at urgent data or on an error, and a socket registered with
 * EPOLLET is reported again for any data that arrives after a read emptied
 * it: so a short read means empty, unless HAL_POLL_NODRAIN was reported. */
int hal_poll_short_read_drains(void)
{
    return 1;
}

/* Which timeout mechanism the poller uses now: 1 pwait2, 2 timerfd (tests). */
int hal_poll_timer_mode(void)
{
    return atomic_load(&mode);
}
