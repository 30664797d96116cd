/* SPDX-License-Identifier: MIT */
/*
 * sock.c (win32) — sockets and I/O operations on the completion port
 * (Go: internal/poll/fd_windows.go's execIO, net/fd_windows.go).
 *
 * Every socket is overlapped (WSA_FLAG_OVERLAPPED) and associated with the
 * poller's port when kern registers it (poll_iocp.c). An operation is
 * started with WSARecv, WSASend, AcceptEx, ConnectEx, WSARecvFrom or
 * WSASendTo on the OVERLAPPED kept in the operation's port words (struct
 * win_op, below). From that call until the poller has dequeued its
 * completion the kernel owns the OVERLAPPED and the buffer; win_op's live
 * mark says so, and the poller checks it on every completion it takes (a
 * completion for an operation kern already released would mean it wrote
 * into memory that is now someone else's: the port aborts with a message).
 *
 * The life of one operation, as hal.h asks:
 *   first submit   mark it live, count it owed, then start it. It fails
 *                  at once: unmark, the error. It succeeds at once on a
 *                  socket that skips the packet for that
 *                  (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS): unmark, DONE
 *                  with the result. Otherwise (pending, or a success
 *                  whose packet will still come): PENDING.
 *   poller         dequeues the completion, checks the mark, notes the
 *                  side, sets done (the last store it makes to the
 *                  operation) and reports the side with kern's key.
 *   collect        PENDING until done; then the result, from
 *                  WSAGetOverlappedResult, and the kind's follow-up
 *                  (SO_UPDATE_ACCEPT_CONTEXT and the peer's address for an
 *                  accept, SO_UPDATE_CONNECT_CONTEXT for a connect).
 *   cancel         CancelIoEx on that OVERLAPPED; kern then collects:
 *                  ERROR_OPERATION_ABORTED is HAL_ECANCELED, anything
 *                  that completed first is its result.
 *
 * Skipping the packet of a synchronous completion (Go does the same since
 * 2013): only on TCP sockets, and only when every installed TCP provider
 * has XP1_IFS_HANDLES (a layered provider without it may complete an
 * operation at once and still queue a packet, which would then be
 * dequeued for an operation kern has released). Never on UDP, where a
 * success at once may still queue a packet. Decided once per run at
 * hal_poll_init; WEFT_IOCP_SKIP=0 turns it off (tests).
 */
/* winsock2.h must come before windows.h (which would pull in the old
 * winsock.h), and mswsock.h after both: kept in separate blocks so that
 * formatting does not sort them. */
#include <string.h>

#include <winsock2.h>

#include <ws2tcpip.h>

#include <mswsock.h>
#include <windows.h>

#include "win32.h"

/* The port words of struct hal_io. */
struct win_op {
    OVERLAPPED ov;      /* first: a completion's lpOverlapped points here */
    uint32_t mark;      /* OP_LIVE from the start until the collect */
    volatile LONG done; /* the poller dequeued the completion (see collect) */
    int side;           /* HAL_POLL_READ or HAL_POLL_WRITE: what the poller reports */
    int cancelled;      /* hal_io_cancel was called on it (counts only) */
    DWORD flags;        /* WSARecv's in/out flags */
    WSABUF wb;
    SOCKET accepted; /* AcceptEx's new socket, until the collect hands it over */
    int addrlen;     /* WSARecvFrom's address length */
    struct sockaddr_storage sa;
    /* AcceptEx's local and remote addresses, each its size plus 16. */
    char accept_buf[2 * (sizeof(struct sockaddr_in6) + 16)];
};

_Static_assert(sizeof(struct win_op) <= sizeof(((struct hal_io *)0)->port),
               "HAL_IO_PORT_WORDS (hal_os.h) is too small for struct win_op");
_Static_assert(offsetof(struct win_op, ov) == 0, "the OVERLAPPED must come first");

#define OP_LIVE 0x6c697665u /* "live" */

/* The cookie's bits (hal_poll_register). */
#define CK_SKIP 1u  /* FILE_SKIP_COMPLETION_PORT_ON_SUCCESS is on */
#define CK_DGRAM 2u /* a UDP socket */
#define CK_V6 4u    /* AF_INET6 */

