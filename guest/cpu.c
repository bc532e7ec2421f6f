// SPDX-License-Identifier: MIT
/*
 * IDT, exception reports and the syscall table.
 *
 * idt_init() and pic_mask_all() run in ring 3 at start-up (the IDT is plain
 * memory mapped with the user bit; only lidt, done in head.S, is privileged).
 * exception_report() and the syscalls run in ring 0, where every instruction
 * is emulated on the build hosts: keep them short.
 */
#include <stdint.h>
#include "devices/platform.h"
#include "guest/console.h"
#include "guest/cpu.h"
#include "guest/io.h"

struct idt_gate {
	uint16_t offset_lo;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_hi;
	uint32_t reserved;
} __attribute__((packed));

#define GATE_INTERRUPT_DPL0	0x8e
#define GATE_INTERRUPT_DPL3	0xee

/* 8259 PIC data (mask) ports */
#define PIC_MASTER_DATA		0x21
#define PIC_SLAVE_DATA		0xa1

struct idt_gate idt[256] __attribute__((aligned(16)));
volatile uint64_t irq_ignored_count;

extern const uint64_t exception_stubs[32];
void irq_ignore(void);
void irq_spurious(void);
void irq_wake(void);
void syscall_entry(void);

static void idt_set(int vec, uint64_t handler, uint8_t type_attr)
{
	idt[vec] = (struct idt_gate){
		.offset_lo = handler & 0xffff,
		.selector = GDT_KERNEL_CS,
		.type_attr = type_attr,
		.offset_mid = (handler >> 16) & 0xffff,
		.offset_hi = handler >> 32,
	};
}

void idt_init(void)
{
	int vec;

	for (vec = 0; vec < 32; vec++)
		idt_set(vec, exception_stubs[vec], GATE_INTERRUPT_DPL0);
	for (; vec < 256; vec++)
		idt_set(vec, (uint64_t)irq_ignore, GATE_INTERRUPT_DPL0);
	idt_set(VEC_SPURIOUS, (uint64_t)irq_spurious, GATE_INTERRUPT_DPL0);
	idt_set(VEC_NET_RX, (uint64_t)irq_wake, GATE_INTERRUPT_DPL0);
	idt_set(VEC_TIMER, (uint64_t)irq_wake, GATE_INTERRUPT_DPL0);
	idt_set(VEC_SYSCALL, (uint64_t)syscall_entry, GATE_INTERRUPT_DPL3);
}

void pic_mask_all(void)
{
	outb(0xff, PIC_MASTER_DATA);
	outb(0xff, PIC_SLAVE_DATA);
}

static const char *const exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM",
	"#DF", "CSO", "#TS", "#NP", "#SS", "#GP", "#PF", "RSV",
	"#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "RSV", "RSV",
	"RSV", "RSV", "RSV", "RSV", "#HV", "#VC", "#SX", "RSV",
};

static void __attribute__((noreturn)) halt_forever(void)
{
	for (;;)
		asm volatile("cli; hlt" ::: "memory");
}

/* Ring 0: a crashing guest must be visible, so print and power off with 3. */
void __attribute__((noreturn)) exception_report(const struct trap_frame *f)
{
	uint64_t cr2;

	asm volatile("mov %%cr2, %0" : "=r"(cr2));
	printf("hdguest: exception %lu (%s) err=0x%lx rip=0x%lx cs=0x%lx rflags=0x%lx rsp=0x%lx cr2=0x%lx\n",
	       f->vector, exception_names[f->vector & 31], f->error, f->rip, f->cs,
	       f->rflags, f->rsp, cr2);
	printf("hdguest: rax=%lx rbx=%lx rcx=%lx rdx=%lx rsi=%lx rdi=%lx rbp=%lx\n",
	       f->rax, f->rbx, f->rcx, f->rdx, f->rsi, f->rdi, f->rbp);
	outl(3, PLAT_EXIT_PORT);
	halt_forever();
}

static long sys_idle(long arg)
{
	(void)arg;
	for (;;)
		asm volatile("sti; hlt" ::: "memory");
	return 0;
}

/*
 * The caller armed its wake-up sources with interrupts off (ring 3 runs
 * with IF=0), so one that fired meanwhile is pending in the LAPIC and is
 * taken right after hlt starts (sti's one-instruction shadow): no lost wake-up.
 */
static long sys_wait(long arg)
{
	(void)arg;
	asm volatile("sti; hlt; cli" ::: "memory");
	return 0;
}

static long sys_halt(long arg)
{
	(void)arg;
	halt_forever();
}

static long sys_invlpg(long addr)
{
	asm volatile("invlpg (%0)" : : "r"(addr) : "memory");
	return 0;
}

static long (*const syscalls[SYS_COUNT])(long arg) = {
	[SYS_IDLE] = sys_idle,
	[SYS_HALT] = sys_halt,
	[SYS_INVLPG] = sys_invlpg,
	[SYS_WAIT] = sys_wait,
};

/* Ring 0, called from syscall_entry. */
long syscall_dispatch(unsigned long nr, long a0, long a1)
{
	(void)a1;
	if (nr >= SYS_COUNT)
		return -1;
	return syscalls[nr](a0);
}

void hd_exit(int status)
{
	outl((uint32_t)status, PLAT_EXIT_PORT);
	/* Only reached if the machine has no exit device. */
	syscall1(SYS_HALT, 0);
	for (;;)
		cpu_relax();
}
