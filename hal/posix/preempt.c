/* SPDX-License-Identifier: MIT */
/*
 * preempt.c (posix) — asynchronous preemption with SIGURG, the code ranges
 * kern's safe-point check needs, and the thread's errno.
 *
 * The design is docs/design.md's "Preemption in C" (and the prototype in
 * docs/platforms.md, "Preemption inside the signal handler"): the
 * monitor sends SIGURG to one worker (hal_thread_preempt: pthread_kill);
 * the handler runs on whatever stack the thread was on — a task's own
 * stack when a task was running, because SIGURG has no SA_ONSTACK — and
 * calls kern_preempt(pc). If kern finds the point safe it switches the
 * task away right there, with the ordinary context switch, leaving the
 * whole signal frame (every register, flags, vector state) on the task's
 * stack. When the task is resumed, maybe by another thread, kern_preempt
 * returns, this handler returns, and rt_sigreturn restores everything.
 *
 * Why SIGURG: Go uses it for the same job, so hosts and debuggers already
 * expect it; its default action is to be ignored, so a stray one harms
 * nothing. Flags, each one for a reason:
 *   SA_SIGINFO  the ucontext gives the interrupted PC.
 *   SA_RESTART  idle futex waits and host calls do not see EINTR.
 *   no SA_NODEFER  the kernel blocks SIGURG while the handler runs, so no
 *               delivery nests inside it: each nested delivery pushes one
 *               more frame on the task's stack, and with SA_NODEFER a
 *               thread that runs the handler slowly (qemu-user on a
 *               loaded machine) piles frame on frame until the task's
 *               stack overflows (docs/scheduler.md has the story). Only
 *               when kern is about to switch the task away does the
 *               handler unblock SIGURG (hal_preempt_switching): the thread
 *               goes on to run the scheduler and other tasks "inside" this
 *               handler, and they must stay preemptible. From there to the
 *               switch, and in the handler's tail after the task resumes,
 *               one more delivery may land; it finds weft's own code, which
 *               kern never preempts, returns at once, and cannot nest again
 *               (SIGURG is blocked inside it). So a task's stack holds at
 *               most two frames (hal_preempt_headroom).
 *   no SA_ONSTACK  the frame must live on the task's stack and travel with
 *               it, not on the thread's altstack, which the next signal
 *               would reuse.
 * After a task moved to another thread, the frame still holds the old
 * thread's altstack and signal mask, which rt_sigreturn would install on
 * the new thread: the handler rewrites uc_stack and uc_sigmask with the
 * current thread's before returning (its mask, SIGURG unblocked; on the
 * same thread the frame's own mask is right as it is). errno is the
 * interrupted code's: the handler saves it first and puts it back last,
 * through an opaque call
 * (glibc declares __errno_location const, so the compiler may reuse the
 * old thread's address after the switch).
 *
 * Chaining: a SIGURG that hal_thread_preempt did not send (another
 * process, or sockets' out-of-band notification) goes to the disposition
 * the host had before (ignored by default). A host with a SIGURG handler
 * of its own, or that blocks SIGURG, gets a message once and cooperative
 * scheduling: weft does not take the signal from it.
 *
 * Code ranges: a task is preemptible only in the main program's text (or
 * a module registered with weft_preemptible_module) and never in weft's
 * own code. The build renames the text sections of every kern and hal
 * object to weft_text (Makefile: the objcopy step), so the linker gathers
 * weft into one range bounded by __start_weft_text / __stop_weft_text,
 * in the program or in libweft.so alike.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "posix.h"

#if defined(__GNUC__) && !defined(__clang__)
#define OPAQUE __attribute__((noinline, noipa))
#else
#define OPAQUE __attribute__((noinline))
#endif

/* Bounds of weft's own code, made by the linker from the section name. */
extern char __start_weft_text[] __attribute__((visibility("hidden")));
extern char __stop_weft_text[] __attribute__((visibility("hidden")));

static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_result;        /* 0 or HAL_EFAIL; written once */
static struct sigaction prev_urg; /* the host's disposition before ours */
static pid_t self_pid;
static _Atomic int warned_blocked;

static uintptr_t uc_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "preempt.c: the interrupted PC of this architecture"
#endif
}

static void chain(int sig, siginfo_t *info, void *uc)
{
    if (prev_urg.sa_flags & SA_SIGINFO) {
        if (prev_urg.sa_sigaction)
            prev_urg.sa_sigaction(sig, info, uc);
    } else if (prev_urg.sa_handler != SIG_DFL && prev_urg.sa_handler != SIG_IGN) {
        prev_urg.sa_handler(sig);
    }
    /* SIG_DFL and SIG_IGN both mean "ignore" for SIGURG. */
}

