// SPDX-License-Identifier: MIT
#include "vmm/migrate.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/device.h"
#include "devices/virtio/virtio_net.h"
#include "migration/state.h"
#include "vmm/dirty_log.h"
#include "vmm/memory.h"
#include "vmm/migrate_policy.h"
#include "vmm/postcopy_src.h"
#include "vmm/postcopy_vm.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define PAGE		GUEST_PAGE_SIZE
#define ANSWER_MAX	512
#define CHECK_BYTES	(64ull << 10)
#define LIMIT_STEP_NS	20000000ull	/* --max-bandwidth sleeps, cancel checked between */	/* --max-bandwidth and early answers, this often */

/* ---- source ---- */

struct sender {
	struct vm *vm;
	struct mig_writer w;
	const struct migrate_opts *o;
	uint32_t pass;
	uint64_t dirty_pages;		/* found by the last sync */
	uint64_t t_window, bytes_window;	/* bandwidth limit accounting */
	uint64_t checked_at;		/* bytes_out at the last limit/answer check */
	char *why;
	size_t why_len;
};

static bool cancelled(const struct sender *s)
{
	return s->o->cancel && atomic_load(s->o->cancel);
}

static void cancel_reason(const struct sender *s, char *why, size_t len)
{
	snprintf(why, len, "cancelled%s%s", s->o->cancel_reason && *s->o->cancel_reason ?
		 " by " : "", s->o->cancel_reason ? s->o->cancel_reason : "");
}

/*
 * The stream stops here for a reason of the source's (cancel, --timeout, a
 * local failure): say so in it, so the destination exits with that reason
 * instead of "truncated".  Not when the destination refused or went away.
 */
static void send_cancel(struct sender *s, int ret, const char *why)
{
	if (ret == -EPROTO || ret == -EPIPE || s->w.err)
		return;
	mig_put_section(&s->w, MIG_TAG_CANCEL, why, strlen(why));
}

/* Sleep as long as --max-bandwidth asks for what went out since the window began. */
static void limit_bandwidth(struct sender *s)
{
	uint64_t sent = s->w.io->bytes_out - s->bytes_window, due_ns, spent;

	if (!s->o->max_bandwidth)
		return;
	due_ns = sent * 1000000000ull / s->o->max_bandwidth;
	spent = now_ns() - s->t_window;
	/* in steps, so a cancel is seen while a slow link is waited for */
	for (uint64_t left = due_ns > spent ? due_ns - spent : 0; left && !cancelled(s);) {
		uint64_t ns = left < LIMIT_STEP_NS ? left : LIMIT_STEP_NS;
		struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ns };

		nanosleep(&ts, NULL);
		left -= ns;
	}
	if (now_ns() - s->t_window > 1000000000ull) {
		s->t_window = now_ns();
		s->bytes_window = s->w.io->bytes_out;
	}
}

static int read_answer(struct mig_io *io, char *why, size_t len);

/* The destination answers early only to refuse: stop sending and say why. */
static int early_answer(struct sender *s)
{
	struct pollfd p = { .fd = s->w.io->fd, .events = POLLIN };

	if (s->w.io->fd < 0 || s->w.io->one_way || s->o->no_answer || poll(&p, 1, 0) != 1)
		return 0;
	return read_answer(s->w.io, s->why, s->why_len) ?: -EPROTO;
}

static int put_page(struct sender *s, uint64_t page)
{
	int ret = mig_put_page(&s->w, s->pass, page, s->vm->mem.host + page * PAGE);

	/* by bytes gone out, not page numbers: sparse RAM skips any page-number stride */
	if (!ret && s->w.io->bytes_out - s->checked_at >= CHECK_BYTES) {
		s->checked_at = s->w.io->bytes_out;
		limit_bandwidth(s);
		ret = early_answer(s);
	}
	return ret;
}

