// SPDX-License-Identifier: MIT
/* The primary's checkpoint driver: epochs, shipping, acks, output commit (checkpoint.h). */
#include "vmm/checkpoint.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/holdq.h"
#include "migration/checkpoint_proto.h"
#include "migration/manifest.h"
#include "migration/state.h"
#include "vmm/dirty_log.h"
#include "vmm/failpoint.h"
#include "vmm/memory.h"
#include "vmm/owner_helper.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PAGE		GUEST_PAGE_SIZE
#define MS		1000000ull

struct primary {
	struct vm *vm;
	struct mig_io *io;
	const struct ckpt_opts *o;
	struct ckpt_stats *st;
	struct mig_writer w;
	uint32_t epoch_ms, hb_ms, failover_ms;
	int64_t phase_ms;		/* -1: no phase */
	uint64_t pages;			/* of RAM */
	size_t words;
	uint64_t *dirty;		/* harvested, not yet staged */
	uint64_t *inflight;		/* pages of the unacknowledged checkpoint */
	uint64_t *resend;		/* pages of a refused one: they go again */
	/* staging: what the pause copied, shipped while the guest runs */
	uint8_t *stage;
	uint64_t *stage_page;
	size_t nr_stage, cap_stage;
	struct state_buf sb;
	uint64_t epoch;			/* the next checkpoint's number */
	uint64_t acked;			/* the last acknowledged one */
	uint64_t unacked;		/* in flight (0: none) */
	uint64_t since;			/* the next checkpoint's base */
	uint64_t t_heard, t_hb, t_resumed, t_sent;
	uint8_t reply[CKPT_REPLY_LEN];
	size_t reply_got;
	bool holding, logging, stopped_ok;
	char *why;
	size_t why_len;
};

void ckpt_stats_init(struct ckpt_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t ckpt_pause_pct(struct ckpt_stats *st, unsigned pct)
{
	uint32_t tmp[CKPT_PAUSE_SAMPLES];
	size_t n;

	pthread_mutex_lock(&st->lock);
	n = st->nr_pauses < CKPT_PAUSE_SAMPLES ? st->nr_pauses : CKPT_PAUSE_SAMPLES;
	memcpy(tmp, st->pause_us, n * sizeof(tmp[0]));
	pthread_mutex_unlock(&st->lock);
	if (!n)
		return 0;
	qsort(tmp, n, sizeof(tmp[0]), cmp_u32);
	return tmp[(n - 1) * pct / 100];
}

/* ---- dirty pages ---- */

static int mark_slot(const struct mem_slot *s, const uint64_t *bitmap, void *opaque)
{
	struct primary *p = opaque;
	uint64_t first = s->offset / PAGE;
	size_t words = guest_mem_bitmap_words(s);

	for (size_t w = 0; w < words; w++)
		for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
			uint64_t page = first + w * 64 + (uint64_t)__builtin_ctzll(bits);

			if (page < p->pages)
				p->dirty[page / 64] |= 1ull << (page % 64);
		}
	return 0;
}

static uint64_t count_dirty(const struct primary *p)
{
	uint64_t n = 0;

	for (size_t i = 0; i < p->words; i++)
		n += (uint64_t)__builtin_popcountll(p->dirty[i] | p->resend[i]);
	return n;
}

/* Copy every harvested (and resent) page into the staging buffer; paused. */
static int stage_pages(struct primary *p)
{
	uint64_t n = count_dirty(p);

	if (n > p->cap_stage) {
		uint8_t *s = realloc(p->stage, n * PAGE);
		uint64_t *sp;

		if (!s)
			return -ENOMEM;
		p->stage = s;
		sp = realloc(p->stage_page, n * sizeof(*sp));
		if (!sp)
			return -ENOMEM;
		p->stage_page = sp;
		p->cap_stage = n;
	}
	p->nr_stage = 0;
	for (size_t w = 0; w < p->words; w++) {
		uint64_t bits = p->dirty[w] | p->resend[w];

		p->inflight[w] = bits;
		p->dirty[w] = p->resend[w] = 0;
		for (; bits; bits &= bits - 1) {
			uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);

			memcpy(p->stage + p->nr_stage * PAGE, p->vm->mem.host + page * PAGE, PAGE);
			p->stage_page[p->nr_stage++] = page;
		}
	}
	return 0;
}

/* ---- the stream ---- */

