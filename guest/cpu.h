/* SPDX-License-Identifier: MIT */
/*
 * Ring-0 services: the IDT (filled from ring 3 at start-up), exception
 * reports, and the `int $3` calls through which ring-3 code asks for the
 * few privileged operations it needs.
 */
#ifndef HDGUEST_CPU_H
#define HDGUEST_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include "guest/asm.h"

struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error;
	uint64_t rip, cs, rflags, rsp, ss;	/* pushed by the CPU */
};

enum syscall_nr {
	SYS_IDLE,	/* sti; hlt forever: an idle vCPU costs the host nothing */
	SYS_HALT,	/* cli; hlt forever: parked after power-off was requested */
	SYS_INVLPG,	/* flush the TLB entry of one page (after a page-table edit) */
	SYS_WAIT,	/* sti; hlt; cli: sleep until the next interrupt, then return */
	SYS_COUNT
};

/* Physical memory our page tables map (identity): 4 KiB .. 4 GiB. */
#define PHYS_MAPPED_START	0x1000ULL
#define PHYS_MAPPED_END		0x100000000ULL

static inline bool phys_mapped(uint64_t addr, uint64_t len)
{
	return addr >= PHYS_MAPPED_START && addr < PHYS_MAPPED_END &&
	       len <= PHYS_MAPPED_END - addr;
}

/*
 * Copy len bytes of guest-physical memory that may start in page 0 (which
 * is left unmapped so NULL dereferences fault): page 0 is mapped read-only
 * for the copy and unmapped again.  False if the range is not below 4 GiB.
 */
bool phys_copy(void *dst, uint64_t addr, uint64_t len);

/* Identity-map the first GiB above the MMIO hole (4..5 GiB); returns its start. */
#define HIGHMEM_WINDOW_SIZE	(1ULL << 30)
void *highmem_map(void);

void idt_init(void);
void pic_mask_all(void);
/* Interrupts (vectors 0x20..0xfe) that arrived and were ignored. */
extern volatile uint64_t irq_ignored_count;

static inline long syscall1(long nr, long a0)
{
	register long rsi asm("rsi") = 0;
	long ret;

	asm volatile("int %[vec]"
		     : "=a"(ret), "+D"(a0), "+S"(rsi)
		     : "a"(nr), [vec] "i"(VEC_SYSCALL)
		     : "rcx", "rdx", "r8", "r9", "r10", "r11", "memory");
	return ret;
}

/* Power off with status (0..255); never returns. */
void __attribute__((noreturn)) hd_exit(int status);

#endif
