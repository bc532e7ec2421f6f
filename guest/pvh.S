/* SPDX-License-Identifier: MIT */
/*
 * PVH entry: the Xen ELF note that QEMU (-M microvm) and `hdvm --boot pvh`
 * look for, and its 32-bit entry (protected mode, paging off, ebx =
 * hvm_start_info).
 */
#include "guest/asm.h"

#define XEN_ELFNOTE_PHYS32_ENTRY	18

	.section .note.Xen, "a", @note
	.balign	4
	.long	4				/* namesz: "Xen\0" */
	.long	4				/* descsz */
	.long	XEN_ELFNOTE_PHYS32_ENTRY
	.asciz	"Xen"
	.balign	4
	.long	pvh_start32
	.balign	4

	.text
	.code32
	.globl	pvh_start32
pvh_start32:
	cli
	movl	%ebx, boot_info_ptr
	movl	$BOOT_PROTO_PVH, boot_proto
	jmp	enter_long_mode32
