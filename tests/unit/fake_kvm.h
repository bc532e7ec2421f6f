/* SPDX-License-Identifier: MIT */
/*
 * A fake KVM for unit tests (this machine has no /dev/kvm): it keeps, per fd,
 * the bytes of every piece of vCPU and VM state, hands them out on GET,
 * stores what SET gives it and logs every SET in order.  make_source() fills
 * a "source" with distinct random bytes (with sane headers); a test saves from
 * it and loads into a blank "destination", then compares.  `cur` selects
 * which fake the ioctls go to.
 */
#ifndef HDVM_TEST_FAKE_KVM_H
#define HDVM_TEST_FAKE_KVM_H

#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/kvm_ops.h"
#include "vmm/util.h"

#define KVM_FD		3
#define VM_FD		4
#define VCPU_FD0	10
#define NR_VCPUS	2
#define NR_FDS		(VCPU_FD0 + NR_VCPUS)
#define XSAVE_SIZE	8192
#define UNREADABLE_MSR	0x48	/* SPEC_CTRL: this fake host cannot read it */

enum slot { S_CPUID, S_TSC, S_PIT, S_PIC0, S_PIC1, S_IOAPIC, S_LAPIC, S_REGS, S_XSAVE,
	    S_XCRS, S_SREGS2, S_MSRS, S_EVENTS, S_MP, S_DREGS, S_CLOCK, NR_SLOTS };

static const uint32_t index_list[] = { 0x10, 0x174, 0xc0000081, 0x4b564d00, 0x1b };

struct fake {
	uint8_t *store[NR_FDS][NR_SLOTS];
	uint32_t len[NR_FDS][NR_SLOTS];
	int xsave2;			/* KVM_CAP_XSAVE2 answer */
	struct { int fd; unsigned long req; } log[256];
	int nr_log;
	unsigned long fail_req;		/* SET request to refuse */
};

static struct fake src, dst;
static struct fake *cur;

static void put(struct fake *f, int fd, enum slot s, const void *p, uint32_t len)
{
	free(f->store[fd][s]);
	f->store[fd][s] = malloc(len);
	memcpy(f->store[fd][s], p, len);
	f->len[fd][s] = len;
}

static void get(struct fake *f, int fd, enum slot s, void *p, uint32_t len)
{
	assert_non_null(f->store[fd][s]);
	assert_int_equal(f->len[fd][s], len);
	memcpy(p, f->store[fd][s], len);
}

static uint64_t msr_value(int fd, uint32_t index) { return index * 7919ull + fd; }

static int fake_msrs(int fd, struct kvm_msrs *m, bool set)
{
	for (uint32_t i = 0; i < m->nmsrs; i++) {
		if (!set && m->entries[i].index == UNREADABLE_MSR)
			return i;
		if (!set)
			m->entries[i].data = msr_value(fd, m->entries[i].index);
	}
	if (set)
		put(cur, fd, S_MSRS, m, sizeof(*m) + m->nmsrs * sizeof(m->entries[0]));
	return m->nmsrs;
}

/* request -> slot and size, for the plain GET/SET pairs */
static const struct { unsigned long get, set; enum slot s; uint32_t size; } plain[] = {
	{ KVM_GET_PIT2, KVM_SET_PIT2, S_PIT, sizeof(struct kvm_pit_state2) },
	{ KVM_GET_LAPIC, KVM_SET_LAPIC, S_LAPIC, sizeof(struct kvm_lapic_state) },
	{ KVM_GET_REGS, KVM_SET_REGS, S_REGS, sizeof(struct kvm_regs) },
	{ KVM_GET_XCRS, KVM_SET_XCRS, S_XCRS, sizeof(struct kvm_xcrs) },
	{ KVM_GET_SREGS2, KVM_SET_SREGS2, S_SREGS2, sizeof(struct kvm_sregs2) },
	{ KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS, S_EVENTS, sizeof(struct kvm_vcpu_events) },
	{ KVM_GET_MP_STATE, KVM_SET_MP_STATE, S_MP, sizeof(struct kvm_mp_state) },
	{ KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS, S_DREGS, sizeof(struct kvm_debugregs) },
	{ KVM_GET_CLOCK, KVM_SET_CLOCK, S_CLOCK, sizeof(struct kvm_clock_data) },
	{ KVM_GET_XSAVE2, KVM_SET_XSAVE, S_XSAVE, XSAVE_SIZE },
};