static int put_manifest(struct primary *p)
{
	struct manifest *m = xzalloc(sizeof(*m));
	void *blob = NULL;
	size_t blen = 0;
	int ret = manifest_from_vm(p->vm, m);

	if (!ret)
		ret = manifest_build(m, &blob, &blen);
	if (!ret)
		ret = mig_put_section(&p->w, MIG_TAG_MANIFEST, blob, blen);
	free(blob);
	free(m);
	return ret;
}

/* Checkpoint 0: every page with data, sent while the guest runs (the log catches later writes). */
static int put_base(struct primary *p)
{
	struct ckpt_mark m;
	int ret = ckpt_put_begin(&p->w, &m, 0, 0);

	for (uint64_t page = 0; !ret && page < p->pages; page++) {
		off_t data = lseek(p->vm->mem.memfd, (off_t)(page * PAGE), SEEK_DATA);

		if (data < 0)
			break;		/* ENXIO: no data after page */
		page = (uint64_t)data / PAGE;
		if (page < p->pages)
			ret = mig_put_page(&p->w, 0, page, p->vm->mem.host + page * PAGE);
	}
	return ret ?: ckpt_put_end(&p->w, &m, 0);
}

static int ship(struct primary *p, uint64_t epoch)
{
	struct ckpt_mark m;
	int ret = ckpt_put_begin(&p->w, &m, epoch, p->since);

	for (size_t i = 0; !ret && i < p->nr_stage; i++) {
		/* a page that became zero goes as a zero run: pass is never 0 here */
		ret = mig_put_page(&p->w, (uint32_t)epoch ?: 1, p->stage_page[i],
				   p->stage + i * PAGE);
		if (i == p->nr_stage / 2)
			failpoint("send", epoch);
	}
	if (!ret)
		ret = mig_flush_ram(&p->w);
	if (!p->nr_stage)
		failpoint("send", epoch);
	if (!ret)
		ret = mig_put_section(&p->w, MIG_TAG_DEVS, p->sb.data, p->sb.len);
	return ret ?: ckpt_put_end(&p->w, &m, epoch);
}

/* ---- the standby's replies ---- */

/* etcd: still the owner?  Else -EPERM: nothing may leave, the VM pauses. */
static int fence_check(struct primary *p)
{
	if (!p->o->owner || ownerh_may_release(p->o->owner))
		return 0;
	snprintf(p->why, p->why_len, "fenced: %s", p->o->owner->why);
	return -EPERM;
}

static int commit(struct primary *p, uint64_t epoch)
{
	int ret;

	failpoint("after-ack-before-release", epoch);
	ret = fence_check(p);
	if (ret)
		return ret;
	ret = devices_output_commit(p->vm, HOLDQ_OP_COMMIT, epoch, 0);
	if (ret)
		snprintf(p->why, p->why_len, "releasing checkpoint %llu's output: %s",
			 (unsigned long long)epoch, strerror(-ret));
	if (p->o->owner)
		ownerh_current(p->o->owner, epoch);
	failpoint("release", epoch);
	pthread_mutex_lock(&p->st->lock);
	p->st->committed = epoch;
	p->st->t_last_ack = now_ns();
	pthread_mutex_unlock(&p->st->lock);
	return ret;
}

static int on_reply(struct primary *p, uint32_t kind, uint64_t epoch)
{
	p->t_heard = now_ns();
	switch (kind) {
	case CKPT_ACK:
		if (epoch != p->unacked || !epoch) {
			snprintf(p->why, p->why_len, "the standby acknowledged checkpoint %llu; "
				 "%llu was in flight", (unsigned long long)epoch,
				 (unsigned long long)p->unacked);
			return -EPROTO;
		}
		p->acked = epoch;
		p->unacked = 0;
		p->since = epoch;
		memset(p->inflight, 0, p->words * 8);
		return commit(p, epoch);
	case CKPT_REFUSE:
		if (epoch != p->unacked || !epoch) {
			snprintf(p->why, p->why_len, "the standby refused checkpoint %llu%s",
				 (unsigned long long)epoch, epoch ? " (not in flight)" : " (the base)");
			return -EPROTO;
		}
		/* its pages go again with the next one, based on the last acknowledged */
		for (size_t w = 0; w < p->words; w++)
			p->resend[w] |= p->inflight[w];
		p->unacked = 0;
		p->since = p->acked;
		pthread_mutex_lock(&p->st->lock);
		p->st->refused++;
		pthread_mutex_unlock(&p->st->lock);
		pr_info("checkpoint: the standby refused checkpoint %llu; resending since %llu",
			(unsigned long long)epoch, (unsigned long long)p->acked);
		return 0;
	case CKPT_STOPPED:
		p->stopped_ok = true;
		return 0;
	default:
		return 0;	/* ALIVE */
	}
}

