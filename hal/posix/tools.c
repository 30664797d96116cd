/* SPDX-License-Identifier: MIT */
/*
 * tools.c — for debugging tools and their users: telling valgrind about
 * task stacks (hal_stack_register), and naming the file that code comes
 * from for the dump (hal_pc_module, at the end).
 *
 * valgrind tracks one stack per thread; when the stack pointer jumps from
 * one task stack to another it takes the jump for a frame being pushed or
 * popped and marks everything in between as undefined, which corrupts its
 * view of every other task's saved registers. Registering each stack
 * (VALGRIND_STACK_REGISTER) lets it recognise a switch. The client request
 * is a few no-op instructions when valgrind is not watching, and the table
 * below is only kept when it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* ---- Where code comes from (hal_pc_module) ----
 *
 * /proc/self/maps lists each mapping as
 *     start-end perms offset dev inode [path]
 * in hex but the inode. The line whose range holds pc names the file and
 * the offset in it of start; pc's offset is that plus pc - start. Read
 * with open and read into a buffer on the stack: async-signal-safe, for
 * the dump a SIGQUIT asks for. (qemu-user shows the program it runs its
 * own view of this file, in the program's addresses.) */

/* Parses a hex number at *p, moving *p past it; false if there is none. */
static bool hex(const char **p, const char *end, uintptr_t *v)
{
    const char *s = *p;
    uintptr_t x = 0;
    for (; s < end; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (*s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else
            break;
        x = x * 16 + d;
    }
    if (s == *p)
        return false;
    *p = s;
    *v = x;
    return true;
}

/* Skips one field and the blanks after it. */
static const char *field(const char *s, const char *end)
{
    while (s < end && *s != ' ')
        s++;
    while (s < end && *s == ' ')
        s++;
    return s;
}

/* One line of the maps file, [s, end): 1 if it holds pc and names a file
 * (answered), 0 if it does not hold pc, -1 if it holds pc but names no
 * file (an anonymous mapping, the vdso). */
static int maps_line(const char *s, const char *end, uintptr_t pc, char *name, size_t n,
                     uintptr_t *off, uintptr_t *lo, uintptr_t *hi)
{
    uintptr_t start, stop, offset;
    if (!hex(&s, end, &start) || s == end || *s++ != '-' || !hex(&s, end, &stop))
        return 0;
    if (pc < start || pc >= stop)
        return 0;
    s = field(s, end); /* past the range */
    s = field(s, end); /* past perms */
    if (!hex(&s, end, &offset))
        return -1;
    s = field(s, end); /* past the offset */
    s = field(s, end); /* past dev */
    s = field(s, end); /* past the inode: the path, if any */
    if (s == end || *s != '/' || n == 0)
        return -1;
    size_t len = (size_t)(end - s) < n - 1 ? (size_t)(end - s) : n - 1;
    memcpy(name, s, len);
    name[len] = '\0';
    *off = offset + (pc - start);
    *lo = start;
    *hi = stop;
    return 1;
}

int hal_pc_module(uintptr_t pc, char *name, size_t n, uintptr_t *off, uintptr_t *lo, uintptr_t *hi)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return HAL_EINVAL;
    char buf[4096];
    size_t have = 0;
    bool eof = false, skipping = false;
    int found = 0;
    while (found == 0) {
        char *nl = memchr(buf, '\n', have);
        if (nl == NULL) {
            if (eof)
                break;
            if (have == sizeof buf) { /* a line longer than buf: drop it */
                have = 0;
                skipping = true;
            }
            ssize_t r = read(fd, buf + have, sizeof buf - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                eof = true;
            else
                have += (size_t)r;
            continue;
        }
        if (!skipping)
            found = maps_line(buf, nl, pc, name, n, off, lo, hi);
        skipping = false;
        size_t used = (size_t)(nl + 1 - buf);
        memmove(buf, nl + 1, have - used);
        have -= used;
    }
    close(fd);
    return found == 1 ? 0 : HAL_EINVAL;
}
