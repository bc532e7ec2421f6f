// SPDX-License-Identifier: MIT
/*
 * Platform tables and the boot vCPU (vmm/boot/): MP table, e820, and the
 * register state boot_setup_bsp() gives a real vCPU (skipped without a usable
 * /dev/kvm): a few guest instructions report what they see.
 */
#include "tests/unit/boot_test_util.h"
#include "vmm/kvm_ops.h"

/* ---- MP table ------------------------------------------------------------ */

static uint8_t sum8(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s += *p++;
	return s;
}

static void check_mptable(int ncpus)
{
	const uint8_t *mpf = gpa(PLAT_MPTABLE_ADDR), *mpc, *p, *end;
	int cpus = 0, buses = 0, ioapics = 0, intsrc = 0, lint = 0, count = 0;
	bool irq_seen[16] = { 0 };

	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(sum8(mpf, 16), 0);
	assert_int_equal(mpf[8], 1);		/* length in paragraphs */
	assert_int_equal(mpf[9], 4);		/* spec 1.4 */
	assert_int_equal(rd32(mpf + 4), PLAT_MPTABLE_ADDR + 16);
	mpc = gpa(rd32(mpf + 4));
	assert_memory_equal(mpc, "PCMP", 4);
	assert_int_equal(sum8(mpc, rd16(mpc + 4)), 0);
	assert_int_equal(mpc[6], 4);
	assert_int_equal(rd32(mpc + 36), 0xfee00000);
	assert_true(rd32(mpf + 4) + rd16(mpc + 4) <= PLAT_BIOS_END);

	end = mpc + rd16(mpc + 4);
	for (p = mpc + 44; p < end; count++) {
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], cpus);			/* APIC id */
			assert_int_equal(p[3], cpus == 0 ? 3 : 1);	/* EN, BP on CPU 0 */
			cpus++;
			p += 20;
			break;
		case 1:
			assert_memory_equal(p + 2, "ISA   ", 6);
			buses++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], ncpus);
			assert_int_equal(p[2], 0x11);
			assert_int_equal(p[3] & 1, 1);
			assert_int_equal(rd32(p + 4), 0xfec00000);
			ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(p[1], 0);		/* INT */
			assert_int_equal(p[6], ncpus);		/* to our IOAPIC */
			assert_true(p[5] < 16);
			assert_false(irq_seen[p[5]]);
			irq_seen[p[5]] = true;
			assert_int_equal(p[7], p[5] == 0 ? 2 : p[5]);
			intsrc++;
			p += 8;
			break;
		case 4:
			assert_int_equal(p[1], lint == 0 ? 3 : 1);	/* ExtINT, then NMI */
			assert_int_equal(p[6], 0xff);
			assert_int_equal(p[7], lint);			/* LINT0, LINT1 */
			lint++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(cpus, ncpus);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(intsrc, 15);
	assert_false(irq_seen[2]);	/* cascade: pin 2 belongs to IRQ0 */
	assert_int_equal(lint, 2);
	assert_int_equal(count, rd16(mpc + 34));
	assert_int_equal(count, ncpus + 19);
}

static void test_mptable(void **state)
{
	static const int sizes[] = { 1, 4, 64, MPTABLE_MAX_CPUS };

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		memset(gpa(PLAT_MPTABLE_ADDR), 0, PLAT_BIOS_END - PLAT_MPTABLE_ADDR);
		assert_int_equal(mptable_write(&mem, sizes[i]), 0);
		check_mptable(sizes[i]);
	}
	assert_error(mptable_write(&mem, MPTABLE_MAX_CPUS + 1), "255 CPUs requested, supported 1..254");
	assert_error(mptable_write(&mem, 0), "0 CPUs requested");
	assert_error(mptable_write(&mem, -3), "-3 CPUs requested");
}

/* ---- e820 ------------------------------------------------------------------ */

static void test_e820_small(void **state)
{
	struct e820_entry_le ents[8];

	assert_int_equal(e820_build(&mem, ents, 8), 3);
	check_e820_small((const uint8_t *)ents, 3);

	/* Too little room: the count still says how many are needed. */
	memset(ents, 0xab, sizeof(ents));
	assert_int_equal(e820_build(&mem, ents, 2), 3);
	assert_int_equal(ents[1].type, 2);
	assert_int_equal(ents[2].type, 0xabababab);
}

