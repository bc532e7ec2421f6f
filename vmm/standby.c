// SPDX-License-Identifier: MIT
/* The standby's receiver: checkpoints staged, verified, applied, acknowledged (standby.h). */
#include "vmm/standby.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/device.h"
#include "migration/manifest.h"
#include "migration/state.h"
#include "vmm/failpoint.h"
#include "vmm/util.h"
#include "vmm/vm.h"

int standby_begin(struct standby *sb, struct mig_io *io, char *why, size_t len)
{
	const uint8_t *body;
	uint64_t blen;
	uint32_t tag;
	int ret;

	memset(sb, 0, sizeof(*sb));
	pthread_mutex_init(&sb->lock, NULL);
	ckpt_stage_init(&sb->stage);
	sb->inner = io;
	ret = migrate_recv_begin(&sb->in, io, why, len);
	if (ret)
		return ret;
	if (sb->in.memfd >= 0) {
		snprintf(why, len, "a checkpoint stream does not pass RAM as a memfd");
		return -EPROTO;
	}
	ret = mig_read_section(&sb->in.r, &tag, &body, &blen, why, len);
	if (ret)
		return ret;
	if (tag != CKPT_TAG_HELLO) {
		snprintf(why, len, "this is not a checkpoint stream (no hello after the manifest: "
			 "'hdvm migrate' goes to 'hdvm run --incoming')");
		return -EPROTO;
	}
	ret = ckpt_parse_hello(body, blen, &sb->hello, why, len);
	sb->t_heard = now_ns();
	return ret;
}

static void reply(struct standby *sb, uint32_t kind, uint64_t epoch)
{
	uint8_t b[CKPT_REPLY_LEN];
	int ret;

	ckpt_reply_encode(b, kind, epoch);
	ret = mig_write_all(sb->in.io, b, sizeof(b));
	if (ret)
		pr_debug("standby: reply %u/%llu: %s", kind, (unsigned long long)epoch,
			 strerror(-ret));
}

static void refuse(struct standby *sb, const char *why)
{
	uint64_t epoch = sb->stage.epoch;

	pr_err("standby: checkpoint %llu refused, keeping checkpoint %llu: %s",
	       (unsigned long long)epoch, (unsigned long long)sb->applied, why);
	ckpt_stage_reset(&sb->stage);
	sb->skipping = true;
	pthread_mutex_lock(&sb->lock);
	sb->refused++;
	pthread_mutex_unlock(&sb->lock);
	reply(sb, CKPT_REFUSE, epoch);
}

/* A verified checkpoint goes in whole: RAM into the memfd, device state kept. */
static int apply(struct standby *sb, struct vm *vm, const struct ckpt_end *e, char *why,
		 size_t len)
{
	struct ckpt_stage *s = &sb->stage;
	int ret = ckpt_stage_verify(s, e, why, len);

	if (ret)
		return ret;
	if (s->epoch == 0 ? sb->have_base : (!sb->have_base || s->since != sb->applied ||
					     s->epoch <= sb->applied))
		return mig_refuse(-EPROTO, why, len, "checkpoint %llu is based on %llu; this "
				  "standby holds %llu%s", (unsigned long long)s->epoch,
				  (unsigned long long)s->since, (unsigned long long)sb->applied,
				  sb->have_base ? "" : " (no base copy yet)");
	failpoint("standby-apply", s->epoch);
	ret = ckpt_stage_apply_ram(s, vm->mem.memfd);
	if (ret)
		return mig_refuse(ret, why, len, "writing RAM: %s", strerror(-ret));
	if (s->devs) {
		free(sb->devs);
		sb->devs = s->devs;
		sb->devs_len = s->devs_len;
		s->devs = NULL;
	}
	pthread_mutex_lock(&sb->lock);
	if (s->epoch)
		sb->applied = s->epoch;
	sb->bytes += s->bytes;
	sb->t_applied = now_ns();
	pthread_mutex_unlock(&sb->lock);
	sb->have_base = true;
	ckpt_stage_reset(s);
	return 0;
}

