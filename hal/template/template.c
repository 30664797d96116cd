/* SPDX-License-Identifier: MIT */
/*
 * template.c — a port of weft that compiles and does nothing: the porting
 * checklist (like FreeRTOS's portable/template). Every hal_* function of
 * hal/hal.h is here with a stub body that fails or does nothing, and a
 * comment saying what a real port must do. docs/PORTING.md explains the
 * order to bring them up in and the tests that prove each group.
 *
 * A real port splits this by mechanism, one file each (see hal/posix:
 * mem.c thread.c signal.c futex.c time.c env.c) plus the architecture
 * directory (context.c and the switch assembly). It may use the OS's
 * headers and C library freely; only hal_os.h and hal_arch.h are
 * freestanding. Every non-static symbol it defines must be named hal_*.
 *
 * This file is freestanding itself, so it compiles on any target.
 * Besides these functions a port provides memcpy, memmove, memset and
 * memcmp (kern's compiler may emit calls to them). A hosted port gets them
 * from libc. Without one, write them here, and compile that file with
 * -fno-tree-loop-distribute-patterns (GCC) so the compiler does not turn
 * memset's own loop into a call to memset.
 */
#include "hal/hal.h"

/* ---- Memory ---- */

/* Must: return the page size (a power of two >= 4096): the granule of
 * reserve, commit and guard. */
size_t hal_page_size(void)
{
    return 4096;
}

/* Must: reserve size bytes of address space, inaccessible, aligned to
 * align (a power of two; over-reserve and trim if the OS cannot align),
 * costing no memory. NULL when out of address space or mappings. Without
 * an MMU: allocate committed memory from a heap and ignore the rest. */
void *hal_mem_reserve(size_t size, size_t align)
{
    (void)size;
    (void)align;
    return NULL;
}

/* Must: make the range readable and writable (idempotent); lazily
 * backed is fine. 0 or HAL_ENOMEM. */
int hal_mem_commit(void *addr, size_t size)
{
    (void)addr;
    (void)size;
    return HAL_ENOMEM;
}

/* Must: give the physical pages back but keep the range usable (Linux
 * MADV_DONTNEED, Windows MEM_RESET or decommit+commit). Returning 0 and
 * doing nothing is correct, just wasteful. */
int hal_mem_discard(void *addr, size_t size)
{
    (void)addr;
    (void)size;
    return HAL_EFAIL;
}

/* Must: release a whole reservation (same addr and size as reserved). */
void hal_mem_release(void *addr, size_t size)
{
    (void)addr;
    (void)size;
}

/* May: tell the platform's debugging tools (valgrind, a debugger's fiber
 * support) that [lo, hi) is a stack; forget it when its reservation is
 * released. A port without such tools leaves this empty. */
void hal_stack_register(void *lo, void *hi)
{
    (void)lo;
    (void)hi;
}

/* Must: make the range fault on access, choosing the cheapest kind that
 * it has proven works (probe it at first use: a call that succeeds may
 * still enforce nothing, as under emulators), and never spend OS
 * resources the host needs (keep a budget). HAL_GUARD_NONE is always a
 * correct answer: stacks then overflow silently, and weft_stats says so. */
enum hal_guard_kind hal_mem_guard(void *addr, size_t size)
{
    (void)addr;
    (void)size;
    return HAL_GUARD_NONE;
}

/* ---- Threads ---- */

/* Must: start an OS thread running fn(arg), with an alternate stack for
 * the fault handler and the fault handler installed (once per process),
 * and store its handle. 0, HAL_ENOMEM or HAL_EFAIL. Without threads:
 * return HAL_EFAIL and run weft with procs = 1 (kern must cope). */
int hal_thread_start(void (*fn)(void *), void *arg, hal_thread_t *out)
{
    (void)fn;
    (void)arg;
    (void)out;
    return HAL_EFAIL;
}

/* Must: wait for the thread to return and free it. */
void hal_thread_join(hal_thread_t t)
{
    (void)t;
}

/* Must: let the thread's resources go when it returns, without a join. */
void hal_thread_detach(hal_thread_t t)
{
    (void)t;
}

/* Must: give the calling host thread what hal_thread_start gives a new
 * one (altstack, fault handler), nesting; hal_thread_leave restores what
 * the host had. */
void hal_thread_enter(void)
{
}

void hal_thread_leave(void)
{
}

/* Must: a per-thread pointer (TLS in the initial-exec model, a TCB field,
 * a register). Real out-of-line functions, never inlined or treated as
 * pure: a task may resume on another thread. Async-signal-safe. This
 * single global is right only for a single-threaded port. */
static void *the_thread;

__attribute__((noinline)) void *hal_thread_get(void)
{
    return the_thread;
}

__attribute__((noinline)) void hal_thread_set(void *kern_thread)
{
    the_thread = kern_thread;
}

