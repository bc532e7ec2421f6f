/* SPDX-License-Identifier: MIT */
/*
 * Static identity page tables for 0..4 GiB, built by the assembler so no
 * (emulated) ring-0 loop is needed at boot.  Every level has the user bit:
 * the workloads run in ring 3.  The first 2 MiB use 4 KiB pages so page 0
 * can stay unmapped (NULL dereferences fault); the rest are 2 MiB pages, and
 * the MMIO hole 0xC0000000-0xFFFFFFFF is uncached (PCD|PWT).
 */
#include "devices/platform.h"

#define PTE_P		0x001
#define PTE_W		0x002
#define PTE_U		0x004
#define PTE_PWT		0x008
#define PTE_PCD		0x010
#define PTE_PS		0x080
#define PTE_TABLE	(PTE_P | PTE_W | PTE_U)
#define PTE_RAM_2M	(PTE_P | PTE_W | PTE_U | PTE_PS)
#define PTE_MMIO_2M	(PTE_RAM_2M | PTE_PWT | PTE_PCD)
#define PTE_RAM_4K	(PTE_P | PTE_W | PTE_U)

	.section .data.pagetables, "aw"
	.balign	4096
	.globl	pml4
pml4:
	.quad	pdpt + PTE_TABLE
	.fill	511, 8, 0

	.globl	pdpt
pdpt:
	.quad	pd + 0x0000 + PTE_TABLE
	.quad	pd + 0x1000 + PTE_TABLE
	.quad	pd + 0x2000 + PTE_TABLE
	.quad	pd + 0x3000 + PTE_TABLE
	.fill	508, 8, 0

pd:
	.quad	pt_low + PTE_TABLE
	.set	i, 1
	.rept	2047
	.if	(i << 21) >= PLAT_MMIO_HOLE_START
	.quad	(i << 21) | PTE_MMIO_2M
	.else
	.quad	(i << 21) | PTE_RAM_2M
	.endif
	.set	i, i + 1
	.endr

	.globl	pt_low
pt_low:
	.quad	0			/* page 0: not present */
	.set	i, 1
	.rept	511
	.quad	(i << 12) | PTE_RAM_4K
	.set	i, i + 1
	.endr
