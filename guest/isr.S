/* SPDX-License-Identifier: MIT */
/*
 * Interrupt entry stubs (ring 0).  Exceptions build a struct trap_frame and
 * report the crash; external interrupts are acknowledged and ignored; `int $3`
 * is the ring-3 way into cpu.c (asm.h says why).  Kept short: ring 0 is emulated.
 */
#include "guest/asm.h"
#include "devices/platform.h"

/* CPU pushes an error code for these vectors */
#define HAS_ERR(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || \
		    (v) == 21 || (v) == 29 || (v) == 30)

	.text
	.code64
	.altmacro

	.macro	EXCEPTION_STUB vec
	.balign	16
exc_\vec:
	.if	HAS_ERR(\vec) == 0
	pushq	$0
	.endif
	pushq	$\vec
	jmp	exception_common
	.endm

	.macro	EXCEPTION_STUB_ADDR vec
	.quad	exc_\vec
	.endm

	.set	v, 0
	.rept	32
	EXCEPTION_STUB %v
	.set	v, v + 1
	.endr

exception_common:
	pushq	%rax
	pushq	%rbx
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%rbp
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	cld
	movq	%rsp, %rdi
	call	exception_report	/* does not return */
1:	cli
	hlt
	jmp	1b

/* Vectors 0x20..0xfe: an interrupt nobody asked for; EOI and carry on. */
	.globl	irq_ignore
irq_ignore:
	pushq	%rax
	lock incq irq_ignored_count
	movl	$(PLAT_LAPIC_ADDR + 0xb0), %eax
	movl	$0, (%rax)
	popq	%rax
	iretq

/* A wake-up (net/net_idle.c): the work happens after SYS_WAIT returns. */
	.globl	irq_wake
irq_wake:
	pushq	%rax
	movl	$(PLAT_LAPIC_ADDR + 0xb0), %eax
	movl	$0, (%rax)
	popq	%rax
	iretq

/* Spurious LAPIC interrupts must not be EOIed. */
	.globl	irq_spurious
irq_spurious:
	iretq

/*
 * `int $3` from ring 3 (a DPL-3 gate): rax = number, rdi/rsi = arguments,
 * result in rax.  The caller treats rcx, rdx, rsi, rdi and r8-r11 as
 * clobbered, so only the stack needs aligning for the C call.
 */
	.globl	syscall_entry
syscall_entry:
	pushq	%rbp
	movq	%rsp, %rbp
	andq	$-16, %rsp
	cld
	movq	%rsi, %rdx
	movq	%rdi, %rsi
	movq	%rax, %rdi
	call	syscall_dispatch
	movq	%rbp, %rsp
	popq	%rbp
	iretq

	.section .rodata
	.balign	8
	.globl	exception_stubs
exception_stubs:
	.set	v, 0
	.rept	32
	EXCEPTION_STUB_ADDR %v
	.set	v, v + 1
	.endr
