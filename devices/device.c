// SPDX-License-Identifier: MIT
#include "devices/device.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/util.h"
#include "vmm/vm.h"

void device_init(struct device *dev, const struct device_ops *ops, const char *id)
{
	if (!ops->pause || !ops->resume) {
		fprintf(stderr, "hdvm: BUG: device type %s has no pause/resume\n", ops->type);
		abort();
	}
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

struct device *device_find(struct vm *vm, const char *id)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (!strcmp(d->id, id))
			return d;
	return NULL;
}

void device_set_error(struct device *dev, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dev->error, sizeof(dev->error), fmt, ap);
	va_end(ap);
}

int device_vcpu_driven_pause(struct device *dev) { return 0; }
int device_vcpu_driven_resume(struct device *dev) { return 0; }

/* "net0 (virtio-net): reason" into why, the device's sentence or strerror. */
static void describe(struct device *d, int err, const char *what, char *why, size_t len)
{
	if (!why || !len)
		return;
	snprintf(why, len, "device %s (%s) %s: %s", d->id, d->ops->type, what,
		 d->error[0] ? d->error : strerror(-err));
}

static int err_or_eio(int ret)
{
	return ret < 0 ? ret : -EIO;
}

int devices_realize(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!d->ops->realize)
			continue;
		ret = d->ops->realize(d, vm);
		if (ret) {
			pr_err("device %s (%s) failed to start", d->id, d->ops->type);
			return err_or_eio(ret);
		}
	}
	return 0;
}

void devices_reset(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->ops->reset) {
			pthread_mutex_lock(&d->lock);
			d->ops->reset(d);
			pthread_mutex_unlock(&d->lock);
		}
}

static int call_locked(struct device *d, int (*op)(struct device *))
{
	int ret;

	pthread_mutex_lock(&d->lock);
	d->error[0] = 0;
	ret = op(d);
	pthread_mutex_unlock(&d->lock);
	return ret;
}

static void resume_after_failure(struct device *u)
{
	if (call_locked(u, u->ops->resume))
		pr_err("device %s (%s): resuming after a failed pause: %s", u->id,
		       u->ops->type, u->error[0] ? u->error : "failed");
}

/*
 * Two phases (VFIO's rule for several devices): every pause_prepare, then
 * every pause.  On a refusal everything touched so far runs again: in phase
 * one the devices prepared before the one that refused; in phase two all
 * devices before it, and every prepared one from it on (prepared, not paused).
 */
int devices_pause(struct vm *vm, char *why, size_t len)
{
	struct device *d;
	bool past;
	int ret = 0;

	for (d = vm->devices; d; d = d->next) {
		if (!d->ops->pause_prepare)
			continue;
		ret = call_locked(d, d->ops->pause_prepare);
		if (!ret)
			continue;
		ret = err_or_eio(ret);
		describe(d, ret, "refused to pause", why, len);
		for (struct device *u = vm->devices; u != d; u = u->next)
			if (u->ops->pause_prepare)
				resume_after_failure(u);
		return ret;
	}
	for (d = vm->devices; d; d = d->next) {
		ret = call_locked(d, d->ops->pause);
		if (!ret)
			continue;
		ret = err_or_eio(ret);
		describe(d, ret, "refused to pause", why, len);
		past = false;
		for (struct device *u = vm->devices; u; u = u->next) {
			past |= u == d;
			if (!past || u->ops->pause_prepare)
				resume_after_failure(u);
		}
		return ret;
	}
	return 0;
}

int devices_pause_early(struct vm *vm, char *why, size_t len)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!d->ops->pause_early)
			continue;
		ret = d->ops->pause_early(d);	/* unlocked: the guest must run to let go */
		if (!ret)
			continue;
		ret = err_or_eio(ret);
		describe(d, ret, "refused to pause", why, len);
		for (struct device *u = vm->devices; u != d; u = u->next)
			if (u->ops->pause_early)
				resume_after_failure(u);
		return ret;
	}
	return 0;
}

void devices_pause_early_undo(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next)
		if (d->ops->pause_early)
			resume_after_failure(d);
}

int devices_can_migrate(struct vm *vm, unsigned flags, char *why, size_t len)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!d->ops->mig || !d->ops->mig->can_migrate)
			continue;
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->can_migrate(d, flags);
		pthread_mutex_unlock(&d->lock);
		if (ret) {
			ret = err_or_eio(ret);
			describe(d, ret, "cannot migrate", why, len);
			return ret;
		}
	}
	return 0;
}

