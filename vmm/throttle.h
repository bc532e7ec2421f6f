/* SPDX-License-Identifier: MIT */
/*
 * Auto-converge's vCPU throttle, as QEMU's cpu-throttle: every timeslice a
 * ticker kicks each vCPU out of KVM_RUN and the vCPU thread sleeps
 * pct / (100 - pct) timeslices before it runs the guest again, so the guest
 * gets (100 - pct) % of the time and dirties memory that much slower.  The
 * sleep ends early on a pause or shutdown request, so the switchover does
 * not wait for a sleeping vCPU.
 */
#ifndef HDVM_THROTTLE_H
#define HDVM_THROTTLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;

#define THROTTLE_TIMESLICE_NS	10000000ull	/* 10 ms, QEMU's CPU_THROTTLE_TIMESLICE_NS */

struct vcpu_throttle {
	atomic_uint pct;		/* 0: off */
	atomic_bool stop;
	bool started;
	pthread_t ticker;
	struct vm *vm;
	atomic_ullong slept_ns;		/* all vCPUs, since start: what throttling cost */
};

/* Sleep that one vCPU owes for one timeslice at pct. */
uint64_t throttle_sleep_ns(uint32_t pct);
/* Set the throttle (0 stops it); starts the ticker on first use.  0 or -errno. */
int vm_throttle_set(struct vm *vm, uint32_t pct);
void vm_throttle_stop(struct vm *vm);
/* The vCPU thread, after each KVM_RUN: pay what a tick asked for. */
void vcpu_throttle_point(struct vcpu *v);

#endif