static LPFN_ACCEPTEX accept_ex;
static LPFN_CONNECTEX connect_ex;
static int skip_allowed;   /* per run: hal_win32_sock_init */
static volatile LONG owed; /* started operations whose completion was not dequeued */
static volatile LONG64 counts[HAL_WIN32_SC_N];

static void count(int which)
{
    InterlockedIncrement64(&counts[which]);
}

int64_t hal_win32_sock_counter(int which)
{
    return which >= 0 && which < HAL_WIN32_SC_N ? InterlockedOr64(&counts[which], 0) : -1;
}

static struct win_op *wop(struct hal_io *op)
{
    return (struct win_op *)op->port;
}

int hal_os_error(void)
{
    return WSAGetLastError();
}

/* ---- start-up: Winsock, the extension functions, the skip decision ---- */

/* Whether every provider in p[0..n) hands out IFS handles (the
 * condition for skipping packets). Tests call it with a list of their
 * own (hal_win32_skip_check). */
int hal_win32_skip_check(const void *protocols, int n)
{
    const WSAPROTOCOL_INFOW *p = protocols;
    if (n <= 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (!(p[i].dwServiceFlags1 & XP1_IFS_HANDLES))
            return 0;
    return 1;
}

/* Tests: the next hal_win32_sock_init treats one more TCP provider as
 * installed, one without IFS handles. */
static int inject_non_ifs;
void hal_win32_sock_test_non_ifs(int on)
{
    inject_non_ifs = on;
}

/* The installed TCP providers allow skipping. The list is on the heap: 32
 * entries are 20 KiB, and a frame over 4 KiB would call the probe helper
 * in the program's .text (scripts/check-weft-calls.py). */
static int tcp_providers_allow_skip(void)
{
    int protos[2] = {IPPROTO_TCP, 0};
    DWORD len = 32 * sizeof(WSAPROTOCOL_INFOW);
    WSAPROTOCOL_INFOW *buf = HeapAlloc(GetProcessHeap(), 0, len + sizeof(WSAPROTOCOL_INFOW));
    if (!buf)
        return 0;
    int n = WSAEnumProtocolsW(protos, buf, &len);
    if (n != SOCKET_ERROR && inject_non_ifs) {
        memset(&buf[n], 0, sizeof buf[n]);
        buf[n].iProtocol = IPPROTO_TCP;
        buf[n].dwServiceFlags1 = XP1_GUARANTEED_DELIVERY; /* a layered provider, no IFS */
        n++;
    }
    int ok = n != SOCKET_ERROR && hal_win32_skip_check(buf, n);
    HeapFree(GetProcessHeap(), 0, buf);
    return ok;
}

/* An extension function of Winsock (WSAIoctl on a throwaway socket). */
static void *extension(SOCKET s, GUID id)
{
    void *fn = NULL;
    DWORD got = 0;
    if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof id, &fn, sizeof fn, &got, NULL,
                 NULL) != 0)
        return NULL;
    return fn;
}

int hal_win32_sock_init(void)
{
    WSADATA wd;
    if (WSAStartup(MAKEWORD(2, 2), &wd) != 0)
        return HAL_EFAIL;
    SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s == INVALID_SOCKET) {
        WSACleanup();
        return HAL_EFAIL;
    }
    GUID ga = WSAID_ACCEPTEX, gc = WSAID_CONNECTEX;
    accept_ex = (LPFN_ACCEPTEX)extension(s, ga);
    connect_ex = (LPFN_CONNECTEX)extension(s, gc);
    closesocket(s);
    if (!accept_ex || !connect_ex) {
        hal_write_err("weft: Winsock has no AcceptEx or ConnectEx\n", 43);
        WSACleanup();
        return HAL_EFAIL;
    }
    const char *env = hal_getenv("WEFT_IOCP_SKIP");
    if (env && *env && strcmp(env, "0") != 0 && strcmp(env, "1") != 0) {
        static const char msg[] = "weft: WEFT_IOCP_SKIP: expected 0 or 1\n";
        hal_write_err(msg, sizeof msg - 1);
        WSACleanup();
        return HAL_EINVAL;
    }
    skip_allowed = !(env && env[0] == '0') && tcp_providers_allow_skip();
    owed = 0;
    return 0;
}

