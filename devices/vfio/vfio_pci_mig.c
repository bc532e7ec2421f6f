// SPDX-License-Identifier: MIT
/*
 * The passthrough device's lifecycle and state through the VFIO migration v2
 * state machine (vfio_mig.c, the same for vfio-user and kernel VFIO).
 *
 *  - pause: RUNNING -> RUNNING_P2P in pause_prepare (every device of the
 *    VM reaches it before any is stopped, as VFIO asks when devices may DMA
 *    to each other), then -> STOP in pause (direct without P2P).  A stopped
 *    device does no DMA and raises no interrupt.  A device without
 *    FEATURE_MIGRATION cannot be stopped, so pause fails with that reason
 *    instead of leaving a "paused" guest whose memory the device keeps
 *    writing.  resume: the same way back.
 *  - save_final: the device's own state, read from a STOP_COPY session and
 *    written as one length-prefixed blob; the device ends where it was
 *    (STOP when paused).  Config space and MSI-X are not here: pci-host
 *    saves them for every function.
 *  - load: RESUMING, the blob written, RESUMING -> STOP (where the device
 *    validates it), then back to the state it had before (RUNNING on a
 *    freshly started VM, so the restored guest finds its device working).
 *  - dirty log: DMA_LOGGING_START over every guest RAM slot at 4 KiB, and
 *    REPORT slot by slot in bounded chunks, each dirty run handed to the
 *    caller's mark().  A device that cannot log makes start fail with that
 *    reason: the caller must then treat all RAM as dirty or not migrate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices/hdnic/hdnic_vf_abi.h"
#include "devices/vfio/vfio_output.h"
#include "devices/vfio/vfio_pci_int.h"
#include "migration/state.h"
#include "vmm/memory.h"
#include "vmm/util.h"
#include "vmm/vm.h"

#define MIG_CHUNK	(64 * 1024)
#define MIG_MAX_STATE	(64ull << 20)	/* a device's state larger than this is refused */
#define DIRTY_PAGE	4096ull
#define DIRTY_CHUNK	(32768 * DIRTY_PAGE)	/* one REPORT: a 4 KiB bitmap */
#define DIRTY_MAX_RANGES 32

static struct vfio_pci *to_vp_dev(struct device *dev)
{
	return container_of(dev, struct vfio_pci, dev);
}

/* 0 if the FSM can be used, else -errno with the reason left on the device. */
static int mig_usable(struct vfio_pci *vp)
{
	if (!vp->vdev || !vp_alive(vp)) {
		device_set_error(&vp->dev, "%s is gone (its server disconnected)", vp->spec);
		return -ENODEV;
	}
	if (vp->mig_err) {
		device_set_error(&vp->dev, "%s cannot be stopped: %s%s", vp->spec,
				 vp->mig_err == -ENOTSUP ? "it has no VFIO migration support "
				 "(FEATURE_MIGRATION absent)" : strerror(-vp->mig_err),
				 vp->compsc.offered ? " and its guest driver did not opt into "
				 "CompSC (devices/compsc.md)" : "");
		return vp->mig_err;
	}
	return 0;
}

static int mig_goto(struct vfio_pci *vp, uint32_t from, uint32_t to)
{
	char why[DEVICE_ERROR_MAX];
	int ret = vfio_mig_goto(vp->vdev, vp->mig_flags, from, to, why, sizeof(why));

	if (ret)
		device_set_error(&vp->dev, "%s: %s", vp->spec, why);
	return ret;
}

static uint32_t run_state(const struct vfio_pci *vp)
{
	return vp->mig_state;
}

/* Walk from the state we know to target; on success that is the state. */
static int move_to(struct vfio_pci *vp, uint32_t target)
{
	int ret;

	if (vp->mig_state == target)
		return 0;
	ret = mig_usable(vp);
	if (!ret)
		ret = mig_goto(vp, vp->mig_state, target);
	if (!ret)
		vp->mig_state = target;
	return ret;
}

static bool in_precopy(const struct vfio_pci *vp)
{
	return vp->mig_state == VFIO_DEVICE_STATE_PRE_COPY ||
	       vp->mig_state == VFIO_DEVICE_STATE_PRE_COPY_P2P;
}

