/* SPDX-License-Identifier: MIT */
/*
 * hal.h — the whole contract between weft's core (kern/) and a port.
 *
 * kern calls only the hal_* functions declared here (plus memcpy, memmove,
 * memset and memcmp, which the port provides); a port calls back only the
 * kern_* functions declared at the end. Calls go one way: a port never
 * reaches into kern's structures.
 *
 * A port is one OS directory (hal/posix, hal/win32) and one architecture
 * directory (hal/x86_64, hal/aarch64). Each provides a header found on the
 * include path, hal_os.h and hal_arch.h, for the hot calls that are
 * static inline and for the types below. Both headers are compiled into
 * kern, so they must be freestanding too: no OS headers, no libc.
 *
 * Every entry states whether it blocks, whether it is async-signal-safe,
 * its units and its errors. Errors are returned as the negative HAL_E*
 * codes below, never through errno. See docs/PORTING.md for a walk-through
 * and hal/template/ for a port that compiles and does nothing.
 */
#ifndef WEFT_HAL_H
#define WEFT_HAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_arch.h" /* struct hal_context, hal_cpu_relax, hal_ctx_prefetch, HAL_CTX_* */
#include "hal_os.h"   /* hal_thread_t and the OS's inline hot calls */

/* Errors a HAL function may return (negative). */
#define HAL_EFAIL (-1)     /* generic failure */
#define HAL_ENOMEM (-2)    /* no memory, address space or mappings left */
#define HAL_ETIMEDOUT (-3) /* a wait ran out its timeout */
#define HAL_EINVAL (-4)    /* bad argument */
#define HAL_EPENDING (-5)  /* an I/O operation has not finished (see hal_io_submit) */
#define HAL_ECANCELED (-6) /* an operation ended by hal_io_cancel before it finished */
#define HAL_ENOTSUP (-7)   /* the port cannot do this (see each use) */

/* ------------------------------------------------------------------------
 * Memory. Sizes and addresses are multiples of hal_page_size() unless
 * stated. None of these block; none are async-signal-safe.
 * ------------------------------------------------------------------------ */

/* The page size in bytes (a power of two, at least 4096). */
size_t hal_page_size(void);

/* Reserves size bytes of address space, inaccessible and backed by nothing.
 * Returns the base (aligned to align, a power of two >= the page size) or
 * NULL when the address space or mapping count is exhausted. */
void *hal_mem_reserve(size_t size, size_t align);

/* Makes [addr, addr+size) of a reservation readable and writable. Physical
 * memory may be given lazily, on first touch (Linux) or at once (Windows).
 * Committing an already committed range is allowed, but the range must not
 * overlap a guard (a protected-page guard would be lost). 0 or HAL_ENOMEM. */
int hal_mem_commit(void *addr, size_t size);

/* Gives the physical memory behind a committed range back to the OS. The
 * range stays committed and usable; its contents become unspecified (zero
 * on Linux). 0 or HAL_EFAIL. */
int hal_mem_discard(void *addr, size_t size);

/* Releases a whole reservation made by hal_mem_reserve (same addr, size). */
void hal_mem_release(void *addr, size_t size);

/* Guard kinds (weft_stats counts stacks by kind). */
enum hal_guard_kind {
    HAL_GUARD_NONE = 0,    /* no guard could be installed */
    HAL_GUARD_REGION = 1,  /* a guard that costs no extra mapping (Linux
                              MADV_GUARD_INSTALL, when the probe at init
                              proved the kernel enforces it) */
    HAL_GUARD_PROTECT = 2, /* a protected page: one more mapping per guard */
};

/* hal_os.h defines HAL_STACK_GUARD_PAGES, the pages of guard kern leaves
 * below every task stack (>= 1): the range it passes to hal_mem_guard and
 * that kern_fault recognises. A port whose fault handler runs on the
 * faulting stack wants more than one (Windows: a band with room for the
 * exception frame). */

/* Makes [addr, addr+size) of a committed range fault on any access. The
 * port picks the cheapest kind that it has proven works; it returns
 * HAL_GUARD_PROTECT only while the OS has mappings to spare (it keeps a
 * budget) and HAL_GUARD_NONE when it could not guard at all. The guard
 * stays until the reservation is released. */
enum hal_guard_kind hal_mem_guard(void *addr, size_t size);

