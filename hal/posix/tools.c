/* SPDX-License-Identifier: MIT */
/*
 * tools.c — telling debugging tools about task stacks (hal_stack_register).
 *
 * valgrind tracks one stack per thread; when the stack pointer jumps from
 * one task stack to another it takes the jump for a frame being pushed or
 * popped and marks everything in between as undefined, which corrupts its
 * view of every other task's saved registers. Registering each stack
 * (VALGRIND_STACK_REGISTER) lets it recognise a switch. The client request
 * is a few no-op instructions when valgrind is not watching, and the table
 * below is only kept when it is.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "hal/hal.h"
#include "posix.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND 1
#endif
#endif

#ifdef HAVE_VALGRIND

struct reg {
    uintptr_t lo;
    unsigned id;
};

/* Registered stacks, sorted by nothing: releases are rare (a run's end). */
static pthread_mutex_t regs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reg *regs; /* protected by regs_lock */
static size_t nregs, capregs;

void hal_stack_register(void *lo, void *hi)
{
    if (!RUNNING_ON_VALGRIND)
        return;
    unsigned id = VALGRIND_STACK_REGISTER(lo, hi);
    pthread_mutex_lock(&regs_lock);
    if (nregs == capregs) {
        size_t cap = capregs ? capregs * 2 : 1024;
        struct reg *n = realloc(regs, cap * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&regs_lock);
            return; /* the registration stays; only its end is lost */
        }
        regs = n;
        capregs = cap;
    }
    regs[nregs++] = (struct reg){(uintptr_t)lo, id};
    pthread_mutex_unlock(&regs_lock);
}

void hal_posix_stacks_released(void *addr, size_t size)
{
    if (!RUNNING_ON_VALGRIND)
        return;
    uintptr_t a = (uintptr_t)addr, b = a + size;
    pthread_mutex_lock(&regs_lock);
    for (size_t i = 0; i < nregs;) {
        if (regs[i].lo >= a && regs[i].lo < b) {
            VALGRIND_STACK_DEREGISTER(regs[i].id);
            regs[i] = regs[--nregs];
        } else {
            i++;
        }
    }
    if (nregs == 0) {
        free(regs);
        regs = NULL;
        capregs = 0;
    }
    pthread_mutex_unlock(&regs_lock);
}

#else

void hal_stack_register(void *lo, void *hi)
{
    (void)lo;
    (void)hi;
}

void hal_posix_stacks_released(void *addr, size_t size)
{
    (void)addr;
    (void)size;
}

#endif