int vp_pause_prepare(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	int ret;

	if (!vp->vdev || !vp_alive(vp))
		return 0;	/* a removed device does nothing any more */
	if (compsc_active(&vp->compsc))
		return 0;	/* locked early; stopped (reset) in pause */
	/* live migration's switchover: the pre-copy session goes on, quiesced */
	if (vp->mig_state == VFIO_DEVICE_STATE_PRE_COPY)
		return vp->mig_flags & VFIO_MIGRATION_P2P ?
			move_to(vp, VFIO_DEVICE_STATE_PRE_COPY_P2P) : 0;
	if (vp->mig_err || !(vp->mig_flags & VFIO_MIGRATION_P2P))
		return mig_usable(vp);	/* nothing to prepare; say now if pause cannot work */
	ret = move_to(vp, VFIO_DEVICE_STATE_RUNNING_P2P);
	return ret && !vp_alive(vp) ? 0 : ret;	/* died under the call: removed */
}

/* CompSC: the shared page's write lock while the guest still runs (bounded). */
int vp_pause_early(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	return compsc_active(&vp->compsc) && vp->vdev && vp_alive(vp) ? compsc_lock(vp) : 0;
}

int vp_pause(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	int ret;

	if (vp->compsc.locked)
		return compsc_stop(vp);
	if (!vp->vdev || !vp_alive(vp))
		return 0;
	/* PRE_COPY_P2P -> STOP_COPY: stopped, and the rest follows on the same session */
	if (in_precopy(vp))
		ret = move_to(vp, VFIO_DEVICE_STATE_STOP_COPY);
	else
		ret = move_to(vp, VFIO_DEVICE_STATE_STOP);
	/* its server died under the call: a removed device does nothing any more */
	return ret && !vp_alive(vp) ? 0 : ret;
}

int vp_resume(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	if (vp->compsc.locked)
		return compsc_release(vp);	/* reset? the counter tells the driver */
	if (vp->mig_state == VFIO_DEVICE_STATE_RUNNING)
		return 0;
	if (!vp->vdev || !vp_alive(vp)) {
		vp->mig_state = VFIO_DEVICE_STATE_RUNNING;
		return 0;
	}
	return move_to(vp, VFIO_DEVICE_STATE_RUNNING);
}

/* Everything the STOP_COPY session has, until end of stream. */
static int read_session(struct vfio_pci *vp, struct state_buf *out)
{
	uint8_t *buf = xzalloc(MIG_CHUNK);
	int ret = 0;

	for (;;) {
		ssize_t n = vp->vdev->ops->mig_data_read(vp->vdev, buf, MIG_CHUNK);

		if (n == 0)
			break;
		if (n < 0) {
			ret = (int)n;
			device_set_error(&vp->dev, "%s: reading its state: %s", vp->spec,
					 strerror(-ret));
			break;
		}
		if (out->len + n > MIG_MAX_STATE) {
			ret = -EFBIG;
			device_set_error(&vp->dev, "%s: its state exceeds %llu MiB", vp->spec,
					 MIG_MAX_STATE >> 20);
			break;
		}
		state_put_bytes(out, buf, n);
	}
	free(buf);
	return ret ? ret : state_ok(out) ? 0 : -ENOMEM;
}

static int vp_save_final(struct device *dev, struct state_buf *sb)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	uint32_t from = run_state(vp);
	struct state_buf blob;
	int ret, back;

	if (vp->compsc.offered)
		return compsc_save(vp, sb);
	ret = mig_usable(vp);
	if (ret)
		return ret;
	if (from == VFIO_DEVICE_STATE_STOP_COPY)
		from = VFIO_DEVICE_STATE_STOP;	/* paused out of pre-copy: the session is open */
	else
		ret = mig_goto(vp, from, VFIO_DEVICE_STATE_STOP_COPY);
	if (ret)
		return mig_usable(vp) ?: ret;	/* -ENODEV: its server died under the call */
	state_init_writer(&blob);
	ret = read_session(vp, &blob);
	/* STOP_COPY -> STOP ends the session, whether or not the read went well */
	back = mig_goto(vp, VFIO_DEVICE_STATE_STOP_COPY, from);
	if (!back)
		vp->mig_state = from;
	if (!ret)
		ret = back;
	if (!ret) {
		state_put_u64(sb, blob.len);
		state_put_bytes(sb, blob.data, blob.len);
	}
	state_free(&blob);
	if (ret && !vp_alive(vp))
		return mig_usable(vp);	/* -ENODEV, "is gone": the checkpoint driver stops */
	return ret;
}