/* Checks the environment variables through which a user or a test forces
 * the port's choice of guards (POSIX and Windows: WEFT_GUARD,
 * WEFT_GUARD_BUDGET; docs/API.md). 0, or HAL_EINVAL when one has a value
 * the port does not take, after printing a line that names it: weft_run
 * then returns WEFT_EINVAL. Called at the start of every run. */
int hal_mem_env_check(void);

/* Tells debugging tools that [lo, hi) is a task stack, so that switching
 * between stacks is not mistaken for a huge frame (valgrind marks memory
 * between the old and new stack pointer undefined otherwise). A no-op
 * unless such a tool is watching. The registration ends when the
 * reservation holding the stack is released. */
void hal_stack_register(void *lo, void *hi);

/* ------------------------------------------------------------------------
 * Threads.
 * ------------------------------------------------------------------------ */

/* Starts an OS thread running fn(arg) with signals set up for kern (the
 * stack-overflow handler on an alternate stack; SIGSEGV and SIGBUS reach
 * kern_fault).
 * Stores its handle in *out. 0, HAL_ENOMEM or HAL_EFAIL. Blocks briefly. */
int hal_thread_start(void (*fn)(void *), void *arg, hal_thread_t *out);

/* Waits for a thread started by hal_thread_start to return, and frees it.
 * Blocks the calling thread. */
void hal_thread_join(hal_thread_t t);

/* Lets a thread started by hal_thread_start go unjoined: the OS frees it
 * when its function returns (at once if it already has). Each thread is
 * joined or detached exactly once. weft_run detaches a thread that it
 * leaves in a blocking call (kern/runtime.c). */
void hal_thread_detach(hal_thread_t t);

/* Sets up the calling thread (not started by hal_thread_start, e.g. the
 * host's thread that calls weft_run) as hal_thread_start would, and
 * hal_thread_leave undoes it before that thread goes back to the host.
 * Calls nest. */
void hal_thread_enter(void);
void hal_thread_leave(void);

/* The calling thread's one kern pointer (NULL until set). Async-signal-safe.
 * kern must not cache the result across a context switch: a task may come
 * back on another thread. These are real calls, never inlined, so that the
 * compiler cannot reuse a thread pointer read before a switch. */
void *hal_thread_get(void);
void hal_thread_set(void *kern_thread);

/* The calling thread's handle, as hal_thread_preempt wants it (also for
 * threads not started by hal_thread_start, e.g. the host's). Never
 * blocks; async-signal-safe. */
hal_thread_t hal_thread_self(void);

/* The calling thread's OS error number (the C runtime's errno), and
 * setting it. Real calls, never inlined (the compiler must not reuse a
 * thread-local address read before a switch). Never block;
 * async-signal-safe. */
int hal_errno_get(void);
void hal_errno_set(int err);

/* All of the calling thread's error state that a task owns: errno, and a
 * second word where the OS keeps one (Windows: the last-error value of
 * GetLastError; 0 elsewhere). kern saves it when a task switches out and
 * at weft_block_end, and restores it when the task resumes, perhaps on
 * another thread. save reads errno and the second word before it calls
 * anything that could change them. Real calls, as above; never block. */
struct hal_oserr {
    int err;       /* errno */
    uint32_t word; /* the OS's own last-error word, or 0 */
};
void hal_oserr_save(struct hal_oserr *e);
void hal_oserr_restore(const struct hal_oserr *e);

/* CPUs this process may run on (its affinity mask, later its quota), >= 1. */
int hal_cpu_count(void);

/* ------------------------------------------------------------------------
 * Waiting: a futex on a 32-bit word, private to the process.
 * ------------------------------------------------------------------------ */

/* If *addr == expect, sleeps until woken by hal_futex_wake, a timeout of
 * timeout_ns nanoseconds (< 0: none) passes, or spuriously. Returns 0
 * (woken, spurious, or *addr != expect) or HAL_ETIMEDOUT. Blocks the
 * thread. Async-signal-safe. */
int hal_futex_wait(uint32_t *addr, uint32_t expect, int64_t timeout_ns);

/* Wakes up to n threads waiting on addr (n = INT32_MAX: all). Never
 * blocks. Async-signal-safe. */
void hal_futex_wake(uint32_t *addr, int32_t n);

/* Sleeps the thread for ns nanoseconds (used only by backoff paths). */
void hal_sleep_ns(int64_t ns);

/* ------------------------------------------------------------------------
 * Time. Async-signal-safe, never block.
 * ------------------------------------------------------------------------ */