int devices_resume(struct vm *vm, char *why, size_t len)
{
	int first = 0;

	for (struct device *d = vm->devices; d; d = d->next) {
		int ret = call_locked(d, d->ops->resume);

		if (ret && !first) {
			first = err_or_eio(ret);
			describe(d, first, "refused to resume", why, len);
		}
	}
	return first;
}

/* ---- migration ---- */

#define MIG_OP(d, op)	((d)->ops->mig ? (d)->ops->mig->op : NULL)

int devices_dirty_log_start(struct vm *vm)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!MIG_OP(d, dirty_log_start))
			continue;
		ret = call_locked(d, d->ops->mig->dirty_log_start);
		if (!ret)
			continue;
		pr_err("device %s (%s): starting its dirty log: %s", d->id, d->ops->type,
		       d->error[0] ? d->error : strerror(-err_or_eio(ret)));
		for (struct device *u = vm->devices; u != d; u = u->next)
			if (MIG_OP(u, dirty_log_stop))
				call_locked(u, u->ops->mig->dirty_log_stop);
		return err_or_eio(ret);
	}
	return 0;
}

int devices_dirty_log_stop(struct vm *vm)
{
	int first = 0;

	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!MIG_OP(d, dirty_log_stop))
			continue;
		ret = call_locked(d, d->ops->mig->dirty_log_stop);
		if (ret && !first)
			first = err_or_eio(ret);
	}
	return first;
}

int devices_dirty_log_sync(struct vm *vm, device_dirty_fn *mark, void *opaque)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!MIG_OP(d, dirty_log_sync))
			continue;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->mig->dirty_log_sync(d, mark, opaque);
		pthread_mutex_unlock(&d->lock);
		if (ret) {
			pr_err("device %s (%s): reading its dirty log: %s", d->id, d->ops->type,
			       strerror(-err_or_eio(ret)));
			return err_or_eio(ret);
		}
	}
	return 0;
}

int devices_output_commit(struct vm *vm, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	int first = 0;

	for (struct device *d = vm->devices; d; d = d->next) {
		int ret;

		if (!MIG_OP(d, output_commit))
			continue;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->mig->output_commit(d, op, epoch, max_frames);
		pthread_mutex_unlock(&d->lock);
		if (ret) {
			pr_err("device %s (%s): output commit op %u epoch %llu: %s", d->id,
			       d->ops->type, op, (unsigned long long)epoch, strerror(-ret));
			if (!first)
				first = ret;
		}
	}
	return first;
}

int devices_output_held(struct vm *vm, uint64_t *frames)
{
	*frames = 0;
	for (struct device *d = vm->devices; d; d = d->next) {
		uint64_t n = 0;
		int ret;

		if (!MIG_OP(d, output_held))
			continue;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->mig->output_held(d, &n);
		pthread_mutex_unlock(&d->lock);
		if (ret)
			return ret;
		*frames += n;
	}
	return 0;
}

int devices_pending_bytes(struct vm *vm, uint64_t *bytes)
{
	*bytes = 0;
	for (struct device *d = vm->devices; d; d = d->next) {
		uint64_t n = 0;
		int ret;

		if (!MIG_OP(d, pending_bytes))
			continue;
		pthread_mutex_lock(&d->lock);
		ret = d->ops->mig->pending_bytes(d, &n);
		pthread_mutex_unlock(&d->lock);
		if (ret)
			return err_or_eio(ret);
		*bytes += n;
	}
	return 0;
}

/* ---- state stream ---- */

static uint32_t mig_version(const struct device *d)
{
	return d->ops->mig ? d->ops->mig->version : 0;
}

static void put_str(struct state_buf *sb, const char *s)
{
	size_t n = strlen(s);

	state_put_u8(sb, (uint8_t)n);
	state_put_bytes(sb, s, n);
}

/* A string of at most cap-1 bytes; false if longer or truncated. */
static bool get_str(struct state_buf *sb, char *s, size_t cap)
{
	uint8_t n = state_get_u8(sb);

	if (!state_ok(sb) || n >= cap)
		return false;
	state_get_bytes(sb, s, n);
	s[n] = 0;
	return state_ok(sb) && strlen(s) == n;
}

static void save_manifest(struct vm *vm, struct state_buf *sb)
{
	uint32_t n = 0;

	for (struct device *d = vm->devices; d; d = d->next)
		n++;
	state_put_u32(sb, DEVICES_MANIFEST_MAGIC);
	state_put_u32(sb, n);
	for (struct device *d = vm->devices; d; d = d->next) {
		put_str(sb, d->id);
		put_str(sb, d->ops->type);
		state_put_u32(sb, mig_version(d));
	}
}

