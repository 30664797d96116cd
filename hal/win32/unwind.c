/* SPDX-License-Identifier: MIT */
/*
 * unwind.c (win32) — the frames of a suspended task (hal_ctx_backtrace)
 * and the module an address is in (hal_pc_module), for weft_dump.
 *
 * Win64 code keeps no chain of frame records: a frame pointer, where a
 * function has one, may point anywhere in its frame. What describes each
 * frame is the function's unwind data, which every x64 image carries for
 * every function that is not a leaf (.pdata: a RUNTIME_FUNCTION per
 * function, pointing at its UNWIND_INFO in .xdata): the codes that undo
 * its prologue, last operation first. Undoing them from a call site
 * brings rsp to the return address and restores the caller's
 * callee-saved registers; a leaf (no entry) has its return address at
 * rsp. RtlLookupFunctionEntry finds the entry; the codes are undone here
 * rather than by RtlVirtualUnwind, so that every read of the stack can be
 * checked against the task's bounds first: the task may wake and write
 * its stack while the dump reads it (hal.h), and RtlVirtualUnwind would
 * follow whatever it found there. The codes, from the PE/COFF format:
 *
 *   PUSH_NONVOL r        reg r = [rsp]; rsp += 8
 *   ALLOC_LARGE 0 / 1    rsp += next slot * 8 / the next two slots
 *   ALLOC_SMALL n        rsp += n * 8 + 8
 *   SET_FPREG            rsp = the frame register - 16 * its offset
 *   SAVE_NONVOL r        reg r = [frame + next slot * 8]
 *   SAVE_NONVOL_FAR r    reg r = [frame + the next two slots]
 *   SAVE_XMM128(_FAR)    (an xmm register: nothing for integer state)
 *   EPILOG               (version 2 epilogue marks: nothing)
 *   PUSH_MACHFRAME       an interrupt's frame: the walk ends there
 *
 * where frame is rsp after the whole prologue, or, when the function sets
 * a frame register, that register less 16 times its offset. An
 * UNWIND_INFO flagged CHAININFO continues with a parent function's,
 * whose codes are undone next.
 */
#include <stdint.h>
#include <windows.h>

#include "win32.h"

enum {
    OP_PUSH_NONVOL = 0,
    OP_ALLOC_LARGE = 1,
    OP_ALLOC_SMALL = 2,
    OP_SET_FPREG = 3,
    OP_SAVE_NONVOL = 4,
    OP_SAVE_NONVOL_FAR = 5,
    OP_EPILOG = 6,
    OP_SAVE_XMM128 = 8,
    OP_SAVE_XMM128_FAR = 9,
};
#define FLAG_CHAININFO 0x4
#define REG_RSP 4

/* A walk's state: the integer registers in the unwind codes' numbering
 * (rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8-r15) and the stack's bounds. */
struct walk {
    uint64_t reg[16];
    uintptr_t lo, hi;
};

/* Reads the stack word at addr into *v if it lies in the stack. */
__attribute__((no_sanitize("address", "thread"))) static bool load(const struct walk *w,
                                                                   uint64_t addr, uint64_t *v)
{
    if (addr < w->lo || addr % 8 != 0 || w->hi < 8 || addr > w->hi - 8)
        return false;
    *v = *(const volatile uint64_t *)(uintptr_t)addr;
    return true;
}

/* Undoes the prologue described by the UNWIND_INFO at image + rva (and
 * the ones it chains to, depth at most 8). false when it cannot. The
 * image's own data is read without checks: it is mapped while the code is. */