/* Must: the CPUs this process may use (affinity, quota), at least 1. */
int hal_cpu_count(void)
{
    return 1;
}

/* ---- Waiting ---- */

/* Must: sleep while *addr == expect (checked atomically with respect to
 * hal_futex_wake), up to timeout_ns (< 0: forever). 0 or HAL_ETIMEDOUT;
 * spurious 0 is allowed. Linux futex, Windows WaitOnAddress, FreeBSD
 * _umtx_op, macOS __ulock_wait; or a hashed table of mutex+condvar. */
int hal_futex_wait(uint32_t *addr, uint32_t expect, int64_t timeout_ns)
{
    (void)addr;
    (void)expect;
    (void)timeout_ns;
    return 0;
}

/* Must: wake up to n waiters on addr (INT32_MAX: all). Never blocks. */
void hal_futex_wake(uint32_t *addr, int32_t n)
{
    (void)addr;
    (void)n;
}

/* Must: sleep the thread for ns nanoseconds (backoff only). */
void hal_sleep_ns(int64_t ns)
{
    (void)ns;
}

/* ---- Time ---- */

/* Must: a monotonic clock in nanoseconds, the one the futex and poller
 * timeouts are measured on. Async-signal-safe. */
int64_t hal_now_ns(void)
{
    return 0;
}

/* Must: nanoseconds since 1970 UTC. Async-signal-safe. */
int64_t hal_wall_ns(void)
{
    return 0;
}

/* ---- Environment and diagnostics ---- */

/* Must: an environment variable, or NULL (an OS without one: NULL). */
const char *hal_getenv(const char *name)
{
    (void)name;
    return NULL;
}

/* Must: write all n bytes to the error stream (fd 2, a UART, a debug
 * console), retrying short writes. Async-signal-safe, unbuffered. */
void hal_write_err(const char *s, size_t n)
{
    (void)s;
    (void)n;
}

/* Must: end the process abnormally at once, without exit handlers. */
_Noreturn void hal_abort(void)
{
    for (;;) {
    }
}

/* ---- Architecture: contexts (context.c and switch.S in a real port) ---- */

/* Must: lay out an initial frame at the aligned top of the stack so that
 * the first hal_ctx_switch to ctx "returns" into a start stub (assembly)
 * that calls entry(arg) with the ABI's alignment, and traps if it returns. */
void hal_ctx_init(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                  void *arg)
{
    (void)stack_lo;
    (void)size;
    (void)entry;
    (void)arg;
    ctx->sp = NULL;
}

/* Must be assembly: push every callee-saved register and FP control word
 * on the current stack, store sp to from->sp as the very last use of the
 * old stack, load to->sp, pop, return. Prove it with the
 * hal_ctx_regs test (tests/t_hal.c), which loads known values into each
 * of those registers across 100k switches. */
void hal_ctx_switch(struct hal_context *from, struct hal_context *to)
{
    (void)from;
    (void)to;
    hal_abort();
}

/* May: the return addresses of a suspended context, for weft_dump. With a
 * frame-pointer ABI whose records are {caller's frame pointer, return
 * address} (x86_64 System V, aarch64), hal/frame_record.h does it from
 * the switch frame's two slots; otherwise the ABI's unwind tables (as
 * hal/win32/unwind.c). 0: the dump shows no frames. */
int hal_ctx_backtrace(const struct hal_context *ctx, const void *lo, const void *hi, uintptr_t *pcs,
                      int max)
{
    (void)ctx;
    (void)lo;
    (void)hi;
    (void)pcs;
    (void)max;
    return 0;
}

/* ---- Poller and I/O (hal.h "Poller", "Sockets", "I/O operations") ---- */

/* Must: create the process's poller (epoll, kqueue, an IOCP) and the
 * means to wake a blocked waiter. */
int hal_poll_init(void)
{
    return HAL_EFAIL;
}

/* Must (completion ports): wait out every completion still owed before
 * returning: the OVERLAPPEDs the kernel writes live on task stacks. */
void hal_poll_fini(void)
{
}

/* Must: add h with kern's key, both directions, for its whole life;
 * *cookie is copied into every operation on h. HAL_ENOTSUP for
 * HAL_REG_FOREIGN if the registration cannot be undone. */
int hal_poll_register(intptr_t h, void *key, unsigned flags, uintptr_t *cookie)
{
    (void)h;
    (void)key;
    (void)flags;
    *cookie = 0;
    return HAL_EFAIL;
}

int hal_poll_unregister(intptr_t h)
{
    (void)h;
    return HAL_EFAIL;
}

/* Must: wait with a nanosecond timeout not stretched by timer slack. */
int hal_poll_wait(struct hal_poll_event *ev, int max, int64_t timeout_ns)
{
    (void)ev;
    (void)max;
    (void)timeout_ns;
    return 0;
}

