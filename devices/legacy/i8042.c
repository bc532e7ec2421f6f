// SPDX-License-Identifier: MIT
/*
 * i8042 keyboard controller, reduced to what a microVM needs: the status port
 * reads "ready" and command 0xfe (pulse reset line) stops the VM, which is how
 * Linux reboots.  Like Firecracker, a guest reboot ends the hdvm process.
 */
#include <string.h>

#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct i8042 {
	struct device dev;
	struct vm *vm;
	uint8_t cmd;	/* last command byte, kept for save/load */
};

static void i8042_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	memset(data, 0, len);	/* no data, input buffer empty */
}

static void i8042_cmd_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = opaque;

	k->cmd = *(const uint8_t *)data;
	if (k->cmd == PLAT_I8042_CMD_RESET)
		vm_request_shutdown(k->vm, 0, "guest requested a reset (i8042)");
}

static const struct io_ops i8042_data_io = { .read = i8042_read };
static const struct io_ops i8042_cmd_io = { .read = i8042_read, .write = i8042_cmd_write };

static int i8042_realize(struct device *dev, struct vm *vm)
{
	struct i8042 *k = container_of(dev, struct i8042, dev);
	int err;

	k->vm = vm;
	err = iobus_register(&vm->pio, PLAT_I8042_DATA_PORT, 1, &i8042_data_io, k);
	if (err < 0)
		return err;
	return iobus_register(&vm->pio, PLAT_I8042_CMD_PORT, 1, &i8042_cmd_io, k);
}

static int i8042_save(struct device *dev, struct state_buf *sb)
{
	state_put_u8(sb, container_of(dev, struct i8042, dev)->cmd);
	return 0;
}

static int i8042_load(struct device *dev, struct state_buf *sb)
{
	container_of(dev, struct i8042, dev)->cmd = state_get_u8(sb);
	return 0;
}

static void i8042_reset(struct device *dev)
{
	container_of(dev, struct i8042, dev)->cmd = 0;
}

static const struct device_mig_ops i8042_mig = {
	.version = 1,
	.save_final = i8042_save,
	.load = i8042_load,
};

static const struct device_ops i8042_ops = {
	.type = "i8042",
	.realize = i8042_realize,
	.reset = i8042_reset,
	.pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume,
	.mig = &i8042_mig,
};

struct device *i8042_create(void)
{
	struct i8042 *k = xzalloc(sizeof(*k));

	device_init(&k->dev, &i8042_ops, "i8042");
	return &k->dev;
}
