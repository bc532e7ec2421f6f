// SPDX-License-Identifier: MIT
/*
 * Boot marker: the guest writes PLAT_MARKER_WORKLOAD when its workload starts.
 * The first write is timestamped for `hdvm status` and `run --metrics`; the
 * last code seen is device state (a migrated guest keeps its milestone).
 */
#include "devices/device.h"
#include "devices/legacy/legacy.h"
#include "devices/platform.h"
#include "vmm/util.h"
#include "vmm/vm.h"

struct boot_marker {
	struct device dev;
	struct vm *vm;
	uint8_t last;
};

static void marker_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct boot_marker *m = opaque;

	m->last = *(const uint8_t *)data;
	if (m->last == PLAT_MARKER_WORKLOAD && !m->vm->metrics.t_marker)
		m->vm->metrics.t_marker = now_ns();
}

static void marker_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct boot_marker *m = opaque;

	*(uint8_t *)data = m->last;
}

static const struct io_ops marker_io = { .read = marker_read, .write = marker_write };

static int marker_realize(struct device *dev, struct vm *vm)
{
	struct boot_marker *m = container_of(dev, struct boot_marker, dev);

	m->vm = vm;
	return iobus_register(&vm->pio, PLAT_MARKER_PORT, 1, &marker_io, m);
}

static int marker_save(struct device *dev, struct state_buf *sb)
{
	state_put_u8(sb, container_of(dev, struct boot_marker, dev)->last);
	return 0;
}

static int marker_load(struct device *dev, struct state_buf *sb)
{
	container_of(dev, struct boot_marker, dev)->last = state_get_u8(sb);
	return 0;
}

static const struct device_mig_ops marker_mig = {
	.version = 1,
	.save_final = marker_save,
	.load = marker_load,
};

static const struct device_ops marker_ops = {
	.type = "boot-marker",
	.realize = marker_realize,
	.pause = device_vcpu_driven_pause,
	.resume = device_vcpu_driven_resume,
	.mig = &marker_mig,
};

struct device *boot_marker_create(void)
{
	struct boot_marker *m = xzalloc(sizeof(*m));

	device_init(&m->dev, &marker_ops, "boot-marker");
	return &m->dev;
}