/* Into RESUMING (once): the session load_iterate and load write to. */
static int begin_resuming(struct vfio_pci *vp)
{
	int ret;

	if (vp->mig_state == VFIO_DEVICE_STATE_RESUMING)
		return 0;
	ret = mig_usable(vp);
	if (ret)
		return ret;
	vp->load_from = vp->mig_state;
	vp->precopy_bytes = 0;
	return move_to(vp, VFIO_DEVICE_STATE_RESUMING);
}

/* RESUMING -> where it was; a refused walk resets the device (vfio_mig_goto). */
static int end_resuming(struct vfio_pci *vp, bool report)
{
	char why[DEVICE_ERROR_MAX];
	int ret = vfio_mig_goto(vp->vdev, vp->mig_flags, VFIO_DEVICE_STATE_RESUMING,
				vp->load_from, why, sizeof(why));

	if (ret && report)
		device_set_error(&vp->dev, "%s: %s", vp->spec, why);
	/* back where it was, or reset (which leaves it RUNNING) */
	vp->mig_state = ret ? VFIO_DEVICE_STATE_RUNNING : vp->load_from;
	return ret;
}

static int write_state(struct vfio_pci *vp, const void *buf, size_t len)
{
	int ret = vp->vdev->ops->mig_data_write(vp->vdev, buf, len);

	if (ret && !vp_alive(vp))	/* say so: "not connected" would read like our fault */
		device_set_error(&vp->dev, "%s is gone (its server disconnected while its state "
				 "was being written): %s", vp->spec, strerror(-ret));
	else if (ret)
		device_set_error(&vp->dev, "%s: writing its state: %s", vp->spec, strerror(-ret));
	return ret;
}

static int vp_load(struct device *dev, struct state_buf *sb)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	uint64_t len;
	uint8_t *blob;
	int ret;

	if (vp->compsc.offered)
		return compsc_load(vp, sb);
	len = state_get_u64(sb);
	if (!state_ok(sb) || len > MIG_MAX_STATE || len > sb->len - sb->pos) {
		device_set_error(dev, "the saved device state is truncated");
		return -EINVAL;
	}
	ret = begin_resuming(vp);
	if (ret)
		return ret;
	blob = xzalloc(len ? len : 1);
	state_get_bytes(sb, blob, len);
	ret = write_state(vp, blob, len);
	free(blob);
	/* RESUMING -> STOP is where the device checks what it got */
	if (!ret)
		return end_resuming(vp, true);
	end_resuming(vp, false);	/* keep the write's reason */
	return ret;
}

/* ---- pre-copy (VFIO PRE_COPY, driven by the migration alongside RAM) ---- */

#define PRECOPY_MAX_ITER	(1u << 20)	/* bytes per save_iterate: RAM goes on between */

static int vp_save_setup(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	vp->precopy_bytes = 0;
	/* without PRE_COPY the whole state goes in STOP_COPY, as before */
	if (!vp->vdev || !vp_alive(vp) || vp->mig_err ||
	    !(vp->mig_flags & VFIO_MIGRATION_PRE_COPY) ||
	    vp->mig_state != VFIO_DEVICE_STATE_RUNNING)
		return 0;
	return move_to(vp, VFIO_DEVICE_STATE_PRE_COPY);
}

static void vp_save_cleanup(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	/* a failed or cancelled migration: the session ends, the device runs on */
	if (vp->mig_state == VFIO_DEVICE_STATE_PRE_COPY)
		move_to(vp, VFIO_DEVICE_STATE_RUNNING);
	else if (vp->mig_state == VFIO_DEVICE_STATE_PRE_COPY_P2P)
		move_to(vp, VFIO_DEVICE_STATE_RUNNING_P2P);
}

static int vp_pending_bytes(struct device *dev, uint64_t *bytes)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	uint64_t initial = 0, dirty = 0;
	int ret;

	*bytes = 0;
	if (!in_precopy(vp) || !vp_alive(vp))
		return 0;
	ret = vp->vdev->ops->mig_precopy_info ?
		vp->vdev->ops->mig_precopy_info(vp->vdev, &initial, &dirty) : -ENOTSUP;
	if (ret == -ENOTSUP)
		return 0;	/* it cannot tell: save_iterate reads what there is */
	if (ret) {
		device_set_error(dev, "%s: VFIO_MIG_GET_PRECOPY_INFO: %s", vp->spec,
				 strerror(-ret));
		return ret;
	}
	*bytes = initial + dirty;
	return 0;
}

