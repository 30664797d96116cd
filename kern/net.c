/* SPDX-License-Identifier: MIT */
/*
 * net.c — the socket API of weft.h (Go: net's fd_posix.go and
 * internal/poll's FD over the runtime poller): address parsing and
 * printing, listen/dial/accept, read/write with deadlines, close.
 *
 * Every operation goes the same way, for readiness and completion ports
 * alike (hal.h "I/O operations", poller.c "Operations"): k_pollfd_io
 * submits; DONE returns the result; PENDING parks the task on the
 * descriptor's side until the poller reports it (or a deadline or close
 * wakes it with a code); then submits again. Each holds a reference on
 * the descriptor from its lookup to its return (poller.h), so a close
 * meanwhile cannot give the number to another socket before the
 * operation is done with it. weft_wait_fd is an operation too, one that
 * moves no data.
 *
 * Addresses are parsed here, not by the OS (kern is freestanding and has
 * no resolver): IPv4 dotted quads, bracketed IPv6 literals (with "::" and
 * a trailing dotted quad), "localhost" and the empty host. No DNS.
 */
#include "kern/poller.h"
#include "kern/proc.h"

#define LISTEN_BACKLOG 4096

/* ---- addresses ---- */

struct netspec {
    int type;   /* HAL_SOCK_STREAM or HAL_SOCK_DGRAM */
    int family; /* 0 either, HAL_AF_INET, HAL_AF_INET6 */
};

static int parse_network(const char *net, struct netspec *ns)
{
    static const struct {
        const char *name;
        int type, family;
    } nets[] = {
        {"tcp", HAL_SOCK_STREAM, 0},
        {"tcp4", HAL_SOCK_STREAM, HAL_AF_INET},
        {"tcp6", HAL_SOCK_STREAM, HAL_AF_INET6},
        {"udp", HAL_SOCK_DGRAM, 0},
        {"udp4", HAL_SOCK_DGRAM, HAL_AF_INET},
        {"udp6", HAL_SOCK_DGRAM, HAL_AF_INET6},
    };
    if (!net)
        return WEFT_EINVAL;
    for (size_t i = 0; i < K_ARRAY_LEN(nets); i++)
        if (k_strcmp(net, nets[i].name) == 0) {
            ns->type = nets[i].type;
            ns->family = nets[i].family;
            return 0;
        }
    return WEFT_EINVAL;
}

