/* SPDX-License-Identifier: MIT */
/*
 * preempt.c (win32) — asynchronous preemption by suspending the thread,
 * and the code ranges kern's safe-point rule needs.
 *
 * Windows has no signal to interrupt a thread with, so the monitor stops
 * the thread and looks at it (docs/platforms.md, "Preemption by
 * suspending the thread"). hal_thread_preempt, on the monitor's thread:
 *
 *   1. takes the suspension lock (below) without waiting: if exit or an
 *      abort holds it, the request is dropped;
 *   2. SuspendThread, then GetThreadContext, which returns only once the
 *      thread has really stopped (SuspendThread merely asks), with the
 *      thread's stores visible to us;
 *   3. asks kern_preempt_ok(kern_thread, RIP): kern's own rules (a task
 *      running, no kern lock, not opted out, RIP in the program's code and
 *      not weft's) decide on this thread, while the target stands still.
 *      The port adds one rule: RIP is not at an import thunk (a one
 *      instruction `jmp *__imp_f(%rip)` that the linker put in the
 *      program's .text, which weft's own calls may pass through);
 *   4. on yes, pushes RIP on the task's stack and points RIP at
 *      hal_win32_preempt_tramp (hal/x86_64/preempt_win64.S), with
 *      SetThreadContext; the trampoline saves the volatile state and calls
 *      hal_win32_preempted, which keeps GetLastError and errno around
 *      kern_preempt (kern decides again there, the same way);
 *   5. ResumeThread, and lets the lock go.
 * From 2 to 5 the target may hold any lock at all (the heap's, the C
 * runtime's, a kern lock): nothing here takes one or allocates.
 *
 * The suspension lock: SuspendThread is asynchronous, so two threads that
 * suspend each other could both stop for good; only the monitor suspends,
 * and only under this lock, held until the target runs again. Exit (an
 * exit handler, registered with _onexit by hal_preempt_init) and hal_abort
 * take it and never give it back: otherwise ExitProcess could kill the
 * monitor while its target stands suspended, or a suspension request could
 * land on the exiting thread after the monitor died, and the process would
 * hang.
 * A program that calls ExitProcess or TerminateProcess itself skips the
 * exit handler; that race stays open for it (tests/t_win32.c:
 * preempt_exit_storm tests exit()).
 *
 * The exit handler must outlive the module that registered it: msvcrt's
 * table is the process's and has no way to unregister, and weft may live
 * in a DLL that is unloaded long before exit (weft.dll, or a plugin with
 * weft linked in). So what is registered is a stub in a page of its own,
 * outside every module, which jumps to the handler through a slot it
 * keeps, or returns when the slot is empty. Each copy of weft loaded in
 * the process fills the slot when it starts preempting and empties it
 * when it is unloaded (unload, below). The page is a named section
 * ("Local\weft-exit-<pid>"), so that a copy loaded after another finds
 * the stub the first one registered instead of registering another: one
 * page and one handle per process, for the process's life.
 *
 * Rate: the monitor asks at most once per PREEMPT_RESEND_NS per proc; the
 * port adds a floor per thread (MIN_GAP_NS) so that a task caught at an
 * unsafe point runs past it before the next cycle, which costs 0.1-0.7 ms
 * under Wine. Nesting: the trampoline and kern are weft's code, which is
 * never redirected, so a task's stack holds at most one trampoline frame.
 *
 * Code ranges come from the PE headers of the module that holds an
 * address: the union of its executable sections. weft's own code is the
 * .text$weft_m group between the markers of text_bounds.S.
 */
#include <errno.h>
#include <intrin.h>
#include <stdlib.h>
#include <windows.h>

#include "win32.h"

#define MIN_GAP_NS 1000000 /* per thread, between two suspensions */
#define GAP_SLOTS 64       /* threads remembered for MIN_GAP_NS */
#define TRAMP_FRAME 80     /* the trampoline's pushes: RIP, flags, 8 registers */
#define CALL_BYTES 4096    /* hal_win32_preempted, kern_preempt, the switch */

