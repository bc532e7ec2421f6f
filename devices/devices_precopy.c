// SPDX-License-Identifier: MIT
/*
 * Device pre-copy across the VM's device list, as QEMU's save_setup /
 * save_live_iterate / load_state for iterable devices: a passthrough device
 * goes to VFIO PRE_COPY while RAM is copied, what it can give ahead travels
 * as tagged sections (the device's id hash, as in devices_save) and the
 * destination's device takes them in RESUMING before the VM stops.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "devices/device.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define OP(d, op)	((d)->ops->mig ? (d)->ops->mig->op : NULL)

static const char *reason(struct device *d, int ret)
{
	return d->error[0] ? d->error : strerror(-ret);
}

int devices_save_setup(struct vm *vm, char *why, size_t len)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!OP(d, save_setup))
			continue;
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->save_setup(d);
		pthread_mutex_unlock(&d->lock);
		if (!ret)
			continue;
		ret = ret < 0 ? ret : -EIO;
		snprintf(why, len, "device %s (%s): starting its pre-copy: %s", d->id,
			 d->ops->type, reason(d, ret));
		devices_save_cleanup(vm);	/* cleanup of a device never set up is a no-op */
		return ret;
	}
	return 0;
}

void devices_save_cleanup(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		if (!OP(d, save_cleanup))
			continue;
		pthread_mutex_lock(&d->lock);
		d->ops->mig->save_cleanup(d);
		pthread_mutex_unlock(&d->lock);
	}
}

int devices_save_iterate(struct vm *vm, struct state_buf *sb, uint64_t *bytes)
{
	size_t start = sb->len;

	for (struct device *d = vm->devices; d; d = d->next) {
		size_t mark, before;
		int ret;

		if (!OP(d, save_iterate))
			continue;
		before = sb->len;
		mark = state_begin_section(sb, device_id_tag(d->id));
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->save_iterate(d, sb);
		pthread_mutex_unlock(&d->lock);
		state_end_section(sb, mark);
		if (ret < 0 || !state_ok(sb)) {
			ret = ret < 0 ? ret : -ENOMEM;
			pr_err("device %s (%s): pre-copy: %s", d->id, d->ops->type, reason(d, ret));
			return ret;
		}
		if (ret == 1)
			sb->len = before;	/* nothing now: no empty section */
	}
	*bytes = sb->len - start;
	return 0;
}

static struct device *by_tag(struct vm *vm, uint32_t tag)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (device_id_tag(d->id) == tag)
			return d;
	return NULL;
}

int devices_load_iterate(struct vm *vm, struct state_buf *sb, char *why, size_t len)
{
	while (!state_at_end(sb)) {
		uint32_t tag = state_get_u32(sb), slen = state_get_u32(sb);
		struct state_buf sec;
		struct device *d;
		int ret;

		if (!state_ok(sb) || slen > sb->len - sb->pos) {
			snprintf(why, len, "device pre-copy data is corrupt");
			return -EPROTO;
		}
		d = by_tag(vm, tag);
		if (!d || !OP(d, load_iterate)) {
			snprintf(why, len, "device pre-copy data for a device %s", d ?
				 "that takes none here" : "this machine lacks");
			return -ENODEV;
		}
		state_init_reader(&sec, sb->data + sb->pos, slen);
		sb->pos += slen;
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->load_iterate(d, &sec);
		pthread_mutex_unlock(&d->lock);
		if (!ret && (!state_ok(&sec) || !state_at_end(&sec)))
			ret = -EPROTO;
		if (ret) {
			ret = ret < 0 ? ret : -EIO;
			snprintf(why, len, "device %s (%s): its pre-copy data: %s", d->id,
				 d->ops->type, reason(d, ret));
			return ret;
		}
	}
	return 0;
}

void devices_load_abort(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		if (!OP(d, load_abort))
			continue;
		pthread_mutex_lock(&d->lock);
		d->ops->mig->load_abort(d);
		pthread_mutex_unlock(&d->lock);
	}
}