/* Read what the standby said (non-blocking); -EPIPE when it is gone. */
static int take_replies(struct primary *p)
{
	struct pollfd pf = { .fd = p->io->fd, .events = POLLIN };

	while (poll(&pf, 1, 0) == 1) {
		ssize_t n;

		if (!(pf.revents & POLLIN)) {
			snprintf(p->why, p->why_len, "the standby's connection broke");
			return -EPIPE;
		}
		n = p->io->ops->read(p->io, p->reply + p->reply_got, CKPT_REPLY_LEN - p->reply_got);
		if (n == -EINTR || n == -EAGAIN)
			continue;
		if (n <= 0) {
			snprintf(p->why, p->why_len, "the standby closed the connection%s%s",
				 n ? ": " : "", n ? strerror((int)-n) : "");
			return -EPIPE;
		}
		p->reply_got += (size_t)n;
		if (p->reply_got == CKPT_REPLY_LEN) {
			uint32_t kind;
			uint64_t epoch;
			int ret;

			p->reply_got = 0;
			if (ckpt_reply_decode(p->reply, &kind, &epoch)) {
				snprintf(p->why, p->why_len, "the standby sent garbage");
				return -EPROTO;
			}
			ret = on_reply(p, kind, epoch);
			if (ret)
				return ret;
		}
	}
	return 0;
}

/*
 * Room on the connection now?  A standby that stops reading fills it with
 * heartbeats; they are skipped then (its silence is what counts), so the
 * driver keeps reading replies instead of blocking in a write.
 */
static bool writable(const struct primary *p)
{
	struct pollfd pf = { .fd = p->io->fd, .events = POLLOUT };

	return p->io->fd < 0 || (poll(&pf, 1, 0) == 1 && (pf.revents & POLLOUT));
}

static bool stop_requested(const struct primary *p)
{
	return p->o->stop && atomic_load(p->o->stop);
}

/*
 * Between pauses: read replies, heartbeat, harvest toward the dirty budget,
 * until the epoch is due and the last checkpoint acknowledged.  1: stop
 * requested; -errno: the standby is lost (why says).
 */
static int wait_epoch(struct primary *p)
{
	for (;;) {
		uint64_t now, due = ckpt_epoch_due(p->t_resumed, p->epoch_ms, p->phase_ms),
			 wait_ns;
		struct pollfd pf = { .fd = p->io->fd, .events = POLLIN };
		int ret = take_replies(p);

		if (ret)
			return ret;
		now = now_ns();	/* after the replies: they set t_heard */
		if (stop_requested(p))
			return 1;
		ret = fence_check(p);
		if (ret)
			return ret;
		if (now - p->t_heard > p->failover_ms * MS) {
			snprintf(p->why, p->why_len, "the standby said nothing for %u ms%s",
				 p->failover_ms, p->unacked ? " (a checkpoint unacknowledged)" : "");
			return -ETIMEDOUT;
		}
		if (now - p->t_hb >= p->hb_ms * MS && writable(p)) {
			p->t_hb = now;
			ret = ckpt_put_heartbeat(&p->w, p->epoch - 1, now);
			if (ret) {
				snprintf(p->why, p->why_len, "sending a heartbeat: %s", strerror(-ret));
				return -EPIPE;
			}
		}
		if (p->o->dirty_budget && !p->unacked && now < due) {
			ret = vm_dirty_log_sync(p->vm, mark_slot, p);
			if (ret) {
				snprintf(p->why, p->why_len, "harvesting dirty pages: %s", strerror(-ret));
				return ret;
			}
			if (count_dirty(p) >= p->o->dirty_budget)
				return 0;
		}
		if (now >= due && !p->unacked)
			return 0;
		wait_ns = p->t_hb + p->hb_ms * MS - now;
		if (now < due && due - now < wait_ns)
			wait_ns = due - now;
		if (p->o->dirty_budget && wait_ns > MS)
			wait_ns = MS;
		poll(&pf, 1, (int)(wait_ns / MS) + 1);
	}
}

