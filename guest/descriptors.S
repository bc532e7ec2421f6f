/* SPDX-License-Identifier: MIT */
/* GDT, 64-bit TSS with its I/O bitmap and the descriptor-table pointers (the IDT is in cpu.c). */
#include "guest/asm.h"

	.data
	.balign	16
	.globl	gdt, gdt_desc, tss, idt_desc
gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* 0x08 kernel code, 32-bit */
	.quad	0x00af9b000000ffff	/* 0x10 kernel code, 64-bit */
	.quad	0x00cf93000000ffff	/* 0x18 kernel data */
	.quad	0x00cffb000000ffff	/* 0x20 user code, 32-bit, DPL 3 */
	.quad	0x00cff3000000ffff	/* 0x28 user data, DPL 3 */
	.quad	0x00affb000000ffff	/* 0x30 user code, 64-bit, DPL 3 */
	.quad	0			/* 0x38 */
	.quad	0, 0			/* 0x40 TSS, filled by start64_common */
	.if	. - gdt != GDT_SIZE
	.error	"GDT_SIZE does not match the GDT"
	.endif

	.balign	8
	.word	0
gdt_desc:				/* 32-bit lgdt reads only the low 4 base bytes */
	.word	GDT_SIZE - 1
	.quad	gdt

	.word	0
idt_desc:
	.word	256 * 16 - 1
	.quad	idt

	.balign	16
tss:
	.long	0
	.quad	ring0_stack_top		/* rsp0: ring 3 -> ring 0 interrupts */
	.quad	0, 0			/* rsp1, rsp2 */
	.quad	0
	.fill	7, 8, 0			/* ist1..ist7 */
	.quad	0
	.word	0
	.word	TSS_SIZE		/* I/O permission bitmap offset */
	.fill	TSS_IOBITMAP_SIZE, 1, 0	/* every port allowed from ring 3 */
	.byte	0xff
	.if	. - tss != TSS_LIMIT + 1
	.error	"TSS layout does not match TSS_LIMIT"
	.endif