/*
 * What the PRE_COPY session has now, at most PRECOPY_MAX_ITER bytes.  The
 * end of what is there reads as 0 bytes (vfio-user, hdnic) or -ENOMSG
 * (kernel): not the end of the session, which goes on into STOP_COPY.
 */
static int vp_save_iterate(struct device *dev, struct state_buf *sb)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	uint8_t *buf;
	size_t got = 0;
	int ret = 0;

	if (!in_precopy(vp))
		return 1;
	if (!vp_alive(vp)) {
		device_set_error(dev, "%s is gone (its server disconnected)", vp->spec);
		return -ENODEV;
	}
	buf = xzalloc(MIG_CHUNK);
	while (got < PRECOPY_MAX_ITER) {
		ssize_t n = vp->vdev->ops->mig_data_read(vp->vdev, buf, MIG_CHUNK);

		if (n == 0 || n == -ENOMSG || n == -EAGAIN)
			break;
		if (n < 0) {
			ret = (int)n;
			device_set_error(dev, "%s: reading its pre-copy data: %s", vp->spec,
					 strerror(-ret));
			break;
		}
		state_put_bytes(sb, buf, (size_t)n);
		got += (size_t)n;
	}
	free(buf);
	vp->precopy_bytes += got;
	if (ret)
		return ret;
	return got ? 0 : 1;
}

static int vp_load_iterate(struct device *dev, struct state_buf *sb)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	size_t len = sb->len - sb->pos;
	int ret = begin_resuming(vp);

	if (!ret && vp->precopy_bytes + len > MIG_MAX_STATE) {
		device_set_error(dev, "%s: its pre-copy data exceeds %llu MiB", vp->spec,
				 MIG_MAX_STATE >> 20);
		ret = -EFBIG;
	}
	if (!ret)
		ret = write_state(vp, sb->data + sb->pos, len);
	if (!ret) {
		sb->pos = sb->len;
		vp->precopy_bytes += len;
	}
	return ret;
}

static void vp_load_abort(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	if (vp->mig_state == VFIO_DEVICE_STATE_RESUMING && vp_alive(vp))
		end_resuming(vp, false);
}

/* ---- the device's own DMA writes ---- */

struct dirty_ranges {
	struct vfio_dirty_range r[DIRTY_MAX_RANGES];
	unsigned nr;
};

static int add_ram_range(const struct mem_slot *s, void *opaque)
{
	struct dirty_ranges *d = opaque;

	if (d->nr == DIRTY_MAX_RANGES)
		return -E2BIG;
	d->r[d->nr++] = (struct vfio_dirty_range){ s->gpa, s->size };
	return 0;
}

static int vp_dirty_log_start(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	struct dirty_ranges d = { .nr = 0 };
	int ret;

	if (!vp->vdev || !vp_alive(vp)) {
		device_set_error(dev, "%s is gone (its server disconnected)", vp->spec);
		return -ENODEV;
	}
	if (vp->compsc.offered)		/* the driver's dummy writes put its DMA in KVM's log */
		return compsc_ready(vp);
	ret = guest_mem_for_each_ram(&vp->vm->mem, add_ram_range, &d);
	if (!ret)
		ret = vfio_dirty_start(vp->vdev, DIRTY_PAGE, d.r, d.nr);
	if (ret == -ENOTSUP || ret == -EOPNOTSUPP || ret == -ENOTTY)
		device_set_error(dev, "%s cannot log its DMA writes (no DMA_LOGGING_START)",
				 vp->spec);
	else if (ret)
		device_set_error(dev, "%s: starting its DMA dirty log: %s", vp->spec,
				 strerror(-ret));
	vp->dirty_logging = !ret;
	return ret;
}

static int vp_dirty_log_stop(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	if (!vp->dirty_logging)
		return 0;
	vp->dirty_logging = false;
	return vp_alive(vp) ? vfio_dirty_stop(vp->vdev) : 0;
}

struct dirty_sync {
	struct vfio_pci *vp;
	device_dirty_fn *mark;
	void *opaque;
	uint8_t *bitmap;
};