uint64_t ckpt_epoch_due(uint64_t resumed_ns, uint32_t epoch_ms, int64_t phase_ms)
{
	uint64_t period = (uint64_t)epoch_ms * MS, phase, earliest, due;

	if (phase_ms < 0)
		return resumed_ns + period;
	phase = (uint64_t)phase_ms * MS % period;
	earliest = resumed_ns + period / 2;
	due = earliest - earliest % period + phase;
	return due < earliest ? due + period : due;
}

static void record_pause(struct primary *p, uint64_t ns)
{
	pthread_mutex_lock(&p->st->lock);
	p->st->pause_us[p->st->nr_pauses++ % CKPT_PAUSE_SAMPLES] = (uint32_t)(ns / 1000);
	pthread_mutex_unlock(&p->st->lock);
}

/* Steps 1-5 of an epoch: everything the guest waits for. */
static int take_checkpoint(struct primary *p, uint64_t epoch)
{
	int (*pause)(struct vm *, char *, size_t) = p->o->pause ?: vm_pause;
	int (*resume)(struct vm *, char *, size_t) = p->o->resume ?: vm_resume;
	uint64_t t0 = now_ns();
	char rwhy[160];
	int ret, ret2;

	ret = pause(p->vm, p->why, p->why_len);
	if (ret)
		return ret;
	failpoint("after-pause", epoch);
	ret = vm_dirty_log_sync(p->vm, mark_slot, p);
	if (ret)
		snprintf(p->why, p->why_len, "harvesting dirty pages: %s", strerror(-ret));
	failpoint("harvest", epoch);
	if (!ret) {
		state_free(&p->sb);
		state_init_writer(&p->sb);
		ret = devices_save(p->vm, &p->sb);
		if (!ret && !state_ok(&p->sb))
			ret = -ENOMEM;
		if (ret)
			snprintf(p->why, p->why_len, "saving vCPU, VM and device state: %s",
				 strerror(-ret));
	}
	failpoint("stop-copy", epoch);
	if (!ret)
		ret = stage_pages(p);
	/* frames from here on belong to the next epoch */
	if (!ret) {
		ret = devices_output_commit(p->vm, HOLDQ_OP_EPOCH, epoch + 1, 0);
		if (ret && ret != -ENODEV)	/* -ENODEV: a device is gone (device_died) */
			ret = -EIO;
	}
	ret2 = resume(p->vm, rwhy, sizeof(rwhy));
	if (ret2)
		pr_err("checkpoint %llu: resuming: %s", (unsigned long long)epoch, rwhy);
	p->t_resumed = now_ns();
	record_pause(p, p->t_resumed - t0);
	if (ret && !p->why[0])
		snprintf(p->why, p->why_len, "checkpoint %llu: %s", (unsigned long long)epoch,
			 strerror(-ret));
	return ret;
}

static int start(struct primary *p)
{
	struct ckpt_hello h = {
		.version = CKPT_PROTO_VERSION, .epoch_ms = p->epoch_ms,
		.heartbeat_ms = p->hb_ms, .failover_ms = p->failover_ms,
	};
	int ret = mig_writer_init(&p->w, p->io, 0);

	if (!ret)
		ret = put_manifest(p);
	if (!ret)
		ret = ckpt_put_hello(&p->w, &h);
	if (ret) {
		snprintf(p->why, p->why_len, "starting the checkpoint stream: %s", strerror(-ret));
		return ret;
	}
	ret = vm_dirty_log_start(p->vm);
	if (ret) {
		snprintf(p->why, p->why_len, "starting the dirty log: %s", strerror(-ret));
		return ret;
	}
	p->logging = true;
	/* from here on every frame the guest sends waits for its checkpoint */
	ret = devices_output_commit(p->vm, HOLDQ_OP_START, p->epoch, p->o->max_frames);
	if (ret) {
		snprintf(p->why, p->why_len, "a device cannot hold its output: %s", strerror(-ret));
		return ret;
	}
	p->holding = true;
	ret = put_base(p);
	if (ret)
		snprintf(p->why, p->why_len, "sending the base copy of RAM: %s", strerror(-ret));
	return ret;
}

/* Tell the standby protection ends (it then never runs); true once it confirmed. */
static bool standby_stops(struct primary *p)
{
	uint64_t until = now_ns() + p->failover_ms * MS;

	if (!ckpt_put_stop(&p->w, p->epoch - 1)) {
		while (!p->stopped_ok && now_ns() < until) {
			struct pollfd pf = { .fd = p->io->fd, .events = POLLIN };

			poll(&pf, 1, 10);
			if (take_replies(p) == -EPIPE)
				break;
		}
	}
	return p->stopped_ok;
}

