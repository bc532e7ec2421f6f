/* SPDX-License-Identifier: MIT */
/*
 * vCPU and VM state in KVM (everything a stopped guest needs to continue in a
 * new VM): per vCPU CPUID, TSC kHz, LAPIC, REGS, XSAVE, XCRS, SREGS2 (SREGS
 * where KVM lacks it), MSRs, VCPU_EVENTS, MP_STATE, DEBUGREGS; per VM PIT2,
 * IRQCHIP (PIC x2, IOAPIC) and CLOCK.
 *
 * Each piece is kept as the bytes KVM returned and written back unchanged
 * (the few flags KVM wants different on SET are adjusted at apply time), in
 * the order that works on a real host (DESIGN.md, "Saving a running guest"):
 *   CPUID, TSC kHz, PIT2, IRQCHIP, LAPIC, REGS, XSAVE, XCRS, SREGS2, MSRS,
 *   VCPU_EVENTS, MP_STATE, DEBUGREGS, CLOCK
 * CPUID must precede XCRS and SREGS (CR4.OSXSAVE) or SET_XCRS fails.
 *
 * Loading parses the whole stream into a scratch state, validates it against
 * this machine (vCPU count, XSAVE size, known pieces, internal counts) and
 * only then applies it, so a truncated or corrupt stream changes nothing.
 * All KVM access goes through struct kvm_ops (tests use a fake KVM).
 */
#ifndef HDVM_MACHINE_STATE_H
#define HDVM_MACHINE_STATE_H

#include <stdint.h>

struct kvm_ops;
struct state_buf;

/* Where the state lives: KVM's fds for one VM. */
struct machine_kvm {
	const struct kvm_ops *kvm;
	int kvm_fd, vm_fd;
	int nr_vcpus;
	const int *vcpu_fds;
};

#define MACHINE_STATE_TAG	0x4843414dU	/* "MACH" */
#define MACHINE_STATE_VERSION	1

/* All vCPU and VM state as one tagged section; vCPUs must be stopped. */
int machine_state_save(const struct machine_kvm *mk, struct state_buf *sb);
/*
 * Parse, validate, then apply one section written by machine_state_save().
 * A refusal says why (pr_err) and returns -EINVAL (bad input) or KVM's -errno.
 */
int machine_state_load(const struct machine_kvm *mk, struct state_buf *sb);

#endif
