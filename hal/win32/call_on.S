/* SPDX-License-Identifier: MIT */
/*
 * call_on.S (win32, x86_64) — running a C function on another stack, for
 * the fault handler (fault.c): a task that overflowed its stack has no
 * room left for kern_fault's printing.
 */
        .text

/*
 * void hal_win32_call_on(void (*fn)(void *), void *arg, void *stack_top);
 * Calls fn(arg) on the stack that ends at stack_top (16-aligned), with the
 * Win64 ABI's 32 bytes of shadow space, then returns on the caller's stack.
 * rcx = fn, rdx = arg, r8 = stack_top.
 */
        .globl  hal_win32_call_on
        .def    hal_win32_call_on; .scl 2; .type 32; .endef
        .p2align 4
hal_win32_call_on:
        pushq   %rbx
        movq    %rsp, %rbx
        movq    %r8, %rsp
        subq    $32, %rsp
        movq    %rcx, %rax
        movq    %rdx, %rcx
        callq   *%rax
        movq    %rbx, %rsp
        popq    %rbx
        ret
