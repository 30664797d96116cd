/* SPDX-License-Identifier: MIT */
/*
 * ktest.h — kern's internals as the white-box tests see them (Go:
 * export_test.go), for tests/t_kern.c.
 *
 * The run queue and the timer heap are tested on procs and threads that
 * the test builds by hand, outside weft_run: proc.h has every structure
 * and function that needs (k_runq_*, k_timer_*, k_timers_run). The few
 * internals no header exports are reached through the hooks below. Each
 * is defined at the end of the file whose statics it exposes, under
 * "White-box hooks", which includes this header (so the compiler checks
 * the two agree) and nothing else of the tests'; kern never calls them.
 * This header includes only kern.h, so that alloc.c and stack.c, below
 * the scheduler, can include it (docs/HACKING.md, "Layers").
 */
#ifndef WEFT_KERN_KTEST_H
#define WEFT_KERN_KTEST_H

#include "kern/kern.h"

struct proc;

/* ---- alloc.c: the size classes ---- */

/* The class of a small size (1 .. K_SMALL_MAX bytes; 0 is class 0). */
unsigned k_alloc_class_of(size_t size);
/* The object size of class cls (< K_NCLASS). */
size_t k_alloc_class_size(unsigned cls);
/* How many objects of class cls a proc cache takes from the central list
 * at once; the cache gives half back past twice this. After k_mem_init. */
uint32_t k_alloc_class_batch(unsigned cls);

/* ---- timer.c: the heap ---- */

/* Checks p's timer heap: every slot's timer points back at p and at its
 * slot, the slot's copy of when matches the timer's, no slot is earlier
 * than its parent, and timer0 is the earliest when (0 when empty).
 * Returns -1 when all holds, else the first slot found wrong (ntimers for
 * timer0). Call with no thread changing the heap. */
int k_timers_check(struct proc *p);

/* ---- stack.c: the pool ---- */

/* Free stacks of the default size in the pool; *hot gets how many of them
 * still have their pages (not discarded). Takes the pool's lock. */
uint32_t k_stack_pooled(uint32_t *hot);

#endif /* WEFT_KERN_KTEST_H */
