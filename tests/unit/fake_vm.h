/* SPDX-License-Identifier: MIT */
/*
 * A VM on the fake KVM of fake_kvm.h, for tests of whole-VM code (snapshot,
 * migration, checkpointing) on a host without /dev/kvm: guest RAM (a real
 * memfd), NCPUS vCPUs whose state lives in the fake, and the legacy devices
 * plus the "machine" device, realized and paused.  Include fake_kvm.h first.
 */
#ifndef HDVM_TEST_FAKE_VM_H
#define HDVM_TEST_FAKE_VM_H

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "vmm/machine_dev.h"
#include "vmm/memory.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* The VM without devices: RAM, buses, NCPUS vCPUs on the fake; not realized. */
static inline void fake_vm_init(struct vm *vm, const struct kvm_ops *kvm, uint64_t ram, int ncpus)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm = kvm;
	vm->kvm_fd = KVM_FD;
	vm->vm_fd = VM_FD;
	vm->exit_efd = vm->console_out_fd = vm->console_in_fd = -1;
	snprintf(vm->cfg.name, sizeof(vm->cfg.name), "unit");
	vm->cfg.kernel = "hdguest.elf";
	vm->cfg.cmdline = "app=dirty";
	pthread_mutex_init(&vm->state_lock, NULL);
	pthread_cond_init(&vm->state_cond, NULL);
	iobus_init(&vm->pio, "pio");
	iobus_init(&vm->mmio, "mmio");
	assert_int_equal(guest_mem_init(&vm->mem, ram), 0);
	vm->ncpus = ncpus;
	vm->vcpus = xzalloc(sizeof(*vm->vcpus) * ncpus);
	for (int i = 0; i < ncpus; i++) {
		vm->vcpus[i] = xzalloc(sizeof(struct vcpu));
		vm->vcpus[i]->vm = vm;
		vm->vcpus[i]->fd = VCPU_FD0 + i;
	}
}

static inline void fake_vm_build(struct vm *vm, const struct kvm_ops *kvm, uint64_t ram,
			  int ncpus, bool with_i8042)
{
	fake_vm_init(vm, kvm, ram, ncpus);
	device_add(vm, machine_dev_create());
	device_add(vm, serial_create());
	if (with_i8042)
		device_add(vm, i8042_create());
	assert_int_equal(devices_realize(vm), 0);
	vm->state = VM_PAUSED;
}

/* Everything fake_vm_build() made; a VM never built (no vCPUs) is left alone. */
static inline void fake_vm_free(struct vm *vm)
{
	if (!vm->vcpus)
		return;
	devices_unrealize(vm);
	while (vm->devices) {
		struct device *d = vm->devices;

		vm->devices = d->next;
		free(d);
	}
	for (int i = 0; i < vm->ncpus; i++)
		free(vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	guest_mem_destroy(&vm->mem);
	iobus_destroy(&vm->pio);
	iobus_destroy(&vm->mmio);
}

static inline uint8_t fake_vm_pio_read(struct vm *vm, uint16_t port)
{
	uint8_t v = 0;

	assert_true(iobus_access(&vm->pio, port, &v, 1, false));
	return v;
}

static inline void fake_vm_pio_write(struct vm *vm, uint16_t port, uint8_t v)
{
	assert_true(iobus_access(&vm->pio, port, &v, 1, true));
}

#endif /* HDVM_TEST_FAKE_VM_H */
