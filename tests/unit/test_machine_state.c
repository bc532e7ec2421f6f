// SPDX-License-Identifier: MIT
/*
 * vCPU and VM state (vmm/machine_state.c) against a fake KVM: a source VM
 * whose every piece holds distinct bytes is saved and loaded into a blank
 * destination, which must receive every piece byte for byte, in the order
 * that works on a real host (CPUID before XCRS/SREGS, irqchip before LAPIC,
 * clock last).  Truncated or corrupt input is refused before a single SET
 * reaches KVM.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "migration/state.h"
#include "vmm/kvm_ops.h"
#include "vmm/machine_state.h"
#include "vmm/util.h"

#include "tests/unit/fake_kvm.h"

static const struct machine_kvm mk = {
	.kvm = &fake_kvm, .kvm_fd = KVM_FD, .vm_fd = VM_FD,
	.nr_vcpus = NR_VCPUS, .vcpu_fds = vcpu_fds,
};

static struct state_buf saved;

static int setup(void **state)
{
	srand(42);
	fake_reset(&src);
	fake_reset(&dst);
	make_source();
	cur = &src;
	state_init_writer(&saved);
	assert_int_equal(machine_state_save(&mk, &saved), 0);
	assert_int_equal(src.nr_log, 0);	/* saving sets nothing */
	cur = &dst;
	return 0;
}

static int teardown(void **state)
{
	state_free(&saved);
	fake_reset(&src);
	fake_reset(&dst);
	return 0;
}

static int load(const void *data, size_t len)
{
	struct state_buf sb;

	state_init_reader(&sb, data, len);
	return machine_state_load(&mk, &sb);
}

static void test_every_piece_restored_byte_identical(void **state)
{
	assert_int_equal(load(saved.data, saved.len), 0);
	for (int fd = VM_FD; fd < NR_FDS; fd++) {
		for (int s = 0; s < NR_SLOTS; s++) {
			if (s == S_MSRS || s == S_TSC)
				continue;
			if (!src.store[fd][s])
				continue;
			assert_non_null(dst.store[fd][s]);
			assert_int_equal(dst.len[fd][s], src.len[fd][s]);
			assert_memory_equal(dst.store[fd][s], src.store[fd][s], src.len[fd][s]);
		}
	}
	/* CPUID, XSAVE (both pieces of variable size) were really there */
	assert_int_equal(dst.len[VCPU_FD0][S_XSAVE], XSAVE_SIZE);
	assert_int_equal(dst.len[VCPU_FD0 + 1][S_CPUID],
			 sizeof(struct kvm_cpuid2) + 3 * sizeof(struct kvm_cpuid_entry2));
}

static void test_msrs_index_list_plus_explicit_ones(void **state)
{
	assert_int_equal(load(saved.data, saved.len), 0);
	for (int v = 0; v < NR_VCPUS; v++) {
		int fd = VCPU_FD0 + v;
		struct kvm_msrs *m = (struct kvm_msrs *)dst.store[fd][S_MSRS];
		bool seen_efer = false, seen_lstar = false;
		int apic_base = 0;

		assert_non_null(m);
		assert_true(m->nmsrs > ARRAY_SIZE(index_list));
		for (uint32_t i = 0; i < m->nmsrs; i++) {
			assert_int_equal(m->entries[i].data, msr_value(fd, m->entries[i].index));
			assert_int_not_equal(m->entries[i].index, UNREADABLE_MSR);
			seen_efer |= m->entries[i].index == 0xc0000080;
			seen_lstar |= m->entries[i].index == 0xc0000081;
			apic_base += m->entries[i].index == 0x1b;
		}
		assert_true(seen_efer);		/* explicit */
		assert_true(seen_lstar);	/* from KVM's list */
		assert_int_equal(apic_base, 1);	/* in both: once */
	}
	assert_int_equal(*(uint32_t *)dst.store[VCPU_FD0 + 1][S_TSC], 2500000 + VCPU_FD0 + 1);
}

static int log_pos(int fd, unsigned long req, int nth)
{
	for (int i = 0; i < dst.nr_log; i++)
		if (dst.log[i].fd == fd && dst.log[i].req == req && nth-- == 0)
			return i;
	fail_msg("request %#lx on fd %d never issued", req, fd);
	return -1;
}

