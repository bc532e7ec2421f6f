// SPDX-License-Identifier: MIT
/*
 * The boot vCPU's first state: hdvm skips real mode (which this host's KVM can
 * only emulate instruction by instruction) and starts the kernel either
 *   - in 64-bit long mode with identity paging of the first 4 GiB (Linux
 *     64-bit boot protocol: ELF vmlinux, hdguest, bzImage), or
 *   - in flat 32-bit protected mode with paging off (PVH).
 * The GDT in guest memory matches the hidden segment state set here, so the
 * kernel can reload a selector before it installs its own GDT.  Selectors
 * 0x10/0x18 are what the Linux boot protocol calls __BOOT_CS/__BOOT_DS.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "devices/platform.h"
#include "vmm/boot/boot_internal.h"
#include "vmm/memory.h"
#include "vmm/util.h"

#define CR0_PE		(1ULL << 0)
#define CR0_MP		(1ULL << 1)
#define CR0_ET		(1ULL << 4)
#define CR0_NE		(1ULL << 5)
#define CR0_WP		(1ULL << 16)
#define CR0_PG		(1ULL << 31)
#define CR4_PAE		(1ULL << 5)
#define CR4_OSFXSR	(1ULL << 9)
#define CR4_OSXMMEXCPT	(1ULL << 10)
#define EFER_LME	(1ULL << 8)
#define EFER_LMA	(1ULL << 10)
#define RFLAGS_RESERVED	(1ULL << 1)	/* always set */

#define FPU_FCW_DEFAULT		0x37f	/* FNINIT state: all exceptions masked */
#define FPU_MXCSR_DEFAULT	0x1f80

/* GDT layout shared by both modes. */
#define BOOT_CS		0x10
#define BOOT_DS		0x18
#define GDT_ENTRIES	4

/* Descriptor flags: access byte in bits 0-7, G/DB/L/AVL nibble in bits 12-15. */
#define DESC_CODE64	0xa09b	/* G, L, present, ring 0, code execute/read accessed */
#define DESC_CODE32	0xc09b	/* G, D */
#define DESC_DATA	0xc093	/* G, B, present, ring 0, data read/write accessed */

/* Page table entry bits */
#define PTE_PRESENT	(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_LARGE	(1ULL << 7)
#define PT_ENTRIES	512
#define BOOT_PT_PDS	4	/* one page directory per GiB */
#define LARGE_PAGE	(2ULL << 20)

static uint64_t gdt_desc(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0xf0000) << 32) | ((uint64_t)(base & 0xffffff) << 16) |
	       (limit & 0xffff);
}

/* The hidden part of a segment register, decoded from its descriptor. */
static struct kvm_segment seg_from_desc(uint64_t desc, uint16_t selector)
{
	struct kvm_segment s = {
		.base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24),
		.limit = (desc & 0xffff) | (((desc >> 48) & 0xf) << 16),
		.selector = selector,
		.type = (desc >> 40) & 0xf,
		.s = (desc >> 44) & 1,
		.dpl = (desc >> 45) & 3,
		.present = (desc >> 47) & 1,
		.avl = (desc >> 52) & 1,
		.l = (desc >> 53) & 1,
		.db = (desc >> 54) & 1,
		.g = (desc >> 55) & 1,
	};

	if (s.g)
		s.limit = (s.limit << 12) | 0xfff;
	return s;
}

static int write_gdt(struct guest_mem *mem, uint16_t code_flags, struct kvm_sregs *sregs)
{
	uint64_t *gdt = gpa_to_hva(mem, PLAT_GDT_ADDR, GDT_ENTRIES * sizeof(uint64_t));
	struct kvm_segment data;

	if (!gdt) {
		pr_err("boot GDT at 0x%llx is outside guest RAM", PLAT_GDT_ADDR);
		return -EFAULT;
	}
	memset(gdt, 0, GDT_ENTRIES * sizeof(uint64_t));
	gdt[BOOT_CS / 8] = gdt_desc(code_flags, 0, 0xfffff);
	gdt[BOOT_DS / 8] = gdt_desc(DESC_DATA, 0, 0xfffff);

	sregs->gdt.base = PLAT_GDT_ADDR;
	sregs->gdt.limit = GDT_ENTRIES * sizeof(uint64_t) - 1;
	sregs->cs = seg_from_desc(gdt[BOOT_CS / 8], BOOT_CS);
	data = seg_from_desc(gdt[BOOT_DS / 8], BOOT_DS);
	sregs->ds = sregs->es = sregs->fs = sregs->gs = sregs->ss = data;
	return 0;
}

