/* SPDX-License-Identifier: MIT */
/*
 * Image head at 1 MiB and the common ring-0 start-up.
 *
 *   +0x000  startup_32   Linux 32-bit boot protocol (code32_start), esi = boot_params
 *   +0x100  kernel_info  boot protocol 2.15 "LToP" block
 *   +0x200  startup_64   Linux 64-bit boot protocol (ELF e_entry), rsi = boot_params
 *
 * Ring 0 is emulated instruction by instruction on the build hosts, so it only
 * loads our GDT, page tables, TSS and IDT and drops to ring 3; the rest of
 * start-up, including filling the IDT, runs natively in ring 3.  Ring 3 gets
 * port I/O twice over: IOPL=3 (honoured by hardware) and an all-zero I/O
 * permission bitmap in the TSS (the build hosts' PVM keeps RFLAGS.IOPL at 0
 * in ring 3, and KVM's emulator then consults the bitmap).
 */
#include "guest/asm.h"

	.section .head, "ax"
	.code32
	.globl	startup_32
startup_32:
	cli
	movl	%esi, boot_info_ptr
	movl	$BOOT_PROTO_LINUX32, boot_proto
	jmp	enter_long_mode32

	.org	IMAGE_KERNEL_INFO_OFFSET
	.globl	kernel_info
kernel_info:
	.ascii	"LToP"
	.long	kernel_info_end - kernel_info	/* size */
	.long	kernel_info_end - kernel_info	/* size_total */
	.long	0				/* setup_type_max: setup_data unused */
kernel_info_end:

	.org	IMAGE_ENTRY64_OFFSET
	.code64
	.globl	startup_64
startup_64:
	cli
	movq	$ring0_stack_top, %rsp
	movq	%rsi, boot_info_ptr
	movl	$BOOT_PROTO_LINUX64, boot_proto
	lgdt	gdt_desc
	pushq	$GDT_KERNEL_CS
	pushq	$start64_common
	lretq

/* 32-bit protected mode, paging off (PVH and the Linux 32-bit protocol). */
	.text
	.code32
	.globl	enter_long_mode32
enter_long_mode32:
	lgdt	gdt_desc
	movl	$GDT_KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	ENTER_LONG_MODE
	ljmp	$GDT_KERNEL_CS, $start64_common

	.code64
start64_common:
	movl	$GDT_KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	xorl	%eax, %eax
	movl	%eax, %fs
	movl	%eax, %gs
	movq	$ring0_stack_top, %rsp
	movl	$pml4, %eax
	movq	%rax, %cr3

	/* 64-bit available TSS descriptor: base split 0:23 / 24:31 */
	movl	$tss, %eax
	movl	%eax, %edx
	andl	$0xffffff, %edx
	shlq	$16, %rdx
	orq	$TSS_LIMIT, %rdx
	movabsq	$(0x89 << 40), %rcx
	orq	%rcx, %rdx
	shrl	$24, %eax
	shlq	$56, %rax
	orq	%rax, %rdx
	movq	%rdx, gdt + GDT_TSS
	movl	$GDT_TSS, %eax
	ltr	%ax
	lidt	idt_desc

	pushq	$USER_DS
	pushq	$user_stack_top
	pushq	$USER_RFLAGS
	pushq	$USER_CS
	pushq	$user_entry
	iretq

/* Ring 3 from here on. */
user_entry:
	movl	$USER_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	/* .bss is not part of a bzImage file: clear it (the stacks live outside) */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	xorl	%eax, %eax
	rep stosb
	call	hdguest_main
	movl	%eax, %edi
	call	hd_exit

	.data
	.balign	8
	.globl	boot_info_ptr, boot_proto
boot_info_ptr:	.quad	0	/* boot_params or hvm_start_info GPA */
boot_proto:	.long	0	/* BOOT_PROTO_* */

	.section .stack, "aw", @nobits
	.balign	16
	.globl	ring0_stack_top, user_stack_top
	.space	RING0_STACK_SIZE
ring0_stack_top:
	.space	USER_STACK_SIZE
user_stack_top:
