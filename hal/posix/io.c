/* SPDX-License-Identifier: MIT */
/*
 * io.c (posix) — sockets and I/O operations for kern's poller: BSD sockets,
 * all non-blocking, and the submit-an-operation interface of hal.h in its
 * readiness form: an operation either finishes now (DONE), would block
 * (PENDING: the poller will report the descriptor, kern submits again) or
 * fails with errno kept in op->os_error.
 *
 * Addresses cross the boundary as struct hal_sockaddr (portable); this file
 * converts to and from sockaddr_in / sockaddr_in6. SIGPIPE is avoided with
 * MSG_NOSIGNAL on sends; writes to non-sockets (any pollable descriptor)
 * use write(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "posix.h"

int hal_os_error(void)
{
    return errno;
}

static socklen_t to_os(const struct hal_sockaddr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == HAL_AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        memcpy(&s6->sin6_addr, a->addr, 16);
        s6->sin6_scope_id = a->scope_id;
        return sizeof *s6;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons(a->port);
    memcpy(&s4->sin_addr, a->addr, 4);
    return sizeof *s4;
}

static void from_os(const struct sockaddr_storage *ss, struct hal_sockaddr *a)
{
    memset(a, 0, sizeof *a);
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        a->family = HAL_AF_INET6;
        a->port = ntohs(s6->sin6_port);
        memcpy(a->addr, &s6->sin6_addr, 16);
        a->scope_id = s6->sin6_scope_id;
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        a->family = HAL_AF_INET;
        a->port = ntohs(s4->sin_port);
        memcpy(a->addr, &s4->sin_addr, 4);
    }
}

intptr_t hal_sock_open(int family, int type)
{
    int f = family == HAL_AF_INET6 ? AF_INET6 : family == HAL_AF_INET ? AF_INET : -1;
    int t = type == HAL_SOCK_STREAM ? SOCK_STREAM : type == HAL_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (f < 0 || t < 0) {
        errno = EINVAL;
        return HAL_EINVAL;
    }
    int fd = socket(f, t | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM
                   ? HAL_ENOMEM
                   : HAL_EFAIL;
    return fd;
}

int hal_sock_bind(intptr_t h, const struct hal_sockaddr *a)
{
    struct sockaddr_storage ss;
    socklen_t n = to_os(a, &ss);
    return bind((int)h, (struct sockaddr *)&ss, n) == 0 ? 0 : HAL_EFAIL;
}

int hal_sock_listen(intptr_t h, int backlog)
{
    return listen((int)h, backlog) == 0 ? 0 : HAL_EFAIL;
}

int hal_sock_close(intptr_t h)
{
    /* Linux closes the descriptor even when close reports EINTR: no retry. */
    return close((int)h) == 0 || errno == EINTR ? 0 : HAL_EFAIL;
}

int hal_sock_name(intptr_t h, struct hal_sockaddr *a)
{
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    if (getsockname((int)h, (struct sockaddr *)&ss, &n) != 0)
        return HAL_EFAIL;
    from_os(&ss, a);
    return a->family ? 0 : HAL_EINVAL;
}

int hal_sock_setopt(intptr_t h, int opt, int value)
{
    int level, name;
    switch (opt) {
    case HAL_SO_REUSEADDR:
        level = SOL_SOCKET, name = SO_REUSEADDR;
        break;
    case HAL_SO_NODELAY:
        level = IPPROTO_TCP, name = TCP_NODELAY;
        break;
    case HAL_SO_V6ONLY:
        level = IPPROTO_IPV6, name = IPV6_V6ONLY;
        break;
    case HAL_SO_RCVBUF:
        level = SOL_SOCKET, name = SO_RCVBUF;
        break;
    case HAL_SO_SNDBUF:
        level = SOL_SOCKET, name = SO_SNDBUF;
        break;
#ifdef TCP_INQ
    case HAL_SO_READ_LEFT:
        level = IPPROTO_TCP, name = TCP_INQ;
        break;
#endif
    default:
        errno = EINVAL;
        return HAL_EINVAL;
    }
    return setsockopt((int)h, level, name, &value, sizeof value) == 0 ? 0 : HAL_EFAIL;
}