/* Pass 0: every page with data (holes in the memfd were never written). */
static int send_all_ram(struct sender *s)
{
	uint64_t size = s->vm->mem.size, off = 0;
	int fd = s->vm->mem.memfd;

	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		if ((uint64_t)data >= size)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		for (uint64_t p = (uint64_t)data / PAGE; p < ((uint64_t)hole + PAGE - 1) / PAGE; p++) {
			int ret = put_page(s, p);

			if (ret)
				return ret;
			if (cancelled(s))
				return -ECANCELED;
		}
		off = (uint64_t)hole;
	}
	return 0;
}

static int send_dirty_slot(const struct mem_slot *slot, const uint64_t *bitmap, void *opaque)
{
	struct sender *s = opaque;
	size_t words = guest_mem_bitmap_words(slot);

	for (size_t w = 0; w < words; w++) {
		for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
			uint64_t page = slot->offset / PAGE + w * 64 + (uint64_t)__builtin_ctzll(bits);
			int ret;

			if (page >= s->vm->mem.size / PAGE)
				continue;
			s->dirty_pages++;
			ret = put_page(s, page);
			if (ret)
				return ret;
		}
	}
	return cancelled(s) ? -ECANCELED : 0;
}

static int send_manifest(struct sender *s, char *why, size_t len)
{
	struct manifest *m = xzalloc(sizeof(*m));
	void *blob = NULL;
	size_t blen = 0;
	int ret = manifest_from_vm(s->vm, m);

	if (!ret)
		ret = manifest_build(m, &blob, &blen);
	if (ret)
		snprintf(why, len, "building the manifest: %s", strerror(-ret));
	else
		ret = mig_put_section(&s->w, MIG_TAG_MANIFEST, blob, blen);
	free(blob);
	free(m);
	return ret;
}

/*
 * unix: the destination shares this host, and its --net devices cannot open
 * the TAPs this VM holds: each one's fd goes over, in --net order.  A passed
 * fd is a copy: if the migration fails, this VM keeps its TAPs as they were.
 */