static bool is_set(unsigned long req)
{
	static const unsigned long sets[] = {
		KVM_SET_CPUID2, KVM_SET_TSC_KHZ, KVM_SET_PIT2, KVM_SET_IRQCHIP, KVM_SET_LAPIC,
		KVM_SET_REGS, KVM_SET_XSAVE, KVM_SET_XCRS, KVM_SET_SREGS2, KVM_SET_SREGS,
		KVM_SET_MSRS, KVM_SET_VCPU_EVENTS, KVM_SET_MP_STATE, KVM_SET_DEBUGREGS,
		KVM_SET_CLOCK,
	};

	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		if (req == sets[i])
			return true;
	return false;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	struct fake *f = cur;

	if (req == KVM_CHECK_EXTENSION) {
		unsigned long cap = (uintptr_t)arg;

		return cap == KVM_CAP_XSAVE2 ? f->xsave2 : cap == KVM_CAP_SREGS2;
	}
	if (req == KVM_GET_MSR_INDEX_LIST) {
		struct kvm_msr_list *l = arg;

		assert_int_equal(fd, KVM_FD);
		if (l->nmsrs < ARRAY_SIZE(index_list))
			return -E2BIG;
		l->nmsrs = ARRAY_SIZE(index_list);
		memcpy(l->indices, index_list, sizeof(index_list));
		return 0;
	}
	/* every SET is logged, so "nothing applied" is observable */
	if (is_set(req)) {
		f->log[f->nr_log].fd = fd;
		f->log[f->nr_log++].req = req;
	}
	if (req == f->fail_req)
		return -EINVAL;
	switch (req) {
	case KVM_GET_CPUID2: {
		struct kvm_cpuid2 *c = arg;
		uint32_t n = f->len[fd][S_CPUID];

		n = (n - sizeof(*c)) / sizeof(c->entries[0]);
		if (c->nent < n) {
			c->nent = n;
			return -E2BIG;
		}
		get(f, fd, S_CPUID, c, f->len[fd][S_CPUID]);
		return 0;
	}
	case KVM_SET_CPUID2: {
		struct kvm_cpuid2 *c = arg;

		put(f, fd, S_CPUID, c, sizeof(*c) + c->nent * sizeof(c->entries[0]));
		return 0;
	}
	case KVM_GET_TSC_KHZ:
		return 2500000 + fd;
	case KVM_SET_TSC_KHZ: {
		uint32_t khz = (uintptr_t)arg;

		put(f, fd, S_TSC, &khz, sizeof(khz));
		return 0;
	}
	case KVM_GET_IRQCHIP:
	case KVM_SET_IRQCHIP: {
		struct kvm_irqchip *c = arg;
		enum slot s = S_PIC0 + c->chip_id;

		assert_true(c->chip_id <= 2);
		if (req == KVM_GET_IRQCHIP)
			get(f, fd, s, c, sizeof(*c));
		else
			put(f, fd, s, c, sizeof(*c));
		return 0;
	}
	case KVM_GET_MSRS:
	case KVM_SET_MSRS:
		return fake_msrs(fd, arg, req == KVM_SET_MSRS);
	}
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++) {
		if (req == plain[i].get) {
			get(f, fd, plain[i].s, arg, plain[i].size);
			return 0;
		}
		if (req == plain[i].set) {
			put(f, fd, plain[i].s, arg, plain[i].size);
			return 0;
		}
	}
	fail_msg("unexpected KVM ioctl %#lx on fd %d", req, fd);
	return -ENOTTY;
}