int devices_save(struct vm *vm, struct state_buf *sb)
{
	save_manifest(vm, sb);
	for (struct device *d = vm->devices; d; d = d->next) {
		size_t mark;
		int ret;

		if (!MIG_OP(d, save_final))
			continue;
		mark = state_begin_section(sb, device_id_tag(d->id));
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->save_final(d, sb);
		pthread_mutex_unlock(&d->lock);
		state_end_section(sb, mark);
		if (ret < 0 || !state_ok(sb)) {
			ret = ret < 0 ? ret : -ENOMEM;
			pr_err("device %s (%s): saving state failed: %s", d->id, d->ops->type,
			       d->error[0] ? d->error : strerror(-ret));
			return ret;
		}
	}
	return state_ok(sb) ? 0 : -ENOMEM;
}

#define FAIL(err, ...) do {					\
		if (why && len)					\
			snprintf(why, len, __VA_ARGS__);	\
		return (err);					\
	} while (0)

/* The stream's device list must be this machine's, entry by entry. */
static int check_manifest(struct vm *vm, struct state_buf *sb, char *why, size_t len)
{
	uint32_t magic = state_get_u32(sb), n = state_get_u32(sb), i = 0;
	struct device *d = vm->devices;

	if (!state_ok(sb) || magic != DEVICES_MANIFEST_MAGIC)
		FAIL(-EINVAL, "device state: no device manifest at the start of the stream");
	for (; i < n; i++, d = d->next) {
		char id[sizeof(d->id)], type[32];
		uint32_t version;

		if (!get_str(sb, id, sizeof(id)) || !get_str(sb, type, sizeof(type)))
			FAIL(-EINVAL, "device state: manifest entry %u is corrupt", i);
		version = state_get_u32(sb);
		if (!state_ok(sb))
			FAIL(-EINVAL, "device state: manifest entry %u is corrupt", i);
		if (!d)
			FAIL(-ENODEV, "device state: the stream has device %s (%s) which this "
			     "machine lacks", id, type);
		if (strcmp(id, d->id))
			FAIL(-ENODEV, "device state: the stream has device %s (%s) where this "
			     "machine has %s (%s)", id, type, d->id, d->ops->type);
		if (strcmp(type, d->ops->type))
			FAIL(-ENODEV, "device state: device %s is a %s in the stream but a %s "
			     "here", id, type, d->ops->type);
		if (version != mig_version(d))
			FAIL(-EPROTO, "device state: device %s (%s) has state version %u in the "
			     "stream, this hdvm reads version %u", id, type, version,
			     mig_version(d));
	}
	if (d)
		FAIL(-ENODEV, "device state: this machine has device %s (%s) which the stream "
		     "lacks", d->id, d->ops->type);
	return 0;
}

int devices_load(struct vm *vm, struct state_buf *sb, char *why, size_t len)
{
	int ret = check_manifest(vm, sb, why, len);

	if (ret)
		return ret;
	for (struct device *d = vm->devices; d; d = d->next) {
		uint32_t tag, slen;
		struct state_buf sec;

		if (!MIG_OP(d, load))
			continue;
		tag = state_get_u32(sb);
		slen = state_get_u32(sb);
		if (!state_ok(sb) || tag != device_id_tag(d->id) || slen > sb->len - sb->pos)
			FAIL(-EINVAL, "device %s (%s): state stream is missing its section or "
			     "corrupt", d->id, d->ops->type);
		state_init_reader(&sec, sb->data + sb->pos, slen);
		sb->pos += slen;
		pthread_mutex_lock(&d->lock);
		d->error[0] = 0;
		ret = d->ops->mig->load(d, &sec);
		pthread_mutex_unlock(&d->lock);
		/* the device's own reason (its server went away, it refused) when it gave one */
		if (ret < 0 && d->error[0])
			FAIL(ret, "device %s (%s): %s", d->id, d->ops->type, d->error);
		if (ret < 0 || !state_ok(&sec) || !state_at_end(&sec))
			FAIL(ret < 0 ? ret : -EINVAL, "device %s (%s): state section is "
			     "malformed", d->id, d->ops->type);
	}
	for (struct device *d = vm->devices; d; d = d->next) {
		if (!MIG_OP(d, post_load))
			continue;
		ret = call_locked(d, d->ops->mig->post_load);
		if (ret) {
			ret = err_or_eio(ret);
			FAIL(ret, "device %s (%s): after loading its state: %s",
			     d->id, d->ops->type, d->error[0] ? d->error : strerror(-ret));
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