/* A result of the raw call r (with errno) as hal.h wants it. */
static int finish(struct hal_io *op, ssize_t r)
{
    if (r >= 0) {
        op->result = r;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return HAL_EPENDING;
    op->os_error = errno;
    return HAL_EFAIL;
}

static int do_connect(struct hal_io *op)
{
    struct sockaddr_storage ss;
    socklen_t n = to_os(&op->addr, &ss);
    int first = !op->started;
    op->started = 1;
    if (connect((int)op->h, (struct sockaddr *)&ss, n) == 0) {
        op->result = 0;
        return 0;
    }
    int e = errno;
    if (e == EISCONN && !first) {
        op->result = 0;
        return 0;
    }
    if (e == EINPROGRESS || e == EALREADY || e == EINTR) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (!first && getsockopt((int)op->h, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr) {
            op->os_error = soerr;
            return HAL_EFAIL;
        }
        return HAL_EPENDING;
    }
    op->os_error = e;
    return HAL_EFAIL;
}

/*
 * A read of a connected stream socket. With TCP_INQ on (HAL_SO_READ_LEFT),
 * Linux attaches to every recvmsg the bytes still queued after it
 * (TCP_CM_INQ); 0 means the read emptied the socket, so the next read
 * would only fail with EAGAIN until the poller reports more. Knowing that
 * saves a request-response exchange one system call per message: with
 * exact-size reads no read comes back short, so without it every message
 * costs a read that finds nothing. Without the option (or on a kernel
 * older than 4.18) no control message comes and drained stays 0. qemu-user
 * passes the control message through as it is (an int either way).
 */
static ssize_t read_stream(struct hal_io *op)
{
    struct iovec iov = {.iov_base = op->buf, .iov_len = op->len};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
#ifdef TCP_CM_INQ
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
#else
    (void)ctl;
#endif
    ssize_t r = recvmsg((int)op->h, &msg, 0);
    if (r < 0 && errno == ENOTSOCK)
        return read((int)op->h, op->buf, op->len);
#ifdef TCP_CM_INQ
    if (r > 0 && !(msg.msg_flags & MSG_CTRUNC)) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == IPPROTO_TCP && c->cmsg_type == TCP_CM_INQ &&
                c->cmsg_len >= CMSG_LEN(sizeof(int))) {
                int left;
                memcpy(&left, CMSG_DATA(c), sizeof left);
                op->drained = left == 0;
            }
        }
    }
#endif
    return r;
}

/* The WAIT kinds: whether the descriptor is ready now. On an edge-
 * triggered poller a report says only that the state changed since the
 * last one, and a wait may come long after the report its side's ready
 * flag keeps (or after a read took that flag and left data behind), so
 * every submit looks: a zero-timeout poll(2), one system call. Hang-up and
 * error count as ready (the next read or write reports them). */
static int wait_ready(struct hal_io *op)
{
    short want = op->kind == HAL_IO_WAIT_READ ? POLLIN | POLLPRI | POLLRDHUP : POLLOUT;
    struct pollfd p = {.fd = (int)op->h, .events = want};
    int n;
    while ((n = poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        op->os_error = errno;
        return HAL_EFAIL;
    }
    if (n > 0 && (p.revents & POLLNVAL)) {
        op->os_error = EBADF;
        return HAL_EFAIL;
    }
    if (n == 0 || !(p.revents & (want | POLLERR | POLLHUP))) {
        op->started = 1;
        return HAL_EPENDING;
    }
    op->result = 0;
    return 0;
}

int hal_io_submit(struct hal_io *op)
{
    int fd = (int)op->h;
    ssize_t r;
    for (;;) {
        switch (op->kind) {
        case HAL_IO_READ:
            r = op->stream ? read_stream(op) : read(fd, op->buf, op->len);
            break;
        case HAL_IO_WRITE:
            r = send(fd, op->buf, op->len, MSG_NOSIGNAL);
            if (r < 0 && errno == ENOTSOCK)
                r = write(fd, op->buf, op->len);
            break;
        case HAL_IO_ACCEPT: {
            struct sockaddr_storage ss;
            socklen_t n = sizeof ss;
            r = accept4(fd, (struct sockaddr *)&ss, &n, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (r >= 0)
                from_os(&ss, &op->addr);
            else if (errno == ECONNABORTED)
                continue; /* the peer gave up before we accepted: next */
            break;
        }
        case HAL_IO_CONNECT:
            return do_connect(op);
        case HAL_IO_WAIT_READ:
        case HAL_IO_WAIT_WRITE:
            return wait_ready(op);
        case HAL_IO_RECVFROM: {
            struct sockaddr_storage ss;
            socklen_t n = sizeof ss;
            r = recvfrom(fd, op->buf, op->len, 0, (struct sockaddr *)&ss, &n);
            if (r >= 0)
                from_os(&ss, &op->addr);
            break;
        }
        case HAL_IO_SENDTO: {
            struct sockaddr_storage ss;
            socklen_t n = to_os(&op->addr, &ss);
            r = sendto(fd, op->buf, op->len, MSG_NOSIGNAL, (struct sockaddr *)&ss, n);
            break;
        }
        default:
            op->os_error = EINVAL;
            return HAL_EINVAL;
        }
        if (r < 0 && errno == EINTR)
            continue;
        return finish(op, r);
    }
}

int hal_io_cancel(struct hal_io *op)
{
    (void)op; /* readiness: nothing is in flight */
    return 0;
}

int hal_io_completion(void)
{
    return 0;
}
