/* SPDX-License-Identifier: MIT */
/*
 * text_bounds.S — the two ends of weft's own code in a PE image.
 *
 * The build renames the text sections of every kern and hal object to
 * .text$weft_m (Makefile: weft_text). The PE linker places the grouped
 * sections .text$* inside .text sorted by the name after the '$', so every
 * .text$weft_m lies between .text$weft_a and .text$weft_z, and these two
 * labels bound weft's code whether the image is the program or a DLL.
 * hal_runtime_text (preempt.c) reads them. Nothing else may use a group
 * name that sorts between weft_a and weft_z.
 */

        .section .text$weft_a,"xr"
        .globl  hal_win32_text_lo
hal_win32_text_lo:

        .section .text$weft_z,"xr"
        .globl  hal_win32_text_hi
hal_win32_text_hi:
        int3