extern char hal_win32_text_lo[], hal_win32_text_hi[]; /* text_bounds.S */
void hal_win32_preempt_tramp(void);                   /* preempt_win64.S */
void hal_win32_preempted(uintptr_t pc, uint64_t *saved);

/* Read by the trampoline; written once, by measure(), before the first
 * redirection (racing first calls write the same values). */
uint64_t hal_win32_xsave_bytes; /* the save area, a multiple of 64 */
int hal_win32_use_xsave;        /* XSAVE (1) or FXSAVE (0) */

static volatile LONG lock_owner; /* thread id holding the suspension lock, 0 free */
static volatile LONG init_done;
static volatile LONG exit_hooked;

/* Written by the monitor only, under the lock: the last suspension of a
 * thread (by id), for MIN_GAP_NS. A collision forgets the older thread. */
static struct {
    DWORD tid;
    int64_t when_ns;
} gaps[GAP_SLOTS];

static volatile LONG64 counts[HAL_WIN32_PC_N]; /* hal_win32_preempt_count */

int64_t hal_win32_preempt_count(int which)
{
    return which >= 0 && which < HAL_WIN32_PC_N ? counts[which] : -1;
}

/* The program's image, for HAL_WIN32_PC_FOREIGN: set by hal_preempt_init
 * from the PE headers, independently of kern's ranges. */
static uintptr_t image_lo, image_hi;

/* The negative control's flip (hal_win32_preempt_test_flip): armed while
 * flip_armed; the first redirection in range takes it. */
static volatile uintptr_t flip_lo, flip_hi;
static volatile LONG flip_armed;
static volatile int flip_which;

void hal_win32_preempt_test_flip(int which, uintptr_t lo, uintptr_t hi)
{
    flip_which = which;
    flip_lo = lo;
    flip_hi = hi;
    InterlockedExchange(&flip_armed, 1);
}

/* The flip itself. saved is the trampoline's rbp: r8 at saved[4]; the
 * save area lies below, where the trampoline put it (hal_win32_xsave_bytes
 * down, 64-aligned), with xmm0-15 at byte 160 in both formats. */
static void flip(uint64_t *saved)
{
    if (flip_which == HAL_WIN32_FLIP_R8) {
        saved[4] ^= 0x100;
    } else {
        uintptr_t area = ((uintptr_t)saved - (uintptr_t)hal_win32_xsave_bytes) & ~(uintptr_t)63;
        ((unsigned char *)area)[160 + 16 * 3] ^= 0x10;
    }
}

static void measure(void)
{
    int r[4];
    __cpuid(r, 1);
    bool osxsave = (r[2] >> 27) & 1;
    uint64_t bytes = 512; /* FXSAVE's area */
    int use = 0;
    if (osxsave) {
        __cpuid(r, 0);
        if (r[0] >= 0xd) {
            __cpuidex(r, 0xd, 0);
            /* EBX: the area XSAVE needs for the features the OS enabled. */
            if ((uint32_t)r[1] >= 576) {
                bytes = (uint32_t)r[1];
                use = 1;
            }
        }
    }
    hal_win32_xsave_bytes = (bytes + 63) & ~(uint64_t)63;
    hal_win32_use_xsave = use;
}

/* Takes the lock for good, for exit and abort: waits out a suspension in
 * progress (one cycle), and returns at once if this thread holds it. */
void hal_win32_preempt_stop(void)
{
    LONG me = (LONG)GetCurrentThreadId();
    for (;;) {
        LONG o = InterlockedCompareExchange(&lock_owner, me, 0);
        if (o == 0 || o == me)
            return;
        Sleep(0);
    }
}

/* Called through the stub that msvcrt's _onexit holds (an import, not
 * mingw's atexit, a wrapper linked into the program's .text:
 * scripts/check-weft-calls.py); exit() runs it before ExitProcess, as it
 * runs atexit handlers. */