int64_t hal_now_ns(void);  /* monotonic, nanoseconds from an arbitrary origin */
int64_t hal_wall_ns(void); /* wall clock, nanoseconds since 1970 UTC */

/* ------------------------------------------------------------------------
 * Environment and diagnostics.
 * ------------------------------------------------------------------------ */

/* The value of an environment variable, or NULL. Not async-signal-safe.
 * Called only while the runtime starts. */
const char *hal_getenv(const char *name);

/* Writes n bytes to the error stream, all of them, retrying on short writes.
 * Async-signal-safe. */
void hal_write_err(const char *s, size_t n);

/* Ends the process abnormally at once (no atexit handlers).
 * Async-signal-safe. */
_Noreturn void hal_abort(void);

/* ------------------------------------------------------------------------
 * Poller: one per process, created by kern when a run starts (Go: netpoll).
 *
 * kern registers every I/O object (a socket, or on POSIX any pollable
 * descriptor) with a key, its own pointer for that object. hal_poll_wait
 * reports events carrying the key: on a readiness port (epoll) "the object
 * may be readable / writable now" (edge-triggered: reported once per
 * change, kern retries the operation until it would block again); on a
 * completion port (IOCP) "an operation on this side of the object
 * finished". kern treats both alike: it wakes the task waiting on that
 * side, which submits again: a retry (readiness) or a collect (completion,
 * see "I/O operations").
 *
 * Concurrency: any thread may call hal_poll_wait with timeout 0 at any time;
 * kern guarantees that at most one thread at a time waits with a timeout
 * other than 0. hal_poll_wake is called from any thread.
 * ------------------------------------------------------------------------ */

#define HAL_POLL_READ 1u  /* readable, or a read-side operation completed */
#define HAL_POLL_WRITE 2u /* writable, or a write-side operation completed */
#define HAL_POLL_ERR 4u   /* error or hang-up: both sides should retry */
#define HAL_POLL_NODRAIN                                                                           \
    8u /* readiness ports: the object reported more than                                           \
          data (peer hang-up, error, urgent data): see                                             \
          hal_poll_short_read_drains */

struct hal_poll_event {
    void *key;       /* as registered */
    uint32_t events; /* HAL_POLL_* */
};

/* Creates the process's poller. 0, HAL_ENOMEM, HAL_EINVAL (a setting of the
 * port's in the environment, such as WEFT_POLLER_TIMER, has a value it does
 * not know: it has printed which) or HAL_EFAIL. Called once per
 * run before any other hal_poll_* call. Not thread-safe (kern calls it
 * alone). */
int hal_poll_init(void);
/* Undoes hal_poll_init after the run's threads are joined and kern has
 * closed every socket it still had open, and before the tasks' stacks are
 * released: a completion port first waits for the completion of every
 * operation still owed (the closes cancelled them; the kernel writes their
 * OVERLAPPEDs, on those stacks, until then). Not thread-safe. */
void hal_poll_fini(void);

/* kern's flags for hal_poll_register. */
#define HAL_REG_FOREIGN                                                                            \
    1u                    /* h is not weft's: kern only waits on it (weft_wait_fd) and             \
                             unregisters it when the last wait ends */
#define HAL_REG_STREAM 2u /* a connected or listening stream (TCP) socket */
#define HAL_REG_DGRAM 4u  /* a datagram (UDP) socket */

/* Adds I/O object h (hal_sock_open's handle, or a POSIX descriptor) to the
 * poller with kern's key, interested in both directions for its whole
 * life. *cookie gets the port's word for this registration (0 if it keeps
 * none), which kern copies into the cookie field of every operation on h.
 * 0, HAL_EINVAL (not pollable, e.g. a regular file), HAL_ENOTSUP (flags
 * has HAL_REG_FOREIGN and the port cannot take the object back: an
 * association with a completion port is permanent, so Windows refuses
 * every handle weft does not own) or HAL_EFAIL. Never blocks. Closing h
 * with hal_sock_close unregisters it. */
int hal_poll_register(intptr_t h, void *key, unsigned flags, uintptr_t *cookie);
/* Removes h (for descriptors kern did not open and does not close). */
int hal_poll_unregister(intptr_t h);

/* Waits up to timeout_ns nanoseconds (< 0: forever; 0: does not block) for
 * events, storing at most max in ev. Returns the number stored (0 on a
 * timeout, a wake-up or a spurious return) or HAL_EFAIL. The timeout has
 * nanosecond resolution and is not stretched by the OS's timer slack (the
 * port must make sure: a high-resolution timer, not a millisecond
 * timeout). Blocks the thread. */
