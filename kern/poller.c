/*
 * poller.c — poll descriptors, waiting for I/O, deadlines, and turning the
 * port's events into runnable tasks (Go: netpoll.go; the port's half is
 * hal/posix/poll_epoll.c, later hal/win32/poll_iocp.c).
 *
 * A task that would block on an I/O object parks on its descriptor's read
 * or write side (one waiter per side, as in Go: two readers of one socket
 * are a program error, and the second gets WEFT_EINVAL). It is woken with a
 * code: 0 "the port reported this side, submit again", WEFT_ECLOSED or
 * WEFT_ETIMEDOUT. An event that finds no waiter sets the side's ready
 * flag, which the next wait consumes instead of parking, so an event
 * between a failed submit and the park is never lost. Go does the same
 * with an atomic state per side (pdReady / pdWait / a g); weft uses the
 * descriptor's lock, which is simpler to prove and cheap next to a system
 * call.
 *
 * Descriptors are found from the OS handle through a two-level table
 * (1024 chunks of 1024 slots, read without a lock). A closed descriptor's
 * slot is emptied: the OS may hand its number to anything next, so a later
 * call with it gets WEFT_EBADF, not a guess.
 *
 * Who polls, and when, is sched.c's business (find_runnable): a
 * non-blocking poll when tasks wait on I/O, and one thread at a time
 * blocking in the port until the earliest timer when nothing else is left.
 */
#include "kern/poller.h"

#include "kern/proc.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define NCHUNKS 1024
#define MAX_FD ((intptr_t)CHUNK * NCHUNKS)
#define MAX_EVENTS 128

typedef struct k_pollfd *_Atomic pd_slot;

static struct {
    struct k_lock lock;          /* the free list and chunk allocation */
    struct k_pollfd *free;
    pd_slot *_Atomic chunks[NCHUNKS];
    _Atomic int32_t nwaiters;
    _Atomic uint64_t wakeups;
    _Atomic uint64_t readied;    /* k_poll_readied (tests); relaxed: a count */
    bool inited;
    bool short_read_drains;      /* hal_poll_short_read_drains(), per run */
} poller;

int k_poller_init(void)
{
    memset(&poller, 0, sizeof poller);
    if (hal_poll_init() != 0)
        return WEFT_EIO;
    poller.inited = true;
    poller.short_read_drains = hal_poll_short_read_drains() != 0;
    return 0;
}

void k_poller_fini(void)
{
    if (!poller.inited)
        return;
    /* Sockets the program left open belong to this run: close them, since
     * the descriptors' memory goes away with the run. */
    for (int c = 0; c < NCHUNKS; c++) {
        pd_slot *chunk = atomic_load(&poller.chunks[c]);
        if (!chunk)
            continue;
        for (unsigned i = 0; i < CHUNK; i++) {
            struct k_pollfd *pd = atomic_load(&chunk[i]);
            if (pd) {
                if (pd->owned)
                    hal_sock_close(pd->fd);
                else
                    hal_poll_unregister(pd->fd);
            }
        }
    }
    hal_poll_fini();
    poller.inited = false;
}

static pd_slot *slot_of(intptr_t fd, bool create)
{
    if (fd < 0 || fd >= MAX_FD)
        return NULL;
    unsigned c = (unsigned)(fd >> CHUNK_BITS);
    pd_slot *chunk = atomic_load_explicit(&poller.chunks[c], memory_order_acquire);
    if (!chunk && create) {
        k_lock(&poller.lock);
        chunk = atomic_load_explicit(&poller.chunks[c], memory_order_relaxed);
        if (!chunk) {
            chunk = k_zalloc(sizeof(pd_slot) * CHUNK);
            atomic_store_explicit(&poller.chunks[c], chunk, memory_order_release);
        }
        k_unlock(&poller.lock);
    }
    return chunk ? &chunk[fd & (CHUNK - 1)] : NULL;
}

static void deadline_fire(struct k_timer *t, uint64_t seq, int64_t now);

struct k_pollfd *k_pollfd_open(intptr_t fd, int kind, bool owned, int *err)
{
    pd_slot *slot = slot_of(fd, true);
    if (!slot) {
        *err = fd < 0 ? WEFT_EBADF : WEFT_ENOMEM;
        return NULL;
    }
    k_lock(&poller.lock);
    struct k_pollfd *pd = poller.free;
    if (pd)
        poller.free = pd->free_next;
    k_unlock(&poller.lock);
    if (!pd) {
        pd = k_zalloc(sizeof *pd);
        if (!pd) {
            *err = WEFT_ENOMEM;
            return NULL;
        }
    }
    k_lock(&pd->lock);
    pd->fd = fd;
    pd->kind = kind;
    pd->owned = owned;
    pd->closing = false;
    for (int m = 0; m < 2; m++) {
        pd->ready[m] = false;
        pd->waiter[m] = NULL;
        pd->wake_code[m] = 0;
        pd->deadline[m] = 0;
        pd->timer[m].fn = deadline_fire;
        pd->timer[m].arg = pd;
        pd->timer[m].idx = -1;
    }
    pd->free_next = NULL;
    atomic_store_explicit(&pd->drained, 0, memory_order_relaxed);
    atomic_store_explicit(&pd->nodrain, false, memory_order_relaxed);
    k_unlock(&pd->lock);
    int r = hal_poll_register(fd, pd);
    if (r != 0) {
        k_lock(&poller.lock);
        pd->free_next = poller.free;
        poller.free = pd;
        k_unlock(&poller.lock);
        *err = r == HAL_EINVAL ? WEFT_EBADF : WEFT_EIO;
        return NULL;
    }
    atomic_store_explicit(slot, pd, memory_order_release);
    return pd;
}

