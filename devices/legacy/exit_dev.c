// SPDX-License-Identifier: MIT
/*
 * Exit device: the guest writes its status to PLAT_EXIT_PORT and the VM powers
 * off; `hdvm run` exits with that status.  Stateless.
 */
#include <stdio.h>
#include <string.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct exit_dev {
	struct device dev;
	struct vm *vm;
};

static void exit_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct exit_dev *e = opaque;
	uint32_t v = 0;
	char why[48];

	memcpy(&v, data, len < 4 ? len : 4);
	snprintf(why, sizeof(why), "guest powered off with status %u", v & 0xff);
	vm_request_shutdown(e->vm, v & 0xff, why);
}

static const struct io_ops exit_io = { .write = exit_write };

static int exit_realize(struct device *dev, struct vm *vm)
{
	struct exit_dev *e = container_of(dev, struct exit_dev, dev);

	e->vm = vm;
	return iobus_register(&vm->pio, PLAT_EXIT_PORT, 4, &exit_io, e);
}

static const struct device_ops exit_ops = {
	.type = "exit",
	.realize = exit_realize,
	.pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume,
};

struct device *exit_dev_create(void)
{
	struct exit_dev *e = xzalloc(sizeof(*e));

	device_init(&e->dev, &exit_ops, "exit");
	return &e->dev;
}
