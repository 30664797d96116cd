/* SPDX-License-Identifier: MIT */
/*
 * list.h — an intrusive doubly linked list. An element embeds a struct
 * k_link; a list is a pointer to its first link. All zeros is an empty
 * list, so a list in a struct that is memset to zero (alloc.c's large
 * objects, stack.c's regions) needs no set-up. Pushing, popping and
 * removing any element are O(1); whoever changes a list holds the lock
 * that guards it.
 */
#ifndef WEFT_KERN_LIST_H
#define WEFT_KERN_LIST_H

#include "kern/kern.h"

struct k_link {
    struct k_link *next, *prev; /* NULL at the ends */
};

struct k_list {
    struct k_link *first; /* NULL: empty */
};

/* The element that holds link l, a struct k_link named field in a type. */
#define K_LIST_ENTRY(l, type, field) K_CONTAINER_OF(l, type, field)

/* Puts n, which is on no list, first on li. */
static inline void k_list_push(struct k_list *li, struct k_link *n)
{
    n->prev = NULL;
    n->next = li->first;
    if (n->next)
        n->next->prev = n;
    li->first = n;
}

/* Takes n, which is on li, off it. */
static inline void k_list_remove(struct k_list *li, struct k_link *n)
{
    k_assert(n->prev ? n->prev->next == n : li->first == n);
    if (n->prev)
        n->prev->next = n->next;
    else
        li->first = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* Takes the first element off li and returns its link; NULL when li is
 * empty. */
static inline struct k_link *k_list_pop(struct k_list *li)
{
    struct k_link *n = li->first;
    if (n)
        k_list_remove(li, n);
    return n;
}

#endif /* WEFT_KERN_LIST_H */