int hal_poll_wait(struct hal_poll_event *ev, int max, int64_t timeout_ns);

/* 1 if on this port a stream socket's read (HAL_IO_READ) that returns
 * fewer bytes than asked, but more than 0, proves that nothing more was
 * there to read at that moment, so that another read would only say it
 * would block until the poller reports the socket readable again. This
 * holds for TCP on an edge-triggered readiness port, except after the peer
 * hangs up, an error, or urgent data (a read stops at the urgent mark): the
 * port reports those with HAL_POLL_NODRAIN, and kern stops relying on short
 * reads for that object from then on. kern then parks a task before a read
 * that would only fail (Go makes it and gets EAGAIN: one system call per
 * message saved). Completion ports: 0. Any thread, constant for a run. */
int hal_poll_short_read_drains(void);

/* Makes a current or the next blocking hal_poll_wait return soon. Repeated
 * calls before that wait returns may be coalesced into one. Any thread,
 * never blocks. */
void hal_poll_wake(void);

/* ------------------------------------------------------------------------
 * Sockets. Handles are intptr_t (a POSIX descriptor or a Windows SOCKET);
 * every socket is non-blocking. Functions return 0 (or a handle >= 0) or a
 * negative HAL_E*; on failure hal_os_error() gives the OS's error number.
 * None block.
 * ------------------------------------------------------------------------ */

#define HAL_AF_INET 4
#define HAL_AF_INET6 6
#define HAL_SOCK_STREAM 1
#define HAL_SOCK_DGRAM 2

/* A socket address in a portable form (kern parses and prints it). */
struct hal_sockaddr {
    int family;        /* HAL_AF_INET or HAL_AF_INET6 */
    uint16_t port;     /* host byte order */
    uint8_t addr[16];  /* network byte order; 4 bytes used for INET */
    uint32_t scope_id; /* INET6 only */
};

/* The OS's error number of the calling thread's last failed HAL call
 * (errno; WSAGetLastError). Read it before anything else can fail. */
int hal_os_error(void);

/* A new non-blocking, close-on-exec socket. Handle >= 0 or an error. */
intptr_t hal_sock_open(int family, int type);
int hal_sock_bind(intptr_t h, const struct hal_sockaddr *a);
int hal_sock_listen(intptr_t h, int backlog);
/* Closes h (and drops it from the poller). */
int hal_sock_close(intptr_t h);
/* The local address h is bound to. */
int hal_sock_name(intptr_t h, struct hal_sockaddr *a);

#define HAL_SO_REUSEADDR 1 /* value 0/1 */
#define HAL_SO_NODELAY 2   /* TCP_NODELAY, value 0/1 */
#define HAL_SO_V6ONLY 3    /* value 0/1 */
#define HAL_SO_RCVBUF 4    /* bytes */
#define HAL_SO_SNDBUF 5    /* bytes */
#define HAL_SO_READ_LEFT                                                                           \
    6 /* value 0/1: stream reads report op->drained (below);                                       \
         HAL_EINVAL where the port cannot tell */
int hal_sock_setopt(intptr_t h, int opt, int value);

/* ------------------------------------------------------------------------
 * I/O operations, shaped for readiness and completion ports alike.
 *
 * kern fills a struct hal_io (started = 0) and submits it. The result is
 * one of:
 *   0             DONE: op->result holds the bytes moved (0 = end of stream
 *                 for a read) or, for ACCEPT, the new handle (non-blocking,
 *                 close-on-exec, and op->addr its peer).
 *   HAL_EPENDING  readiness ports: not ready; the poller reports the side
 *                 when kern should submit the same op again (a retry).
 *                 Completion ports: started (op->started = 1); the kernel
 *                 owns op and its buffer until the poller has dequeued the
 *                 op's completion, and reports the side then.
 *   < 0           failed; op->os_error holds the OS's error number.
 *
 * Submitting an op again once it has started (op->started = 1) means
 * "collect": HAL_EPENDING while its completion has not been dequeued by
 * hal_poll_wait (also when kern was woken by a stale or an early report),
 * else its result as above. The op and its buffer are kern's again only
 * after a submit returned anything but HAL_EPENDING. kern keeps at most
 * one op in flight per side of an object on a completion port
 * (hal_io_completion), so a report of a side is for that op.
 *
 * CONNECT is submitted again after the poller reports it, until DONE or an
 * error (readiness ports check for completion then). The WAIT kinds move
 * no data: DONE (result 0) when the side is ready, HAL_EPENDING until it
 * may be (readiness ports look first; a completion port starts a zero-byte
 * receive or send). op->port is the port's, HAL_IO_PORT_WORDS words sized
 * by hal_os.h (an OVERLAPPED, its buffers and an address on Windows),
 * untouched by kern. Never blocks.
 * ------------------------------------------------------------------------ */

