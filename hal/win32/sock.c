/* SPDX-License-Identifier: MIT */
/*
 * sock.c (win32) — sockets and I/O operations: not yet. Winsock on the
 * completion port (AcceptEx, ConnectEx, WSARecv, WSASend with overlapped
 * operations, docs/platforms.md) is the next part of the port. Until then
 * every call fails, so kern's socket API reports an error and the rest of
 * the runtime works.
 */
#include <windows.h>

#include "win32.h"

/* The error number of the last failed call here: always "not supported". */
int hal_os_error(void)
{
    return ERROR_NOT_SUPPORTED;
}

intptr_t hal_sock_open(int family, int type)
{
    (void)family;
    (void)type;
    return HAL_EFAIL;
}

int hal_sock_bind(intptr_t h, const struct hal_sockaddr *a)
{
    (void)h;
    (void)a;
    return HAL_EFAIL;
}

int hal_sock_listen(intptr_t h, int backlog)
{
    (void)h;
    (void)backlog;
    return HAL_EFAIL;
}

int hal_sock_close(intptr_t h)
{
    (void)h;
    return HAL_EFAIL;
}

int hal_sock_name(intptr_t h, struct hal_sockaddr *a)
{
    (void)h;
    (void)a;
    return HAL_EFAIL;
}

int hal_sock_setopt(intptr_t h, int opt, int value)
{
    (void)h;
    (void)opt;
    (void)value;
    return HAL_EFAIL;
}

int hal_io_submit(struct hal_io *op)
{
    op->os_error = ERROR_NOT_SUPPORTED;
    return HAL_EFAIL;
}

int hal_io_cancel(struct hal_io *op)
{
    (void)op;
    return 0;
}

int hal_io_completion(void)
{
    return 1;
}