static void test_e820_large(void **state)
{
	struct guest_mem big;
	struct e820_entry_le ents[8];

	assert_int_equal(guest_mem_init(&big, 5 * GiB), 0);
	assert_int_equal(e820_build(&big, ents, 8), 4);
	assert_int_equal(ents[0].addr, 0);
	assert_int_equal(ents[0].size, 0x9fc00);
	assert_int_equal(ents[0].type, 1);
	assert_int_equal(ents[1].addr, 0x9fc00);
	assert_int_equal(ents[1].size, 0x100000 - 0x9fc00);
	assert_int_equal(ents[1].type, 2);
	assert_int_equal(ents[2].addr, 0x100000);
	assert_int_equal(ents[2].size, PLAT_MMIO_HOLE_START - 0x100000);	/* stops at 3 GiB */
	assert_int_equal(ents[2].type, 1);
	assert_int_equal(ents[3].addr, 4 * GiB);
	assert_int_equal(ents[3].size, 5 * GiB - PLAT_MMIO_HOLE_START);
	assert_int_equal(ents[3].type, 1);
	guest_mem_destroy(&big);
}

/* ---- the boot vCPU, on real KVM ---------------------------------------- */

struct kvm_vm { int kvm, vm, vcpu; struct kvm_run *run; long run_size; };

static bool kvm_open_vm(struct kvm_vm *v)
{
	struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[256]; } cpuid = { .c.nent = 256 };

	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0)
		return false;
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	assert_true(v->vm >= 0);
	ioctl(v->vm, KVM_SET_TSS_ADDR, 0xfffbd000);	/* VMX wants it; harmless elsewhere */
	assert_int_equal(guest_mem_register(&mem, &kvm_host_ops, v->vm), 0);
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	assert_true(v->vcpu >= 0);
	assert_int_equal(ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, &cpuid), 0);
	assert_int_equal(ioctl(v->vcpu, KVM_SET_CPUID2, &cpuid), 0);
	v->run_size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	assert_true(v->run != MAP_FAILED);
	return true;
}

static void kvm_close_vm(struct kvm_vm *v)
{
	munmap(v->run, v->run_size);
	close(v->vcpu);
	close(v->vm);
	close(v->kvm);
}

/* Run to the next `out %eax, $0xf4` and return eax. */
static uint32_t kvm_run_to_out(struct kvm_vm *v)
{
	uint32_t val;

	assert_int_equal(ioctl(v->vcpu, KVM_RUN, 0), 0);
	if (v->run->exit_reason != KVM_EXIT_IO) {
		struct kvm_regs regs;

		ioctl(v->vcpu, KVM_GET_REGS, &regs);
		fail_msg("exit reason %u at rip 0x%llx", v->run->exit_reason, regs.rip);
	}
	assert_int_equal(v->run->io.port, PLAT_EXIT_PORT);
	assert_int_equal(v->run->io.direction, KVM_EXIT_IO_OUT);
	assert_int_equal(v->run->io.size, 4);
	memcpy(&val, (uint8_t *)v->run + v->run->io.data_offset, 4);
	return val;
}

/* Code at ELF_TEXT_GPA, entered by both protocols. */
static const uint8_t guest_code64[] = {
	0x48, 0x89, 0xf0,			/* mov %rsi, %rax */
	0xe7, 0xf4,				/* out %eax, $0xf4 */
	0x0f, 0xb6, 0x86, 0xe8, 0x01, 0, 0,	/* movzbl 0x1e8(%rsi), %eax: e820_entries */
	0x50, 0x59,				/* push %rax; pop %rcx: the stack works */
	0x89, 0xc8,				/* mov %ecx, %eax */
	0xe7, 0xf4,				/* out %eax, $0xf4 */
	0xd9, 0x3c, 0x24,			/* fnstcw (%rsp) */
	0x0f, 0xb7, 0x04, 0x24,			/* movzwl (%rsp), %eax */
	0xe7, 0xf4,				/* out %eax, $0xf4 */
	0xf4,					/* hlt */
};
static const uint8_t guest_code32[] = {	/* at the PVH entry */
	0x89, 0xd8,				/* mov %ebx, %eax */
	0xe7, 0xf4,				/* out %eax, $0xf4 */
	0x8b, 0x03,				/* mov (%ebx), %eax: start_info magic */
	0xe7, 0xf4,				/* out %eax, $0xf4 */
	0xf4,					/* hlt */
};

