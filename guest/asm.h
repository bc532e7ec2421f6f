/* SPDX-License-Identifier: MIT */
/*
 * hdguest constants shared by the assembly entry code and C: descriptor
 * selectors, control-register bits, stack sizes and the boot protocol ids.
 */
#ifndef HDGUEST_ASM_H
#define HDGUEST_ASM_H

/*
 * GDT layout: Linux's x86-64 selectors.  The build hosts' PVM expects guest
 * user code to use the host's user selectors, which are these (0x23/0x2b/0x33).
 */
#define GDT_KERNEL_CS32		0x08	/* 32-bit flat code: PVH and AP start-up */
#define GDT_KERNEL_CS		0x10	/* 64-bit kernel code */
#define GDT_KERNEL_DS		0x18
#define GDT_USER_CS32		0x20	/* unused */
#define GDT_USER_DS		0x28
#define GDT_USER_CS		0x30	/* 64-bit user code */
#define GDT_TSS			0x40	/* 16-byte system descriptor */
#define GDT_SIZE		0x50
#define USER_CS			(GDT_USER_CS | 3)
#define USER_DS			(GDT_USER_DS | 3)

/* Ring 3 runs with IOPL=3 and interrupts off. */
#define USER_RFLAGS		0x3002

/*
 * 64-bit TSS followed by an I/O permission bitmap that allows every port
 * (plus the 0xff byte the CPU may read past its end).
 */
#define TSS_SIZE		0x68
#define TSS_IOBITMAP_SIZE	0x2000
#define TSS_LIMIT		(TSS_SIZE + TSS_IOBITMAP_SIZE)	/* last byte: the 0xff */

#define X86_CR0_PE		0x00000001
#define X86_CR0_PG		0x80000000
#define X86_CR4_PAE		0x00000020
#define MSR_EFER		0xc0000080
#define EFER_LME		0x00000100

#define RING0_STACK_SIZE	0x4000
#define USER_STACK_SIZE		0x10000
#define AP_STACK_SIZE		0x800
#define AP_MAX			255	/* 8-bit xAPIC ids, 0xff is broadcast */

/*
 * Vectors.  Ring 3 enters ring 0 with `int $3` (CD 03, a DPL-3 gate; the
 * one-byte int3 is left to debuggers).  The build hosts' PVM turns int $0x80
 * and other `int n` from ring 3 into #UD and takes SYSCALL as its own
 * paravirtual supervisor entry (CPL stays 3), but reflects #BP through our IDT.
 */
#define VEC_SYSCALL		3
#define VEC_SPURIOUS		0xff
/* Wake-ups for a halted network loop (net/net_idle.c): RX MSI-X and LAPIC timer */
#define VEC_NET_RX		0x40
#define VEC_TIMER		0x41

/* How the guest was entered (boot_proto) */
#define BOOT_PROTO_LINUX64	1
#define BOOT_PROTO_PVH		2
#define BOOT_PROTO_LINUX32	3

/* Real-mode AP trampoline (at most a page): copied here, SIPI vector = address >> 12 */
#define TRAMPOLINE_ADDR		0x8000

/* Offsets inside the image at 1 MiB (see hdguest.ld and mkbzimage.c) */
#define IMAGE_ENTRY32_OFFSET	0x000	/* Linux 32-bit boot protocol */
#define IMAGE_KERNEL_INFO_OFFSET 0x100	/* boot protocol 2.15 kernel_info */
#define IMAGE_ENTRY64_OFFSET	0x200	/* Linux 64-bit boot protocol */

#ifdef __ASSEMBLER__
/*
 * 32-bit protected mode, paging off -> long mode (compatibility) on the
 * static identity page tables.  Clobbers eax, ecx, edx.  A far jump to a
 * 64-bit code selector must follow.
 */
.macro ENTER_LONG_MODE
	movl	%cr4, %eax
	orl	$X86_CR4_PAE, %eax
	movl	%eax, %cr4
	movl	$pml4, %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$(X86_CR0_PG | X86_CR0_PE), %eax
	movl	%eax, %cr0
.endm
#endif

#endif
