// SPDX-License-Identifier: MIT
/*
 * vCPU and VM state in KVM as a device of the VM, so it travels in the same
 * shape as every other device: listed in the manifest, saved by
 * devices_save() once the VM is paused and loaded by devices_load().  It is
 * the first device, so it is loaded before any device's post_load can raise
 * an interrupt into the LAPIC it would otherwise overwrite.
 */
#include "vmm/machine_dev.h"

#include <string.h>

#include "devices/device.h"
#include "vmm/machine_state.h"
#include "vmm/util.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

struct machine_dev {
	struct device dev;	/* first: teardown frees the container */
	struct vm *vm;
};

static int machine_realize(struct device *dev, struct vm *vm)
{
	container_of(dev, struct machine_dev, dev)->vm = vm;
	return 0;
}

/* KVM's view of the VM; fds has room for every vCPU. */
static void machine_kvm_of(struct vm *vm, struct machine_kvm *mk, int *fds)
{
	for (int i = 0; i < vm->ncpus; i++)
		fds[i] = vm->vcpus[i]->fd;
	*mk = (struct machine_kvm){
		.kvm = vm->kvm, .kvm_fd = vm->kvm_fd, .vm_fd = vm->vm_fd,
		.nr_vcpus = vm->ncpus, .vcpu_fds = fds,
	};
}

/* Save or load through machine_state.c with this VM's fds. */
static int machine_op(struct device *dev, struct state_buf *sb, const char *what,
		      int (*op)(const struct machine_kvm *mk, struct state_buf *sb))
{
	struct vm *vm = container_of(dev, struct machine_dev, dev)->vm;
	int fds[vm->ncpus];
	struct machine_kvm mk;
	int ret;

	machine_kvm_of(vm, &mk, fds);
	ret = op(&mk, sb);
	if (ret)
		device_set_error(dev, "%s vCPU and VM state: %s", what, strerror(-ret));
	return ret;
}

static int machine_save(struct device *dev, struct state_buf *sb)
{
	return machine_op(dev, sb, "saving", machine_state_save);
}

static int machine_load(struct device *dev, struct state_buf *sb)
{
	return machine_op(dev, sb, "restoring", machine_state_load);
}

static const struct device_mig_ops machine_mig = {
	.version = MACHINE_STATE_VERSION,
	.save_final = machine_save,
	.load = machine_load,
};

/* vm_pause() stops the vCPUs themselves; there is nothing more to stop here. */
static const struct device_ops machine_ops = {
	.type = "kvm-machine",
	.realize = machine_realize,
	.pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume,
	.mig = &machine_mig,
};

struct device *machine_dev_create(void)
{
	struct machine_dev *m = xzalloc(sizeof(*m));

	device_init(&m->dev, &machine_ops, "machine");
	return &m->dev;
}