static void test_restore_order(void **state)
{
	static const unsigned long vcpu_order[] = {
		KVM_SET_CPUID2, KVM_SET_TSC_KHZ, KVM_SET_LAPIC, KVM_SET_REGS, KVM_SET_XSAVE,
		KVM_SET_XCRS, KVM_SET_SREGS2, KVM_SET_MSRS, KVM_SET_VCPU_EVENTS,
		KVM_SET_MP_STATE, KVM_SET_DEBUGREGS,
	};

	assert_int_equal(load(saved.data, saved.len), 0);
	assert_int_equal(dst.nr_log, NR_VCPUS * ARRAY_SIZE(vcpu_order) + 5);
	for (int v = 0; v < NR_VCPUS; v++) {
		int fd = VCPU_FD0 + v;

		for (size_t i = 1; i < ARRAY_SIZE(vcpu_order); i++)
			assert_true(log_pos(fd, vcpu_order[i - 1], 0) < log_pos(fd, vcpu_order[i], 0));
		/* the in-kernel irqchip and PIT are there before any LAPIC */
		assert_true(log_pos(VM_FD, KVM_SET_PIT2, 0) < log_pos(fd, KVM_SET_LAPIC, 0));
		assert_true(log_pos(VM_FD, KVM_SET_IRQCHIP, 2) < log_pos(fd, KVM_SET_LAPIC, 0));
		assert_true(log_pos(fd, KVM_SET_DEBUGREGS, 0) < log_pos(VM_FD, KVM_SET_CLOCK, 0));
	}
	assert_int_equal(dst.log[dst.nr_log - 1].req, KVM_SET_CLOCK);
}

static void test_truncated_stream_refused_before_anything_applied(void **state)
{
	for (size_t len = 0; len < saved.len; len += (len < 64 || saved.len - len < 64) ? 1 : 61) {
		assert_int_equal(load(saved.data, len), -EINVAL);
		assert_int_equal(dst.nr_log, 0);
	}
}

static void expect_refused(uint8_t *copy, size_t len)
{
	assert_int_equal(load(copy, len), -EINVAL);
	assert_int_equal(dst.nr_log, 0);
	free(copy);
}

static uint8_t *dup_saved(void)
{
	uint8_t *p = malloc(saved.len);

	memcpy(p, saved.data, saved.len);
	return p;
}

/* Offset of the n-th piece section with this tag (after the 16-byte header). */
static size_t find_tag(const uint8_t *p, size_t len, const char *tag, int nth)
{
	size_t off = 16;

	while (off + 8 <= len) {
		uint32_t l;

		memcpy(&l, p + off + 4, 4);
		if (!memcmp(p + off, tag, 4) && nth-- == 0)
			return off;
		off += 8 + l;
	}
	fail_msg("no %s", tag);
	return 0;
}

static void test_corrupt_sections_refused(void **state)
{
	uint8_t *p;
	size_t off;
	uint32_t v;

	/* wrong outer tag */
	p = dup_saved(); p[0] ^= 1; expect_refused(p, saved.len);
	/* unknown version */
	p = dup_saved(); p[8] = 9; expect_refused(p, saved.len);
	/* another vCPU count */
	p = dup_saved(); p[12] = 3; expect_refused(p, saved.len);
	/* a piece under the wrong tag */
	p = dup_saved(); off = find_tag(p, saved.len, "REGS", 1); p[off] = 'X';
	expect_refused(p, saved.len);
	/* CPUID entry count disagreeing with its length */
	p = dup_saved(); off = find_tag(p, saved.len, "CPID", 0);
	v = 4; memcpy(p + off + 8, &v, 4); expect_refused(p, saved.len);
	/* MSR count beyond its length */
	p = dup_saved(); off = find_tag(p, saved.len, "MSRS", 1);
	v = 1000; memcpy(p + off + 8, &v, 4); expect_refused(p, saved.len);
	/* irqchip id swapped */
	p = dup_saved(); off = find_tag(p, saved.len, "PIC1", 0);
	v = 0; memcpy(p + off + 8, &v, 4); expect_refused(p, saved.len);
	/* XCRS count beyond the array */
	p = dup_saved(); off = find_tag(p, saved.len, "XCRS", 0);
	v = 17; memcpy(p + off + 8, &v, 4); expect_refused(p, saved.len);
	/* a fixed-size piece claiming another size */
	p = dup_saved(); off = find_tag(p, saved.len, "LAPC", 0);
	v = 100; memcpy(p + off + 4, &v, 4); expect_refused(p, saved.len);
	/* trailing garbage inside the section */
	p = malloc(saved.len + 4);
	memcpy(p, saved.data, saved.len);
	memcpy(&v, p + 4, 4); v += 4; memcpy(p + 4, &v, 4);
	expect_refused(p, saved.len + 4);
}

static void test_xsave_larger_than_destination_refused(void **state)
{
	dst.xsave2 = 0;		/* destination KVM: legacy 4 KiB area */
	assert_int_equal(load(saved.data, saved.len), -EINVAL);
	assert_int_equal(dst.nr_log, 0);
}

static void test_kvm_refusal_reported(void **state)
{
	dst.fail_req = KVM_SET_XCRS;
	assert_int_equal(load(saved.data, saved.len), -EINVAL);
	assert_null(dst.store[VCPU_FD0][S_SREGS2]);	/* stopped there */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_every_piece_restored_byte_identical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msrs_index_list_plus_explicit_ones, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_stream_refused_before_anything_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_sections_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_xsave_larger_than_destination_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kvm_refusal_reported, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
