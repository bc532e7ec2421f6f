/* SPDX-License-Identifier: MIT */
/*
 * AP start-up.  trampoline_start..trampoline_end is copied to TRAMPOLINE_ADDR
 * (below 1 MiB) by smp.c; a SIPI starts an AP there in real mode with
 * CS = TRAMPOLINE_ADDR >> 4, IP = 0.  The real-mode part only loads the shared
 * GDT and enters protected mode; the rest runs from the image at 1 MiB.  In
 * long mode each AP takes a stack slot, counts itself in smp_ap_count and
 * parks with interrupts off.
 */
#include "guest/asm.h"

	.section .rodata.trampoline, "a"
	.code16
	.globl	trampoline_start, trampoline_end
trampoline_start:
	cli
	cld
	movw	%cs, %ax
	movw	%ax, %ds
	lgdtl	tramp_gdt_desc - trampoline_start
	movl	%cr0, %eax
	orl	$X86_CR0_PE, %eax
	movl	%eax, %cr0
	ljmpl	$GDT_KERNEL_CS32, $ap_entry32

	.balign	8
tramp_gdt_desc:
	.word	GDT_SIZE - 1
	.long	gdt
trampoline_end:

	.text
	.code32
ap_entry32:
	movl	$GDT_KERNEL_DS, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	ENTER_LONG_MODE
	ljmp	$GDT_KERNEL_CS, $ap_start64

	.code64
ap_start64:
	lidt	idt_desc
	movl	$1, %eax
	lock xaddl %eax, smp_ap_count	/* eax = this AP's index */
	cmpl	$AP_MAX, %eax
	jae	ap_park
	incl	%eax
	imull	$AP_STACK_SIZE, %eax
	addq	$ap_stacks, %rax
	movq	%rax, %rsp
ap_park:
	cli
	hlt
	jmp	ap_park

	.section .stack, "aw", @nobits
	.balign	16
ap_stacks:
	.space	AP_MAX * AP_STACK_SIZE
