/* SPDX-License-Identifier: MIT */
/*
 * lock.c — kern's runtime lock: spin a little, then sleep on a futex
 * (Go: lock_futex.go).
 *
 * key: 0 unlocked, 1 locked, 2 locked and someone may sleep on it. The
 * unlocker wakes one sleeper only when it swapped out a 2, so the
 * uncontended path is one atomic exchange each way and no system call.
 * A woken sleeper re-takes the lock with key 2 (it cannot know whether
 * others still sleep), which costs at most one spurious wake later.
 */
#include "kern/lock.h"

#define SPIN_ROUNDS 4 /* active spins before yielding the CPU */
#define SPIN_RELAX 30 /* hal_cpu_relax per active spin */

/* The calling thread's count, NULL outside kern threads (lock.h). */
static struct k_lock_count *count_self(void)
{
    return hal_thread_get();
}

static void held_inc(void)
{
    struct k_lock_count *c = count_self();
    if (c)
        c->held++;
}

static void held_dec(void)
{
    struct k_lock_count *c = count_self();
    if (c) {
        k_assert(c->held > 0);
        c->held--;
    }
}

static void set_owner(struct k_lock *l)
{
#ifdef WEFT_DEBUG
    l->owner = hal_thread_get();
#else
    (void)l;
#endif
}

void k_lock(struct k_lock *l)
{
#ifdef WEFT_DEBUG
    /* owner is read once, racily (another thread may be taking or
     * releasing l): only our own store can make it equal to us. A host
     * thread (no kern thread: NULL) is never checked: read twice, owner
     * could be another thread's, then NULL, which a host would take for
     * its own. Relaxed atomic load: a DEBUG check, no ordering needed. */
    void *self = hal_thread_get();
    if (self != NULL && __atomic_load_n(&l->owner, __ATOMIC_RELAXED) == self)
        k_panic("k_lock: recursive lock");
#endif
    held_inc();
    /* Every access that takes the lock (these exchanges, the CAS below,
     * k_trylock's) is an acquire pairing with k_unlock's release
     * exchange: the last holder's critical section is visible. The key is
     * only ever changed by read-modify-writes, so their single order on it
     * decides who holds the lock and whether a sleeper's 2 is seen. */
    uint32_t v = atomic_exchange_explicit(&l->key, 1, memory_order_acquire);
    if (K_LIKELY(v == 0)) {
        set_owner(l);
        return;
    }
    /* v is 1 or 2. If it was 2 we must leave 2 behind when we take it, or
     * a sleeper would be forgotten. */
    uint32_t wait = v;
    for (;;) {
        for (int i = 0; i < SPIN_ROUNDS; i++) {
            /* Relaxed: a hint to try the CAS; failure values too. */
            while (atomic_load_explicit(&l->key, memory_order_relaxed) == 0) {
                uint32_t expect = 0;
                if (atomic_compare_exchange_weak_explicit(
                        &l->key, &expect, wait, memory_order_acquire, memory_order_relaxed)) {
                    set_owner(l);
                    return;
                }
            }
            for (int j = 0; j < SPIN_RELAX; j++)
                hal_cpu_relax();
        }
        /* Sleep. Announce ourselves with 2 first. */
        v = atomic_exchange_explicit(&l->key, 2, memory_order_acquire);
        if (v == 0) {
            set_owner(l);
            return;
        }
        wait = 2;
        hal_futex_wait((uint32_t *)&l->key, 2, -1);
    }
}

bool k_trylock(struct k_lock *l)
{
    uint32_t expect = 0;
    if (atomic_compare_exchange_strong_explicit(&l->key, &expect, 1, memory_order_acquire,
                                                memory_order_relaxed)) {
        held_inc();
        set_owner(l);
        return true;
    }
    return false;
}

void k_unlock(struct k_lock *l)
{
#ifdef WEFT_DEBUG
    if (l->owner != hal_thread_get())
        k_panic("k_unlock: not the owner");
    l->owner = NULL;
#endif
    /* Release: pairs with the acquires in k_lock and k_trylock. */
    uint32_t v = atomic_exchange_explicit(&l->key, 0, memory_order_release);
    if (K_UNLIKELY(v == 0))
        k_panic("k_unlock: lock not held");
    if (v == 2)
        hal_futex_wake((uint32_t *)&l->key, 1);
    held_dec();
}

void k_lock_assert_held(struct k_lock *l)
{
#ifdef WEFT_DEBUG
    /* A DEBUG check of our own lock: any order would do. */
    if (l->owner != hal_thread_get() || atomic_load(&l->key) == 0)
        k_panic("lock not held by this thread");
#else
    (void)l;
#endif
}

int k_locks_held(void)
{
    struct k_lock_count *c = count_self();
    return c ? c->held : 0;
}