static int __cdecl at_exit(void)
{
    hal_win32_preempt_stop();
    return 0;
}

/* The stub's page: code, then the slot it jumps through. */
struct exit_stub {
    unsigned char code[32];
    void *volatile target; /* at_exit of a loaded copy of weft, or NULL */
};

/* mov rax, [rip + 25] (the slot, 32 - 7); test rax, rax; jz +2; jmp rax;
 * xor eax, eax; ret. */
static const unsigned char stub_code[] = {0x48, 0x8b, 0x05, 0x19, 0x00, 0x00, 0x00, 0x48, 0x85,
                                          0xc0, 0x74, 0x02, 0xff, 0xe0, 0x31, 0xc0, 0xc3};

static struct exit_stub *stub_view; /* this copy's view of the page, while loaded */
static int stub_owner;              /* this copy mapped the view _onexit holds */

/* Fills the slot with this copy's at_exit: registers the stub first if
 * no copy of weft in this process has. Best effort, with a message: without
 * it, exit may race with a suspension (the comment at the top). */
static void exit_hook_arm(void)
{
    wchar_t name[40] = L"Local\\weft-exit-";
    DWORD pid = GetCurrentProcessId();
    int n = 16;
    for (int shift = 28; shift >= 0; shift -= 4)
        name[n++] = L"0123456789abcdef"[(pid >> shift) & 15];
    name[n] = 0;
    HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_EXECUTE_READWRITE, 0,
                                  sizeof(struct exit_stub), name);
    int existed = h != NULL && GetLastError() == ERROR_ALREADY_EXISTS;
    struct exit_stub *v =
        h ? MapViewOfFile(h, FILE_MAP_WRITE | FILE_MAP_READ | FILE_MAP_EXECUTE, 0, 0, 0) : NULL;
    if (!v) {
        static const char msg[] = "weft: could not register the exit handler: exit may race "
                                  "with a preemption\n";
        hal_write_err(msg, sizeof msg - 1);
        if (h)
            CloseHandle(h);
        return;
    }
    stub_view = v;
    if (existed) {
        CloseHandle(h); /* the first copy's handle keeps the name */
    } else {
        /* Kept for the process's life, as the handle is (never closed). */
        memcpy(v->code, stub_code, sizeof stub_code);
        FlushInstructionCache(GetCurrentProcess(), v, sizeof *v);
        stub_owner = 1;
    }
    InterlockedExchangePointer((void *volatile *)&v->target, (void *)at_exit);
    if (!existed)
        _onexit((_onexit_t)(void *)v->code);
}

/* This copy of weft is unloaded (a DLL's FreeLibrary) or the process
 * exits: the stub must not jump here any more. A copy that only borrowed
 * a view of the page gives it back. */
__attribute__((destructor)) static void unload(void)
{
    struct exit_stub *v = stub_view;
    if (!v)
        return;
    InterlockedCompareExchangePointer((void *volatile *)&v->target, NULL, (void *)at_exit);
    if (!stub_owner)
        UnmapViewOfFile(v);
    stub_view = NULL;
}

int hal_preempt_init(void)
{
    if (InterlockedExchange(&init_done, 1) == 0) {
        measure();
        uintptr_t lo, hi;
        if (hal_module_text(NULL, &lo, &hi) == 0) {
            image_lo = lo;
            image_hi = hi;
        }
        if (InterlockedExchange(&exit_hooked, 1) == 0)
            exit_hook_arm();
    }
    return 0;
}

size_t hal_preempt_headroom(void)
{
    if (hal_win32_xsave_bytes == 0)
        measure();
    size_t n = TRAMP_FRAME + 64 + (size_t)hal_win32_xsave_bytes + 32 + CALL_BYTES;
    return n > HAL_SIGNAL_HEADROOM ? n : HAL_SIGNAL_HEADROOM;
}

/* Nothing to let in: a redirection never lands in weft's code, so none
 * can nest inside this one. */