struct k_pollfd *k_pollfd_get(intptr_t fd, int *err)
{
    pd_slot *slot = slot_of(fd, false);
    struct k_pollfd *pd = slot ? atomic_load_explicit(slot, memory_order_acquire) : NULL;
    if (!pd)
        *err = WEFT_EBADF;
    return pd;
}

/* Takes side m's waiter, telling it code (pd->lock held). */
static struct task *take_waiter(struct k_pollfd *pd, int m, int code)
{
    struct task *t = pd->waiter[m];
    if (t) {
        pd->waiter[m] = NULL;
        pd->wake_code[m] = code;
    }
    return t;
}

int k_pollfd_close(struct k_pollfd *pd)
{
    k_lock(&pd->lock);
    if (pd->closing) {
        k_unlock(&pd->lock);
        return WEFT_ECLOSED;
    }
    pd->closing = true;
    struct task *r = take_waiter(pd, K_POLL_R, WEFT_ECLOSED);
    struct task *w = take_waiter(pd, K_POLL_W, WEFT_ECLOSED);
    for (int m = 0; m < 2; m++) {
        pd->timer[m].seq++;
        k_timer_stop(&pd->timer[m]);
    }
    intptr_t fd = pd->fd;
    bool owned = pd->owned;
    pd_slot *slot = slot_of(fd, false);
    atomic_store_explicit(slot, NULL, memory_order_release);
    k_unlock(&pd->lock);
    if (r)
        k_ready_any(r);
    if (w)
        k_ready_any(w);
    int rc = owned ? hal_sock_close(fd) : hal_poll_unregister(fd);
    /* The descriptor is reused only after both timers' functions have
     * returned (they would otherwise see the next owner's state). */
    for (int m = 0; m < 2; m++)
        k_timer_quiesce(&pd->timer[m]);
    k_lock(&poller.lock);
    pd->free_next = poller.free;
    poller.free = pd;
    k_unlock(&poller.lock);
    return rc == 0 ? 0 : WEFT_EIO;
}

/* Whether side m's deadline has passed (pd->lock held). */
static bool expired(struct k_pollfd *pd, int m)
{
    int64_t d = pd->deadline[m];
    if (d == 0)
        return false;
    if (d < 0)
        return true;
    if (d > hal_now_ns())
        return false;
    pd->deadline[m] = -1;
    return true;
}

int k_pollfd_prepare(struct k_pollfd *pd, int mode)
{
    k_lock(&pd->lock);
    int rc = pd->closing ? WEFT_ECLOSED : expired(pd, mode) ? WEFT_ETIMEDOUT : 0;
    k_unlock(&pd->lock);
    return rc;
}

int k_pollfd_wait(struct k_pollfd *pd, int mode)
{
    struct task *self = k_task_self();
    k_lock(&pd->lock);
    if (pd->closing) {
        k_unlock(&pd->lock);
        return WEFT_ECLOSED;
    }
    if (expired(pd, mode)) {
        k_unlock(&pd->lock);
        return WEFT_ETIMEDOUT;
    }
    if (pd->ready[mode]) {
        pd->ready[mode] = false;
        k_unlock(&pd->lock);
        return 0;
    }
    if (pd->waiter[mode]) {
        k_unlock(&pd->lock);
        return WEFT_EINVAL; /* another task already waits on this side */
    }
    pd->waiter[mode] = self;
    pd->wake_code[mode] = 0;
    atomic_fetch_add_explicit(&poller.nwaiters, 1, memory_order_seq_cst);
    k_park(k_park_unlock, &pd->lock, mode == K_POLL_R ? WAIT_IO_READ : WAIT_IO_WRITE, pd);
    atomic_fetch_sub_explicit(&poller.nwaiters, 1, memory_order_relaxed);
    /* The waker wrote wake_code under pd->lock before readying us. */
    k_lock(&pd->lock);
    int code = pd->wake_code[mode];
    k_unlock(&pd->lock);
    return code;
}

/* Short reads. Why parking on "empty" cannot lose a wake-up: a short read
 * at rseq == seq means the socket was empty after the read; data that
 * arrives later is reported by the port, and that report bumps rseq (so
 * k_pollfd_read_empty turns false) and, through k_pollfd_wait's usual
 * ready flag or waiter, wakes whoever parks. A report that raced with the
 * read itself bumps rseq past seq: then nothing is assumed. What the port
 * cannot promise (a FIN, urgent data, an error end a read early) arrives
 * as HAL_POLL_NODRAIN and switches the shortcut off for the descriptor. */