/* PML4 -> one PDPT -> four PDs of 2 MiB pages: GPA == GVA for [0, 4 GiB). */
static int write_identity_page_tables(struct guest_mem *mem)
{
	const uint64_t pml4_gpa = PLAT_PML4_ADDR, pdpt_gpa = pml4_gpa + BOOT_PAGE_SIZE;
	const uint64_t pd_gpa = pdpt_gpa + BOOT_PAGE_SIZE;
	uint64_t *pml4 = gpa_to_hva(mem, pml4_gpa, (2 + BOOT_PT_PDS) * BOOT_PAGE_SIZE);
	uint64_t *pdpt = pml4 + PT_ENTRIES, *pd = pdpt + PT_ENTRIES;

	if (!pml4) {
		pr_err("boot page tables at 0x%llx are outside guest RAM", PLAT_PML4_ADDR);
		return -EFAULT;
	}
	memset(pml4, 0, 2 * BOOT_PAGE_SIZE);
	pml4[0] = pdpt_gpa | PTE_PRESENT | PTE_RW;
	for (int i = 0; i < BOOT_PT_PDS; i++)
		pdpt[i] = (pd_gpa + i * BOOT_PAGE_SIZE) | PTE_PRESENT | PTE_RW;
	for (uint64_t i = 0; i < BOOT_PT_PDS * PT_ENTRIES; i++)
		pd[i] = i * LARGE_PAGE | PTE_PRESENT | PTE_RW | PTE_LARGE;
	return 0;
}

static int set_fpu_defaults(int vcpu_fd)
{
	struct kvm_fpu fpu = { .fcw = FPU_FCW_DEFAULT, .mxcsr = FPU_MXCSR_DEFAULT };

	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0) {
		int err = -errno;

		pr_err("KVM_SET_FPU: %s", strerror(-err));
		return err;
	}
	return 0;
}

static int get_sregs(int vcpu_fd, struct kvm_sregs *sregs)
{
	if (ioctl(vcpu_fd, KVM_GET_SREGS, sregs) < 0) {
		int err = -errno;

		pr_err("KVM_GET_SREGS: %s", strerror(-err));
		return err;
	}
	return 0;
}

static int set_state(int vcpu_fd, const struct kvm_sregs *sregs, const struct kvm_regs *regs)
{
	if (ioctl(vcpu_fd, KVM_SET_SREGS, sregs) < 0) {
		int err = -errno;

		pr_err("KVM_SET_SREGS: %s", strerror(-err));
		return err;
	}
	if (ioctl(vcpu_fd, KVM_SET_REGS, regs) < 0) {
		int err = -errno;

		pr_err("KVM_SET_REGS: %s", strerror(-err));
		return err;
	}
	return set_fpu_defaults(vcpu_fd);
}

int cpu_setup_long_mode(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rflags = RFLAGS_RESERVED,
		.rip = e->entry,
		.rsi = e->boot_info,
		.rsp = PLAT_BOOT_STACK,
	};
	int err;

	err = get_sregs(vcpu_fd, &sregs);
	if (!err)
		err = write_identity_page_tables(mem);
	if (!err)
		err = write_gdt(mem, DESC_CODE64, &sregs);
	if (err)
		return err;
	sregs.cr3 = PLAT_PML4_ADDR;
	sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sregs.efer = EFER_LME | EFER_LMA;
	return set_state(vcpu_fd, &sregs, &regs);
}

int cpu_setup_protected_mode(int vcpu_fd, struct guest_mem *mem, const struct boot_entry *e)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rflags = RFLAGS_RESERVED,
		.rip = e->entry,
		.rbx = e->boot_info,
		.rsp = PLAT_BOOT_STACK,
	};
	int err;

	err = get_sregs(vcpu_fd, &sregs);
	if (!err)
		err = write_gdt(mem, DESC_CODE32, &sregs);
	if (err)
		return err;
	sregs.cr0 = CR0_PE | CR0_ET;
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;
	return set_state(vcpu_fd, &sregs, &regs);
}