enum hal_io_kind {
    HAL_IO_READ = 1,  /* read/recv into buf[len] */
    HAL_IO_WRITE,     /* write/send buf[len] (may be partial) */
    HAL_IO_ACCEPT,    /* a connection from the listening h */
    HAL_IO_CONNECT,   /* connect h to addr */
    HAL_IO_RECVFROM,  /* a datagram into buf[len], its sender in addr */
    HAL_IO_SENDTO,    /* a datagram buf[len] to addr */
    HAL_IO_WAIT_READ, /* h readable (weft_wait_fd) */
    HAL_IO_WAIT_WRITE /* h writable */
};

struct hal_io {
    int kind; /* enum hal_io_kind */
    intptr_t h;
    uintptr_t cookie; /* hal_poll_register's word for h */
    void *buf;
    size_t len;
    struct hal_sockaddr addr;
    int64_t result; /* DONE: bytes or the accepted handle */
    int os_error;   /* on failure */
    /* READ of a connected stream socket (kern sets stream = 1): drained = 1
     * when the port knows that nothing was left to read right after this
     * DONE read, 0 when something was or it cannot tell (kern zeroes it).
     * Needs HAL_SO_READ_LEFT on the socket. kern then waits for the
     * poller's next report before reading again (poller.c, "Short reads"). */
    int stream;
    int drained;
    int started;                      /* kern zeroes it before the first submit; the port sets it */
    uint64_t port[HAL_IO_PORT_WORDS]; /* opaque, the port's */
};

int hal_io_submit(struct hal_io *op);

/* kern gave up on an op that is not DONE (a deadline, a close). 0: nothing
 * is owed (readiness ports, or an op that never started). HAL_EPENDING:
 * the op was started, so the kernel still owns it and its buffer; the
 * port has asked the OS to cancel it, and kern collects it as above
 * (submit after each report of its side, until anything but
 * HAL_EPENDING). The collect then gives HAL_ECANCELED, or the result that
 * landed before the cancel took effect, which kern returns (so that no
 * bytes and no accepted connection are lost). Never blocks. */
int hal_io_cancel(struct hal_io *op);

/* 1 if operations complete through the poller (a completion port: the
 * kernel owns a started op until its completion is dequeued), 0 if the
 * poller reports readiness. Any thread, constant for a run. */
int hal_io_completion(void);

/* ------------------------------------------------------------------------
 * Architecture: contexts (hal_arch.h defines struct hal_context).
 * ------------------------------------------------------------------------ */

/* Prepares ctx so that the first hal_ctx_switch to it calls entry(arg) on
 * the stack [stack_lo, stack_lo + size), aligned to HAL_STACK_ALIGN as the
 * ABI wants. It writes the port's initial frame (HAL_FRAME_SIZE bytes) at
 * the top of the stack, which must be committed. entry must never return.
 * Never blocks. hal_arch.h also defines HAL_SIGNAL_HEADROOM, the least
 * stack one signal frame needs below a task's SP on the architecture (the
 * floor of hal_preempt_headroom, which measures the machine). */
void hal_ctx_init(struct hal_context *ctx, void *stack_lo, size_t size, void (*entry)(void *),
                  void *arg);

/* Saves the callee-saved state of the caller (integer and vector registers
 * the ABI says survive a call, the FP control words) in *from and resumes
 * the context in *to. Returns when something switches back to *from. The
 * store to from->sp is the last thing done with the old stack, so once the
 * switch has returned on the new stack, the old context may be resumed
 * by any thread. Defined in assembly. */
void hal_ctx_switch(struct hal_context *from, struct hal_context *to);

