// SPDX-License-Identifier: MIT
#include "vmm/throttle.h"

#include <errno.h>
#include <time.h>

#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define SLEEP_STEP_NS	1000000ull	/* look at pause/shutdown requests this often */

uint64_t throttle_sleep_ns(uint32_t pct)
{
	if (!pct)
		return 0;
	if (pct > 99)
		pct = 99;
	return THROTTLE_TIMESLICE_NS * pct / (100 - pct);
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ull, .tv_nsec = ns % 1000000000ull };

	nanosleep(&ts, NULL);
}

static void *ticker(void *arg)
{
	struct vm *vm = arg;
	struct vcpu_throttle *t = &vm->throttle;

	while (!atomic_load(&t->stop)) {
		uint32_t pct = atomic_load(&t->pct);

		/* one timeslice of guest time, then the sleep, as QEMU's timer period */
		sleep_ns(THROTTLE_TIMESLICE_NS + throttle_sleep_ns(pct));
		if (!pct || atomic_load(&t->stop))
			continue;
		for (int i = 0; i < vm->ncpus; i++) {
			atomic_store(&vm->vcpus[i]->throttle_due, true);
			vcpu_kick(vm->vcpus[i]);
		}
	}
	return NULL;
}

int vm_throttle_set(struct vm *vm, uint32_t pct)
{
	struct vcpu_throttle *t = &vm->throttle;
	int ret;

	atomic_store(&t->pct, pct > 99 ? 99 : pct);
	if (t->started || !pct)
		return 0;
	t->vm = vm;
	atomic_store(&t->stop, false);
	ret = pthread_create(&t->ticker, NULL, ticker, vm);
	if (ret)
		return -ret;
	t->started = true;
	return 0;
}

void vm_throttle_stop(struct vm *vm)
{
	struct vcpu_throttle *t = &vm->throttle;

	atomic_store(&t->pct, 0);
	if (!t->started)
		return;
	atomic_store(&t->stop, true);
	pthread_join(t->ticker, NULL);
	t->started = false;
}

void vcpu_throttle_point(struct vcpu *v)
{
	struct vm *vm = v->vm;
	uint64_t owed, start;

	if (!atomic_exchange(&v->throttle_due, false))
		return;
	owed = throttle_sleep_ns(atomic_load(&vm->throttle.pct));
	start = now_ns();
	/* to a deadline, so oversleeping steps do not add up */
	for (uint64_t t = start; t - start < owed; t = now_ns()) {
		uint64_t left = owed - (t - start);

		if (atomic_load(&vm->pause_requested) || atomic_load(&vm->shutdown))
			break;
		sleep_ns(left < SLEEP_STEP_NS ? left : SLEEP_STEP_NS);
	}
	atomic_fetch_add(&vm->throttle.slept_ns, now_ns() - start);
}
