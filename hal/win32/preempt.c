/* SPDX-License-Identifier: MIT */
/*
 * preempt.c (win32) — preemption and the code ranges kern's safe-point
 * rule needs.
 *
 * Asynchronous preemption is not implemented on Windows yet (the design,
 * suspending the thread and redirecting it into a trampoline, is in
 * docs/platforms.md, "Preemption by suspending the thread"), so
 * hal_preempt_init says so once and fails: kern runs cooperatively, and
 * tasks switch at weft calls only.
 *
 * Code ranges come from the PE headers of the module that holds an
 * address: the union of its executable sections.
 */
#include <windows.h>

#include "win32.h"

static volatile LONG said;

int hal_preempt_init(void)
{
    if (InterlockedExchange(&said, 1) == 0) {
        static const char msg[] = "weft: asynchronous preemption is not available on Windows "
                                  "yet; tasks switch only at weft calls (cooperative)\n";
        hal_write_err(msg, sizeof msg - 1);
    }
    return HAL_EFAIL;
}

size_t hal_preempt_headroom(void)
{
    return HAL_SIGNAL_HEADROOM;
}

void hal_preempt_switching(void)
{
}

int hal_thread_preempt(hal_thread_t t, void *kern_thread)
{
    (void)t;
    (void)kern_thread;
    return HAL_EFAIL;
}

int hal_module_text(const void *addr, uintptr_t *lo, uintptr_t *hi)
{
    HMODULE m = NULL;
    DWORD last = GetLastError();
    BOOL ok = addr == NULL ? (m = GetModuleHandleW(NULL)) != NULL
                           : GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                                    GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                                                (LPCWSTR)addr, &m);
    SetLastError(last);
    if (!ok || m == NULL)
        return HAL_EINVAL;
    const char *base = (const char *)m;
    const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)base;
    const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)(base + dos->e_lfanew);
    const IMAGE_SECTION_HEADER *sec = IMAGE_FIRST_SECTION(nt);
    uintptr_t l = UINTPTR_MAX, h = 0;
    for (int i = 0; i < nt->FileHeader.NumberOfSections; i++) {
        if (!(sec[i].Characteristics & IMAGE_SCN_MEM_EXECUTE))
            continue;
        uintptr_t s = (uintptr_t)base + sec[i].VirtualAddress;
        uintptr_t e = s + sec[i].Misc.VirtualSize;
        l = s < l ? s : l;
        h = e > h ? e : h;
    }
    if (h == 0)
        return HAL_EINVAL;
    *lo = l;
    *hi = h;
    return 0;
}

/* weft's code does not have a section of its own on this port yet (the
 * POSIX build gathers it into weft_text): an empty range. Nothing is
 * preempted anyway while preemption is cooperative. */
void hal_runtime_text(uintptr_t *lo, uintptr_t *hi)
{
    *lo = 0;
    *hi = 0;
}