void hal_poll_wake(void)
{
}

/* Must: 0 unless a short stream read really proves the socket empty until
 * its next readiness report (hal.h); 0 is always safe. */
int hal_poll_short_read_drains(void)
{
    return 0;
}

int hal_os_error(void)
{
    return 0;
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

/* Must: DONE (0, op->result), HAL_EPENDING or an error (op->os_error);
 * on a completion port a second submit of a started op collects it, and
 * is HAL_EPENDING until hal_poll_wait has dequeued its completion. */
int hal_io_submit(struct hal_io *op)
{
    (void)op;
    return HAL_EFAIL;
}

/* Must: 0 if nothing is owed; HAL_EPENDING if op started and kern must
 * collect it (completion ports; the result that landed first wins). */
int hal_io_cancel(struct hal_io *op)
{
    (void)op;
    return 0;
}

/* Must: 1 for a completion port, 0 for a readiness port. */
int hal_io_completion(void)
{
    return 0;
}

/* ---- Thread identity, errno, preemption ---- */

/* Must: the calling thread's handle, usable with hal_thread_preempt. */
hal_thread_t hal_thread_self(void)
{
    return 0;
}

/* Optional: thread t's CPU time in ns (a per-thread CPU clock), and
 * whether it is blocked in a call now (1), running or runnable (0), or -1
 * if the OS does not say; -1 when the OS cannot tell the CPU time, and
 * the monitor then lends no spare proc for a thread stuck in a call nobody
 * annotated, and interrupts overrunning threads whether or not they are in
 * a system call. */
int hal_thread_cpu(hal_thread_t t, int64_t *run_ns, int *blocked)
{
    (void)t;
    *run_ns = 0;
    *blocked = -1;
    return -1;
}

/* Must: the thread's OS error number (errno / GetLastError) and setting
 * it; out of line, so a switch cannot leave a stale thread-local address.
 * A port with no such number returns 0 and ignores the set. */
int hal_errno_get(void)
{
    return 0;
}

void hal_errno_set(int err)
{
    (void)err;
}

/* Must: the thread's whole error state a task owns (errno, and the OS's
 * own last-error word if it has one, else 0), read before anything can
 * change it; and putting it back. Out of line, as above. */
void hal_oserr_save(struct hal_oserr *e)
{
    e->err = 0;
    e->word = 0;
}

void hal_oserr_restore(const struct hal_oserr *e)
{
    (void)e;
}

/* May: set up interrupting threads (POSIX: the SIGURG handler that calls
 * kern_preempt on the task's stack). HAL_EFAIL means cooperative only. */
int hal_preempt_init(void)
{
    return HAL_EFAIL;
}

/* Must: the task stack one preemption may use below SP (frames, nesting,
 * handler), measured on the machine where it varies; a port that never
 * preempts returns HAL_SIGNAL_HEADROOM (or 0). */
size_t hal_preempt_headroom(void)
{
    return HAL_SIGNAL_HEADROOM;
}

/* Must (if hal_preempt_init can succeed): let the next interrupt in on
 * the calling thread, which kern_preempt is about to switch away from
 * inside the current one. */
void hal_preempt_switching(void)
{
}

/* May: interrupt thread t so that it calls kern_preempt(pc) soon. A port
 * that stops t from the calling thread (a suspension rather than a
 * signal) asks kern_preempt_ok(kern_thread, pc) while t is stopped and
 * redirects t only on yes; a port whose interrupt runs on t ignores
 * kern_thread. */
int hal_thread_preempt(hal_thread_t t, void *kern_thread)
{
    (void)t;
    (void)kern_thread;
    return HAL_EFAIL;
}

/* Must: the executable range of the module holding addr (NULL: the main
 * program). Without modules: the whole image; or HAL_EINVAL. */
int hal_module_text(const void *addr, uintptr_t *lo, uintptr_t *hi)
{
    (void)addr;
    *lo = *hi = 0;
    return HAL_EINVAL;
}

/* Must: vet the environment variables the port reads for its guards
 * (0 when it has none). */
int hal_mem_env_check(void)
{
    return 0;
}

/* May: the file mapped at pc and pc's place in it, for weft_dump's
 * frames (scripts/symbolize). HAL_EINVAL: the dump shows bare addresses. */
int hal_pc_module(uintptr_t pc, char *name, size_t n, uintptr_t *off, uintptr_t *lo, uintptr_t *hi)
{
    (void)pc;
    (void)name;
    (void)n;
    *off = *lo = *hi = 0;
    return HAL_EINVAL;
}

/* Must: the range of weft's own code (kern and the port), never preempted.
 * POSIX gathers it in one section (see the Makefile's weft_text). */
void hal_runtime_text(uintptr_t *lo, uintptr_t *hi)
{
    *lo = *hi = 0;
}
