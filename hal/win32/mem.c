/* SPDX-License-Identifier: MIT */
/*
 * mem.c (win32) — address space for kern: VirtualAlloc reservations,
 * commit, discard, release, and the guard band below task stacks.
 *
 * A reservation is MEM_RESERVE address space (64 KiB granularity), costing
 * no memory and no commit charge. Committing charges the commit limit at
 * once (hal.h allows it) and gives zeroed pages on first touch. Windows
 * cannot free part of a reservation, so an aligned reservation is made by
 * reserving more, releasing it, and reserving again at the aligned address
 * inside, retrying if another thread took the address in between.
 *
 * Guards (hal_os.h: HAL_STACK_GUARD_PAGES): the lowest page NOACCESS, the
 * pages above it READWRITE|PAGE_GUARD. The first touch of a PAGE_GUARD
 * page raises STATUS_GUARD_PAGE_VIOLATION and clears that page's guard,
 * with the pages below still there for the exception frame; fault.c takes
 * it from there. Windows has no small mapping table like Linux's
 * max_map_count, so there is no budget: every guard is HAL_GUARD_PROTECT.
 * WEFT_GUARD=none forces unguarded stacks, as on Linux.
 */
#include <stdlib.h>
#include <string.h>
#include <windows.h>

#include "win32.h"

#define PAGE 4096u

/* -1 unknown, 0 guards on, 1 WEFT_GUARD=none. Set once; racing first
 * calls compute the same value. */
static volatile LONG guard_none = -1;

/* 4096 on every Windows on x86_64. */
size_t hal_page_size(void)
{
    return PAGE;
}

void *hal_mem_reserve(size_t size, size_t align)
{
    if (size == 0 || (size & (PAGE - 1)) != 0 || (align & (align - 1)) != 0)
        return NULL;
    if (align <= 65536) /* VirtualAlloc's granularity already */
        return VirtualAlloc(NULL, size, MEM_RESERVE, PAGE_NOACCESS);
    size_t span = size + align;
    if (span < size)
        return NULL;
    for (int tries = 0; tries < 16; tries++) {
        char *p = VirtualAlloc(NULL, span, MEM_RESERVE, PAGE_NOACCESS);
        if (p == NULL)
            return NULL;
        uintptr_t base = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
        VirtualFree(p, 0, MEM_RELEASE);
        void *q = VirtualAlloc((void *)base, size, MEM_RESERVE, PAGE_NOACCESS);
        if (q != NULL)
            return q;
    }
    return NULL;
}

int hal_mem_commit(void *addr, size_t size)
{
    return VirtualAlloc(addr, size, MEM_COMMIT, PAGE_READWRITE) != NULL ? 0 : HAL_ENOMEM;
}

/* MEM_RESET: the pages may be dropped instead of written to the page file;
 * the range stays committed and its contents are unspecified (hal.h). */
int hal_mem_discard(void *addr, size_t size)
{
    return VirtualAlloc(addr, size, MEM_RESET, PAGE_READWRITE) != NULL ? 0 : HAL_EFAIL;
}

void hal_mem_release(void *addr, size_t size)
{
    (void)size;
    VirtualFree(addr, 0, MEM_RELEASE);
}

/* WEFT_GUARD: unset, empty or protect (the port's one kind), or none.
 * WEFT_GUARD_BUDGET has no use here (no budget: see the top) but is
 * checked as on POSIX, so that a setting shared between ports is vetted
 * alike. */
int hal_mem_env_check(void)
{
    const char *g = getenv("WEFT_GUARD");
    if (g != NULL && *g != '\0' && strcmp(g, "protect") != 0 && strcmp(g, "none") != 0) {
        static const char msg[] = "weft: WEFT_GUARD: expected protect or none on Windows\n";
        hal_write_err(msg, sizeof msg - 1);
        return HAL_EINVAL;
    }
    const char *b = getenv("WEFT_GUARD_BUDGET");
    if (b != NULL && *b != '\0') {
        const char *c = b;
        while (*c >= '0' && *c <= '9' && c - b < 18) /* 18 digits fit a long long */
            c++;
        if (*c != '\0') {
            static const char msg[] =
                "weft: WEFT_GUARD_BUDGET: expected a count of protected guards, 0 or more\n";
            hal_write_err(msg, sizeof msg - 1);
            return HAL_EINVAL;
        }
    }
    return 0;
}

/* [NOACCESS][PAGE_GUARD ...] over the range, which kern sizes to
 * HAL_STACK_GUARD_PAGES pages. */
enum hal_guard_kind hal_mem_guard(void *addr, size_t size)
{
    if (guard_none < 0) {
        const char *g = getenv("WEFT_GUARD");
        guard_none = g != NULL && strcmp(g, "none") == 0;
    }
    if (guard_none || size < PAGE)
        return HAL_GUARD_NONE;
    DWORD old;
    if (!VirtualProtect(addr, PAGE, PAGE_NOACCESS, &old))
        return HAL_GUARD_NONE;
    if (size > PAGE &&
        !VirtualProtect((char *)addr + PAGE, size - PAGE, PAGE_READWRITE | PAGE_GUARD, &old))
        return HAL_GUARD_NONE; /* the NOACCESS page still catches the overflow, silently */
    return HAL_GUARD_PROTECT;
}

/* No debugging tool here needs to be told about stacks. */
void hal_stack_register(void *lo, void *hi)
{
    (void)lo;
    (void)hi;
}