/* The frame's per-thread parts, rewritten for the thread we now run on. */
static OPAQUE void fix_frame(ucontext_t *uc)
{
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0) {
        ss.ss_flags &= ~SS_ONSTACK;
        uc->uc_stack = ss;
    }
    /* The kernel's sigset is the first 8 bytes of glibc's 128-byte one;
     * the bytes after it in the frame are not ours to write. */
    sigset_t cur;
    if (pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0)
        memcpy(&uc->uc_sigmask, &cur, 8);
}

static void on_preempt(int sig, siginfo_t *info, void *ucv)
{
    int saved_errno = errno;
    ucontext_t *uc = ucv;
    if (info == NULL || info->si_code != SI_TKILL || info->si_pid != self_pid) {
        chain(sig, info, ucv);
        hal_errno_set(saved_errno);
        return;
    }
    /* A signal handler of the program's own (or code that changed the
     * thread's mask) was interrupted: its PC is the program's, but what it
     * interrupted may be weft's code, and the handler must return on the
     * thread it started on. The request stays pending. */
    if (!hal_posix_mask_is_normal(&uc->uc_sigmask)) {
        hal_errno_set(saved_errno);
        return;
    }
    void *before = hal_thread_get();
    if (kern_preempt(uc_pc(uc)) && hal_thread_get() != before)
        fix_frame(uc);
    hal_errno_set(saved_errno);
}

static void install(void)
{
#ifdef WEFT_SAN_TSAN
    /* ThreadSanitizer runs a handler for an asynchronous signal late: it
     * notes the signal and calls the handler at its next interceptor call
     * (a pthread or libc call, made from weft's own code as often as not),
     * with the frame saved at the signal. The PC in that frame no longer
     * says where the thread is, so the safe-point check would let a task
     * switch out in the middle of weft. A TSan build runs cooperatively. */
    static const char tsan_msg[] = "weft: built with ThreadSanitizer, which delays signal "
                                   "handlers; tasks are preempted only at scheduler calls "
                                   "(cooperative)\n";
    hal_write_err(tsan_msg, sizeof tsan_msg - 1);
    install_result = HAL_EFAIL;
    return;
#endif
    self_pid = getpid();
    sigaction(SIGURG, NULL, &prev_urg);
    bool host_has_one = (prev_urg.sa_flags & SA_SIGINFO)
                            ? prev_urg.sa_sigaction != NULL
                            : (prev_urg.sa_handler != SIG_DFL && prev_urg.sa_handler != SIG_IGN);
    if (host_has_one) {
        static const char msg[] = "weft: the program handles SIGURG itself; weft will not take it: "
                                  "tasks are preempted only at scheduler calls (cooperative)\n";
        hal_write_err(msg, sizeof msg - 1);
        install_result = HAL_EFAIL;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_preempt;
    sa.sa_flags = SA_SIGINFO | SA_RESTART; /* no SA_NODEFER: see the top */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGURG, &sa, NULL) != 0)
        install_result = HAL_EFAIL;
}

/* When this copy of weft leaves the process (a plugin dlclose'd after its
 * runtime was stopped, or the program's exit): the host's SIGURG
 * disposition comes back, unless someone installed another since, so no
 * handler points into unmapped code (hal/posix/signal.c does the same for
 * the fault handler). */
