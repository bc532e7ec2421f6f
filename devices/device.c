// SPDX-License-Identifier: MIT
#include "devices/device.h"

#include <stdio.h>
#include <string.h>

#include "vmm/util.h"
#include "vmm/vm.h"

void device_init(struct device *dev, const struct device_ops *ops, const char *id)
{
	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	snprintf(dev->id, sizeof(dev->id), "%s", id);
	pthread_mutex_init(&dev->lock, NULL);
}

void device_add(struct vm *vm, struct device *dev)
{
	struct device **p = &vm->devices;

	while (*p)
		p = &(*p)->next;
	*p = dev;
}

int devices_realize(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		if (d->ops->realize && d->ops->realize(d, vm) < 0) {
			pr_err("device %s (%s) failed to start", d->id, d->ops->type);
			return -1;
		}
	}
	return 0;
}

#define FOR_EACH_DEVICE_OP(vm, op)					\
	for (struct device *d = (vm)->devices; d; d = d->next)		\
		if (d->ops->op) {					\
			pthread_mutex_lock(&d->lock);			\
			d->ops->op(d);					\
			pthread_mutex_unlock(&d->lock);			\
		}

void devices_reset(struct vm *vm) { FOR_EACH_DEVICE_OP(vm, reset) }
void devices_pause(struct vm *vm) { FOR_EACH_DEVICE_OP(vm, pause) }
void devices_resume(struct vm *vm) { FOR_EACH_DEVICE_OP(vm, resume) }

/* Section tag: a hash of the id, so load can tell a stream for another machine. */
static uint32_t id_tag(const char *id)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 16777619u;
	return h;
}

int devices_save(struct vm *vm, struct state_buf *sb)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		size_t mark;
		int ret = 0;

		if (!d->ops->save)
			continue;
		mark = state_begin_section(sb, id_tag(d->id));
		pthread_mutex_lock(&d->lock);
		ret = d->ops->save(d, sb);
		pthread_mutex_unlock(&d->lock);
		state_end_section(sb, mark);
		if (ret < 0 || !state_ok(sb)) {
			pr_err("device %s: saving state failed", d->id);
			return -1;
		}
	}
	return 0;
}

int devices_load(struct vm *vm, struct state_buf *sb)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		uint32_t tag, len;
		struct state_buf sec;
		int ret;

		if (!d->ops->load)
			continue;
		tag = state_get_u32(sb);
		len = state_get_u32(sb);
		if (!state_ok(sb) || tag != id_tag(d->id) || len > sb->len - sb->pos) {
			pr_err("device %s: state stream is missing its section or corrupt", d->id);
			return -1;
		}
		state_init_reader(&sec, sb->data + sb->pos, len);
		sb->pos += len;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->load(d, &sec);
		pthread_mutex_unlock(&d->lock);
		if (ret < 0 || !state_ok(&sec) || !state_at_end(&sec)) {
			pr_err("device %s: state section is malformed", d->id);
			return -1;
		}
	}
	return 0;
}

void devices_unrealize(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->ops->unrealize)
			d->ops->unrealize(d);
}

struct device *device_find(struct vm *vm, const char *id)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	return NULL;
}