/* Protection ends on request: the standby is told first, then what is held leaves. */
static int stop_cleanly(struct primary *p)
{
	if (!standby_stops(p))
		pr_info("checkpoint: the standby did not confirm the stop");
	snprintf(p->why, p->why_len, "stopped on request%s",
		 p->stopped_ok ? "" : " (the standby did not confirm)");
	return 0;
}

static void pause_by_loss(struct primary *p, const char *reason)
{
	int (*pause)(struct vm *, char *, size_t) = p->o->pause ?: vm_pause;
	char why[160];

	if (pause(p->vm, why, sizeof(why)))
		pr_err("checkpoint: pausing: %s", why);
	pthread_mutex_lock(&p->st->lock);
	p->st->paused_by_loss = true;
	pthread_mutex_unlock(&p->st->lock);
	pr_err("checkpoint: %s: VM paused, output held", reason);
}

/*
 * --on-standby-loss pause with --etcd: a paused owner would deadlock a live
 * standby behind a cut link, so it hands over.  What the standby holds is
 * current: every released frame's epoch was acked (commit), and what is still
 * held belongs to unacked epochs the standby will not resume past -- those
 * frames are dropped (a lossy network to the guest), then the key is given
 * up without a stale mark and the standby takes it at once.
 */
static void give_up_owner(struct primary *p)
{
	char lost[200];
	int err;

	devices_output_commit(p->vm, HOLDQ_OP_DISCARD, 0, 0);
	err = ownerh_abandon(p->o->owner, 5000);
	if (err)
		pr_err("checkpoint: giving up the owner key: %s (its lease expires unrenewed)",
		       strerror(-err));
	pthread_mutex_lock(&p->st->lock);
	p->st->gave_up_owner = true;
	pthread_mutex_unlock(&p->st->lock);
	snprintf(lost, sizeof(lost), "%s", p->why);
	snprintf(p->why, p->why_len, "standby lost (%.200s); gave up ownership so the standby "
		 "can take over; output of unacknowledged checkpoints discarded", lost);
}

/* --on-standby-loss: continue (release, unprotected) or pause (keep it held). */
static void standby_lost(struct primary *p)
{
	if (p->o->pause_on_loss) {
		p->holding = false;	/* stays held: nothing leaves unprotected */
		pause_by_loss(p, p->why);
		if (p->o->owner)	/* paused first: no frame comes after the discard */
			give_up_owner(p);
	} else if (p->o->owner && ownerh_mark_stale(p->o->owner, p->acked, (int)p->failover_ms * 10)) {
		/* etcd could not record the standby's checkpoint stale: nothing may leave */
		p->holding = false;
		pause_by_loss(p, "etcd did not record the standby's checkpoint stale");
	} else {
		pr_err("checkpoint: standby lost (%s): running unprotected", p->why);
	}
}

/*
 * A passthrough device is gone (its NIC died): that is this host failing
 * (issue 11).  Nothing held may leave, the VM stops and hdvm exits; the
 * stream ends without a stop, so the standby takes over.
 */
static void device_died(struct primary *p)
{
	int (*pause)(struct vm *, char *, size_t) = p->o->pause ?: vm_pause;
	char why[160];

	p->holding = false;
	devices_output_commit(p->vm, HOLDQ_OP_DISCARD, 0, 0);
	if (pause(p->vm, why, sizeof(why)))
		pr_err("checkpoint: pausing: %s", why);
	pr_err("checkpoint: %s: this host's NIC failed; VM stopped, the standby takes over",
	       p->why);
	vm_request_shutdown(p->vm, 1, "a passthrough device died while the VM was protected "
			    "(the standby takes over)");
}

/*
 * This side could not take a checkpoint (pause, harvest, save, a device's
 * epoch): the standby is healthy and would take over from its last
 * checkpoint as soon as the stream closes, so what is held (replies from
 * state it does not have) may leave only once it has confirmed it stops;
 * otherwise it is lost (--on-standby-loss decides).
 */
static void checkpoint_failed(struct primary *p)
{
	size_t n = strlen(p->why);

	if (standby_stops(p)) {
		snprintf(p->why + n, p->why_len - n, " (the standby stopped; running unprotected)");
		pr_err("checkpoint: %s", p->why);
		return;
	}
	snprintf(p->why + n, p->why_len - n, " (the standby did not confirm a stop)");
	standby_lost(p);
}