void hal_win32_sock_fini(void)
{
    WSACleanup();
}

int hal_win32_sock_skip_allowed(void)
{
    return skip_allowed;
}

long hal_win32_sock_owed(void)
{
    return InterlockedOr(&owed, 0);
}

/* ---- registration (called by poll_iocp.c's hal_poll_register) ---- */

int hal_win32_sock_register(intptr_t h, void *port, void *key, unsigned flags, uintptr_t *cookie)
{
    *cookie = 0;
    if (flags & HAL_REG_FOREIGN)
        return HAL_ENOTSUP; /* the association could never be undone */
    WSAPROTOCOL_INFOW pi;
    int len = sizeof pi;
    if (getsockopt((SOCKET)h, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len) != 0)
        return HAL_EINVAL; /* not a socket */
    if (CreateIoCompletionPort((HANDLE)h, port, (ULONG_PTR)key, 0) == NULL)
        return HAL_EFAIL;
    uintptr_t ck = 0;
    if (pi.iSocketType == SOCK_DGRAM)
        ck |= CK_DGRAM;
    if (pi.iAddressFamily == AF_INET6)
        ck |= CK_V6;
    UCHAR modes = FILE_SKIP_SET_EVENT_ON_HANDLE;
    if (skip_allowed && pi.iSocketType == SOCK_STREAM)
        modes |= FILE_SKIP_COMPLETION_PORT_ON_SUCCESS;
    /* Record the mode only where it was set: a socket that did not take
     * it still queues a packet for every completion. */
    if (SetFileCompletionNotificationModes((HANDLE)h, modes) &&
        (modes & FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)) {
        ck |= CK_SKIP;
        count(HAL_WIN32_SC_SKIP_SOCKETS);
    }
    *cookie = ck;
    return 0;
}

/* ---- completions (called by poll_iocp.c for each one it dequeues) ---- */

uint32_t hal_win32_sock_completed(void *overlapped)
{
    struct win_op *w = overlapped;
    if (w->mark != OP_LIVE) {
        static const char msg[] =
            "weft: fatal: a completion arrived for an I/O operation that was already "
            "released (its memory is no longer the kernel's to write)\n";
        hal_write_err(msg, sizeof msg - 1);
        hal_abort();
    }
    uint32_t events = (uint32_t)w->side;
    count(HAL_WIN32_SC_PACKETS);
    /* Release (a full barrier): the collect that sees done sees the
     * completion's status in the OVERLAPPED. The last access to w. */
    InterlockedExchange(&w->done, 1);
    InterlockedDecrement(&owed);
    return events;
}

/* ---- addresses ---- */

static int to_os(const struct hal_sockaddr *a, struct sockaddr_storage *ss)
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

/* ---- sockets ---- */

static int fail_code(int e)
{
    return e == WSAEMFILE || e == WSAENOBUFS || e == ERROR_NOT_ENOUGH_MEMORY ? HAL_ENOMEM
                                                                             : HAL_EFAIL;
}