__attribute__((destructor)) static void unload(void)
{
    struct sigaction cur;
    if (sigaction(SIGURG, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_preempt)
        sigaction(SIGURG, &prev_urg, NULL);
}

/* ---- how much stack a preemption takes ----
 *
 * A preemption leaves its signal frame on the task's stack for as long as
 * the task is switched out, so every task stack needs room for it on top
 * of what the task itself uses (kern/stack.c adds hal_preempt_headroom).
 * The frame's size is the machine's, not the architecture's: on arm64 it
 * holds the SVE registers at the thread's vector length (32 Z registers
 * of VL bytes, 17 predicates of VL/8) and SME's ZA (SVL x SVL bytes); at
 * VL 256 (2048-bit SVE, qemu's sve-default-vector-length=256) that no
 * longer fits the frame's 4 KiB record area and goes into an
 * extra_context record after it: 13.6 KiB in all, against ~4.7 KiB
 * without SVE. The kernel publishes the largest frame it can push as
 * AT_MINSIGSTKSZ (arm64 since Linux 4.18, x86_64 since 5.14). qemu-user
 * 7.2 does not, so the vector lengths give an estimate of qemu's layout
 * (linux-user/aarch64/signal.c) with every record counted whole. */

#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif

/* The handler's own frames on the task stack (on_preempt, kern_preempt,
 * the switch, fix_frame's sigset and stack_t; and those of a nested
 * delivery that returns at once), rounded up generously. */
#define HANDLER_BYTES 4096

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

#if defined(__aarch64__)
#ifndef PR_SVE_GET_VL
#define PR_SVE_GET_VL 51
#endif
#ifndef PR_SME_GET_VL
#define PR_SME_GET_VL 64
#endif
#define VL_LEN_MASK 0xffff

/* The vector length in bytes that prctl(op) reports, 0 without the
 * extension. */
static size_t vector_length(int op)
{
    int r = prctl(op, 0, 0, 0, 0);
    return r < 0 ? 0 : (size_t)(r & VL_LEN_MASK);
}

static size_t frame_estimate(void)
{
    size_t sve = vector_length(PR_SVE_GET_VL);
    size_t sme = vector_length(PR_SME_GET_VL);
    size_t frame = HAL_SIGNAL_HEADROOM;
    size_t vl = sve > sme ? sve : sme; /* streaming mode saves Z at the SME length */
    if (vl) {
        /* The SVE record: header, z0-z31, p0-p15 and FFR; then an
         * extra_context record and two end records in case it spills. */
        frame += round16(16 + 32 * vl + 17 * (vl / 8)) + 64;
    }
    if (sme) /* ZA, ZT0 and TPIDR2 records */
        frame += round16(16 + sme * sme) + 16 + 64 + 32;
    return frame;
}
#else
static size_t frame_estimate(void)
{
    return HAL_SIGNAL_HEADROOM;
}
#endif

static _Atomic size_t frame_bytes; /* 0 until first measured */

size_t hal_posix_signal_frame(void)
{
    size_t f = atomic_load_explicit(&frame_bytes, memory_order_relaxed);
    if (f == 0) {
        /* Idempotent: racing first calls store the same value. */
        size_t kernel = (size_t)getauxval(AT_MINSIGSTKSZ);
        f = frame_estimate();
        if (kernel > f)
            f = kernel;
        if (f < HAL_SIGNAL_HEADROOM)
            f = HAL_SIGNAL_HEADROOM;
        f = round16(f);
        atomic_store_explicit(&frame_bytes, f, memory_order_relaxed);
    }
    return f;
}

size_t hal_preempt_headroom(void)
{
    /* Two frames: the handler's, and one more delivery that may land once
     * hal_preempt_switching has unblocked SIGURG (before the switch, or in
     * the tail after the resume). That one finds weft's own code, returns
     * at once, and runs with SIGURG blocked, so nothing nests in it. */
    return 2 * hal_posix_signal_frame() + HANDLER_BYTES;
}

int hal_preempt_init(void)
{
    pthread_once(&install_once, install);
    if (install_result != 0)
        return install_result;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    if (sigismember(&cur, SIGURG) == 1) {
        if (atomic_exchange(&warned_blocked, 1) == 0) {
            static const char msg[] = "weft: SIGURG is blocked in the thread that called weft_run; "
                                      "tasks are preempted only at scheduler calls (cooperative)\n";
            hal_write_err(msg, sizeof msg - 1);
        }
        return HAL_EFAIL;
    }
    return 0;
}

void hal_preempt_switching(void)
{
    /* The kernel blocked SIGURG for this handler; the thread now leaves it
     * to run other code (see the top). pthread_sigmask is
     * async-signal-safe (it is sigprocmask). */
    sigset_t urg;
    sigemptyset(&urg);
    sigaddset(&urg, SIGURG);
    pthread_sigmask(SIG_UNBLOCK, &urg, NULL);
}

/* kern_thread is not needed: the handler decides on the thread itself
 * (kern_preempt asks kern_preempt_ok there). */
int hal_thread_preempt(hal_thread_t t, void *kern_thread)
{
    (void)kern_thread;
    return pthread_kill((pthread_t)t, SIGURG) == 0 ? 0 : HAL_EFAIL;
}

hal_thread_t hal_thread_self(void)
{
    return (hal_thread_t)pthread_self();
}

/*
 * The CPU time: the thread's CPU-time clock (one system call: another
 * thread's clock is not in the vDSO; about 0.3 us, and qemu-user passes it
 * to the host, whose threads are the guest's). Exact to the moment, where
 * /proc's counters of a running thread lag by up to a scheduler tick.
 * Plus the time it waited in a run queue for a CPU (schedstat's second
 * field, updated when the thread gets a CPU): a thread that the machine
 * runs half of the time is not in the OS, and on a loaded machine it must
 * still be preempted, and end a loan (4 busy threads on 2 CPUs kept a
 * spinning task unpreempted for 150 ms, 1 run in 30). Blocked: the state
 * letter of /proc/self/task/TID/stat (S or D: in the kernel, waiting; R:
 * running or runnable). Both read from descriptors the thread keeps open
 * (thread.c, "State files"): two more system calls.
 */
int hal_thread_cpu(hal_thread_t t, int64_t *run_ns, int *blocked)
{
    clockid_t cid;
    struct timespec ts;
    int saved = errno;
    int r = -1;
    *run_ns = 0;
    *blocked = -1;
    if (pthread_getcpuclockid((pthread_t)t, &cid) == 0 && clock_gettime(cid, &ts) == 0) {
        *run_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        r = 0;
        char buf[256];
        long long run, wait;
        if (hal_posix_stat_read((pthread_t)t, true, buf, sizeof buf) > 0 &&
            sscanf(buf, "%lld %lld", &run, &wait) == 2)
            *run_ns += wait;
        if (hal_posix_stat_read((pthread_t)t, false, buf, sizeof buf) > 0) {
            /* "tid (comm) S ...": the comm may hold anything, so the state
             * follows its last parenthesis. */
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2])
                *blocked = (p[2] == 'S' || p[2] == 'D') ? 1 : 0;
        }
    }
    errno = saved;
    return r;
}

