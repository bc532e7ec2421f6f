/* SPDX-License-Identifier: MIT */
#ifndef HDVM_VCPU_H
#define HDVM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct vm;

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	bool parked;		/* inside the pause handshake */
	atomic_bool throttle_due;	/* auto-converge: sleep before running again */
};

/* Create the KVM vCPU, its CPUID and MSRs; the BSP also gets the boot state. */
int vcpu_create(struct vm *vm, int id, struct vcpu **out);
int vcpu_start(struct vcpu *v);
/* Make the vCPU leave KVM_RUN soon (any thread). */
void vcpu_kick(struct vcpu *v);
void vcpu_join_and_destroy(struct vcpu *v);
/* Install the signal used by vcpu_kick (once per process). */
void vcpu_signals_init(void);

#define VCPU_KICK_SIGNAL	SIGUSR1

#endif