static bool undo_prologue(struct walk *w, uintptr_t image, DWORD rva, int depth)
{
    const uint8_t *info = (const uint8_t *)(image + rva);
    unsigned flags = info[0] >> 3, ncodes = info[2];
    unsigned freg = info[3] & 15, foff = info[3] >> 4;
    const uint16_t *code = (const uint16_t *)(info + 4);
    uint64_t frame = freg ? w->reg[freg] - 16 * (uint64_t)foff : w->reg[REG_RSP];
    for (unsigned i = 0; i < ncodes;) {
        unsigned op = (code[i] >> 8) & 15, arg = code[i] >> 12;
        switch (op) {
        case OP_PUSH_NONVOL:
            if (!load(w, w->reg[REG_RSP], &w->reg[arg]))
                return false;
            w->reg[REG_RSP] += 8;
            i += 1;
            break;
        case OP_ALLOC_LARGE:
            if (i + 1 >= ncodes || (arg != 0 && i + 2 >= ncodes))
                return false;
            w->reg[REG_RSP] += arg == 0 ? (uint64_t)code[i + 1] * 8
                                        : (uint64_t)code[i + 1] | (uint64_t)code[i + 2] << 16;
            i += arg == 0 ? 2 : 3;
            break;
        case OP_ALLOC_SMALL:
            w->reg[REG_RSP] += (uint64_t)arg * 8 + 8;
            i += 1;
            break;
        case OP_SET_FPREG:
            w->reg[REG_RSP] = frame;
            i += 1;
            break;
        case OP_SAVE_NONVOL:
            if (i + 1 >= ncodes || !load(w, frame + (uint64_t)code[i + 1] * 8, &w->reg[arg]))
                return false;
            i += 2;
            break;
        case OP_SAVE_NONVOL_FAR:
            if (i + 2 >= ncodes ||
                !load(w, frame + ((uint64_t)code[i + 1] | (uint64_t)code[i + 2] << 16),
                      &w->reg[arg]))
                return false;
            i += 3;
            break;
        case OP_EPILOG:
        case OP_SAVE_XMM128:
            i += 2;
            break;
        case OP_SAVE_XMM128_FAR:
            i += 3;
            break;
        default: /* PUSH_MACHFRAME, or a code this walk does not know */
            return false;
        }
    }
    if (flags & FLAG_CHAININFO) {
        if (depth >= 8)
            return false;
        const RUNTIME_FUNCTION *parent = (const RUNTIME_FUNCTION *)(code + ((ncodes + 1) & ~1u));
        return undo_prologue(w, image, parent->UnwindData, depth + 1);
    }
    return true;
}

int hal_ctx_backtrace(const struct hal_context *ctx, const void *lo, const void *hi, uintptr_t *pcs,
                      int max)
{
    struct walk w = {.lo = (uintptr_t)lo, .hi = (uintptr_t)hi};
    uint64_t sp = (uint64_t)(uintptr_t)__atomic_load_n(&ctx->sp, __ATOMIC_RELAXED);
    static const struct {
        int reg, off;
    } saved[] = {{3, HAL_FRAME_RBX},  {5, HAL_FRAME_RBP},  {6, HAL_FRAME_RSI},
                 {7, HAL_FRAME_RDI},  {12, HAL_FRAME_R12}, {13, HAL_FRAME_R13},
                 {14, HAL_FRAME_R14}, {15, HAL_FRAME_R15}};
    uint64_t pc;
    if (max <= 0 || !load(&w, sp + HAL_FRAME_RET, &pc))
        return 0;
    for (size_t i = 0; i < sizeof saved / sizeof saved[0]; i++)
        if (!load(&w, sp + (uint64_t)saved[i].off, &w.reg[saved[i].reg]))
            return 0;
    w.reg[REG_RSP] = sp + HAL_FRAME_SIZE; /* as hal_ctx_switch returns */
    int n = 0;
    while (n < max && pc != 0) {
        pcs[n++] = (uintptr_t)pc;
        uint64_t below = w.reg[REG_RSP];
        DWORD64 image;
        /* pc - 1: a return address after a call that ends its function
         * belongs to the next one. */
        PRUNTIME_FUNCTION fn = RtlLookupFunctionEntry(pc - 1, &image, NULL);
        if (fn != NULL) {
            DWORD rva = fn->UnwindData;
            if (rva & 1) /* an entry that points at another entry */
                rva = ((const RUNTIME_FUNCTION *)(uintptr_t)(image + (rva & ~1u)))->UnwindData;
            if (!undo_prologue(&w, (uintptr_t)image, rva, 0))
                break;
        }
        if (!load(&w, w.reg[REG_RSP], &pc))
            break;
        w.reg[REG_RSP] += 8;
        if (w.reg[REG_RSP] <= below) /* each frame is above the last */
            break;
    }
    return n;
}

/* The module holding pc is an image mapped in one piece from its base
 * (the HMODULE) for SizeOfImage bytes; pc's place in it is its RVA, which
 * mingw's addr2line reads once the image's preferred base is added
 * (scripts/symbolize). */
int hal_pc_module(uintptr_t pc, char *name, size_t n, uintptr_t *off, uintptr_t *lo, uintptr_t *hi)
{
    HMODULE m;
    if (n == 0 || !GetModuleHandleExA(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS |
                                          GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                                      (LPCSTR)pc, &m))
        return HAL_EINVAL;
    DWORD len = GetModuleFileNameA(m, name, n > MAXDWORD ? MAXDWORD : (DWORD)n);
    if (len == 0)
        return HAL_EINVAL;
    name[len < n ? len : n - 1] = '\0';
    const IMAGE_DOS_HEADER *dos = (const IMAGE_DOS_HEADER *)m;
    const IMAGE_NT_HEADERS *nt = (const IMAGE_NT_HEADERS *)((const char *)m + dos->e_lfanew);
    *lo = (uintptr_t)m;
    *hi = *lo + nt->OptionalHeader.SizeOfImage;
    *off = pc - *lo;
    return 0;
}
