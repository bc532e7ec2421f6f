// SPDX-License-Identifier: MIT
/*
 * Per-vCPU CPUID and MSR defaults.  CPUID is KVM's supported set with this
 * vCPU's APIC id filled in and the hypervisor bit set; MSRs are the reset
 * values a firmware would leave behind (fast strings, WB memory type).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/cpu_setup.h"
#include "vmm/util.h"

#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102
#define MSR_IA32_TSC		0x10
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff

#define MISC_ENABLE_FAST_STRING	1ULL
#define MTRR_ENABLE_WB		((1ULL << 11) | 6)

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd)
{
	for (unsigned n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = xzalloc(sizeof(*c) + n * sizeof(c->entries[0]));

		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG) {
			pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return NULL;
		}
	}
	pr_err("KVM_GET_SUPPORTED_CPUID: too many entries");
	return NULL;
}

int cpuid_setup(int vcpu_fd, const struct kvm_cpuid2 *supported, int apic_id, int ncpus)
{
	size_t sz = sizeof(*supported) + supported->nent * sizeof(supported->entries[0]);
	struct kvm_cpuid2 *c = xzalloc(sz);
	int ret;

	memcpy(c, supported, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ebx = (e->ebx & 0x0000ffff) | ((uint32_t)ncpus << 16) |
				 ((uint32_t)apic_id << 24);
			e->ecx |= 1u << 31;		/* hypervisor present */
			e->edx |= 1u << 28;		/* HTT: the count in ebx is valid */
			break;
		case 0xb:
		case 0x1f:
			e->edx = apic_id;		/* x2APIC id on every level */
			break;
		default:
			break;
		}
	}
	ret = ioctl(vcpu_fd, KVM_SET_CPUID2, c);
	if (ret < 0)
		pr_err("KVM_SET_CPUID2: %s", strerror(errno));
	free(c);
	return ret;
}

int msrs_setup(int vcpu_fd)
{
	static const struct { uint32_t index; uint64_t value; } defaults[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 },
		{ MSR_IA32_SYSENTER_EIP, 0 }, { MSR_STAR, 0 }, { MSR_LSTAR, 0 },
		{ MSR_CSTAR, 0 }, { MSR_SYSCALL_MASK, 0 }, { MSR_KERNEL_GS_BASE, 0 },
		{ MSR_IA32_TSC, 0 }, { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
		{ MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB },
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[ARRAY_SIZE(defaults)];
	} m;
	int ret;

	memset(&m, 0, sizeof(m));
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
		m.e[i].index = defaults[i].index;
		m.e[i].data = defaults[i].value;
	}
	m.hdr.nmsrs = ARRAY_SIZE(defaults);
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, &m);
	if (ret < 0) {
		ret = -errno;
		pr_err("KVM_SET_MSRS: %s", strerror(-ret));
		return ret;
	}
	/* KVM stops at the first MSR it refuses; the rest are optional here. */
	if ((size_t)ret != ARRAY_SIZE(defaults))
		pr_debug("KVM accepted %d of %zu default MSRs (first refused: %#x)", ret,
			 ARRAY_SIZE(defaults), m.e[ret].index);
	return 0;
}