/* The return addresses of the suspended context ctx, innermost first, at
 * most max of them; returns how many. pcs[0] is where the context's code
 * called hal_ctx_switch, and each next one is where the function holding
 * the last one was called from, following the ABI's chain of frames (frame
 * records on x86_64 System V and aarch64, which weft's code and its
 * examples are built to keep: -fno-omit-frame-pointer; unwind tables on
 * Windows). The walk ends at the context's first frame (hal_ctx_init's),
 * or at the first frame it cannot follow: code built without frame
 * pointers ends it early, never wrongly, where the chain leaves
 * the stack or stops going up it. [lo, hi) is the stack the context runs
 * on, and every read stays inside it: a context that is resumed while it
 * is walked (weft_dump runs beside the scheduler) gives wrong addresses,
 * never a fault. Any thread; never blocks; async-signal-safe. */
int hal_ctx_backtrace(const struct hal_context *ctx, const void *lo, const void *hi, uintptr_t *pcs,
                      int max);

/* ------------------------------------------------------------------------
 * Preemption (docs/design.md "Preemption in C"). The port interrupts a thread
 * and calls kern_preempt on it; kern decides whether the interrupted point
 * is safe, and may switch the task away from inside the callback. POSIX
 * does this with SIGURG handled on the task's own stack: when kern resumes
 * the task (maybe on another thread) kern_preempt returns, and the signal
 * return restores every register.
 * ------------------------------------------------------------------------ */

/* Prepares asynchronous preemption for the process (once; later calls
 * return the first result). 0 when hal_thread_preempt will work;
 * HAL_EFAIL when it cannot (POSIX: the host handles SIGURG itself or
 * blocks it in the calling thread): the port has printed why, once per
 * process, and kern runs cooperatively. Not async-signal-safe.
 * Whatever process-wide state it installs (POSIX: the SIGURG handler;
 * likewise hal_thread_start's fault handler) the port gives back to the
 * host when weft's code leaves the process, so that a plugin with weft
 * inside can be unloaded (POSIX: a destructor puts the previous
 * disposition back if weft's handler is still the one in place). */
int hal_preempt_init(void);

/* Bytes of a task's stack that one asynchronous preemption may use below
 * the task's SP: the signal frame the OS pushes, a second one (POSIX: one
 * more delivery may nest in the handler once hal_preempt_switching has let
 * it in, and that one cannot nest again), and the handler's own frames.
 * The frame's size depends on the machine, not only the architecture
 * (aarch64: the SVE and SME vector lengths, up to
 * ~9 KiB of registers for SVE at 2048 bits, more with SME's ZA; x86_64:
 * AVX-512, AMX), so the port measures it at run time (Linux: the kernel's
 * AT_MINSIGSTKSZ; an estimate from the vector lengths where that is
 * missing, as under qemu-user), never below HAL_SIGNAL_HEADROOM. kern
 * adds it to every task stack (kern/stack.c), so a task keeps the size
 * it asked for. Constant for the process; may be called before
 * hal_preempt_init. Never blocks. */
size_t hal_preempt_headroom(void);

/* Called by kern_preempt on the interrupted thread, inside the interrupt,
 * right before it switches the task out: the thread will run other code
 * (the scheduler, other tasks) before this interrupt returns, so the port
 * lets the next interrupt in now. POSIX: the kernel blocked SIGURG for the
 * handler; this unblocks it. The port must keep interrupts from nesting
 * anywhere else: every nested delivery leaves one more frame on the task's
 * stack, and the headroom above holds only two. Async-signal-safe. */
void hal_preempt_switching(void);

/* Asks the OS to interrupt thread t (a worker that called hal_preempt_init
 * successfully or was started after it) and run kern_preempt on it soon.
 * kern_thread is t's kern pointer (what t set with hal_thread_set): a port
 * that stops t from the calling thread (Windows: SuspendThread) decides
 * there, with kern_preempt_ok(kern_thread, pc), whether to redirect t at
 * all; a port whose interrupt runs on t itself (POSIX: a signal) ignores
 * it. May wait for t to stop (never for t to reach any point of its own);
 * may be dropped if one is already pending. 0 or HAL_EFAIL. */
int hal_thread_preempt(hal_thread_t t, void *kern_thread);