void hal_preempt_switching(void)
{
}

/* Called by the trampoline on the task's stack, with the interrupted
 * code's volatile registers saved at `saved` (the trampoline's frame, for
 * the test hook's flip). kern_preempt may return on another thread: the last
 * error and errno are the task's, put back on whichever thread that is. */
void hal_win32_preempted(uintptr_t pc, uint64_t *saved)
{
    if (flip_armed && pc >= flip_lo && pc < flip_hi && InterlockedExchange(&flip_armed, 0))
        flip(saved);
    struct hal_oserr err;
    hal_oserr_save(&err);
    kern_preempt(pc);
    hal_oserr_restore(&err);
}

/* Whether pc is at `jmp *disp32(%rip)`, the body of an import thunk. */
static bool at_import_thunk(uintptr_t pc)
{
    const unsigned char *p = (const unsigned char *)pc;
    return p[0] == 0xff && p[1] == 0x25;
}

static bool too_soon(DWORD tid, int64_t now)
{
    unsigned i = (tid >> 2) % GAP_SLOTS; /* Windows thread ids are multiples of 4 */
    if (gaps[i].tid == tid && now - gaps[i].when_ns < MIN_GAP_NS)
        return true;
    gaps[i].tid = tid;
    gaps[i].when_ns = now;
    return false;
}

/* The context buffer: used by the monitor only, under the lock (1.2 KiB,
 * kept off its stack). CONTEXT must be 16-byte aligned. */
static CONTEXT ctx __attribute__((aligned(16)));

int hal_thread_preempt(hal_thread_t t, void *kern_thread)
{
    DWORD tid = (DWORD)t;
    LONG me = (LONG)GetCurrentThreadId();
    if (tid == 0 || tid == (DWORD)me || init_done == 0)
        return HAL_EFAIL;
    if (InterlockedCompareExchange(&lock_owner, me, 0) != 0)
        return HAL_EFAIL; /* exit or an abort holds it */
    int rc = HAL_EFAIL;
    HANDLE h = NULL;
    if (too_soon(tid, hal_now_ns()))
        goto out;
    h = OpenThread(THREAD_SUSPEND_RESUME | THREAD_GET_CONTEXT | THREAD_SET_CONTEXT, FALSE, tid);
    if (h == NULL)
        goto out;
    if (SuspendThread(h) == (DWORD)-1)
        goto out;
    /* The target is stopped from here to ResumeThread: no lock, no heap. */
    ctx.ContextFlags = CONTEXT_CONTROL;
    if (GetThreadContext(h, &ctx)) {
        rc = 0;
        uintptr_t pc = (uintptr_t)ctx.Rip;
        if (kern_preempt_ok(kern_thread, pc) && !at_import_thunk(pc)) {
            uint64_t sp = ctx.Rsp - 8;
            *(uint64_t *)sp = ctx.Rip;
            ctx.Rsp = sp;
            ctx.Rip = (uintptr_t)hal_win32_preempt_tramp;
            ctx.ContextFlags = CONTEXT_CONTROL;
            if (SetThreadContext(h, &ctx)) {
                InterlockedIncrement64(&counts[HAL_WIN32_PC_REDIRECTED]);
                if (pc < image_lo || pc >= image_hi)
                    InterlockedIncrement64(&counts[HAL_WIN32_PC_FOREIGN]);
            }
        } else {
            InterlockedIncrement64(&counts[HAL_WIN32_PC_DECLINED]);
        }
    }
    ResumeThread(h);
out:
    if (h != NULL)
        CloseHandle(h);
    InterlockedExchange(&lock_owner, 0);
    return rc;
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

/* weft's own code: every kern and hal object's text, gathered between the
 * markers of text_bounds.S (Makefile: weft_text). */
void hal_runtime_text(uintptr_t *lo, uintptr_t *hi)
{
    *lo = (uintptr_t)hal_win32_text_lo;
    *hi = (uintptr_t)hal_win32_text_hi;
}