uint64_t k_pollfd_read_seq(struct k_pollfd *pd)
{
    return atomic_load_explicit(&pd->rseq, memory_order_acquire);
}

void k_pollfd_read_short(struct k_pollfd *pd, uint64_t seq)
{
    if (poller.short_read_drains && !atomic_load_explicit(&pd->nodrain, memory_order_acquire))
        atomic_store_explicit(&pd->drained, seq + 1, memory_order_relaxed);
}

bool k_pollfd_read_empty(struct k_pollfd *pd)
{
    uint64_t d = atomic_load_explicit(&pd->drained, memory_order_relaxed);
    return d != 0 && !atomic_load_explicit(&pd->nodrain, memory_order_acquire) &&
           d == atomic_load_explicit(&pd->rseq, memory_order_acquire) + 1;
}

/* A deadline's timer: the side's deadline passed (unless it was changed
 * since: the sequence number tells). */
static void deadline_fire(struct k_timer *t, uint64_t seq, int64_t now)
{
    (void)now;
    struct k_pollfd *pd = t->arg;
    int m = t == &pd->timer[K_POLL_R] ? K_POLL_R : K_POLL_W;
    k_lock(&pd->lock);
    if (seq != t->seq || pd->closing) {
        k_unlock(&pd->lock);
        return;
    }
    pd->deadline[m] = -1;
    struct task *w = take_waiter(pd, m, WEFT_ETIMEDOUT);
    k_unlock(&pd->lock);
    if (w)
        k_ready_any(w);
}

void k_pollfd_set_deadline(struct k_pollfd *pd, int64_t rd, int64_t wd)
{
    int64_t d[2] = {rd, wd};
    struct task *wake[2] = {NULL, NULL};
    int64_t now = hal_now_ns();
    k_lock(&pd->lock);
    for (int m = 0; m < 2; m++) {
        pd->timer[m].seq++;
        k_timer_stop(&pd->timer[m]);
        if (d[m] <= 0) {
            pd->deadline[m] = 0;
        } else if (d[m] <= now) {
            pd->deadline[m] = -1;
            wake[m] = take_waiter(pd, m, WEFT_ETIMEDOUT);
        } else {
            pd->deadline[m] = d[m];
            /* A fire of the old setting still running is stale by seq. */
            k_timer_start(&pd->timer[m], d[m]);
        }
    }
    k_unlock(&pd->lock);
    for (int m = 0; m < 2; m++)
        if (wake[m])
            k_ready_any(wake[m]);
}

/* ---- the scheduler's side ---- */

int32_t k_poll_waiters(void)
{
    return atomic_load_explicit(&poller.nwaiters, memory_order_seq_cst);
}

uint64_t k_poll_wakeups(void)
{
    return atomic_load_explicit(&poller.wakeups, memory_order_relaxed);
}

uint64_t k_poll_readied(void)
{
    return atomic_load_explicit(&poller.readied, memory_order_relaxed);
}

void k_poll_wake_for(int64_t when)
{
    if (atomic_load_explicit(&k_sched.last_poll, memory_order_seq_cst) != 0)
        return; /* nobody blocks in the poller: whoever does will see when */
    int64_t until = atomic_load_explicit(&k_sched.poll_until, memory_order_seq_cst);
    if (until == 0 || until > when) {
        atomic_fetch_add_explicit(&poller.wakeups, 1, memory_order_relaxed);
        hal_poll_wake();
    }
}

struct task *k_poll(int64_t timeout_ns, int *n)
{
    struct hal_poll_event ev[MAX_EVENTS];
    struct task *head = NULL, **tail = &head;
    *n = 0;
    int got = hal_poll_wait(ev, MAX_EVENTS, timeout_ns);
    for (int i = 0; i < got; i++) {
        struct k_pollfd *pd = ev[i].key;
        struct task *ts[2] = {NULL, NULL};
        k_lock(&pd->lock);
        /* nodrain before rseq: a reader that sees the new rseq sees it. */
        if (ev[i].events & HAL_POLL_NODRAIN)
            atomic_store_explicit(&pd->nodrain, true, memory_order_release);
        if (ev[i].events & HAL_POLL_READ)
            atomic_fetch_add_explicit(&pd->rseq, 1, memory_order_acq_rel);
        for (int m = 0; m < 2; m++) {
            if (!(ev[i].events & (m == K_POLL_R ? HAL_POLL_READ : HAL_POLL_WRITE)))
                continue;
            ts[m] = take_waiter(pd, m, 0);
            if (!ts[m])
                pd->ready[m] = true;
        }
        k_unlock(&pd->lock);
        for (int m = 0; m < 2; m++) {
            if (!ts[m])
                continue;
            ts[m]->schedlink = NULL;
            hal_ctx_prefetch(&ts[m]->ctx); /* it runs soon, likely here */
            *tail = ts[m];
            tail = &ts[m]->schedlink;
            (*n)++;
        }
    }
    if (*n)
        atomic_fetch_add_explicit(&poller.readied, (uint64_t)*n, memory_order_relaxed);
    return head;
}