/* Hand each run of set bits to mark() as one range. */
static void mark_runs(struct dirty_sync *s, uint64_t gpa, uint64_t pages)
{
	uint64_t run = 0;

	for (uint64_t p = 0; p <= pages; p++) {
		bool dirty = p < pages && (s->bitmap[p / 8] & (1u << (p % 8)));

		if (dirty) {
			run++;
			continue;
		}
		if (run)
			s->mark(s->opaque, gpa + (p - run) * DIRTY_PAGE, run * DIRTY_PAGE);
		run = 0;
		if (p < pages && !s->bitmap[p / 8])
			p |= 7;		/* a clean byte: skip to the next one */
	}
}

static int sync_slot(const struct mem_slot *slot, void *opaque)
{
	struct dirty_sync *s = opaque;

	for (uint64_t off = 0; off < slot->size; off += DIRTY_CHUNK) {
		uint64_t len = MIN(DIRTY_CHUNK, slot->size - off);
		int ret = vfio_dirty_report(s->vp->vdev, slot->gpa + off, len, DIRTY_PAGE,
					    s->bitmap);

		if (ret)
			return ret;
		mark_runs(s, slot->gpa + off, len / DIRTY_PAGE);
	}
	return 0;
}

static int vp_dirty_log_sync(struct device *dev, device_dirty_fn *mark, void *opaque)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	struct dirty_sync s = { vp, mark, opaque, NULL };
	int ret;

	if (!vp->dirty_logging)
		return 0;
	if (!vp_alive(vp))
		return -ENODEV;
	s.bitmap = xzalloc(vfio_dirty_bitmap_bytes(DIRTY_CHUNK, DIRTY_PAGE));
	ret = guest_mem_for_each_ram(&vp->vm->mem, sync_slot, &s);
	free(s.bitmap);
	if (ret && !vp_alive(vp))
		ret = -ENODEV;		/* its server died under the call */
	if (ret)
		device_set_error(dev, "%s: reading its DMA dirty log: %s", vp->spec,
				 strerror(-ret));
	return ret;
}

/* Output commit on the device itself (hdnic's vendor feature, vfio_output.c). */
static int vp_output_commit(struct device *dev, uint32_t op, uint64_t epoch, uint32_t max_frames)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	int ret;

	if (!vp->vdev || !vp_alive(vp))
		return -ENODEV;
	ret = vfio_output_commit_op(vp->vdev, op, epoch, max_frames);
	return ret && !vp_alive(vp) ? -ENODEV : ret;	/* its server died under the call */
}

static int vp_output_held(struct device *dev, uint64_t *frames)
{
	struct vfio_pci *vp = to_vp_dev(dev);
	struct hdnic_output_status st;
	int ret;

	if (!vp->vdev)
		return -ENODEV;
	ret = vfio_output_commit_status(vp->vdev, &st);
	if (!ret)
		*frames = st.held;
	return ret == -ENOTSUP ? 0 : ret;
}

static int vp_can_migrate(struct device *dev, unsigned flags)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	if (!vp->compsc.offered)
		return 0;
	if (flags & DEVICE_MIG_POSTCOPY) {
		/* post_load writes the shared page: it must be there, not on its way */
		device_set_error(dev, "%s moves the CompSC way, which post-copy cannot do (the "
				 "shared page must arrive before the device is handed over)", vp->spec);
		return -EOPNOTSUPP;
	}
	return compsc_ready(vp);
}

static int vp_post_load(struct device *dev)
{
	struct vfio_pci *vp = to_vp_dev(dev);

	return vp->compsc.locked ? compsc_post_load(vp) : 0;
}

const struct device_mig_ops vfio_pci_mig_ops = {
	.version = 1,
	.can_migrate = vp_can_migrate,
	.post_load = vp_post_load,
	.output_commit = vp_output_commit,
	.output_held = vp_output_held,
	.dirty_log_start = vp_dirty_log_start,
	.dirty_log_stop = vp_dirty_log_stop,
	.dirty_log_sync = vp_dirty_log_sync,
	.save_setup = vp_save_setup,
	.save_cleanup = vp_save_cleanup,
	.pending_bytes = vp_pending_bytes,
	.save_iterate = vp_save_iterate,
	.save_final = vp_save_final,
	.load_iterate = vp_load_iterate,
	.load_abort = vp_load_abort,
	.load = vp_load,
};
