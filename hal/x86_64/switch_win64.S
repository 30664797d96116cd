/* SPDX-License-Identifier: MIT */
/*
 * switch_win64.S — the task context switch for the x86_64 Win64 ABI
 * (Windows, built with mingw-w64), and the stub a new context starts in.
 *
 * Saved: what the ABI says survives a call (rbx, rbp, rdi, rsi, r12-r15,
 * xmm6-xmm15, the MXCSR and the x87 control word), and the three fields of
 * the thread's TIB that describe its stack (StackBase, StackLimit,
 * DeallocationStack): Windows reads them to dispatch an exception, to
 * unwind and in the stack probe, so while a task runs they must describe
 * the task's stack, and while the scheduler runs, the thread's. The layout
 * is in hal_arch.h (HAL_FRAME_*); context.c builds the first frame of a
 * task and static-asserts the offsets.
 *
 * COFF has no hidden visibility; the static library localises every name
 * but weft_* (mk/windows-x86_64.mk, LIB_LOCALIZE).
 */
#include "hal_arch.h"

        .text

/*
 * void hal_ctx_switch(struct hal_context *from, struct hal_context *to);
 * Save the caller's callee-saved state and TIB stack fields on its stack
 * and its sp in *from; load the sp from *to, its state, and return into
 * that context. Win64: from in rcx, to in rdx.
 *
 * The store to from->sp is the last use of the old stack; kern publishes
 * the old context only after this call returns on the new stack.
 */
        .globl  hal_ctx_switch
        .def    hal_ctx_switch; .scl 2; .type 32; .endef
        .p2align 4
hal_ctx_switch:
        subq    $HAL_FRAME_RET, %rsp
        movq    %rbp, HAL_FRAME_RBP(%rsp)
        movq    %rbx, HAL_FRAME_RBX(%rsp)
        movq    %rdi, HAL_FRAME_RDI(%rsp)
        movq    %rsi, HAL_FRAME_RSI(%rsp)
        movq    %r12, HAL_FRAME_R12(%rsp)
        movq    %r13, HAL_FRAME_R13(%rsp)
        movq    %r14, HAL_FRAME_R14(%rsp)
        movq    %r15, HAL_FRAME_R15(%rsp)
        movaps  %xmm6, HAL_FRAME_XMM6+0*16(%rsp)
        movaps  %xmm7, HAL_FRAME_XMM6+1*16(%rsp)
        movaps  %xmm8, HAL_FRAME_XMM6+2*16(%rsp)
        movaps  %xmm9, HAL_FRAME_XMM6+3*16(%rsp)
        movaps  %xmm10, HAL_FRAME_XMM6+4*16(%rsp)
        movaps  %xmm11, HAL_FRAME_XMM6+5*16(%rsp)
        movaps  %xmm12, HAL_FRAME_XMM6+6*16(%rsp)
        movaps  %xmm13, HAL_FRAME_XMM6+7*16(%rsp)
        movaps  %xmm14, HAL_FRAME_XMM6+8*16(%rsp)
        movaps  %xmm15, HAL_FRAME_XMM6+9*16(%rsp)
        movq    %gs:HAL_TIB_STACK_BASE, %rax
        movq    %rax, HAL_FRAME_STACK_BASE(%rsp)
        movq    %gs:HAL_TIB_STACK_LIMIT, %rax
        movq    %rax, HAL_FRAME_STACK_LIMIT(%rsp)
        movq    %gs:HAL_TIB_STACK_DEALLOC, %rax
        movq    %rax, HAL_FRAME_STACK_DEALLOC(%rsp)
        stmxcsr HAL_FRAME_MXCSR(%rsp)
        fnstcw  HAL_FRAME_FCW(%rsp)

        movq    %rsp, HAL_CTX_SP(%rcx)
        movq    HAL_CTX_SP(%rdx), %rsp

        /* The new context's stack first, so that from here on the TIB and
         * rsp agree again. */
        movq    HAL_FRAME_STACK_BASE(%rsp), %rax
        movq    %rax, %gs:HAL_TIB_STACK_BASE
        movq    HAL_FRAME_STACK_LIMIT(%rsp), %rax
        movq    %rax, %gs:HAL_TIB_STACK_LIMIT
        movq    HAL_FRAME_STACK_DEALLOC(%rsp), %rax
        movq    %rax, %gs:HAL_TIB_STACK_DEALLOC
        ldmxcsr HAL_FRAME_MXCSR(%rsp)
        fldcw   HAL_FRAME_FCW(%rsp)
        movaps  HAL_FRAME_XMM6+0*16(%rsp), %xmm6
        movaps  HAL_FRAME_XMM6+1*16(%rsp), %xmm7
        movaps  HAL_FRAME_XMM6+2*16(%rsp), %xmm8
        movaps  HAL_FRAME_XMM6+3*16(%rsp), %xmm9
        movaps  HAL_FRAME_XMM6+4*16(%rsp), %xmm10
        movaps  HAL_FRAME_XMM6+5*16(%rsp), %xmm11
        movaps  HAL_FRAME_XMM6+6*16(%rsp), %xmm12
        movaps  HAL_FRAME_XMM6+7*16(%rsp), %xmm13
        movaps  HAL_FRAME_XMM6+8*16(%rsp), %xmm14
        movaps  HAL_FRAME_XMM6+9*16(%rsp), %xmm15
        movq    HAL_FRAME_R15(%rsp), %r15
        movq    HAL_FRAME_R14(%rsp), %r14
        movq    HAL_FRAME_R13(%rsp), %r13
        movq    HAL_FRAME_R12(%rsp), %r12
        movq    HAL_FRAME_RSI(%rsp), %rsi
        movq    HAL_FRAME_RDI(%rsp), %rdi
        movq    HAL_FRAME_RBX(%rsp), %rbx
        movq    HAL_FRAME_RBP(%rsp), %rbp
        addq    $HAL_FRAME_RET, %rsp
        ret

/*
 * void hal_ctx_start(void);   (never called; "returned" into)
 * The first hal_ctx_switch to a new context returns here, with the frame
 * from hal_ctx_init: r12 = entry, r13 = arg, rbp = 0, rsp 16-aligned at
 * the stack's top. It pushes a return address of 0, so that what follows
 * is entered as any function is (rsp % 16 == 8, a return address at rsp)
 * and a walk of the stack ends there, inside the stack.
 */
        .globl  hal_ctx_start
        .def    hal_ctx_start; .scl 2; .type 32; .endef
        .p2align 4
hal_ctx_start:
        pushq   $0

/*
 * hal_ctx_task (local): calls entry(arg) with arg in rcx and the 32 bytes
 * of shadow space the Win64 ABI gives every callee, so rsp % 16 == 8 at
 * entry's first instruction. entry must not return; if it does, ud2
 * traps. The bottom frame of every task's stack, so its unwind data names
 * a handler: hal_win32_task_unhandled (hal/win32/fault.c) does for an
 * exception that no frame of the task handled what a thread's start
 * routine does, and calls UnhandledExceptionFilter.
 */
        .seh_proc hal_ctx_task
hal_ctx_task:
        subq    $40, %rsp
        .seh_stackalloc 40
        .seh_endprologue
        .seh_handler hal_win32_task_unhandled, @except
        movq    %r13, %rcx
        callq   *%r12
        ud2
        .seh_endproc