static const struct kvm_ops fake_kvm = { .ioctl = fake_ioctl };
static const int vcpu_fds[NR_VCPUS] = { VCPU_FD0, VCPU_FD0 + 1 };

static void fill_random(struct fake *f, int fd, enum slot s, uint32_t len)
{
	uint8_t *p = malloc(len);

	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)rand();
	put(f, fd, s, p, len);
	free(p);
}

/* A source whose every piece is distinct random bytes (with sane headers). */
static void make_source(void)
{
	for (int v = 0; v < NR_VCPUS; v++) {
		int fd = VCPU_FD0 + v;
		struct { struct kvm_cpuid2 c; struct kvm_cpuid_entry2 e[3]; } cpuid;
		struct kvm_xcrs *x;
		struct kvm_vcpu_events *ev;

		for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
			if (plain[i].s != S_CLOCK && plain[i].s != S_PIT)
				fill_random(&src, fd, plain[i].s, plain[i].size);
		for (unsigned i = 0; i < sizeof(cpuid); i++)
			((uint8_t *)&cpuid)[i] = (uint8_t)rand();
		cpuid.c.nent = 3;
		put(&src, fd, S_CPUID, &cpuid, sizeof(cpuid));
		x = (struct kvm_xcrs *)src.store[fd][S_XCRS];
		x->nr_xcrs = 1;
		/* what SET needs flagged is already flagged, so the bytes must match */
		ev = (struct kvm_vcpu_events *)src.store[fd][S_EVENTS];
		ev->flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			    KVM_VCPUEVENT_VALID_SHADOW;
	}
	fill_random(&src, VM_FD, S_PIT, sizeof(struct kvm_pit_state2));
	fill_random(&src, VM_FD, S_CLOCK, sizeof(struct kvm_clock_data));
	((struct kvm_clock_data *)src.store[VM_FD][S_CLOCK])->flags = 0;
	for (int c = 0; c < 3; c++) {
		fill_random(&src, VM_FD, S_PIC0 + c, sizeof(struct kvm_irqchip));
		((struct kvm_irqchip *)src.store[VM_FD][S_PIC0 + c])->chip_id = c;
	}
}

/*
 * Source and destination in one process: each thread says which fake its
 * ioctls go to (mine; NULL: the source, as for every thread of hdvm's own
 * such as the migration job).  Memory slots are accepted and KVM's dirty
 * log is empty (no vCPU runs here; the caller cleared the bitmap).
 */
static __thread struct fake *mine;

static inline int slot_ioctl(int fd, unsigned long req, void *arg)
{
	if (req == KVM_SET_USER_MEMORY_REGION || req == KVM_GET_DIRTY_LOG)
		return 0;
	cur = mine ? mine : &src;
	return fake_ioctl(fd, req, arg);
}

static const struct kvm_ops slot_kvm = { .ioctl = slot_ioctl };

/*
 * Every piece of VM and vCPU state the source holds, the destination got
 * byte for byte: what a migration, a snapshot or a checkpoint must carry.
 * Not the MSRs nor the TSC, which do not arrive as the source's bytes.
 */
static inline void fake_assert_state_copied(void)
{
	for (int fd = VM_FD; fd < NR_FDS; fd++)
		for (int s = 0; s < NR_SLOTS; s++)
			if (src.store[fd][s] && s != S_MSRS && s != S_TSC) {
				assert_int_equal(dst.len[fd][s], src.len[fd][s]);
				assert_memory_equal(dst.store[fd][s], src.store[fd][s],
						    src.len[fd][s]);
			}
}

static void fake_reset(struct fake *f)
{
	for (int fd = 0; fd < NR_FDS; fd++)
		for (int s = 0; s < NR_SLOTS; s++)
			free(f->store[fd][s]);
	memset(f, 0, sizeof(*f));
	f->xsave2 = XSAVE_SIZE;
}

#endif