static SOCKET new_socket(int af, int type)
{
    return WSASocketW(af, type, type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP, NULL, 0,
                      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
}

intptr_t hal_sock_open(int family, int type)
{
    int af = family == HAL_AF_INET6 ? AF_INET6 : family == HAL_AF_INET ? AF_INET : -1;
    int t = type == HAL_SOCK_STREAM ? SOCK_STREAM : type == HAL_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (af < 0 || t < 0) {
        WSASetLastError(WSAEINVAL);
        return HAL_EINVAL;
    }
    SOCKET s = new_socket(af, t);
    if (s == INVALID_SOCKET)
        return fail_code(WSAGetLastError());
    /* kern's table takes handles as numbers below its limit; a SOCKET is
     * a kernel handle, a small multiple of 4 in practice. */
    return (intptr_t)s;
}

int hal_sock_bind(intptr_t h, const struct hal_sockaddr *a)
{
    struct sockaddr_storage ss;
    int n = to_os(a, &ss);
    return bind((SOCKET)h, (struct sockaddr *)&ss, n) == 0 ? 0 : fail_code(WSAGetLastError());
}

int hal_sock_listen(intptr_t h, int backlog)
{
    return listen((SOCKET)h, backlog) == 0 ? 0 : fail_code(WSAGetLastError());
}

/* Closing cancels the socket's operations in flight; their completions
 * still come, and kern (or hal_poll_fini) collects them. */
int hal_sock_close(intptr_t h)
{
    return closesocket((SOCKET)h) == 0 ? 0 : HAL_EFAIL;
}

int hal_sock_name(intptr_t h, struct hal_sockaddr *a)
{
    struct sockaddr_storage ss;
    int n = sizeof ss;
    if (getsockname((SOCKET)h, (struct sockaddr *)&ss, &n) != 0) {
        int e = WSAGetLastError();
        return e == WSAENOTSOCK ? HAL_EINVAL : HAL_EFAIL;
    }
    from_os(&ss, a);
    return 0;
}

int hal_sock_setopt(intptr_t h, int opt, int value)
{
    int level = SOL_SOCKET, name;
    switch (opt) {
    case HAL_SO_REUSEADDR:
        /* Windows lets a listener bind an address in TIME_WAIT anyway, and
         * its SO_REUSEADDR would let another socket take a port in use. */
        return 0;
    case HAL_SO_NODELAY:
        level = IPPROTO_TCP;
        name = TCP_NODELAY;
        break;
    case HAL_SO_V6ONLY:
        level = IPPROTO_IPV6;
        name = IPV6_V6ONLY;
        break;
    case HAL_SO_RCVBUF:
        name = SO_RCVBUF;
        break;
    case HAL_SO_SNDBUF:
        name = SO_SNDBUF;
        break;
    default: /* HAL_SO_READ_LEFT: a completion port never needs it */
        WSASetLastError(WSAENOPROTOOPT);
        return HAL_EINVAL;
    }
    DWORD v = (DWORD)value;
    return setsockopt((SOCKET)h, level, name, (const char *)&v, sizeof v) == 0 ? 0 : HAL_EFAIL;
}

/* ---- operations ---- */

static int side_of(int kind)
{
    switch (kind) {
    case HAL_IO_READ:
    case HAL_IO_ACCEPT:
    case HAL_IO_RECVFROM:
    case HAL_IO_WAIT_READ:
        return HAL_POLL_READ;
    default:
        return HAL_POLL_WRITE;
    }
}

/* Starts op's call. 0 done at once, or the WSA error (WSA_IO_PENDING:
 * started). */
static int start(struct hal_io *op, struct win_op *w)
{
    SOCKET s = (SOCKET)op->h;
    DWORD n = 0;
    int rc;
    switch (op->kind) {
    case HAL_IO_READ:
    case HAL_IO_WAIT_READ:
    case HAL_IO_RECVFROM:
        w->wb.buf = op->kind == HAL_IO_WAIT_READ ? NULL : op->buf;
        w->wb.len = op->kind == HAL_IO_WAIT_READ ? 0 : (ULONG)op->len;
        /* A zero-byte receive waits for data without taking any; on UDP
         * it would take a datagram, so it only peeks there. */
        w->flags = op->kind == HAL_IO_WAIT_READ && (op->cookie & CK_DGRAM) ? MSG_PEEK : 0;
        if (op->kind == HAL_IO_RECVFROM) {
            w->addrlen = sizeof w->sa;
            rc = WSARecvFrom(s, &w->wb, 1, &n, &w->flags, (struct sockaddr *)&w->sa, &w->addrlen,
                             &w->ov, NULL);
        } else {
            rc = WSARecv(s, &w->wb, 1, &n, &w->flags, &w->ov, NULL);
        }
        break;
    case HAL_IO_WRITE:
    case HAL_IO_WAIT_WRITE:
    case HAL_IO_SENDTO:
        w->wb.buf = op->kind == HAL_IO_WAIT_WRITE ? NULL : op->buf;
        w->wb.len = op->kind == HAL_IO_WAIT_WRITE ? 0 : (ULONG)op->len;
        if (op->kind == HAL_IO_SENDTO) {
            int len = to_os(&op->addr, &w->sa);
            rc = WSASendTo(s, &w->wb, 1, &n, 0, (struct sockaddr *)&w->sa, len, &w->ov, NULL);
        } else {
            rc = WSASend(s, &w->wb, 1, &n, 0, &w->ov, NULL);
        }
        break;
    case HAL_IO_ACCEPT: {
        int af = (op->cookie & CK_V6) ? AF_INET6 : AF_INET;
        w->accepted = new_socket(af, SOCK_STREAM);
        if (w->accepted == INVALID_SOCKET)
            return WSAGetLastError();
        DWORD slot = sizeof(struct sockaddr_in6) + 16;
        rc = accept_ex(s, w->accepted, w->accept_buf, 0, slot, slot, &n, &w->ov) ? 0 : -1;
        break;
    }
    case HAL_IO_CONNECT: {
        /* ConnectEx wants a bound socket. */
        struct hal_sockaddr any;
        memset(&any, 0, sizeof any);
        any.family = op->addr.family;
        struct sockaddr_storage ss;
        int len = to_os(&any, &ss);
        if (bind(s, (struct sockaddr *)&ss, len) != 0 && WSAGetLastError() != WSAEINVAL)
            return WSAGetLastError(); /* WSAEINVAL: bound already */
        len = to_os(&op->addr, &w->sa);
        rc = connect_ex(s, (struct sockaddr *)&w->sa, len, NULL, 0, NULL, &w->ov) ? 0 : -1;
        break;
    }
    default:
        return WSAEINVAL;
    }
    return rc == 0 ? 0 : WSAGetLastError();
}

/* The kind's work after a success; 0 or a WSA error. */
static int follow_up(struct hal_io *op, struct win_op *w, DWORD bytes)
{
    SOCKET s = (SOCKET)op->h;
    switch (op->kind) {
    case HAL_IO_ACCEPT: {
        SOCKET a = w->accepted;
        w->accepted = INVALID_SOCKET;
        struct sockaddr_storage ss;
        int n = sizeof ss;
        if (setsockopt(a, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&s, sizeof s) != 0 ||
            getpeername(a, (struct sockaddr *)&ss, &n) != 0) {
            int e = WSAGetLastError();
            closesocket(a);
            return e;
        }
        from_os(&ss, &op->addr);
        op->result = (int64_t)a;
        return 0;
    }
    case HAL_IO_CONNECT:
        if (setsockopt(s, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
            return WSAGetLastError();
        op->result = 0;
        return 0;
    case HAL_IO_RECVFROM:
        from_os(&w->sa, &op->addr);
        op->result = bytes;
        return 0;
    case HAL_IO_WAIT_READ:
    case HAL_IO_WAIT_WRITE:
        op->result = 0;
        return 0;
    default:
        op->result = bytes;
        return 0;
    }
}

/* A failed operation's last word: HAL_ECANCELED for a cancel, a truncated
 * datagram as the bytes that fit (what Linux's read does), else the
 * error. Gives back an accept's unused socket. */
static int finish_error(struct hal_io *op, struct win_op *w, int e)
{
    if (w->accepted != INVALID_SOCKET) {
        closesocket(w->accepted);
        w->accepted = INVALID_SOCKET;
    }
    if (e == WSAEMSGSIZE && (op->kind == HAL_IO_READ || op->kind == HAL_IO_RECVFROM)) {
        if (op->kind == HAL_IO_RECVFROM)
            from_os(&w->sa, &op->addr);
        op->result = (int64_t)op->len;
        return 0;
    }
    if (e == WSAEMSGSIZE && op->kind == HAL_IO_WAIT_READ) {
        op->result = 0; /* a datagram is there: it is bigger than nothing */
        return 0;
    }
    op->os_error = e;
    if (e == WSA_OPERATION_ABORTED || e == ERROR_OPERATION_ABORTED)
        return HAL_ECANCELED;
    return fail_code(e);
}

/* The peer gave up before AcceptEx completed: take the next one instead,
 * as the POSIX port does with ECONNABORTED. */
static int accept_gone(const struct hal_io *op, int e)
{
    return op->kind == HAL_IO_ACCEPT && (e == WSAECONNRESET || e == ERROR_NETNAME_DELETED);
}

static int submit_first(struct hal_io *op, struct win_op *w)
{
    memset(&w->ov, 0, sizeof w->ov);
    w->accepted = INVALID_SOCKET;
    w->side = side_of(op->kind);
    w->cancelled = 0;
    w->done = 0;
    /* Live and owed before the call: the completion may be dequeued by
     * another thread before the call even returns. */
    w->mark = OP_LIVE;
    InterlockedIncrement(&owed);
    op->started = 1;
    int e = start(op, w);
    if (e == WSA_IO_PENDING || e == ERROR_IO_PENDING) {
        count(HAL_WIN32_SC_PENDING);
        return HAL_EPENDING;
    }
    if (e == 0 && !(op->cookie & CK_SKIP)) {
        /* Done at once, and its packet still comes: wait for it. */
        count(HAL_WIN32_SC_SYNC_PACKET);
        return HAL_EPENDING;
    }
    /* No packet will come: the operation is kern's again. */
    w->mark = 0;
    InterlockedDecrement(&owed);
    op->started = 0;
    if (e != 0)
        return finish_error(op, w, e);
    count(HAL_WIN32_SC_SYNC_SKIPPED);
    DWORD bytes = 0, flags = 0;
    if (!WSAGetOverlappedResult((SOCKET)op->h, &w->ov, &bytes, FALSE, &flags))
        return finish_error(op, w, WSAGetLastError());
    e = follow_up(op, w, bytes);
    return e == 0 ? 0 : finish_error(op, w, e);
}

int hal_io_submit(struct hal_io *op)
{
    struct win_op *w = wop(op);
    if ((op->kind == HAL_IO_READ && op->len == 0) ||
        (op->kind == HAL_IO_WAIT_WRITE && (op->cookie & CK_DGRAM))) {
        /* As read(2): nothing asked, nothing waited for. A UDP socket is
         * always writable (a zero-byte send needs a peer). */
        op->result = 0;
        return 0;
    }
    if (op->kind == HAL_IO_CONNECT && (op->cookie & CK_DGRAM)) {
        /* A datagram socket's connect only sets the peer: no ConnectEx. */
        struct sockaddr_storage ss;
        int len = to_os(&op->addr, &ss);
        if (connect((SOCKET)op->h, (struct sockaddr *)&ss, len) != 0) {
            op->os_error = WSAGetLastError();
            return fail_code(op->os_error);
        }
        op->result = 0;
        return 0;
    }
    if (!op->started)
        return submit_first(op, w);
    /* A collect. Acquire (a full barrier): pairs with the poller's
     * exchange; the OVERLAPPED's status is read after it. */
    if (InterlockedOr(&w->done, 0) == 0)
        return HAL_EPENDING;
    w->mark = 0;
    op->started = 0;
    DWORD bytes = 0, flags = 0;
    if (!WSAGetOverlappedResult((SOCKET)op->h, &w->ov, &bytes, FALSE, &flags)) {
        int e = WSAGetLastError();
        if (accept_gone(op, e)) {
            closesocket(w->accepted);
            w->accepted = INVALID_SOCKET;
            return submit_first(op, w);
        }
        return finish_error(op, w, e);
    }
    int e = follow_up(op, w, bytes);
    if (e == 0 && w->cancelled)
        count(HAL_WIN32_SC_CANCEL_LOST);
    return e == 0 ? 0 : finish_error(op, w, e);
}

int hal_io_cancel(struct hal_io *op)
{
    if (!op->started)
        return 0;
    /* ERROR_NOT_FOUND: it completed already; its completion is still
     * owed to the collect either way. */
    DWORD last = GetLastError();
    CancelIoEx((HANDLE)op->h, &wop(op)->ov);
    SetLastError(last);
    wop(op)->cancelled = 1;
    count(HAL_WIN32_SC_CANCELS);
    return HAL_EPENDING;
}

int hal_io_completion(void)
{
    return 1;
}
