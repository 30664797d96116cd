/* SPDX-License-Identifier: MIT */
/*
 * error.c — names of the WEFT_E* codes.
 */
#include "kern/kern.h"

const char *weft_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case WEFT_EINVAL:
        return "WEFT_EINVAL: invalid argument";
    case WEFT_ENOMEM:
        return "WEFT_ENOMEM: out of memory";
    case WEFT_EAGAIN:
        return "WEFT_EAGAIN: operation would block";
    case WEFT_ECLOSED:
        return "WEFT_ECLOSED: closed";
    case WEFT_ETIMEDOUT:
        return "WEFT_ETIMEDOUT: deadline passed";
    case WEFT_EDEADLK:
        return "WEFT_EDEADLK: all tasks are asleep (deadlock)";
    case WEFT_ENOTASK:
        return "WEFT_ENOTASK: called outside a task";
    case WEFT_EBADF:
        return "WEFT_EBADF: bad descriptor";
    case WEFT_EIO:
        return "WEFT_EIO: I/O error";
    case WEFT_EBUSY:
        return "WEFT_EBUSY: the runtime is already running";
    case WEFT_ENOTSUP:
        return "WEFT_ENOTSUP: not supported on this platform";
    default:
        return "unknown weft error";
    }
}
