// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for what `hdvm run --restore` reads from a file:
 *   byte 0 even: the rest is a snapshot file for snap_parse()
 *     (migration/snapshot_file.c); if it is accepted, its RAM runs are
 *     loaded into a memfd of the size it claims (bounded here);
 *   byte 0 odd: the rest patches a valid vCPU/VM state stream (u16 length to
 *     cut it to, then (u16 offset, u8 xor) pairs) for machine_state_load()
 *     (vmm/machine_state.c) against a fake KVM that accepts everything.
 * Invariants: nothing outside the input is read; a refused state stream
 * issued no SET to KVM (parse, validate, then apply); an accepted one
 * issued every SET.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "migration/snapshot_file.h"
#include "migration/state.h"
#include "vmm/kvm_ops.h"
#include "vmm/machine_state.h"
#include "vmm/util.h"

#define NR_VCPUS	2
#define RAM_MAX		(16u << 20)

static const uint32_t msr_list[] = { 0x10, 0x174, 0xc0000081 };
static unsigned nr_sets;
static struct state_buf base;

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	switch (req) {
	case KVM_CHECK_EXTENSION:
		return (uintptr_t)arg == KVM_CAP_SREGS2;	/* no XSAVE2: 4 KiB area */
	case KVM_GET_MSR_INDEX_LIST: {
		struct kvm_msr_list *l = arg;

		l->nmsrs = 3;
		memcpy(l->indices, msr_list, sizeof(msr_list));
		return 0;
	}
	case KVM_GET_MSRS:
		return ((struct kvm_msrs *)arg)->nmsrs;
	case KVM_GET_CPUID2:
		((struct kvm_cpuid2 *)arg)->nent = 2;
		return 0;
	case KVM_GET_TSC_KHZ:
		return 2000000;
	case KVM_GET_IRQCHIP:
		return 0;		/* chip_id as asked */
	case KVM_GET_XCRS:
		((struct kvm_xcrs *)arg)->nr_xcrs = 1;
		return 0;
	case KVM_SET_MSRS:
		nr_sets++;
		return ((struct kvm_msrs *)arg)->nmsrs;
	}
	if (req == KVM_SET_TSC_KHZ || req == KVM_SET_CPUID2 || req == KVM_SET_IRQCHIP ||
	    req == KVM_SET_CLOCK || req == KVM_SET_PIT2 ||
	    (_IOC_TYPE(req) == KVMIO && (_IOC_DIR(req) & _IOC_WRITE) &&
	     !(_IOC_DIR(req) & _IOC_READ))) {
		nr_sets++;
		return 0;
	}
	return 0;		/* other GETs: the zeroed buffer is the state */
}

static const struct kvm_ops fake = { .ioctl = fake_ioctl };
static const int fds[NR_VCPUS] = { 10, 11 };
static const struct machine_kvm mk = {
	.kvm = &fake, .kvm_fd = 3, .vm_fd = 4, .nr_vcpus = NR_VCPUS, .vcpu_fds = fds,
};
static unsigned all_sets;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct state_buf sb;

	state_init_writer(&base);
	if (machine_state_save(&mk, &base) < 0)
		abort();
	state_init_reader(&sb, base.data, base.len);
	nr_sets = 0;
	if (machine_state_load(&mk, &sb) < 0)
		abort();
	all_sets = nr_sets;
	return 0;
}

static void fuzz_file(const uint8_t *data, size_t size)
{
	struct snap_reader r;
	char why[256];

	if (snap_parse(&r, data, size, why, sizeof(why)) < 0) {
		if (!why[0])
			abort();	/* a refusal always says why */
		return;
	}
	if (r.ram_size && r.ram_size <= RAM_MAX) {
		static int memfd = -1;

		if (memfd < 0)
			memfd = memfd_create("fuzz-ram", MFD_CLOEXEC);
		if (ftruncate(memfd, 0) < 0 || ftruncate(memfd, r.ram_size) < 0)
			abort();
		if (snap_load_ram(&r, memfd, r.ram_size) < 0)
			abort();
	}
}

static void fuzz_state(const uint8_t *data, size_t size)
{
	uint8_t *copy = malloc(base.len);
	size_t len = base.len;
	struct state_buf sb;
	int ret;

	memcpy(copy, base.data, base.len);
	if (size >= 2) {
		size_t cut = data[0] | (size_t)data[1] << 8;

		if (cut < len)
			len = cut;
		data += 2;
		size -= 2;
	}
	for (; size >= 3; data += 3, size -= 3) {
		size_t off = data[0] | (size_t)data[1] << 8;

		if (off < len)
			copy[off] ^= data[2];
	}
	state_init_reader(&sb, copy, len);
	nr_sets = 0;
	ret = machine_state_load(&mk, &sb);
	if (ret < 0 && nr_sets)
		abort();	/* applied something it then refused */
	if (ret == 0 && nr_sets != all_sets)
		abort();
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		fuzz_state(data + 1, size - 1);
	else
		fuzz_file(data + 1, size - 1);
	return 0;
}
