/* SPDX-License-Identifier: MIT */
/*
 * waiter.h — a task waiting on a channel, lock or I/O (Go: sudog).
 *
 * A waiter is owned by the waiting task and lives until that task resumes.
 * It is linked into exactly one wait list per object it waits on (a select
 * has one waiter per case); the object's lock protects its links. A plain
 * channel send or receive keeps its waiter on the waiting task's own stack
 * (stacks never move, and the waiter is unlinked before the task resumes);
 * select, which needs one per case, takes them from a per-proc cache
 * (k_waiter_get / k_waiter_put).
 */
#ifndef WEFT_KERN_WAITER_H
#define WEFT_KERN_WAITER_H

#include "kern/task.h"

struct waiter {
    /* Immutable while linked: */
    struct task *task;
    void *obj; /* the channel or semaphore address */

    /* Protected by the lock of the object the waiter is linked on: */
    struct waiter *next, *prev;
    void *elem;      /* the element to send from / receive into */
    uint32_t ticket; /* sema: FIFO ticket; select: case index */
    bool is_select;  /* part of a select: must win task->select_done */
    bool success;    /* chan: true = completed by a value, false = closed */

    /* Owned by the waiting task: */
    struct waiter *wait_link; /* the task's next waiter (select) */
};

/* A zeroed waiter for task t, from the calling thread's proc cache. */
struct waiter *k_waiter_get(struct task *t);
/* Gives a waiter back; it must be unlinked. */
void k_waiter_put(struct waiter *w);

#endif /* WEFT_KERN_WAITER_H */