static void boot_guest(enum boot_proto proto, struct kvm_vm *v, struct boot_entry *e)
{
	struct elf_img im;
	struct boot_request req = { .ncpus = 1, .proto = proto };

	make_elf(&im, true);
	memcpy(im.b + ELF_TEXT_OFF, guest_code64, sizeof(guest_code64));
	memcpy(im.b + ELF_TEXT_OFF + ELF_PVH_ENTRY - ELF_TEXT_GPA, guest_code32, sizeof(guest_code32));
	req.kernel_path = write_tmp("guest.elf", im.b, im.len);
	assert_int_equal(boot_load(&mem, &req, e), 0);
	assert_int_equal(boot_setup_bsp(v->vcpu, &mem, e), 0);
}

static void test_bsp_long_mode(void **state)
{
	struct kvm_vm v;
	struct boot_entry e;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	const uint64_t *pd;

	if (!kvm_open_vm(&v))
		skip();
	/* Not the reset value: boot_setup_bsp() must put the x87 default back. */
	assert_int_equal(ioctl(v.vcpu, KVM_SET_FPU, &(struct kvm_fpu){ .fcw = 0x27f }), 0);
	boot_guest(BOOT_AUTO, &v, &e);

	/* Identity map of 4 GiB in 2 MiB pages. */
	pd = (const uint64_t *)gpa(PLAT_PML4_ADDR + 2 * 4096);
	assert_int_equal(rd64(gpa(PLAT_PML4_ADDR)), (PLAT_PML4_ADDR + 4096) | 3);
	assert_int_equal(rd64(gpa(PLAT_PML4_ADDR + 4096 + 3 * 8)), (PLAT_PML4_ADDR + 5 * 4096) | 3);
	assert_int_equal(pd[0], 0x83);
	assert_int_equal(pd[2047], (2047ULL << 21) | 0x83);
	assert_int_equal(rd64(gpa(PLAT_GDT_ADDR + 0x10)), 0x00af9b000000ffffULL);
	assert_int_equal(rd64(gpa(PLAT_GDT_ADDR + 0x18)), 0x00cf93000000ffffULL);

	assert_int_equal(ioctl(v.vcpu, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, ELF_TEXT_GPA);
	assert_int_equal(regs.rsp, PLAT_BOOT_STACK);
	assert_int_equal(regs.rflags, 2);
	assert_int_equal(ioctl(v.vcpu, KVM_GET_SREGS, &sregs), 0);
	assert_int_equal(sregs.cr3, PLAT_PML4_ADDR);
	assert_int_equal(sregs.cr0, 0x80010033);
	assert_int_equal(sregs.cr4, 0x620);
	assert_int_equal(sregs.efer & 0x500, 0x500);
	assert_int_equal(sregs.cs.selector, 0x10);
	assert_int_equal(sregs.cs.l, 1);

	assert_int_equal(kvm_run_to_out(&v), PLAT_ZERO_PAGE_ADDR);	/* rsi */
	assert_int_equal(kvm_run_to_out(&v), 3);			/* through paging */
	/* x87 control word as the guest sees it (PVM hosts keep the reset value anyway). */
	assert_int_equal(kvm_run_to_out(&v), 0x37f);
	kvm_close_vm(&v);
}

static void test_bsp_pvh(void **state)
{
	struct kvm_vm v;
	struct boot_entry e;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	if (!kvm_open_vm(&v))
		skip();
	boot_guest(BOOT_PVH, &v, &e);
	assert_int_equal(e.entry, ELF_PVH_ENTRY);
	assert_int_equal(rd64(gpa(PLAT_GDT_ADDR + 0x10)), 0x00cf9b000000ffffULL);

	assert_int_equal(ioctl(v.vcpu, KVM_GET_REGS, &regs), 0);
	assert_int_equal(regs.rip, ELF_PVH_ENTRY);
	assert_int_equal(regs.rflags, 2);
	assert_int_equal(ioctl(v.vcpu, KVM_GET_SREGS, &sregs), 0);
	assert_int_equal(sregs.cr0, 0x11);
	assert_int_equal(sregs.efer & 0x500, 0);
	assert_int_equal(sregs.cs.db, 1);
	assert_int_equal(sregs.cs.limit, 0xffffffff);

	assert_int_equal(kvm_run_to_out(&v), PLAT_PVH_INFO_ADDR);	/* ebx */
	assert_int_equal(kvm_run_to_out(&v), 0x336ec578);
	kvm_close_vm(&v);
}

static void test_bsp_unresolved(void **state)
{
	struct boot_entry e = { .proto = BOOT_AUTO };

	assert_error(boot_setup_bsp(-1, &mem, &e), "not resolved");
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_mptable),
		T(test_e820_small),
		T(test_e820_large),
		T(test_bsp_long_mode),
		T(test_bsp_pvh),
		T(test_bsp_unresolved),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