/* etcd fenced this side: nothing it holds may leave; pause. */
static void fenced(struct primary *p)
{
	p->holding = false;
	pthread_mutex_lock(&p->st->lock);
	p->st->fenced = true;
	pthread_mutex_unlock(&p->st->lock);
	pause_by_loss(p, p->why);
}

int ckpt_primary_run(struct vm *vm, struct mig_io *io, const struct ckpt_opts *o,
		     struct ckpt_stats *st, char *why, size_t len)
{
	struct primary p = {
		.vm = vm, .io = io, .o = o, .st = st, .why = why, .why_len = len,
		.epoch_ms = o->epoch_ms ?: CKPT_DEFAULT_EPOCH_MS,
		.hb_ms = o->heartbeat_ms ?: CKPT_DEFAULT_HEARTBEAT_MS,
		.failover_ms = o->failover_ms ?: CKPT_DEFAULT_FAILOVER_MS,
		.phase_ms = o->phased ? (int64_t)o->epoch_phase_ms : -1,
		.epoch = o->first_epoch ?: 1,
	};
	struct mig_io bio;
	int ret;

	why[0] = 0;
	if (p.hb_ms >= p.failover_ms) {
		snprintf(why, len, "--heartbeat-ms %u must be shorter than --failover-ms %u",
			 p.hb_ms, p.failover_ms);
		return -EINVAL;
	}
	p.pages = vm->mem.size / PAGE;
	p.words = (p.pages + 63) / 64;
	p.dirty = xzalloc(p.words * 8);
	p.inflight = xzalloc(p.words * 8);
	p.resend = xzalloc(p.words * 8);
	p.since = p.epoch - 1;
	state_init_writer(&p.sb);
	/* a standby that stops reading must not block the driver past the failover time */
	ckpt_io_bounded(&bio, io, (int)p.failover_ms);
	p.io = &bio;
	pthread_mutex_lock(&st->lock);
	st->role = CKPT_PRIMARY;
	st->paused_by_loss = false;
	st->gave_up_owner = false;
	st->why[0] = 0;
	pthread_mutex_unlock(&st->lock);

	ret = start(&p);
	p.t_heard = p.t_hb = p.t_resumed = now_ns();
	while (!ret) {
		uint64_t epoch = p.epoch, before;

		ret = wait_epoch(&p);
		if (ret)
			break;
		ret = take_checkpoint(&p, epoch);
		if (ret)
			break;
		p.epoch++;
		if (o->epoch_done)
			o->epoch_done(epoch, o->opaque);
		before = bio.bytes_out;
		ret = ship(&p, epoch);
		if (ret) {
			snprintf(why, len, "sending checkpoint %llu: %s", (unsigned long long)epoch,
				 strerror(-ret));
			ret = -EPIPE;
			break;
		}
		p.unacked = epoch;
		p.t_sent = now_ns();
		pthread_mutex_lock(&st->lock);
		st->epoch = epoch;
		st->last_bytes = bio.bytes_out - before;
		st->total_bytes = bio.bytes_out;
		st->last_pages = p.nr_stage;
		pthread_mutex_unlock(&st->lock);
	}
	if (ret == 1) {
		ret = stop_cleanly(&p);
		if (fence_check(&p))	/* fenced while stopping: nothing leaves */
			ret = -EPERM;
	}
	if (ret == -EPERM)
		fenced(&p);
	else if (ret == -ENODEV)
		device_died(&p);
	else if (p.holding && (ret == -EPIPE || ret == -ETIMEDOUT || ret == -EPROTO))
		standby_lost(&p);
	else if (p.holding && ret < 0)
		checkpoint_failed(&p);
	if (p.holding)		/* stopped, lost with "continue", or failed to start */
		devices_output_commit(vm, HOLDQ_OP_STOP, 0, 0);
	if (p.logging)
		vm_dirty_log_stop(vm);
	pthread_mutex_lock(&st->lock);
	st->role = CKPT_UNPROTECTED;
	snprintf(st->why, sizeof(st->why), "%s", why);
	pthread_mutex_unlock(&st->lock);
	state_free(&p.sb);
	mig_writer_free(&p.w);
	mig_io_close(&bio);
	free(p.dirty);
	free(p.inflight);
	free(p.resend);
	free(p.stage);
	free(p.stage_page);
	return ret == -EPROTO ? -EPIPE : ret;
}