static int send_tap_fds(struct vm *vm, struct mig_io *io, char *why, size_t len)
{
	for (struct device *d = vm->devices; d; d = d->next) {
		int fd = virtio_net_tap_fd(d), ret;

		if (fd == -ENODEV)
			continue;	/* not a paravirtual NIC */
		ret = fd < 0 ? fd : io->ops->send_fd(io, fd);
		if (ret) {
			snprintf(why, len, "passing %s's TAP fd: %s", d->id, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The destination's one line: "OK" or "ERR why". */
static int read_answer(struct mig_io *io, char *why, size_t len)
{
	char line[ANSWER_MAX];
	size_t n = 0;

	while (n < sizeof(line) - 1) {
		ssize_t r = io->ops->read(io, line + n, 1);

		if (r == -EINTR)
			continue;
		if (r <= 0) {
			snprintf(why, len, "the destination closed the connection before it "
				 "answered (it failed or went away)");
			return -EPIPE;
		}
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = 0;
	if (!strcmp(line, "OK"))
		return 0;
	snprintf(why, len, "the destination refused: %s",
		 strncmp(line, "ERR ", 4) ? line : line + 4);
	return -EPROTO;
}

/* What the devices have ready in PRE_COPY goes out between RAM passes. */
static int send_device_precopy(struct sender *s, struct migrate_result *res)
{
	struct state_buf sb;
	uint64_t bytes = 0;
	int ret;

	state_init_writer(&sb);
	ret = devices_save_iterate(s->vm, &sb, &bytes);
	if (!ret && bytes) {
		ret = mig_put_section(&s->w, MIG_TAG_DEV_PRECOPY, sb.data, sb.len);
		res->device_precopy_bytes += bytes;
	}
	state_free(&sb);
	/* a failed write is the stream's: the destination's answer may say why (out:) */
	if (ret && !s->why[0] && !s->w.err)
		snprintf(s->why, s->why_len, "pass %u: device pre-copy: %s", s->pass,
			 strerror(-ret));
	return ret;
}

/*
 * unix: with the RAM's memfd: no RAM passes, but what the devices have in
 * PRE_COPY still goes while the guest runs (QEMU's VFIO iterates with
 * x-ignore-shared too), so STOP_COPY -- the downtime -- carries only the
 * rest.  Until they have nothing more or a bounded number of rounds.
 */
#define DEVICE_ONLY_PRECOPY_ROUNDS	64

static int device_only_precopy(struct sender *s, struct migrate_result *res, char *why,
			       size_t len)
{
	for (unsigned round = 0; round < DEVICE_ONLY_PRECOPY_ROUNDS; round++) {
		uint64_t before = res->device_precopy_bytes, pending = 0;
		int ret = send_device_precopy(s, res);

		if (!ret)
			ret = devices_pending_bytes(s->vm, &pending);
		if (ret) {
			if (!why[0] && !s->w.err)
				snprintf(why, len, "device pre-copy: %s", strerror(-ret));
			return ret;
		}
		if (!pending || res->device_precopy_bytes == before)
			return 0;
		if (cancelled(s)) {
			cancel_reason(s, why, len);
			return -ECANCELED;
		}
	}
	return 0;
}

static uint64_t div_or(uint64_t a, uint64_t b, uint64_t dflt)
{
	return b ? a / b : dflt;
}

/*
 * Pre-copy passes, RAM then what the devices have in PRE_COPY, until the
 * policy (vmm/migrate_policy.h) says switch over, throttle or give up.
 */
static int precopy(struct sender *s, uint64_t t0, struct migrate_result *res, char *why,
		   size_t len)
{
	struct converge_in ci = {
		.downtime_ms = s->o->downtime_ms ?: MIGRATE_DEFAULT_DOWNTIME_MS,
		.timeout_ms = s->o->timeout_ms, .max_bandwidth = s->o->max_bandwidth,
		.auto_converge = !s->o->no_auto_converge,
	};
	struct converge_out co = { 0 };
	struct migrate_progress p = { 0 };
	uint64_t prev_sent = 0;
	int ret;

	for (;;) {
		uint64_t t = now_ns(), before = s->w.io->bytes_out, dt, dev_pending = 0;

		if (s->pass == 0)
			ret = send_all_ram(s);
		else
			ret = vm_dirty_log_sync(s->vm, send_dirty_slot, s);
		if (!ret)
			ret = mig_flush_ram(&s->w);
		if (!ret)
			limit_bandwidth(s);	/* the pass's last batch counts too */
		if (!ret)
			ret = send_device_precopy(s, res);
		if (!ret)
			ret = devices_pending_bytes(s->vm, &dev_pending);
		if (ret) {
			if (ret == -ECANCELED)
				cancel_reason(s, why, len);
			else if (!why[0] && !s->w.err)	/* a failed write: the answer says why */
				snprintf(why, len, "pass %u: sending RAM: %s", s->pass, strerror(-ret));
			return ret;
		}
		dt = now_ns() - t;
		p.pass = s->pass;
		p.sent_bytes = s->w.io->bytes_out;
		p.bandwidth = div_or((s->w.io->bytes_out - before) * 1000000000ull, dt, 0);
		/* the pages dirtied while the last pass ran were this pass's work */
		if (s->pass)
			p.dirty_rate = div_or(s->dirty_pages * PAGE * 1000000000ull, dt, 0);
		/* what the devices still hold back counts as downtime, like dirty RAM */
		p.device_pending_bytes = dev_pending;
		p.remaining_bytes = (s->pass ? s->dirty_pages * PAGE : 0) + dev_pending;

		ci.pass = s->pass;
		ci.remaining_bytes = p.remaining_bytes;
		ci.pass_sent_bytes = prev_sent;
		ci.pass_dirty_bytes = s->dirty_pages * PAGE;
		ci.bandwidth = p.bandwidth;
		ci.elapsed_ms = (now_ns() - t0) / 1000000;
		ci.throttle_pct = co.throttle_pct;
		ci.high_dirty_passes = co.high_dirty_passes;
		migrate_converge(&ci, &co);
		prev_sent = s->w.io->bytes_out - before;
		p.expected_downtime_ms = co.expected_downtime_ms;
		p.throttle_pct = co.throttle_pct;
		if (s->o->progress)
			s->o->progress(&p, s->o->opaque);
		s->pass++;
		s->dirty_pages = 0;
		if (co.action == CONVERGE_SWITCHOVER)
			return 0;
		if (s->o->postcopy && s->pass >= s->o->postcopy_after)
			return 1;	/* not converged after N passes: switch to post-copy */
		if (co.action == CONVERGE_GIVE_UP) {
			snprintf(why, len, "did not converge within %llu ms: %llu ms of downtime "
				 "expected after pass %u (limit %llu ms, dirty rate %llu MiB/s, "
				 "bandwidth %llu MiB/s, vCPUs throttled %u %%)",
				 (unsigned long long)s->o->timeout_ms,
				 (unsigned long long)p.expected_downtime_ms, p.pass,
				 (unsigned long long)ci.downtime_ms,
				 (unsigned long long)(p.dirty_rate >> 20),
				 (unsigned long long)(p.bandwidth >> 20), co.throttle_pct);
			return -ETIMEDOUT;
		}
		if (co.action == CONVERGE_THROTTLE) {
			ret = vm_throttle_set(s->vm, co.throttle_pct);
			if (ret) {
				snprintf(why, len, "throttling the vCPUs: %s", strerror(-ret));
				return ret;
			}
			res->throttle_pct = co.throttle_pct;
			pr_info("migration: pass %u: the guest dirties faster than the link; vCPUs "
				"throttled to %u %%", p.pass, co.throttle_pct);
		}
		if (cancelled(s)) {
			cancel_reason(s, why, len);
			return -ECANCELED;
		}
	}
}

int vm_migrate_send(struct vm *vm, struct mig_io *io, const struct migrate_opts *o,
		    struct migrate_result *res, char *why, size_t len)
{
	struct sender s = { .vm = vm, .o = o, .why = why, .why_len = len };
	bool was_running = vm->state == VM_RUNNING, paused = false, logging = false;
	bool dev_precopy = false;
	bool end_sent = false;
	bool to_postcopy = o->postcopy && !o->postcopy_after, committed = false;
	uint64_t t0 = now_ns(), t_pause = 0;
	struct state_buf sb;
	int ret;

	why[0] = 0;
	memset(res, 0, sizeof(*res));
	if (!was_running && vm->state != VM_PAUSED) {
		snprintf(why, len, "cannot migrate a VM that is %s", vm_state_name(vm->state));
		return -EINVAL;
	}
	ret = postcopy_src_check(vm, io, o, why, len);
	if (ret)
		return ret;
	if (o->ram_by_fd && !io->ops->send_fd) {
		snprintf(why, len, "this transport cannot pass the RAM's memfd");
		return -EINVAL;
	}
	s.t_window = t0;
	/* e.g. a CompSC guest that did not opt in */
	ret = devices_can_migrate(vm, o->postcopy ? DEVICE_MIG_POSTCOPY : 0, why, len);
	if (ret)
		return ret;
	if (o->net_by_fd && !io->ops->send_fd) {
		snprintf(why, len, "this transport cannot pass the TAP fds");
		return -EINVAL;
	}
	ret = mig_writer_init(&s.w, io, (o->ram_by_fd ? MIG_F_RAM_BY_FD : 0) |
			      (o->postcopy ? MIG_F_POSTCOPY : 0) |
			      (o->net_by_fd ? MIG_F_NET_BY_FD : 0));
	if (!ret && o->ram_by_fd)
		ret = io->ops->send_fd(io, vm->mem.memfd);
	if (!ret)
		ret = send_manifest(&s, why, len);
	if (!ret && o->net_by_fd)
		ret = send_tap_fds(vm, io, why, len);
	if (ret)
		goto out;
	if (o->whole) {
		/* a snapshot: the VM is paused already, its RAM goes once */
		if (was_running) {
			snprintf(why, len, "a whole-VM save needs the VM paused first");
			ret = -EINVAL;
			goto out;
		}
		ret = send_all_ram(&s);
		if (!ret)
			ret = mig_flush_ram(&s.w);
		if (ret) {
			snprintf(why, len, "saving RAM: %s", strerror(-ret));
			goto out;
		}
		s.pass = 1;
	} else if (!o->ram_by_fd && !to_postcopy) {
		ret = vm_dirty_log_start(vm);
		if (ret) {
			snprintf(why, len, "starting the dirty log: %s", strerror(-ret));
			goto out;
		}
		logging = true;
		ret = devices_save_setup(vm, why, len);
		if (ret)
			goto out;
		dev_precopy = true;
		ret = precopy(&s, t0, res, why, len);
		if (ret < 0)
			goto out;
		to_postcopy = ret == 1;
	} else if (o->ram_by_fd && !to_postcopy) {
		ret = devices_save_setup(vm, why, len);
		if (ret)
			goto out;
		dev_precopy = true;
		ret = device_only_precopy(&s, res, why, len);
		if (ret)
			goto out;
	}
	/* stop and copy: devices RUNNING_P2P then STOP (PRE_COPY_P2P, STOP_COPY) */
	vm_throttle_stop(vm);
	t_pause = now_ns();
	if (was_running) {
		ret = vm_pause(vm, why, len);
		if (ret)
			goto out;
		paused = true;
	}
	if (to_postcopy) {
		ret = postcopy_src_switch(vm, &s.w, logging, res, why, len);
		if (ret)
			goto out;
	} else if (logging) {
		ret = vm_dirty_log_sync(vm, send_dirty_slot, &s);
		if (!ret)
			ret = mig_flush_ram(&s.w);
		if (ret) {
			snprintf(why, len, "final pass: %s", strerror(-ret));
			goto out;
		}
		s.pass++;
	}
	state_init_writer(&sb);
	ret = devices_save(vm, &sb);
	if (!ret && !state_ok(&sb))
		ret = -ENOMEM;
	if (!ret) {
		res->device_bytes = sb.len;
		ret = mig_put_section(&s.w, MIG_TAG_DEVS, sb.data, sb.len);
	} else {
		snprintf(why, len, "saving vCPU, VM and device state: %s", strerror(-ret));
	}
	state_free(&sb);
	if (!ret)
		ret = mig_put_end(&s.w);
	end_sent = !ret;
	if (ret && !why[0])
		snprintf(why, len, "sending the stream: %s", strerror(-ret));
	if (!ret && io->fd >= 0 && !io->one_way && !o->no_answer)
		ret = read_answer(io, why, len);
	if (!ret && to_postcopy) {
		committed = true;	/* the destination runs: no way back from here */
		ret = postcopy_src_run(vm, io, o, res, why, len);
	}
out:
	vm_throttle_stop(vm);
	if (ret && ret != -ECANCELED && !committed && cancelled(&s)) {
		cancel_reason(&s, why, len);	/* what failed is the cancel's doing */
		ret = -ECANCELED;
	}
	if (ret && why[0] && !end_sent)
		send_cancel(&s, ret, why);
	if (ret && s.w.err && !why[0] && !o->no_answer && !io->one_way && io->fd >= 0)
		read_answer(io, why, len);
	if (ret && ret != -ECANCELED && s.w.err && !why[0])
		snprintf(why, len, "sending the stream: %s", strerror(-s.w.err));
	if (dev_precopy)
		devices_save_cleanup(vm);	/* a device still in PRE_COPY runs on */
	if (logging)
		vm_dirty_log_stop(vm);
	res->vm_lost = committed && ret;
	if (ret && paused && !committed) {
		char rwhy[160] = "";

		if (vm_resume(vm, rwhy, sizeof(rwhy)))
			pr_err("migration failed and resuming failed too: %s", rwhy);
	}
	res->total_ms = (now_ns() - t0) / 1000000;
	res->downtime_ms = t_pause ? (now_ns() - t_pause) / 1000000 : 0;
	if (committed)		/* the VM ran on the destination once it answered */
		res->downtime_ms -= MIN(res->downtime_ms, res->pc_ms);
	res->passes = s.pass;
	res->bytes = io->bytes_out;
	res->pages = s.w.pages_sent;
	res->zero_pages = s.w.zero_pages;
	mig_writer_free(&s.w);
	return ret;
}
