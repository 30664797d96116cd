/* SPDX-License-Identifier: MIT */
/*
 * version.c — weft_version(): the library's own version, from the
 * WEFT_VERSION_* macros it was built with (include/weft.h sets them).
 */
#include "kern/kern.h"

#define STR_(x) #x
#define STR(x) STR_(x)

const char *weft_version(void)
{
    return STR(WEFT_VERSION_MAJOR) "." STR(WEFT_VERSION_MINOR) "." STR(WEFT_VERSION_PATCH);
}