/* One section of the stream: 0 go on, or an outcome. */
static int on_section(struct standby *sb, struct vm *vm, uint32_t tag, const uint8_t *body,
		      uint64_t blen)
{
	struct ckpt_end e;
	uint64_t a, b;
	char why[256] = "";
	int ret = 0;

	switch (tag) {
	case CKPT_TAG_HEARTBEAT:
		reply(sb, CKPT_ALIVE, sb->applied);
		return 0;
	case CKPT_TAG_STOP:
		reply(sb, CKPT_STOPPED, sb->applied);
		snprintf(sb->why, sizeof(sb->why), "the primary ended protection");
		return STANDBY_STOPPED;
	case CKPT_TAG_BEGIN:
		if (ckpt_parse_u64s(body, blen, &a, &b))
			return STANDBY_BROKEN;
		sb->skipping = false;
		ckpt_stage_reset(&sb->stage);
		return ckpt_stage_begin(&sb->stage, a, b, why, sizeof(why)) ? STANDBY_BROKEN : 0;
	case CKPT_TAG_END:
		if (sb->skipping)
			return 0;
		if (ckpt_parse_end(body, blen, &e))
			return STANDBY_BROKEN;
		ret = apply(sb, vm, &e, why, sizeof(why));
		if (ret)
			refuse(sb, why);
		else if (e.epoch)
			reply(sb, CKPT_ACK, e.epoch);
		return 0;
	default:
		if (sb->skipping)
			return 0;
		ret = ckpt_stage_section(&sb->stage, tag, body, blen, vm->mem.size, why, sizeof(why));
		if (ret)
			refuse(sb, why);
		return 0;
	}
}

enum standby_outcome standby_receive(struct standby *sb, struct vm *vm)
{
	char why[256] = "";
	int ret;

	if (manifest_check_devices(&sb->in.m, vm, why, sizeof(why)) ||
	    vm->mem.size != sb->in.m.mem_size) {
		snprintf(sb->why, sizeof(sb->why), "%s", why[0] ? why : "RAM size differs");
		return STANDBY_BROKEN;
	}
	/* reads and replies bounded by the failover time */
	ckpt_io_bounded(&sb->bounded, sb->in.io, (int)sb->hello.failover_ms);
	sb->in.r.io = &sb->bounded;
	sb->in.io = &sb->bounded;
	for (;;) {
		const uint8_t *body;
		uint64_t blen;
		uint32_t tag;

		if (atomic_load(&vm->shutdown)) {
			snprintf(sb->why, sizeof(sb->why), "the standby was stopped");
			return STANDBY_STOPPED;
		}
		/* a section in the middle of arriving is waited for, bounded by the timeout */
		ret = mig_read_section(&sb->in.r, &tag, &body, &blen, why, sizeof(why));
		if (ret == -ETIMEDOUT) {
			snprintf(sb->why, sizeof(sb->why), "no word from the primary for %u ms",
				 sb->hello.failover_ms);
			return STANDBY_ACTIVATE;
		}
		if (ret && (strstr(why, "truncated") || strstr(why, "empty") || ret != -EPROTO)) {
			snprintf(sb->why, sizeof(sb->why), "the primary's connection ended (%s)", why);
			return STANDBY_ACTIVATE;
		}
		if (ret && strstr(why, "crc mismatch")) {
			/* the section was read whole: the framing holds, the checkpoint does not */
			if (sb->stage.open && !sb->skipping)
				refuse(sb, why);
			continue;
		}
		if (ret) {
			snprintf(sb->why, sizeof(sb->why), "the checkpoint stream is broken: %s", why);
			if (sb->stage.open)
				refuse(sb, why);
			return STANDBY_BROKEN;
		}
		pthread_mutex_lock(&sb->lock);
		sb->t_heard = now_ns();
		pthread_mutex_unlock(&sb->lock);
		ret = on_section(sb, vm, tag, body, blen);
		if (ret == STANDBY_BROKEN && !sb->why[0])
			snprintf(sb->why, sizeof(sb->why), "malformed checkpoint record");
		if (ret)
			return ret;
	}
}

int standby_activate(struct standby *sb, struct vm *vm, char *why, size_t len)
{
	struct state_buf s;
	int ret;

	ckpt_stage_reset(&sb->stage);	/* a checkpoint half received never counts */
	if (!sb->applied || !sb->devs) {
		snprintf(why, len, "no complete checkpoint arrived before the primary was lost");
		return -ENODATA;
	}
	state_init_reader(&s, sb->devs, sb->devs_len);
	ret = devices_load(vm, &s, why, len);
	if (!ret && !state_at_end(&s)) {
		snprintf(why, len, "device state of checkpoint %llu has trailing bytes",
			 (unsigned long long)sb->applied);
		ret = -EPROTO;
	}
	pthread_mutex_lock(&sb->lock);
	sb->active = !ret;
	pthread_mutex_unlock(&sb->lock);
	return ret;
}

void standby_end(struct standby *sb)
{
	ckpt_stage_free(&sb->stage);
	free(sb->devs);
	sb->devs = NULL;
	if (sb->in.io == &sb->bounded) {
		sb->in.io = sb->inner;
		mig_io_close(&sb->bounded);
	}
	migrate_recv_end(&sb->in);
}