/* The time thread t (hal_thread_self's handle of a thread inside a run)
 * has spent on a CPU so far, plus, where the OS counts it, the time it
 * waited in a run queue for one, in nanoseconds (*run_ns: the time it was
 * not in the OS), and whether the OS says
 * it is blocked in a call right now (*blocked: 1 blocked, 0 running or
 * waiting for a CPU, -1 the OS does not say). 0, or -1 when the port
 * cannot tell the CPU time. The monitor compares two readings against the
 * time between them: a thread whose task "runs" but that got little CPU
 * meanwhile and is blocked is in the OS (a blocking call nobody
 * annotated). It is not interrupted there, where an interrupt would make a
 * sleep or a poll fail with EINTR, and a spare proc is lent to run its
 * proc's other tasks (kern/monitor.c, "Lending"). Without *blocked, a
 * thread that the OS does not run on a busy machine looks the same as one
 * in a call. The CPU time's resolution must be far below a time slice.
 * Any thread; never blocks. */
int hal_thread_cpu(hal_thread_t t, int64_t *run_ns, int *blocked);

/* The executable range [*lo, *hi) of the loaded module (program or shared
 * object) that contains addr; addr NULL means the main program. 0, or
 * HAL_EINVAL when addr is in no module. Not async-signal-safe. */
int hal_module_text(const void *addr, uintptr_t *lo, uintptr_t *hi);

/* The range [*lo, *hi) that holds all of weft's own code (kern and the
 * port): a task interrupted there is never preempted. Never blocks. */
void hal_runtime_text(uintptr_t *lo, uintptr_t *hi);

/* Where the code at pc comes from, for a reader with the files at hand
 * (weft_dump's frames; scripts/symbolize turns them into functions and
 * lines): the path of the file mapped at pc into name (NUL-terminated,
 * cut to n bytes), and pc's place in it into *off: the file offset for an
 * ELF object, the offset from the image's base (its RVA) for a PE image.
 * [*lo, *hi) is a range around pc over which the same file is mapped in
 * one piece, so that pc' in it is at *off + (pc' - pc): the caller may
 * keep the answer for the whole range. 0, or HAL_EINVAL when no file is
 * mapped at pc (or the port cannot tell). Any thread; never blocks;
 * async-signal-safe (the dump a signal asks for calls it). */
int hal_pc_module(uintptr_t pc, char *name, size_t n, uintptr_t *off, uintptr_t *lo, uintptr_t *hi);

/* ------------------------------------------------------------------------
 * Callbacks: the only kern functions a port may call.
 * ------------------------------------------------------------------------ */

/* A fault at addr (SIGSEGV / access violation) on the calling thread. If addr
 * is in the guard of the current task's stack, kern prints a message naming
 * the task and aborts (never returns). Otherwise it returns and the port
 * hands the fault on to whatever handler the host had. Runs in a signal
 * handler on the alternate stack: async-signal-safe. */
void kern_fault(void *addr);

/* Someone outside the program asked for a dump of every task (POSIX:
 * SIGQUIT; Windows: Ctrl-Break in its console): kern prints the dump of
 * the run in progress, as weft_dump does, headed by what (the signal's or
 * the event's name), or one line saying no run is active. The port then
 * does what would have happened without weft: it calls the host's handler,
 * or takes the default action (which ends the process). Any thread;
 * async-signal-safe. */
void kern_dump_request(const char *what);

/* Whether kern would switch out the task of kern_thread if interrupted at
 * pc now: a preemption was asked for, the task is at a safe point by
 * kern's state (a task running with a proc, no kern lock held, not opted
 * out, not in a blocking call) and pc is in preemptible code (the
 * program's own, not weft's, not a shared library's). Called either on
 * kern_thread itself, inside the interrupt (kern_preempt calls it first),
 * or on another thread while kern_thread is stopped: then the port must
 * have made kern_thread's stores visible to the caller before (Windows:
 * GetThreadContext returns only once the thread is suspended). Reads
 * only; takes no lock and calls nothing that might, so it is safe while
 * the stopped thread holds any lock. Async-signal-safe. */
bool kern_preempt_ok(void *kern_thread, uintptr_t pc);

/* The calling thread was interrupted at pc by hal_thread_preempt. Runs in
 * the signal handler on the interrupted stack (a task's own stack when a
 * task was running), with further interrupts held off. If the point is
 * safe and a preemption was asked for, kern calls hal_preempt_switching,
 * switches the task away and returns only when it resumes, possibly on
 * another thread: the port must then fix up whatever of the signal frame
 * belongs to the thread rather than the task (POSIX: uc_stack and
 * uc_sigmask). Returns true when the task was switched away and resumed. */
bool kern_preempt(uintptr_t pc);

#endif /* WEFT_HAL_H */