/* Parses a decimal number of 1..maxdigits digits in [s, e) up to max. */
static int parse_dec(const char *s, const char *e, int maxdigits, uint32_t max, uint32_t *out)
{
    if (e <= s || e - s > maxdigits)
        return -1;
    uint32_t v = 0;
    for (; s < e; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (uint32_t)(*s - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_ipv4(const char *s, const char *e, uint8_t out[4])
{
    for (int i = 0; i < 4; i++) {
        const char *d = s;
        while (d < e && *d != '.')
            d++;
        uint32_t v;
        if (parse_dec(s, d, 3, 255, &v) != 0)
            return -1;
        out[i] = (uint8_t)v;
        if (i < 3) {
            if (d >= e)
                return -1;
            s = d + 1;
        } else if (d != e) {
            return -1;
        }
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An IPv6 literal in [s, e): groups, at most one "::", maybe a final
 * dotted quad. */
static int parse_ipv6(const char *s, const char *e, uint8_t out[16])
{
    uint16_t g[8];
    int n = 0, gap = -1;
    if (e - s >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        s += 2;
    } else if (s < e && *s == ':') {
        return -1;
    }
    while (s < e) {
        const char *d = s;
        while (d < e && *d != ':' && *d != '.')
            d++;
        if (d < e && *d == '.') { /* trailing IPv4 */
            uint8_t v4[4];
            if (n > 6 || parse_ipv4(s, e, v4) != 0)
                return -1;
            g[n++] = (uint16_t)(v4[0] << 8 | v4[1]);
            g[n++] = (uint16_t)(v4[2] << 8 | v4[3]);
            s = e;
            break;
        }
        if (d == s || d - s > 4 || n >= 8)
            return -1;
        uint32_t v = 0;
        for (const char *c = s; c < d; c++) {
            int h = hexval(*c);
            if (h < 0)
                return -1;
            v = v << 4 | (uint32_t)h;
        }
        g[n++] = (uint16_t)v;
        s = d;
        if (s < e) { /* at ':' */
            s++;
            if (s < e && *s == ':') {
                if (gap >= 0)
                    return -1;
                gap = n;
                s++;
            } else if (s == e) {
                return -1; /* trailing single ':' */
            }
        }
    }
    if (gap < 0 ? n != 8 : n > 7)
        return -1;
    uint16_t full[8] = {0};
    if (gap < 0) {
        for (int i = 0; i < 8; i++)
            full[i] = g[i];
    } else {
        for (int i = 0; i < gap; i++)
            full[i] = g[i];
        for (int i = gap; i < n; i++)
            full[8 - (n - i)] = g[i];
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(full[i] >> 8);
        out[2 * i + 1] = (uint8_t)full[i];
    }
    return 0;
}

/* Parses "host:port" for network ns. listen: an empty host is every
 * address; for a dial it is the loopback. */
static int parse_address(const char *addr, const struct netspec *ns, bool listen,
                         struct hal_sockaddr *out)
{
    if (!addr)
        return WEFT_EINVAL;
    memset(out, 0, sizeof *out);
    const char *end = addr + k_strlen(addr);
    const char *colon = NULL;
    for (const char *c = addr; c < end; c++)
        if (*c == ':')
            colon = c;
    if (!colon)
        return WEFT_EINVAL;
    uint32_t port;
    if (parse_dec(colon + 1, end, 5, 65535, &port) != 0)
        return WEFT_EINVAL;
    out->port = (uint16_t)port;
    const char *h = addr, *he = colon;
    int fam = ns->family;
    if (h < he && *h == '[') {
        if (he - h < 2 || he[-1] != ']' || fam == HAL_AF_INET)
            return WEFT_EINVAL;
        if (parse_ipv6(h + 1, he - 1, out->addr) != 0)
            return WEFT_EINVAL;
        out->family = HAL_AF_INET6;
        return 0;
    }
    for (const char *c = h; c < he; c++)
        if (*c == ':' || *c == '[' || *c == ']')
            return WEFT_EINVAL; /* an IPv6 literal must be bracketed */
    bool v6 = fam == HAL_AF_INET6;
    out->family = v6 ? HAL_AF_INET6 : HAL_AF_INET;
    if (h == he || (he - h == 9 && memcmp(h, "localhost", 9) == 0)) {
        if (h == he && listen)
            return 0; /* any address: all zero */
        if (v6)
            out->addr[15] = 1;
        else
            out->addr[0] = 127, out->addr[3] = 1;
        return 0;
    }
    if (v6 || parse_ipv4(h, he, out->addr) != 0)
        return WEFT_EINVAL;
    return 0;
}

/* Formats a as "host:port" into buf[n]; 0 or WEFT_EINVAL (too small). */
static int format_address(const struct hal_sockaddr *a, char *buf, size_t n)
{
    char tmp[64];
    int len;
    if (a->family == HAL_AF_INET6) {
        uint16_t g[8];
        for (int i = 0; i < 8; i++)
            g[i] = (uint16_t)(a->addr[2 * i] << 8 | a->addr[2 * i + 1]);
        int best = -1, bestlen = 1;
        for (int i = 0; i < 8;) {
            int j = i;
            while (j < 8 && g[j] == 0)
                j++;
            if (j - i > bestlen)
                best = i, bestlen = j - i;
            i = j > i ? j : i + 1;
        }
        len = 0;
        tmp[len++] = '[';
        for (int i = 0; i < 8; i++) {
            if (i == best) {
                tmp[len++] = ':';
                if (i == 0)
                    tmp[len++] = ':';
                i += bestlen - 1;
                continue;
            }
            len += k_snprint(tmp + len, sizeof tmp - (size_t)len, "%x", g[i]);
            if (i < 7)
                tmp[len++] = ':';
        }
        len += k_snprint(tmp + len, sizeof tmp - (size_t)len, "]:%u", a->port);
    } else {
        len = k_snprint(tmp, sizeof tmp, "%u.%u.%u.%u:%u", a->addr[0], a->addr[1], a->addr[2],
                        a->addr[3], a->port);
    }
    if (!buf || (size_t)len + 1 > n)
        return WEFT_EINVAL;
    memcpy(buf, tmp, (size_t)len + 1);
    return 0;
}

/* ---- operations ---- */

static int os_fail(struct task *self, int hal_rc, int os_errno)
{
    if (self)
        self->os_errno = os_errno;
    return hal_rc == HAL_ENOMEM ? WEFT_ENOMEM : WEFT_EIO;
}

/* The calling task, and fd's descriptor of an allowed kind with a
 * reference (the caller releases it with k_pollfd_release). */
static int lookup(weft_fd fd, unsigned kinds, struct task **self, struct k_pollfd **pd)
{
    *self = k_task_self();
    if (!*self)
        return WEFT_ENOTASK;
    int err = WEFT_EBADF;
    *pd = k_pollfd_acquire(fd, &err);
    if (!*pd)
        return err;
    if (!(kinds & (1u << (*pd)->kind))) {
        k_pollfd_release(*pd);
        return WEFT_EBADF;
    }
    return 0;
}

#define KINDS_DATA ((1u << PD_STREAM) | (1u << PD_DGRAM))
#define KINDS_ALL ((1u << PD_STREAM) | (1u << PD_DGRAM) | (1u << PD_LISTENER))

/* A new socket for ns and a, registered; a negative code on failure. */
static weft_fd open_socket(struct task *self, const struct netspec *ns,
                           const struct hal_sockaddr *a, int kind, struct k_pollfd **pd)
{
    intptr_t h = hal_sock_open(a->family, ns->type);
    if (h < 0)
        return os_fail(self, (int)h, hal_os_error());
    if (ns->type == HAL_SOCK_STREAM && kind == PD_STREAM) {
        hal_sock_setopt(h, HAL_SO_NODELAY, 1);
        hal_sock_setopt(h, HAL_SO_READ_LEFT, 1); /* best effort: see hal.h */
    }
    int err = 0;
    *pd = k_pollfd_open(h, kind, &err);
    if (!*pd) {
        hal_sock_close(h);
        return err;
    }
    return h;
}

weft_fd weft_listen(const char *network, const char *address)
{
    struct netspec ns;
    struct hal_sockaddr a;
    if (parse_network(network, &ns) != 0 || parse_address(address, &ns, true, &a) != 0)
        return WEFT_EINVAL;
    struct task *self = k_task_self();
    if (!self)
        return WEFT_ENOTASK;
    intptr_t h = hal_sock_open(a.family, ns.type);
    if (h < 0)
        return os_fail(self, (int)h, hal_os_error());
    if (ns.type == HAL_SOCK_STREAM)
        hal_sock_setopt(h, HAL_SO_REUSEADDR, 1);
    int r = hal_sock_bind(h, &a);
    if (r == 0 && ns.type == HAL_SOCK_STREAM)
        r = hal_sock_listen(h, LISTEN_BACKLOG);
    if (r != 0) {
        int e = hal_os_error();
        hal_sock_close(h);
        return os_fail(self, r, e);
    }
    int err = 0;
    struct k_pollfd *pd =
        k_pollfd_open(h, ns.type == HAL_SOCK_STREAM ? PD_LISTENER : PD_DGRAM, &err);
    if (!pd) {
        hal_sock_close(h);
        return err;
    }
    k_pollfd_release(pd);
    return h;
}

weft_fd weft_dial(const char *network, const char *address, int64_t timeout_ns)
{
    struct netspec ns;
    struct hal_sockaddr a;
    if (parse_network(network, &ns) != 0 || parse_address(address, &ns, false, &a) != 0 ||
        timeout_ns < 0)
        return WEFT_EINVAL;
    struct task *self = k_task_self();
    if (!self)
        return WEFT_ENOTASK;
    struct k_pollfd *pd;
    weft_fd h = open_socket(self, &ns, &a, ns.type == HAL_SOCK_STREAM ? PD_STREAM : PD_DGRAM, &pd);
    if (h < 0)
        return h;
    if (timeout_ns > 0) {
        /* Past the end of time: no deadline (it could never pass). */
        int64_t d = k_add_sat(hal_now_ns(), timeout_ns);
        k_pollfd_set_deadline(pd, 0, d == INT64_MAX ? 0 : d);
    }
    struct hal_io op;
    memset(&op, 0, sizeof op);
    op.kind = HAL_IO_CONNECT;
    op.h = h;
    op.addr = a;
    int64_t r = k_pollfd_io(pd, K_POLL_W, &op, 0);
    if (r < 0) {
        k_pollfd_close(pd); /* takes our reference */
        return r;
    }
    if (timeout_ns > 0)
        k_pollfd_set_deadline(pd, 0, 0);
    k_pollfd_release(pd);
    return h;
}

weft_fd weft_accept(weft_fd listener)
{
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(listener, 1u << PD_LISTENER, &self, &pd);
    if (rc)
        return rc;
    struct hal_io op;
    memset(&op, 0, sizeof op);
    op.kind = HAL_IO_ACCEPT;
    op.h = listener;
    int64_t r = k_pollfd_io(pd, K_POLL_R, &op, 0);
    k_pollfd_release(pd);
    if (r < 0)
        return r;
    intptr_t h = (intptr_t)r;
    hal_sock_setopt(h, HAL_SO_NODELAY, 1);
    hal_sock_setopt(h, HAL_SO_READ_LEFT, 1); /* best effort: see hal.h */
    int err = 0;
    struct k_pollfd *npd = k_pollfd_open(h, PD_STREAM, &err);
    if (!npd) {
        hal_sock_close(h);
        return err;
    }
    k_pollfd_release(npd);
    return h;
}

int64_t weft_read(weft_fd fd, void *buf, size_t n)
{
    /* n past INT64_MAX: no buffer is that large, and the count could not
     * be returned. */
    if ((!buf && n) || n > (size_t)INT64_MAX)
        return WEFT_EINVAL;
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(fd, KINDS_DATA, &self, &pd);
    if (rc)
        return rc;
    struct hal_io op;
    op.kind = HAL_IO_READ;
    op.h = fd;
    op.buf = buf;
    op.len = n;
    op.started = 0;
    op.stream = pd->kind == PD_STREAM;
    op.drained = 0;
    int64_t r = k_pollfd_io(pd, K_POLL_R, &op, 0);
    k_pollfd_release(pd);
    return r;
}

int64_t weft_write(weft_fd fd, const void *buf, size_t n)
{
    /* n past INT64_MAX: no buffer is that large, and the count could not
     * be returned. */
    if ((!buf && n) || n > (size_t)INT64_MAX)
        return WEFT_EINVAL;
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(fd, KINDS_DATA, &self, &pd);
    if (rc)
        return rc;
    size_t done = 0;
    int64_t r = 0;
    do {
        struct hal_io op;
        op.kind = HAL_IO_WRITE;
        op.h = fd;
        op.buf = (char *)buf + done;
        op.len = n - done;
        op.started = 0;
        r = k_pollfd_io(pd, K_POLL_W, &op, 0);
        if (r < 0)
            break;
        done += (size_t)r;
    } while (pd->kind != PD_DGRAM && done < n);
    k_pollfd_release(pd);
    return r < 0 ? r : (int64_t)done;
}

int weft_set_deadline(weft_fd fd, int64_t read_deadline, int64_t write_deadline)
{
    if (read_deadline < 0 || write_deadline < 0)
        return WEFT_EINVAL;
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(fd, KINDS_ALL, &self, &pd);
    if (rc)
        return rc;
    k_pollfd_set_deadline(pd, read_deadline, write_deadline);
    k_pollfd_release(pd);
    return 0;
}

int weft_close(weft_fd fd)
{
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(fd, KINDS_ALL, &self, &pd);
    if (rc)
        return rc;
    return k_pollfd_close(pd); /* takes our reference */
}

int weft_addr(weft_fd fd, char *buf, size_t n)
{
    if (!buf)
        return WEFT_EINVAL;
    struct task *self;
    struct k_pollfd *pd;
    int rc = lookup(fd, KINDS_ALL, &self, &pd);
    if (rc)
        return rc;
    struct hal_sockaddr a;
    int r = hal_sock_name(fd, &a);
    int e = hal_os_error();
    k_pollfd_release(pd);
    if (r != 0)
        return r == HAL_EINVAL ? WEFT_EBADF : os_fail(self, r, e);
    return format_address(&a, buf, n);
}

int weft_wait_fd(weft_fd fd, int events, int64_t deadline)
{
    if ((events != WEFT_READABLE && events != WEFT_WRITABLE) || deadline < 0)
        return WEFT_EINVAL;
    int mode = events == WEFT_READABLE ? K_POLL_R : K_POLL_W;
    struct task *self = k_task_self();
    if (!self)
        return WEFT_ENOTASK;
    /* A descriptor weft does not own is registered while waits on it
     * last (shared by them). The deadline is this wait's own: a weft
     * socket's deadlines (weft_set_deadline) stay as they are, and the
     * earlier of the two ends the wait. */
    int err = WEFT_EBADF;
    struct k_pollfd *pd = k_pollfd_acquire_any(fd, &err);
    if (!pd)
        return err;
    struct hal_io op;
    memset(&op, 0, sizeof op);
    op.kind = mode == K_POLL_R ? HAL_IO_WAIT_READ : HAL_IO_WAIT_WRITE;
    op.h = fd;
    int64_t r = k_pollfd_io(pd, mode, &op, deadline);
    k_pollfd_release(pd);
    return r < 0 ? (int)r : 0;
}