OPAQUE int hal_errno_get(void)
{
    return errno;
}

OPAQUE void hal_errno_set(int err)
{
    errno = err;
}

/* POSIX keeps no error word beside errno. */
OPAQUE void hal_oserr_save(struct hal_oserr *e)
{
    e->err = errno;
    e->word = 0;
}

OPAQUE void hal_oserr_restore(const struct hal_oserr *e)
{
    errno = e->err;
}

/* ---- code ranges ----
 *
 * A module's preemptible code is its .text section, not its whole
 * executable segment: that segment also holds the PLT stubs (.plt,
 * .plt.sec, .plt.got) and .init/.fini. weft's own code calls libc through
 * the program's PLT (errno, memcpy, clock_gettime, futex), so a task
 * interrupted in a stub is inside weft, with weft frames below it that
 * hold the thread they started on; preempting it there would resume those
 * frames on another thread. The .text bounds come from the module file's
 * section headers (/proc/self/exe for the program itself). weft's own
 * code is in its own section (weft_text) and so is never in .text. */

struct find {
    uintptr_t addr; /* 0: the main program (the first object listed) */
    uintptr_t bias; /* the module's load address */
    char path[512];
    bool found;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find *f = arg;
    bool exec = false, contains = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        exec = true;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (f->addr >= a && f->addr < a + ph->p_memsz)
            contains = true;
    }
    if (!exec || !(f->addr == 0 || contains))
        return 0;
    const char *name = info->dlpi_name;
    if (f->addr == 0 || name == NULL || name[0] == '\0')
        name = "/proc/self/exe";
    size_t n = strlen(name);
    if (n >= sizeof f->path)
        return 1; /* not found: a path that long is not worth the trouble */
    memcpy(f->path, name, n + 1);
    f->bias = info->dlpi_addr;
    f->found = true;
    return 1; /* stop */
}

/* Reads exactly n bytes at off. */
static bool read_at(int fd, void *buf, size_t n, off_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, off);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return true;
}

/* The bounds of the .text section of the ELF file at path, loaded at bias. */
static bool text_section(const char *path, uintptr_t bias, uintptr_t *lo, uintptr_t *hi)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = false;
    ElfW(Shdr) *sh = NULL;
    char *names = NULL;
    ElfW(Ehdr) eh;
    if (!read_at(fd, &eh, sizeof eh, 0) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
        goto out;
    sh = malloc(sizeof *sh * eh.e_shnum);
    if (!sh || !read_at(fd, sh, sizeof *sh * eh.e_shnum, (off_t)eh.e_shoff))
        goto out;
    const ElfW(Shdr) *strs = &sh[eh.e_shstrndx];
    names = malloc(strs->sh_size + 1);
    if (!names || !read_at(fd, names, strs->sh_size, (off_t)strs->sh_offset))
        goto out;
    names[strs->sh_size] = '\0';
    for (unsigned i = 0; i < eh.e_shnum; i++) {
        if (sh[i].sh_name < strs->sh_size && strcmp(names + sh[i].sh_name, ".text") == 0 &&
            (sh[i].sh_flags & SHF_EXECINSTR)) {
            *lo = bias + sh[i].sh_addr;
            *hi = *lo + sh[i].sh_size;
            ok = true;
            break;
        }
    }
out:
    free(names);
    free(sh);
    close(fd);
    return ok;
}

int hal_module_text(const void *addr, uintptr_t *lo, uintptr_t *hi)
{
    struct find f = {.addr = (uintptr_t)addr};
    dl_iterate_phdr(find_cb, &f);
    if (!f.found || !text_section(f.path, f.bias, lo, hi))
        return HAL_EINVAL;
    return 0;
}

void hal_runtime_text(uintptr_t *lo, uintptr_t *hi)
{
    *lo = (uintptr_t)__start_weft_text;
    *hi = (uintptr_t)__stop_weft_text;
}
