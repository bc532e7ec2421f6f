/* SPDX-License-Identifier: MIT */
#ifndef HDVM_CPU_SETUP_H
#define HDVM_CPU_SETUP_H

#include <linux/kvm.h>

struct kvm_cpuid2 *cpuid_get_supported(int kvm_fd);
int cpuid_setup(int vcpu_fd, const struct kvm_cpuid2 *supported, int apic_id, int ncpus);
int msrs_setup(int vcpu_fd);

#endif
